/* Unit tests for util/buf: growth, the hard cap, the NUL, reset and free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "util/buf.h"

static void test_append_grows_and_terminates(void **state)
{
	(void)state;
	buf_t b;
	buf_init(&b, SIZE_MAX);
	assert_null(b.data);
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_string_equal(b.data, "");
	char chunk[100];
	memset(chunk, 'x', sizeof chunk);
	for (int i = 0; i < 50; i++)
		assert_int_equal(buf_append(&b, chunk, sizeof chunk), 0);
	assert_int_equal(b.len, 5000);
	assert_true(b.cap > b.len);
	assert_int_equal(b.data[b.len], '\0');
	assert_int_equal(strlen(b.data), 5000);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.max, SIZE_MAX);
	buf_free(&b); /* twice is fine */
}

static void test_cap(void **state)
{
	(void)state;
	buf_t b;
	buf_init(&b, 1000);
	char big[600];
	memset(big, 'y', sizeof big);
	assert_int_equal(buf_append(&b, big, sizeof big), 0);
	/* Past the cap: refused whole, nothing appended. */
	assert_int_equal(buf_append(&b, big, sizeof big), -EFBIG);
	assert_int_equal(b.len, 600);
	assert_int_equal(buf_reserve(&b, 401), -EFBIG);
	assert_int_equal(buf_append(&b, big, 400), 0);
	assert_int_equal(b.len, 1000);
	/* Never more memory than the cap and its NUL. */
	assert_true(b.cap <= 1001);
	assert_int_equal(buf_append(&b, "z", 1), -EFBIG);
	assert_int_equal(buf_append(&b, "", 0), 0);
	buf_free(&b);
}

static void test_reserve(void **state)
{
	(void)state;
	buf_t b;
	buf_init(&b, 64);
	assert_int_equal(buf_reserve(&b, 0), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	assert_int_equal(buf_reserve(&b, 64), 0);
	assert_int_equal(b.cap, 65); /* clamped to the cap */
	char *before = b.data;
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	assert_ptr_equal(b.data, before); /* reserved: no reallocation */
	assert_string_equal(b.data, "abc");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_append_grows_and_terminates),
	    cmocka_unit_test(test_cap),
	    cmocka_unit_test(test_reserve),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
