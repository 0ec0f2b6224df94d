/* Unit tests for core/backoff: ceilings, bounds, overflow and jitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>

#include "core/backoff.h"

static void test_ceiling(void **state)
{
	(void)state;
	backoff_t b = {.base_ms = 100, .cap_ms = 30000};
	assert_int_equal(backoff_ceiling_ms(&b, 1), 100);
	assert_int_equal(backoff_ceiling_ms(&b, 2), 200);
	assert_int_equal(backoff_ceiling_ms(&b, 3), 400);
	assert_int_equal(backoff_ceiling_ms(&b, 8), 12800);
	assert_int_equal(backoff_ceiling_ms(&b, 9), 25600);
	assert_int_equal(backoff_ceiling_ms(&b, 10), 30000);
	assert_int_equal(backoff_ceiling_ms(&b, 11), 30000);
	/* attempt below 1 behaves as the first. */
	assert_int_equal(backoff_ceiling_ms(&b, 0), 100);
	assert_int_equal(backoff_ceiling_ms(&b, -5), 100);
}

static void test_ceiling_monotonic_no_overflow(void **state)
{
	(void)state;
	backoff_t b = {.base_ms = 3, .cap_ms = INT64_MAX};
	int64_t prev = 0;
	for (int a = 1; a < 200; a++) {
		int64_t c = backoff_ceiling_ms(&b, a);
		assert_true(c >= prev);
		assert_true(c > 0);
		prev = c;
	}
	assert_int_equal(backoff_ceiling_ms(&b, INT_MAX), INT64_MAX);
	assert_int_equal(backoff_ceiling_ms(&b, 63), INT64_MAX);

	backoff_t c = {.base_ms = 1000, .cap_ms = 60000};
	for (int a = 7; a < 100000; a += 997)
		assert_int_equal(backoff_ceiling_ms(&c, a), 60000);
	assert_int_equal(backoff_ceiling_ms(&c, INT_MAX), 60000);
	assert_int_equal(backoff_delay_ms(&c, INT_MAX, UINT64_MAX) <= 60000, 1);
}

static void test_degenerate(void **state)
{
	(void)state;
	backoff_t z = {.base_ms = 0, .cap_ms = 1000};
	assert_int_equal(backoff_ceiling_ms(&z, 5), 0);
	assert_int_equal(backoff_delay_ms(&z, 5, 12345), 0);
	backoff_t n = {.base_ms = -5, .cap_ms = -1};
	assert_int_equal(backoff_delay_ms(&n, 5, 12345), 0);
	/* A cap below the base caps the first attempt too. */
	backoff_t c = {.base_ms = 500, .cap_ms = 200};
	assert_int_equal(backoff_ceiling_ms(&c, 1), 200);
	assert_int_equal(backoff_ceiling_ms(&c, 30), 200);
}

static void test_delay_bounds(void **state)
{
	(void)state;
	backoff_t b = {.base_ms = 100, .cap_ms = 30000};
	for (int a = 1; a <= 40; a++) {
		int64_t ceil = backoff_ceiling_ms(&b, a);
		/* The extremes of rnd reach both ends of [0, ceil]. */
		assert_int_equal(backoff_delay_ms(&b, a, 0), 0);
		assert_int_equal(backoff_delay_ms(&b, a, (uint64_t)ceil), ceil);
		assert_int_equal(backoff_delay_ms(&b, a, (uint64_t)ceil + 1),
		                 0);
		assert_true(backoff_delay_ms(&b, a, UINT64_MAX) <= ceil);
		assert_true(backoff_delay_ms(&b, a, UINT64_MAX) >= 0);
	}
}

/* splitmix64: a deterministic stand-in for clock_rand(). */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void test_jitter_distribution(void **state)
{
	(void)state;
	/* Full jitter: uniform over [0, ceiling]. Check the mean and that
	 * every tenth of the window gets its share. */
	backoff_t b = {.base_ms = 100, .cap_ms = 30000};
	uint64_t seed = 42;
	const int n = 100000;
	int bins[10] = {0};
	double sum = 0;
	int64_t ceil = backoff_ceiling_ms(&b, 5); /* 1600 */
	for (int i = 0; i < n; i++) {
		int64_t d = backoff_delay_ms(&b, 5, next_rand(&seed));
		assert_true(d >= 0 && d <= ceil);
		sum += (double)d;
		int bin = (int)(d * 10 / (ceil + 1));
		bins[bin]++;
	}
	double mean = sum / n;
	assert_true(mean > ceil * 0.48 && mean < ceil * 0.52);
	for (int i = 0; i < 10; i++)
		assert_true(bins[i] > n / 10 * 0.9 && bins[i] < n / 10 * 1.1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ceiling),
	    cmocka_unit_test(test_ceiling_monotonic_no_overflow),
	    cmocka_unit_test(test_degenerate),
	    cmocka_unit_test(test_delay_bounds),
	    cmocka_unit_test(test_jitter_distribution),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
