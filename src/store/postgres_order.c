/*
 * postgres_order: orders in the postgres store backend: submit (one
 * statement per group-committed batch), order reads (get, list, the
 * terminal check, the fence read), the client transitions requeue and
 * cancel, and stats. Each statement is defined beside the function that
 * runs it; the pool prepares it on a connection at first use.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/err.h"
#include "util/failpoint.h"

/* ---- submit ---- */

static void results_clear(store_submit_result_t *results, size_t n)
{
	for (size_t i = 0; i < n; i++)
		order_clear(&results[i].order);
}

/* A result row found by order id: RETURNING promises no row order, so
 * rows are matched to the batch by id, never by position. */
typedef struct id_row {
	const char *id;
	int row;
	bool used;
} id_row_t;

static int id_row_cmp(const void *a, const void *b)
{
	return strcmp(((const id_row_t *)a)->id, ((const id_row_t *)b)->id);
}

/* An index of res by its id column (1); NULL on allocation failure. The
 * caller frees it. */
static id_row_t *index_rows(const PGresult *res)
{
	int n = PQntuples(res);
	id_row_t *ix = calloc(n ? (size_t)n : 1, sizeof *ix);
	if (!ix)
		return NULL;
	for (int k = 0; k < n; k++)
		ix[k] = (id_row_t){PQgetvalue(res, k, 1), k, false};
	qsort(ix, (size_t)n, sizeof *ix, id_row_cmp);
	return ix;
}

static id_row_t *find_row(id_row_t *ix, const PGresult *res, const char *id)
{
	id_row_t key = {id, 0, false};
	return bsearch(&key, ix, (size_t)PQntuples(res), sizeof *ix,
	               id_row_cmp);
}

/* One statement for the whole batch, in array order (the ORDER BY
 * feeds the insert, so seq follows the array). No event: the row itself
 * records the submission (id, created_at). It returns what only the
 * store knows of a created order (seq, the clock); the rest is what was
 * sent (submit_insert). A later duplicate in
 * the batch conflicts with the row the earlier one just inserted and
 * is skipped, exactly like a separate submit would be. */
static const pgp_stmt_t stmt_submit = {
    .name = "submit",
    .sql = PGB_WITH_NOW ", ins AS (INSERT INTO orders (id, customer,"
                        " items, metadata, status, attempts, created_at,"
                        " updated_at, finished_at, next_at, fence)"
                        " SELECT x.id, x.customer, x.items, x.metadata,"
                        " 'pending', 0, now.ms, now.ms, 0, now.ms, 0"
                        " FROM unnest($1::text[], $2::text[], $3::text[],"
                        " $4::text[]) WITH ORDINALITY"
                        " AS x(id, customer, items, metadata, ord), now"
                        " ORDER BY x.ord ON CONFLICT (id) DO NOTHING"
                        " RETURNING seq, id, created_at)"
                        " SELECT seq, id, created_at FROM ins",
    .nparams = 4,
};

static const pgp_stmt_t stmt_submit_read = {
    .name = "submit_read",
    .sql = "SELECT " PGB_ORDER_COLS " FROM orders"
           " WHERE id = ANY($1::text[])",
    .nparams = 1,
};

/* On an error of submit_insert: what is known to be stored. */
typedef enum stored {
	STORED_NONE,  /* the statement failed: nothing */
	STORED_MAYBE, /* lost in flight: it may have committed */
	STORED_ALL,   /* it committed; reading its result failed after */
} stored_t;

/* A created order as stmt_submit stored it: o's content (the text sent is
 * the text stored) with the row's seq and clock, pending, no attempt. */
static int created_order(const PGresult *res, int row, const order_t *o,
                         order_t *ret)
{
	int64_t seq, at;
	if (!pgb_get_i64(res, row, 0, &seq) || !pgb_get_i64(res, row, 2, &at))
		return OD_EINTERNAL;
	int rc = order_copy(o, ret);
	if (rc < 0)
		return rc;
	if (!ret->metadata && !(ret->metadata = strdup("{}"))) {
		order_clear(ret);
		return -ENOMEM;
	}
	order_set_reason(ret, NULL);
	ret->seq = seq;
	ret->status = ORDER_PENDING;
	ret->attempts = 0;
	ret->created_at = ret->updated_at = at;
	ret->finished_at = 0;
	return 0;
}

/*
 * The insert of the whole batch, one statement in autocommit, on one
 * connection. The entries it created get their results and created[i];
 * the rest (stored before, or a later duplicate in the batch) are left for
 * submit_read_back. On an error, *ret_stored says what was stored.
 */
static int submit_insert(pgb_store_t *b, const order_t *const *orders, size_t n,
                         const char *const *arrays, store_submit_result_t *res,
                         bool *created, stored_t *ret_stored)
{
	pgc_t *c;
	*ret_stored = STORED_NONE;
	int rc = pgb_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *ins = NULL;
	id_row_t *ix = NULL;
	rc = pgc_exec(c, &stmt_submit, arrays, &ins);
	if (rc < 0) {
		if (c->lost)
			*ret_stored = STORED_MAYBE;
		goto out;
	}
	*ret_stored = STORED_ALL;
	if (failpoint_hit("pg_submit_result_fail")) {
		rc = OD_EINTERNAL;
		goto out;
	}
	/* The first entry with an id owns the inserted row; a later
	 * duplicate in the batch finds it used and is read back. */
	int rows = PQntuples(ins), r = 0;
	rc = -ENOMEM;
	if (!(ix = index_rows(ins)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		id_row_t *hit = find_row(ix, ins, orders[i]->id);
		if (!hit || hit->used)
			continue;
		hit->used = true;
		r++;
		rc = created_order(ins, hit->row, orders[i], &res[i].order);
		if (rc < 0)
			goto out;
		res[i].outcome = SUBMIT_CREATED;
		created[i] = true;
	}
	rc = r == rows ? 0 : OD_EINTERNAL;
out:
	PQclear(ins);
	free(ix);
	pgp_put(b->pool, c);
	return rc;
}

/*
 * Answers the entries that submit_insert did not create: each id is stored
 * (before, or earlier in this batch), so reading it back tells a replay
 * from a conflict. Content never changes once stored, so reading after
 * the insert's commit, on any connection, is exact.
 */
static int submit_read_back(pgb_store_t *b, const order_t *const *orders,
                            size_t n, store_submit_result_t *res,
                            const bool *created)
{
	pgb_array_t missing = {0};
	for (size_t i = 0; i < n; i++)
		if (!created[i] && pgb_array_add(&missing, orders[i]->id) < 0) {
			pgb_array_free(&missing);
			return -ENOMEM;
		}
	if (missing.n == 0)
		return 0;
	const char *p[1] = {pgb_array_text(&missing)};
	PGresult *rd = NULL;
	id_row_t *rx = NULL;
	int rc = -ENOMEM;
	if (!p[0])
		goto out;
	rc = failpoint_hit("pg_submit_readback_fail")
	         ? OD_ESTORE
	         : pgb_query(b, &stmt_submit_read, p, PGB_LOST_RETRY, &rd);
	if (rc < 0)
		goto out;
	rc = -ENOMEM;
	if (!(rx = index_rows(rd)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (created[i])
			continue;
		id_row_t *hit = find_row(rx, rd, orders[i]->id);
		rc = OD_EINTERNAL;
		if (!hit)
			goto out;
		order_t stored;
		rc = pgb_row_order(rd, hit->row, &stored);
		if (rc < 0)
			goto out;
		if (order_same_content(orders[i], &stored)) {
			res[i].outcome = SUBMIT_REPLAYED;
			res[i].order = stored;
		} else {
			res[i].outcome = SUBMIT_CONFLICT;
			order_clear(&stored);
		}
	}
	rc = 0;
out:
	for (size_t i = 0; rc < 0 && i < n; i++)
		if (!created[i])
			order_clear(&res[i].order);
	PQclear(rd);
	free(rx);
	pgb_array_free(&missing);
	return rc;
}

/*
 * Why submit is not one explicit transaction: the insert and its events
 * are one statement, atomic on its own in autocommit, and the read-back
 * needs no transaction (stored content never changes). BEGIN and COMMIT
 * would add two round trips to every group commit for nothing. What
 * matters is what an error means: if the insert failed, nothing was
 * stored; lost in flight, maybe everything (resolved by submitting again,
 * which reads back); once it succeeded, the created orders ARE stored, so
 * a failure after that (reading its result, or the read-back, retried once
 * on a fresh connection) is OD_EUNKNOWN, never "nothing stored".
 */
int pgb_submit(void *h, const order_t *const *orders, size_t n,
               store_submit_result_t *results)
{
	pgb_store_t *b = h;
	pgb_array_t a[4];
	memset(a, 0, sizeof a);
	bool *created = calloc(n, sizeof *created);
	int rc = created ? 0 : -ENOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char *items = order_items_to_text(orders[i]);
		if (!items) {
			rc = -ENOMEM;
			break;
		}
		if (pgb_array_add(&a[0], orders[i]->id) < 0 ||
		    pgb_array_add(&a[1], orders[i]->customer) < 0 ||
		    pgb_array_add(&a[2], items) < 0 ||
		    pgb_array_add(&a[3], orders[i]->metadata
		                             ? orders[i]->metadata
		                             : "{}") < 0)
			rc = -ENOMEM;
		free(items);
	}
	const char *p[4];
	for (int k = 0; k < 4 && rc == 0; k++)
		if (!(p[k] = pgb_array_text(&a[k])))
			rc = -ENOMEM;
	if (rc < 0)
		goto out;
	memset(results, 0, n * sizeof *results);
	stored_t stored;
	rc = submit_insert(b, orders, n, p, results, created, &stored);
	if (rc < 0 && stored == STORED_MAYBE) {
		/* The connection broke with the statement in flight: it may
		 * have committed. Submitting again on a fresh connection is
		 * the read-back: rows that did commit come back as replays of
		 * identical content (the answer a client retry would get),
		 * the rest are created now. */
		results_clear(results, n);
		memset(created, 0, n * sizeof *created);
		rc = submit_insert(b, orders, n, p, results, created, &stored);
		if (rc < 0) {
			rc = OD_EUNKNOWN;
			goto clear;
		}
	}
	if (rc < 0) {
		/* Nothing stored, or (the insert's own result could not be
		 * read) everything: the caller reads back. */
		if (stored == STORED_ALL)
			rc = OD_EUNKNOWN;
		goto clear;
	}
	/* From here on the created orders are stored. */
	rc = submit_read_back(b, orders, n, results, created);
	if (rc < 0)
		rc = submit_read_back(b, orders, n, results, created);
	if (rc < 0)
		rc = OD_EUNKNOWN;
clear:
	if (rc < 0)
		results_clear(results, n);
out:
	for (int k = 0; k < 4; k++)
		pgb_array_free(&a[k]);
	free(created);
	return rc;
}

/* ---- order reads and client transitions ---- */

static const pgp_stmt_t stmt_get = {
    .name = "get",
    .sql = "SELECT " PGB_ORDER_COLS " FROM orders WHERE id = $1",
    .nparams = 1,
};

/* Runs a one-id statement returning at most one order row; a write's
 * second parameter is the replica it records with its event. */
static int one_order(pgb_store_t *b, const pgp_stmt_t *stmt, const char *id,
                     bool write, order_t *ret, bool *ret_found)
{
	PGresult *res;
	const char *p[2] = {id, pgb_replica(b)};
	int rc = pgb_query(b, stmt, p,
	                   write ? PGB_LOST_UNKNOWN : PGB_LOST_RETRY, &res);
	if (rc == 0) {
		*ret_found = PQntuples(res) > 0;
		if (*ret_found && ret)
			rc = pgb_row_order(res, 0, ret);
	}
	PQclear(res);
	return rc;
}

int pgb_order_get(void *h, const char *id, order_t *ret)
{
	bool found;
	order_t o;
	int rc = one_order(h, &stmt_get, id, false, &o, &found);
	if (rc < 0)
		return rc;
	if (!found)
		return OD_ENOTFOUND;
	*ret = o;
	return 0;
}

static const pgp_stmt_t stmt_order_fence = {
    .name = "order_fence",
    .sql = "SELECT status, COALESCE(fence, 0) FROM orders"
           " WHERE id = $1",
    .nparams = 1,
};

int pgb_order_fence(void *h, const char *id, order_status_t *ret_status,
                    int64_t *ret_fence)
{
	PGresult *res;
	const char *p[1] = {id};
	int rc = pgb_query(h, &stmt_order_fence, p, PGB_LOST_RETRY, &res);
	if (rc == 0) {
		order_status_t st;
		if (PQntuples(res) == 0)
			rc = OD_ENOTFOUND;
		else if (order_status_parse(PQgetvalue(res, 0, 0), &st) < 0)
			rc = OD_EINTERNAL;
		else {
			*ret_status = st;
			*ret_fence = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		}
	}
	PQclear(res);
	return rc;
}

/* The position in the array comes back with each row: no matching. */
static const pgp_stmt_t stmt_orders_status = {
    .name = "orders_status",
    .sql = "SELECT x.i, o.status FROM unnest($1::text[])"
           " WITH ORDINALITY AS x(id, i)"
           " JOIN orders o ON o.id = x.id",
    .nparams = 1,
};

int pgb_orders_terminal(void *h, const char *const *ids, size_t n,
                        bool *ret_terminal)
{
	pgb_store_t *b = h;
	pgb_array_t a = {0};
	for (size_t i = 0; i < n; i++)
		if (pgb_array_add(&a, ids[i]) < 0) {
			pgb_array_free(&a);
			return -ENOMEM;
		}
	const char *p[1] = {pgb_array_text(&a)};
	if (!p[0]) {
		pgb_array_free(&a);
		return -ENOMEM;
	}
	PGresult *res;
	int rc = pgb_query(b, &stmt_orders_status, p, PGB_LOST_RETRY, &res);
	if (rc == 0) {
		/* Unknown ids stay "terminal": the full read answers 404. */
		for (size_t i = 0; i < n; i++)
			ret_terminal[i] = true;
		for (int r = 0; r < PQntuples(res); r++) {
			order_status_t st;
			int64_t i;
			if (!pgb_get_i64(res, r, 0, &i) || i < 1 ||
			    (size_t)i > n ||
			    order_status_parse(PQgetvalue(res, r, 1), &st) < 0)
				continue;
			ret_terminal[i - 1] = order_status_terminal(st);
		}
	}
	PQclear(res);
	pgb_array_free(&a);
	return rc;
}

static const pgp_stmt_t stmt_list = {
    .name = "list",
    .sql = "SELECT " PGB_ORDER_COLS " FROM orders WHERE seq > $1::bigint"
           " AND ($2::text IS NULL OR status = $2::text)"
           " ORDER BY seq LIMIT $3::bigint",
    .nparams = 3,
};

int pgb_order_list(void *h, int status, int64_t after_seq, size_t limit,
                   order_t **ret_orders, size_t *ret_n, bool *ret_more)
{
	pgb_store_t *b = h;
	char seqbuf[24], limbuf[24];
	pgb_fmt_i64(seqbuf, sizeof seqbuf, after_seq);
	pgb_fmt_i64(limbuf, sizeof limbuf, (int64_t)limit + 1);
	const char *p[3] = {seqbuf, NULL, limbuf};
	if (status >= 0)
		p[1] = order_status_name((order_status_t)status);
	PGresult *res;
	order_t *orders = NULL;
	size_t n = 0;
	int rc = pgb_query(b, &stmt_list, p, PGB_LOST_RETRY, &res);
	if (rc < 0)
		goto out;
	size_t rows = (size_t)PQntuples(res);
	size_t take = rows > limit ? limit : rows;
	orders = calloc(take ? take : 1, sizeof *orders);
	rc = -ENOMEM;
	if (!orders)
		goto out;
	for (n = 0; n < take; n++) {
		rc = pgb_row_order(res, (int)n, &orders[n]);
		if (rc < 0)
			goto out;
	}
	*ret_orders = orders;
	*ret_n = n;
	*ret_more = rows > limit;
	orders = NULL;
	rc = 0;
out:
	store_orders_free(orders, n);
	PQclear(res);
	return rc;
}

/* A conditional client transition: OD_ESTATE when the order exists in
 * another status, OD_ENOTFOUND when it does not exist. */
static int transition(pgb_store_t *b, const pgp_stmt_t *stmt, const char *id,
                      order_t *ret)
{
	bool found;
	order_t o;
	int rc = one_order(b, stmt, id, true, &o, &found);
	if (rc < 0)
		return rc;
	if (found) {
		if (ret)
			*ret = o;
		else
			order_clear(&o);
		return 0;
	}
	rc = one_order(b, &stmt_get, id, false, NULL, &found);
	if (rc < 0)
		return rc;
	return found ? OD_ESTATE : OD_ENOTFOUND;
}

/* Event requeue: failed --> pending, attempts from 0 again. */
static const pgp_stmt_t stmt_requeue = {
    .name = "requeue",
    .sql = PGB_WITH_NOW ", u AS (UPDATE orders SET status = 'pending',"
                        " attempts = 0, reason = NULL, fingerprint = NULL,"
                        " next_at = " PGB_NOW ","
                        " updated_at = " PGB_NOW ","
                        " finished_at = 0, " PGB_LEASE_CLEAR
                        " WHERE id = $1 AND status = 'failed'"
                        " RETURNING " PGB_ORDER_COLS ", fence),"
                        " ev AS (INSERT INTO order_events (order_id, event,"
                        " fence, at, replica) SELECT id, 'requeue', fence,"
                        " updated_at, $2::text"
                        " FROM u) SELECT " PGB_ORDER_COLS " FROM u",
    .nparams = 2,
};

/* Event cancel: pending --> cancelled, unless the order holds stock
 * awaiting a confirm retry (store.h). */
static const pgp_stmt_t stmt_cancel = {
    .name = "cancel",
    .sql = PGB_WITH_NOW ", u AS (UPDATE orders SET status = 'cancelled',"
                        " updated_at = " PGB_NOW ", finished_at = " PGB_NOW
                        " WHERE id = $1 AND status = 'pending'"
                        " AND NOT held RETURNING " PGB_ORDER_COLS ", fence),"
                        " ev AS (INSERT INTO order_events (order_id, event,"
                        " fence, at, replica) SELECT id, 'cancel', fence,"
                        " updated_at, $2::text"
                        " FROM u) SELECT " PGB_ORDER_COLS " FROM u",
    .nparams = 2,
};

int pgb_order_requeue(void *h, const char *id, order_t *ret)
{
	return transition(h, &stmt_requeue, id, ret);
}

int pgb_order_cancel(void *h, const char *id, order_t *ret)
{
	return transition(h, &stmt_cancel, id, ret);
}

static const pgp_stmt_t stmt_stats_count = {
    .name = "stats_count",
    .sql = "SELECT status, count(*) FROM orders"
           " GROUP BY status",
    .nparams = 0,
};

/* Each count is answered from its small partial index (orders_leased's
 * predicate is lease_until > 0: migration 5). */
static const pgp_stmt_t stmt_stats_live = {
    .name = "stats_live",
    .sql = "SELECT 'pending', count(*) FROM orders"
           " WHERE status = 'pending' UNION ALL"
           " SELECT 'processing', count(*) FROM orders"
           " WHERE lease_until > 0 AND status = 'processing'",
    .nparams = 0,
};

static const pgp_stmt_t stmt_stats_oldest = {
    .name = "stats_oldest",
    .sql = PGB_WITH_NOW "SELECT " PGB_NOW ", (SELECT min(created_at)"
                        " FROM orders WHERE status = 'pending'"
                        " AND next_at <= " PGB_NOW ")",
    .nparams = 0,
};

int pgb_stats(void *h, bool terminal, store_stats_t *ret)
{
	pgb_store_t *b = h;
	store_stats_t st;
	memset(&st, 0, sizeof st);
	pgc_t *c;
	int rc = pgb_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *res = NULL;
	rc = pgc_exec(c, terminal ? &stmt_stats_count : &stmt_stats_live, NULL,
	              &res);
	if (rc < 0)
		goto out;
	for (int i = 0; i < PQntuples(res); i++) {
		order_status_t s;
		int64_t cnt;
		if (order_status_parse(PQgetvalue(res, i, 0), &s) == 0 &&
		    pgb_get_i64(res, i, 1, &cnt))
			st.count[s] = cnt;
	}
	PQclear(res);
	res = NULL;
	rc = pgc_exec(c, &stmt_stats_oldest, NULL, &res);
	if (rc < 0)
		goto out;
	int64_t oldest = 0;
	rc = OD_EINTERNAL;
	if (PQntuples(res) != 1 || !pgb_get_i64(res, 0, 0, &st.now_ms) ||
	    !pgb_get_i64(res, 0, 1, &oldest))
		goto out;
	if (!PQgetisnull(res, 0, 1) && st.now_ms > oldest)
		st.oldest_pending_ms = st.now_ms - oldest;
	st.resets = pgp_resets(b->pool);
	*ret = st;
	rc = 0;
out:
	PQclear(res);
	pgp_put(b->pool, c);
	return rc;
}

/* ---- history ---- */

static const pgp_stmt_t stmt_order_history = {
    .name = "order_history",
    .sql = "SELECT event, fence, at, count(*) OVER (), replica"
           " FROM order_events"
           " WHERE order_id = $1 ORDER BY id LIMIT $2::bigint",
    .nparams = 2,
};

int pgb_order_history(void *h, const char *id, store_event_t *ret, size_t max,
                      size_t *ret_n)
{
	char lim[24];
	/* LIMIT 0 would hide the total: ask for one row at least. */
	pgb_fmt_i64(lim, sizeof lim, max > 0 ? (int64_t)max : 1);
	const char *p[2] = {id, lim};
	PGresult *res;
	int rc = pgb_query(h, &stmt_order_history, p, PGB_LOST_RETRY, &res);
	if (rc == 0) {
		size_t n = (size_t)PQntuples(res);
		for (size_t i = 0; i < n && i < max; i++) {
			snprintf(ret[i].event, sizeof ret[i].event, "%s",
			         PQgetvalue(res, (int)i, 0));
			ret[i].fence =
			    strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
			ret[i].at =
			    strtoll(PQgetvalue(res, (int)i, 2), NULL, 10);
			snprintf(ret[i].replica, sizeof ret[i].replica, "%s",
			         PQgetvalue(res, (int)i, 4));
		}
		*ret_n = n > 0
		             ? (size_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10)
		             : 0;
	}
	PQclear(res);
	return rc;
}
