/* clock: wall and monotonic milliseconds, timed waits and sleeps on the
 * monotonic clock, and a thread-safe random source. */
#ifndef ORDERD_UTIL_CLOCK_H
#define ORDERD_UTIL_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

int64_t clock_wall_ms(void);
int64_t clock_mono_ms(void);
/* Uniform 64-bit random number; per-thread state seeded from getrandom(). */
uint64_t clock_rand(void);
/* Sleeps ms milliseconds (restarted on EINTR). */
void clock_sleep_ms(int64_t ms);

/*
 * Timed waits, always on the monotonic clock, so that a step of the wall
 * clock can neither stall nor cut short a timeout. clock_cond_init makes a
 * condition variable whose timed waits use CLOCK_MONOTONIC, and
 * clock_mono_timespec(at) is the deadline to pass it for clock_mono_ms()
 * value at. Every timed wait in orderd goes through these two.
 */
void clock_cond_init(pthread_cond_t *cv);
struct timespec clock_mono_timespec(int64_t at_mono_ms);

#endif
