/*
 * sqlite_notify: the outbox of notifications (G9) in the SQLite backend.
 * The trigger orders_outbox writes one row per terminal transition in the
 * transaction of the transition (store_outbox_enable creates it); the rest
 * is delivery: claim under a lease with a fence (like orders), the fenced
 * outcomes, list, redeliver, prune and counts. The table and its indexes
 * are migration 5 (sqlite_schema.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/err.h"

/* The row every read returns: the order's columns first, in the places
 * sqb_row_order reads (its content from orders, the snapshot from the
 * notification), then the notification's own. */
#define NOTIFY_COLS                                                            \
	"o.seq, o.id, o.customer, o.items, o.metadata, n.order_status,"        \
	" n.order_attempts, n.order_reason, o.created_at,"                     \
	" n.order_updated_at, n.order_finished_at, n.seq, n.type, n.status,"   \
	" n.attempts, n.created_at, n.next_at, n.delivered_at, n.last_error,"  \
	" n.acked, n.fence, n.lease_until"
#define NOTIFY_FROM " FROM notifications n JOIN orders o ON o.id = n.order_id"

static int col_strdup(sqlite3_stmt *st, int col, bool null_ok, char **ret)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL) {
		if (!null_ok)
			return OD_EINTERNAL;
		*ret = NULL;
		return 0;
	}
	const unsigned char *t = sqlite3_column_text(st, col);
	char *d = t ? strdup((const char *)t) : NULL;
	if (!d)
		return -ENOMEM;
	*ret = d;
	return 0;
}

/* Reads NOTIFY_COLS of the current row into *ret (written on success). */
static int row_notification(sqlite3_stmt *st, store_notification_t *ret)
{
	store_notification_t n;
	memset(&n, 0, sizeof n);
	int rc = sqb_row_order(st, &n.order);
	if (rc < 0)
		return rc;
	const int b = SQB_N_ORDER_COLS;
	n.seq = sqlite3_column_int64(st, b);
	const unsigned char *type = sqlite3_column_text(st, b + 1);
	const unsigned char *status = sqlite3_column_text(st, b + 2);
	rc = OD_EINTERNAL;
	if (!type || strlen((const char *)type) >= sizeof n.type ||
	    store_notify_status_parse((const char *)status, &n.status) < 0)
		goto fail;
	memcpy(n.type, type, strlen((const char *)type) + 1);
	n.attempts = sqlite3_column_int(st, b + 3);
	n.created_at = sqlite3_column_int64(st, b + 4);
	n.next_at = sqlite3_column_int64(st, b + 5);
	n.delivered_at = sqlite3_column_int64(st, b + 6);
	if ((rc = col_strdup(st, b + 7, true, &n.last_error)) < 0 ||
	    (rc = col_strdup(st, b + 8, false, &n.acked)) < 0)
		goto fail;
	n.fence = sqlite3_column_int64(st, b + 9);
	n.lease_until = sqlite3_column_int64(st, b + 10);
	*ret = n;
	return 0;
fail:
	store_notifications_clear(&n, 1);
	return rc;
}

/* Reads notification seq on c: 0, OD_ENOTFOUND or an error. */
static int by_seq(sqb_conn_t *c, int64_t seq, store_notification_t *ret)
{
	const sqb_param_t p[] = {SQB_INT(seq)};
	sqlite3_stmt *st;
	int rc = sqb_row(c, SQB_NOTIFY_BY_SEQ,
	                 "SELECT " NOTIFY_COLS NOTIFY_FROM " WHERE n.seq = ?1",
	                 p, SQB_NPARAMS(p), &st);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return OD_ENOTFOUND;
	rc = row_notification(st, ret);
	sqlite3_reset(st);
	return rc;
}

int sqb_outbox_enable(void *b)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	/* One row per transition into a terminal status, whatever statement
	 * made it: the same transaction, so the event exists if and only if
	 * the transition committed. IF NOT EXISTS under BEGIN IMMEDIATE:
	 * processes that enable it together create it once. */
	rc = sqlite3_exec(
	    c->db,
	    "CREATE TRIGGER IF NOT EXISTS orders_outbox"
	    " AFTER UPDATE OF status ON orders FOR EACH ROW"
	    " WHEN NEW.status IN ('completed', 'rejected', 'failed',"
	    " 'cancelled') AND NEW.status IS NOT OLD.status"
	    " BEGIN INSERT INTO notifications (order_id, type, order_status,"
	    " order_reason, order_attempts, order_updated_at,"
	    " order_finished_at, created_at, next_at)"
	    " VALUES (NEW.id, 'order.' || NEW.status, NEW.status, NEW.reason,"
	    " NEW.attempts, NEW.updated_at, NEW.finished_at, " SQB_NOW_SQL
	    ", " SQB_NOW_SQL "); END",
	    NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqb_write_rollback(s);
		return sqb_err(rc);
	}
	return sqb_write_commit(s);
}

int sqb_notify_claim(void *b, const char *owner, int64_t lease_ms, size_t max,
                     store_notification_t *ret, size_t *ret_n)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now, fence = 0;
	size_t n = 0;
	int64_t *seqs = calloc(max, sizeof *seqs);
	if (!seqs)
		return -ENOMEM;
	int rc = sqb_write_begin(s, SQB_LAZY, &c, &now);
	if (rc < 0)
		goto out;
	rc = sqb_next_fence(c, &fence);
	if (rc < 0)
		goto rollback;
	sqlite3_stmt *st;
	/* next_at moves to the lease's deadline: a claim whose holder died
	 * is due again then. The single writer serializes claims, so IN
	 * (subquery LIMIT n) cannot take more than n. Lazy commit: a claim
	 * lost in a power cut only makes the events due again. */
	rc = sqb_stmt(c, SQB_NOTIFY_CLAIM,
	              "UPDATE notifications SET attempts = attempts + 1,"
	              " lease_owner = ?1, lease_until = ?2, next_at = ?2,"
	              " fence = ?3"
	              " WHERE seq IN (SELECT seq FROM notifications"
	              " INDEXED BY notifications_due"
	              " WHERE status = 'pending' AND next_at <= ?4"
	              " ORDER BY next_at, seq LIMIT ?5) RETURNING seq",
	              &st);
	if (rc < 0)
		goto rollback;
	if ((rc = sqb_bind_text(st, 1, owner)) < 0 ||
	    (rc = sqb_bind_int(st, 2, now + lease_ms)) < 0 ||
	    (rc = sqb_bind_int(st, 3, fence)) < 0 ||
	    (rc = sqb_bind_int(st, 4, now)) < 0 ||
	    (rc = sqb_bind_int(st, 5, (int64_t)max)) < 0) {
		sqlite3_reset(st);
		goto rollback;
	}
	size_t k = 0;
	while ((rc = sqb_step(st)) == 1) {
		if (k == max) {
			rc = OD_EINTERNAL;
			break;
		}
		seqs[k++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	if (rc < 0)
		goto rollback;
	if (k == 0) {
		/* Nothing due: undo the fence and skip the commit. */
		sqb_write_rollback(s);
		*ret_n = 0;
		goto out;
	}
	/* Claim order, (next_at, seq): every claimed row has the same new
	 * next_at, so the old order is lost; seq is the order they were due
	 * in closely enough (RETURNING promises none at all). */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && seqs[j - 1] > seqs[j]; j--) {
			int64_t t = seqs[j];
			seqs[j] = seqs[j - 1];
			seqs[j - 1] = t;
		}
	for (; n < k; n++) {
		rc = by_seq(c, seqs[n], &ret[n]);
		if (rc < 0) {
			if (rc == OD_ENOTFOUND)
				rc = OD_EINTERNAL; /* its order is gone */
			goto rollback;
		}
	}
	rc = sqb_write_commit(s);
	if (rc < 0)
		goto clear;
	*ret_n = n;
	goto out;
rollback:
	sqb_write_rollback(s);
clear:
	store_notifications_clear(ret, n);
out:
	free(seqs);
	return rc;
}

/* One fenced outcome write in its own durable transaction: 0, OD_EFENCE
 * when (seq, fence, pending) matches no row, or an error. */
static int outcome_write(sqb_store_t *s, int id, const char *sql,
                         sqb_param_t *p, size_t np, bool *ret_dead)
{
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	p[np - 1] = SQB_INT(now); /* the last parameter is the time */
	sqlite3_stmt *st;
	rc = sqb_row(c, id, sql, p, np, &st);
	if (rc == 1) {
		const unsigned char *status = sqlite3_column_text(st, 0);
		if (ret_dead)
			*ret_dead =
			    status && strcmp((const char *)status, "dead") == 0;
		if (sqb_step(st) < 0)
			rc = OD_ESTORE;
		sqlite3_reset(st);
	}
	if (rc == 0)
		rc = OD_EFENCE;
	if (rc < 0) {
		sqb_write_rollback(s);
		return rc;
	}
	return sqb_write_commit(s);
}

int sqb_notify_delivered(void *b, int64_t seq, int64_t fence, const char *acked)
{
	sqb_param_t p[] = {SQB_INT(seq), SQB_INT(fence), SQB_TEXT(acked),
	                   SQB_INT(0)};
	return outcome_write(b, SQB_NOTIFY_DELIVERED,
	                     "UPDATE notifications SET status = 'delivered',"
	                     " delivered_at = ?4, acked = ?3,"
	                     " lease_owner = NULL, lease_until = 0"
	                     " WHERE seq = ?1 AND fence = ?2"
	                     " AND status = 'pending' RETURNING status",
	                     p, SQB_NPARAMS(p), NULL);
}

int sqb_notify_retry(void *b, int64_t seq, int64_t fence, int max_attempts,
                     int64_t delay_ms, const char *error, const char *acked,
                     bool *ret_dead)
{
	sqb_param_t p[] = {
	    SQB_INT(seq),      SQB_INT(fence),  SQB_INT(max_attempts),
	    SQB_INT(delay_ms), SQB_TEXT(error), SQB_TEXT(acked),
	    SQB_INT(0)};
	bool dead = false;
	int rc = outcome_write(
	    b, SQB_NOTIFY_RETRY,
	    "UPDATE notifications SET status = CASE WHEN attempts < ?3"
	    " THEN 'pending' ELSE 'dead' END, next_at = ?7 + ?4,"
	    " last_error = ?5, acked = ?6, lease_owner = NULL,"
	    " lease_until = 0 WHERE seq = ?1 AND fence = ?2"
	    " AND status = 'pending' RETURNING status",
	    p, SQB_NPARAMS(p), &dead);
	if (rc == 0 && ret_dead)
		*ret_dead = dead;
	return rc;
}

int sqb_notify_release(void *b, int64_t seq, int64_t fence, int64_t delay_ms,
                       const char *error, const char *acked)
{
	sqb_param_t p[] = {SQB_INT(seq),    SQB_INT(fence),  SQB_INT(delay_ms),
	                   SQB_TEXT(error), SQB_TEXT(acked), SQB_INT(0)};
	return outcome_write(
	    b, SQB_NOTIFY_RELEASE,
	    "UPDATE notifications SET attempts = MAX(attempts - 1, 0),"
	    " next_at = ?6 + ?3, last_error = COALESCE(?4, last_error),"
	    " acked = ?5, lease_owner = NULL, lease_until = 0"
	    " WHERE seq = ?1 AND fence = ?2 AND status = 'pending'"
	    " RETURNING status",
	    p, SQB_NPARAMS(p), NULL);
}

int sqb_notify_get(void *b, int64_t seq, store_notification_t *ret)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	int rc = by_seq(c, seq, ret);
	sqb_reader_put(s, c);
	return rc;
}

static int row_notification_cb(sqlite3_stmt *st, void *elem)
{
	return row_notification(st, elem);
}

/* A listing of notifications: ?1 is order_id when given, else
 * after_seq; ?2 the page's size plus one (the row past the page tells
 * whether more follow); ?3 status when given. */
typedef struct notify_query {
	enum sqb_stmt_id id;
	const char *sql;
	const char *order_id; /* ?1 when not NULL */
	int64_t after_seq;    /* ?1 otherwise */
	const char *status;   /* ?3 when not NULL */
} notify_query_t;

static int notify_page(sqb_store_t *s, const notify_query_t *q, size_t limit,
                       store_notification_t **ret, size_t *ret_n,
                       bool *ret_more)
{
	store_notification_t *v = calloc(limit, sizeof *v);
	size_t n = 0;
	bool more = false;
	if (!v)
		return -ENOMEM;
	sqb_conn_t *c = sqb_reader_get(s);
	sqlite3_stmt *st;
	int rc = sqb_stmt(c, q->id, q->sql, &st);
	if (rc < 0)
		goto put;
	if ((rc = q->order_id ? sqb_bind_text(st, 1, q->order_id)
	                      : sqb_bind_int(st, 1, q->after_seq)) < 0 ||
	    (rc = sqb_bind_int(st, 2, (int64_t)limit + 1)) < 0 ||
	    (q->status && (rc = sqb_bind_text(st, 3, q->status)) < 0))
		sqlite3_reset(st);
	else
		rc = sqb_page(st, v, sizeof *v, limit, row_notification_cb, &n,
		              &more);
put:
	sqb_reader_put(s, c);
	if (rc < 0) {
		store_notifications_free(v, n);
		return rc;
	}
	*ret = v;
	*ret_n = n;
	*ret_more = more;
	return 0;
}

int sqb_notify_by_order(void *b, const char *order_id, size_t limit,
                        store_notification_t **ret, size_t *ret_n,
                        bool *ret_more)
{
	const notify_query_t q = {
	    SQB_NOTIFY_BY_ORDER,
	    "SELECT " NOTIFY_COLS NOTIFY_FROM
	    " WHERE n.order_id = ?1 ORDER BY n.seq LIMIT ?2",
	    order_id, 0, NULL};
	return notify_page(b, &q, limit, ret, ret_n, ret_more);
}

int sqb_notify_list(void *b, int status, int64_t after_seq, size_t limit,
                    store_notification_t **ret, size_t *ret_n, bool *ret_more)
{
	const notify_query_t all = {SQB_NOTIFY_LIST_ALL,
	                            "SELECT " NOTIFY_COLS NOTIFY_FROM
	                            " WHERE n.seq > ?1 ORDER BY n.seq LIMIT ?2",
	                            NULL, after_seq, NULL};
	const notify_query_t by_status = {
	    SQB_NOTIFY_LIST_STATUS,
	    "SELECT " NOTIFY_COLS NOTIFY_FROM
	    " WHERE n.status = ?3 AND n.seq > ?1"
	    " ORDER BY n.seq LIMIT ?2",
	    NULL, after_seq,
	    status < 0 ? NULL
	               : store_notify_status_name((notify_status_t)status)};
	return notify_page(b, status < 0 ? &all : &by_status, limit, ret, ret_n,
	                   ret_more);
}

int sqb_notify_redeliver(void *b, int64_t seq, store_notification_t *ret)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	const sqb_param_t p[] = {SQB_INT(seq), SQB_INT(now)};
	rc = sqb_exec(c, SQB_NOTIFY_REDELIVER,
	              "UPDATE notifications SET status = 'pending',"
	              " attempts = 0, next_at = ?2, delivered_at = 0,"
	              " acked = '', lease_owner = NULL, lease_until = 0"
	              " WHERE seq = ?1 AND status IN ('dead', 'delivered')",
	              p, SQB_NPARAMS(p));
	if (rc == 0) {
		/* Tell a pending one from a missing one. */
		sqlite3_stmt *st;
		rc = sqb_row(c, SQB_NOTIFY_STATE,
		             "SELECT status FROM notifications WHERE seq = ?1",
		             p, 1, &st);
		if (rc == 1)
			sqlite3_reset(st);
		rc = rc == 1 ? OD_ESTATE : rc == 0 ? OD_ENOTFOUND : rc;
	}
	store_notification_t out;
	memset(&out, 0, sizeof out);
	if (rc >= 0 && ret) {
		rc = by_seq(c, seq, &out);
		if (rc == OD_ENOTFOUND)
			rc = OD_EINTERNAL; /* updated, yet its order is gone */
	}
	if (rc < 0) {
		sqb_write_rollback(s);
		return rc;
	}
	rc = sqb_write_commit(s);
	if (rc < 0) {
		store_notifications_clear(&out, 1);
		return rc;
	}
	if (ret)
		*ret = out;
	return 0;
}

int sqb_notify_prune(void *b, int64_t older_than_ms, size_t limit,
                     size_t *ret_n)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	/* Only delivered rows, along their own partial index, in bounded
	 * batches so one prune never holds the writer for long. */
	const sqb_param_t p[] = {SQB_INT(now - older_than_ms),
	                         SQB_INT((int64_t)limit)};
	rc = sqb_exec(c, SQB_NOTIFY_PRUNE,
	              "DELETE FROM notifications WHERE seq IN"
	              " (SELECT seq FROM notifications"
	              " INDEXED BY notifications_delivered"
	              " WHERE status = 'delivered' AND delivered_at <= ?1"
	              " ORDER BY delivered_at LIMIT ?2)",
	              p, SQB_NPARAMS(p));
	size_t n = rc > 0 ? (size_t)rc : 0;
	rc = sqb_write_end(s, rc, n);
	if (rc < 0)
		return rc;
	*ret_n = n;
	return 0;
}

int sqb_notify_stats(void *b, store_notify_stats_t *ret)
{
	sqb_store_t *s = b;
	store_notify_stats_t out;
	memset(&out, 0, sizeof out);
	sqb_conn_t *c = sqb_reader_get(s);
	sqlite3_stmt *st;
	int64_t now;
	int rc = sqb_read_begin(c, &now);
	if (rc < 0)
		goto put;
	/* Along notifications_status; delivered rows are bounded by the
	 * retention, pending and dead by what is undelivered. */
	rc = sqb_stmt(c, SQB_NOTIFY_COUNT,
	              "SELECT status, count(*) FROM notifications"
	              " GROUP BY status",
	              &st);
	if (rc < 0)
		goto end;
	while ((rc = sqb_step(st)) == 1) {
		notify_status_t ns;
		const unsigned char *name = sqlite3_column_text(st, 0);
		if (store_notify_status_parse((const char *)name, &ns) == 0)
			out.count[ns] = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (rc < 0)
		goto end;
	/* The oldest pending event: the first pending one by seq (created_at
	 * grows with seq: one writer). */
	rc = sqb_stmt(c, SQB_NOTIFY_OLDEST,
	              "SELECT created_at FROM notifications"
	              " INDEXED BY notifications_status"
	              " WHERE status = 'pending' ORDER BY status, seq LIMIT 1",
	              &st);
	if (rc < 0)
		goto end;
	rc = sqb_step(st);
	if (rc == 1) {
		int64_t age = now - sqlite3_column_int64(st, 0);
		out.oldest_pending_ms = age > 0 ? age : 0;
	}
	sqlite3_reset(st);
end:
	sqb_read_end(c);
put:
	sqb_reader_put(s, c);
	if (rc < 0)
		return rc;
	*ret = out;
	return 0;
}
