/*
 * Unit tests for core/failure: how a failed order's reason is normalised
 * into its dead-letter group, and the fingerprint of that group (stable
 * across runs and builds, equal for reasons of the same shape, different
 * for different ones).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/failure.h"

static void expect_norm(const char *reason, const char *want)
{
	char out[256];
	failure_normalise(reason, out, sizeof out);
	if (strcmp(out, want) != 0)
		fail_msg("normalise(\"%s\") = \"%s\", want \"%s\"",
		         reason ? reason : "(null)", out, want);
}

static void test_normalise_numbers_and_ids(void **state)
{
	(void)state;
	expect_norm("confirm: HTTP 503 after 2000 ms",
	            "confirm: HTTP # after # ms");
	expect_norm("confirm: HTTP 500 after 31 ms",
	            "confirm: HTTP # after # ms");
	/* Ids are words of identifier characters with a digit in them. */
	expect_norm("order ord-1001 already holds sku BOOK-1",
	            "order # already holds sku #");
	expect_norm("attempt 3/8 failed", "attempt #/# failed");
	expect_norm("-5 and 1.5s", "# and #");
	/* Words without a digit stay, punctuation and spaces too. */
	expect_norm("lease expired", "lease expired");
	expect_norm("duplicate_reservation", "duplicate_reservation");
	expect_norm("store busy; retry later.", "store busy; retry later.");
	expect_norm("", "");
}

static void test_normalise_addresses(void **state)
{
	(void)state;
	expect_norm("connect to 10.0.0.7:5432 refused", "connect to # refused");
	expect_norm("connect to [::1]:8080 refused", "connect to [#]# refused");
	expect_norm("GET http://pay.example:8443/v2/charge timed out",
	            "GET http://#/#/charge timed out");
	expect_norm("tcp 127.0.0.1:80 -> 10.1.2.3:443", "tcp # -> #");
}

static void test_normalise_quoted(void **state)
{
	(void)state;
	expect_norm("unknown sku 'BOOK-1' in order \"o 7\"",
	            "unknown sku '*' in order '*'");
	expect_norm("unknown sku 'PEN' in order \"x\"",
	            "unknown sku '*' in order '*'");
	/* An unmatched quote is kept as it is. */
	expect_norm("bad 'quote", "bad 'quote");
	expect_norm("end'", "end'");
	/* An apostrophe inside a word does not open quoted text, so the
	 * quoted part after it is still one group. */
	expect_norm("can't reach 'db1' now", "can't reach '*' now");
	expect_norm("can't reach 'db2' now", "can't reach '*' now");
	expect_norm("won't retry", "won't retry");
}

static void test_normalise_null_and_cut(void **state)
{
	(void)state;
	char out[8];
	memset(out, 'x', sizeof out);
	failure_normalise(NULL, out, sizeof out);
	assert_string_equal(out, "");
	/* Cut to len - 1 bytes, always terminated. */
	memset(out, 'x', sizeof out);
	failure_normalise("abcdefghijkl", out, sizeof out);
	assert_string_equal(out, "abcdefg");
	failure_normalise("ab 123456789 cd", out, sizeof out);
	assert_string_equal(out, "ab # cd");
	failure_normalise("ab 'quoted' cd", out, 5);
	assert_string_equal(out, "ab '");
	char one[1] = {'x'};
	failure_normalise("anything", one, sizeof one);
	assert_int_equal(one[0], '\0');
}

static void fp(const char *reason, char out[FAILURE_FP_LEN + 1])
{
	memset(out, 'z', FAILURE_FP_LEN + 1);
	failure_fingerprint(reason, out);
	assert_int_equal(strlen(out), FAILURE_FP_LEN);
	assert_true(failure_fingerprint_valid(out));
}

static void test_fingerprint_stable(void **state)
{
	(void)state;
	char a[FAILURE_FP_LEN + 1];
	/* FNV-1a 64 of the normalised text: fixed vectors, so fingerprints
	 * stored by one build are found by the next. */
	fp(NULL, a);
	assert_string_equal(a, "cbf29ce484222325");
	fp("", a);
	assert_string_equal(a, "cbf29ce484222325");
	fp("a", a);
	assert_string_equal(a, "af63dc4c8601ec8c");
	/* "7" normalises to "#". */
	char b[FAILURE_FP_LEN + 1];
	fp("7", a);
	fp("#", b);
	assert_string_equal(a, b);
}

static void test_fingerprint_groups(void **state)
{
	(void)state;
	char a[FAILURE_FP_LEN + 1], b[FAILURE_FP_LEN + 1];
	fp("confirm: HTTP 503 after 2000 ms", a);
	fp("confirm: HTTP 500 after 31 ms", b);
	assert_string_equal(a, b);
	fp("failpoint fail_process: order o-17 attempt 3", a);
	fp("failpoint fail_process: order o-912 attempt 8", b);
	assert_string_equal(a, b);
	fp("unknown sku 'A' in 'o1'", a);
	fp("unknown sku 'LONGER-SKU' in 'o2'", b);
	assert_string_equal(a, b);

	/* Different shapes, different groups. */
	fp("confirm: HTTP 503 after 2000 ms", a);
	fp("confirm: timeout after 2000 ms", b);
	assert_string_not_equal(a, b);
	fp("lease expired", a);
	fp("duplicate_reservation", b);
	assert_string_not_equal(a, b);
	fp("lease expired", a);
	fp("lease  expired", b);
	assert_string_not_equal(a, b);
	fp("Lease expired", b);
	assert_string_not_equal(a, b);
}

static void test_fingerprint_valid(void **state)
{
	(void)state;
	assert_true(failure_fingerprint_valid("0123456789abcdef"));
	assert_true(failure_fingerprint_valid("cbf29ce484222325"));
	assert_false(failure_fingerprint_valid(NULL));
	assert_false(failure_fingerprint_valid(""));
	assert_false(failure_fingerprint_valid("0123456789abcde"));
	assert_false(failure_fingerprint_valid("0123456789abcdef0"));
	assert_false(failure_fingerprint_valid("0123456789ABCDEF"));
	assert_false(failure_fingerprint_valid("0123456789abcdeg"));
	assert_false(failure_fingerprint_valid("0123456789abcde "));
	assert_false(failure_fingerprint_valid("../../etc/passwd"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_normalise_numbers_and_ids),
	    cmocka_unit_test(test_normalise_addresses),
	    cmocka_unit_test(test_normalise_quoted),
	    cmocka_unit_test(test_normalise_null_and_cut),
	    cmocka_unit_test(test_fingerprint_stable),
	    cmocka_unit_test(test_fingerprint_groups),
	    cmocka_unit_test(test_fingerprint_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
