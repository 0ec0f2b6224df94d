/*
 * test_store_contract: the one contract of store.h, run unchanged against
 * each backend. CTest runs this binary twice, with ORDERD_TEST_BACKEND=sqlite
 * (a fresh file per test) and =postgres (a fresh database per test on the
 * throwaway cluster the pg fixture starts). Nothing below depends on the
 * backend except the fixture: opening a fresh store and running raw SQL on
 * it, to look underneath the interface or to damage the data on purpose.
 *
 * Lease and fencing interleavings are written as numbered steps, one store
 * call each. Boundaries that depend on the store's clock (reap at the
 * deadline, claim at the due time) are tested without controlling that
 * clock: rows are spread one millisecond apart around "now", and the
 * operation's own timestamp (updated_at of the rows it wrote) says which
 * side of the boundary each row was on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/order.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/err.h"

/* ---- the fixture: one fresh store per test ---- */

static bool is_pg;
static char pg_base[512]; /* a URI of the cluster's maintenance database */

typedef struct fixture {
	char uri[1024];
	char path[128]; /* sqlite: the file */
	char db[64];    /* postgres: the database */
	store_t *s;
} fixture_t;

static fixture_t *cur; /* the running test's fixture, for raw SQL */

static const store_options_t opts = {
    .replica_id = "contract",
    .busy_timeout_ms = 5000,
    .statement_timeout_ms = 10000,
    .connect_timeout_ms = 3000,
    .readers = 4,
};

static void pg_exec_on(const char *uri, const char *sql)
{
	PGconn *c = PQconnectdb(uri);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", uri, PQerrorMessage(c));
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

static int setup_all(void **state)
{
	const char *be = getenv("ORDERD_TEST_BACKEND");
	is_pg = be && strcmp(be, "postgres") == 0;
	if (!is_pg)
		return 0;
	const char *dir = getenv("ORDERD_TEST_PGDIR");
	char path[512];
	snprintf(path, sizeof path, "%s/uri", dir ? dir : ".");
	FILE *f = fopen(path, "r");
	if (!f || !fgets(pg_base, sizeof pg_base, f)) {
		fprintf(stderr, "cannot read %s (is the pg fixture up?)\n",
		        path);
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	pg_base[strcspn(pg_base, "\r\n")] = '\0';
	return 0;
}

static int open_store(fixture_t *f, store_t **ret)
{
	return store_open(f->uri, &opts, ret);
}

static int setup(void **state)
{
	static int k;
	fixture_t *f = calloc(1, sizeof *f);
	assert_non_null(f);
	if (is_pg) {
		snprintf(f->db, sizeof f->db, "orderd_contract_%d_%d",
		         (int)getpid(), k++);
		char sql[128];
		snprintf(sql, sizeof sql, "CREATE DATABASE %s", f->db);
		pg_exec_on(pg_base, sql);
		const char *slash = strrchr(pg_base, '/');
		const char *q = strchr(slash, '?');
		snprintf(f->uri, sizeof f->uri, "%.*s/%s%s",
		         (int)(slash - pg_base), pg_base, f->db, q ? q : "");
	} else {
		snprintf(f->path, sizeof f->path,
		         "/tmp/orderd-contract-XXXXXX");
		int fd = mkstemp(f->path);
		assert_true(fd >= 0);
		close(fd); /* an empty file is an empty database */
		snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->path);
	}
	assert_int_equal(open_store(f, &f->s), 0);
	assert_string_equal(store_backend_name(f->s),
	                    is_pg ? "postgres" : "sqlite");
	cur = f;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	store_free(f->s);
	if (is_pg) {
		char sql[160];
		snprintf(sql, sizeof sql,
		         "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->db);
		pg_exec_on(pg_base, sql);
	} else {
		char p[160];
		unlink(f->path);
		snprintf(p, sizeof p, "%s-wal", f->path);
		unlink(p);
		snprintf(p, sizeof p, "%s-shm", f->path);
		unlink(p);
	}
	cur = NULL;
	free(f);
	return 0;
}

/* Raw SQL on the test's store, outside the interface. The same text runs
 * on both backends: the schemas have the same tables and columns. */
static void raw_exec(const char *sql)
{
	if (is_pg) {
		pg_exec_on(cur->uri, sql);
		return;
	}
	sqlite3 *db;
	assert_int_equal(sqlite3_open(cur->path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("raw sql %s: %s", sql, err);
	sqlite3_close(db);
}

/* The first column of the first row of sql, as an integer. */
static int64_t raw_int(const char *sql)
{
	int64_t v = 0;
	if (is_pg) {
		PGconn *c = PQconnectdb(cur->uri);
		assert_int_equal(PQstatus(c), CONNECTION_OK);
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
			fail_msg("%s: %s", sql, PQerrorMessage(c));
		v = PQgetisnull(r, 0, 0)
		        ? -1
		        : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		PQfinish(c);
		return v;
	}
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(cur->path, &db), SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("raw sql %s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_type(st, 0) == SQLITE_NULL
	        ? -1
	        : sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* The store's clock in SQL, ms since the epoch. */
static const char *now_sql(void)
{
	return is_pg ? "(extract(epoch from clock_timestamp()) * 1000)::bigint"
	             : "CAST(ROUND((julianday('now') - 2440587.5) * "
	               "86400000.0) AS INTEGER)";
}

/* ---- helpers on the interface ---- */

/* A canonical order from "SKU:QTY,SKU:QTY" (any order, as a client would
 * send it) through the same validation the API uses. */
static order_t mkorder(const char *id, const char *customer, const char *items,
                       const char *metadata)
{
	char buf[2048];
	size_t off = (size_t)snprintf(buf, sizeof buf,
	                              "{\"id\":\"%s\",\"customer\":\"%s\","
	                              "\"items\":[",
	                              id, customer);
	const char *p = items;
	bool first = true;
	while (*p) {
		const char *colon = strchr(p, ':');
		assert_non_null(colon);
		char *end;
		long long qty = strtoll(colon + 1, &end, 10);
		off += (size_t)snprintf(buf + off, sizeof buf - off,
		                        "%s{\"sku\":\"%.*s\",\"qty\":%lld}",
		                        first ? "" : ",", (int)(colon - p), p,
		                        qty);
		first = false;
		p = *end == ',' ? end + 1 : end;
	}
	snprintf(buf + off, sizeof buf - off, "]%s%s}",
	         metadata ? ",\"metadata\":" : "", metadata ? metadata : "");
	json_error_t jerr;
	json_t *j = json_loads(buf, 0, &jerr);
	if (!j)
		fail_msg("bad test json %s: %s", buf, jerr.text);
	order_limits_t lim = {.max_items = 100, .max_metadata = 4096};
	order_t o;
	char err[256];
	if (order_from_json(j, &lim, "", &o, err, sizeof err) != 0)
		fail_msg("order_from_json(%s): %s", buf, err);
	json_decref(j);
	return o;
}

static submit_outcome_t submit1(store_t *s, const char *id, const char *items)
{
	order_t o = mkorder(id, "cust-1", items, NULL);
	const order_t *arr[1] = {&o};
	store_submit_result_t r;
	assert_int_equal(store_submit(s, arr, 1, &r), 0);
	order_clear(&o);
	order_clear(&r.order);
	return r.outcome;
}

/* Submits n orders "<prefix><i>" of one item each, in one batch. */
static void submit_many(store_t *s, const char *prefix, int n)
{
	order_t *os = calloc((size_t)n, sizeof *os);
	const order_t **arr = calloc((size_t)n, sizeof *arr);
	store_submit_result_t *r = calloc((size_t)n, sizeof *r);
	assert_true(os && arr && r);
	for (int i = 0; i < n; i++) {
		char id[48];
		snprintf(id, sizeof id, "%s%05d", prefix, i);
		os[i] = mkorder(id, "c", "A:1", NULL);
		arr[i] = &os[i];
	}
	assert_int_equal(store_submit(s, arr, (size_t)n, r), 0);
	for (int i = 0; i < n; i++) {
		assert_int_equal(r[i].outcome, SUBMIT_CREATED);
		order_clear(&r[i].order);
		order_clear(&os[i]);
	}
	free(os);
	free(arr);
	free(r);
}

static void set_stock(store_t *s, const char *sku, int64_t stock)
{
	product_t p;
	assert_int_equal(store_product_set(s, sku, stock, &p), 0);
	assert_string_equal(p.sku, sku);
	assert_int_equal(p.stock, stock);
}

static int64_t stock_of(store_t *s, const char *sku)
{
	product_t p;
	assert_int_equal(store_product_get(s, sku, &p), 0);
	return p.stock;
}

static order_t get(store_t *s, const char *id)
{
	order_t o;
	assert_int_equal(store_order_get(s, id, &o), 0);
	return o;
}

static order_status_t status_of(store_t *s, const char *id)
{
	order_t o = get(s, id);
	order_status_t st = o.status;
	order_clear(&o);
	return st;
}

/* Claims exactly one order, which must be id. */
static store_claim_t claim1(store_t *s, const char *owner, int64_t lease_ms,
                            const char *id)
{
	store_claim_t c[1];
	size_t n = 99;
	assert_int_equal(store_claim(s, owner, lease_ms, 1, c, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(c[0].order.id, id);
	return c[0];
}

static size_t claim_none(store_t *s)
{
	store_claim_t c[4];
	size_t n = 99;
	assert_int_equal(store_claim(s, "nobody", 30000, 4, c, &n), 0);
	store_claims_clear(c, n);
	return n;
}

static process_outcome_t process1(store_t *s, const store_claim_t *c,
                                  const char **ret_reason)
{
	store_process_result_t r;
	assert_int_equal(store_process(s, c, 1, &r), 0);
	if (ret_reason)
		*ret_reason = r.reason;
	return r.outcome;
}

/* How many reservations order id holds. */
static int64_t reservations_of(const char *id)
{
	char sql[320];
	snprintf(sql, sizeof sql,
	         "SELECT COUNT(*) FROM reservations WHERE order_id = '%.64s'",
	         id);
	return raw_int(sql);
}

/* The lease columns are cleared once the order is no longer processing. */
static void assert_lease_cleared(const char *id)
{
	char sql[320];
	snprintf(sql, sizeof sql,
	         "SELECT COUNT(*) FROM orders WHERE id = '%.64s'"
	         " AND lease_owner IS NULL AND lease_until = 0",
	         id);
	assert_int_equal(raw_int(sql), 1);
}

typedef struct violations {
	size_t n;
	char lines[16][512];
} violations_t;

static void on_violation(void *arg, const char *what)
{
	violations_t *v = arg;
	if (v->n < 16)
		snprintf(v->lines[v->n], sizeof v->lines[0], "%s", what);
	v->n++;
}

/* Audits; unexpected lines are printed when v is NULL (nothing expected). */
static size_t verify(store_t *s, violations_t *v)
{
	violations_t local = {0};
	if (!v)
		v = &local;
	size_t n = 99;
	assert_int_equal(store_verify(s, on_violation, v, &n), 0);
	assert_int_equal(n, v->n);
	for (size_t i = 0; i < v->n && i < 16 && v == &local; i++)
		print_message("unexpected violation: %s\n", v->lines[i]);
	return n;
}

/* ---- submit ---- */

static void test_submit_new_replay_conflict(void **state)
{
	fixture_t *f = *state;
	order_t o1 = mkorder("o1", "c1", "A:2,B:3", "{\"k\":1,\"a\":\"x\"}");
	/* Same content: items and metadata keys in another order. */
	order_t o1same =
	    mkorder("o1", "c1", "B:3,A:2", "{\"a\":\"x\",\"k\":1}");
	order_t o1other =
	    mkorder("o1", "c1", "A:2,B:4", "{\"k\":1,\"a\":\"x\"}");
	order_t o2 = mkorder("o2", "c2", "C:1", NULL);
	order_t o2meta = mkorder("o2", "c2", "C:1", "{\"x\":1}");
	/* A batch with internal duplicates: each entry is answered as if it
	 * had been submitted alone, in array order. */
	const order_t *batch[] = {&o1, &o1same, &o1other, &o2, &o2meta, &o2};
	store_submit_result_t r[6];
	assert_int_equal(store_submit(f->s, batch, 6, r), 0);

	assert_int_equal(r[0].outcome, SUBMIT_CREATED);
	assert_string_equal(r[0].order.id, "o1");
	assert_string_equal(r[0].order.customer, "c1");
	assert_int_equal(r[0].order.status, ORDER_PENDING);
	assert_int_equal(r[0].order.attempts, 0);
	assert_null(r[0].order.reason);
	assert_true(r[0].order.created_at > 1600000000000LL);
	assert_int_equal(r[0].order.updated_at, r[0].order.created_at);
	assert_int_equal(r[0].order.finished_at, 0);
	assert_int_equal(r[0].order.n_items, 2);
	assert_string_equal(r[0].order.items[0].sku, "A");
	assert_int_equal(r[0].order.items[1].qty, 3);
	assert_int_equal(r[1].outcome, SUBMIT_REPLAYED);
	assert_int_equal(r[1].order.seq, r[0].order.seq);
	assert_string_equal(r[1].order.metadata, r[0].order.metadata);
	assert_int_equal(r[2].outcome, SUBMIT_CONFLICT);
	assert_null(r[2].order.items);
	assert_int_equal(r[3].outcome, SUBMIT_CREATED);
	assert_true(r[3].order.seq > r[0].order.seq);
	assert_string_equal(r[3].order.metadata, "{}");
	assert_int_equal(r[4].outcome, SUBMIT_CONFLICT);
	assert_int_equal(r[5].outcome, SUBMIT_REPLAYED);
	for (int i = 0; i < 6; i++)
		order_clear(&r[i].order);

	/* One submit event per stored order, none for replays. */
	assert_int_equal(raw_int("SELECT COUNT(*) FROM order_events"
	                         " WHERE event = 'submit'"),
	                 2);
	/* "Not finished" is stored as 0, never NULL. */
	assert_int_equal(
	    raw_int("SELECT COUNT(*) FROM orders WHERE finished_at IS NULL"),
	    0);

	/* A replay later returns the stored order in its current status. */
	set_stock(f->s, "C", 5);
	store_claim_t c = claim1(f->s, "w", 10000, "o1");
	assert_int_equal(process1(f->s, &c, NULL), PROCESS_REJECTED);
	store_claims_clear(&c, 1);
	const order_t *again[] = {&o1same, &o1other};
	assert_int_equal(store_submit(f->s, again, 2, r), 0);
	assert_int_equal(r[0].outcome, SUBMIT_REPLAYED);
	assert_int_equal(r[0].order.status, ORDER_REJECTED);
	assert_string_equal(r[0].order.reason, "unknown_sku");
	assert_int_equal(r[1].outcome, SUBMIT_CONFLICT);
	order_clear(&r[0].order);

	order_clear(&o1);
	order_clear(&o1same);
	order_clear(&o1other);
	order_clear(&o2);
	order_clear(&o2meta);
}

/* Group commit: a large batch in one transaction, seq in array order. */
static void test_submit_batch_order(void **state)
{
	fixture_t *f = *state;
	enum { N = 1000 };
	order_t *os = calloc(N, sizeof *os);
	const order_t **arr = calloc(N, sizeof *arr);
	store_submit_result_t *r = calloc(N, sizeof *r);
	assert_true(os && arr && r);
	for (int i = 0; i < N; i++) {
		char id[32];
		/* Ids not in sorted order, so seq must follow the array. */
		snprintf(id, sizeof id, "g%04d", (i * 7919) % N);
		os[i] = mkorder(id, "c", "A:1,B:2,C:3", "{\"n\":1}");
		arr[i] = &os[i];
	}
	int64_t t0 = clock_mono_ms();
	assert_int_equal(store_submit(f->s, arr, N, r), 0);
	print_message("submit of %d orders in one transaction: %lld ms\n", N,
	              (long long)(clock_mono_ms() - t0));
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].outcome, SUBMIT_CREATED);
		assert_string_equal(r[i].order.id, os[i].id);
		if (i > 0)
			assert_true(r[i].order.seq > r[i - 1].order.seq);
	}
	for (int i = 0; i < N; i++) {
		order_clear(&r[i].order);
		order_clear(&os[i]);
	}
	store_stats_t st;
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_int_equal(st.count[ORDER_PENDING], N);
	free(os);
	free(arr);
	free(r);
}

/* ---- claims ---- */

static void test_claim_order_batch_fence(void **state)
{
	fixture_t *f = *state;
	const char *ids[] = {"o1", "o2", "o3", "o4", "o5"};
	for (int i = 0; i < 5; i++)
		assert_int_equal(submit1(f->s, ids[i], "A:1"), SUBMIT_CREATED);
	store_claim_t c[10];
	size_t n = 99;
	assert_int_equal(store_claim(f->s, "w1", 30000, 0, c, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_claim(f->s, "w1", 30000, 2, c, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(c[0].order.id, "o1");
	assert_string_equal(c[1].order.id, "o2");
	int64_t f1 = c[0].fence;
	assert_true(f1 > 0);
	/* One fence for the batch. */
	assert_int_equal(c[1].fence, f1);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(c[i].order.status, ORDER_PROCESSING);
		assert_int_equal(c[i].order.attempts, 1);
		assert_int_equal(c[i].order.n_items, 1);
		assert_int_equal(c[i].lease_until,
		                 c[i].order.updated_at + 30000);
	}
	store_claims_clear(c, n);

	assert_int_equal(store_claim(f->s, "w2", 30000, 10, c, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(c[0].order.id, "o3");
	assert_string_equal(c[2].order.id, "o5");
	assert_true(c[0].fence > f1);
	store_claims_clear(c, n);

	assert_int_equal(claim_none(f->s), 0);
	assert_int_equal(
	    raw_int("SELECT COUNT(*) FROM order_events WHERE event = 'claim'"),
	    5);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM orders"
	                         " WHERE lease_owner = 'w2'"),
	                 3);
	store_stats_t st;
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_int_equal(st.count[ORDER_PROCESSING], 5);
	assert_int_equal(st.count[ORDER_PENDING], 0);
	assert_int_equal(st.oldest_pending_ms, 0);
}

/*
 * The due time is a boundary: an order whose next_at equals the claim's
 * now is due. Orders are spread 1 ms apart around now; after one claim of
 * all of them, the claim's now (updated_at of what it claimed) must split
 * them exactly: every order with next_at <= now claimed, none after.
 */
enum { SPREAD = 3000, SPREAD_BEFORE = 500 };

static void test_claim_due_boundary(void **state)
{
	fixture_t *f = *state;
	submit_many(f->s, "d", SPREAD);
	char sql[512];
	snprintf(sql, sizeof sql,
	         "UPDATE orders SET next_at = %s - %d + (seq - (SELECT MIN(seq)"
	         " FROM orders))",
	         now_sql(), SPREAD_BEFORE);
	raw_exec(sql);
	store_claim_t *c = calloc(SPREAD, sizeof *c);
	size_t n = 0;
	assert_int_equal(store_claim(f->s, "w", 30000, SPREAD, c, &n), 0);
	assert_true(n >= SPREAD_BEFORE);
	assert_true(n < SPREAD);
	int64_t now = c[0].order.updated_at;
	store_claims_clear(c, n);
	free(c);
	snprintf(sql, sizeof sql,
	         "SELECT COUNT(*) FROM orders WHERE (status = 'processing')"
	         " <> (next_at <= %lld)",
	         (long long)now);
	assert_int_equal(raw_int(sql), 0);
	/* The one exactly at the boundary exists and was claimed. */
	snprintf(sql, sizeof sql,
	         "SELECT COUNT(*) FROM orders WHERE next_at = %lld"
	         " AND status = 'processing'",
	         (long long)now);
	assert_int_equal(raw_int(sql), 1);
}

/*
 * Claim order is due time, then submission: the order that has been
 * claimable longest goes first. A retry that became due after a newer
 * order was submitted waits behind it.
 */
static void test_claim_by_due_time(void **state)
{
	fixture_t *f = *state;
	/* 1. o1 is submitted and claimed. */
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	store_claim_t c = claim1(f->s, "w", 30000, "o1");
	/* 2. o2 is submitted; then o1's retry makes it due again. */
	clock_sleep_ms(5);
	assert_int_equal(submit1(f->s, "o2", "A:1"), SUBMIT_CREATED);
	clock_sleep_ms(5);
	assert_int_equal(store_retry(f->s, "o1", c.fence, 5, 0, "e", NULL), 0);
	store_claims_clear(&c, 1);
	/* 3. A claim of both returns o2 (due first), then o1. */
	store_claim_t two[2];
	size_t n;
	assert_int_equal(store_claim(f->s, "w", 30000, 2, two, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(two[0].order.id, "o2");
	assert_string_equal(two[1].order.id, "o1");
	assert_int_equal(two[0].lease_until, two[1].lease_until);
	store_claims_clear(two, n);
}

/* ---- processing ---- */

static void test_process_complete_and_reject(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	set_stock(f->s, "B", 1);
	assert_int_equal(submit1(f->s, "o1", "A:2,B:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o2", "A:1,X:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o3", "A:4"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o4", "A:1,B:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o5", "A:3"), SUBMIT_CREATED);

	store_claim_t c[5];
	size_t n;
	assert_int_equal(store_claim(f->s, "w", 30000, 5, c, &n), 0);
	assert_int_equal(n, 5);
	store_process_result_t r[5];
	assert_int_equal(store_process(f->s, c, n, r), 0);
	/* In array order: o1 takes A:2 B:1; o2 has an unknown sku (though A
	 * is there); o3 wants 4 of the 3 left; o4 is short of B only and
	 * takes nothing else; o5 takes the last 3 A. */
	assert_int_equal(r[0].outcome, PROCESS_COMPLETED);
	assert_null(r[0].reason);
	assert_int_equal(r[1].outcome, PROCESS_REJECTED);
	assert_string_equal(r[1].reason, "unknown_sku");
	assert_int_equal(r[2].outcome, PROCESS_REJECTED);
	assert_string_equal(r[2].reason, "insufficient_stock");
	assert_int_equal(r[3].outcome, PROCESS_REJECTED);
	assert_string_equal(r[3].reason, "insufficient_stock");
	assert_int_equal(r[4].outcome, PROCESS_COMPLETED);
	assert_int_equal(stock_of(f->s, "A"), 0);
	assert_int_equal(stock_of(f->s, "B"), 0);

	order_t o = get(f->s, "o3");
	assert_int_equal(o.status, ORDER_REJECTED);
	assert_string_equal(o.reason, "insufficient_stock");
	assert_true(o.finished_at > 0);
	assert_int_equal(o.finished_at, o.updated_at);
	order_clear(&o);
	o = get(f->s, "o1");
	assert_int_equal(o.status, ORDER_COMPLETED);
	assert_null(o.reason);
	assert_true(o.finished_at >= o.created_at);
	order_clear(&o);
	/* All or nothing: reservations only for the completed orders. */
	assert_int_equal(raw_int("SELECT COUNT(*) FROM reservations"
	                         " WHERE order_id IN ('o2','o3','o4')"),
	                 0);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM reservations"), 3);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM order_events"
	                         " WHERE event IN ('complete', 'reject')"),
	                 5);
	for (int i = 0; i < 5; i++)
		assert_lease_cleared(c[i].order.id);

	/* Processing the same claims again: the fence still matches but the
	 * order is no longer processing, so nothing happens twice. */
	assert_int_equal(store_process(f->s, c, n, r), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r[i].outcome, PROCESS_FENCED);
		assert_null(r[i].reason);
	}
	store_claims_clear(c, n);
	assert_int_equal(stock_of(f->s, "A"), 0);
	assert_int_equal(verify(f->s, NULL), 0);
}

/*
 * The backstop: a reservation already exists for an order that is being
 * processed under a current fence (only a bug or a damaged store gets
 * here). The order must not take stock a second time, must not loop
 * between claim and reap, and must not take its neighbours down: it ends
 * failed with reason "duplicate_reservation", reported as PROCESS_BREACH,
 * while the rest of the batch is processed as usual.
 */
static void test_process_duplicate_reservation(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 10);
	assert_int_equal(submit1(f->s, "n1", "A:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "dup", "A:2"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "n2", "A:3"), SUBMIT_CREATED);
	/* The damage: dup already holds its stock. */
	raw_exec("UPDATE products SET stock = stock - 2 WHERE sku = 'A'");
	raw_exec("INSERT INTO reservations (order_id, sku, qty, fence,"
	         " created_at) VALUES ('dup', 'A', 2, 0, 0)");

	store_claim_t c[3];
	size_t n;
	assert_int_equal(store_claim(f->s, "w", 30000, 3, c, &n), 0);
	assert_int_equal(n, 3);
	store_process_result_t r[3];
	assert_int_equal(store_process(f->s, c, n, r), 0);
	assert_int_equal(r[0].outcome, PROCESS_COMPLETED);
	assert_int_equal(r[1].outcome, PROCESS_BREACH);
	assert_string_equal(r[1].reason, "duplicate_reservation");
	assert_int_equal(r[2].outcome, PROCESS_COMPLETED);
	store_claims_clear(c, n);

	/* Stock taken once for dup (by the damage), once for n1 and n2. */
	assert_int_equal(stock_of(f->s, "A"), 10 - 2 - 1 - 3);
	order_t o = get(f->s, "dup");
	assert_int_equal(o.status, ORDER_FAILED);
	assert_string_equal(o.reason, "duplicate_reservation");
	assert_true(o.finished_at > 0);
	order_clear(&o);
	assert_lease_cleared("dup");
	assert_int_equal(reservations_of("dup"), 1);
	/* Nothing left to claim or reap: no loop. */
	assert_int_equal(claim_none(f->s), 0);
	size_t reaped = 99;
	assert_int_equal(store_reap(f->s, 5, 100, &reaped), 0);
	assert_int_equal(reaped, 0);
	/* The audit still sees the damage. */
	violations_t v = {0};
	assert_int_equal(verify(f->s, &v), 1);
	assert_string_equal(v.lines[0], "order 'dup': reservation of sku 'A'"
	                                " but order status is failed");
}

/* ---- retries, release, reap ---- */

static void test_retry_until_failed(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	bool failed;
	for (int attempt = 1; attempt <= 3; attempt++) {
		store_claim_t c = claim1(f->s, "w", 30000, "o1");
		assert_int_equal(c.order.attempts, attempt);
		if (attempt > 1)
			assert_string_equal(c.order.reason, "error 1");
		char err[32];
		snprintf(err, sizeof err, "error %d", attempt == 3 ? 3 : 1);
		failed = !(attempt == 3);
		assert_int_equal(
		    store_retry(f->s, "o1", c.fence, 3, 0, err, &failed), 0);
		assert_int_equal(failed, attempt == 3);
		store_claims_clear(&c, 1);
		assert_lease_cleared("o1");
		order_t o = get(f->s, "o1");
		assert_int_equal(o.status,
		                 attempt == 3 ? ORDER_FAILED : ORDER_PENDING);
		assert_int_equal(o.finished_at == 0, attempt < 3);
		order_clear(&o);
	}
	order_t o = get(f->s, "o1");
	assert_string_equal(o.reason, "error 3");
	order_clear(&o);
	assert_int_equal(claim_none(f->s), 0);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM order_events"
	                         " WHERE event = 'retry'"),
	                 2);
	assert_int_equal(
	    raw_int("SELECT COUNT(*) FROM order_events WHERE event = 'fail'"),
	    1);

	/* A retry with a delay is not claimable before it is due, and is not
	 * counted as the oldest pending order while it waits. */
	assert_int_equal(submit1(f->s, "o2", "A:1"), SUBMIT_CREATED);
	store_claim_t c2 = claim1(f->s, "w", 30000, "o2");
	assert_int_equal(
	    store_retry(f->s, "o2", c2.fence, 3, 300, "later", NULL), 0);
	store_claims_clear(&c2, 1);
	assert_int_equal(claim_none(f->s), 0);
	clock_sleep_ms(400);
	c2 = claim1(f->s, "w", 30000, "o2");
	assert_int_equal(c2.order.attempts, 2);
	store_claims_clear(&c2, 1);
}

static void test_release(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	store_claim_t c = claim1(f->s, "w", 30000, "o1");
	/* Hand-back: pending, due now, the attempt not counted, the lease
	 * cleared, the fence kept as the last one granted. */
	assert_int_equal(store_release(f->s, "o1", c.fence), 0);
	order_t o = get(f->s, "o1");
	assert_int_equal(o.status, ORDER_PENDING);
	assert_int_equal(o.attempts, 0);
	assert_int_equal(o.finished_at, 0);
	order_clear(&o);
	assert_lease_cleared("o1");
	order_status_t st;
	int64_t fence = 0;
	assert_int_equal(store_order_fence(f->s, "o1", &st, &fence), 0);
	assert_int_equal(st, ORDER_PENDING);
	assert_int_equal(fence, c.fence);
	/* Twice is a fence rejection, and writes nothing. */
	assert_int_equal(store_release(f->s, "o1", c.fence), OD_EFENCE);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM order_events"
	                         " WHERE event = 'release'"),
	                 1);
	store_claims_clear(&c, 1);
	c = claim1(f->s, "w", 30000, "o1");
	assert_int_equal(c.order.attempts, 1);
	store_claims_clear(&c, 1);
	assert_int_equal(store_release(f->s, "nope", 1), OD_EFENCE);
}

/*
 * Reaping is the other clock boundary: a lease whose lease_until equals
 * the reaper's now has expired (a lease is valid strictly before its
 * deadline, like a named lock). Processing orders are spread 1 ms apart
 * around now; after one reap, its now (updated_at of what it reaped) must
 * split them exactly.
 */
static void test_reap_boundary(void **state)
{
	fixture_t *f = *state;
	submit_many(f->s, "r", SPREAD);
	store_claim_t *c = calloc(SPREAD, sizeof *c);
	size_t n = 0;
	assert_int_equal(store_claim(f->s, "w", 600000, SPREAD, c, &n), 0);
	assert_int_equal(n, SPREAD);
	store_claims_clear(c, n);
	free(c);
	char sql[512];
	snprintf(sql, sizeof sql,
	         "UPDATE orders SET lease_until = %s - %d + (seq - (SELECT"
	         " MIN(seq) FROM orders))",
	         now_sql(), SPREAD_BEFORE);
	raw_exec(sql);
	size_t reaped = 0;
	assert_int_equal(store_reap(f->s, 5, SPREAD, &reaped), 0);
	assert_true(reaped >= SPREAD_BEFORE);
	assert_true(reaped < SPREAD);
	int64_t now = raw_int("SELECT MAX(updated_at) FROM orders"
	                      " WHERE status = 'pending'");
	/* lease_until of reaped rows is cleared, so compare by position:
	 * row k had lease_until = base + k, where base is recoverable from
	 * any row still processing. */
	int64_t k0 = raw_int("SELECT MIN(seq) FROM orders");
	int64_t first_live = raw_int("SELECT MIN(seq) FROM orders"
	                             " WHERE status = 'processing'");
	int64_t live_until = raw_int("SELECT MIN(lease_until) FROM orders"
	                             " WHERE status = 'processing'");
	int64_t base = live_until - (first_live - k0);
	/* Reaped exactly those with base + k <= now. */
	assert_int_equal((int64_t)reaped, now - base + 1);
	assert_int_equal(live_until, now + 1);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM orders"
	                         " WHERE status = 'pending' AND (lease_owner"
	                         " IS NOT NULL OR lease_until <> 0)"),
	                 0);
	assert_int_equal(
	    raw_int("SELECT COUNT(*) FROM order_events WHERE event = 'expire'"),
	    (int64_t)reaped);
}

static void test_reap_limits_and_dead_letters(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o2", "A:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o3", "A:1"), SUBMIT_CREATED);
	store_claim_t c[3];
	size_t n;
	assert_int_equal(store_claim(f->s, "w", 20, 3, c, &n), 0);
	assert_int_equal(n, 3);
	store_claims_clear(c, n);
	clock_sleep_ms(50);
	size_t reaped = 99;
	assert_int_equal(store_reap(f->s, 5, 0, &reaped), 0);
	assert_int_equal(reaped, 0);
	assert_int_equal(store_reap(f->s, 5, 2, &reaped), 0);
	assert_int_equal(reaped, 2);
	/* The last one has no attempts left: dead-lettered. */
	assert_int_equal(store_reap(f->s, 1, 10, &reaped), 0);
	assert_int_equal(reaped, 1);
	order_t o = get(f->s, "o3");
	assert_int_equal(o.status, ORDER_FAILED);
	assert_string_equal(o.reason, "lease expired");
	assert_true(o.finished_at > 0);
	order_clear(&o);
	assert_lease_cleared("o3");
	o = get(f->s, "o1");
	assert_int_equal(o.status, ORDER_PENDING);
	assert_int_equal(o.finished_at, 0);
	order_clear(&o);
	assert_int_equal(store_reap(f->s, 5, 10, &reaped), 0);
	assert_int_equal(reaped, 0);
	assert_int_equal(verify(f->s, NULL), 0);
}

/*
 * Interleaving: the stale holder. Each step is one store call by one
 * replica, in this order.
 */
static void test_interleaving_stale_holder(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 10);
	assert_int_equal(submit1(f->s, "o1", "A:4"), SUBMIT_CREATED);

	/* 1. A claims o1 with a 50 ms lease (fence f1). */
	store_claim_t a = claim1(f->s, "replica-a", 50, "o1");
	/* 2. A stalls; the lease runs out. */
	clock_sleep_ms(80);
	/* 3. The reaper returns o1 to pending. */
	size_t reaped;
	assert_int_equal(store_reap(f->s, 5, 100, &reaped), 0);
	assert_int_equal(reaped, 1);
	assert_int_equal(status_of(f->s, "o1"), ORDER_PENDING);
	/* 4. B claims o1 (fence f2 > f1, second attempt). */
	store_claim_t b = claim1(f->s, "replica-b", 30000, "o1");
	assert_true(b.fence > a.fence);
	assert_int_equal(b.order.attempts, 2);
	/* 5. A wakes and processes with f1: FENCED, nothing reserved. */
	assert_int_equal(process1(f->s, &a, NULL), PROCESS_FENCED);
	assert_int_equal(stock_of(f->s, "A"), 10);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM reservations"), 0);
	/* 6. A's retry and release with f1: OD_EFENCE, nothing written. */
	bool failed;
	assert_int_equal(
	    store_retry(f->s, "o1", a.fence, 5, 0, "boom", &failed), OD_EFENCE);
	assert_int_equal(store_release(f->s, "o1", a.fence), OD_EFENCE);
	assert_int_equal(status_of(f->s, "o1"), ORDER_PROCESSING);
	/* 7. B processes with f2: COMPLETED, stock taken once. */
	assert_int_equal(process1(f->s, &b, NULL), PROCESS_COMPLETED);
	assert_int_equal(stock_of(f->s, "A"), 6);
	/* 8. A's late writes still change nothing. */
	assert_int_equal(process1(f->s, &a, NULL), PROCESS_FENCED);
	assert_int_equal(store_release(f->s, "o1", a.fence), OD_EFENCE);
	/* 9. The audit is clean and o1 completed exactly once. */
	assert_int_equal(verify(f->s, NULL), 0);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM order_events"
	                         " WHERE order_id = 'o1'"
	                         " AND event = 'complete'"),
	                 1);
	order_status_t st;
	int64_t fence;
	assert_int_equal(store_order_fence(f->s, "o1", &st, &fence), 0);
	assert_int_equal(st, ORDER_COMPLETED);
	assert_int_equal(fence, b.fence);
	store_claims_clear(&a, 1);
	store_claims_clear(&b, 1);
}

/* Interleaving: a holder whose lease expired but was not reaped yet. */
static void test_interleaving_expired_unreaped(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);

	/* 1. A claims o1 (f1) with a 50 ms lease; it expires, nobody reaps. */
	store_claim_t a = claim1(f->s, "replica-a", 50, "o1");
	clock_sleep_ms(80);
	/* 2. A drains and releases o1 with f1: the fence is still current
	 *    (only a new claim replaces it), so o1 is handed back and the
	 *    attempt is not counted. */
	assert_int_equal(store_release(f->s, "o1", a.fence), 0);
	/* 3. B claims o1 (f2): attempts is 1 again. */
	store_claim_t b = claim1(f->s, "replica-b", 30000, "o1");
	assert_int_equal(b.order.attempts, 1);
	/* 4. A releases with f1 again: OD_EFENCE. */
	assert_int_equal(store_release(f->s, "o1", a.fence), OD_EFENCE);
	/* 5. The reaper finds nothing: B's lease is live. */
	size_t reaped = 99;
	assert_int_equal(store_reap(f->s, 5, 100, &reaped), 0);
	assert_int_equal(reaped, 0);
	/* 6. B hits a transient error and retries: o1 pending, error kept. */
	bool failed = true;
	assert_int_equal(
	    store_retry(f->s, "o1", b.fence, 5, 0, "store timeout", &failed),
	    0);
	assert_false(failed);
	order_t o = get(f->s, "o1");
	assert_int_equal(o.status, ORDER_PENDING);
	assert_string_equal(o.reason, "store timeout");
	assert_int_equal(o.finished_at, 0);
	order_clear(&o);
	store_claims_clear(&a, 1);
	store_claims_clear(&b, 1);
}

/* ---- reads and client transitions ---- */

static void test_requeue_and_cancel(void **state)
{
	fixture_t *f = *state;
	order_t o;
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o2", "A:1"), SUBMIT_CREATED);

	assert_int_equal(store_order_cancel(f->s, "o1", &o), 0);
	assert_int_equal(o.status, ORDER_CANCELLED);
	assert_true(o.finished_at > 0);
	order_clear(&o);
	assert_int_equal(store_order_cancel(f->s, "o1", &o), OD_ESTATE);
	assert_int_equal(store_order_cancel(f->s, "nope", &o), OD_ENOTFOUND);
	assert_int_equal(store_order_requeue(f->s, "o1", &o), OD_ESTATE);
	assert_int_equal(store_order_requeue(f->s, "nope", &o), OD_ENOTFOUND);

	/* o2: claimed, so no longer cancellable; fails; requeued. */
	store_claim_t c = claim1(f->s, "w", 30000, "o2");
	assert_int_equal(store_order_cancel(f->s, "o2", &o), OD_ESTATE);
	bool failed;
	assert_int_equal(
	    store_retry(f->s, "o2", c.fence, 1, 0, "down", &failed), 0);
	assert_true(failed);
	store_claims_clear(&c, 1);
	assert_int_equal(store_order_requeue(f->s, "o2", &o), 0);
	assert_int_equal(o.status, ORDER_PENDING);
	assert_int_equal(o.attempts, 0);
	assert_null(o.reason);
	assert_int_equal(o.finished_at, 0);
	order_clear(&o);
	assert_int_equal(store_order_requeue(f->s, "o2", NULL), OD_ESTATE);
	c = claim1(f->s, "w", 30000, "o2");
	assert_int_equal(c.order.attempts, 1);
	store_claims_clear(&c, 1);
	assert_int_equal(
	    raw_int("SELECT COUNT(*) FROM orders WHERE finished_at IS NULL"),
	    0);
}

static void test_list_get_terminal(void **state)
{
	fixture_t *f = *state;
	char id[16];
	for (int i = 0; i < 7; i++) {
		snprintf(id, sizeof id, "o%d", i);
		assert_int_equal(submit1(f->s, id, "A:1"), SUBMIT_CREATED);
	}
	assert_int_equal(store_order_cancel(f->s, "o2", NULL), 0);
	assert_int_equal(store_order_cancel(f->s, "o5", NULL), 0);

	order_t *os;
	size_t n;
	bool more;
	assert_int_equal(store_order_list(f->s, -1, 0, 3, &os, &n, &more), 0);
	assert_int_equal(n, 3);
	assert_true(more);
	assert_string_equal(os[0].id, "o0");
	assert_string_equal(os[2].id, "o2");
	int64_t cursor = os[2].seq;
	store_orders_free(os, n);
	assert_int_equal(store_order_list(f->s, -1, cursor, 4, &os, &n, &more),
	                 0);
	assert_int_equal(n, 4);
	assert_false(more);
	assert_string_equal(os[0].id, "o3");
	store_orders_free(os, n);
	assert_int_equal(
	    store_order_list(f->s, ORDER_CANCELLED, 0, 1, &os, &n, &more), 0);
	assert_int_equal(n, 1);
	assert_true(more);
	assert_string_equal(os[0].id, "o2");
	cursor = os[0].seq;
	store_orders_free(os, n);
	assert_int_equal(
	    store_order_list(f->s, ORDER_CANCELLED, cursor, 10, &os, &n, &more),
	    0);
	assert_int_equal(n, 1);
	assert_false(more);
	assert_string_equal(os[0].id, "o5");
	store_orders_free(os, n);
	assert_int_equal(
	    store_order_list(f->s, ORDER_FAILED, 0, 10, &os, &n, &more), 0);
	assert_int_equal(n, 0);
	assert_false(more);
	store_orders_free(os, n);
	order_t o;
	assert_int_equal(store_order_get(f->s, "missing", &o), OD_ENOTFOUND);

	/* Terminal, and unknown ids (the full read answers them). */
	const char *ids[] = {"o0", "o2", "missing", "o5", "o6"};
	bool term[5];
	assert_int_equal(store_orders_terminal(f->s, ids, 5, term), 0);
	assert_false(term[0]);
	assert_true(term[1]);
	assert_true(term[2]);
	assert_true(term[3]);
	assert_false(term[4]);
	assert_int_equal(store_orders_terminal(f->s, ids, 0, term), 0);

	order_status_t st;
	int64_t fence = 99;
	assert_int_equal(store_order_fence(f->s, "o0", &st, &fence), 0);
	assert_int_equal(st, ORDER_PENDING);
	assert_int_equal(fence, 0);
	assert_int_equal(store_order_fence(f->s, "missing", &st, &fence),
	                 OD_ENOTFOUND);
}

static void test_products(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "B", 3);
	set_stock(f->s, "A", 1);
	set_stock(f->s, "C", 2);
	set_stock(f->s, "A", 9); /* a second adjustment, of +8 */
	set_stock(f->s, "C", 2); /* no change, no adjustment */
	assert_int_equal(
	    raw_int("SELECT SUM(delta) FROM adjustments WHERE sku = 'A'"), 9);
	assert_int_equal(
	    raw_int("SELECT COUNT(*) FROM adjustments WHERE sku = 'C'"), 1);
	product_t *ps;
	size_t n;
	bool more;
	assert_int_equal(store_product_list(f->s, "", 2, &ps, &n, &more), 0);
	assert_int_equal(n, 2);
	assert_true(more);
	assert_string_equal(ps[0].sku, "A");
	assert_int_equal(ps[0].stock, 9);
	assert_true(ps[0].updated_at > 1600000000000LL);
	assert_string_equal(ps[1].sku, "B");
	free(ps);
	assert_int_equal(store_product_list(f->s, "B", 2, &ps, &n, &more), 0);
	assert_int_equal(n, 1);
	assert_false(more);
	assert_string_equal(ps[0].sku, "C");
	free(ps);
	product_t p;
	assert_int_equal(store_product_get(f->s, "Z", &p), OD_ENOTFOUND);
	set_stock(f->s, "Z", 0);
	set_stock(f->s, "Z", PRODUCT_STOCK_MAX);
	assert_int_equal(verify(f->s, NULL), 0);
}

/*
 * Stats. "Oldest pending" is the age, since submission, of the oldest
 * claimable order: pending and due. An order waiting out a retry delay
 * is not claimable and does not count until it is due again.
 */
static void test_stats_oldest_pending(void **state)
{
	fixture_t *f = *state;
	store_stats_t st;
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_int_equal(st.oldest_pending_ms, 0);
	assert_true(st.now_ms > 1600000000000LL);
	for (int i = 0; i < ORDER_STATUS_COUNT; i++)
		assert_int_equal(st.count[i], 0);

	/* 1. o1 is submitted, claimed and retried with a long delay. */
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	store_claim_t c = claim1(f->s, "w", 30000, "o1");
	assert_int_equal(
	    store_retry(f->s, "o1", c.fence, 5, 600000, "later", NULL), 0);
	store_claims_clear(&c, 1);
	clock_sleep_ms(100);
	/* 2. o1 is pending but not due: no claimable order, age 0. */
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_int_equal(st.count[ORDER_PENDING], 1);
	assert_int_equal(st.oldest_pending_ms, 0);
	/* 3. o2 arrives and waits 50 ms: the age is o2's, not o1's. */
	assert_int_equal(submit1(f->s, "o2", "A:1"), SUBMIT_CREATED);
	clock_sleep_ms(50);
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_int_equal(st.count[ORDER_PENDING], 2);
	assert_true(st.oldest_pending_ms >= 50);
	assert_true(st.oldest_pending_ms < 100 + 50);
	/* 4. o1 becomes due: it counts with its age since submission. */
	raw_exec("UPDATE orders SET next_at = 0 WHERE id = 'o1'");
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_true(st.oldest_pending_ms >= 150);

	/* Terminal counts, after the cache period. */
	assert_int_equal(store_order_cancel(f->s, "o2", NULL), 0);
	clock_sleep_ms(STORE_STATS_TERMINAL_MS + 50);
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_int_equal(st.count[ORDER_CANCELLED], 1);
	assert_int_equal(st.count[ORDER_PENDING], 1);
}

/* ---- replicas ---- */

static void test_replicas(void **state)
{
	fixture_t *f = *state;
	char ids[4][ID_MAX + 1];
	size_t n = 99;
	assert_int_equal(store_replicas_list(f->s, 60000, ids, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_replica_beat(f->s, "r-a"), 0);
	clock_sleep_ms(5);
	assert_int_equal(store_replica_beat(f->s, "r-b"), 0);
	assert_int_equal(store_replicas_list(f->s, 60000, ids, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], "r-b"); /* most recent first */
	assert_string_equal(ids[1], "r-a");
	assert_int_equal(store_replicas_list(f->s, 60000, ids, 1, &n), 0);
	assert_int_equal(n, 2); /* the total, though one id fits */
	assert_int_equal(store_replicas_list(f->s, 60000, NULL, 0, &n), 0);
	assert_int_equal(n, 2);
	/* Listing is a read: it records nobody. */
	assert_int_equal(raw_int("SELECT COUNT(*) FROM replicas"), 2);
	raw_exec("UPDATE replicas SET last_seen = last_seen - 120000"
	         " WHERE id = 'r-a'");
	assert_int_equal(store_replicas_list(f->s, 60000, ids, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "r-b");
	/* A beat forgets rows older than a day. */
	raw_exec("UPDATE replicas SET last_seen = last_seen - 90000000"
	         " WHERE id = 'r-a'");
	assert_int_equal(store_replica_beat(f->s, "r-b"), 0);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM replicas"), 1);
}

/* ---- named locks ---- */

static void test_locks(void **state)
{
	fixture_t *f = *state;
	store_lock_t l, held;
	/* One holder. */
	assert_int_equal(store_lock_acquire(f->s, "res", "svc-a", 150, &l), 0);
	assert_string_equal(l.name, "res");
	assert_string_equal(l.owner, "svc-a");
	int64_t f1 = l.fence;
	assert_true(f1 > 0);
	assert_true(l.expires_at > 1600000000000LL);
	assert_int_equal(store_lock_acquire(f->s, "res", "svc-b", 10000, &held),
	                 OD_ELOCKHELD);
	assert_string_equal(held.owner, "svc-a");
	assert_int_equal(held.fence, f1);
	/* Not re-entrant. */
	assert_int_equal(store_lock_acquire(f->s, "res", "svc-a", 10000, &held),
	                 OD_ELOCKHELD);
	assert_int_equal(store_lock_get(f->s, "res", &held), 0);
	assert_string_equal(held.owner, "svc-a");
	/* Renew needs owner and fence. */
	assert_int_equal(
	    store_lock_renew(f->s, "res", "svc-a", f1 + 1, 150, &l),
	    OD_ELOCKLOST);
	assert_int_equal(store_lock_renew(f->s, "res", "svc-b", f1, 150, &l),
	                 OD_ELOCKLOST);
	assert_int_equal(store_lock_renew(f->s, "res", "svc-a", f1, 150, &l),
	                 0);
	assert_int_equal(l.fence, f1);

	/* Expiry: svc-a stalls past its ttl; svc-b gets a larger fence. */
	clock_sleep_ms(250);
	assert_int_equal(store_lock_get(f->s, "res", &held), OD_ENOTFOUND);
	assert_int_equal(store_lock_renew(f->s, "res", "svc-a", f1, 100, &l),
	                 OD_ELOCKLOST);
	assert_int_equal(store_lock_acquire(f->s, "res", "svc-b", 10000, &l),
	                 0);
	int64_t f2 = l.fence;
	assert_true(f2 > f1);
	/* The stale holder can neither renew nor release. */
	assert_int_equal(store_lock_release(f->s, "res", "svc-a", f1),
	                 OD_ELOCKLOST);
	assert_int_equal(store_lock_renew(f->s, "res", "svc-a", f1, 100, &l),
	                 OD_ELOCKLOST);

	/* Fences are shared with order leases: always growing. */
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	store_claim_t c = claim1(f->s, "w", 30000, "o1");
	assert_true(c.fence > f2);
	store_claims_clear(&c, 1);
	assert_int_equal(store_lock_acquire(f->s, "other", "svc-a", 1000, &l),
	                 0);
	assert_true(l.fence > c.fence);

	assert_int_equal(store_lock_release(f->s, "res", "svc-b", f2), 0);
	assert_int_equal(store_lock_get(f->s, "res", &held), OD_ENOTFOUND);
	assert_int_equal(store_lock_release(f->s, "res", "svc-b", f2),
	                 OD_ELOCKLOST);
	assert_int_equal(store_lock_acquire(f->s, "res", "svc-a", 1000, &l), 0);
	assert_true(l.fence > f2);
	assert_int_equal(store_lock_get(f->s, "never", &held), OD_ENOTFOUND);
}

typedef struct racer {
	store_t *s;
	char owner[16];
	int rc;
	store_lock_t lock;
} racer_t;

static void *race_thread(void *arg)
{
	racer_t *r = arg;
	r->rc = store_lock_acquire(r->s, "race", r->owner, 30000, &r->lock);
	return NULL;
}

/* Eight acquirers at once: exactly one wins, the others see it. */
static void test_lock_race(void **state)
{
	fixture_t *f = *state;
	racer_t rs[8];
	pthread_t t[8];
	for (int i = 0; i < 8; i++) {
		memset(&rs[i], 0, sizeof rs[i]);
		rs[i].s = f->s;
		snprintf(rs[i].owner, sizeof rs[i].owner, "r%d", i);
		assert_int_equal(
		    pthread_create(&t[i], NULL, race_thread, &rs[i]), 0);
	}
	int winners = 0, winner = -1;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		if (rs[i].rc == 0)
			winners++, winner = i;
		else
			assert_int_equal(rs[i].rc, OD_ELOCKHELD);
	}
	assert_int_equal(winners, 1);
	for (int i = 0; i < 8; i++)
		if (rs[i].rc == OD_ELOCKHELD)
			assert_string_equal(rs[i].lock.owner, rs[winner].owner);
}

/* ---- arguments: checked once, in store.c, the same on both ---- */

static void test_arguments(void **state)
{
	fixture_t *f = *state;
	store_t *s = f->s;
	order_t o = mkorder("o1", "c", "A:1", NULL);
	const order_t *arr[1] = {&o};
	store_submit_result_t r;
	assert_int_equal(store_submit(s, arr, 0, &r), 0);
	assert_int_equal(store_submit(s, NULL, 1, &r), OD_EINVAL);
	assert_int_equal(store_submit(s, arr, 1, NULL), OD_EINVAL);
	assert_int_equal(store_submit(s, arr, STORE_SUBMIT_MAX + 1, &r),
	                 OD_EINVAL);
	order_clear(&o);

	order_t got;
	assert_int_equal(store_order_get(s, NULL, &got), OD_EINVAL);
	assert_int_equal(store_order_get(s, "o1", NULL), OD_EINVAL);
	order_t *os;
	size_t n;
	bool more;
	assert_int_equal(store_order_list(s, -1, 0, 0, &os, &n, &more),
	                 OD_EINVAL);
	assert_int_equal(
	    store_order_list(s, -1, 0, STORE_LIST_MAX + 1, &os, &n, &more),
	    OD_EINVAL);
	assert_int_equal(
	    store_order_list(s, ORDER_STATUS_COUNT, 0, 1, &os, &n, &more),
	    OD_EINVAL);
	assert_int_equal(store_order_list(s, -1, 0, 1, NULL, &n, &more),
	                 OD_EINVAL);
	assert_int_equal(store_order_list(s, -1, 0, 1, &os, NULL, &more),
	                 OD_EINVAL);
	assert_int_equal(store_order_cancel(s, NULL, NULL), OD_EINVAL);
	assert_int_equal(store_order_requeue(s, NULL, NULL), OD_EINVAL);
	assert_int_equal(store_stats(s, NULL), OD_EINVAL);

	product_t p;
	assert_int_equal(store_product_set(s, "A", -1, &p), OD_EINVAL);
	assert_int_equal(store_product_set(s, "A", PRODUCT_STOCK_MAX + 1, &p),
	                 OD_EINVAL);
	assert_int_equal(store_product_set(s, "bad sku", 1, &p), OD_EINVAL);
	assert_int_equal(store_product_set(s, NULL, 1, &p), OD_EINVAL);
	assert_int_equal(store_product_get(s, "A", NULL), OD_EINVAL);
	product_t *ps;
	assert_int_equal(store_product_list(s, "", 0, &ps, &n, &more),
	                 OD_EINVAL);
	assert_int_equal(store_product_list(s, NULL, 1, &ps, &n, &more),
	                 OD_EINVAL);

	store_claim_t c[1];
	assert_int_equal(store_claim(s, "w", 0, 1, c, &n), OD_EINVAL);
	assert_int_equal(store_claim(s, "w", -5, 1, c, &n), OD_EINVAL);
	assert_int_equal(store_claim(s, NULL, 1000, 1, c, &n), OD_EINVAL);
	assert_int_equal(store_claim(s, "", 1000, 1, c, &n), OD_EINVAL);
	assert_int_equal(store_claim(s, "w", 1000, 1, NULL, &n), OD_EINVAL);
	assert_int_equal(store_claim(s, "w", 1000, 1, c, NULL), OD_EINVAL);
	assert_int_equal(store_claim(s, "w", STORE_LEASE_MAX_MS + 1, 1, c, &n),
	                 OD_EINVAL);
	store_process_result_t pr;
	assert_int_equal(store_process(s, NULL, 1, &pr), OD_EINVAL);
	assert_int_equal(store_process(s, c, 1, NULL), OD_EINVAL);
	assert_int_equal(store_retry(s, "o1", 1, 0, 0, "e", NULL), OD_EINVAL);
	assert_int_equal(store_retry(s, "o1", 1, 3, -1, "e", NULL), OD_EINVAL);
	assert_int_equal(store_retry(s, NULL, 1, 3, 0, "e", NULL), OD_EINVAL);
	assert_int_equal(store_retry(s, "o1", 1, 3, 0, NULL, NULL), OD_EINVAL);
	assert_int_equal(store_release(s, NULL, 1), OD_EINVAL);
	assert_int_equal(store_reap(s, 0, 10, &n), OD_EINVAL);
	assert_int_equal(store_reap(s, 3, 10, NULL), OD_EINVAL);
	order_status_t st;
	int64_t fence;
	assert_int_equal(store_order_fence(s, "o1", NULL, &fence), OD_EINVAL);
	assert_int_equal(store_order_fence(s, "o1", &st, NULL), OD_EINVAL);

	char ids[1][ID_MAX + 1];
	assert_int_equal(store_replica_beat(s, NULL), OD_EINVAL);
	assert_int_equal(store_replica_beat(s, "bad id"), OD_EINVAL);
	assert_int_equal(store_replicas_list(s, 0, ids, 1, &n), OD_EINVAL);
	assert_int_equal(store_replicas_list(s, 1000, NULL, 1, &n), OD_EINVAL);
	assert_int_equal(store_replicas_list(s, 1000, ids, 1, NULL), OD_EINVAL);

	store_lock_t l;
	assert_int_equal(store_lock_acquire(s, "x", "o", 0, &l), OD_EINVAL);
	assert_int_equal(
	    store_lock_acquire(s, "x", "o", STORE_LEASE_MAX_MS + 1, &l),
	    OD_EINVAL);
	assert_int_equal(store_lock_acquire(s, "x y", "o", 100, &l), OD_EINVAL);
	assert_int_equal(store_lock_acquire(s, "x", NULL, 100, &l), OD_EINVAL);
	assert_int_equal(store_lock_acquire(s, "x", "o", 100, NULL), OD_EINVAL);
	assert_int_equal(store_lock_renew(s, "x", "o", 1, 0, &l), OD_EINVAL);
	assert_int_equal(store_lock_renew(s, "x", NULL, 1, 100, &l), OD_EINVAL);
	assert_int_equal(store_lock_release(s, "x", NULL, 1), OD_EINVAL);
	assert_int_equal(store_lock_get(s, NULL, &l), OD_EINVAL);
	assert_int_equal(store_lock_get(s, "x", NULL), OD_EINVAL);
	assert_int_equal(store_verify(s, NULL, NULL, NULL), OD_EINVAL);
	/* Nothing above reached the store. */
	assert_int_equal(raw_int("SELECT COUNT(*) FROM orders"), 0);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM products"), 0);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM locks"), 0);
}

/* ---- the audit: one list of invariants, the same words on both ---- */

static void expect_violations(store_t *s, const char *const *want, size_t n)
{
	violations_t v = {0};
	size_t got = verify(s, &v);
	for (size_t i = 0; i < got && i < 16; i++)
		print_message("violation: %s\n", v.lines[i]);
	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(v.lines[i], want[i]);
}

static void test_verify_each_violation(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 10);
	set_stock(f->s, "B", 10);
	assert_int_equal(submit1(f->s, "o1", "A:2,B:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o2", "A:1"), SUBMIT_CREATED);
	store_claim_t c = claim1(f->s, "w", 30000, "o1");
	assert_int_equal(process1(f->s, &c, NULL), PROCESS_COMPLETED);
	store_claims_clear(&c, 1);
	assert_int_equal(verify(f->s, NULL), 0);

	/* 1. Stock that does not add up (an adjustment lost). */
	raw_exec("DELETE FROM adjustments WHERE sku = 'B'");
	static const char *const v1[] = {
	    "product 'B': stock 9 != adjustments 0 - reserved 1"};
	expect_violations(f->s, v1, 1);
	raw_exec("INSERT INTO adjustments (sku, delta, created_at)"
	         " VALUES ('B', 10, 0)");
	assert_int_equal(verify(f->s, NULL), 0);

	/* 2. Negative stock (the CHECK constraint dropped to get there is
	 *    not something the audit trusts). Conservation fails too. */
	if (is_pg) {
		raw_exec("ALTER TABLE products DROP CONSTRAINT"
		         " products_stock_check");
		raw_exec("UPDATE products SET stock = -1 WHERE sku = 'B'");
		static const char *const v2[] = {
		    "product 'B': negative stock -1",
		    "product 'B': stock -1 != adjustments 10 - reserved 1"};
		expect_violations(f->s, v2, 2);
		raw_exec("UPDATE products SET stock = 9 WHERE sku = 'B'");
	}

	/* 3. A reservation held by an order that is not completed (with its
	 *    stock taken, so conservation still holds). */
	raw_exec("UPDATE products SET stock = stock - 1 WHERE sku = 'A';");
	raw_exec("INSERT INTO reservations (order_id, sku, qty, fence,"
	         " created_at) VALUES ('o2', 'A', 1, 0, 0)");
	static const char *const v3[] = {
	    "order 'o2': reservation of sku 'A' but order status is pending"};
	expect_violations(f->s, v3, 1);
	raw_exec("DELETE FROM reservations WHERE order_id = 'o2'");
	raw_exec("UPDATE products SET stock = stock + 1 WHERE sku = 'A'");

	/* 4. A reservation whose order does not exist. */
	raw_exec("UPDATE products SET stock = stock - 1 WHERE sku = 'A';");
	raw_exec("INSERT INTO reservations (order_id, sku, qty, fence,"
	         " created_at) VALUES ('ghost', 'A', 1, 0, 0)");
	static const char *const v4[] = {
	    "order 'ghost': reservation of sku 'A' but no such order"};
	expect_violations(f->s, v4, 1);
	raw_exec("DELETE FROM reservations WHERE order_id = 'ghost'");
	raw_exec("UPDATE products SET stock = stock + 1 WHERE sku = 'A'");
	assert_int_equal(verify(f->s, NULL), 0);

	/* 5-8. A completed order with one reservation short in quantity, a
	 *      reservation of a sku that is no item and no product, and a
	 *      second completion in the log. */
	raw_exec("UPDATE reservations SET qty = 1 WHERE order_id = 'o1'"
	         " AND sku = 'A'");
	raw_exec("UPDATE products SET stock = stock + 1 WHERE sku = 'A'");
	raw_exec("INSERT INTO reservations (order_id, sku, qty, fence,"
	         " created_at) VALUES ('o1', 'GHOST', 1, 0, 0)");
	raw_exec("INSERT INTO order_events (order_id, event, fence, at)"
	         " VALUES ('o1', 'complete', 99, 0)");
	static const char *const v5[] = {
	    "order 'o1': completed but item sku 'A' qty 2 has no matching"
	    " reservation",
	    "order 'o1': reservation of sku 'A' qty 1 matches no item",
	    "order 'o1': reservation of sku 'GHOST' qty 1 matches no item",
	    "order 'o1': reached a final outcome 2 times (complete 2,"
	    " reject 0)",
	    "order 'o1': reservation of sku 'GHOST' which is no product",
	};
	expect_violations(f->s, v5, 5);
	raw_exec("DELETE FROM reservations WHERE sku = 'GHOST'");
	raw_exec("UPDATE reservations SET qty = 2 WHERE order_id = 'o1'"
	         " AND sku = 'A'");
	raw_exec("UPDATE products SET stock = stock - 1 WHERE sku = 'A'");
	raw_exec("DELETE FROM order_events WHERE fence = 99");
	assert_int_equal(verify(f->s, NULL), 0);

	/* 9. A completed order with no completion in the log. */
	raw_exec("DELETE FROM order_events WHERE order_id = 'o1'"
	         " AND event = 'complete'");
	static const char *const v9[] = {
	    "order 'o1': status completed but no complete event"};
	expect_violations(f->s, v9, 1);
	size_t n = 99;
	assert_int_equal(store_verify(f->s, NULL, NULL, &n), 0);
	assert_int_equal(n, 1);
}

/* ---- concurrency ---- */

enum { CC_ORDERS = 2000, CC_WORKERS = 4, CC_SKUS = 5, CC_BATCH = 50 };

typedef struct cc_shared {
	store_t *s;
	atomic_int finished; /* completed + rejected seen by workers */
	atomic_int completed;
	atomic_int rejected;
	atomic_int fenced;
	atomic_int errors;
} cc_shared_t;

static void *cc_submitter(void *arg)
{
	cc_shared_t *sh = arg;
	order_t os[CC_BATCH];
	const order_t *arr[CC_BATCH];
	store_submit_result_t r[CC_BATCH];
	uint64_t seed = 42;
	for (int base = 0; base < CC_ORDERS; base += CC_BATCH) {
		for (int i = 0; i < CC_BATCH; i++) {
			char id[32], items[64];
			snprintf(id, sizeof id, "cc%05d", base + i);
			seed = seed * 6364136223846793005ULL +
			       1442695040888963407ULL;
			int a = (int)((seed >> 33) % CC_SKUS);
			int b = (a + 1 + (int)((seed >> 40) % (CC_SKUS - 1))) %
			        CC_SKUS;
			snprintf(items, sizeof items, "S%d:%d,S%d:%d", a,
			         1 + (int)((seed >> 20) % 3), b,
			         1 + (int)((seed >> 24) % 3));
			os[i] = mkorder(id, "c", items, NULL);
			arr[i] = &os[i];
		}
		int rc = store_submit(sh->s, arr, CC_BATCH, r);
		for (int i = 0; i < CC_BATCH; i++) {
			if (rc == 0) {
				if (r[i].outcome != SUBMIT_CREATED)
					atomic_fetch_add(&sh->errors, 1);
				order_clear(&r[i].order);
			}
			order_clear(&os[i]);
		}
		if (rc != 0)
			atomic_fetch_add(&sh->errors, 1);
	}
	return NULL;
}

static void *cc_worker(void *arg)
{
	cc_shared_t *sh = arg;
	char owner[32];
	snprintf(owner, sizeof owner, "w%p", (void *)&owner);
	store_claim_t c[20];
	store_process_result_t r[20];
	int64_t deadline = clock_mono_ms() + 60000;
	while (atomic_load(&sh->finished) < CC_ORDERS &&
	       atomic_load(&sh->errors) == 0 && clock_mono_ms() < deadline) {
		size_t n;
		if (store_claim(sh->s, owner, 30000, 20, c, &n) != 0) {
			atomic_fetch_add(&sh->errors, 1);
			break;
		}
		if (n == 0) {
			clock_sleep_ms(1);
			continue;
		}
		if (store_process(sh->s, c, n, r) != 0)
			atomic_fetch_add(&sh->errors, 1);
		for (size_t i = 0; i < n; i++) {
			if (r[i].outcome == PROCESS_COMPLETED)
				atomic_fetch_add(&sh->completed, 1);
			else if (r[i].outcome == PROCESS_REJECTED)
				atomic_fetch_add(&sh->rejected, 1);
			else
				atomic_fetch_add(&sh->fenced, 1);
		}
		atomic_fetch_add(&sh->finished, (int)n);
		store_claims_clear(c, n);
	}
	return NULL;
}

static void test_concurrent_claim_and_process(void **state)
{
	fixture_t *f = *state;
	/* Enough stock for most but not all orders, so both outcomes occur
	 * and stock runs down to the edge under contention. */
	for (int i = 0; i < CC_SKUS; i++) {
		char sku[8];
		snprintf(sku, sizeof sku, "S%d", i);
		set_stock(f->s, sku, 1400);
	}
	cc_shared_t sh = {.s = f->s};
	pthread_t sub, w[CC_WORKERS];
	int64_t t0 = clock_mono_ms();
	assert_int_equal(pthread_create(&sub, NULL, cc_submitter, &sh), 0);
	for (int i = 0; i < CC_WORKERS; i++)
		assert_int_equal(pthread_create(&w[i], NULL, cc_worker, &sh),
		                 0);
	pthread_join(sub, NULL);
	for (int i = 0; i < CC_WORKERS; i++)
		pthread_join(w[i], NULL);
	print_message("%d orders submitted and processed by %d workers in "
	              "%lld ms (%d completed, %d rejected)\n",
	              CC_ORDERS, CC_WORKERS, (long long)(clock_mono_ms() - t0),
	              atomic_load(&sh.completed), atomic_load(&sh.rejected));

	assert_int_equal(atomic_load(&sh.errors), 0);
	assert_int_equal(atomic_load(&sh.fenced), 0);
	assert_int_equal(atomic_load(&sh.completed) + atomic_load(&sh.rejected),
	                 CC_ORDERS);
	assert_true(atomic_load(&sh.completed) > 0);
	assert_true(atomic_load(&sh.rejected) > 0);
	assert_int_equal(verify(f->s, NULL), 0);
	/* Each order reached its terminal status exactly once. */
	assert_int_equal(raw_int("SELECT COUNT(*) FROM (SELECT order_id"
	                         " FROM order_events WHERE event IN"
	                         " ('complete','reject') GROUP BY order_id"
	                         " HAVING COUNT(*) = 1) x"),
	                 CC_ORDERS);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM products"
	                         " WHERE stock < 0"),
	                 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_submit_new_replay_conflict),
	    T(test_submit_batch_order),
	    T(test_claim_order_batch_fence),
	    T(test_claim_due_boundary),
	    T(test_claim_by_due_time),
	    T(test_process_complete_and_reject),
	    T(test_process_duplicate_reservation),
	    T(test_retry_until_failed),
	    T(test_release),
	    T(test_reap_boundary),
	    T(test_reap_limits_and_dead_letters),
	    T(test_interleaving_stale_holder),
	    T(test_interleaving_expired_unreaped),
	    T(test_requeue_and_cancel),
	    T(test_list_get_terminal),
	    T(test_products),
	    T(test_stats_oldest_pending),
	    T(test_replicas),
	    T(test_locks),
	    T(test_lock_race),
	    T(test_arguments),
	    T(test_verify_each_violation),
	    T(test_concurrent_claim_and_process),
	};
	const char *be = getenv("ORDERD_TEST_BACKEND");
	return cmocka_run_group_tests_name(be ? be : "sqlite", tests, setup_all,
	                                   NULL);
}
