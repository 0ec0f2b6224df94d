/* Unit tests for util/timefmt: known instants, rounding, clamping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/timefmt.h"

static void expect(int64_t ms, const char *want)
{
	char out[TIMEFMT_LEN];
	memset(out, 'x', sizeof out);
	timefmt_rfc3339(ms, out);
	assert_string_equal(out, want);
	assert_int_equal(strlen(out), TIMEFMT_LEN - 1);
}

static void test_known(void **state)
{
	(void)state;
	expect(0, "1970-01-01T00:00:00.000Z");
	expect(1, "1970-01-01T00:00:00.001Z");
	expect(999, "1970-01-01T00:00:00.999Z");
	expect(1000, "1970-01-01T00:00:01.000Z");
	expect(1764078307123LL, "2025-11-25T13:45:07.123Z");
	expect(1795614307123LL, "2026-11-25T13:45:07.123Z");
	expect(951782400000LL, "2000-02-29T00:00:00.000Z"); /* leap day */
	expect(4107542399999LL, "2100-02-28T23:59:59.999Z");
	expect(2147483648000LL, "2038-01-19T03:14:08.000Z"); /* past 2^31 s */
}

static void test_negative_floor(void **state)
{
	(void)state;
	/* Before the epoch, milliseconds still count forward in the second. */
	expect(-1, "1969-12-31T23:59:59.999Z");
	expect(-1000, "1969-12-31T23:59:59.000Z");
	expect(-1001, "1969-12-31T23:59:58.999Z");
}

static void test_clamped(void **state)
{
	(void)state;
	expect(253402300799999LL, "9999-12-31T23:59:59.999Z");
	expect(253402300800000LL, "9999-12-31T23:59:59.999Z");
	expect(INT64_MAX, "9999-12-31T23:59:59.999Z");
	expect(-62167219200000LL, "0000-01-01T00:00:00.000Z");
	expect(INT64_MIN, "0000-01-01T00:00:00.000Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known),
	    cmocka_unit_test(test_negative_floor),
	    cmocka_unit_test(test_clamped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
