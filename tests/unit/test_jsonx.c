/* Unit tests for util/jsonx: the strict request-body parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/jsonx.h"

static char errbuf[256];

static int parse_n(const char *buf, size_t len, json_t **ret)
{
	errbuf[0] = '\0';
	return jsonx_parse_object(buf, len, JSONX_MAX_DEPTH, ret, errbuf,
	                          sizeof errbuf);
}

static int parse(const char *s, json_t **ret)
{
	return parse_n(s, strlen(s), ret);
}

/* Expects s to fail with a message starting with want. */
static void expect_fail(const char *buf, size_t len, const char *want)
{
	json_t *j = (json_t *)0x1;
	int rc = parse_n(buf, len, &j);
	assert_int_equal(rc, OD_EINVAL);
	assert_ptr_equal(j, (json_t *)0x1); /* untouched on failure */
	if (strncmp(errbuf, want, strlen(want)) != 0)
		fail_msg("message \"%s\" does not start with \"%s\"", errbuf,
		         want);
}

static void expect_fail_s(const char *s, const char *want)
{
	expect_fail(s, strlen(s), want);
}

/* {"a":[[[...]]]} with depth nested containers in total. */
static char *nested(int depth)
{
	size_t cap = (size_t)depth * 2 + 16;
	char *s = malloc(cap);
	size_t n = 0;
	assert_non_null(s);
	n += (size_t)snprintf(s + n, cap - n, "{\"a\":");
	for (int i = 1; i < depth; i++)
		s[n++] = '[';
	s[n++] = '1';
	for (int i = 1; i < depth; i++)
		s[n++] = ']';
	s[n++] = '}';
	s[n] = '\0';
	return s;
}

static void test_valid_object(void **state)
{
	(void)state;
	json_t *j = NULL;
	assert_int_equal(parse(" {\"id\": \"a\", \"n\": [1, 2.5, null, true],"
	                       " \"s\": \"h\\u00e9 \\\"q\\\" \xc3\xa9\"}\n",
	                       &j),
	                 0);
	assert_true(json_is_object(j));
	assert_string_equal(json_string_value(json_object_get(j, "id")), "a");
	assert_string_equal(json_string_value(json_object_get(j, "s")),
	                    "h\xc3\xa9 \"q\" \xc3\xa9");
	json_decref(j);
}

static void test_depth_limit(void **state)
{
	(void)state;
	json_t *j = NULL;
	char *s = nested(32);
	assert_int_equal(parse(s, &j), 0);
	json_decref(j);
	free(s);

	s = nested(33);
	expect_fail_s(s, "JSON nesting deeper than 32");
	assert_string_equal(errbuf, "JSON nesting deeper than 32");
	free(s);

	/* Very deep input is rejected by the scan, never recursed into. */
	s = nested(100000);
	expect_fail_s(s, "JSON nesting deeper than 32");
	free(s);
}

static void test_depth_ignores_strings(void **state)
{
	(void)state;
	json_t *j = NULL;
	/* Brackets inside strings, and escaped quotes, are not nesting. */
	char buf[512];
	int n = snprintf(buf, sizeof buf, "{\"a\":\"");
	for (int i = 0; i < 40; i++)
		buf[n++] = '[';
	n += snprintf(buf + n, sizeof buf - (size_t)n,
	              "\\\"{{{{\\\\\",\"b\":{}}");
	assert_int_equal(parse(buf, &j), 0);
	assert_true(json_is_object(json_object_get(j, "b")));
	json_decref(j);

	/* Siblings do not add up: depth is the maximum, not the total. */
	char *s = malloc(64 * 40);
	n = snprintf(s, 64 * 40, "{\"a\":[");
	for (int i = 0; i < 40; i++)
		n += snprintf(s + n, 64 * 40 - (size_t)n, "%s[[1]]",
		              i ? "," : "");
	snprintf(s + n, 64 * 40 - (size_t)n, "]}");
	assert_int_equal(parse(s, &j), 0);
	json_decref(j);
	free(s);
}

static void test_custom_depth(void **state)
{
	(void)state;
	json_t *j = NULL;
	assert_int_equal(
	    jsonx_parse_object("{\"a\":{}}", 8, 2, &j, errbuf, sizeof errbuf),
	    0);
	json_decref(j);
	assert_int_equal(jsonx_parse_object("{\"a\":{\"b\":[]}}", 14, 2, &j,
	                                    errbuf, sizeof errbuf),
	                 OD_EINVAL);
	assert_string_equal(errbuf, "JSON nesting deeper than 2");
}

static void test_duplicate_keys(void **state)
{
	(void)state;
	expect_fail_s("{\"a\":1,\"a\":2}",
	              "invalid JSON: duplicate object key");
	/* Nested objects too. */
	expect_fail_s("{\"m\":{\"x\":1,\"x\":1}}",
	              "invalid JSON: duplicate object key");
	assert_non_null(strstr(errbuf, " at line 1 column "));
}

static void test_invalid_utf8(void **state)
{
	(void)state;
	expect_fail_s("{\"a\":\"\xff\"}", "invalid JSON: invalid UTF-8");
	assert_string_equal(
	    errbuf, "invalid JSON: invalid UTF-8 byte 0xff at line 1 column 7");
	/* Overlong encoding of '/', a surrogate, a truncated sequence, a
	 * lone continuation byte, and a code point above U+10FFFF. */
	expect_fail_s("{\"a\":\"\xc0\xaf\"}", "invalid JSON: invalid UTF-8");
	expect_fail_s("{\"a\":\"\xed\xa0\x80\"}",
	              "invalid JSON: invalid UTF-8");
	expect_fail_s("{\"a\":\"\xe2\x82\"}", "invalid JSON: invalid UTF-8");
	expect_fail_s("{\"a\":\"\x80\"}", "invalid JSON: invalid UTF-8");
	expect_fail_s("{\"a\":\"\xf4\x90\x80\x80\"}",
	              "invalid JSON: invalid UTF-8");
	/* Outside strings as well. */
	expect_fail_s("{\"a\":1}\xfe", "invalid JSON: invalid UTF-8");
	/* Valid multi-byte: 2, 3 and 4 bytes. */
	json_t *j = NULL;
	assert_int_equal(
	    parse("{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", &j), 0);
	json_decref(j);
}

static void test_nul(void **state)
{
	(void)state;
	static const char raw[] = "{\"a\":\"x\0y\"}";
	expect_fail(raw, sizeof raw - 1, "invalid JSON: NUL byte");
	assert_string_equal(errbuf,
	                    "invalid JSON: NUL byte at line 1 column 8");
	static const char raw2[] = "{\"a\":1}\0";
	expect_fail(raw2, sizeof raw2 - 1, "invalid JSON: NUL byte");
	expect_fail_s("{\"a\":\"x\\u0000y\"}",
	              "invalid JSON: strings must not contain NUL (\\u0000) at "
	              "line 1 column ");
	expect_fail_s("{\"a\\u0000\":1}",
	              "invalid JSON: strings must not contain NUL (\\u0000) at "
	              "line 1 column ");
	/* Other escapes of control characters are fine. */
	json_t *j = NULL;
	assert_int_equal(parse("{\"a\":\"\\u0001\"}", &j), 0);
	json_decref(j);
}

static void test_not_object(void **state)
{
	(void)state;
	expect_fail_s("[1,2]", "body must be a JSON object");
	assert_string_equal(errbuf, "body must be a JSON object");
	expect_fail_s("\"str\"", "body must be a JSON object");
	expect_fail_s("42", "body must be a JSON object");
	expect_fail_s("null", "body must be a JSON object");
}

static void test_empty(void **state)
{
	(void)state;
	expect_fail("", 0, "invalid JSON: body is empty");
	expect_fail(NULL, 0, "invalid JSON: body is empty");
	expect_fail_s(" \r\n\t", "invalid JSON: body is empty");
}

static void test_syntax_errors(void **state)
{
	(void)state;
	expect_fail_s("{\"a\":1", "invalid JSON: ");
	assert_non_null(strstr(errbuf, " at line 1 column "));
	expect_fail_s("{\"a\":1}}", "invalid JSON: ");
	expect_fail_s("{\"a\":1} {}", "invalid JSON: ");
	expect_fail_s("{a:1}", "invalid JSON: ");
	expect_fail_s("{\"a\":01}", "invalid JSON: ");
	expect_fail_s("{\"a\":\"\x01\"}", "invalid JSON: ");
	expect_fail_s("{\"a\":\"\\q\"}", "invalid JSON: ");
	expect_fail_s("{\"a\":1,}", "invalid JSON: ");
	expect_fail_s("{\"a\":99999999999999999999999}", "invalid JSON: ");
	expect_fail_s("{\n\n  \"a\": ]}", "invalid JSON: ");
	assert_non_null(strstr(errbuf, " at line 3 column "));
	/* Unbalanced closers early do not confuse the depth scan. */
	expect_fail_s("]]]]{\"a\":1}", "invalid JSON: ");
}

/* Every message must be printable UTF-8: it goes into a JSON error body. */
static void test_messages_are_clean(void **state)
{
	(void)state;
	char small[24];
	json_t *j;
	/* jansson quotes the offending token; truncation may cut UTF-8. */
	const char *s =
	    "{\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\":1,"
	    "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\":2}";
	for (size_t len = 1; len <= sizeof small; len++) {
		assert_int_equal(
		    jsonx_parse_object(s, strlen(s), 32, &j, small, len),
		    OD_EINVAL);
		json_t *m = json_string(small);
		assert_non_null(m); /* json_string rejects invalid UTF-8 */
		json_decref(m);
		for (const char *p = small; *p; p++)
			assert_true((unsigned char)*p >= 0x20);
	}
	/* A NULL errbuf is allowed. */
	assert_int_equal(jsonx_parse_object("[", 1, 32, &j, NULL, 0),
	                 OD_EINVAL);
}

static void test_sanitize(void **state)
{
	(void)state;
	char s[] = "ok \xc3\xa9 \x01\x7f \xff \xe2\x82";
	jsonx_sanitize_text(s);
	assert_string_equal(s, "ok \xc3\xa9 ?? ? ??");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_object),
	    cmocka_unit_test(test_depth_limit),
	    cmocka_unit_test(test_depth_ignores_strings),
	    cmocka_unit_test(test_custom_depth),
	    cmocka_unit_test(test_duplicate_keys),
	    cmocka_unit_test(test_invalid_utf8),
	    cmocka_unit_test(test_nul),
	    cmocka_unit_test(test_not_object),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_messages_are_clean),
	    cmocka_unit_test(test_sanitize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
