/*
 * query: the list routes' query-string values (see query.h). Cursors are
 * opaque to clients but must still be read strictly: one letter naming
 * the list, then the position in canonical form (lowercase hex without
 * leading zeros is what we write; any 1..16 hex digits are read).
 */
#include "http/query.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int query_parse_int(const char *v, int64_t min, int64_t max, int64_t *ret)
{
	char *end = NULL;
	long long n;

	if (v[0] != '-' && (v[0] < '0' || v[0] > '9'))
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < min || n > max)
		return -1;
	*ret = n;
	return 0;
}

void query_cursor_seq_format(char kind, int64_t seq, char out[QUERY_CURSOR_LEN])
{
	snprintf(out, QUERY_CURSOR_LEN, "%c%" PRIx64, kind, (uint64_t)seq);
}

int query_cursor_seq_parse(char kind, const char *v, int64_t *ret)
{
	char *end = NULL;
	unsigned long long n;

	if (v[0] != kind || v[1] == '\0' || strlen(v) > 17)
		return -1;
	for (const char *p = v + 1; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return -1;
	errno = 0;
	n = strtoull(v + 1, &end, 16);
	if (errno != 0 || *end != '\0' || n > INT64_MAX)
		return -1;
	*ret = (int64_t)n;
	return 0;
}

void query_cursor_sku_format(const char *sku, char out[QUERY_CURSOR_LEN])
{
	snprintf(out, QUERY_CURSOR_LEN, "%c%s", QUERY_CURSOR_PRODUCTS, sku);
}

int query_cursor_sku_parse(const char *v, const char **ret_sku)
{
	if (v[0] != QUERY_CURSOR_PRODUCTS || !order_ident_valid(v + 1, ID_MAX))
		return -1;
	*ret_sku = v + 1;
	return 0;
}
