/*
 * backoff: retry delays, exponential with full jitter: attempt n waits a
 * uniformly random time in [0, min(cap, base * 2^(n-1))]. The random number
 * is a parameter so the function stays pure and testable.
 */
#ifndef ORDERD_CORE_BACKOFF_H
#define ORDERD_CORE_BACKOFF_H

#include <stdint.h>

typedef struct backoff {
	int64_t base_ms;
	int64_t cap_ms;
} backoff_t;

/* Delay before retry number attempt (1-based) given a uniform random rnd. */
int64_t backoff_delay_ms(const backoff_t *b, int attempt, uint64_t rnd);
/* The upper bound of that delay (no jitter). */
int64_t backoff_ceiling_ms(const backoff_t *b, int attempt);

#endif
