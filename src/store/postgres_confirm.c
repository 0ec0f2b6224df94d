/*
 * postgres_confirm: the confirm step's writes for the postgres store
 * backend: the outcome of a held order (complete, or reject and release
 * its stock), lease renewal while a confirm call is in flight, and the
 * release of held stock that retry and reap use when an order fails.
 * Every write is conditional on the order's fence and status (G7).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/err.h"

/* Product rows in sku order, as stmt_process_products locks them, so a
 * release and a processing batch never wait on each other in a cycle. */
static const pgp_stmt_t stmt_held_lock = {
    .name = "held_lock",
    .sql = "SELECT p.sku FROM products p WHERE p.sku IN (SELECT r.sku"
           " FROM reservations r WHERE r.order_id = ANY($1::text[]))"
           " ORDER BY p.sku FOR UPDATE OF p",
    .nparams = 1,
};

static const pgp_stmt_t stmt_held_return = {
    .name = "held_return",
    .sql = "WITH d AS (DELETE FROM reservations"
           " WHERE order_id = ANY($1::text[]) RETURNING sku, qty),"
           " s AS (SELECT sku, sum(qty) AS q FROM d GROUP BY sku)"
           " UPDATE products p SET stock = p.stock + s.q,"
           " updated_at = $2::bigint FROM s WHERE p.sku = s.sku",
    .nparams = 2,
};

int pgb_release_held(pgc_t *c, const char *ids, int64_t now)
{
	char nowbuf[24];
	pgb_fmt_i64(nowbuf, sizeof nowbuf, now);
	const char *p[2] = {ids, nowbuf};
	PGresult *res = NULL;
	int rc = pgc_exec(c, &stmt_held_lock, p, &res);
	PQclear(res);
	res = NULL;
	if (rc == 0)
		rc = pgc_exec(c, &stmt_held_return, p, &res);
	PQclear(res);
	return rc;
}

int pgb_tx(pgb_store_t *b, int (*body)(pgc_t *c, void *arg), void *arg)
{
	pgc_t *c;
	int rc = pgb_conn(b, &c);
	if (rc < 0)
		return rc;
	rc = pgc_cmd(c, "BEGIN");
	if (rc == 0) {
		rc = body(c, arg);
		if (rc == 0)
			rc = pgc_commit(c);
		else
			pgc_rollback(c);
	}
	pgp_put(b->pool, c);
	return rc;
}

/* Events complete (processing --> completed, the stock stays taken) and
 * reject (--> rejected; the caller then returns the stock). Joined to
 * orders by id, one index probe per order, as stmt_process_apply. */
static const pgp_stmt_t stmt_finish = {
    .name = "finish",
    .sql = PGB_WITH_NOW ", u AS (UPDATE orders o SET status = f.status,"
                        " reason = NULLIF(f.reason, ''), finished_at = " PGB_NOW
                        ", updated_at = " PGB_NOW ", held = false, "
                        "lease_owner = NULL, lease_until = 0"
                        " FROM unnest($1::text[], $2::bigint[], $3::text[],"
                        " $4::text[]) AS f(id, fence, status, reason)"
                        " WHERE o.id = f.id"
                        " AND o.fence = f.fence AND o.held"
                        " AND o.status = 'processing'"
                        " RETURNING o.id, f.fence, o.status, o.updated_at),"
                        " ev AS (INSERT INTO order_events (order_id, event,"
                        " fence, at, replica) SELECT id, CASE status"
                        " WHEN 'completed' THEN 'complete' ELSE 'reject' END,"
                        " fence, updated_at, $5::text"
                        " FROM u) SELECT id, status, updated_at FROM u",
    .nparams = 5,
};

typedef struct finish_arg {
	const store_finish_t *f;
	size_t n;
	bool *fenced;
	const char *replica;
} finish_arg_t;

static int finish_body(pgc_t *c, void *arg)
{
	finish_arg_t *fa = arg;
	pgb_array_t a[4], rej = {0};
	memset(a, 0, sizeof a);
	int rc = 0;
	for (size_t i = 0; i < fa->n && rc == 0; i++) {
		const store_finish_t *f = &fa->f[i];
		fa->fenced[i] = true;
		if (pgb_array_add(&a[0], f->id) < 0 ||
		    pgb_array_add_i64(&a[1], f->fence) < 0 ||
		    pgb_array_add(&a[2],
		                  f->complete ? "completed" : "rejected") < 0 ||
		    pgb_array_add(&a[3], f->complete ? "" : f->reason) < 0)
			rc = -ENOMEM;
	}
	const char *p[5];
	for (int k = 0; k < 4 && rc == 0; k++)
		if (!(p[k] = pgb_array_text(&a[k])))
			rc = -ENOMEM;
	p[4] = fa->replica;
	PGresult *res = NULL;
	if (rc == 0)
		rc = pgc_exec(c, &stmt_finish, p, &res);
	int64_t now = 0;
	for (int r = 0; rc == 0 && r < PQntuples(res); r++) {
		const char *id = PQgetvalue(res, r, 0);
		if (!pgb_get_i64(res, r, 2, &now)) {
			rc = OD_EINTERNAL;
			break;
		}
		for (size_t i = 0; i < fa->n; i++)
			if (strcmp(fa->f[i].id, id) == 0)
				fa->fenced[i] = false;
		if (strcmp(PQgetvalue(res, r, 1), "rejected") == 0 &&
		    pgb_array_add(&rej, id) < 0)
			rc = -ENOMEM;
	}
	PQclear(res);
	if (rc == 0 && rej.n > 0) {
		const char *ids = pgb_array_text(&rej);
		rc = ids ? pgb_release_held(c, ids, now) : -ENOMEM;
	}
	for (int k = 0; k < 4; k++)
		pgb_array_free(&a[k]);
	pgb_array_free(&rej);
	return rc;
}

int pgb_finish(void *h, const store_finish_t *f, size_t n, bool *ret_fenced)
{
	finish_arg_t fa = {f, n, ret_fenced, pgb_replica(h)};
	return pgb_tx(h, finish_body, &fa);
}

/* Extends unexpired leases still under their fence; a renewal lost in
 * flight is harmless (the lease only runs out sooner). */
static const pgp_stmt_t stmt_renew = {
    .name = "renew",
    .sql = PGB_WITH_NOW "UPDATE orders o SET lease_until = " PGB_NOW
                        " + $3::bigint FROM unnest($1::text[], $2::bigint[])"
                        " AS r(id, fence) WHERE o.id = r.id"
                        " AND o.fence = r.fence AND o.status = 'processing'"
                        " AND o.lease_until > " PGB_NOW
                        " RETURNING o.id, o.lease_until",
    .nparams = 3,
};

int pgb_renew(void *h, const char *const *ids, const int64_t *fences, size_t n,
              int64_t lease_ms, int64_t *ret_until)
{
	pgb_array_t a = {0}, fa = {0};
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		ret_until[i] = 0;
		if (pgb_array_add(&a, ids[i]) < 0 ||
		    pgb_array_add_i64(&fa, fences[i]) < 0)
			rc = -ENOMEM;
	}
	char lbuf[24];
	pgb_fmt_i64(lbuf, sizeof lbuf, lease_ms);
	const char *p[3] = {pgb_array_text(&a), pgb_array_text(&fa), lbuf};
	if (rc == 0 && (!p[0] || !p[1]))
		rc = -ENOMEM;
	PGresult *res = NULL;
	if (rc == 0)
		rc = pgb_query(h, &stmt_renew, p, PGB_LOST_RETRY, &res);
	for (int r = 0; rc == 0 && r < PQntuples(res); r++) {
		const char *id = PQgetvalue(res, r, 0);
		int64_t until;
		if (!pgb_get_i64(res, r, 1, &until)) {
			rc = OD_EINTERNAL;
			break;
		}
		for (size_t i = 0; i < n; i++)
			if (strcmp(ids[i], id) == 0)
				ret_until[i] = until;
	}
	PQclear(res);
	pgb_array_free(&a);
	pgb_array_free(&fa);
	return rc;
}
