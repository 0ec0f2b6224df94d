/* clock: wall and monotonic milliseconds, and a thread-safe random source. */
#ifndef ORDERD_UTIL_CLOCK_H
#define ORDERD_UTIL_CLOCK_H

#include <stdint.h>

int64_t clock_wall_ms(void);
int64_t clock_mono_ms(void);
/* Uniform 64-bit random number; per-thread state seeded from getrandom(). */
uint64_t clock_rand(void);
/* Sleeps ms milliseconds (restarted on EINTR). */
void clock_sleep_ms(int64_t ms);

#endif
