/*
 * query: decoding the query-string values of the list routes: bounded
 * integers (?limit=, ?wait_ms=) and the opaque page cursors (?cursor=).
 * libmicrohttpd splits and percent-decodes the query string; these take
 * the decoded value, which is untrusted text. Pure functions, no
 * allocation: api.c and the list handlers answer 400 on a non-zero return.
 */
#ifndef ORDERD_HTTP_QUERY_H
#define ORDERD_HTTP_QUERY_H

#include <stdint.h>

#include "core/order.h"

/* A cursor's text: a kind letter and 1..16 hex digits, or a kind letter
 * and an identifier; with its NUL. */
#define QUERY_CURSOR_LEN (ID_MAX + 2)

/* The cursor kinds: orders and notifications page by sequence number,
 * products by the last sku. */
#define QUERY_CURSOR_ORDERS 's'
#define QUERY_CURSOR_NOTIFICATIONS 'n'
#define QUERY_CURSOR_PRODUCTS 'p'

/*
 * Reads v as a decimal integer in [min, max]: an optional '-' and digits,
 * nothing else (no sign '+', no blanks, no trailing text). 0 and *ret set,
 * or -1 with *ret untouched.
 */
int query_parse_int(const char *v, int64_t min, int64_t max, int64_t *ret);

/* Formats the cursor after sequence seq (>= 0) of the given kind. */
void query_cursor_seq_format(char kind, int64_t seq,
                             char out[QUERY_CURSOR_LEN]);
/* Reads a sequence cursor of the given kind: 0 and *ret (0..INT64_MAX),
 * or -1 with *ret untouched. */
int query_cursor_seq_parse(char kind, const char *v, int64_t *ret);

/* Formats the products cursor after sku (a valid identifier). */
void query_cursor_sku_format(const char *sku, char out[QUERY_CURSOR_LEN]);
/* Reads a products cursor: 0 and *ret_sku pointing into v, or -1. */
int query_cursor_sku_parse(const char *v, const char **ret_sku);

#endif
