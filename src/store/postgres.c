/*
 * postgres: the PostgreSQL store backend (libpq). Implements store.h over
 * a bounded connection pool (postgres_pool.c) with the versioned schema of
 * postgres_schema.c. This file owns orders, products and processing under
 * leases; postgres_lease.c owns claim, process, retry, release and reap;
 * postgres_locks.c owns named locks and the audit.
 *
 * Time: every timestamp is the database's clock, read as NOW_MS below, once
 * per statement (a CTE or a value passed on) so one statement never mixes
 * two instants. We use clock_timestamp(), not now(): now() is the start of
 * the transaction, which may be arbitrarily older than the moment a row is
 * written (pool waits, lock waits, a long batch). A lease deadline computed
 * from it would silently shrink, and a "still unexpired?" test (lock renew)
 * could succeed on a lease that has in fact already run out.
 *
 * Fences: one sequence (fence_seq, CACHE 1, so values are increasing across
 * all sessions) shared by order leases and named locks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "store/postgres_schema.h"
#include "store/store_backend.h"
#include "util/err.h"

#define NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"
#define WITH_NOW "WITH now AS (SELECT " NOW_MS " AS ms) "
#define NOW "(SELECT ms FROM now)"
/* Columns 0..10 of every order row, in this order. */
#define ORDER_COLS                                                             \
	"seq, id, customer, items, metadata, status, attempts, reason, "       \
	"created_at, updated_at, finished_at"
#define LEASE_CLEAR "lease_owner = NULL, lease_until = 0"

static const pgp_stmt_t pg_stmts[ST_COUNT_] = {
    /* One statement for the whole batch, in array order (the ORDER BY
     * feeds the insert, so seq follows the array). A later duplicate in
     * the batch conflicts with the row the earlier one just inserted and
     * is skipped, exactly like a separate submit would be. */
    [ST_SUBMIT] = {WITH_NOW
                   ", ins AS (INSERT INTO orders (id, customer,"
                   " items, metadata, status, attempts, created_at,"
                   " updated_at, finished_at, next_at, fence)"
                   " SELECT x.id, x.customer, x.items, x.metadata,"
                   " 'pending', 0, now.ms, now.ms, 0, now.ms, 0"
                   " FROM unnest($1::text[], $2::text[], $3::text[],"
                   " $4::text[]) WITH ORDINALITY"
                   " AS x(id, customer, items, metadata, ord), now"
                   " ORDER BY x.ord ON CONFLICT (id) DO NOTHING"
                   " RETURNING " ORDER_COLS "),"
                   " ev AS (INSERT INTO order_events (order_id, event,"
                   " fence, at) SELECT id, 'submit', 0, created_at FROM ins)"
                   " SELECT " ORDER_COLS " FROM ins",
                   4},
    [ST_SUBMIT_READ] = {"SELECT " ORDER_COLS " FROM orders"
                        " WHERE id = ANY($1::text[])",
                        1},
    [ST_GET] = {"SELECT " ORDER_COLS " FROM orders WHERE id = $1", 1},
    /* The position in the array comes back with each row: no matching. */
    [ST_ORDERS_STATUS] = {"SELECT x.i, o.status FROM unnest($1::text[])"
                          " WITH ORDINALITY AS x(id, i)"
                          " JOIN orders o ON o.id = x.id",
                          1},
    [ST_ORDER_FENCE] = {"SELECT status, COALESCE(fence, 0) FROM orders"
                        " WHERE id = $1",
                        1},
    [ST_LIST] = {"SELECT " ORDER_COLS " FROM orders WHERE seq > $1::bigint"
                 " AND ($2::text IS NULL OR status = $2::text)"
                 " ORDER BY seq LIMIT $3::bigint",
                 3},
    [ST_REQUEUE] = {WITH_NOW
                    ", u AS (UPDATE orders SET status = 'pending',"
                    " attempts = 0, reason = NULL, next_at = " NOW ","
                    " updated_at = " NOW ","
                    " finished_at = 0, " LEASE_CLEAR
                    " WHERE id = $1 AND status = 'failed'"
                    " RETURNING " ORDER_COLS ", fence),"
                    " ev AS (INSERT INTO order_events (order_id, event,"
                    " fence, at) SELECT id, 'requeue', fence, updated_at"
                    " FROM u) SELECT " ORDER_COLS " FROM u",
                    1},
    [ST_CANCEL] = {WITH_NOW ", u AS (UPDATE orders SET status = 'cancelled',"
                            " updated_at = " NOW ", finished_at = " NOW
                            " WHERE id = $1 AND status = 'pending'"
                            " RETURNING " ORDER_COLS ", fence),"
                            " ev AS (INSERT INTO order_events (order_id, event,"
                            " fence, at) SELECT id, 'cancel', fence, updated_at"
                            " FROM u) SELECT " ORDER_COLS " FROM u",
                   1},
    [ST_STATS_COUNT] = {"SELECT status, count(*) FROM orders"
                        " GROUP BY status",
                        0},
    /* Each count is answered from its small partial index. */
    [ST_STATS_LIVE] = {"SELECT 'pending', count(*) FROM orders"
                       " WHERE status = 'pending' UNION ALL"
                       " SELECT 'processing', count(*) FROM orders"
                       " WHERE status = 'processing'",
                       0},
    [ST_STATS_OLDEST] = {WITH_NOW "SELECT " NOW ", (SELECT min(created_at)"
                                  " FROM orders WHERE status = 'pending'"
                                  " AND next_at <= " NOW ")",
                         0},
    [ST_PRODUCT_ENSURE] = {"INSERT INTO products (sku, stock, updated_at)"
                           " VALUES ($1, 0, " NOW_MS ")"
                           " ON CONFLICT (sku) DO NOTHING",
                           1},
    [ST_PRODUCT_LOCK] = {"SELECT stock FROM products WHERE sku = $1"
                         " FOR UPDATE",
                         1},
    [ST_PRODUCT_SET] = {WITH_NOW
                        ", u AS (UPDATE products"
                        " SET stock = $2::bigint, updated_at = " NOW
                        " WHERE sku = $1 RETURNING sku, stock, updated_at),"
                        " a AS (INSERT INTO adjustments (sku, delta,"
                        " created_at) SELECT sku, $3::bigint, updated_at"
                        " FROM u WHERE $3::bigint <> 0)"
                        " SELECT sku, stock, updated_at FROM u",
                        3},
    [ST_PRODUCT_GET] = {"SELECT sku, stock, updated_at FROM products"
                        " WHERE sku = $1",
                        1},
    [ST_PRODUCT_LIST] = {"SELECT sku, stock, updated_at FROM products"
                         " WHERE sku > $1 ORDER BY sku LIMIT $2::bigint",
                         2},
    /* The claim: one statement. SKIP LOCKED lets replicas claim side by
     * side; the CTE with LIMIT is evaluated once (an IN (subquery LIMIT
     * n) may be re-run by the planner and claim more). Due order is
     * (next_at, seq), which the partial index orders_pending returns
     * without a sort: "oldest" means "claimable for longest". One fence
     * per batch. */
    [ST_CLAIM] = {WITH_NOW
                  ", c AS (SELECT seq FROM orders"
                  " WHERE status = 'pending' AND next_at <= " NOW
                  " ORDER BY next_at, seq LIMIT $3::bigint"
                  " FOR UPDATE SKIP LOCKED),"
                  " f AS (SELECT nextval('fence_seq') AS v),"
                  " u AS (UPDATE orders o SET status = 'processing',"
                  " attempts = o.attempts + 1, lease_owner = $1::text,"
                  " lease_until = " NOW " + $2::bigint, fence = f.v,"
                  " updated_at = " NOW " FROM c, f WHERE o.seq = c.seq"
                  " RETURNING o.seq, o.id, o.customer, o.items, o.metadata,"
                  " o.status, o.attempts, o.reason, o.created_at,"
                  " o.updated_at, o.finished_at, o.fence, o.lease_until,"
                  " o.next_at),"
                  " ev AS (INSERT INTO order_events (order_id, event, fence,"
                  " at) SELECT id, 'claim', fence, updated_at FROM u)"
                  " SELECT " ORDER_COLS ", fence, lease_until FROM u"
                  " ORDER BY next_at, seq",
                  3},
    /* Locks the batch's orders whose fence is still current. */
    [ST_PROCESS_ORDERS] = {"SELECT o.id, " NOW_MS " FROM orders o"
                           " JOIN unnest($1::text[], $2::bigint[])"
                           " AS x(id, fence) ON o.id = x.id"
                           " AND o.fence = x.fence"
                           " WHERE o.status = 'processing'"
                           " ORDER BY o.id FOR UPDATE OF o",
                           2},
    /* Product rows in one consistent (sku) order for every replica, so
     * two batches never wait on each other in a cycle. */
    [ST_PROCESS_PRODUCTS] = {"SELECT sku, stock FROM products"
                             " WHERE sku = ANY($1::text[])"
                             " ORDER BY sku FOR UPDATE",
                             1},
    /* Every write of the batch in one statement; each is conditional on
     * the fence, and the counts let the caller check nothing slipped. */
    [ST_PROCESS_APPLY] =
        {"WITH pu AS (UPDATE products p SET stock = p.stock - d.qty,"
         " updated_at = $12::bigint FROM unnest($10::text[],"
         " $11::bigint[]) AS d(sku, qty) WHERE p.sku = d.sku"
         " RETURNING p.sku),"
         " ri AS (INSERT INTO reservations (order_id, sku, qty, fence,"
         " created_at) SELECT r.o, r.s, r.q, r.f, $12::bigint"
         " FROM unnest($6::text[], $7::text[], $8::bigint[],"
         " $9::bigint[]) AS r(o, s, q, f) RETURNING 1),"
         " oc AS (UPDATE orders o SET status = 'completed',"
         " reason = NULL, finished_at = $12::bigint,"
         " updated_at = $12::bigint, lease_until = 0"
         " FROM unnest($1::text[], $2::bigint[]) AS c(id, fence)"
         " WHERE o.id = c.id AND o.fence = c.fence"
         " AND o.status = 'processing' RETURNING o.id, o.fence),"
         " orj AS (UPDATE orders o SET status = 'rejected',"
         " reason = c.reason, finished_at = $12::bigint,"
         " updated_at = $12::bigint, lease_until = 0"
         " FROM unnest($3::text[], $4::bigint[], $5::text[])"
         " AS c(id, fence, reason) WHERE o.id = c.id"
         " AND o.fence = c.fence AND o.status = 'processing'"
         " RETURNING o.id, o.fence),"
         " ev AS (INSERT INTO order_events (order_id, event, fence, at)"
         " SELECT id, 'complete', fence, $12::bigint FROM oc UNION ALL"
         " SELECT id, 'reject', fence, $12::bigint FROM orj)"
         " SELECT (SELECT count(*) FROM pu), (SELECT count(*) FROM ri),"
         " (SELECT count(*) FROM oc), (SELECT count(*) FROM orj)",
         12},
    [ST_RETRY] = {WITH_NOW
                  ", u AS (UPDATE orders SET status = CASE"
                  " WHEN attempts < $3::int THEN 'pending' ELSE 'failed'"
                  " END, reason = $5::text, next_at = " NOW " + $4::bigint,"
                  " updated_at = " NOW ", finished_at = CASE"
                  " WHEN attempts < $3::int THEN 0 ELSE " NOW
                  " END, " LEASE_CLEAR " WHERE id = $1 AND fence = $2::bigint"
                  " AND status = 'processing'"
                  " RETURNING id, status, fence, updated_at),"
                  " ev AS (INSERT INTO order_events (order_id, event, fence,"
                  " at) SELECT id, CASE WHEN status = 'failed' THEN 'fail'"
                  " ELSE 'retry' END, fence, updated_at FROM u)"
                  " SELECT status FROM u",
                  5},
    [ST_RELEASE] = {WITH_NOW
                    ", u AS (UPDATE orders SET status = 'pending',"
                    " attempts = greatest(attempts - 1, 0),"
                    " next_at = " NOW ", updated_at = " NOW ", " LEASE_CLEAR
                    " WHERE id = $1 AND fence = $2::bigint"
                    " AND status = 'processing'"
                    " RETURNING id, fence, updated_at),"
                    " ev AS (INSERT INTO order_events (order_id, event,"
                    " fence, at) SELECT id, 'release', fence, updated_at"
                    " FROM u) SELECT id FROM u",
                    2},
    /* Like the claim: SKIP LOCKED, so the reaper never waits on (or
     * deadlocks with) a replica that is finishing the same order. */
    [ST_REAP] = {WITH_NOW
                 ", c AS (SELECT seq FROM orders"
                 " WHERE status = 'processing' AND lease_until <= " NOW
                 " ORDER BY lease_until LIMIT $2::bigint"
                 " FOR UPDATE SKIP LOCKED),"
                 " u AS (UPDATE orders o SET status = CASE"
                 " WHEN o.attempts < $1::int THEN 'pending' ELSE 'failed'"
                 " END, reason = CASE WHEN o.attempts < $1::int"
                 " THEN o.reason ELSE 'lease expired' END,"
                 " finished_at = CASE WHEN o.attempts < $1::int THEN 0"
                 " ELSE " NOW " END, next_at = " NOW ","
                 " updated_at = " NOW ", lease_owner = NULL,"
                 " lease_until = 0 FROM c WHERE o.seq = c.seq"
                 " RETURNING o.id, o.status, o.fence, o.updated_at),"
                 " ev AS (INSERT INTO order_events (order_id, event, fence,"
                 " at) SELECT id, CASE WHEN status = 'failed' THEN 'fail'"
                 " ELSE 'expire' END, fence, updated_at FROM u)"
                 " SELECT count(*) FROM u",
                 2},
    /* Named locks: the conflict arbiter serializes racing acquirers on
     * the primary key; the loser re-evaluates the WHERE against the
     * winner's row and changes nothing. EXCLUDED.expires_at - ttl is the
     * statement's now. */
    [ST_LOCK_ACQUIRE] = {WITH_NOW "INSERT INTO locks (name, owner, fence,"
                                  " expires_at) SELECT $1::text, $2::text,"
                                  " nextval('fence_seq'), now.ms + $3::bigint"
                                  " FROM now ON CONFLICT (name) DO UPDATE"
                                  " SET owner = EXCLUDED.owner,"
                                  " fence = EXCLUDED.fence,"
                                  " expires_at = EXCLUDED.expires_at"
                                  " WHERE locks.expires_at <="
                                  " EXCLUDED.expires_at - $3::bigint"
                                  " RETURNING name, owner, fence, expires_at",
                         3},
    [ST_LOCK_READ] = {"SELECT name, owner, fence, expires_at FROM locks"
                      " WHERE name = $1 AND expires_at > " NOW_MS,
                      1},
    [ST_LOCK_RENEW] = {WITH_NOW "UPDATE locks"
                                " SET expires_at = " NOW " + $4::bigint"
                                " WHERE name = $1 AND owner = $2"
                                " AND fence = $3::bigint AND expires_at > " NOW
                                " RETURNING name, owner, fence, expires_at",
                       4},
    [ST_LOCK_RELEASE] = {"DELETE FROM locks WHERE name = $1 AND owner = $2"
                         " AND fence = $3::bigint AND expires_at > " NOW_MS
                         " RETURNING name",
                         3},
    /* The statement's snapshot does not see its own upsert, hence the
     * "OR id = $1": this replica always counts itself. */
    [ST_REPLICAS_SEEN] = {WITH_NOW
                          ", up AS (INSERT INTO replicas (id,"
                          " last_seen) SELECT $1, ms FROM now"
                          " ON CONFLICT (id) DO UPDATE"
                          " SET last_seen = excluded.last_seen),"
                          " old AS (DELETE FROM replicas WHERE last_seen <"
                          " " NOW " - 86400000)"
                          " SELECT id FROM replicas WHERE id = $1 OR"
                          " last_seen >= " NOW " - $2::bigint"
                          " ORDER BY id = $1 DESC, last_seen DESC, id",
                          2},
    [ST_LOCK_GET] = {"SELECT name, owner, fence, expires_at FROM locks"
                     " WHERE name = $1 AND expires_at > " NOW_MS,
                     1},
    [ST_VERIFY_NEGATIVE] = {"SELECT sku, stock FROM products"
                            " WHERE stock < 0",
                            0},
    [ST_VERIFY_BALANCE] =
        {"SELECT coalesce(p.sku, a.sku, r.sku), coalesce(p.stock, 0),"
         " coalesce(a.s, 0), coalesce(r.s, 0) FROM products p"
         " FULL JOIN (SELECT sku, sum(delta) AS s FROM adjustments"
         " GROUP BY sku) a ON a.sku = p.sku"
         " FULL JOIN (SELECT sku, sum(qty) AS s FROM reservations"
         " GROUP BY sku) r ON r.sku = coalesce(p.sku, a.sku)"
         " WHERE p.sku IS NULL"
         " OR p.stock <> coalesce(a.s, 0) - coalesce(r.s, 0)",
         0},
    [ST_VERIFY_RESERVED_STATUS] =
        {"SELECT r.order_id, r.sku, coalesce(o.status, '(missing)')"
         " FROM reservations r LEFT JOIN orders o ON o.id = r.order_id"
         " WHERE o.status IS DISTINCT FROM 'completed'",
         0},
    /* jsonb compares the canonical items text with the reservations
     * independently of key order and whitespace. */
    [ST_VERIFY_RESERVED_ITEMS] =
        {"SELECT o.id FROM orders o WHERE o.status = 'completed'"
         " AND o.items::jsonb IS DISTINCT FROM (SELECT coalesce("
         "jsonb_agg(jsonb_build_object('qty', r.qty, 'sku', r.sku)"
         " ORDER BY r.sku), '[]'::jsonb) FROM reservations r"
         " WHERE r.order_id = o.id)",
         0},
    [ST_VERIFY_EVENTS] = {"SELECT order_id, count(*) FROM order_events"
                          " WHERE event IN ('complete', 'reject')"
                          " GROUP BY order_id HAVING count(*) > 1",
                          0},
};

/* ---- helpers shared with postgres_locks.c ---- */

static int array_reserve(pg_array_t *a, size_t more)
{
	if (a->len + more + 2 <= a->cap)
		return 0;
	size_t cap = a->cap ? a->cap : 256;
	while (cap < a->len + more + 2)
		cap *= 2;
	char *s = realloc(a->s, cap);
	if (!s)
		return -ENOMEM;
	a->s = s;
	a->cap = cap;
	return 0;
}

int pg_array_add(pg_array_t *a, const char *elem)
{
	size_t len = strlen(elem);
	/* Worst case every byte escaped, plus quotes, comma, brace. */
	if (array_reserve(a, 2 * len + 4) < 0)
		return -ENOMEM;
	a->s[a->len++] = a->n ? ',' : '{';
	a->s[a->len++] = '"';
	for (size_t i = 0; i < len; i++) {
		if (elem[i] == '"' || elem[i] == '\\')
			a->s[a->len++] = '\\';
		a->s[a->len++] = elem[i];
	}
	a->s[a->len++] = '"';
	a->n++;
	return 0;
}

int pg_array_add_i64(pg_array_t *a, int64_t v)
{
	char buf[24];
	snprintf(buf, sizeof buf, "%lld", (long long)v);
	return pg_array_add(a, buf);
}

const char *pg_array_text(pg_array_t *a)
{
	if (array_reserve(a, 2) < 0)
		return NULL;
	if (a->n == 0) {
		memcpy(a->s, "{}", 3);
		return a->s;
	}
	/* The closing brace is written past len, so adding goes on. */
	a->s[a->len] = '}';
	a->s[a->len + 1] = '\0';
	return a->s;
}

void pg_array_free(pg_array_t *a)
{
	free(a->s);
	memset(a, 0, sizeof *a);
}

bool pg_get_i64(const PGresult *res, int row, int col, int64_t *ret)
{
	if (PQgetisnull(res, row, col)) {
		*ret = 0;
		return true;
	}
	const char *s = PQgetvalue(res, row, col);
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end != '\0')
		return false;
	*ret = v;
	return true;
}

bool pg_get_str(const PGresult *res, int row, int col, char *dst, size_t cap)
{
	const char *s = PQgetvalue(res, row, col);
	size_t len = strlen(s);
	if (len >= cap)
		return false;
	memcpy(dst, s, len + 1);
	return true;
}

int pg_conn(pg_store_t *b, pgc_t **ret)
{
	return pgp_get(b->pool, pgp_wait_ms(b->pool), ret);
}

void pg_fmt_i64(char *buf, size_t cap, int64_t v)
{
	snprintf(buf, cap, "%lld", (long long)v);
}

int pg_row_order(const PGresult *res, int row, order_t *ret)
{
	order_t o;
	memset(&o, 0, sizeof o);
	int64_t attempts;
	int rc = OD_EINTERNAL;
	if (!pg_get_i64(res, row, 0, &o.seq) ||
	    !pg_get_str(res, row, 1, o.id, sizeof o.id) ||
	    !pg_get_str(res, row, 2, o.customer, sizeof o.customer) ||
	    order_status_parse(PQgetvalue(res, row, 5), &o.status) < 0 ||
	    !pg_get_i64(res, row, 6, &attempts) ||
	    !pg_get_i64(res, row, 8, &o.created_at) ||
	    !pg_get_i64(res, row, 9, &o.updated_at) ||
	    !pg_get_i64(res, row, 10, &o.finished_at))
		goto fail;
	o.attempts = (int)attempts;
	rc = order_items_from_text(PQgetvalue(res, row, 3), &o);
	if (rc < 0)
		goto fail;
	rc = -ENOMEM;
	o.metadata = strdup(PQgetvalue(res, row, 4));
	if (!o.metadata)
		goto fail;
	if (!PQgetisnull(res, row, 7) &&
	    order_set_reason(&o, PQgetvalue(res, row, 7)) < 0)
		goto fail;
	*ret = o;
	return 0;
fail:
	order_clear(&o);
	return rc < 0 ? rc : OD_EINTERNAL;
}

/* ---- open, free, ping ---- */

static int pg_open(const char *uri, const store_options_t *opt, void **ret)
{
	pg_store_t *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	int rc = pgp_new(uri, opt, pg_stmts, ST_COUNT_, &b->pool);
	if (rc < 0)
		goto fail_pool;
	pgc_t *c;
	rc = pg_conn(b, &c);
	if (rc < 0)
		goto fail_conn;
	int version;
	rc = pgs_migrate(c, &version);
	pgp_put(b->pool, c);
	if (rc < 0)
		goto fail_conn;
	*ret = b;
	return 0;
fail_conn:
	pgp_free(b->pool);
fail_pool:
	free(b);
	return rc;
}

static void pg_free(void *h)
{
	pg_store_t *b = h;
	if (!b)
		return;
	pgp_free(b->pool);
	free(b);
}

static int pg_ping(void *h)
{
	pg_store_t *b = h;
	pgc_t *c;
	int rc = pgp_get(b->pool, 1000, &c);
	if (rc < 0)
		return rc;
	PGresult *res = PQexec(c->conn, "SELECT 1");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = pgc_error(c, res);
	PQclear(res);
	pgp_put(b->pool, c);
	return rc;
}

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

/* One attempt at the batch on one connection. *ret_lost: the connection
 * broke while the statement was in flight (outcome unknown). */
static int submit_once(pg_store_t *b, const order_t *const *orders, size_t n,
                       const char *const *arrays, store_submit_result_t *res,
                       bool *ret_lost)
{
	pgc_t *c;
	*ret_lost = false;
	int rc = pg_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *ins = NULL, *rd = NULL;
	id_row_t *ix = NULL, *rx = NULL;
	bool *created = calloc(n ? n : 1, sizeof *created);
	pg_array_t missing = {0};
	rc = -ENOMEM;
	if (!created)
		goto out;
	rc = pgc_exec(b->pool, c, ST_SUBMIT, arrays, &ins);
	if (rc < 0) {
		*ret_lost = c->lost;
		goto out;
	}
	/* The first entry with an id owns the inserted row; a later
	 * duplicate in the batch finds it used and is read back below. */
	int rows = PQntuples(ins), r = 0;
	rc = -ENOMEM;
	if (!(ix = index_rows(ins)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		id_row_t *hit = find_row(ix, ins, orders[i]->id);
		if (hit && !hit->used) {
			hit->used = true;
			r++;
			rc = pg_row_order(ins, hit->row, &res[i].order);
			if (rc < 0)
				goto out;
			res[i].outcome = SUBMIT_CREATED;
			created[i] = true;
		} else if (pg_array_add(&missing, orders[i]->id) < 0) {
			rc = -ENOMEM;
			goto out;
		}
	}
	rc = OD_EINTERNAL;
	if (r != rows)
		goto out;
	if (missing.n > 0) {
		/* Already stored (before, or earlier in this batch): read the
		 * rows back to tell a replay from a conflict. Content never
		 * changes once stored, so reading after the commit is exact. */
		const char *p[1] = {pg_array_text(&missing)};
		rc = -ENOMEM;
		if (!p[0])
			goto out;
		rc = pgc_exec(b->pool, c, ST_SUBMIT_READ, p, &rd);
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
			rc = pg_row_order(rd, hit->row, &stored);
			if (rc < 0)
				goto out;
			if (order_same_content(orders[i], &stored)) {
				res[i].outcome = SUBMIT_REPLAYED;
				res[i].order = stored;
			} else {
				res[i].outcome = SUBMIT_CONFLICT;
				order_clear(&stored);
				memset(&res[i].order, 0, sizeof res[i].order);
			}
		}
	}
	rc = 0;
out:
	if (rc < 0)
		results_clear(res, n);
	PQclear(rd);
	PQclear(ins);
	pg_array_free(&missing);
	free(created);
	free(ix);
	free(rx);
	pgp_put(b->pool, c);
	return rc;
}

static int pg_submit(void *h, const order_t *const *orders, size_t n,
                     store_submit_result_t *results)
{
	pg_store_t *b = h;
	if (n == 0)
		return 0;
	pg_array_t a[4] = {{0}};
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char *items = order_items_to_text(orders[i]);
		if (!items) {
			rc = -ENOMEM;
			break;
		}
		if (pg_array_add(&a[0], orders[i]->id) < 0 ||
		    pg_array_add(&a[1], orders[i]->customer) < 0 ||
		    pg_array_add(&a[2], items) < 0 ||
		    pg_array_add(&a[3], orders[i]->metadata
		                            ? orders[i]->metadata
		                            : "{}") < 0)
			rc = -ENOMEM;
		free(items);
	}
	const char *p[4];
	for (int k = 0; k < 4 && rc == 0; k++)
		if (!(p[k] = pg_array_text(&a[k])))
			rc = -ENOMEM;
	if (rc == 0) {
		for (size_t i = 0; i < n; i++)
			memset(&results[i], 0, sizeof results[i]);
		bool lost;
		rc = submit_once(b, orders, n, p, results, &lost);
		if (rc < 0 && lost) {
			/* The connection broke with the statement in flight:
			 * it may have committed. Submitting again on a fresh
			 * connection is the read-back: rows that did commit
			 * come back as replays of identical content (the
			 * answer a client retry would get), the rest are
			 * created now. Only if that fails too is the outcome
			 * unknown to the caller. */
			rc = submit_once(b, orders, n, p, results, &lost);
			if (rc < 0)
				rc = OD_EUNKNOWN;
		}
	}
	for (int k = 0; k < 4; k++)
		pg_array_free(&a[k]);
	return rc;
}

/* ---- order reads and client transitions ---- */

/* Runs a one-id statement returning at most one order row. */
static int one_order(pg_store_t *b, int stmt, const char *id, bool write,
                     order_t *ret, bool *ret_found)
{
	pgc_t *c;
	int rc = pg_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *res = NULL;
	const char *p[1] = {id};
	rc = pgc_exec(b->pool, c, stmt, p, &res);
	if (rc < 0) {
		if (write && c->lost)
			rc = OD_EUNKNOWN;
		goto out;
	}
	*ret_found = PQntuples(res) > 0;
	if (*ret_found && ret)
		rc = pg_row_order(res, 0, ret);
out:
	PQclear(res);
	pgp_put(b->pool, c);
	return rc;
}

static int pg_order_get(void *h, const char *id, order_t *ret)
{
	bool found;
	order_t o;
	int rc = one_order(h, ST_GET, id, false, &o, &found);
	if (rc < 0)
		return rc;
	if (!found)
		return OD_ENOTFOUND;
	*ret = o;
	return 0;
}

static int pg_order_fence(void *h, const char *id, order_status_t *ret_status,
                          int64_t *ret_fence)
{
	pg_store_t *b = h;
	pgc_t *c;
	int rc = pg_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *res = NULL;
	const char *p[1] = {id};
	rc = pgc_exec(b->pool, c, ST_ORDER_FENCE, p, &res);
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
	pgp_put(b->pool, c);
	return rc;
}

static int pg_orders_terminal(void *h, const char *const *ids, size_t n,
                              bool *ret_terminal)
{
	pg_store_t *b = h;
	pg_array_t a = {0};
	for (size_t i = 0; i < n; i++)
		if (pg_array_add(&a, ids[i]) < 0) {
			pg_array_free(&a);
			return -ENOMEM;
		}
	const char *p[1] = {pg_array_text(&a)};
	if (!p[0]) {
		pg_array_free(&a);
		return -ENOMEM;
	}
	pgc_t *c;
	int rc = pg_conn(b, &c);
	if (rc < 0) {
		pg_array_free(&a);
		return rc;
	}
	PGresult *res = NULL;
	rc = pgc_exec(b->pool, c, ST_ORDERS_STATUS, p, &res);
	if (rc == 0) {
		/* Unknown ids stay "terminal": the full read answers 404. */
		for (size_t i = 0; i < n; i++)
			ret_terminal[i] = true;
		for (int r = 0; r < PQntuples(res); r++) {
			order_status_t st;
			int64_t i;
			if (!pg_get_i64(res, r, 0, &i) || i < 1 ||
			    (size_t)i > n ||
			    order_status_parse(PQgetvalue(res, r, 1), &st) < 0)
				continue;
			ret_terminal[i - 1] = order_status_terminal(st);
		}
	}
	PQclear(res);
	pgp_put(b->pool, c);
	pg_array_free(&a);
	return rc;
}

static int pg_order_list(void *h, int status, int64_t after_seq, size_t limit,
                         order_t **ret_orders, size_t *ret_n, bool *ret_more)
{
	pg_store_t *b = h;
	if (limit > 100000)
		limit = 100000;
	char seqbuf[24], limbuf[24];
	pg_fmt_i64(seqbuf, sizeof seqbuf, after_seq);
	pg_fmt_i64(limbuf, sizeof limbuf, (int64_t)limit + 1);
	const char *p[3] = {seqbuf, NULL, limbuf};
	if (status >= 0 && status < ORDER_STATUS_COUNT)
		p[1] = order_status_name((order_status_t)status);
	else if (status >= ORDER_STATUS_COUNT)
		return OD_EINVAL;
	pgc_t *c;
	int rc = pg_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *res = NULL;
	order_t *orders = NULL;
	size_t n = 0;
	rc = pgc_exec(b->pool, c, ST_LIST, p, &res);
	if (rc < 0)
		goto out;
	size_t rows = (size_t)PQntuples(res);
	size_t take = rows > limit ? limit : rows;
	orders = calloc(take ? take : 1, sizeof *orders);
	rc = -ENOMEM;
	if (!orders)
		goto out;
	for (n = 0; n < take; n++) {
		rc = pg_row_order(res, (int)n, &orders[n]);
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
	pgp_put(b->pool, c);
	return rc;
}

/* A conditional client transition: OD_ESTATE when the order exists in
 * another status, OD_ENOTFOUND when it does not exist. */
static int transition(pg_store_t *b, int stmt, const char *id, order_t *ret)
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
	rc = one_order(b, ST_GET, id, false, NULL, &found);
	if (rc < 0)
		return rc;
	return found ? OD_ESTATE : OD_ENOTFOUND;
}

static int pg_order_requeue(void *h, const char *id, order_t *ret)
{
	return transition(h, ST_REQUEUE, id, ret);
}

static int pg_order_cancel(void *h, const char *id, order_t *ret)
{
	return transition(h, ST_CANCEL, id, ret);
}

static int pg_stats(void *h, bool terminal, store_stats_t *ret)
{
	pg_store_t *b = h;
	store_stats_t st;
	memset(&st, 0, sizeof st);
	pgc_t *c;
	int rc = pg_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *res = NULL;
	rc = pgc_exec(b->pool, c, terminal ? ST_STATS_COUNT : ST_STATS_LIVE,
	              NULL, &res);
	if (rc < 0)
		goto out;
	for (int i = 0; i < PQntuples(res); i++) {
		order_status_t s;
		int64_t cnt;
		if (order_status_parse(PQgetvalue(res, i, 0), &s) == 0 &&
		    pg_get_i64(res, i, 1, &cnt))
			st.count[s] = cnt;
	}
	PQclear(res);
	res = NULL;
	rc = pgc_exec(b->pool, c, ST_STATS_OLDEST, NULL, &res);
	if (rc < 0)
		goto out;
	int64_t oldest = 0;
	rc = OD_EINTERNAL;
	if (PQntuples(res) != 1 || !pg_get_i64(res, 0, 0, &st.now_ms) ||
	    !pg_get_i64(res, 0, 1, &oldest))
		goto out;
	if (!PQgetisnull(res, 0, 1) && st.now_ms > oldest)
		st.oldest_pending_ms = st.now_ms - oldest;
	*ret = st;
	rc = 0;
out:
	PQclear(res);
	pgp_put(b->pool, c);
	return rc;
}

/* ---- products ---- */

static int row_product(const PGresult *res, int row, product_t *ret)
{
	product_t p;
	memset(&p, 0, sizeof p);
	if (!pg_get_str(res, row, 0, p.sku, sizeof p.sku) ||
	    !pg_get_i64(res, row, 1, &p.stock) ||
	    !pg_get_i64(res, row, 2, &p.updated_at))
		return OD_EINTERNAL;
	*ret = p;
	return 0;
}

static int pg_product_set(void *h, const char *sku, int64_t stock,
                          product_t *ret)
{
	pg_store_t *b = h;
	if (stock < 0 || stock > PRODUCT_STOCK_MAX)
		return OD_EINVAL;
	pgc_t *c;
	int rc = pg_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *res = NULL;
	product_t p;
	const char *p1[1] = {sku};
	rc = pgc_cmd(c, "BEGIN");
	if (rc < 0)
		goto out;
	/* Make sure the row exists (stock 0, no adjustment needed), then
	 * lock it: the delta is computed against the stock we hold. */
	rc = pgc_exec(b->pool, c, ST_PRODUCT_ENSURE, p1, &res);
	if (rc < 0)
		goto rollback;
	PQclear(res);
	res = NULL;
	rc = pgc_exec(b->pool, c, ST_PRODUCT_LOCK, p1, &res);
	if (rc < 0)
		goto rollback;
	int64_t old;
	rc = OD_EINTERNAL;
	if (PQntuples(res) != 1 || !pg_get_i64(res, 0, 0, &old))
		goto rollback;
	PQclear(res);
	res = NULL;
	char sbuf[24], dbuf[24];
	pg_fmt_i64(sbuf, sizeof sbuf, stock);
	pg_fmt_i64(dbuf, sizeof dbuf, stock - old);
	const char *p3[3] = {sku, sbuf, dbuf};
	rc = pgc_exec(b->pool, c, ST_PRODUCT_SET, p3, &res);
	if (rc < 0)
		goto rollback;
	rc = OD_EINTERNAL;
	if (PQntuples(res) != 1 || row_product(res, 0, &p) < 0)
		goto rollback;
	rc = pgc_commit(c);
	if (rc == 0 && ret)
		*ret = p;
	goto out;
rollback:
	pgc_rollback(c);
out:
	PQclear(res);
	pgp_put(b->pool, c);
	return rc;
}

static int pg_product_get(void *h, const char *sku, product_t *ret)
{
	pg_store_t *b = h;
	pgc_t *c;
	int rc = pg_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *res = NULL;
	const char *p[1] = {sku};
	rc = pgc_exec(b->pool, c, ST_PRODUCT_GET, p, &res);
	if (rc == 0)
		rc = PQntuples(res) == 1 ? row_product(res, 0, ret)
		                         : OD_ENOTFOUND;
	PQclear(res);
	pgp_put(b->pool, c);
	return rc;
}

static int pg_product_list(void *h, const char *after_sku, size_t limit,
                           product_t **ret_products, size_t *ret_n,
                           bool *ret_more)
{
	pg_store_t *b = h;
	if (limit > 100000)
		limit = 100000;
	char limbuf[24];
	pg_fmt_i64(limbuf, sizeof limbuf, (int64_t)limit + 1);
	const char *p[2] = {after_sku ? after_sku : "", limbuf};
	pgc_t *c;
	int rc = pg_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *res = NULL;
	product_t *ps = NULL;
	rc = pgc_exec(b->pool, c, ST_PRODUCT_LIST, p, &res);
	if (rc < 0)
		goto out;
	size_t rows = (size_t)PQntuples(res);
	size_t take = rows > limit ? limit : rows;
	rc = -ENOMEM;
	ps = calloc(take ? take : 1, sizeof *ps);
	if (!ps)
		goto out;
	for (size_t i = 0; i < take; i++) {
		rc = row_product(res, (int)i, &ps[i]);
		if (rc < 0)
			goto out;
	}
	*ret_products = ps;
	*ret_n = take;
	*ret_more = rows > limit;
	ps = NULL;
	rc = 0;
out:
	free(ps);
	PQclear(res);
	pgp_put(b->pool, c);
	return rc;
}

const store_backend_t store_postgres_backend = {
    .name = "postgres",
    .open = pg_open,
    .free = pg_free,
    .ping = pg_ping,
    .submit = pg_submit,
    .order_get = pg_order_get,
    .order_list = pg_order_list,
    .order_requeue = pg_order_requeue,
    .order_fence = pg_order_fence,
    .orders_terminal = pg_orders_terminal,
    .order_cancel = pg_order_cancel,
    .stats = pg_stats,
    .product_set = pg_product_set,
    .product_get = pg_product_get,
    .product_list = pg_product_list,
    .claim = pg_claim,
    .process = pg_process,
    .retry = pg_retry,
    .release = pg_release,
    .reap = pg_reap,
    .lock_acquire = pg_lock_acquire,
    .lock_renew = pg_lock_renew,
    .lock_release = pg_lock_release,
    .lock_get = pg_lock_get,
    .replicas_seen = pg_replicas_seen,
    .verify = pg_verify,
};
