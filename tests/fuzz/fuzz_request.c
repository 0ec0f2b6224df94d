/*
 * fuzz_request: libFuzzer target for the request decoder and validators.
 * Bytes go through jsonx_parse_object (the HTTP body reader), then
 * order_from_json on the object and, when it carries an "orders" array, on
 * each entry as a batch would; every valid order is encoded back with
 * order_to_json and its items text round-tripped. Under ASan/UBSan any
 * crash, leak or undefined behaviour is a finding. Build and run:
 * `tests/fuzz/run.sh request`.
 *
 * fuzz-sources: src/core/order.c src/util/jsonx.c src/util/timefmt.c
 * fuzz-sources: src/util/err.c
 * fuzz-sources: src/util/buf.c
 * fuzz-libs: jansson
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/order.h"
#include "util/err.h"
#include "util/jsonx.h"

static const order_limits_t lim = {.max_items = 100, .max_metadata = 4096};

/* Checks an error message is non-empty printable UTF-8. */
static void check_message(const char *msg)
{
	json_t *s;

	assert(msg[0] != '\0');
	s = json_string(msg);
	assert(s != NULL);
	json_decref(s);
	for (const char *p = msg; *p; p++)
		assert((unsigned char)*p >= 0x20 && *p != 0x7f);
}

static void one_order(const json_t *obj, const char *prefix)
{
	char errbuf[256];
	order_t o, back;
	json_t *j;
	char *text;
	int rc;

	errbuf[0] = '\0';
	rc = order_from_json(obj, &lim, prefix, &o, errbuf, sizeof errbuf);
	if (rc == -ENOMEM)
		return;
	if (rc < 0) {
		assert(rc == OD_EINVAL);
		check_message(errbuf);
		return;
	}
	/* A valid order is canonical and survives encoding. */
	assert(order_ident_valid(o.id, ID_MAX) &&
	       order_ident_valid(o.customer, ID_MAX));
	assert(o.n_items >= 1 && o.n_items <= lim.max_items);
	for (size_t i = 0; i < o.n_items; i++) {
		assert(o.items[i].qty >= 1 && o.items[i].qty <= ORDER_QTY_MAX);
		if (i)
			assert(strcmp(o.items[i - 1].sku, o.items[i].sku) < 0);
	}
	assert(strlen(o.metadata) <= lim.max_metadata);

	j = order_to_json(&o);
	if (j) {
		/* The encoded order validates again to the same content. */
		json_t *sub = json_pack("{s:O, s:O, s:O, s:O}", "id",
		                        json_object_get(j, "id"), "customer",
		                        json_object_get(j, "customer"), "items",
		                        json_object_get(j, "items"), "metadata",
		                        json_object_get(j, "metadata"));
		if (sub) {
			order_t again;
			rc = order_from_json(sub, &lim, "", &again, errbuf,
			                     sizeof errbuf);
			assert(rc == 0 || rc == -ENOMEM);
			if (rc == 0) {
				assert(order_same_content(&o, &again));
				order_clear(&again);
			}
			json_decref(sub);
		}
		text = json_dumps(j, JSON_COMPACT);
		free(text);
		json_decref(j);
	}

	text = order_items_to_text(&o);
	if (text) {
		memset(&back, 0, sizeof back);
		rc = order_items_from_text(text, &back);
		assert(rc == 0 || rc == -ENOMEM);
		if (rc == 0) {
			assert(back.n_items == o.n_items);
			assert(memcmp(back.items, o.items,
			              o.n_items * sizeof *o.items) == 0);
		}
		order_clear(&back);
		free(text);
	}
	order_clear(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char errbuf[256];
	json_t *obj = NULL;
	const json_t *orders;
	int rc;

	errbuf[0] = '\0';
	rc = jsonx_parse_object((const char *)data, size, JSONX_MAX_DEPTH, &obj,
	                        errbuf, sizeof errbuf);
	if (rc < 0) {
		if (rc == OD_EINVAL)
			check_message(errbuf);
		return 0;
	}
	one_order(obj, "");
	orders = json_object_get(obj, "orders");
	if (json_is_array(orders)) {
		size_t n = json_array_size(orders);
		/* The batch limit; beyond it the API answers 400 up front. */
		for (size_t i = 0; i < n && i < 1000; i++) {
			char prefix[32];
			snprintf(prefix, sizeof prefix, "orders[%zu].", i);
			one_order(json_array_get(orders, i), prefix);
		}
	}
	json_decref(obj);
	return 0;
}
