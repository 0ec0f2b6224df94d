/*
 * order: the order and product value types, their validation against the
 * API's rules, their canonical form (items sorted by sku, metadata as
 * compact JSON with sorted keys) and their JSON encoding. Pure code: no I/O,
 * no clocks, no globals.
 */
#ifndef ORDERD_CORE_ORDER_H
#define ORDERD_CORE_ORDER_H

#include <jansson.h>

#include "util/buf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ID_MAX 64 /* identifiers: 1..ID_MAX chars of [A-Za-z0-9._:-] */

typedef enum order_status {
	ORDER_PENDING = 0,
	ORDER_PROCESSING,
	ORDER_COMPLETED,
	ORDER_REJECTED,
	ORDER_FAILED,
	ORDER_CANCELLED,
	ORDER_STATUS_COUNT
} order_status_t;

typedef struct order_item {
	char sku[ID_MAX + 1];
	int64_t qty;
} order_item_t;

/*
 * An order. The submit-time fields (id, customer, items, metadata) are its
 * content; the rest is set by the store. items and metadata and reason are
 * owned by the struct and freed by order_clear().
 */
typedef struct order {
	char id[ID_MAX + 1];
	char customer[ID_MAX + 1];
	order_item_t *items; /* sorted by sku, each sku once */
	size_t n_items;
	char *metadata; /* canonical JSON object text; "{}" when none */
	order_status_t status;
	int attempts;
	char *reason;       /* NULL, or the rejection reason / last error */
	int64_t created_at; /* ms since the Unix epoch, store clock */
	int64_t updated_at;
	int64_t finished_at; /* 0 until the order reaches a terminal status */
	int64_t seq; /* store insertion sequence: list order and cursor */
} order_t;

typedef struct product {
	char sku[ID_MAX + 1];
	int64_t stock;
	int64_t updated_at;
} product_t;

typedef struct order_limits {
	size_t max_items;    /* API: 100 */
	size_t max_metadata; /* serialized bytes, API: 4096 */
} order_limits_t;

#define ORDER_QTY_MAX 1000000
#define PRODUCT_STOCK_MAX 1000000000LL

/* The one identifier rule, for order ids, customers, skus, lock names
 * and owners, replica ids and request ids: 1..max chars of
 * [A-Za-z0-9._:-]. order_ident_char is its per-character half. */
bool order_ident_valid(const char *s, size_t max);
bool order_ident_char(char c);

const char *order_status_name(order_status_t s);
/* Parses a status name; returns 0 or OD_EINVAL. */
int order_status_parse(const char *name, order_status_t *ret_status);
bool order_status_terminal(order_status_t s);

/*
 * Validates a submitted order object and fills *ret in canonical form.
 * Unknown fields, wrong types, bad identifiers, out-of-range quantities,
 * duplicate skus and oversize metadata fail with OD_EINVAL and a message in
 * errbuf such as "items[0].qty must be 1..1000000". prefix (may be "")
 * is prepended to field names in messages, e.g. "orders[3].".
 * On success the caller owns *ret and frees it with order_clear().
 */
int order_from_json(const json_t *obj, const order_limits_t *lim,
                    const char *prefix, order_t *ret, char *errbuf,
                    size_t errlen);

/* The order as the API returns it. New reference, caller decrefs. */
json_t *order_to_json(const order_t *o);
/*
 * The same object as order_to_json, encoded straight into b as compact
 * JSON text (the same keys in the same order, strings escaped as jansson's
 * compact dump escapes them), without building it: the answer to a batch of
 * submits is mostly this (bench/README.md). 0, OD_EINVAL for a stored
 * metadata text that is not a JSON object (a corrupt row), or buf's errors;
 * on error b may hold part of the text.
 */
int order_json_append(buf_t *b, const order_t *o);
json_t *order_product_to_json(const product_t *p);

/* True when a and b have the same customer, items and metadata. */
bool order_same_content(const order_t *a, const order_t *b);

/* Canonical items text: [{"qty":2,"sku":"A"},...] sorted by sku.
 * Returns malloc'd text the caller frees, or NULL on allocation failure. */
char *order_items_to_text(const order_t *o);
/* Parses canonical items text into o->items (replacing them). 0 or error. */
int order_items_from_text(const char *text, order_t *o);

/* Deep copy; *ret must be uninitialised or cleared. 0 or -ENOMEM. */
int order_copy(const order_t *src, order_t *ret);
/* Frees the owned fields and zeroes *o. Accepts a zeroed order. */
void order_clear(order_t *o);
/* Sets o->reason to a copy of reason (NULL clears). 0 or -ENOMEM. */
int order_set_reason(order_t *o, const char *reason);

#endif
