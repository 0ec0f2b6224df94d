/*
 * postgres_lease: leases for the postgres store backend: claim (one
 * statement, SKIP LOCKED, one fence per batch), retry, release and reap.
 * Every write is conditional on the order's fence and status (G7). What a
 * claimed batch becomes is postgres_process.c. Each statement is defined
 * beside the function that runs it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/clock.h"
#include "util/err.h"

/* The claim: one statement. SKIP LOCKED lets replicas claim side by
 * side; the CTE with LIMIT is evaluated once (an IN (subquery LIMIT
 * n) may be re-run by the planner and claim more). Due order is
 * (next_at, seq), which the partial index orders_pending returns
 * without a sort: "oldest" means "claimable for longest". One fence
 * per batch. Event claim: pending --> processing (core/state.c).
 * next_at >= $4 is the claim mark (postgres_mark.c): the scan starts
 * past the dead entries that earlier claims left in orders_pending. The
 * last two columns are the claimed row's next_at and the statement's
 * clock; with nothing claimed, the one row has only the clock. */
static const pgp_stmt_t stmt_claim = {
    .name = "claim",
    .sql = PGB_WITH_NOW
    ", c AS (SELECT seq FROM orders"
    " WHERE status = 'pending' AND next_at >= $4::bigint"
    " AND next_at <= " PGB_NOW " ORDER BY next_at, seq LIMIT $3::bigint"
    " FOR UPDATE SKIP LOCKED),"
    " f AS (SELECT nextval('fence_seq') AS v),"
    " u AS (UPDATE orders o SET status = 'processing',"
    " attempts = o.attempts + 1, lease_owner = $1::text,"
    " lease_until = " PGB_NOW " + $2::bigint, fence = f.v,"
    " updated_at = " PGB_NOW " FROM c, f WHERE o.seq = c.seq"
    " RETURNING o.seq, o.id, o.customer, o.items, o.metadata,"
    " o.status, o.attempts, o.reason, o.created_at,"
    " o.updated_at, o.finished_at, o.fence, o.lease_until,"
    " o.next_at),"
    " ev AS (INSERT INTO order_events (order_id, event, fence,"
    " at, replica) SELECT id, 'claim', fence, updated_at, $5::text FROM u)"
    " SELECT " PGB_ORDER_COLS ", fence, lease_until, next_at,"
    " now.ms FROM now LEFT JOIN u ON true"
    " ORDER BY next_at, seq",
    .nparams = 5,
};

/* Columns of stmt_claim after the order's. */
enum { CLAIM_FENCE = PGB_N_ORDER_COLS, CLAIM_UNTIL, CLAIM_NEXT, CLAIM_NOW };

int pgb_claim(void *h, const char *owner, int64_t lease_ms, size_t max,
              store_claim_t *ret_claims, size_t *ret_n)
{
	pgb_store_t *b = h;
	bool full;
	int64_t lo = pgb_mark_lower(&b->claim_mark, &full);
	char lbuf[24], mbuf[24], lobuf[24];
	pgb_fmt_i64(lbuf, sizeof lbuf, lease_ms);
	pgb_fmt_i64(mbuf, sizeof mbuf, (int64_t)max);
	pgb_fmt_i64(lobuf, sizeof lobuf, lo);
	const char *p[5] = {owner, lbuf, mbuf, lobuf, pgb_replica(b)};
	PGresult *res;
	size_t n = 0;
	/* A claim lost in flight is OD_ESTORE, not OD_EUNKNOWN: orders it
	 * may have taken come back when their lease expires (G6). */
	int rc = pgb_query(b, &stmt_claim, p, PGB_LOST_RETRY, &res);
	if (rc < 0)
		goto out;
	/* One row with a NULL seq: nothing was due. */
	size_t rows = (size_t)PQntuples(res);
	if (rows == 1 && PQgetisnull(res, 0, 0))
		rows = 0;
	int64_t seen;
	rc = OD_EINTERNAL;
	if (rows > max || PQntuples(res) < 1 ||
	    !pgb_get_i64(res, 0, CLAIM_NOW, &seen))
		goto out;
	for (n = 0; n < rows; n++) {
		store_claim_t *cl = &ret_claims[n];
		rc = pgb_row_order(res, (int)n, &cl->order);
		if (rc < 0)
			goto out;
		rc = OD_EINTERNAL;
		if (!pgb_get_i64(res, (int)n, CLAIM_FENCE, &cl->fence) ||
		    !pgb_get_i64(res, (int)n, CLAIM_UNTIL, &cl->lease_until)) {
			order_clear(&cl->order);
			goto out;
		}
	}
	/* A full batch says nothing past its last row (rows are in due
	 * order); a short one, that nothing else was due. */
	rc = OD_EINTERNAL;
	if (rows == max && rows > 0 &&
	    !pgb_get_i64(res, (int)rows - 1, CLAIM_NEXT, &seen))
		goto out;
	pgb_mark_seen(&b->claim_mark, full, seen);
	*ret_n = n;
	rc = 0;
out:
	if (rc < 0) {
		store_claims_clear(ret_claims, n);
		pgb_mark_failed(&b->claim_mark, full);
	}
	PQclear(res);
	return rc;
}

/* Event retry (processing --> pending), or fail (--> failed) when the
 * attempts are used up. */
static const pgp_stmt_t stmt_retry = {
    .name = "retry",
    .sql = PGB_WITH_NOW
    ", u AS (UPDATE orders SET status = CASE"
    " WHEN attempts < $3::int THEN 'pending' ELSE 'failed'"
    " END, reason = $5::text, fingerprint = CASE"
    " WHEN attempts < $3::int THEN NULL ELSE $6::text END,"
    " next_at = " PGB_NOW " + $4::bigint,"
    " updated_at = " PGB_NOW ", finished_at = CASE"
    " WHEN attempts < $3::int THEN 0 ELSE " PGB_NOW " END, " PGB_LEASE_CLEAR
    ", held = held AND attempts < $3::int"
    " WHERE id = $1 AND fence = $2::bigint"
    " AND status = 'processing'"
    " RETURNING id, status, $2::bigint AS fence, updated_at),"
    " ev AS (INSERT INTO order_events (order_id, event, fence,"
    " at, replica) SELECT id, CASE WHEN status = 'failed' THEN 'fail'"
    " ELSE 'retry' END, fence, updated_at, $7::text FROM u)"
    " SELECT status, updated_at FROM u",
    .nparams = 7,
};

typedef struct retry_arg {
	const char *const *p;
	bool failed;
} retry_arg_t;

/* The retry, and when it failed the order, the release of the stock it
 * held (a failed order holds nothing), in one transaction. */
static int retry_body(pgc_t *c, void *arg)
{
	retry_arg_t *ra = arg;
	PGresult *res = NULL;
	int rc = pgc_exec(c, &stmt_retry, ra->p, &res);
	int64_t now = 0;
	if (rc == 0 && PQntuples(res) == 0)
		rc = OD_EFENCE;
	else if (rc == 0 && !pgb_get_i64(res, 0, 1, &now))
		rc = OD_EINTERNAL;
	if (rc == 0)
		ra->failed = strcmp(PQgetvalue(res, 0, 0), "failed") == 0;
	PQclear(res);
	if (rc == 0 && ra->failed) {
		pgb_array_t ids = {0};
		const char *text = pgb_array_add(&ids, ra->p[0]) == 0
		                       ? pgb_array_text(&ids)
		                       : NULL;
		rc = text ? pgb_release_held(c, text, now) : -ENOMEM;
		pgb_array_free(&ids);
	}
	return rc;
}

int pgb_retry(void *h, const char *id, int64_t fence, int max_attempts,
              int64_t delay_ms, const char *error, bool *ret_failed)
{
	char fbuf[24], mbuf[24], dbuf[24];
	pgb_fmt_i64(fbuf, sizeof fbuf, fence);
	pgb_fmt_i64(mbuf, sizeof mbuf, max_attempts);
	pgb_fmt_i64(dbuf, sizeof dbuf, delay_ms);
	char fp[FAILURE_FP_LEN + 1];
	failure_fingerprint(error, fp);
	const char *p[7] = {id, fbuf, mbuf, dbuf, error, fp, pgb_replica(h)};
	retry_arg_t ra = {p, false};
	int rc = pgb_tx(h, retry_body, &ra);
	if (rc == 0 && ret_failed)
		*ret_failed = ra.failed;
	return rc;
}

/* Event release: processing --> pending, the attempt not counted. */
static const pgp_stmt_t stmt_release = {
    .name = "release",
    .sql = PGB_WITH_NOW ", u AS (UPDATE orders SET status = 'pending',"
                        " attempts = greatest(attempts - 1, 0),"
                        " next_at = " PGB_NOW ", updated_at = " PGB_NOW
                        ", " PGB_LEASE_CLEAR
                        " WHERE id = $1 AND fence = $2::bigint"
                        " AND status = 'processing'"
                        " RETURNING id, $2::bigint AS fence, updated_at),"
                        " ev AS (INSERT INTO order_events (order_id, event,"
                        " fence, at, replica) SELECT id, 'release', fence,"
                        " updated_at, $3::text FROM u) SELECT id FROM u",
    .nparams = 3,
};

int pgb_release(void *h, const char *id, int64_t fence)
{
	pgb_store_t *b = h;
	char fbuf[24];
	pgb_fmt_i64(fbuf, sizeof fbuf, fence);
	const char *p[3] = {id, fbuf, pgb_replica(b)};
	PGresult *res;
	int rc = pgb_query(b, &stmt_release, p, PGB_LOST_UNKNOWN, &res);
	if (rc == 0 && PQntuples(res) == 0)
		rc = OD_EFENCE;
	PQclear(res);
	return rc;
}

/* Like the claim: SKIP LOCKED, so the reaper never waits on (or
 * deadlocks with) a replica that is finishing the same order. Event
 * expire (processing --> pending), or fail (--> failed) when the attempts
 * are used up. lease_until > 0 is orders_leased's predicate (migration
 * 5), lease_until >= $4 the reap mark (postgres_mark.c). The last two
 * columns are the reaped lease's old deadline and the statement's clock;
 * with nothing reaped, the one row has only the clock. */
static const pgp_stmt_t stmt_reap = {
    .name = "reap",
    .sql = PGB_WITH_NOW
    ", c AS (SELECT seq, lease_until FROM orders"
    " WHERE status = 'processing' AND lease_until > 0"
    " AND lease_until >= $4::bigint"
    " AND lease_until <= " PGB_NOW " ORDER BY lease_until LIMIT $2::bigint"
    " FOR UPDATE SKIP LOCKED),"
    " u AS (UPDATE orders o SET status = CASE"
    " WHEN o.attempts < $1::int THEN 'pending' ELSE 'failed'"
    " END, reason = CASE WHEN o.attempts < $1::int"
    " THEN o.reason ELSE 'lease expired' END,"
    " fingerprint = CASE WHEN o.attempts < $1::int"
    " THEN NULL ELSE $3::text END,"
    " finished_at = CASE WHEN o.attempts < $1::int THEN 0"
    " ELSE " PGB_NOW " END, next_at = " PGB_NOW ","
    " held = o.held AND o.attempts < $1::int,"
    " updated_at = " PGB_NOW ", lease_owner = NULL,"
    " lease_until = 0 FROM c WHERE o.seq = c.seq"
    " RETURNING o.id, o.status, o.fence, o.updated_at,"
    " c.lease_until AS was),"
    " ev AS (INSERT INTO order_events (order_id, event, fence,"
    " at, replica) SELECT id, CASE WHEN status = 'failed' THEN 'fail'"
    " ELSE 'expire' END, fence, updated_at, $5::text FROM u)"
    " SELECT id, status, updated_at, was, now.ms"
    " FROM now LEFT JOIN u ON true",
    .nparams = 5,
};

typedef struct reap_arg {
	const char *const *p;
	size_t limit;
	size_t n;
	int64_t seen; /* for the reap mark */
} reap_arg_t;

/* The reap, and the release of the stock held by orders it failed, in
 * one transaction. */
static int reap_body(pgc_t *c, void *arg)
{
	reap_arg_t *ra = arg;
	PGresult *res = NULL;
	pgb_array_t failed = {0};
	int64_t now = 0, was, last = INT64_MIN;
	int rc = pgc_exec(c, &stmt_reap, ra->p, &res);
	int rows = rc == 0 ? PQntuples(res) : 0;
	if (rc == 0 && (rows < 1 || !pgb_get_i64(res, 0, 4, &ra->seen)))
		rc = OD_EINTERNAL;
	/* One row with a NULL id: nothing was due. */
	if (rc == 0 && rows == 1 && PQgetisnull(res, 0, 0))
		rows = 0;
	for (int r = 0; rc == 0 && r < rows; r++) {
		if (!pgb_get_i64(res, r, 2, &now) ||
		    !pgb_get_i64(res, r, 3, &was))
			rc = OD_EINTERNAL;
		else if (strcmp(PQgetvalue(res, r, 1), "failed") == 0 &&
		         pgb_array_add(&failed, PQgetvalue(res, r, 0)) < 0)
			rc = -ENOMEM;
		else if (was > last)
			last = was;
	}
	if (rc == 0) {
		ra->n = (size_t)rows;
		/* As the claim's: a full batch vouches only up to its last
		 * deadline. */
		if (ra->n == ra->limit && rows > 0)
			ra->seen = last;
	}
	PQclear(res);
	if (rc == 0 && failed.n > 0) {
		const char *ids = pgb_array_text(&failed);
		rc = ids ? pgb_release_held(c, ids, now) : -ENOMEM;
	}
	pgb_array_free(&failed);
	return rc;
}

int pgb_reap(void *h, int max_attempts, size_t limit, size_t *ret_n)
{
	pgb_store_t *b = h;
	bool full;
	int64_t lo = pgb_mark_lower(&b->reap_mark, &full);
	char mbuf[24], lbuf[24], lobuf[24];
	pgb_fmt_i64(mbuf, sizeof mbuf, max_attempts);
	pgb_fmt_i64(lbuf, sizeof lbuf, (int64_t)limit);
	pgb_fmt_i64(lobuf, sizeof lobuf, lo);
	char fp[FAILURE_FP_LEN + 1];
	failure_fingerprint("lease expired", fp);
	const char *p[5] = {mbuf, lbuf, fp, lobuf, pgb_replica(b)};
	reap_arg_t ra = {p, limit, 0, 0};
	int rc = pgb_tx(h, reap_body, &ra);
	/* A reap lost in flight is harmless to repeat. */
	if (rc == OD_EUNKNOWN)
		rc = OD_ESTORE;
	if (rc == 0) {
		pgb_mark_seen(&b->reap_mark, full, ra.seen);
		*ret_n = ra.n;
	} else {
		pgb_mark_failed(&b->reap_mark, full);
	}
	return rc;
}
