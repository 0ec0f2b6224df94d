/*
 * backoff: exponential retry delays with full jitter (see backoff.h). Full
 * jitter spreads the retries of many orders that failed together over the
 * whole window instead of letting them return in a synchronized wave.
 */
#include "core/backoff.h"

int64_t backoff_ceiling_ms(const backoff_t *b, int attempt)
{
	int64_t base = b->base_ms, cap = b->cap_ms;
	int shift;

	if (base <= 0 || cap <= 0)
		return 0;
	if (base >= cap)
		return cap;
	if (attempt < 1)
		attempt = 1;
	shift = attempt - 1;
	/*
	 * base < cap here, so base << shift reaches cap by shift 62 at most;
	 * compare before shifting so the shift itself can never overflow.
	 */
	if (shift >= 62 || base > (cap >> shift))
		return cap;
	return base << shift;
}

int64_t backoff_delay_ms(const backoff_t *b, int attempt, uint64_t rnd)
{
	int64_t ceil = backoff_ceiling_ms(b, attempt);

	if (ceil <= 0)
		return 0;
	/* The modulo bias over 2^64 values is below 2^-20 for any sane cap. */
	return (int64_t)(rnd % ((uint64_t)ceil + 1));
}
