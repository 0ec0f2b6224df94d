/*
 * api_orders: the order and product routes. Submissions (single and batch)
 * go through the batcher: the handler validates, suspends the connection
 * and hands the orders over; the batcher's committer thread calls back after
 * the group commit, the callback builds the answer and resumes the
 * connection. GET with ?wait_ms registers a waiter (waiters.c) that polls
 * the store, because another replica may be the one processing the order.
 */
#include "http/api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/query.h"
#include "obs/feed.h"
#include "obs/log.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/failpoint.h"

#define METADATA_MAX 4096
#define WAIT_MS_MAX 30000
#define LIST_LIMIT_MAX 1000
#define LIST_LIMIT_DEFAULT 100

static order_limits_t limits(const http_req_t *r)
{
	order_limits_t lim = {
	    .max_items = (size_t)r->srv->opt.max_items,
	    .max_metadata = METADATA_MAX,
	};
	return lim;
}

static void count_created(http_server_t *s)
{
	metrics_inc(s->m_submitted);
	alerts_window_add(s->submitted, 1);
}

/* Resumes r and drops the batcher's reference: r may be freed as soon as
 * this returns; s may not, until the in-flight count drops. */
static void finish_async(http_req_t *r)
{
	http_server_t *s = r->srv;

	/* The timer's reference is ours to drop when it never fired. */
	if (s->overdue != NULL && overdue_remove(s->overdue, &r->overdue))
		http_server_req_put(r);
	http_server_resume(r);
	http_server_req_put(r);
	http_server_inflight_end(s);
}

static void submit_done(void *arg, int err, store_submit_result_t *res,
                        size_t n)
{
	http_req_t *r = arg;

	if (err != 0) {
		api_store_error(r, err);
	} else if (n == 1 && res[0].outcome == SUBMIT_CONFLICT) {
		api_error(r, 409, "conflict",
		          "order \"%s\" exists with different content",
		          r->orders[0].id);
	} else if (n == 1) {
		unsigned status = res[0].outcome == SUBMIT_CREATED ? 201 : 200;
		api_order(r, status, &res[0].order);
		if (status == 201) {
			count_created(r->srv);
			snprintf(r->resp.location, sizeof(r->resp.location),
			         "/v1/orders/%s", res[0].order.id);
		}
	} else {
		api_error(r, 500, "internal", "unexpected batch result");
	}
	for (size_t i = 0; err == 0 && i < n; i++)
		order_clear(&res[i].order);
	api_req_release(r);
	finish_async(r);
}

static json_t *slot_error(unsigned status, const char *code, const char *msg)
{
	return json_pack("{s:i,s:o}", "status", (json_int_t)status, "error",
	                 api_error_obj(code, msg));
}

/* Appends slot's compact JSON text to b; steals the reference. */
static int slot_text(buf_t *b, json_t *slot)
{
	char *text = slot ? json_dumps(slot, JSON_COMPACT) : NULL;
	json_decref(slot);
	if (!text)
		return -ENOMEM;
	int rc = buf_append(b, text, strlen(text));
	free(text);
	return rc;
}

/*
 * The result of a stored order, {"status":201|200,"order":{...}}, appended
 * to b. If the order cannot be encoded (a corrupt stored row), the item says
 * 500 internal instead; the order is stored all the same, so a retry of
 * that entry replays it (200).
 */
static int stored_slot(http_req_t *r, buf_t *b,
                       const store_submit_result_t *res)
{
	char head[40];
	size_t mark = b->len;
	snprintf(head, sizeof head,
	         "{\"status\":%d,\"order\":", (int)res->outcome);
	int rc = failpoint_hit("fail_batch_encode")
	             ? OD_EINVAL
	             : buf_append(b, head, strlen(head));
	if (rc == 0)
		rc = order_json_append(b, &res->order);
	if (rc == 0)
		return buf_append(b, "}", 1);
	if (rc != OD_EINVAL)
		return rc;
	b->len = mark;
	b->data[mark] = '\0';
	log_error("batch answer: cannot encode stored order", "request_id",
	          r->rid, "order_id", res->order.id, NULL);
	return slot_text(b, slot_error(500, "internal",
	                               "the order was stored but its answer "
	                               "could not be encoded; retry it to "
	                               "read it back"));
}

/* The answer to a batch: results[] in input order, the stored orders
 * encoded straight into the text (order_json_append), the other slots
 * (validation errors, conflicts) dumped from r->results. */
static int batch_answer(http_req_t *r, buf_t *b, store_submit_result_t *res,
                        size_t n)
{
	size_t k = 0, slots = json_array_size(r->results);
	int rc = buf_append(b, "{\"results\":[", 12);
	for (size_t i = 0; rc == 0 && i < slots; i++) {
		if (i > 0)
			rc = buf_append(b, ",", 1);
		if (rc == 0 && k < n && k < r->n_orders && r->slots[k] == i) {
			if (res[k].outcome == SUBMIT_CONFLICT) {
				char msg[160];
				snprintf(msg, sizeof(msg),
				         "order \"%s\" exists with different "
				         "content",
				         r->orders[k].id);
				rc = slot_text(
				    b, slot_error(409, "conflict", msg));
			} else {
				rc = stored_slot(r, b, &res[k]);
				if (rc == 0 && res[k].outcome == SUBMIT_CREATED)
					count_created(r->srv);
			}
			k++;
		} else if (rc == 0) {
			rc = slot_text(
			    b, json_incref(json_array_get(r->results, i)));
		}
	}
	return rc == 0 ? buf_append(b, "]}", 2) : rc;
}

static void batch_done(void *arg, int err, store_submit_result_t *res, size_t n)
{
	http_req_t *r = arg;

	if (err != 0) {
		api_store_error(r, err);
	} else {
		buf_t b;
		buf_init(&b, SIZE_MAX);
		if (batch_answer(r, &b, res, n) == 0) {
			api_json_buf(r, 200, &b);
		} else {
			buf_free(&b);
			api_error(
			    r, 500, "internal",
			    "the batch answer could not be built; the "
			    "orders may be stored, retry to read them back");
		}
	}
	for (size_t i = 0; err == 0 && i < n; i++)
		order_clear(&res[i].order);
	api_req_release(r);
	finish_async(r);
}

/*
 * The store has not answered r's submission within the deadline (it may be
 * stuck in a batch before r's, or in r's own): answer 503 now. The batch
 * may still commit; its answer is then dropped, and a retry with the same
 * id replays the stored order (200), so the client loses nothing.
 */
static void submit_overdue(overdue_entry_t *e)
{
	http_req_t *r =
	    (http_req_t *)((char *)e - offsetof(http_req_t, overdue));
	char msg[192];

	snprintf(msg, sizeof(msg),
	         "the store did not answer within %lld ms; the order may "
	         "have been stored: retry with the same id",
	         (long long)r->srv->opt.submit_deadline_ms);
	if (http_server_abandon(r, msg))
		metrics_inc(r->srv->m_submit_late);
	http_server_req_put(r);
}

/* Suspends r and hands r->orders to the batcher. */
static void submit_start(http_req_t *r, batcher_done_fn done)
{
	http_server_t *s = r->srv;
	int rc;

	r->order_ptrs = calloc(r->n_orders, sizeof(*r->order_ptrs));
	if (r->order_ptrs == NULL) {
		api_error(r, 500, "internal", "out of memory");
		return;
	}
	for (size_t i = 0; i < r->n_orders; i++)
		r->order_ptrs[i] = &r->orders[i];
	/* Suspend first: the callback may resume before submit returns. */
	if (!http_server_inflight_begin(s)) {
		api_unavailable(r, "server is shutting down");
		return;
	}
	http_server_suspend(r);
	http_server_req_hold(r); /* the batcher's, dropped in finish_async */
	if (s->overdue != NULL) {
		http_server_req_hold(r); /* the timer's */
		r->overdue.fire = submit_overdue;
		overdue_add(s->overdue, &r->overdue);
	}
	rc = batcher_submit(s->deps.batcher, r->order_ptrs, r->n_orders, done,
	                    r);
	if (rc != 0) {
		api_store_error(r, rc);
		api_req_release(r);
		finish_async(r);
	}
}

void api_orders_submit(http_req_t *r)
{
	json_t *body = NULL;
	order_limits_t lim = limits(r);
	char msg[256];
	int rc;

	if (api_refuse_draining(r) || api_body(r, &body) != 0)
		return;
	r->orders = calloc(1, sizeof(*r->orders));
	if (r->orders == NULL) {
		json_decref(body);
		api_error(r, 500, "internal", "out of memory");
		return;
	}
	msg[0] = '\0';
	rc = order_from_json(body, &lim, "", &r->orders[0], msg, sizeof(msg));
	json_decref(body);
	if (rc != 0) {
		api_error(r, 400, "invalid_request", "%s",
		          msg[0] ? msg : "invalid order");
		return;
	}
	r->n_orders = 1;
	submit_start(r, submit_done);
}

void api_orders_batch(http_req_t *r)
{
	static const char *const fields[] = {"orders", NULL};
	json_t *body = NULL, *list;
	order_limits_t lim = limits(r);
	size_t n, max = (size_t)r->srv->opt.max_batch;

	if (api_refuse_draining(r) || api_body(r, &body) != 0)
		return;
	if (api_only_fields(r, body, fields) != 0)
		goto out;
	list = json_object_get(body, "orders");
	if (!json_is_array(list)) {
		api_error(r, 400, "invalid_request", "orders must be an array");
		goto out;
	}
	n = json_array_size(list);
	if (n > max) {
		api_error(r, 400, "invalid_request",
		          "orders must have at most %zu entries", max);
		goto out;
	}
	r->results = json_array();
	r->orders = calloc(n ? n : 1, sizeof(*r->orders));
	r->slots = calloc(n ? n : 1, sizeof(*r->slots));
	if (r->results == NULL || r->orders == NULL || r->slots == NULL) {
		api_error(r, 500, "internal", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(list, i);
		char prefix[32], msg[256];
		json_t *slot = json_null();
		snprintf(prefix, sizeof(prefix), "orders[%zu].", i);
		msg[0] = '\0';
		if (!json_is_object(e)) {
			snprintf(msg, sizeof(msg),
			         "orders[%zu] must be an object", i);
			slot = slot_error(400, "invalid_request", msg);
		} else if (order_from_json(e, &lim, prefix,
		                           &r->orders[r->n_orders], msg,
		                           sizeof(msg)) != 0) {
			slot = slot_error(400, "invalid_request",
			                  msg[0] ? msg : "invalid order");
		} else {
			r->slots[r->n_orders++] = i;
		}
		json_array_append_new(r->results, slot);
	}
	if (r->n_orders == 0) {
		api_json(r, 200, json_pack("{s:O}", "results", r->results));
		api_req_release(r);
		goto out;
	}
	submit_start(r, batch_done);
out:
	json_decref(body);
}

/* ---- reads ---- */

static bool api_orders_wait_poll(http_req_t *r, bool deadline)
{
	order_t o = {0};
	int rc = store_order_get(r->srv->deps.store, r->param, &o);

	if (rc == OD_ESTORE && !deadline)
		return false; /* transient: try again on the next tick */
	if (rc != 0) {
		api_store_error(r, rc);
		return true;
	}
	if (!deadline && !order_status_terminal(o.status)) {
		order_clear(&o);
		return false;
	}
	api_order(r, 200, &o);
	order_clear(&o);
	return true;
}

void api_orders_get(http_req_t *r)
{
	order_t o = {0};
	int64_t wait_ms = 0;
	int rc;

	if (api_param(r, "order id") != 0 ||
	    api_query_int(r, "wait_ms", 0, WAIT_MS_MAX, &wait_ms) != 0)
		return;
	rc = store_order_get(r->srv->deps.store, r->param, &o);
	if (rc != 0) {
		api_store_error(r, rc);
		return;
	}
	if (wait_ms == 0 || order_status_terminal(o.status)) {
		api_order(r, 200, &o);
		order_clear(&o);
		return;
	}
	order_clear(&o);
	r->deadline_mono_ms = clock_mono_ms() + wait_ms;
	http_server_suspend(r);
	rc = waiters_add(r->srv->waiters, r, api_orders_wait_poll, true);
	if (rc != 0) {
		api_unavailable(r, rc == OD_EBUSY ? "too many waiting requests"
		                                  : "server is shutting down");
		http_server_resume(r);
	}
}

void api_orders_list(http_req_t *r)
{
	const char *st = api_query(r, "status"), *cur = api_query(r, "cursor");
	order_status_t status = 0;
	int64_t limit = LIST_LIMIT_DEFAULT, after = 0;
	order_t *orders = NULL;
	size_t n = 0;
	bool more = false;
	json_t *arr, *next = json_null();
	int rc;

	if (st != NULL && order_status_parse(st, &status) != 0) {
		api_error(r, 400, "invalid_request",
		          "status must be one of pending, processing, "
		          "completed, rejected, failed, cancelled");
		return;
	}
	if (api_query_int(r, "limit", 1, LIST_LIMIT_MAX, &limit) != 0)
		return;
	if (cur != NULL &&
	    query_cursor_seq_parse(QUERY_CURSOR_ORDERS, cur, &after) != 0) {
		api_error(r, 400, "invalid_request", "cursor is not valid");
		return;
	}
	rc = store_order_list(r->srv->deps.store, st ? (int)status : -1, after,
	                      (size_t)limit, &orders, &n, &more);
	if (rc != 0) {
		api_store_error(r, rc);
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, order_to_json(&orders[i]));
	if (more && n > 0) {
		char c[QUERY_CURSOR_LEN];
		query_cursor_seq_format(QUERY_CURSOR_ORDERS, orders[n - 1].seq,
		                        c);
		next = json_string(c);
	}
	store_orders_free(orders, n);
	api_json(r, 200,
	         json_pack("{s:o,s:o}", "orders", arr, "next_cursor", next));
}

static void transition(http_req_t *r, bool requeue)
{
	order_t o = {0};
	int rc;

	/* requeue and cancel take no body; one that is sent must be {}. */
	if (api_param(r, "order id") != 0 || api_empty_body(r) != 0)
		return;
	rc = requeue ? store_order_requeue(r->srv->deps.store, r->param, &o)
	             : store_order_cancel(r->srv->deps.store, r->param, &o);
	if (rc == OD_ESTATE) {
		/* A pending order that refuses cancel holds its stock awaiting
		 * a confirm retry: its confirmation may have gone through. */
		if (!requeue &&
		    store_order_get(r->srv->deps.store, r->param, &o) == 0 &&
		    o.status == ORDER_PENDING)
			api_error(r, 409, "conflict",
			          "order \"%s\" holds its stock awaiting a "
			          "confirm retry and cannot be cancelled",
			          r->param);
		else
			api_error(r, 409, "conflict", "order \"%s\" is not %s",
			          r->param, requeue ? "failed" : "pending");
		order_clear(&o);
		return;
	}
	if (rc != 0) {
		api_store_error(r, rc);
		return;
	}
	/* A requeued order is due now: wake a worker rather than wait for
	 * its next poll. */
	if (requeue && r->srv->deps.workers != NULL)
		workers_kick(r->srv->deps.workers);
	feed_order(o.id, order_status_name(o.status),
	           requeue ? "requeue" : "cancel", -1, NULL, NULL);
	api_order(r, 200, &o);
	order_clear(&o);
}

void api_orders_requeue(http_req_t *r)
{
	if (!api_refuse_draining(r))
		transition(r, true);
}

void api_orders_cancel(http_req_t *r)
{
	transition(r, false);
}

/* ---- products ---- */

void api_products_put(http_req_t *r)
{
	static const char *const fields[] = {"stock", NULL};
	json_t *body = NULL;
	product_t p;
	int64_t stock = 0;
	int rc;

	if (api_refuse_draining(r) || api_param(r, "sku") != 0 ||
	    api_body(r, &body) != 0)
		return;
	if (api_only_fields(r, body, fields) != 0 ||
	    api_field_int(r, body, "stock", 0, PRODUCT_STOCK_MAX, false,
	                  &stock) != 0)
		goto out;
	rc = store_product_set(r->srv->deps.store, r->param, stock, &p);
	if (rc != 0)
		api_store_error(r, rc);
	else
		api_json(r, 200, order_product_to_json(&p));
out:
	json_decref(body);
}

void api_products_get(http_req_t *r)
{
	product_t p;
	int rc;

	if (api_param(r, "sku") != 0)
		return;
	rc = store_product_get(r->srv->deps.store, r->param, &p);
	if (rc != 0)
		api_store_error(r, rc);
	else
		api_json(r, 200, order_product_to_json(&p));
}

void api_products_list(http_req_t *r)
{
	const char *cur = api_query(r, "cursor"), *after = "";
	int64_t limit = LIST_LIMIT_DEFAULT;
	product_t *ps = NULL;
	size_t n = 0;
	bool more = false;
	json_t *arr, *next = json_null();
	int rc;

	if (api_query_int(r, "limit", 1, LIST_LIMIT_MAX, &limit) != 0)
		return;
	/* Cursor: "p" + the last sku seen (identifiers are URL-safe). */
	if (cur != NULL && query_cursor_sku_parse(cur, &after) != 0) {
		api_error(r, 400, "invalid_request", "cursor is not valid");
		return;
	}
	rc = store_product_list(r->srv->deps.store, after, (size_t)limit, &ps,
	                        &n, &more);
	if (rc != 0) {
		api_store_error(r, rc);
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, order_product_to_json(&ps[i]));
	if (more && n > 0) {
		char c[QUERY_CURSOR_LEN];
		query_cursor_sku_format(ps[n - 1].sku, c);
		next = json_string(c);
	}
	free(ps);
	api_json(r, 200,
	         json_pack("{s:o,s:o}", "products", arr, "next_cursor", next));
}
