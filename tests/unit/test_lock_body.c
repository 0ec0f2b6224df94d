/* Unit tests for http/lock_body and http/fields: the lock bodies' rules
 * and messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "http/lock_body.h"
#include "util/err.h"
#include "util/jsonx.h"

static int decode(lock_body_kind_t kind, const char *text, lock_body_t *b,
                  char *err, size_t errlen)
{
	json_t *obj = NULL;
	int rc;

	assert_int_equal(
	    jsonx_parse_object(text, strlen(text), 32, &obj, NULL, 0), 0);
	rc = lock_body_decode(kind, obj, b, err, errlen);
	json_decref(obj);
	return rc;
}

static void expect_error(lock_body_kind_t kind, const char *text,
                         const char *want)
{
	lock_body_t b;
	char err[256];

	memset(&b, 0x5a, sizeof b);
	assert_int_equal(decode(kind, text, &b, err, sizeof err), OD_EINVAL);
	assert_string_equal(err, want);
	assert_int_equal((unsigned char)b.owner[0], 0x5a); /* untouched */
}

static void test_accepts(void **state)
{
	lock_body_t b;
	char err[256];
	(void)state;
	assert_int_equal(decode(LOCK_BODY_ACQUIRE,
	                        "{\"owner\":\"w1\",\"ttl_ms\":5000,"
	                        "\"wait_ms\":30000}",
	                        &b, err, sizeof err),
	                 0);
	assert_string_equal(b.owner, "w1");
	assert_int_equal(b.ttl_ms, 5000);
	assert_int_equal(b.wait_ms, 30000);
	assert_int_equal(b.fence, 0);
	assert_int_equal(decode(LOCK_BODY_RELEASE,
	                        "{\"owner\":\"w1\","
	                        "\"fence\":9223372036854775807}",
	                        &b, err, sizeof err),
	                 0);
	assert_int_equal(b.fence, INT64_MAX);
	assert_int_equal(b.ttl_ms, 0);
}

static void test_rejects_in_order(void **state)
{
	(void)state;
	/* Unknown fields first, then owner, then the numbers. */
	expect_error(LOCK_BODY_RELEASE,
	             "{\"owner\":\"a b\",\"ttl_ms\":1,\"fence\":1}",
	             "unknown field \"ttl_ms\"");
	expect_error(LOCK_BODY_RENEW, "{\"owner\":\"a b\",\"fence\":-1}",
	             "owner must be 1..64 characters of [A-Za-z0-9._:-]");
	expect_error(LOCK_BODY_RENEW, "{\"owner\":\"a\",\"fence\":-1}",
	             "fence must be an integer 0..9223372036854775807");
	expect_error(LOCK_BODY_RENEW, "{\"owner\":\"a\",\"fence\":1}",
	             "ttl_ms must be an integer 100..600000");
	expect_error(LOCK_BODY_ACQUIRE,
	             "{\"owner\":\"a\",\"ttl_ms\":100,\"wait_ms\":1.0}",
	             "wait_ms must be an integer 0..30000");
}

static void test_unknown_field_cut_stays_utf8(void **state)
{
	char key[200], text[256];
	(void)state;
	/* 63 ASCII bytes then a two-byte character: %.64s cuts it in half. */
	memset(key, 'k', 63);
	memcpy(key + 63, "\xc3\xa9", 3);
	snprintf(text, sizeof text, "{\"%s\":1}", key);
	expect_error(LOCK_BODY_ACQUIRE, text,
	             "unknown field \"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
	             "kkkkkkkkkkkkkkkkkkkkkkk?\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepts),
	    cmocka_unit_test(test_rejects_in_order),
	    cmocka_unit_test(test_unknown_field_cut_stays_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
