/*
 * Unit tests for util/failpoint: spec parsing, values, and that an unset
 * failpoint never hits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/err.h"
#include "util/failpoint.h"

static int reset(void **state)
{
	(void)state;
	failpoint_init(NULL);
	return 0;
}

static void test_empty_spec(void **state)
{
	(void)state;
	assert_int_equal(failpoint_init(NULL), 0);
	assert_int_equal(failpoint_init(""), 0);
	assert_true(failpoint_value("fail_process", -1) == -1);
	for (int i = 0; i < 10000; i++)
		assert_false(failpoint_hit("fail_process"));
}

static void test_parse_values(void **state)
{
	(void)state;
	assert_int_equal(failpoint_init("fail_process=0.3,slow_process_ms=50"),
	                 0);
	assert_true(failpoint_value("fail_process", 0) == 0.3);
	assert_true(failpoint_value("slow_process_ms", 0) == 50);
	assert_true(failpoint_value("other", 7) == 7);
	/* Names match exactly, not by prefix. */
	assert_true(failpoint_value("fail", 9) == 9);
	assert_true(failpoint_value("fail_process_x", 9) == 9);
	/* A new spec replaces the old one. */
	assert_int_equal(failpoint_init("slow_process_ms=5"), 0);
	assert_true(failpoint_value("fail_process", -1) == -1);
	assert_true(failpoint_value("slow_process_ms", 0) == 5);
}

static void test_unset_never_hits(void **state)
{
	(void)state;
	assert_int_equal(failpoint_init("fail_process=1"), 0);
	for (int i = 0; i < 10000; i++)
		assert_false(failpoint_hit("not_configured"));
	assert_int_equal(failpoint_init("fail_process=0"), 0);
	for (int i = 0; i < 10000; i++)
		assert_false(failpoint_hit("fail_process"));
}

static void test_probability(void **state)
{
	(void)state;
	assert_int_equal(failpoint_init("fail_process=1"), 0);
	for (int i = 0; i < 1000; i++)
		assert_true(failpoint_hit("fail_process"));
	assert_int_equal(failpoint_init("fail_process=0.25"), 0);
	int hits = 0;
	for (int i = 0; i < 40000; i++)
		hits += failpoint_hit("fail_process");
	/* Mean 10000, sd about 87: a wide margin keeps this from flaking. */
	assert_true(hits > 9000 && hits < 11000);
}

/* A spec that fails part-way sets nothing: no half-applied fault plan. */
static void test_malformed_sets_nothing(void **state)
{
	assert_int_equal(failpoint_init("a=1,b"), OD_EINVAL);
	assert_true(failpoint_value("a", -1) == -1);
}

static void test_malformed(void **state)
{
	(void)state;
	const char *bad[] = {
	    "fail_process",      /* no value */
	    "fail_process=",     /* empty value */
	    "=0.5",              /* empty name */
	    "fail_process=abc",  /* not a number */
	    "fail_process=0.5x", /* trailing junk */
	    "fail_process=-1",   /* negative */
	    "a=1,b",             /* second entry malformed */
	    "a=1,,b=2",          /* empty entry */
	    "a_name_that_is_far_too_long_for_the_table=1",
	    "a=1,b=1,c=1,d=1,e=1,f=1,g=1,h=1,i=1", /* more than the table */
	    "a=123456789012345678901234567890123", /* value too long */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(failpoint_init(bad[i]), OD_EINVAL);
	/* Eight entries fit; a trailing comma is tolerated. */
	assert_int_equal(failpoint_init("a=1,b=1,c=1,d=1,e=1,f=1,g=1,h=1"), 0);
	assert_true(failpoint_value("h", 0) == 1);
	assert_int_equal(failpoint_init("a=1,"), 0);
	assert_true(failpoint_value("a", 0) == 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_empty_spec, reset),
	    cmocka_unit_test_teardown(test_parse_values, reset),
	    cmocka_unit_test_teardown(test_unset_never_hits, reset),
	    cmocka_unit_test_teardown(test_probability, reset),
	    cmocka_unit_test_teardown(test_malformed, reset),
	    cmocka_unit_test_teardown(test_malformed_sets_nothing, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
