/* clock: see clock.h. */
#include "util/clock.h"

#include <errno.h>
#include <sys/random.h>
#include <time.h>

int64_t clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t clock_rand(void)
{
	/* xorshift64*: fast and good enough for jitter and request ids; the
	 * per-thread state needs no lock. */
	static _Thread_local uint64_t s;
	if (s == 0) {
		if (getrandom(&s, sizeof s, 0) != sizeof s || s == 0)
			s = (uint64_t)clock_mono_ms() * 0x9E3779B97F4A7C15ULL |
			    1;
	}
	s ^= s >> 12;
	s ^= s << 25;
	s ^= s >> 27;
	return s * 0x2545F4914F6CDD1DULL;
}

void clock_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

struct timespec clock_mono_timespec(int64_t at_mono_ms)
{
	if (at_mono_ms < 0)
		at_mono_ms = 0;
	return (struct timespec){.tv_sec = (time_t)(at_mono_ms / 1000),
	                         .tv_nsec =
	                             (long)(at_mono_ms % 1000) * 1000000L};
}

void clock_sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}
