/*
 * sqlite_failure: dead-letter groups in the SQLite backend: the list of
 * failed orders grouped by fingerprint, the requeue of one group in
 * chunks, and the fingerprints of failed orders stored before the column
 * existed (filled in at open). Every query here reads the partial index
 * orders_failed (fingerprint, seq) WHERE status = 'failed', so none of it
 * walks the orders that did not fail. The fingerprint is computed in C
 * (core/failure.c) and bound as a parameter: SQL never normalises text.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/failure.h"
#include "core/state.h"
#include "store/sqlite_int.h"
#include "util/err.h"

/* Failed orders fingerprinted per transaction at open. */
#define BACKFILL_CHUNK 500

int sqb_failures_list(void *b, size_t limit, store_failure_t **ret,
                      size_t *ret_n)
{
	sqb_store_t *s = b;
	store_failure_t *out = calloc(limit, sizeof *out);
	size_t n = 0;
	if (!out)
		return -ENOMEM;
	sqb_conn_t *c = sqb_reader_get(s);
	sqlite3_stmt *st = NULL;
	/* The sample is the reason of the group's highest seq: one step
	 * down the same index per group. */
	const sqb_param_t p[] = {SQB_INT((int64_t)limit)};
	int rc = sqb_row(c, SQB_FAILURES_LIST,
	                 "SELECT o.fingerprint, COUNT(*), MIN(o.finished_at),"
	                 " MAX(o.finished_at), (SELECT r.reason FROM orders r"
	                 " INDEXED BY orders_failed WHERE r.status = 'failed'"
	                 " AND r.fingerprint = o.fingerprint"
	                 " ORDER BY r.seq DESC LIMIT 1)"
	                 " FROM orders o INDEXED BY orders_failed"
	                 " WHERE o.status = 'failed'"
	                 " AND o.fingerprint IS NOT NULL"
	                 " GROUP BY o.fingerprint ORDER BY 2 DESC, 4 DESC, 1"
	                 " LIMIT ?1",
	                 p, SQB_NPARAMS(p), &st);
	for (; rc == 1; rc = sqb_step(st)) {
		if (n == limit) {
			rc = OD_EINTERNAL;
			break;
		}
		store_failure_t *f = &out[n];
		const unsigned char *fp = sqlite3_column_text(st, 0);
		if (!fp || !failure_fingerprint_valid((const char *)fp)) {
			/* Only this backend writes the column. */
			rc = OD_EINTERNAL;
			break;
		}
		memcpy(f->fingerprint, fp, FAILURE_FP_LEN + 1);
		f->count = sqlite3_column_int64(st, 1);
		f->first_seen = sqlite3_column_int64(st, 2);
		f->last_seen = sqlite3_column_int64(st, 3);
		const unsigned char *reason = sqlite3_column_text(st, 4);
		if (reason &&
		    !(f->sample_reason = strdup((const char *)reason))) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	sqlite3_reset(st);
	sqb_reader_put(s, c);
	if (rc < 0) {
		store_failures_free(out, n);
		return rc;
	}
	*ret = out;
	*ret_n = n;
	return 0;
}

/* The group's highest seq now (0 when empty): requeue stops there. */
static int group_bound(sqb_conn_t *c, const char *fingerprint,
                       int64_t *ret_bound)
{
	const sqb_param_t p[] = {SQB_TEXT(fingerprint)};
	sqlite3_stmt *st = NULL;
	int rc = sqb_row(c, SQB_FAILURES_BOUND,
	                 "SELECT COALESCE(MAX(seq), 0) FROM orders"
	                 " INDEXED BY orders_failed WHERE status = 'failed'"
	                 " AND fingerprint = ?1",
	                 p, SQB_NPARAMS(p), &st);
	if (rc < 0)
		return rc;
	*ret_bound = rc == 1 ? sqlite3_column_int64(st, 0) : 0;
	if (rc == 1)
		sqlite3_reset(st);
	return 0;
}

/* One chunk in one durable transaction: the group's failed orders with
 * seq in (*cursor, bound], at most STORE_REQUEUE_CHUNK. *ret_rows is how
 * many were requeued; *cursor moves to the highest seq among them. */
static int requeue_chunk(sqb_store_t *s, const char *fingerprint, int64_t bound,
                         int64_t *cursor, size_t *ret_rows)
{
	sqb_conn_t *c;
	int64_t now;
	size_t rows = 0;
	int64_t top = *cursor;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	/* Event requeue: failed --> pending, attempts from 0 again, as
	 * sqb_order_requeue writes it. One writer: the subquery's rows
	 * cannot change under the UPDATE. */
	const sqb_param_t p[] = {SQB_TEXT(fingerprint), SQB_INT(*cursor),
	                         SQB_INT(bound), SQB_INT(STORE_REQUEUE_CHUNK),
	                         SQB_INT(now)};
	sqlite3_stmt *st = NULL;
	rc = sqb_row(c, SQB_FAILURES_REQUEUE,
	             "UPDATE orders SET status = 'pending', attempts = 0,"
	             " reason = NULL, fingerprint = NULL, finished_at = 0,"
	             " next_at = ?5, updated_at = ?5"
	             " WHERE seq IN (SELECT seq FROM orders"
	             " INDEXED BY orders_failed WHERE status = 'failed'"
	             " AND fingerprint = ?1 AND seq > ?2 AND seq <= ?3"
	             " ORDER BY seq LIMIT ?4)"
	             " RETURNING seq, id, fence",
	             p, SQB_NPARAMS(p), &st);
	for (; rc == 1; rc = sqb_step(st)) {
		const char *id = (const char *)sqlite3_column_text(st, 1);
		if (!id) {
			rc = OD_EINTERNAL;
			break;
		}
		int64_t seq = sqlite3_column_int64(st, 0);
		if (seq > top)
			top = seq;
		rc = sqb_event_add(c, id, state_event_name(EV_REQUEUE),
		                   sqlite3_column_int64(st, 2), now);
		if (rc < 0)
			break;
		rows++;
	}
	sqlite3_reset(st);
	rc = sqb_write_end(s, rc, rows);
	if (rc < 0)
		return rc;
	if (rows > 0)
		*cursor = top;
	*ret_rows = rows;
	return 0;
}

int sqb_failures_requeue(void *b, const char *fingerprint, int64_t *ret_n)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	int64_t bound = 0;
	int rc = group_bound(c, fingerprint, &bound);
	sqb_reader_put(s, c);
	if (rc < 0)
		return rc;
	int64_t cursor = 0, total = 0;
	size_t rows = STORE_REQUEUE_CHUNK;
	/* A short chunk is the last: the one writer saw every row up to
	 * bound in that transaction. */
	while (bound > 0 && rows == STORE_REQUEUE_CHUNK) {
		rc = requeue_chunk(s, fingerprint, bound, &cursor, &rows);
		if (rc < 0)
			return rc;
		total += (int64_t)rows;
	}
	*ret_n = total;
	return 0;
}

/* A failed order's seq and the fingerprint it should have. */
typedef struct unprinted {
	int64_t seq;
	char fp[FAILURE_FP_LEN + 1];
} unprinted_t;

/* One chunk: reads up to BACKFILL_CHUNK failed orders without a
 * fingerprint, then writes theirs (the reads finish before the first
 * write, so the scan never sees its own updates). */
static int backfill_chunk(sqb_store_t *s, unprinted_t *rows, size_t *ret_n)
{
	sqb_conn_t *c;
	int64_t now;
	size_t n = 0;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	const sqb_param_t p[] = {SQB_INT(BACKFILL_CHUNK)};
	sqlite3_stmt *st = NULL;
	rc = sqb_row(c, SQB_FAILURES_UNPRINTED,
	             "SELECT seq, reason FROM orders INDEXED BY orders_failed"
	             " WHERE status = 'failed' AND fingerprint IS NULL"
	             " ORDER BY seq LIMIT ?1",
	             p, SQB_NPARAMS(p), &st);
	for (; rc == 1 && n < BACKFILL_CHUNK; rc = sqb_step(st), n++) {
		rows[n].seq = sqlite3_column_int64(st, 0);
		failure_fingerprint((const char *)sqlite3_column_text(st, 1),
		                    rows[n].fp);
	}
	sqlite3_reset(st);
	for (size_t i = 0; rc >= 0 && i < n; i++) {
		const sqb_param_t u[] = {SQB_INT(rows[i].seq),
		                         SQB_TEXT(rows[i].fp)};
		rc = sqb_exec(c, SQB_FAILURES_PRINT,
		              "UPDATE orders SET fingerprint = ?2"
		              " WHERE seq = ?1 AND status = 'failed'"
		              " AND fingerprint IS NULL",
		              u, SQB_NPARAMS(u));
	}
	rc = sqb_write_end(s, rc, n);
	if (rc < 0)
		return rc;
	*ret_n = n;
	return 0;
}

/*
 * Why a backfill at open rather than computing NULL fingerprints at read
 * time: grouping in C at read time would read every such failed order on
 * every list and could not use the index to requeue one group; filled in
 * once, the list stays one GROUP BY over orders_failed and the requeue one
 * indexed range per chunk. Only orders failed before migration 4 have no
 * fingerprint (every failing write sets it since), so after the first open
 * this is one empty index probe.
 */
int sqb_failures_backfill(sqb_store_t *s)
{
	unprinted_t *rows = calloc(BACKFILL_CHUNK, sizeof *rows);
	if (!rows)
		return -ENOMEM;
	size_t n = BACKFILL_CHUNK;
	int rc = 0;
	while (rc == 0 && n == BACKFILL_CHUNK)
		rc = backfill_chunk(s, rows, &n);
	free(rows);
	return rc;
}
