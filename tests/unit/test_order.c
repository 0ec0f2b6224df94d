/*
 * Unit tests for core/order: every validation rule with its message, the
 * canonical form, content comparison, the items text round trip and the
 * JSON encoding.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/order.h"
#include "util/err.h"

static const order_limits_t lim = {.max_items = 100, .max_metadata = 4096};
static char errbuf[256];

/* Parses text (a JSON object) and validates it; returns the rc. */
static int from_text_lim(const char *text, const order_limits_t *l,
                         const char *prefix, order_t *ret)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (!j)
		fail_msg("test JSON does not parse: %s: %s", jerr.text, text);
	errbuf[0] = '\0';
	int rc = order_from_json(j, l, prefix, ret, errbuf, sizeof errbuf);
	json_decref(j);
	return rc;
}

static int from_text(const char *text, order_t *ret)
{
	return from_text_lim(text, &lim, "", ret);
}

static void expect_invalid_lim(const char *text, const order_limits_t *l,
                               const char *prefix, const char *msg)
{
	order_t o;
	memset(&o, 0x5a, sizeof o);
	order_t before = o;
	assert_int_equal(from_text_lim(text, l, prefix, &o), OD_EINVAL);
	assert_memory_equal(&o, &before, sizeof o); /* untouched */
	if (strcmp(errbuf, msg) != 0)
		fail_msg("for %s\n  got:  %s\n  want: %s", text, errbuf, msg);
}

static void expect_invalid(const char *text, const char *msg)
{
	expect_invalid_lim(text, &lim, "", msg);
}

#define ITEMS "\"items\":[{\"sku\":\"A\",\"qty\":1}]"

static void test_valid_minimal(void **state)
{
	(void)state;
	order_t o;
	assert_int_equal(
	    from_text("{\"id\":\"o-1\",\"customer\":\"c\"," ITEMS "}", &o), 0);
	assert_string_equal(o.id, "o-1");
	assert_string_equal(o.customer, "c");
	assert_int_equal(o.n_items, 1);
	assert_string_equal(o.items[0].sku, "A");
	assert_int_equal(o.items[0].qty, 1);
	assert_string_equal(o.metadata, "{}");
	assert_int_equal(o.status, ORDER_PENDING);
	assert_null(o.reason);
	order_clear(&o);
}

static void test_valid_full_canonical(void **state)
{
	(void)state;
	order_t o;
	assert_int_equal(
	    from_text("{\"metadata\":{\"z\":[1,{\"b\":2,\"a\":1}],\"a\":\"x\"},"
	              "\"items\":[{\"qty\":3,\"sku\":\"PEN-7\"},"
	              "{\"sku\":\"BOOK-1\",\"qty\":1000000},"
	              "{\"sku\":\"B\",\"qty\":1}],"
	              "\"customer\":\"cust-42\",\"id\":\"A.b_c:d-9\"}",
	              &o),
	    0);
	assert_int_equal(o.n_items, 3);
	/* strcmp order: uppercase 'B' < "BOOK-1" < "PEN-7" */
	assert_string_equal(o.items[0].sku, "B");
	assert_string_equal(o.items[1].sku, "BOOK-1");
	assert_int_equal(o.items[1].qty, 1000000);
	assert_string_equal(o.items[2].sku, "PEN-7");
	assert_int_equal(o.items[2].qty, 3);
	assert_string_equal(o.metadata,
	                    "{\"a\":\"x\",\"z\":[1,{\"a\":1,\"b\":2}]}");
	order_clear(&o);
}

static void test_metadata_none(void **state)
{
	(void)state;
	const char *forms[] = {
	    "{\"id\":\"a\",\"customer\":\"c\"," ITEMS "}",
	    "{\"id\":\"a\",\"customer\":\"c\"," ITEMS ",\"metadata\":null}",
	    "{\"id\":\"a\",\"customer\":\"c\"," ITEMS ",\"metadata\":{}}",
	};
	for (size_t i = 0; i < 3; i++) {
		order_t o;
		assert_int_equal(from_text(forms[i], &o), 0);
		assert_string_equal(o.metadata, "{}");
		order_clear(&o);
	}
}

static void test_metadata_size(void **state)
{
	(void)state;
	order_limits_t small = {.max_items = 100, .max_metadata = 16};
	order_t o;
	/* {"k":"12345678"} is exactly 16 bytes compact. */
	assert_int_equal(
	    from_text_lim("{\"id\":\"a\",\"customer\":\"c\"," ITEMS
	                  ",\"metadata\":{ \"k\" : \"12345678\" }}",
	                  &small, "", &o),
	    0);
	assert_string_equal(o.metadata, "{\"k\":\"12345678\"}");
	order_clear(&o);
	expect_invalid_lim("{\"id\":\"a\",\"customer\":\"c\"," ITEMS
	                   ",\"metadata\":{\"k\":\"123456789\"}}",
	                   &small, "",
	                   "metadata must be at most 16 bytes serialized");

	/* The API default: 4096 bytes. */
	char *big = malloc(5000);
	char *val = malloc(5000);
	memset(val, 'x', 4096 - 8);
	val[4096 - 8] = '\0';
	snprintf(big, 5000,
	         "{\"id\":\"a\",\"customer\":\"c\"," ITEMS
	         ",\"metadata\":{\"k\":\"%s\"}}",
	         val);
	assert_int_equal(from_text(big, &o), 0);
	assert_int_equal(strlen(o.metadata), 4096);
	order_clear(&o);
	val[4096 - 8] = 'x';
	val[4096 - 7] = '\0';
	snprintf(big, 5000,
	         "{\"id\":\"a\",\"customer\":\"c\"," ITEMS
	         ",\"metadata\":{\"k\":\"%s\"}}",
	         val);
	expect_invalid(big, "metadata must be at most 4096 bytes serialized");
	free(big);
	free(val);
}

static void test_metadata_type(void **state)
{
	(void)state;
	const char *bad[] = {"[]", "\"x\"", "1", "true", "[{}]"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char buf[256];
		snprintf(buf, sizeof buf,
		         "{\"id\":\"a\",\"customer\":\"c\"," ITEMS
		         ",\"metadata\":%s}",
		         bad[i]);
		expect_invalid(buf, "metadata must be an object");
	}
}

static void test_unknown_fields(void **state)
{
	(void)state;
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\"," ITEMS ",\"x\":1}",
	               "unknown field \"x\"");
	expect_invalid(
	    "{\"id\":\"a\",\"customer\":\"c\",\"status\":\"completed\"," ITEMS
	    "}",
	    "unknown field \"status\"");
	/* Case matters. */
	expect_invalid("{\"ID\":\"a\",\"customer\":\"c\"," ITEMS "}",
	               "unknown field \"ID\"");
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\","
	               "\"items\":[{\"sku\":\"A\",\"qty\":1,\"price\":3}]}",
	               "unknown field \"items[0].price\"");
	/* Quotes and control characters in a key do not break the message. */
	expect_invalid("{\"a\\\"b\\n\":1}", "unknown field \"a?b?\"");
	/* Long keys are cut, on a character boundary. */
	char buf[512];
	char key[200];
	memset(key, 'k', 63);
	memcpy(key + 63, "\xc3\xa9tail", 7);
	snprintf(buf, sizeof buf, "{\"%s\":1}", key);
	char want[128];
	snprintf(want, sizeof want, "unknown field \"%.63s...\"", key);
	expect_invalid(buf, want);
	json_t *m = json_string(errbuf); /* still valid UTF-8 */
	assert_non_null(m);
	json_decref(m);
}

static void test_required(void **state)
{
	(void)state;
	expect_invalid("{\"customer\":\"c\"," ITEMS "}", "id is required");
	expect_invalid("{\"id\":null,\"customer\":\"c\"," ITEMS "}",
	               "id is required");
	expect_invalid("{\"id\":\"a\"," ITEMS "}", "customer is required");
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\"}",
	               "items is required");
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\",\"items\":null}",
	               "items is required");
	expect_invalid("{}", "id is required");
}

static void test_identifiers(void **state)
{
	(void)state;
	const char *msg_id = "id must be 1-64 characters from [A-Za-z0-9._:-]";
	expect_invalid("{\"id\":\"\",\"customer\":\"c\"," ITEMS "}", msg_id);
	expect_invalid("{\"id\":\"a b\",\"customer\":\"c\"," ITEMS "}", msg_id);
	expect_invalid("{\"id\":\"a/b\",\"customer\":\"c\"," ITEMS "}", msg_id);
	expect_invalid("{\"id\":\"\xc3\xa9\",\"customer\":\"c\"," ITEMS "}",
	               msg_id);
	expect_invalid("{\"id\":1,\"customer\":\"c\"," ITEMS "}",
	               "id must be a string");
	expect_invalid("{\"id\":[\"a\"],\"customer\":\"c\"," ITEMS "}",
	               "id must be a string");
	expect_invalid("{\"id\":\"a\",\"customer\":\"c*\"," ITEMS "}",
	               "customer must be 1-64 characters from [A-Za-z0-9._:-]");
	expect_invalid("{\"id\":\"a\",\"customer\":true," ITEMS "}",
	               "customer must be a string");

	char id64[65], buf[256];
	memset(id64, 'x', 64);
	id64[64] = '\0';
	order_t o;
	snprintf(buf, sizeof buf,
	         "{\"id\":\"%s\",\"customer\":\"c\"," ITEMS "}", id64);
	assert_int_equal(from_text(buf, &o), 0);
	assert_string_equal(o.id, id64);
	order_clear(&o);
	snprintf(buf, sizeof buf,
	         "{\"id\":\"%sx\",\"customer\":\"c\"," ITEMS "}", id64);
	expect_invalid(buf, msg_id);

	/* An embedded NUL (possible in a json_t built with ALLOW_NUL) must
	 * not pass as its prefix. */
	json_t *j =
	    json_pack("{s:s#, s:s, s:[{s:s, s:i}]}", "id", "ab\0cd", (size_t)5,
	              "customer", "c", "items", "sku", "A", "qty", 1);
	assert_non_null(j);
	assert_int_equal(
	    order_from_json(j, &lim, "", &o, errbuf, sizeof errbuf), OD_EINVAL);
	assert_string_equal(errbuf, msg_id);
	json_decref(j);
}

static void test_ident_valid(void **state)
{
	(void)state;
	assert_true(order_ident_valid("a", 64));
	assert_true(order_ident_valid("AZaz09._:-", 64));
	assert_false(order_ident_valid("", 64));
	assert_false(order_ident_valid(NULL, 64));
	assert_false(order_ident_valid("abc", 2));
	assert_true(order_ident_valid("ab", 2));
	assert_false(order_ident_valid("a+b", 64));
	assert_false(order_ident_valid("a\tb", 64));
	assert_false(order_ident_valid("\xc3\xa9", 64));
}

static void test_items(void **state)
{
	(void)state;
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\",\"items\":{}}",
	               "items must be an array");
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\",\"items\":\"A\"}",
	               "items must be an array");
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\",\"items\":[]}",
	               "items must have 1..100 entries");
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\",\"items\":[1]}",
	               "items[0] must be an object");
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\",\"items\":"
	               "[{\"sku\":\"A\",\"qty\":1},null]}",
	               "items[1] must be an object");
	expect_invalid(
	    "{\"id\":\"a\",\"customer\":\"c\",\"items\":[{\"qty\":1}]}",
	    "items[0].sku is required");
	expect_invalid(
	    "{\"id\":\"a\",\"customer\":\"c\",\"items\":[{\"sku\":\"A\"}]}",
	    "items[0].qty is required");
	expect_invalid(
	    "{\"id\":\"a\",\"customer\":\"c\",\"items\":"
	    "[{\"sku\":\"A B\",\"qty\":1}]}",
	    "items[0].sku must be 1-64 characters from [A-Za-z0-9._:-]");
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\",\"items\":"
	               "[{\"sku\":5,\"qty\":1}]}",
	               "items[0].sku must be a string");
}

static void test_qty(void **state)
{
	(void)state;
	struct {
		const char *qty, *msg;
	} cases[] = {
	    {"0", "items[0].qty must be 1..1000000"},
	    {"-1", "items[0].qty must be 1..1000000"},
	    {"1000001", "items[0].qty must be 1..1000000"},
	    {"9223372036854775807", "items[0].qty must be 1..1000000"},
	    {"-9223372036854775808", "items[0].qty must be 1..1000000"},
	    {"1.0", "items[0].qty must be an integer 1..1000000"},
	    {"1.5", "items[0].qty must be an integer 1..1000000"},
	    {"1e3", "items[0].qty must be an integer 1..1000000"},
	    {"\"1\"", "items[0].qty must be an integer 1..1000000"},
	    {"true", "items[0].qty must be an integer 1..1000000"},
	    {"null", "items[0].qty is required"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char buf[256];
		snprintf(buf, sizeof buf,
		         "{\"id\":\"a\",\"customer\":\"c\",\"items\":"
		         "[{\"sku\":\"A\",\"qty\":%s}]}",
		         cases[i].qty);
		expect_invalid(buf, cases[i].msg);
	}
	/* The message names the right index. */
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\",\"items\":"
	               "[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"B\",\"qty\":0}]}",
	               "items[1].qty must be 1..1000000");
}

static void test_max_items(void **state)
{
	(void)state;
	char *buf = malloc(8192);
	size_t n = 0;
	order_t o;

	for (int count = 100; count <= 101; count++) {
		n = (size_t)snprintf(
		    buf, 8192, "{\"id\":\"a\",\"customer\":\"c\",\"items\":[");
		/* Descending skus, so the sort has work to do. */
		for (int i = count - 1; i >= 0; i--)
			n +=
			    (size_t)snprintf(buf + n, 8192 - n,
			                     "{\"sku\":\"S%03d\",\"qty\":%d}%s",
			                     i, i + 1, i ? "," : "");
		snprintf(buf + n, 8192 - n, "]}");
		if (count == 100) {
			assert_int_equal(from_text(buf, &o), 0);
			assert_int_equal(o.n_items, 100);
			for (size_t i = 0; i < 100; i++) {
				char want[8];
				snprintf(want, sizeof want, "S%03zu", i);
				assert_string_equal(o.items[i].sku, want);
				assert_int_equal(o.items[i].qty,
				                 (int64_t)i + 1);
			}
			order_clear(&o);
		} else {
			expect_invalid(buf, "items must have 1..100 entries");
		}
	}
	free(buf);
	order_limits_t two = {.max_items = 2, .max_metadata = 4096};
	expect_invalid_lim(
	    "{\"id\":\"a\",\"customer\":\"c\",\"items\":"
	    "[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"B\",\"qty\":1},"
	    "{\"sku\":\"C\",\"qty\":1}]}",
	    &two, "", "items must have 1..2 entries");
}

static void test_duplicate_sku(void **state)
{
	(void)state;
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\",\"items\":"
	               "[{\"sku\":\"B\",\"qty\":1},{\"sku\":\"A\",\"qty\":1},"
	               "{\"sku\":\"B\",\"qty\":2}]}",
	               "items[2].sku \"B\" duplicates items[0].sku");
	expect_invalid("{\"id\":\"a\",\"customer\":\"c\",\"items\":"
	               "[{\"sku\":\"Z\",\"qty\":1},{\"sku\":\"Z\",\"qty\":1}]}",
	               "items[1].sku \"Z\" duplicates items[0].sku");
	/* skus are case-sensitive: these are different. */
	order_t o;
	assert_int_equal(
	    from_text("{\"id\":\"a\",\"customer\":\"c\",\"items\":"
	              "[{\"sku\":\"a\",\"qty\":1},{\"sku\":\"A\",\"qty\":1}]}",
	              &o),
	    0);
	assert_string_equal(o.items[0].sku, "A");
	order_clear(&o);
}

static void test_prefix(void **state)
{
	(void)state;
	expect_invalid_lim("{\"customer\":\"c\"," ITEMS "}", &lim, "orders[3].",
	                   "orders[3].id is required");
	expect_invalid_lim(
	    "{\"id\":\"a b\",\"customer\":\"c\"," ITEMS "}", &lim, "orders[3].",
	    "orders[3].id must be 1-64 characters from [A-Za-z0-9._:-]");
	expect_invalid_lim("{\"id\":\"a\",\"customer\":\"c\",\"items\":"
	                   "[{\"sku\":\"A\",\"qty\":0}]}",
	                   &lim, "orders[7].",
	                   "orders[7].items[0].qty must be 1..1000000");
	expect_invalid_lim("{\"id\":\"a\",\"customer\":\"c\"," ITEMS
	                   ",\"q\":1}",
	                   &lim, "orders[0].", "unknown field \"orders[0].q\"");
	expect_invalid_lim(
	    "{\"id\":\"a\",\"customer\":\"c\"," ITEMS ",\"metadata\":1}", &lim,
	    "orders[1].", "orders[1].metadata must be an object");
	expect_invalid_lim("[1]", &lim, "orders[2].",
	                   "orders[2] must be an object");
	expect_invalid_lim("\"x\"", &lim, "", "order must be an object");
	expect_invalid_lim("null", &lim, NULL, "order must be an object");
	expect_invalid_lim("{}", &lim, NULL, "id is required");
}

static void test_errbuf_optional(void **state)
{
	(void)state;
	json_t *j = json_pack("{}");
	order_t o;
	assert_int_equal(order_from_json(j, &lim, "", &o, NULL, 0), OD_EINVAL);
	char tiny[4];
	assert_int_equal(order_from_json(j, &lim, "", &o, tiny, sizeof tiny),
	                 OD_EINVAL);
	assert_string_equal(tiny, "id ");
	json_decref(j);
}

static void test_same_content(void **state)
{
	(void)state;
	order_t a, b, c, d, e, f;
	assert_int_equal(
	    from_text("{\"id\":\"1\",\"customer\":\"c\",\"items\":"
	              "[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"B\",\"qty\":2}],"
	              "\"metadata\":{\"x\":1,\"y\":[true]}}",
	              &a),
	    0);
	/* Different id, items in another order, keys in another order. */
	assert_int_equal(
	    from_text("{\"id\":\"2\",\"customer\":\"c\",\"items\":"
	              "[{\"qty\":2,\"sku\":\"B\"},{\"sku\":\"A\",\"qty\":1}],"
	              "\"metadata\":{\"y\":[true],\"x\":1}}",
	              &b),
	    0);
	assert_true(order_same_content(&a, &b));
	assert_true(order_same_content(&b, &a));
	/* Different metadata. */
	assert_int_equal(
	    from_text("{\"id\":\"1\",\"customer\":\"c\",\"items\":"
	              "[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"B\",\"qty\":2}],"
	              "\"metadata\":{\"x\":2,\"y\":[true]}}",
	              &c),
	    0);
	assert_false(order_same_content(&a, &c));
	/* Different qty. */
	assert_int_equal(
	    from_text("{\"id\":\"1\",\"customer\":\"c\",\"items\":"
	              "[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"B\",\"qty\":3}],"
	              "\"metadata\":{\"x\":1,\"y\":[true]}}",
	              &d),
	    0);
	assert_false(order_same_content(&a, &d));
	/* Different customer; and a subset of the items. */
	assert_int_equal(
	    from_text("{\"id\":\"1\",\"customer\":\"c2\",\"items\":"
	              "[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"B\",\"qty\":2}],"
	              "\"metadata\":{\"x\":1,\"y\":[true]}}",
	              &e),
	    0);
	assert_false(order_same_content(&a, &e));
	assert_int_equal(from_text("{\"id\":\"1\",\"customer\":\"c\",\"items\":"
	                           "[{\"sku\":\"A\",\"qty\":1}],"
	                           "\"metadata\":{\"x\":1,\"y\":[true]}}",
	                           &f),
	                 0);
	assert_false(order_same_content(&a, &f));
	assert_false(order_same_content(&f, &a));
	order_clear(&a);
	order_clear(&b);
	order_clear(&c);
	order_clear(&d);
	order_clear(&e);
	order_clear(&f);

	/* Missing, null and {} metadata are all the same content. */
	assert_int_equal(
	    from_text("{\"id\":\"1\",\"customer\":\"c\"," ITEMS "}", &a), 0);
	assert_int_equal(from_text("{\"id\":\"1\",\"customer\":\"c\"," ITEMS
	                           ",\"metadata\":{}}",
	                           &b),
	                 0);
	assert_true(order_same_content(&a, &b));
	/* A store-built order with NULL metadata equals "{}". */
	free(b.metadata);
	b.metadata = NULL;
	assert_true(order_same_content(&a, &b));
	order_clear(&a);
	order_clear(&b);
}

static void test_items_text(void **state)
{
	(void)state;
	order_t o, p = {0};
	assert_int_equal(from_text("{\"id\":\"1\",\"customer\":\"c\",\"items\":"
	                           "[{\"sku\":\"PEN-7\",\"qty\":10},{\"sku\":"
	                           "\"BOOK-1\",\"qty\":2}]}",
	                           &o),
	                 0);
	char *text = order_items_to_text(&o);
	assert_non_null(text);
	assert_string_equal(text, "[{\"qty\":2,\"sku\":\"BOOK-1\"},"
	                          "{\"qty\":10,\"sku\":\"PEN-7\"}]");
	assert_int_equal(order_items_from_text(text, &p), 0);
	assert_int_equal(p.n_items, 2);
	assert_string_equal(p.items[0].sku, "BOOK-1");
	assert_int_equal(p.items[0].qty, 2);
	assert_string_equal(p.items[1].sku, "PEN-7");
	assert_int_equal(p.items[1].qty, 10);
	/* Round trip again, replacing the items already there. */
	char *text2 = order_items_to_text(&p);
	assert_string_equal(text, text2);
	assert_int_equal(
	    order_items_from_text("[{\"qty\":1,\"sku\":\"Z\"}]", &p), 0);
	assert_int_equal(p.n_items, 1);
	assert_string_equal(p.items[0].sku, "Z");
	/* Non-canonical order is sorted on the way in. */
	assert_int_equal(order_items_from_text("[{\"sku\":\"B\",\"qty\":1},"
	                                       "{\"sku\":\"A\",\"qty\":2}]",
	                                       &p),
	                 0);
	assert_string_equal(p.items[0].sku, "A");
	free(text);
	free(text2);

	/* Corrupt text fails and leaves the items alone. */
	const char *bad[] = {
	    "",
	    "{}",
	    "[1]",
	    "[{\"sku\":\"A\"}]",
	    "[{\"sku\":\"A\",\"qty\":0}]",
	    "[{\"sku\":\"A\",\"qty\":1.0}]",
	    "[{\"sku\":\"A B\",\"qty\":1}]",
	    "[{\"sku\":\"A\",\"qty\":1,\"x\":1}]",
	    "[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"A\",\"qty\":2}]",
	    "[{\"sku\":\"A\",\"qty\":1}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(order_items_from_text(bad[i], &p), OD_EINVAL);
		assert_int_equal(p.n_items, 2);
		assert_string_equal(p.items[0].sku, "A");
	}
	order_clear(&o);
	order_clear(&p);
}

/* order_json_append writes exactly what order_to_json + a compact dump
 * writes, byte for byte, whatever the strings hold. */
static void assert_encodes_alike(const order_t *o)
{
	json_t *j = order_to_json(o);
	assert_non_null(j);
	char *want = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	buf_t b;
	buf_init(&b, SIZE_MAX);
	assert_int_equal(buf_append(&b, "x", 1), 0); /* appends, keeps */
	assert_int_equal(order_json_append(&b, o), 0);
	assert_string_equal(b.data + 1, want);
	free(want);
	buf_free(&b);
}

static void test_json_append(void **state)
{
	(void)state;
	order_t o;
	assert_int_equal(
	    from_text("{\"id\":\"ord-1\",\"customer\":\"c\","
	              "\"items\":[{\"sku\":\"S-1\",\"qty\":7},"
	              "{\"sku\":\"A\",\"qty\":1000000}],"
	              "\"metadata\":{\"k\":[1,{\"n\":null}],\"s\":\"\\u0002"
	              " \\\"\\u00e9\\u2028\\ud83d\\ude00\"}}",
	              &o),
	    0);
	/* Identifiers are checked at the API; the encoder must not care. */
	snprintf(o.customer, sizeof o.customer, "%s",
	         "a\"b\\c/d\x01\b\f\n\r\t\x1f\x7f \xc3\xa9");
	snprintf(o.items[1].sku, sizeof o.items[1].sku, "%s", "S\"\\\x05");
	o.created_at = 0;
	o.updated_at = 1764078308000LL;
	assert_encodes_alike(&o);
	o.status = ORDER_FAILED;
	o.attempts = 12;
	o.finished_at = 1764078309001LL;
	assert_int_equal(order_set_reason(&o, "store: \"x\"\n\\"), 0);
	assert_encodes_alike(&o);
	free(o.metadata);
	o.metadata = NULL; /* no metadata: {} */
	assert_encodes_alike(&o);

	/* A corrupt stored metadata text is refused, not echoed. */
	o.metadata = strdup("{\"a\":");
	assert_non_null(o.metadata);
	buf_t b;
	buf_init(&b, SIZE_MAX);
	assert_int_equal(order_json_append(&b, &o), OD_EINVAL);
	buf_free(&b);
	/* Past the buffer's cap: its error, nothing more. */
	free(o.metadata);
	o.metadata = NULL;
	buf_init(&b, 16);
	assert_int_equal(order_json_append(&b, &o), -EFBIG);
	buf_free(&b);
	order_clear(&o);
}

static void test_to_json(void **state)
{
	(void)state;
	order_t o;
	assert_int_equal(
	    from_text("{\"id\":\"ord-1001\",\"customer\":\"cust-42\","
	              "\"items\":[{\"sku\":\"PEN-7\",\"qty\":10},"
	              "{\"sku\":\"BOOK-1\",\"qty\":2}],"
	              "\"metadata\":{\"channel\":\"web\"}}",
	              &o),
	    0);
	o.created_at = 1764078307123LL; /* 2025-11-25T13:45:07.123Z */
	o.updated_at = 1764078308000LL;
	json_t *j = order_to_json(&o);
	assert_non_null(j);
	char *s = json_dumps(j, JSON_COMPACT);
	assert_string_equal(
	    s, "{\"id\":\"ord-1001\",\"customer\":\"cust-42\","
	       "\"items\":[{\"sku\":\"BOOK-1\",\"qty\":2},{\"sku\":\"PEN-7\","
	       "\"qty\":10}],"
	       "\"metadata\":{\"channel\":\"web\"},\"status\":\"pending\","
	       "\"attempts\":0,\"reason\":null,"
	       "\"created_at\":\"2025-11-25T13:45:07.123Z\","
	       "\"updated_at\":\"2025-11-25T13:45:08.000Z\","
	       "\"finished_at\":null}");
	free(s);
	json_decref(j);

	o.status = ORDER_REJECTED;
	o.attempts = 3;
	assert_int_equal(order_set_reason(&o, "insufficient_stock"), 0);
	o.finished_at = 1764078309001LL;
	j = order_to_json(&o);
	assert_string_equal(json_string_value(json_object_get(j, "status")),
	                    "rejected");
	assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 3);
	assert_string_equal(json_string_value(json_object_get(j, "reason")),
	                    "insufficient_stock");
	assert_string_equal(
	    json_string_value(json_object_get(j, "finished_at")),
	    "2025-11-25T13:45:09.001Z");
	json_decref(j);

	/* NULL metadata (a zeroed order) prints as {}. */
	free(o.metadata);
	o.metadata = NULL;
	j = order_to_json(&o);
	assert_non_null(j);
	assert_int_equal(json_object_size(json_object_get(j, "metadata")), 0);
	json_decref(j);
	/* Corrupt stored metadata is an error, not silently {}. */
	o.metadata = strdup("{not json");
	assert_null(order_to_json(&o));
	order_clear(&o);
}

static void test_metadata_echo(void **state)
{
	(void)state;
	/* Stored and echoed back unchanged (as a JSON value). */
	const char *meta =
	    "{\"n\":{\"deep\":[1,-2,\"x\",null,false,{}]},"
	    "\"u\":\"\xc3\xa9\xe2\x82\xac\",\"big\":9007199254740993}";
	char buf[512];
	snprintf(buf, sizeof buf,
	         "{\"id\":\"a\",\"customer\":\"c\"," ITEMS ",\"metadata\":%s}",
	         meta);
	order_t o;
	assert_int_equal(from_text(buf, &o), 0);
	json_t *j = order_to_json(&o);
	json_t *want = json_loads(meta, 0, NULL);
	assert_true(json_equal(json_object_get(j, "metadata"), want));
	json_decref(want);
	json_decref(j);
	order_clear(&o);
}

static void test_product_to_json(void **state)
{
	(void)state;
	product_t p = {
	    .sku = "BOOK-1", .stock = 120, .updated_at = 1764078307123LL};
	json_t *j = order_product_to_json(&p);
	char *s = json_dumps(j, JSON_COMPACT);
	assert_string_equal(s, "{\"sku\":\"BOOK-1\",\"stock\":120,"
	                       "\"updated_at\":\"2025-11-25T13:45:07.123Z\"}");
	free(s);
	json_decref(j);
}

static void test_status_names(void **state)
{
	(void)state;
	const char *names[] = {"pending",  "processing", "completed",
	                       "rejected", "failed",     "cancelled"};
	for (int i = 0; i < ORDER_STATUS_COUNT; i++) {
		order_status_t s;
		assert_string_equal(order_status_name((order_status_t)i),
		                    names[i]);
		assert_int_equal(order_status_parse(names[i], &s), 0);
		assert_int_equal(s, i);
	}
	order_status_t s = ORDER_FAILED;
	assert_int_equal(order_status_parse("PENDING", &s), OD_EINVAL);
	assert_int_equal(order_status_parse("", &s), OD_EINVAL);
	assert_int_equal(order_status_parse(NULL, &s), OD_EINVAL);
	assert_int_equal(s, ORDER_FAILED);
	assert_string_equal(order_status_name(ORDER_STATUS_COUNT), "unknown");

	assert_false(order_status_terminal(ORDER_PENDING));
	assert_false(order_status_terminal(ORDER_PROCESSING));
	assert_true(order_status_terminal(ORDER_COMPLETED));
	assert_true(order_status_terminal(ORDER_REJECTED));
	assert_true(order_status_terminal(ORDER_FAILED));
	assert_true(order_status_terminal(ORDER_CANCELLED));
}

static void test_copy_clear_reason(void **state)
{
	(void)state;
	order_t o, c;
	assert_int_equal(
	    from_text("{\"id\":\"1\",\"customer\":\"c\",\"items\":"
	              "[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"B\",\"qty\":2}],"
	              "\"metadata\":{\"x\":1}}",
	              &o),
	    0);
	o.attempts = 2;
	o.seq = 77;
	assert_int_equal(order_set_reason(&o, "store unavailable"), 0);
	assert_int_equal(order_copy(&o, &c), 0);
	assert_ptr_not_equal(c.items, o.items);
	assert_ptr_not_equal(c.metadata, o.metadata);
	assert_ptr_not_equal(c.reason, o.reason);
	assert_true(order_same_content(&o, &c));
	assert_string_equal(c.id, "1");
	assert_string_equal(c.reason, "store unavailable");
	assert_int_equal(c.attempts, 2);
	assert_int_equal(c.seq, 77);
	order_clear(&o);
	/* The copy survives the original. */
	assert_string_equal(c.items[1].sku, "B");
	assert_int_equal(order_set_reason(&c, NULL), 0);
	assert_null(c.reason);
	order_clear(&c);
	order_t zero = {0};
	assert_memory_equal(&c, &zero, sizeof c);
	order_clear(&c); /* twice is fine */
	order_clear(NULL);

	/* Copy of a zeroed order. */
	assert_int_equal(order_copy(&zero, &c), 0);
	assert_null(c.items);
	assert_null(c.metadata);
	order_clear(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_minimal),
	    cmocka_unit_test(test_valid_full_canonical),
	    cmocka_unit_test(test_metadata_none),
	    cmocka_unit_test(test_metadata_size),
	    cmocka_unit_test(test_metadata_type),
	    cmocka_unit_test(test_unknown_fields),
	    cmocka_unit_test(test_required),
	    cmocka_unit_test(test_identifiers),
	    cmocka_unit_test(test_ident_valid),
	    cmocka_unit_test(test_items),
	    cmocka_unit_test(test_qty),
	    cmocka_unit_test(test_max_items),
	    cmocka_unit_test(test_duplicate_sku),
	    cmocka_unit_test(test_prefix),
	    cmocka_unit_test(test_errbuf_optional),
	    cmocka_unit_test(test_same_content),
	    cmocka_unit_test(test_items_text),
	    cmocka_unit_test(test_to_json),
	    cmocka_unit_test(test_json_append),
	    cmocka_unit_test(test_metadata_echo),
	    cmocka_unit_test(test_product_to_json),
	    cmocka_unit_test(test_status_names),
	    cmocka_unit_test(test_copy_clear_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
