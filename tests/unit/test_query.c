/* Unit tests for http/query: strict integers and the page cursors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "http/query.h"

static void test_int_strict(void **state)
{
	int64_t n = -7;
	(void)state;
	assert_int_equal(query_parse_int("10", 1, 1000, &n), 0);
	assert_int_equal(n, 10);
	assert_int_equal(query_parse_int("-0", -5, 5, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(
	    query_parse_int("9223372036854775807", INT64_MIN, INT64_MAX, &n),
	    0);
	assert_int_equal(n, INT64_MAX);
	n = -7;
	/* strtoll skips any leading isspace(); the API takes digits only
	 * (found by fuzz_query: "\t5" and "\v-88" were read as numbers). */
	assert_int_equal(query_parse_int("\t5", 1, 1000, &n), -1);
	assert_int_equal(query_parse_int("\n7", 1, 1000, &n), -1);
	assert_int_equal(query_parse_int("\v\v-88", -100, 0, &n), -1);
	assert_int_equal(query_parse_int(" 5", 1, 1000, &n), -1);
	assert_int_equal(query_parse_int("+5", 1, 1000, &n), -1);
	assert_int_equal(query_parse_int("5 ", 1, 1000, &n), -1);
	assert_int_equal(query_parse_int("", 1, 1000, &n), -1);
	assert_int_equal(query_parse_int("-", -5, 5, &n), -1);
	assert_int_equal(query_parse_int("1001", 1, 1000, &n), -1);
	assert_int_equal(
	    query_parse_int("9223372036854775808", INT64_MIN, INT64_MAX, &n),
	    -1);
	assert_int_equal(n, -7); /* untouched */
}

static void test_seq_cursor(void **state)
{
	char c[QUERY_CURSOR_LEN];
	int64_t n = -1;
	(void)state;
	query_cursor_seq_format(QUERY_CURSOR_ORDERS, 31, c);
	assert_string_equal(c, "s1f");
	assert_int_equal(query_cursor_seq_parse(QUERY_CURSOR_ORDERS, c, &n), 0);
	assert_int_equal(n, 31);
	query_cursor_seq_format(QUERY_CURSOR_NOTIFICATIONS, INT64_MAX, c);
	assert_string_equal(c, "n7fffffffffffffff");
	assert_int_equal(
	    query_cursor_seq_parse(QUERY_CURSOR_NOTIFICATIONS, c, &n), 0);
	assert_int_equal(n, INT64_MAX);
	n = -1;
	assert_int_equal(query_cursor_seq_parse(QUERY_CURSOR_ORDERS, c, &n),
	                 -1);
	assert_int_equal(query_cursor_seq_parse(QUERY_CURSOR_ORDERS,
	                                        "s8000000000000000", &n),
	                 -1);
	assert_int_equal(query_cursor_seq_parse(QUERY_CURSOR_ORDERS,
	                                        "s00000000000000001", &n),
	                 -1);
	assert_int_equal(query_cursor_seq_parse(QUERY_CURSOR_ORDERS, "s", &n),
	                 -1);
	assert_int_equal(query_cursor_seq_parse(QUERY_CURSOR_ORDERS, "sA", &n),
	                 -1);
	assert_int_equal(query_cursor_seq_parse(QUERY_CURSOR_ORDERS, "s 1", &n),
	                 -1);
	assert_int_equal(n, -1);
}

static void test_sku_cursor(void **state)
{
	char c[QUERY_CURSOR_LEN];
	const char *sku = NULL;
	(void)state;
	query_cursor_sku_format("SKU-1", c);
	assert_string_equal(c, "pSKU-1");
	assert_int_equal(query_cursor_sku_parse(c, &sku), 0);
	assert_string_equal(sku, "SKU-1");
	assert_int_equal(query_cursor_sku_parse("p", &sku), -1);
	assert_int_equal(query_cursor_sku_parse("sSKU", &sku), -1);
	assert_int_equal(query_cursor_sku_parse("pa b", &sku), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_int_strict),
	    cmocka_unit_test(test_seq_cursor),
	    cmocka_unit_test(test_sku_cursor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
