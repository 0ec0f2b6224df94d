/*
 * order: validation, canonical form and JSON encoding of orders and
 * products (see order.h). The canonical form (items sorted by sku, metadata
 * as compact JSON with sorted keys) is what the store keeps and what
 * idempotent replays are compared on, so two submissions that differ only
 * in item order or metadata key order are the same order.
 */
#include "core/order.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/timefmt.h"

/* Longest quoted unknown key in a message, in bytes. */
#define KEY_QUOTE_MAX 64

static const char *const status_names[ORDER_STATUS_COUNT] = {
    [ORDER_PENDING] = "pending",     [ORDER_PROCESSING] = "processing",
    [ORDER_COMPLETED] = "completed", [ORDER_REJECTED] = "rejected",
    [ORDER_FAILED] = "failed",       [ORDER_CANCELLED] = "cancelled",
};

bool order_ident_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
	       c == '-';
}

bool order_ident_valid(const char *s, size_t max)
{
	size_t n = 0;

	if (!s)
		return false;
	for (; s[n]; n++) {
		if (n >= max || !order_ident_char(s[n]))
			return false;
	}
	return n >= 1;
}

const char *order_status_name(order_status_t s)
{
	if ((int)s < 0 || s >= ORDER_STATUS_COUNT)
		return "unknown";
	return status_names[s];
}

int order_status_parse(const char *name, order_status_t *ret_status)
{
	if (!name)
		return OD_EINVAL;
	for (int i = 0; i < ORDER_STATUS_COUNT; i++) {
		if (strcmp(name, status_names[i]) == 0) {
			*ret_status = (order_status_t)i;
			return 0;
		}
	}
	return OD_EINVAL;
}

bool order_status_terminal(order_status_t s)
{
	return s == ORDER_COMPLETED || s == ORDER_REJECTED ||
	       s == ORDER_FAILED || s == ORDER_CANCELLED;
}

static void seterr(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Copies an untrusted object key into out for quoting in a message: at most
 * KEY_QUOTE_MAX bytes, cut on a UTF-8 character boundary, with quotes,
 * backslashes and control characters replaced by '?' so the message reads
 * unambiguously. jansson keys are valid UTF-8 already.
 */
static void quote_key(const char *key, char out[KEY_QUOTE_MAX + 4])
{
	size_t n = 0;

	for (; key[n] && n < KEY_QUOTE_MAX; n++) {
		unsigned char c = (unsigned char)key[n];
		out[n] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
		             ? '?'
		             : (char)c;
	}
	if (key[n]) {
		/*
		 * key[n] is the first byte left out: while it continues a
		 * character, that character started inside the copy; drop it.
		 */
		while (n > 0 && ((unsigned char)key[n] & 0xc0) == 0x80)
			n--;
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

/* "orders[3]." -> "orders[3]", "" -> "order": the name of the whole object. */
static void object_name(const char *prefix, char *out, size_t outlen)
{
	size_t n = strlen(prefix);

	if (n == 0) {
		snprintf(out, outlen, "order");
		return;
	}
	if (prefix[n - 1] == '.')
		n--;
	snprintf(out, outlen, "%.*s", (int)n, prefix);
}

/*
 * Reads the identifier field key of obj into out. name is the field's full
 * name for messages ("items[2].sku").
 */
static int get_ident(const json_t *obj, const char *key, const char *name,
                     char out[ID_MAX + 1], char *errbuf, size_t errlen)
{
	const json_t *v = json_object_get(obj, key);
	const char *s;

	if (!v || json_is_null(v)) {
		seterr(errbuf, errlen, "%s is required", name);
		return OD_EINVAL;
	}
	if (!json_is_string(v)) {
		seterr(errbuf, errlen, "%s must be a string", name);
		return OD_EINVAL;
	}
	s = json_string_value(v);
	/* A string with an embedded NUL must not pass as its prefix. */
	if (json_string_length(v) != strlen(s) ||
	    !order_ident_valid(s, ID_MAX)) {
		seterr(errbuf, errlen,
		       "%s must be 1-%d characters from [A-Za-z0-9._:-]", name,
		       ID_MAX);
		return OD_EINVAL;
	}
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

/* Rejects any key of obj not in allowed (NULL-terminated). */
static int check_keys(const json_t *obj, const char *const *allowed,
                      const char *prefix, char *errbuf, size_t errlen)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++) {
			if (strcmp(key, allowed[i]) == 0) {
				ok = true;
				break;
			}
		}
		if (!ok) {
			char q[KEY_QUOTE_MAX + 4];
			quote_key(key, q);
			seterr(errbuf, errlen, "unknown field \"%s%s\"", prefix,
			       q);
			return OD_EINVAL;
		}
	}
	return 0;
}

typedef struct item_pos {
	order_item_t item;
	size_t index; /* position in the submitted array, for messages */
} item_pos_t;

static int cmp_item_pos(const void *a, const void *b)
{
	const item_pos_t *x = a, *y = b;
	int c = strcmp(x->item.sku, y->item.sku);
	if (c)
		return c;
	return (x->index > y->index) - (x->index < y->index);
}

static int cmp_item(const void *a, const void *b)
{
	const order_item_t *x = a, *y = b;
	return strcmp(x->sku, y->sku);
}

/* Validates one item object at index i into *ret. */
static int item_from_json(const json_t *v, size_t i, const char *prefix,
                          item_pos_t *ret, char *errbuf, size_t errlen)
{
	static const char *const item_keys[] = {"sku", "qty", NULL};
	char name[128];
	const json_t *q;
	json_int_t qty;
	int rc;

	if (!json_is_object(v)) {
		seterr(errbuf, errlen, "%sitems[%zu] must be an object", prefix,
		       i);
		return OD_EINVAL;
	}
	snprintf(name, sizeof name, "%sitems[%zu].", prefix, i);
	rc = check_keys(v, item_keys, name, errbuf, errlen);
	if (rc < 0)
		return rc;
	snprintf(name, sizeof name, "%sitems[%zu].sku", prefix, i);
	rc = get_ident(v, "sku", name, ret->item.sku, errbuf, errlen);
	if (rc < 0)
		return rc;
	q = json_object_get(v, "qty");
	if (!q || json_is_null(q)) {
		seterr(errbuf, errlen, "%sitems[%zu].qty is required", prefix,
		       i);
		return OD_EINVAL;
	}
	if (!json_is_integer(q)) {
		seterr(errbuf, errlen,
		       "%sitems[%zu].qty must be an integer 1..%d", prefix, i,
		       ORDER_QTY_MAX);
		return OD_EINVAL;
	}
	qty = json_integer_value(q);
	if (qty < 1 || qty > ORDER_QTY_MAX) {
		seterr(errbuf, errlen, "%sitems[%zu].qty must be 1..%d", prefix,
		       i, ORDER_QTY_MAX);
		return OD_EINVAL;
	}
	ret->item.qty = (int64_t)qty;
	ret->index = i;
	return 0;
}

/* Validates the items array and stores them sorted in o. */
static int items_from_json(const json_t *arr, const order_limits_t *lim,
                           const char *prefix, order_t *o, char *errbuf,
                           size_t errlen)
{
	item_pos_t *tmp = NULL;
	size_t n;
	int rc;

	if (!arr || json_is_null(arr)) {
		seterr(errbuf, errlen, "%sitems is required", prefix);
		return OD_EINVAL;
	}
	if (!json_is_array(arr)) {
		seterr(errbuf, errlen, "%sitems must be an array", prefix);
		return OD_EINVAL;
	}
	n = json_array_size(arr);
	if (n < 1 || n > lim->max_items) {
		seterr(errbuf, errlen, "%sitems must have 1..%zu entries",
		       prefix, lim->max_items);
		return OD_EINVAL;
	}
	tmp = calloc(n, sizeof *tmp);
	if (!tmp)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		rc = item_from_json(json_array_get(arr, i), i, prefix, &tmp[i],
		                    errbuf, errlen);
		if (rc < 0)
			goto out_tmp;
	}
	/* Sorted by sku, then by position: a duplicate follows its first. */
	qsort(tmp, n, sizeof *tmp, cmp_item_pos);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(tmp[i].item.sku, tmp[i - 1].item.sku) == 0) {
			seterr(errbuf, errlen,
			       "%sitems[%zu].sku \"%s\" duplicates "
			       "%sitems[%zu].sku",
			       prefix, tmp[i].index, tmp[i].item.sku, prefix,
			       tmp[i - 1].index);
			rc = OD_EINVAL;
			goto out_tmp;
		}
	}
	o->items = calloc(n, sizeof *o->items);
	if (!o->items) {
		rc = -ENOMEM;
		goto out_tmp;
	}
	for (size_t i = 0; i < n; i++)
		o->items[i] = tmp[i].item;
	o->n_items = n;
	rc = 0;
out_tmp:
	free(tmp);
	return rc;
}

static int metadata_from_json(const json_t *m, const order_limits_t *lim,
                              const char *prefix, order_t *o, char *errbuf,
                              size_t errlen)
{
	char *text;

	if (!m || json_is_null(m) ||
	    (json_is_object(m) && json_object_size(m) == 0)) {
		o->metadata = strdup("{}");
		return o->metadata ? 0 : -ENOMEM;
	}
	if (!json_is_object(m)) {
		seterr(errbuf, errlen, "%smetadata must be an object", prefix);
		return OD_EINVAL;
	}
	text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return -ENOMEM;
	if (strlen(text) > lim->max_metadata) {
		free(text);
		seterr(errbuf, errlen,
		       "%smetadata must be at most %zu bytes serialized",
		       prefix, lim->max_metadata);
		return OD_EINVAL;
	}
	o->metadata = text;
	return 0;
}

int order_from_json(const json_t *obj, const order_limits_t *lim,
                    const char *prefix, order_t *ret, char *errbuf,
                    size_t errlen)
{
	static const char *const order_keys[] = {"id", "customer", "items",
	                                         "metadata", NULL};
	order_t o = {0};
	char name[128];
	int rc;

	if (!prefix)
		prefix = "";
	if (!json_is_object(obj)) {
		char whole[96];
		object_name(prefix, whole, sizeof whole);
		seterr(errbuf, errlen, "%s must be an object", whole);
		return OD_EINVAL;
	}
	rc = check_keys(obj, order_keys, prefix, errbuf, errlen);
	if (rc < 0)
		return rc;
	snprintf(name, sizeof name, "%sid", prefix);
	rc = get_ident(obj, "id", name, o.id, errbuf, errlen);
	if (rc < 0)
		return rc;
	snprintf(name, sizeof name, "%scustomer", prefix);
	rc = get_ident(obj, "customer", name, o.customer, errbuf, errlen);
	if (rc < 0)
		return rc;
	rc = items_from_json(json_object_get(obj, "items"), lim, prefix, &o,
	                     errbuf, errlen);
	if (rc < 0)
		goto fail;
	rc = metadata_from_json(json_object_get(obj, "metadata"), lim, prefix,
	                        &o, errbuf, errlen);
	if (rc < 0)
		goto fail;
	o.status = ORDER_PENDING;
	*ret = o;
	return 0;
fail:
	order_clear(&o);
	return rc;
}

static json_t *items_to_json(const order_t *o)
{
	json_t *arr = json_array();

	if (!arr)
		return NULL;
	for (size_t i = 0; i < o->n_items; i++) {
		json_t *it = json_pack("{s:s, s:I}", "sku", o->items[i].sku,
		                       "qty", (json_int_t)o->items[i].qty);
		if (!it || json_array_append_new(arr, it) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

json_t *order_to_json(const order_t *o)
{
	char created[TIMEFMT_LEN], updated[TIMEFMT_LEN], finished[TIMEFMT_LEN];
	json_t *items, *meta;

	items = items_to_json(o);
	if (!items)
		return NULL;
	/* The store keeps canonical text; unparsable text is a corrupt row. */
	meta = json_loads(o->metadata ? o->metadata : "{}", 0, NULL);
	if (!meta || !json_is_object(meta)) {
		json_decref(meta);
		json_decref(items);
		return NULL;
	}
	timefmt_rfc3339(o->created_at, created);
	timefmt_rfc3339(o->updated_at, updated);
	if (o->finished_at)
		timefmt_rfc3339(o->finished_at, finished);
	/* "o" steals items and meta even when json_pack fails (jansson 2.11+).
	 */
	return json_pack(
	    "{s:s, s:s, s:o, s:o, s:s, s:i, s:s?, s:s, s:s, s:s?}", "id", o->id,
	    "customer", o->customer, "items", items, "metadata", meta, "status",
	    order_status_name(o->status), "attempts", o->attempts, "reason",
	    o->reason, "created_at", created, "updated_at", updated,
	    "finished_at", o->finished_at ? finished : NULL);
}

/* The encoder's steps: each appends to b unless an earlier one failed
 * (rc != 0), and returns the first error. */
static int put(buf_t *b, int rc, const char *s)
{
	return rc ? rc : buf_append(b, s, strlen(s));
}

/* s as a JSON string, escaped as jansson's compact dump does; the store
 * and the request parser hold only valid UTF-8, which passes as is. */
static int put_str(buf_t *b, int rc, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *run = s;
	rc = put(b, rc, "\"");
	for (; rc == 0 && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		char esc[7] = {'\\', (char)c};
		const char *named = strchr("\bb\ff\nn\rr\tt", c);
		if (c == '"' || c == '\\')
			; /* esc is \" or \\ already */
		else if (named)
			esc[1] = named[1];
		else
			snprintf(esc + 1, sizeof esc - 1, "u00%c%c",
			         hex[c >> 4], hex[c & 15]);
		rc = buf_append(b, run, (size_t)(s - run));
		rc = put(b, rc, esc);
		run = s + 1;
	}
	if (rc == 0)
		rc = buf_append(b, run, (size_t)(s - run));
	return put(b, rc, "\"");
}

/* An RFC 3339 time; with nullable, 0 is null. */
static int put_time(buf_t *b, int rc, int64_t ms, bool nullable)
{
	char t[TIMEFMT_LEN];
	if (nullable && ms == 0)
		return put(b, rc, "null");
	timefmt_rfc3339(ms, t);
	rc = put(b, rc, "\"");
	rc = put(b, rc, t);
	return put(b, rc, "\"");
}

int order_json_append(buf_t *b, const order_t *o)
{
	char num[48];
	const char *meta = o->metadata ? o->metadata : "{}";
	/* The stored text is canonical; only a corrupt row would not be an
	 * object ("{}", the common case, needs no look). */
	if (strcmp(meta, "{}") != 0) {
		json_t *m = json_loads(meta, 0, NULL);
		bool ok = json_is_object(m);
		json_decref(m);
		if (!ok)
			return OD_EINVAL;
	}
	int rc = put(b, 0, "{\"id\":");
	rc = put_str(b, rc, o->id);
	rc = put(b, rc, ",\"customer\":");
	rc = put_str(b, rc, o->customer);
	rc = put(b, rc, ",\"items\":[");
	for (size_t i = 0; i < o->n_items; i++) {
		rc = put(b, rc, i ? ",{\"sku\":" : "{\"sku\":");
		rc = put_str(b, rc, o->items[i].sku);
		snprintf(num, sizeof num, ",\"qty\":%lld}",
		         (long long)o->items[i].qty);
		rc = put(b, rc, num);
	}
	rc = put(b, rc, "],\"metadata\":");
	rc = put(b, rc, meta);
	rc = put(b, rc, ",\"status\":\"");
	rc = put(b, rc, order_status_name(o->status));
	snprintf(num, sizeof num,
	         "\",\"attempts\":%d,\"reason\":", o->attempts);
	rc = put(b, rc, num);
	rc = o->reason ? put_str(b, rc, o->reason) : put(b, rc, "null");
	rc = put(b, rc, ",\"created_at\":");
	rc = put_time(b, rc, o->created_at, false);
	rc = put(b, rc, ",\"updated_at\":");
	rc = put_time(b, rc, o->updated_at, false);
	rc = put(b, rc, ",\"finished_at\":");
	rc = put_time(b, rc, o->finished_at, true);
	return put(b, rc, "}");
}

json_t *order_product_to_json(const product_t *p)
{
	char updated[TIMEFMT_LEN];

	timefmt_rfc3339(p->updated_at, updated);
	return json_pack("{s:s, s:I, s:s}", "sku", p->sku, "stock",
	                 (json_int_t)p->stock, "updated_at", updated);
}

bool order_same_content(const order_t *a, const order_t *b)
{
	const char *ma = a->metadata ? a->metadata : "{}";
	const char *mb = b->metadata ? b->metadata : "{}";

	if (strcmp(a->customer, b->customer) != 0 || a->n_items != b->n_items ||
	    strcmp(ma, mb) != 0)
		return false;
	/* Both are canonical (sorted by sku), so compare pairwise. */
	for (size_t i = 0; i < a->n_items; i++) {
		if (strcmp(a->items[i].sku, b->items[i].sku) != 0 ||
		    a->items[i].qty != b->items[i].qty)
			return false;
	}
	return true;
}

char *order_items_to_text(const order_t *o)
{
	json_t *arr = json_array();
	char *text;

	if (!arr)
		return NULL;
	for (size_t i = 0; i < o->n_items; i++) {
		json_t *it =
		    json_pack("{s:I, s:s}", "qty", (json_int_t)o->items[i].qty,
		              "sku", o->items[i].sku);
		if (!it || json_array_append_new(arr, it) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	text = json_dumps(arr, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(arr);
	return text;
}

int order_items_from_text(const char *text, order_t *o)
{
	json_t *arr;
	order_item_t *items = NULL;
	size_t n;
	int rc;

	arr = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	if (!arr)
		return OD_EINVAL;
	if (!json_is_array(arr)) {
		rc = OD_EINVAL;
		goto out_arr;
	}
	n = json_array_size(arr);
	if (n > 0) {
		items = calloc(n, sizeof *items);
		if (!items) {
			rc = -ENOMEM;
			goto out_arr;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const json_t *it = json_array_get(arr, i);
		const json_t *sku = json_object_get(it, "sku");
		const json_t *qty = json_object_get(it, "qty");
		if (!json_is_object(it) || json_object_size(it) != 2 ||
		    !json_is_string(sku) || !json_is_integer(qty) ||
		    json_string_length(sku) != strlen(json_string_value(sku)) ||
		    !order_ident_valid(json_string_value(sku), ID_MAX) ||
		    json_integer_value(qty) < 1 ||
		    json_integer_value(qty) > ORDER_QTY_MAX) {
			rc = OD_EINVAL;
			goto out_items;
		}
		memcpy(items[i].sku, json_string_value(sku),
		       json_string_length(sku) + 1);
		items[i].qty = (int64_t)json_integer_value(qty);
	}
	/* Keep the struct's invariant even if the text was not canonical. */
	if (n > 1)
		qsort(items, n, sizeof *items, cmp_item);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(items[i].sku, items[i - 1].sku) == 0) {
			rc = OD_EINVAL;
			goto out_items;
		}
	}
	free(o->items);
	o->items = items;
	o->n_items = n;
	items = NULL;
	rc = 0;
out_items:
	free(items);
out_arr:
	json_decref(arr);
	return rc;
}

int order_copy(const order_t *src, order_t *ret)
{
	order_t o = *src;

	o.items = NULL;
	o.metadata = NULL;
	o.reason = NULL;
	if (src->n_items) {
		o.items = malloc(src->n_items * sizeof *o.items);
		if (!o.items)
			goto fail;
		memcpy(o.items, src->items, src->n_items * sizeof *o.items);
	}
	if (src->metadata) {
		o.metadata = strdup(src->metadata);
		if (!o.metadata)
			goto fail;
	}
	if (src->reason) {
		o.reason = strdup(src->reason);
		if (!o.reason)
			goto fail;
	}
	*ret = o;
	return 0;
fail:
	order_clear(&o);
	return -ENOMEM;
}

void order_clear(order_t *o)
{
	if (!o)
		return;
	free(o->items);
	free(o->metadata);
	free(o->reason);
	memset(o, 0, sizeof *o);
}

int order_set_reason(order_t *o, const char *reason)
{
	char *copy = NULL;

	if (reason) {
		copy = strdup(reason);
		if (!copy)
			return -ENOMEM;
	}
	free(o->reason);
	o->reason = copy;
	return 0;
}
