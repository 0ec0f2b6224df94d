/*
 * postgres_notify: the outbox of notifications (G9) in the postgres store
 * backend, as sqlite_notify.c: the trigger orders_outbox (created by
 * store_outbox_enable, postgres_schema.c) writes one row per terminal
 * transition in the transition's transaction; this file claims them under
 * a lease with a fence (one statement, SKIP LOCKED, so replicas deliver
 * side by side and never own one event together), writes the fenced
 * outcomes, lists, redelivers, prunes and counts. Migration 4 has the
 * table, its indexes and the trigger function.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "store/postgres_schema.h"
#include "util/err.h"

/* The row every read returns: the order's columns in the places
 * pgb_row_order reads (content from orders, the snapshot from the
 * notification), then the notification's own, from 11 on. */
#define NOTIFY_COLS                                                            \
	"o.seq, o.id, o.customer, o.items, o.metadata, n.order_status,"        \
	" n.order_attempts, n.order_reason, o.created_at,"                     \
	" n.order_updated_at, n.order_finished_at, n.seq, n.type, n.status,"   \
	" n.attempts, n.created_at, n.next_at, n.delivered_at, n.last_error,"  \
	" n.acked, n.fence, n.lease_until"
#define NOTIFY_JOIN " JOIN orders o ON o.id = n.order_id"

static int row_notification(const PGresult *res, int row,
                            store_notification_t *ret)
{
	store_notification_t n;
	memset(&n, 0, sizeof n);
	int rc = pgb_row_order(res, row, &n.order);
	if (rc < 0)
		return rc;
	const int b = PGB_N_ORDER_COLS;
	int64_t attempts;
	rc = OD_EINTERNAL;
	if (!pgb_get_i64(res, row, b, &n.seq) ||
	    !pgb_get_str(res, row, b + 1, n.type, sizeof n.type) ||
	    store_notify_status_parse(PQgetvalue(res, row, b + 2), &n.status) <
	        0 ||
	    !pgb_get_i64(res, row, b + 3, &attempts) ||
	    !pgb_get_i64(res, row, b + 4, &n.created_at) ||
	    !pgb_get_i64(res, row, b + 5, &n.next_at) ||
	    !pgb_get_i64(res, row, b + 6, &n.delivered_at) ||
	    !pgb_get_i64(res, row, b + 9, &n.fence) ||
	    !pgb_get_i64(res, row, b + 10, &n.lease_until))
		goto fail;
	n.attempts = (int)attempts;
	rc = -ENOMEM;
	if (!PQgetisnull(res, row, b + 7) &&
	    !(n.last_error = strdup(PQgetvalue(res, row, b + 7))))
		goto fail;
	if (!(n.acked = strdup(PQgetvalue(res, row, b + 8))))
		goto fail;
	*ret = n;
	return 0;
fail:
	store_notifications_clear(&n, 1);
	return rc;
}

/* Reads every row of res into ret[0..); *ret_n how many (all, or 0). */
static int rows_notifications(const PGresult *res, store_notification_t *ret,
                              size_t *ret_n)
{
	size_t rows = (size_t)PQntuples(res);
	for (size_t i = 0; i < rows; i++) {
		int rc = row_notification(res, (int)i, &ret[i]);
		if (rc < 0) {
			store_notifications_clear(ret, i);
			return rc;
		}
	}
	*ret_n = rows;
	return 0;
}

int pgb_outbox_enable(void *h)
{
	pgb_store_t *b = h;
	pgc_t *c;
	int rc = pgb_conn(b, &c);
	if (rc < 0)
		return rc;
	rc = pgs_outbox_enable(c);
	pgp_put(b->pool, c);
	return rc;
}

/* One statement, like the order claim: SKIP LOCKED so replicas claim side
 * by side, the CTE with LIMIT evaluated once, one fence per batch. next_at
 * moves to the lease's deadline, so an event whose holder died is due
 * again then. */
static const pgp_stmt_t stmt_notify_claim = {
    .name = "notify_claim",
    .sql = PGB_WITH_NOW ", c AS (SELECT seq FROM notifications"
                        " WHERE status = 'pending' AND next_at <= " PGB_NOW
                        " ORDER BY next_at, seq LIMIT $3::bigint"
                        " FOR UPDATE SKIP LOCKED),"
                        " f AS (SELECT nextval('fence_seq') AS v),"
                        " u AS (UPDATE notifications n"
                        " SET attempts = n.attempts + 1,"
                        " lease_owner = $1::text,"
                        " lease_until = " PGB_NOW " + $2::bigint,"
                        " next_at = " PGB_NOW " + $2::bigint, fence = f.v"
                        " FROM c, f WHERE n.seq = c.seq RETURNING n.*)"
                        " SELECT " NOTIFY_COLS " FROM u n" NOTIFY_JOIN
                        " ORDER BY n.seq",
    .nparams = 3,
};

int pgb_notify_claim(void *h, const char *owner, int64_t lease_ms, size_t max,
                     store_notification_t *ret, size_t *ret_n)
{
	char lbuf[24], mbuf[24];
	pgb_fmt_i64(lbuf, sizeof lbuf, lease_ms);
	pgb_fmt_i64(mbuf, sizeof mbuf, (int64_t)max);
	const char *p[3] = {owner, lbuf, mbuf};
	PGresult *res;
	/* Lost in flight: what it claimed comes back when the lease ends. */
	int rc = pgb_query(h, &stmt_notify_claim, p, PGB_LOST_RETRY, &res);
	if (rc == 0 && (size_t)PQntuples(res) > max)
		rc = OD_EINTERNAL;
	if (rc == 0)
		rc = rows_notifications(res, ret, ret_n);
	PQclear(res);
	return rc;
}

static const pgp_stmt_t stmt_notify_delivered = {
    .name = "notify_delivered",
    .sql = PGB_WITH_NOW "UPDATE notifications SET status = 'delivered',"
                        " delivered_at = " PGB_NOW ", acked = $3::text,"
                        " " PGB_LEASE_CLEAR " WHERE seq = $1::bigint"
                        " AND fence = $2::bigint AND status = 'pending'"
                        " RETURNING status",
    .nparams = 3,
};

static const pgp_stmt_t stmt_notify_retry = {
    .name = "notify_retry",
    .sql = PGB_WITH_NOW "UPDATE notifications SET status = CASE"
                        " WHEN attempts < $3::int THEN 'pending'"
                        " ELSE 'dead' END,"
                        " next_at = " PGB_NOW " + $4::bigint,"
                        " last_error = $5::text, acked = $6::text,"
                        " " PGB_LEASE_CLEAR " WHERE seq = $1::bigint"
                        " AND fence = $2::bigint AND status = 'pending'"
                        " RETURNING status",
    .nparams = 6,
};

static const pgp_stmt_t stmt_notify_release = {
    .name = "notify_release",
    .sql = PGB_WITH_NOW "UPDATE notifications SET"
                        " attempts = greatest(attempts - 1, 0),"
                        " next_at = " PGB_NOW " + $3::bigint,"
                        " last_error = COALESCE($4::text, last_error),"
                        " acked = $5::text, " PGB_LEASE_CLEAR
                        " WHERE seq = $1::bigint AND fence = $2::bigint"
                        " AND status = 'pending' RETURNING status",
    .nparams = 5,
};

/* Runs a fenced outcome: OD_EFENCE when it matched no row. A write lost
 * in flight is OD_EUNKNOWN; the dispatcher leaves the event to its lease
 * either way (at least once). */
static int outcome(pgb_store_t *b, const pgp_stmt_t *stmt, const char *const *p,
                   bool *ret_dead)
{
	PGresult *res;
	int rc = pgb_query(b, stmt, p, PGB_LOST_UNKNOWN, &res);
	if (rc == 0 && PQntuples(res) != 1)
		rc = OD_EFENCE;
	if (rc == 0 && ret_dead)
		*ret_dead = strcmp(PQgetvalue(res, 0, 0), "dead") == 0;
	PQclear(res);
	return rc;
}

int pgb_notify_delivered(void *h, int64_t seq, int64_t fence, const char *acked)
{
	char sbuf[24], fbuf[24];
	pgb_fmt_i64(sbuf, sizeof sbuf, seq);
	pgb_fmt_i64(fbuf, sizeof fbuf, fence);
	const char *p[3] = {sbuf, fbuf, acked};
	return outcome(h, &stmt_notify_delivered, p, NULL);
}

int pgb_notify_retry(void *h, int64_t seq, int64_t fence, int max_attempts,
                     int64_t delay_ms, const char *error, const char *acked,
                     bool *ret_dead)
{
	char sbuf[24], fbuf[24], mbuf[24], dbuf[24];
	pgb_fmt_i64(sbuf, sizeof sbuf, seq);
	pgb_fmt_i64(fbuf, sizeof fbuf, fence);
	pgb_fmt_i64(mbuf, sizeof mbuf, max_attempts);
	pgb_fmt_i64(dbuf, sizeof dbuf, delay_ms);
	const char *p[6] = {sbuf, fbuf, mbuf, dbuf, error, acked};
	bool dead = false;
	int rc = outcome(h, &stmt_notify_retry, p, &dead);
	if (rc == 0 && ret_dead)
		*ret_dead = dead;
	return rc;
}

int pgb_notify_release(void *h, int64_t seq, int64_t fence, int64_t delay_ms,
                       const char *error, const char *acked)
{
	char sbuf[24], fbuf[24], dbuf[24];
	pgb_fmt_i64(sbuf, sizeof sbuf, seq);
	pgb_fmt_i64(fbuf, sizeof fbuf, fence);
	pgb_fmt_i64(dbuf, sizeof dbuf, delay_ms);
	const char *p[5] = {sbuf, fbuf, dbuf, error, acked};
	return outcome(h, &stmt_notify_release, p, NULL);
}

static const pgp_stmt_t stmt_notify_get = {
    .name = "notify_get",
    .sql = "SELECT " NOTIFY_COLS " FROM notifications n" NOTIFY_JOIN
           " WHERE n.seq = $1::bigint",
    .nparams = 1,
};

int pgb_notify_get(void *h, int64_t seq, store_notification_t *ret)
{
	char sbuf[24];
	pgb_fmt_i64(sbuf, sizeof sbuf, seq);
	const char *p[1] = {sbuf};
	PGresult *res;
	int rc = pgb_query(h, &stmt_notify_get, p, PGB_LOST_RETRY, &res);
	if (rc == 0 && PQntuples(res) == 0)
		rc = OD_ENOTFOUND;
	if (rc == 0)
		rc = row_notification(res, 0, ret);
	PQclear(res);
	return rc;
}

static const pgp_stmt_t stmt_notify_list_all = {
    .name = "notify_list_all",
    .sql = "SELECT " NOTIFY_COLS " FROM notifications n" NOTIFY_JOIN
           " WHERE n.seq > $1::bigint ORDER BY n.seq LIMIT $2::bigint",
    .nparams = 2,
};

static const pgp_stmt_t stmt_notify_list_status = {
    .name = "notify_list_status",
    .sql = "SELECT " NOTIFY_COLS " FROM notifications n" NOTIFY_JOIN
           " WHERE n.status = $3::text AND n.seq > $1::bigint"
           " ORDER BY n.seq LIMIT $2::bigint",
    .nparams = 3,
};

static const pgp_stmt_t stmt_notify_by_order = {
    .name = "notify_by_order",
    .sql = "SELECT " NOTIFY_COLS " FROM notifications n" NOTIFY_JOIN
           " WHERE n.order_id = $1 ORDER BY n.seq LIMIT $2::bigint",
    .nparams = 2,
};

/* Runs a listing whose $2 is the page's size plus one (the row past the
 * page tells whether more follow) and returns the page as
 * store_notify_list does. */
static int notify_page(void *h, const pgp_stmt_t *stmt, const char **p,
                       size_t limit, store_notification_t **ret, size_t *ret_n,
                       bool *ret_more)
{
	PGresult *res;
	int rc = pgb_query(h, stmt, p, PGB_LOST_RETRY, &res);
	if (rc < 0) {
		PQclear(res);
		return rc;
	}
	size_t rows = (size_t)PQntuples(res);
	bool more = rows > limit;
	size_t take = more ? limit : rows;
	store_notification_t *v = calloc(take ? take : 1, sizeof *v);
	size_t n = 0;
	rc = v ? 0 : -ENOMEM;
	for (; rc == 0 && n < take; n++) {
		rc = row_notification(res, (int)n, &v[n]);
		if (rc < 0)
			break;
	}
	PQclear(res);
	if (rc < 0) {
		store_notifications_free(v, n);
		return rc;
	}
	*ret = v;
	*ret_n = n;
	*ret_more = more;
	return 0;
}

int pgb_notify_list(void *h, int status, int64_t after_seq, size_t limit,
                    store_notification_t **ret, size_t *ret_n, bool *ret_more)
{
	char abuf[24], lbuf[24];
	pgb_fmt_i64(abuf, sizeof abuf, after_seq);
	pgb_fmt_i64(lbuf, sizeof lbuf, (int64_t)limit + 1);
	const char *p[3] = {
	    abuf, lbuf,
	    status < 0 ? NULL
	               : store_notify_status_name((notify_status_t)status)};
	return notify_page(
	    h, status < 0 ? &stmt_notify_list_all : &stmt_notify_list_status, p,
	    limit, ret, ret_n, ret_more);
}

int pgb_notify_by_order(void *h, const char *order_id, size_t limit,
                        store_notification_t **ret, size_t *ret_n,
                        bool *ret_more)
{
	char lbuf[24];
	pgb_fmt_i64(lbuf, sizeof lbuf, (int64_t)limit + 1);
	const char *p[2] = {order_id, lbuf};
	return notify_page(h, &stmt_notify_by_order, p, limit, ret, ret_n,
	                   ret_more);
}

static const pgp_stmt_t stmt_notify_redeliver = {
    .name = "notify_redeliver",
    .sql = PGB_WITH_NOW ", u AS (UPDATE notifications SET status = 'pending',"
                        " attempts = 0, next_at = " PGB_NOW ","
                        " delivered_at = 0, acked = '', " PGB_LEASE_CLEAR
                        " WHERE seq = $1::bigint"
                        " AND status IN ('dead', 'delivered') RETURNING *)"
                        " SELECT " NOTIFY_COLS " FROM u n" NOTIFY_JOIN,
    .nparams = 1,
};

int pgb_notify_redeliver(void *h, int64_t seq, store_notification_t *ret)
{
	char sbuf[24];
	pgb_fmt_i64(sbuf, sizeof sbuf, seq);
	const char *p[1] = {sbuf};
	PGresult *res;
	int rc =
	    pgb_query(h, &stmt_notify_redeliver, p, PGB_LOST_UNKNOWN, &res);
	if (rc == 0 && PQntuples(res) == 1) {
		if (ret)
			rc = row_notification(res, 0, ret);
		PQclear(res);
		return rc;
	}
	PQclear(res);
	if (rc < 0)
		return rc;
	/* Nothing changed: tell a pending one from a missing one. */
	store_notification_t cur;
	rc = pgb_notify_get(h, seq, &cur);
	if (rc == 0) {
		store_notifications_clear(&cur, 1);
		rc = OD_ESTATE;
	}
	return rc;
}

/* Only delivered rows, along their partial index, a bounded batch. */
static const pgp_stmt_t stmt_notify_prune = {
    .name = "notify_prune",
    .sql = PGB_WITH_NOW ", c AS (SELECT seq FROM notifications"
                        " WHERE status = 'delivered'"
                        " AND delivered_at <= " PGB_NOW " - $1::bigint"
                        " ORDER BY delivered_at LIMIT $2::bigint"
                        " FOR UPDATE SKIP LOCKED),"
                        " d AS (DELETE FROM notifications n USING c"
                        " WHERE n.seq = c.seq AND n.status = 'delivered'"
                        " RETURNING 1) SELECT count(*) FROM d",
    .nparams = 2,
};

int pgb_notify_prune(void *h, int64_t older_than_ms, size_t limit,
                     size_t *ret_n)
{
	char obuf[24], lbuf[24];
	pgb_fmt_i64(obuf, sizeof obuf, older_than_ms);
	pgb_fmt_i64(lbuf, sizeof lbuf, (int64_t)limit);
	const char *p[2] = {obuf, lbuf};
	PGresult *res;
	int64_t n = 0;
	/* Harmless to repeat: OD_ESTORE when lost. */
	int rc = pgb_query(h, &stmt_notify_prune, p, PGB_LOST_RETRY, &res);
	if (rc == 0 && (PQntuples(res) != 1 || !pgb_get_i64(res, 0, 0, &n)))
		rc = OD_EINTERNAL;
	if (rc == 0)
		*ret_n = (size_t)n;
	PQclear(res);
	return rc;
}

static const pgp_stmt_t stmt_notify_stats = {
    .name = "notify_stats",
    .sql = "SELECT status, count(*) FROM notifications GROUP BY status",
    .nparams = 0,
};

/* The oldest pending event: the partial due index holds every pending
 * row, so min(created_at) reads only those. */
static const pgp_stmt_t stmt_notify_oldest = {
    .name = "notify_oldest",
    .sql = PGB_WITH_NOW "SELECT " PGB_NOW ", (SELECT min(created_at)"
                        " FROM notifications WHERE status = 'pending')",
    .nparams = 0,
};

int pgb_notify_stats(void *h, store_notify_stats_t *ret)
{
	pgb_store_t *b = h;
	store_notify_stats_t st;
	memset(&st, 0, sizeof st);
	pgc_t *c;
	int rc = pgb_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *res = NULL;
	rc = pgc_exec(c, &stmt_notify_stats, NULL, &res);
	if (rc < 0)
		goto out;
	for (int i = 0; i < PQntuples(res); i++) {
		notify_status_t ns;
		int64_t cnt;
		if (store_notify_status_parse(PQgetvalue(res, i, 0), &ns) ==
		        0 &&
		    pgb_get_i64(res, i, 1, &cnt))
			st.count[ns] = cnt;
	}
	PQclear(res);
	res = NULL;
	rc = pgc_exec(c, &stmt_notify_oldest, NULL, &res);
	if (rc < 0)
		goto out;
	int64_t now = 0, oldest = 0;
	rc = OD_EINTERNAL;
	if (PQntuples(res) != 1 || !pgb_get_i64(res, 0, 0, &now) ||
	    !pgb_get_i64(res, 0, 1, &oldest))
		goto out;
	if (!PQgetisnull(res, 0, 1) && now > oldest)
		st.oldest_pending_ms = now - oldest;
	*ret = st;
	rc = 0;
out:
	PQclear(res);
	pgp_put(b->pool, c);
	return rc;
}
