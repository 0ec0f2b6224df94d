/*
 * sqlite_order: orders in the SQLite backend: submit (one durable
 * transaction per group-committed batch), order reads (get, list, the
 * terminal check, the fence read), the client transitions requeue and
 * cancel, and stats. Writes run on the writer connection, reads on a
 * borrowed reader; each statement's SQL is given where it runs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/state.h"
#include "store/sqlite_int.h"
#include "util/err.h"

/* Reads order id on connection c: 0, OD_ENOTFOUND or an error. */
static int order_by_id(sqb_conn_t *c, const char *id, order_t *ret)
{
	const sqb_param_t p[] = {SQB_TEXT(id)};
	sqlite3_stmt *st;
	int rc = sqb_row(c, SQB_ORDER_BY_ID,
	                 "SELECT " SQB_ORDER_COLS " FROM orders WHERE id = ?1",
	                 p, SQB_NPARAMS(p), &st);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return OD_ENOTFOUND;
	rc = sqb_row_order(st, ret);
	sqlite3_reset(st);
	return rc;
}

/* ---- submissions ---- */

static int submit_one(sqb_conn_t *c, int64_t now, const order_t *o,
                      store_submit_result_t *r)
{
	char *items = order_items_to_text(o);
	if (!items)
		return -ENOMEM;
	const sqb_param_t p[] = {
	    SQB_TEXT(o->id), SQB_TEXT(o->customer), SQB_TEXT(items),
	    SQB_TEXT(o->metadata ? o->metadata : "{}"), SQB_INT(now)};
	sqlite3_stmt *st;
	int64_t seq = 0;
	int rc = sqb_row(c, SQB_ORDER_INSERT,
	                 "INSERT INTO orders (id, customer, items, metadata,"
	                 " status, attempts, created_at, updated_at,"
	                 " finished_at, next_at, lease_until, fence)"
	                 " VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, 0,"
	                 " ?5, 0, 0)"
	                 " ON CONFLICT (id) DO NOTHING RETURNING seq",
	                 p, SQB_NPARAMS(p), &st);
	if (rc == 1) {
		seq = sqlite3_column_int64(st, 0);
		/* RETURNING rows are produced by the first step; finish it so
		 * the statement is complete before the next one runs. */
		if (sqb_step(st) < 0)
			rc = OD_ESTORE;
		sqlite3_reset(st);
	}
	free(items);
	if (rc < 0)
		return rc;

	order_t stored = {0};
	if (rc == 1) {
		rc = order_copy(o, &stored);
		if (rc < 0)
			return rc;
		if (!stored.metadata && !(stored.metadata = strdup("{}"))) {
			order_clear(&stored);
			return -ENOMEM;
		}
		order_set_reason(&stored, NULL);
		stored.status = ORDER_PENDING;
		stored.attempts = 0;
		stored.created_at = now;
		stored.updated_at = now;
		stored.finished_at = 0;
		stored.seq = seq;
		r->outcome = SUBMIT_CREATED;
		r->order = stored;
		return 0;
	}
	rc = order_by_id(c, o->id, &stored);
	if (rc < 0)
		return rc == OD_ENOTFOUND ? OD_EINTERNAL : rc;
	if (order_same_content(o, &stored)) {
		r->outcome = SUBMIT_REPLAYED;
		r->order = stored;
	} else {
		order_clear(&stored);
		r->outcome = SUBMIT_CONFLICT;
		memset(&r->order, 0, sizeof r->order);
	}
	return 0;
}

int sqb_submit(void *b, const order_t *const *orders, size_t n,
               store_submit_result_t *results)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	size_t done = 0;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	for (; done < n; done++) {
		rc = submit_one(c, now, orders[done], &results[done]);
		if (rc < 0)
			break;
	}
	if (rc < 0)
		sqb_write_rollback(s);
	else
		rc = sqb_write_commit(s);
	if (rc < 0) {
		for (size_t i = 0; i < done; i++)
			order_clear(&results[i].order);
	}
	return rc;
}

/* ---- order reads and client transitions ---- */

int sqb_order_get(void *b, const char *id, order_t *ret)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	int rc = order_by_id(c, id, ret);
	sqb_reader_put(s, c);
	return rc;
}

int sqb_order_fence(void *b, const char *id, order_status_t *ret_status,
                    int64_t *ret_fence)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	const sqb_param_t p[] = {SQB_TEXT(id)};
	sqlite3_stmt *st;
	int rc = sqb_row(c, SQB_ORDER_FENCE,
	                 "SELECT status, fence FROM orders WHERE id = ?1", p,
	                 SQB_NPARAMS(p), &st);
	if (rc == 0) {
		rc = OD_ENOTFOUND;
	} else if (rc > 0) {
		const char *status = (const char *)sqlite3_column_text(st, 0);
		order_status_t os;
		rc = status && order_status_parse(status, &os) == 0
		         ? 0
		         : OD_EINTERNAL;
		if (rc == 0) {
			*ret_status = os;
			*ret_fence = sqlite3_column_int64(st, 1);
		}
		sqlite3_reset(st);
	}
	sqb_reader_put(s, c);
	return rc;
}

int sqb_orders_terminal(void *b, const char *const *ids, size_t n,
                        bool *ret_terminal)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	int64_t now;
	int rc = sqb_read_begin(c, &now);
	for (size_t i = 0; rc >= 0 && i < n; i++) {
		sqb_param_t p[] = {SQB_TEXT(ids[i])};
		sqlite3_stmt *st;
		rc = sqb_row(c, SQB_ORDER_STATUS,
		             "SELECT status FROM orders WHERE id = ?1", p,
		             SQB_NPARAMS(p), &st);
		order_status_t os =
		    ORDER_COMPLETED; /* unknown: let it answer */
		if (rc == 1) {
			const char *name =
			    (const char *)sqlite3_column_text(st, 0);
			if (!name || order_status_parse(name, &os) < 0)
				os = ORDER_COMPLETED;
			sqlite3_reset(st);
		}
		if (rc >= 0)
			ret_terminal[i] = order_status_terminal(os);
	}
	if (rc > 0)
		rc = 0;
	sqb_read_end(c);
	sqb_reader_put(s, c);
	return rc;
}

static int row_order(sqlite3_stmt *st, void *elem)
{
	return sqb_row_order(st, elem);
}

int sqb_order_list(void *b, int status, int64_t after_seq, size_t limit,
                   order_t **ret_orders, size_t *ret_n, bool *ret_more)
{
	sqb_store_t *s = b;
	/* A page is at most STORE_LIST_MAX rows (store.c): room for all. */
	order_t *orders = calloc(limit, sizeof *orders);
	size_t n = 0;
	bool more = false;
	if (!orders)
		return -ENOMEM;
	sqb_conn_t *c = sqb_reader_get(s);
	sqlite3_stmt *st;
	int rc;
	if (status < 0)
		rc = sqb_stmt(c, SQB_ORDER_LIST_ALL,
		              "SELECT " SQB_ORDER_COLS " FROM orders"
		              " WHERE seq > ?1 ORDER BY seq LIMIT ?2",
		              &st);
	else
		rc = sqb_stmt(c, SQB_ORDER_LIST_STATUS,
		              "SELECT " SQB_ORDER_COLS " FROM orders"
		              " WHERE status = ?3 AND seq > ?1"
		              " ORDER BY seq LIMIT ?2",
		              &st);
	if (rc < 0)
		goto put;
	if ((rc = sqb_bind_int(st, 1, after_seq)) < 0 ||
	    (rc = sqb_bind_int(st, 2, (int64_t)limit + 1)) < 0 ||
	    (status >= 0 &&
	     (rc = sqb_bind_text(
	          st, 3, order_status_name((order_status_t)status))) < 0))
		sqlite3_reset(st);
	else
		rc = sqb_page(st, orders, sizeof *orders, limit, row_order, &n,
		              &more);
put:
	sqb_reader_put(s, c);
	if (rc < 0) {
		store_orders_free(orders, n);
		return rc;
	}
	*ret_orders = orders;
	*ret_n = n;
	*ret_more = more;
	return 0;
}

/* A client transition: one conditional UPDATE ... RETURNING, then the
 * reason it did not apply (no such order, or not in the right status). */
static int client_transition(sqb_store_t *s, int stmt_id, const char *sql,
                             const char *id, const char *event, order_t *ret)
{
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	const sqb_param_t p[] = {SQB_TEXT(id), SQB_INT(now)};
	sqlite3_stmt *st;
	order_t o = {0};
	int64_t fence = 0;
	rc = sqb_row(c, stmt_id, sql, p, SQB_NPARAMS(p), &st);
	if (rc == 1) {
		fence = sqlite3_column_int64(st, 11);
		rc = sqb_row_order(st, &o);
		if (rc == 0)
			rc = 1;
		if (rc == 1 && sqb_step(st) < 0)
			rc = OD_ESTORE;
		sqlite3_reset(st);
	}
	if (rc == 0) {
		/* Nothing changed: tell a missing order from a wrong status. */
		order_t cur = {0};
		rc = order_by_id(c, id, &cur);
		order_clear(&cur);
		if (rc == 0)
			rc = OD_ESTATE;
	}
	if (rc < 0)
		goto rollback;
	rc = sqb_event_add(c, id, event, fence, now);
	if (rc < 0)
		goto rollback;
	rc = sqb_write_commit(s);
	if (rc < 0)
		goto clear;
	if (ret)
		*ret = o;
	else
		order_clear(&o);
	return 0;
rollback:
	sqb_write_rollback(s);
clear:
	order_clear(&o);
	return rc;
}

/* Event requeue: failed --> pending, attempts from 0 again. */
int sqb_order_requeue(void *b, const char *id, order_t *ret)
{
	return client_transition(
	    b, SQB_ORDER_REQUEUE,
	    "UPDATE orders SET status = 'pending', attempts = 0,"
	    " reason = NULL, fingerprint = NULL, finished_at = 0, next_at = ?2,"
	    " updated_at = ?2 WHERE id = ?1 AND status = 'failed'"
	    " RETURNING " SQB_ORDER_COLS ", fence",
	    id, state_event_name(EV_REQUEUE), ret);
}

/* Event cancel: pending --> cancelled, unless the order holds stock
 * awaiting a confirm retry (store.h). */
int sqb_order_cancel(void *b, const char *id, order_t *ret)
{
	return client_transition(
	    b, SQB_ORDER_CANCEL,
	    "UPDATE orders SET status = 'cancelled', finished_at = ?2,"
	    " updated_at = ?2 WHERE id = ?1 AND status = 'pending'"
	    " AND held = 0 RETURNING " SQB_ORDER_COLS ", fence",
	    id, state_event_name(EV_CANCEL), ret);
}

int sqb_stats(void *b, bool terminal, store_stats_t *ret)
{
	sqb_store_t *s = b;
	store_stats_t out = {0};
	sqb_conn_t *c = sqb_reader_get(s);
	sqlite3_stmt *st;
	/* One snapshot for the counts and the oldest pending order. */
	int rc = sqb_read_begin(c, &out.now_ms);
	if (rc < 0)
		goto put;
	/* Both count along orders_status: the live statuses are a short
	 * range of it, the full count walks all of it (store.c caches that). */
	rc = terminal ? sqb_stmt(c, SQB_STATS_COUNT,
	                         "SELECT status, count(*) FROM orders"
	                         " GROUP BY status",
	                         &st)
	              : sqb_stmt(c, SQB_STATS_LIVE,
	                         "SELECT status, count(*) FROM orders"
	                         " WHERE status IN ('pending', 'processing')"
	                         " GROUP BY status",
	                         &st);
	if (rc < 0)
		goto end;
	while ((rc = sqb_step(st)) == 1) {
		order_status_t status;
		const unsigned char *name = sqlite3_column_text(st, 0);
		if (order_status_parse((const char *)name, &status) == 0)
			out.count[status] = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (rc < 0)
		goto end;
	/* The oldest claimable order: pending and due. Scanning the pending
	 * orders by seq (created_at grows with it: one writer) stops at the
	 * first due one. */
	rc = sqb_stmt(c, SQB_STATS_OLDEST,
	              "SELECT created_at FROM orders INDEXED BY orders_pending"
	              " WHERE status = 'pending' AND next_at <= ?1"
	              " ORDER BY seq LIMIT 1",
	              &st);
	if (rc < 0)
		goto end;
	if ((rc = sqb_bind_int(st, 1, out.now_ms)) < 0) {
		sqlite3_reset(st);
		goto end;
	}
	rc = sqb_step(st);
	if (rc == 1) {
		int64_t age = out.now_ms - sqlite3_column_int64(st, 0);
		out.oldest_pending_ms = age > 0 ? age : 0;
	}
	sqlite3_reset(st);
end:
	sqb_read_end(c);
put:
	sqb_reader_put(s, c);
	if (rc < 0)
		return rc;
	out.resets = s->resets;
	*ret = out;
	return 0;
}

/* ---- history ---- */

int sqb_order_history(void *b, const char *id, store_event_t *ret, size_t max,
                      size_t *ret_n)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	sqlite3_stmt *st = NULL;
	int64_t now;
	size_t n = 0;
	int rc = sqb_read_begin(c, &now);
	if (rc < 0)
		goto put;
	rc = sqb_stmt(c, SQB_ORDER_HISTORY,
	              "SELECT event, fence, at, replica FROM order_events"
	              " WHERE order_id = ?1 ORDER BY id",
	              &st);
	if (rc == 0)
		rc = sqb_bind_text(st, 1, id);
	if (rc == 0) {
		while ((rc = sqb_step(st)) == 1) {
			if (n < max) {
				const char *ev =
				    (const char *)sqlite3_column_text(st, 0);
				snprintf(ret[n].event, sizeof ret[n].event,
				         "%s", ev ? ev : "");
				ret[n].fence = sqlite3_column_int64(st, 1);
				ret[n].at = sqlite3_column_int64(st, 2);
				const char *rep =
				    (const char *)sqlite3_column_text(st, 3);
				snprintf(ret[n].replica, sizeof ret[n].replica,
				         "%s", rep ? rep : "");
			}
			n++;
		}
	}
	if (st)
		sqlite3_reset(st);
	sqb_read_end(c);
put:
	sqb_reader_put(s, c);
	if (rc < 0)
		return rc;
	*ret_n = n;
	return 0;
}
