/*
 * postgres_failure: dead-letter groups in the postgres store backend: the
 * list of failed orders grouped by fingerprint, the requeue of one group
 * in chunks (one statement each, in autocommit), and the fingerprints of
 * failed orders stored before the column existed (filled in at open).
 * Every query reads the partial index orders_failed (fingerprint, seq)
 * WHERE status = 'failed'. The fingerprint is computed in C
 * (core/failure.c) and passed as a parameter: SQL never normalises text.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/failure.h"
#include "store/postgres_int.h"
#include "util/err.h"

/* Failed orders fingerprinted per statement at open. */
#define BACKFILL_CHUNK 500

/* The sample is the reason of the group's highest seq: one step down the
 * same index per group. */
static const pgp_stmt_t stmt_failures_list = {
    .name = "failures_list",
    .sql = "SELECT o.fingerprint, count(*), min(o.finished_at),"
           " max(o.finished_at), (SELECT r.reason FROM orders r"
           " WHERE r.status = 'failed' AND r.fingerprint = o.fingerprint"
           " ORDER BY r.seq DESC LIMIT 1)"
           " FROM orders o WHERE o.status = 'failed'"
           " AND o.fingerprint IS NOT NULL GROUP BY o.fingerprint"
           " ORDER BY 2 DESC, 4 DESC, 1 LIMIT $1::bigint",
    .nparams = 1,
};

int pgb_failures_list(void *h, size_t limit, store_failure_t **ret,
                      size_t *ret_n)
{
	pgb_store_t *b = h;
	char lbuf[24];
	pgb_fmt_i64(lbuf, sizeof lbuf, (int64_t)limit);
	const char *p[1] = {lbuf};
	PGresult *res;
	store_failure_t *out = NULL;
	size_t n = 0;
	int rc = pgb_query(b, &stmt_failures_list, p, PGB_LOST_RETRY, &res);
	if (rc < 0)
		goto out;
	size_t rows = (size_t)PQntuples(res);
	rc = OD_EINTERNAL;
	if (rows > limit)
		goto out;
	rc = -ENOMEM;
	if (!(out = calloc(rows ? rows : 1, sizeof *out)))
		goto out;
	for (n = 0; n < rows; n++) {
		store_failure_t *f = &out[n];
		int r = (int)n;
		rc = OD_EINTERNAL;
		if (!pgb_get_str(res, r, 0, f->fingerprint,
		                 sizeof f->fingerprint) ||
		    !failure_fingerprint_valid(f->fingerprint) ||
		    !pgb_get_i64(res, r, 1, &f->count) ||
		    !pgb_get_i64(res, r, 2, &f->first_seen) ||
		    !pgb_get_i64(res, r, 3, &f->last_seen))
			goto out;
		rc = -ENOMEM;
		if (!PQgetisnull(res, r, 4) &&
		    !(f->sample_reason = strdup(PQgetvalue(res, r, 4))))
			goto out;
	}
	*ret = out;
	*ret_n = n;
	out = NULL;
	rc = 0;
out:
	store_failures_free(out, n);
	PQclear(res);
	return rc;
}

/* The group's highest seq now (0 when empty): requeue stops there. */
static const pgp_stmt_t stmt_failures_bound = {
    .name = "failures_bound",
    .sql = "SELECT COALESCE(max(seq), 0) FROM orders"
           " WHERE status = 'failed' AND fingerprint = $1::text",
    .nparams = 1,
};

/* One chunk: the group's failed orders with seq in ($2, $3], at most $4.
 * c is materialized once (it is read twice); the UPDATE re-checks status
 * and fingerprint on each row it locks, so an order that left failed
 * since (a single requeue, another replica's group requeue) is not
 * touched. Event requeue: failed --> pending, attempts from 0 again,
 * written as stmt_requeue (postgres_order.c) writes it. Answers how many
 * candidates there were, the highest candidate seq, and how many were
 * requeued. */
static const pgp_stmt_t stmt_failures_requeue = {
    .name = "failures_requeue",
    .sql = PGB_WITH_NOW ", c AS (SELECT seq FROM orders"
                        " WHERE status = 'failed' AND fingerprint = $1::text"
                        " AND seq > $2::bigint AND seq <= $3::bigint"
                        " ORDER BY seq LIMIT $4::bigint),"
                        " u AS (UPDATE orders o SET status = 'pending',"
                        " attempts = 0, reason = NULL, fingerprint = NULL,"
                        " next_at = " PGB_NOW ", updated_at = " PGB_NOW ","
                        " finished_at = 0, " PGB_LEASE_CLEAR
                        " FROM c WHERE o.seq = c.seq AND o.status = 'failed'"
                        " AND o.fingerprint = $1::text"
                        " RETURNING o.id, o.fence, o.updated_at),"
                        " ev AS (INSERT INTO order_events (order_id, event,"
                        " fence, at, replica) SELECT id, 'requeue', fence,"
                        " updated_at, $5::text FROM u)"
                        " SELECT (SELECT count(*) FROM c),"
                        " (SELECT COALESCE(max(seq), 0) FROM c),"
                        " (SELECT count(*) FROM u)",
    .nparams = 5,
};

int pgb_failures_requeue(void *h, const char *fingerprint, int64_t *ret_n)
{
	pgb_store_t *b = h;
	const char *pb[1] = {fingerprint};
	PGresult *res;
	int64_t bound = 0, cursor = 0, total = 0, candidates;
	int rc = pgb_query(b, &stmt_failures_bound, pb, PGB_LOST_RETRY, &res);
	if (rc == 0 && (PQntuples(res) != 1 || !pgb_get_i64(res, 0, 0, &bound)))
		rc = OD_EINTERNAL;
	PQclear(res);
	if (rc < 0)
		return rc;
	char cbuf[24], bbuf[24], nbuf[24];
	pgb_fmt_i64(bbuf, sizeof bbuf, bound);
	pgb_fmt_i64(nbuf, sizeof nbuf, STORE_REQUEUE_CHUNK);
	/* Full chunks go on; a short one saw every candidate up to bound. */
	for (candidates = STORE_REQUEUE_CHUNK;
	     bound > 0 && candidates == STORE_REQUEUE_CHUNK;) {
		pgb_fmt_i64(cbuf, sizeof cbuf, cursor);
		const char *p[5] = {fingerprint, cbuf, bbuf, nbuf,
		                    pgb_replica(b)};
		int64_t top = 0, done = 0;
		rc = pgb_query(b, &stmt_failures_requeue, p, PGB_LOST_UNKNOWN,
		               &res);
		if (rc == 0 && (PQntuples(res) != 1 ||
		                !pgb_get_i64(res, 0, 0, &candidates) ||
		                !pgb_get_i64(res, 0, 1, &top) ||
		                !pgb_get_i64(res, 0, 2, &done) ||
		                (candidates > 0 && top <= cursor)))
			rc = OD_EINTERNAL;
		PQclear(res);
		if (rc < 0)
			return rc;
		cursor = top;
		total += done;
	}
	*ret_n = total;
	return 0;
}

static const pgp_stmt_t stmt_failures_unprinted = {
    .name = "failures_unprinted",
    .sql = "SELECT seq, reason FROM orders"
           " WHERE status = 'failed' AND fingerprint IS NULL"
           " ORDER BY seq LIMIT $1::bigint",
    .nparams = 1,
};

/* Conditional, so two replicas opening at once write the same value at
 * most once and an order requeued in between is left alone. */
static const pgp_stmt_t stmt_failures_print = {
    .name = "failures_print",
    .sql = "UPDATE orders o SET fingerprint = x.fp"
           " FROM unnest($1::bigint[], $2::text[]) AS x(seq, fp)"
           " WHERE o.seq = x.seq AND o.status = 'failed'"
           " AND o.fingerprint IS NULL",
    .nparams = 2,
};

/* One chunk: reads up to BACKFILL_CHUNK failed orders without a
 * fingerprint and writes theirs; *ret_n is how many were read. */
static int backfill_chunk(pgb_store_t *b, size_t *ret_n)
{
	char lbuf[24];
	pgb_fmt_i64(lbuf, sizeof lbuf, BACKFILL_CHUNK);
	const char *pl[1] = {lbuf};
	PGresult *res, *up = NULL;
	pgb_array_t seqs = {0}, fps = {0};
	int rc =
	    pgb_query(b, &stmt_failures_unprinted, pl, PGB_LOST_RETRY, &res);
	if (rc < 0)
		goto out;
	size_t rows = (size_t)PQntuples(res);
	rc = -ENOMEM;
	for (size_t i = 0; i < rows; i++) {
		char fp[FAILURE_FP_LEN + 1];
		failure_fingerprint(PQgetisnull(res, (int)i, 1)
		                        ? NULL
		                        : PQgetvalue(res, (int)i, 1),
		                    fp);
		if (pgb_array_add(&seqs, PQgetvalue(res, (int)i, 0)) < 0 ||
		    pgb_array_add(&fps, fp) < 0)
			goto out;
	}
	rc = 0;
	if (rows > 0) {
		const char *pu[2] = {pgb_array_text(&seqs),
		                     pgb_array_text(&fps)};
		rc = -ENOMEM;
		if (!pu[0] || !pu[1])
			goto out;
		/* Harmless to repeat: OD_ESTORE when lost. */
		rc =
		    pgb_query(b, &stmt_failures_print, pu, PGB_LOST_RETRY, &up);
		if (rc < 0)
			goto out;
		/* Nothing written although rows were read: another opener
		 * wrote them between our read and write. Stop rather than
		 * spin on rows someone else is changing. */
		if (strcmp(PQcmdTuples(up), "0") == 0)
			rows = 0;
	}
	*ret_n = rows;
out:
	PQclear(up);
	PQclear(res);
	pgb_array_free(&seqs);
	pgb_array_free(&fps);
	return rc;
}

/*
 * Why a backfill at open rather than computing NULL fingerprints at read
 * time: grouping in C at read time would read every such failed order on
 * every list and could not use the index to requeue one group; filled in
 * once, the list stays one GROUP BY over orders_failed and the requeue one
 * indexed range per chunk. Only orders failed before migration 3 have no
 * fingerprint (every failing write sets it since), so after the first open
 * this is one empty index probe. Chunks keep each statement short.
 */
int pgb_failures_backfill(pgb_store_t *b)
{
	size_t n = BACKFILL_CHUNK;
	int rc = 0;
	while (rc == 0 && n == BACKFILL_CHUNK)
		rc = backfill_chunk(b, &n);
	return rc;
}
