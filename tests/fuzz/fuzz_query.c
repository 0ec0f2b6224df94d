/*
 * fuzz_query: libFuzzer target for the list routes' query-string values
 * (http/query.c) and the status names they take. The input, up to its
 * first NUL, is one decoded query value, as libmicrohttpd hands it over
 * (a %00 ends the C string there). Every decoder must accept only the
 * canonical spellings it documents: an accepted integer is [-]digits and
 * reads back to the same number, an accepted cursor formats back to the
 * same text (up to leading zeros), an accepted status is its own name; and
 * any sequence number formats to a cursor that parses back to it.
 *
 * fuzz-sources: src/http/query.c src/core/order.c src/util/err.c
 * fuzz-sources: src/util/timefmt.c src/util/jsonx.c
 * fuzz-sources: src/util/buf.c
 * fuzz-libs: jansson
 * fuzz-max-len: 256
 */
#include <assert.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/order.h"
#include "http/query.h"

/* The value without the leading zeros of its digits ("-007" -> "-7"),
 * as the canonical decimal text of the number it denotes. */
static void canonical_int(const char *v, char *out, size_t len)
{
	const char *d = v[0] == '-' ? v + 1 : v;
	while (d[0] == '0' && d[1] != '\0')
		d++;
	snprintf(out, len, "%s%s", v[0] == '-' && strcmp(d, "0") ? "-" : "", d);
}

static void check_int(const char *v, int64_t min, int64_t max)
{
	int64_t n = 12345;
	char want[64], got[64];

	if (query_parse_int(v, min, max, &n) != 0) {
		assert(n == 12345); /* untouched on failure */
		return;
	}
	assert(n >= min && n <= max);
	assert(v[0] == '-' || (v[0] >= '0' && v[0] <= '9'));
	for (const char *p = v + 1; *p; p++)
		assert(*p >= '0' && *p <= '9');
	canonical_int(v, want, sizeof want);
	snprintf(got, sizeof got, "%" PRId64, n);
	assert(strcmp(want, got) == 0);
}

static void check_seq_cursor(char kind, char other, const char *v)
{
	int64_t n = -1, m;
	char back[QUERY_CURSOR_LEN];
	const char *hex = v + 1;

	if (query_cursor_seq_parse(kind, v, &n) != 0) {
		assert(n == -1);
		return;
	}
	assert(n >= 0);
	/* One cursor never pages two lists. */
	assert(query_cursor_seq_parse(other, v, &m) != 0);
	while (hex[0] == '0' && hex[1] != '\0')
		hex++;
	query_cursor_seq_format(kind, n, back);
	assert(back[0] == kind && strcmp(back + 1, hex) == 0);
}

static void check_sku_cursor(const char *v)
{
	const char *sku = NULL;
	char back[QUERY_CURSOR_LEN];

	if (query_cursor_sku_parse(v, &sku) != 0)
		return;
	assert(order_ident_valid(sku, ID_MAX));
	query_cursor_sku_format(sku, back);
	assert(strcmp(back, v) == 0);
}

static void check_status(const char *v)
{
	order_status_t s;

	if (order_status_parse(v, &s) != 0)
		return;
	assert(strcmp(order_status_name(s), v) == 0);
}

/* Any non-negative sequence survives the cursor round trip. */
static void check_seq_round_trip(const uint8_t *data, size_t size)
{
	uint64_t u = 0;
	char c[QUERY_CURSOR_LEN];
	int64_t back = -1;

	memcpy(&u, data, size < sizeof u ? size : sizeof u);
	int64_t seq = (int64_t)(u & INT64_MAX);
	query_cursor_seq_format(QUERY_CURSOR_ORDERS, seq, c);
	assert(strlen(c) <= 17);
	assert(query_cursor_seq_parse(QUERY_CURSOR_ORDERS, c, &back) == 0);
	assert(back == seq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *v = malloc(size + 1);

	if (v == NULL)
		return 0;
	memcpy(v, data, size);
	v[size] = '\0';
	check_int(v, INT64_MIN, INT64_MAX);
	check_int(v, 1, 1000);  /* ?limit= */
	check_int(v, 0, 30000); /* ?wait_ms= */
	check_seq_cursor(QUERY_CURSOR_ORDERS, QUERY_CURSOR_NOTIFICATIONS, v);
	check_seq_cursor(QUERY_CURSOR_NOTIFICATIONS, QUERY_CURSOR_ORDERS, v);
	check_sku_cursor(v);
	check_status(v);
	check_seq_round_trip(data, size);
	free(v);
	return 0;
}
