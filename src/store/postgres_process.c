/*
 * postgres_process: deciding orders in the postgres store backend: one
 * transaction per batch, products locked in sku order, all or nothing per
 * order. process and reserve decide a claimed batch (postgres_lease.c)
 * under its fence; take claims and decides in the same transaction, so no
 * lease is ever seen and each order is written once. Each statement is
 * defined beside the function that runs it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/failure.h"
#include "store/postgres_int.h"
#include "util/err.h"
#include "util/failpoint.h"

/* Per batch: the distinct skus of the live orders with their stock. */
typedef struct sku_stock {
	const char *sku;
	int64_t before, now;
	bool known;
	char tid[32]; /* the locked row version's ctid, "(block,item)" */
} sku_stock_t;

static int cmp_sku(const void *a, const void *b)
{
	return strcmp(((const sku_stock_t *)a)->sku,
	              ((const sku_stock_t *)b)->sku);
}

static sku_stock_t *sku_find(sku_stock_t *v, size_t n, const char *sku)
{
	sku_stock_t key = {.sku = sku};
	return bsearch(&key, v, n, sizeof *v, cmp_sku);
}

/* What process_lock found of each claimed order. */
typedef enum claim_state {
	CLAIM_FENCED = 0, /* no longer processing under this fence */
	CLAIM_LIVE,       /* ours: decide it against the stock */
	CLAIM_BREACH,     /* ours, with reservations it does not hold */
	CLAIM_HELD,       /* ours, holding its stock from an earlier attempt */
} claim_state_t;

/* Decides every live order against the locked stock, in array order. */
static void process_decide(const store_claim_t *claims, size_t n, bool hold,
                           const uint8_t *state, sku_stock_t *sk, size_t n_sk,
                           store_process_result_t *results)
{
	for (size_t i = 0; i < n; i++) {
		const order_t *o = &claims[i].order;
		results[i].reason = NULL;
		if (state[i] == CLAIM_FENCED) {
			results[i].outcome = PROCESS_FENCED;
			continue;
		}
		if (state[i] == CLAIM_BREACH) {
			results[i].outcome = PROCESS_BREACH;
			results[i].reason = "duplicate_reservation";
			continue;
		}
		if (state[i] == CLAIM_HELD) {
			/* Its stock is taken: confirm it again, or (confirm
			 * step off) complete it as it stands. */
			results[i].outcome =
			    hold ? PROCESS_RESERVED : PROCESS_COMPLETED;
			continue;
		}
		const char *reason = NULL;
		for (size_t k = 0; k < o->n_items && !reason; k++) {
			sku_stock_t *s = sku_find(sk, n_sk, o->items[k].sku);
			if (!s || !s->known)
				reason = "unknown_sku";
		}
		for (size_t k = 0; k < o->n_items && !reason; k++) {
			sku_stock_t *s = sku_find(sk, n_sk, o->items[k].sku);
			if (s->now < o->items[k].qty)
				reason = "insufficient_stock";
		}
		if (reason) {
			results[i].outcome = PROCESS_REJECTED;
			results[i].reason = reason;
			continue;
		}
		for (size_t k = 0; k < o->n_items; k++)
			sku_find(sk, n_sk, o->items[k].sku)->now -=
			    o->items[k].qty;
		results[i].outcome =
		    hold ? PROCESS_RESERVED : PROCESS_COMPLETED;
	}
}

/* Every write of the batch in one statement; each is conditional on
 * the fence, and the counts let the caller check nothing slipped. Each
 * update joins its arrays to orders by id: a nested loop from the array
 * into the unique index, one probe per order. (Naming the ids a second time
 * in o.id = ANY(ids), as these statements once did, made the planner scan
 * the index for the ids first and join the array to every row found: 65,000
 * comparisons for a batch of 256, half of PostgreSQL's CPU per order;
 * docs/postgres.md.) The products are updated by the ctid of the version
 * stmt_process_products locked in this transaction (no one else can
 * move it before COMMIT): a TID scan, where a plan by sku would read
 * every version of every product while the horizon is pinned. A ctid
 * that were not current would update nothing, and the counts below would
 * fail the batch, never touch another sku.
 * Events complete (processing --> completed), reject (--> rejected),
 * reserve (stock now held, awaiting confirmation) and, when the backstop
 * fired, fail (--> failed).
 * $18 is NULL for a claimed batch. For pgb_take it is the batch's fresh
 * fence: the orders are still pending (locked by this transaction), the
 * arrays' fences are the ones they had, and deciding one is also its
 * attempt: it gets the new fence and one more attempt in this same, single
 * row version (events complete, reject and fail from pending). */
#define APPLY_TAKE                                                             \
	"fence = COALESCE($18::bigint, o.fence),"                              \
	" attempts = o.attempts + (CASE WHEN $18::bigint IS NULL THEN 0"       \
	" ELSE 1 END)"
/* The expected status as a sub-select: a value the planner does not know
 * when it plans, so it never reads the batch's rows out of orders_pending
 * (WHERE status = 'pending') -- every pending order, a backlog under
 * load, hashed against the batch -- but probes the unique index on id once
 * per order, as for a claimed batch. */
#define APPLY_FROM                                                             \
	"(SELECT CASE WHEN $18::bigint IS NULL THEN 'processing'"              \
	" ELSE 'pending' END)"
static const pgp_stmt_t stmt_process_apply = {
    .name = "process_apply",
    .sql = "WITH pu AS (UPDATE products p SET stock = p.stock - d.qty,"
           " updated_at = $13::bigint FROM unnest($10::text[],"
           " $11::bigint[]) AS d(sku, qty) WHERE p.ctid = ANY($17::tid[])"
           " AND p.sku = d.sku"
           " RETURNING p.sku),"
           " ri AS (INSERT INTO reservations (order_id, sku, qty, fence,"
           " created_at) SELECT r.o, r.s, r.q, r.f, $13::bigint"
           " FROM unnest($6::text[], $7::text[], $8::bigint[],"
           " $9::bigint[]) AS r(o, s, q, f) RETURNING 1),"
           " oc AS (UPDATE orders o SET status = 'completed',"
           " reason = NULL, finished_at = $13::bigint, held = false,"
           " updated_at = $13::bigint, " PGB_LEASE_CLEAR ", " APPLY_TAKE
           " FROM unnest($1::text[], $2::bigint[]) AS c(id, fence)"
           " WHERE o.id = c.id"
           " AND o.fence = c.fence"
           " AND o.status = " APPLY_FROM " RETURNING o.id, o.fence),"
           /* Finished without stock: rejected, or failed when the
            * backstop fired (PROCESS_BREACH). */
           " orj AS (UPDATE orders o SET status = c.status,"
           " reason = c.reason, fingerprint = NULLIF(c.fp, ''), held = false,"
           " finished_at = $13::bigint,"
           " updated_at = $13::bigint, " PGB_LEASE_CLEAR ", " APPLY_TAKE
           " FROM unnest($3::text[], $4::bigint[], $5::text[],"
           " $12::text[], $16::text[]) AS c(id, fence, reason, status, fp)"
           " WHERE o.id = c.id"
           " AND o.fence = c.fence AND o.status = " APPLY_FROM
           " RETURNING o.id, o.fence, o.status),"
           " oh AS (UPDATE orders o SET held = true,"
           " updated_at = $13::bigint"
           " FROM unnest($14::text[], $15::bigint[]) AS h(id, fence)"
           " WHERE o.id = h.id"
           " AND o.fence = h.fence"
           " AND o.status = 'processing' RETURNING o.id, h.fence),"
           " ev AS (INSERT INTO order_events (order_id, event, fence, at,"
           " replica)"
           " SELECT id, 'complete', fence, $13::bigint, $19::text FROM oc"
           " UNION ALL SELECT id, CASE status WHEN 'rejected' THEN 'reject'"
           " ELSE 'fail' END, fence, $13::bigint, $19::text FROM orj"
           " UNION ALL SELECT id, 'reserve', fence, $13::bigint, $19::text"
           " FROM oh)"
           " SELECT (SELECT count(*) FROM pu), (SELECT count(*) FROM ri),"
           " (SELECT count(*) FROM oc), (SELECT count(*) FROM orj),"
           " (SELECT count(*) FROM oh)",
    .nparams = 19,
};

/* The arrays of stmt_process_apply, $1..$12 and $14..$17 (A_HID,
 * A_HFENCE, A_RFP: the fingerprints of the orders of A_RID, '' for a
 * rejection: NULL; A_PTID: the ctids of A_PSKU's rows); $13 is the
 * time, $18 the take's fence, $19 the replica recorded with the events. */
enum {
	A_CID,
	A_CFENCE,
	A_RID,
	A_RFENCE,
	A_RREASON,
	A_ROID,
	A_RSKU,
	A_RQTY,
	A_RRFENCE,
	A_PSKU,
	A_PQTY,
	A_RSTATUS,
	A_HID,
	A_HFENCE,
	A_RFP,
	A_PTID,
	N_APPLY_ARRAYS
};
/* Array k is parameter $(k + 1), skipping $13 (the time). */
#define APPLY_PARAM(k) ((k) < A_HID ? (k) : (k) + 1)

/* expect: NULL, or (pgb_take) the fence each order has now, to be replaced
 * by take_fence (claims[i].fence); take_fence 0 for a claimed batch. */
static int process_apply(pgb_store_t *b, pgc_t *c, const store_claim_t *claims,
                         size_t n, const uint8_t *state,
                         const store_process_result_t *results,
                         const sku_stock_t *sk, size_t n_sk, int64_t now,
                         const int64_t *expect, int64_t take_fence)
{
	pgb_array_t a[N_APPLY_ARRAYS];
	memset(a, 0, sizeof a);
	int rc = 0;
	size_t n_changed = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const store_claim_t *cl = &claims[i];
		int64_t fence = expect ? expect[i] : cl->fence;
		process_outcome_t out = results[i].outcome;
		if (out == PROCESS_REJECTED || out == PROCESS_BREACH) {
			const char *status =
			    out == PROCESS_REJECTED ? "rejected" : "failed";
			if (pgb_array_add(&a[A_RID], cl->order.id) < 0 ||
			    pgb_array_add_i64(&a[A_RFENCE], fence) < 0 ||
			    pgb_array_add(&a[A_RREASON], results[i].reason) <
			        0 ||
			    pgb_array_add(&a[A_RSTATUS], status) < 0)
				rc = -ENOMEM;
			/* A failed order gets its dead-letter group. */
			char fp[FAILURE_FP_LEN + 1] = "";
			if (out == PROCESS_BREACH)
				failure_fingerprint(results[i].reason, fp);
			if (rc == 0 && pgb_array_add(&a[A_RFP], fp) < 0)
				rc = -ENOMEM;
		} else if (out == PROCESS_COMPLETED ||
		           out == PROCESS_RESERVED) {
			/* A held order has its reservations already; a
			 * fresh one gets them now, and is marked held when
			 * it awaits confirmation. */
			bool fresh = state[i] == CLAIM_LIVE;
			if (out == PROCESS_COMPLETED &&
			    (pgb_array_add(&a[A_CID], cl->order.id) < 0 ||
			     pgb_array_add_i64(&a[A_CFENCE], fence) < 0))
				rc = -ENOMEM;
			if (out == PROCESS_RESERVED && fresh &&
			    (pgb_array_add(&a[A_HID], cl->order.id) < 0 ||
			     pgb_array_add_i64(&a[A_HFENCE], fence) < 0))
				rc = -ENOMEM;
			for (size_t k = 0;
			     fresh && k < cl->order.n_items && rc == 0; k++)
				if (pgb_array_add(&a[A_ROID], cl->order.id) <
				        0 ||
				    pgb_array_add(&a[A_RSKU],
				                  cl->order.items[k].sku) < 0 ||
				    pgb_array_add_i64(&a[A_RQTY],
				                      cl->order.items[k].qty) <
				        0 ||
				    pgb_array_add_i64(&a[A_RRFENCE],
				                      cl->fence) < 0)
					rc = -ENOMEM;
		}
	}
	for (size_t k = 0; k < n_sk && rc == 0; k++) {
		if (sk[k].before == sk[k].now)
			continue;
		n_changed++;
		if (pgb_array_add(&a[A_PSKU], sk[k].sku) < 0 ||
		    pgb_array_add_i64(&a[A_PQTY], sk[k].before - sk[k].now) <
		        0 ||
		    pgb_array_add(&a[A_PTID], sk[k].tid) < 0)
			rc = -ENOMEM;
	}
	const char *p[N_APPLY_ARRAYS + 3];
	char nowbuf[24], takebuf[24];
	pgb_fmt_i64(nowbuf, sizeof nowbuf, now);
	pgb_fmt_i64(takebuf, sizeof takebuf, take_fence);
	p[A_HID] = nowbuf;
	p[N_APPLY_ARRAYS + 1] = take_fence ? takebuf : NULL;
	p[N_APPLY_ARRAYS + 2] = pgb_replica(b);
	for (int k = 0; k < N_APPLY_ARRAYS && rc == 0; k++)
		if (!(p[APPLY_PARAM(k)] = pgb_array_text(&a[k])))
			rc = -ENOMEM;
	PGresult *res = NULL;
	if (rc == 0)
		rc = pgc_exec(c, &stmt_process_apply, p, &res);
	if (rc == 0) {
		/* We hold every row we write; any shortfall is a bug. */
		int64_t pu, ri, oc, orj, oh;
		if (PQntuples(res) != 1 || !pgb_get_i64(res, 0, 0, &pu) ||
		    !pgb_get_i64(res, 0, 1, &ri) ||
		    !pgb_get_i64(res, 0, 2, &oc) ||
		    !pgb_get_i64(res, 0, 3, &orj) ||
		    !pgb_get_i64(res, 0, 4, &oh) || (size_t)pu != n_changed ||
		    (size_t)ri != a[A_ROID].n || (size_t)oc != a[A_CID].n ||
		    (size_t)orj != a[A_RID].n || (size_t)oh != a[A_HID].n)
			rc = OD_EINTERNAL;
	}
	PQclear(res);
	for (int k = 0; k < N_APPLY_ARRAYS; k++)
		pgb_array_free(&a[k]);
	return rc;
}

/* Locks the batch's orders whose fence is still current (found by the
 * unique index on id, as in stmt_process_apply), and says which
 * already hold a reservation: the backstop of G3, checked before anything
 * is written, so one such order fails alone (PROCESS_BREACH) instead of
 * failing the batch's insert. */
static const pgp_stmt_t stmt_process_orders = {
    .name = "process_orders",
    .sql = "SELECT o.id, " PGB_NOW_MS ", EXISTS (SELECT 1 FROM"
           " reservations r WHERE r.order_id = o.id), o.held FROM orders o"
           " JOIN unnest($1::text[], $2::bigint[])"
           " AS x(id, fence) ON o.id = x.id"
           " AND o.fence = x.fence"
           " WHERE o.status = 'processing'"
           " ORDER BY o.id FOR UPDATE OF o",
    .nparams = 2,
};

/* Product rows in one consistent (sku) order for every replica, so
 * two batches never wait on each other in a cycle. */
static const pgp_stmt_t stmt_process_products = {
    .name = "process_products",
    .sql = "SELECT sku, stock, ctid FROM products"
           " WHERE sku = ANY($1::text[])"
           " ORDER BY sku FOR UPDATE",
    .nparams = 1,
};

/* A row of stmt_process_orders, sorted by id. */
typedef struct live_row {
	const char *id;
	bool reserved; /* a reservation exists */
	bool held;     /* orders.held */
} live_row_t;

static int cmp_live(const void *a, const void *b)
{
	return strcmp(((const live_row_t *)a)->id, ((const live_row_t *)b)->id);
}

/* Locks the products of the batch's live orders in sku order and reads
 * their stock: *ret_sk and *ret_nsk (sorted by sku, owned by the caller,
 * skus pointing into claims). */
static int lock_products(pgc_t *c, const store_claim_t *claims, size_t n,
                         const uint8_t *state, sku_stock_t **ret_sk,
                         size_t *ret_nsk)
{
	pgb_array_t skus = {0};
	size_t n_items = 0, n_sk = 0;
	for (size_t i = 0; i < n; i++)
		n_items += claims[i].order.n_items;
	sku_stock_t *sk = calloc(n_items ? n_items : 1, sizeof *sk);
	if (!sk)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0;
		     state[i] == CLAIM_LIVE && k < claims[i].order.n_items; k++)
			sk[n_sk++].sku = claims[i].order.items[k].sku;
	qsort(sk, n_sk, sizeof *sk, cmp_sku);
	size_t u = 0;
	for (size_t k = 0; k < n_sk; k++)
		if (u == 0 || strcmp(sk[u - 1].sku, sk[k].sku) != 0)
			sk[u++] = sk[k];
	n_sk = u;
	int rc = 0;
	if (n_sk > 0) {
		rc = -ENOMEM;
		for (size_t k = 0; k < n_sk; k++)
			if (pgb_array_add(&skus, sk[k].sku) < 0)
				goto out;
		const char *ps[1] = {pgb_array_text(&skus)};
		if (!ps[0])
			goto out;
		PGresult *pr;
		rc = pgc_exec(c, &stmt_process_products, ps, &pr);
		if (rc < 0)
			goto out;
		for (int r = 0; r < PQntuples(pr) && rc == 0; r++) {
			sku_stock_t *s =
			    sku_find(sk, n_sk, PQgetvalue(pr, r, 0));
			if (!s || !pgb_get_i64(pr, r, 1, &s->before) ||
			    !pgb_get_str(pr, r, 2, s->tid, sizeof s->tid))
				rc = OD_EINTERNAL;
			else
				s->known = true, s->now = s->before;
		}
		PQclear(pr);
	}
out:
	pgb_array_free(&skus);
	if (rc < 0) {
		free(sk);
		return rc;
	}
	*ret_sk = sk;
	*ret_nsk = n_sk;
	return 0;
}

/* A claimed order's state from what the store holds: a reservation
 * without the hold is the backstop of G3. */
static uint8_t claim_state(bool reserved, bool held)
{
	return reserved != held ? CLAIM_BREACH : held ? CLAIM_HELD : CLAIM_LIVE;
}

/* Locks the live orders (fence current) and the products of those to be
 * decided; fills state[], *ret_sk and *ret_nsk (lock_products) and
 * *ret_now. */
static int process_lock(pgb_store_t *b, pgc_t *c, const store_claim_t *claims,
                        size_t n, uint8_t *state, sku_stock_t **ret_sk,
                        size_t *ret_nsk, int64_t *ret_now)
{
	pgb_array_t ids = {0}, fences = {0};
	PGresult *res = NULL;
	live_row_t *live = NULL;
	int rc = -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (pgb_array_add(&ids, claims[i].order.id) < 0 ||
		    pgb_array_add_i64(&fences, claims[i].fence) < 0)
			goto out;
	const char *p[2] = {pgb_array_text(&ids), pgb_array_text(&fences)};
	if (!p[0] || !p[1])
		goto out;
	rc = pgc_exec(c, &stmt_process_orders, p, &res);
	if (rc < 0)
		goto out;
	size_t rows = (size_t)PQntuples(res);
	rc = -ENOMEM;
	live = calloc(rows ? rows : 1, sizeof *live);
	if (!live)
		goto out;
	int64_t now = 0;
	for (size_t r = 0; r < rows; r++)
		live[r] = (live_row_t){PQgetvalue(res, (int)r, 0),
		                       PQgetvalue(res, (int)r, 2)[0] == 't',
		                       PQgetvalue(res, (int)r, 3)[0] == 't'};
	rc = OD_EINTERNAL;
	if (rows > 0 && !pgb_get_i64(res, 0, 1, &now))
		goto out;
	qsort(live, rows, sizeof *live, cmp_live);
	for (size_t i = 0; i < n; i++) {
		live_row_t key = {claims[i].order.id, false, false};
		const live_row_t *hit =
		    bsearch(&key, live, rows, sizeof *live, cmp_live);
		state[i] =
		    hit ? claim_state(hit->reserved, hit->held) : CLAIM_FENCED;
	}
	rc = lock_products(c, claims, n, state, ret_sk, ret_nsk);
	*ret_now = now;
out:
	free(live);
	PQclear(res);
	pgb_array_free(&ids);
	pgb_array_free(&fences);
	return rc;
}

int pgb_process(void *h, const store_claim_t *claims, size_t n, bool hold,
                store_process_result_t *results)
{
	pgb_store_t *b = h;
	uint8_t *state = calloc(n, sizeof *state);
	if (!state)
		return -ENOMEM;
	sku_stock_t *sk = NULL;
	size_t n_sk = 0;
	int64_t now = 0;
	pgc_t *c;
	int rc = pgb_conn(b, &c);
	if (rc < 0)
		goto out_free;
	rc = pgc_cmd(c, "BEGIN");
	if (rc < 0)
		goto out_put;
	rc = process_lock(b, c, claims, n, state, &sk, &n_sk, &now);
	if (rc < 0)
		goto rollback;
	process_decide(claims, n, hold, state, sk, n_sk, results);
	/* Only fenced orders, or held ones awaiting confirmation again:
	 * nothing to write. */
	bool any = false;
	for (size_t i = 0; i < n; i++)
		any = any || (state[i] != CLAIM_FENCED &&
		              !(state[i] == CLAIM_HELD && hold));
	if (any) {
		rc = process_apply(b, c, claims, n, state, results, sk, n_sk,
		                   now, NULL, 0);
		if (rc < 0)
			goto rollback;
	}
	rc = pgc_commit(c);
	goto out_put;
rollback:
	pgc_rollback(c);
out_put:
	pgp_put(b->pool, c);
out_free:
	free(sk);
	free(state);
	return rc;
}

/* The claim of pgb_take: as stmt_claim (postgres_lease.c: SKIP LOCKED, due
 * order, the claim mark $2), but the rows are only locked, not written: the
 * transaction that locks them decides them. The locked version's columns
 * come from the locking SELECT itself (under READ COMMITTED it is the
 * current version, rechecked against the WHERE), with the fence it has,
 * whether it is held, whether a held one holds its reservations, the
 * batch's fresh fence and the clock; with nothing due, the one row has only
 * the last two. Only held orders (left by a confirm step since switched
 * off) are looked up in reservations: a generic plan made while the table
 * was small reads all of it once per execution, and a fresh order that
 * holds reservations anyway (the backstop of G3) cannot be reserved again:
 * its insert fails the reservations' key, the batch rolls back, and the
 * leased path that follows pins it as PROCESS_BREACH (workers.c). */
static const pgp_stmt_t stmt_take = {
    .name = "take",
    .sql = PGB_WITH_NOW ", c AS (SELECT " PGB_ORDER_COLS ", fence, held,"
                        " next_at FROM orders WHERE status = 'pending'"
                        " AND next_at >= $2::bigint AND next_at <= " PGB_NOW
                        " ORDER BY next_at, seq LIMIT $1::bigint"
                        " FOR UPDATE SKIP LOCKED),"
                        " f AS (SELECT nextval('fence_seq') AS v)"
                        " SELECT c.*, CASE WHEN c.held THEN EXISTS"
                        " (SELECT 1 FROM reservations r"
                        " WHERE r.order_id = c.id) ELSE false END,"
                        " f.v, now.ms"
                        " FROM now CROSS JOIN f LEFT JOIN c ON true"
                        " ORDER BY c.next_at, c.seq",
    .nparams = 2,
};

/* Columns of stmt_take after the order's. */
enum {
	TAKE_FENCE = PGB_N_ORDER_COLS,
	TAKE_HELD,
	TAKE_NEXT,
	TAKE_RESERVED,
	TAKE_NEW_FENCE,
	TAKE_NOW
};

/* Reads stmt_take's rows into claims[], expect[] and state[]; *ret_n
 * orders, the new fence, the clock and the last row's next_at. */
static int take_rows(const PGresult *res, size_t max, store_claim_t *claims,
                     int64_t *expect, uint8_t *state, size_t *ret_n,
                     int64_t *ret_now, int64_t *ret_last)
{
	size_t rows = (size_t)PQntuples(res), n = 0;
	int64_t fence;
	if (rows < 1 || rows > max ||
	    !pgb_get_i64(res, 0, TAKE_NEW_FENCE, &fence) ||
	    !pgb_get_i64(res, 0, TAKE_NOW, ret_now))
		return OD_EINTERNAL;
	if (PQgetisnull(res, 0, 0))
		rows = 0;
	int rc = 0;
	for (; n < rows && rc == 0; n++) {
		store_claim_t *cl = &claims[n];
		if ((rc = pgb_row_order(res, (int)n, &cl->order)) < 0)
			break;
		cl->fence = fence;
		cl->lease_until = 0;
		cl->order.attempts++;
		state[n] = claim_state(
		    PQgetvalue(res, (int)n, TAKE_RESERVED)[0] == 't',
		    PQgetvalue(res, (int)n, TAKE_HELD)[0] == 't');
		if (!pgb_get_i64(res, (int)n, TAKE_FENCE, &expect[n]) ||
		    !pgb_get_i64(res, (int)n, TAKE_NEXT, ret_last)) {
			order_clear(&cl->order);
			rc = OD_EINTERNAL;
		}
	}
	*ret_n = n;
	return rc;
}

int pgb_take(void *h, const char *owner, size_t max, store_claim_t *claims,
             size_t *ret_n, store_process_result_t *results)
{
	(void)owner; /* the rows are locked, never leased */
	pgb_store_t *b = h;
	bool full;
	int64_t lo = pgb_mark_lower(&b->claim_mark, &full), now = 0, last = 0;
	char mbuf[24], lobuf[24];
	pgb_fmt_i64(mbuf, sizeof mbuf, (int64_t)max);
	pgb_fmt_i64(lobuf, sizeof lobuf, lo);
	const char *p[2] = {mbuf, lobuf};
	uint8_t *state = calloc(max, sizeof *state);
	int64_t *expect = calloc(max, sizeof *expect);
	sku_stock_t *sk = NULL;
	size_t n = 0, n_sk = 0;
	PGresult *res = NULL;
	pgc_t *c = NULL;
	int rc = -ENOMEM;
	if (!state || !expect)
		goto out;
	if ((rc = pgb_conn(b, &c)) < 0)
		goto out;
	if ((rc = pgc_cmd(c, "BEGIN")) < 0 ||
	    (rc = pgc_exec(c, &stmt_take, p, &res)) < 0 ||
	    (rc = take_rows(res, max, claims, expect, state, &n, &now, &last)) <
	        0)
		goto rollback;
	if (n > 0) {
		if ((rc = lock_products(c, claims, n, state, &sk, &n_sk)) < 0)
			goto rollback;
		process_decide(claims, n, false, state, sk, n_sk, results);
		if ((rc = process_apply(b, c, claims, n, state, results, sk,
		                        n_sk, now, expect, claims[0].fence)) <
		    0)
			goto rollback;
		if (failpoint_hit("fail_take")) {
			rc = OD_ESTORE;
			goto rollback;
		}
	}
	rc = pgc_commit(c);
	goto out;
rollback:
	pgc_rollback(c);
	/* Lost before COMMIT: the transaction cannot have committed. */
	if (rc == OD_EUNKNOWN)
		rc = OD_ESTORE;
out:
	if (c)
		pgp_put(b->pool, c);
	/* A full batch says nothing past its last row; a short one, that
	 * nothing else was due. The mark moves only past what was decided.
	 * Rows this take locked and then rolled back are pending again, and
	 * other scans, which skipped them while they were locked, may have
	 * moved the mark past them: the next scan starts from the beginning
	 * (a claim's lock is held for one statement, a take's for the whole
	 * transaction, product lock waits included). */
	if (rc == 0)
		pgb_mark_seen(&b->claim_mark, full, n == max ? last : now);
	else
		pgb_mark_failed(&b->claim_mark, full || n > 0);
	if (rc < 0 && rc != OD_EUNKNOWN) {
		store_claims_clear(claims, n);
		n = 0;
	}
	*ret_n = n;
	PQclear(res);
	free(sk);
	free(state);
	free(expect);
	return rc;
}
