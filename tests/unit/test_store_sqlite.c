/*
 * Unit tests for the SQLite store backend (src/store/sqlite*.c) through the
 * public store.h interface: migrations, idempotent submit, claims and
 * fences, all-or-nothing processing, retries, the client transitions,
 * named locks, the audit (against a deliberately damaged file) and a
 * concurrent run. Lease and fencing interleavings are written as numbered
 * steps, one store call each. Every test gets its own database file under
 * /tmp, removed afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

typedef struct fixture {
	char path[64];
	char uri[80];
	store_t *s;
} fixture_t;

static void remove_db(const char *path)
{
	char p[96];
	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
}

static int open_store(fixture_t *f)
{
	store_options_t opt = {.replica_id = "test", .readers = 2};
	return store_open(f->uri, &opt, &f->s);
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof *f);
	assert_non_null(f);
	snprintf(f->path, sizeof f->path, "/tmp/orderd-test-sqlite-XXXXXX");
	int fd = mkstemp(f->path);
	assert_true(fd >= 0);
	close(fd); /* an empty file is an empty database */
	snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->path);
	assert_int_equal(open_store(f), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	store_free(f->s);
	remove_db(f->path);
	free(f);
	return 0;
}

/* Builds a canonical order the way the API does, from JSON text with items
 * given as "SKU:QTY,SKU:QTY" in any order. */
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

/* Submits one order and returns the outcome; the stored order is cleared
 * unless ret is given. */
static submit_outcome_t submit1(store_t *s, const char *id, const char *items,
                                order_t *ret)
{
	order_t o = mkorder(id, "cust-1", items, NULL);
	const order_t *arr[1] = {&o};
	store_submit_result_t r;
	assert_int_equal(store_submit(s, arr, 1, &r), 0);
	order_clear(&o);
	if (ret)
		*ret = r.order;
	else
		order_clear(&r.order);
	return r.outcome;
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

static order_status_t status_of(store_t *s, const char *id)
{
	order_t o;
	assert_int_equal(store_order_get(s, id, &o), 0);
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

static process_outcome_t process1(store_t *s, const store_claim_t *c,
                                  const char **ret_reason)
{
	store_process_result_t r;
	assert_int_equal(store_process(s, c, 1, &r), 0);
	if (ret_reason)
		*ret_reason = r.reason;
	return r.outcome;
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

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("raw sql %s: %s", sql, err);
	sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* ---- schema ---- */

static void test_migrations_idempotent(void **state)
{
	fixture_t *f = *state;
	assert_string_equal(store_backend_name(f->s), "sqlite");
	assert_int_equal(store_ping(f->s), 0);
	set_stock(f->s, "A", 7);
	assert_int_equal(submit1(f->s, "o1", "A:1", NULL), SUBMIT_CREATED);

	/* Reopening applies nothing and keeps the data. */
	store_free(f->s);
	assert_int_equal(open_store(f), 0);
	store_free(f->s);
	assert_int_equal(open_store(f), 0);
	/* One row per migration, each applied once: no version twice. */
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) = MAX(version)"
	                                  " AND COUNT(DISTINCT version) ="
	                                  " COUNT(*) FROM schema_version"),
	                 1);
	assert_int_equal(stock_of(f->s, "A"), 7);
	assert_int_equal(status_of(f->s, "o1"), ORDER_PENDING);
	assert_int_equal(submit1(f->s, "o1", "A:1", NULL), SUBMIT_REPLAYED);

	/* A file from a newer orderd is refused, untouched. */
	store_free(f->s);
	f->s = NULL;
	raw_exec(f->path, "INSERT INTO schema_version VALUES (999, 0)");
	store_t *s2 = (store_t *)0x1;
	store_options_t opt = {0};
	assert_int_equal(store_open(f->uri, &opt, &s2), OD_ESCHEMA);
	assert_ptr_equal(s2, (store_t *)0x1);
	raw_exec(f->path, "DELETE FROM schema_version WHERE version = 999");
	assert_int_equal(open_store(f), 0);
	assert_int_equal(stock_of(f->s, "A"), 7);
}

/* ---- submit ---- */

static void test_submit_outcomes(void **state)
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
	const order_t *batch[] = {&o1, &o1same, &o1other, &o2, &o2meta, &o2};
	store_submit_result_t r[6];
	assert_int_equal(store_submit(f->s, batch, 6, r), 0);

	assert_int_equal(r[0].outcome, SUBMIT_CREATED);
	assert_string_equal(r[0].order.id, "o1");
	assert_int_equal(r[0].order.status, ORDER_PENDING);
	assert_int_equal(r[0].order.attempts, 0);
	assert_null(r[0].order.reason);
	assert_true(r[0].order.created_at > 1600000000000LL);
	assert_int_equal(r[0].order.finished_at, 0);
	assert_int_equal(r[0].order.n_items, 2);
	assert_string_equal(r[0].order.items[0].sku, "A");
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

	/* A replay later returns the stored order in its current status. */
	set_stock(f->s, "C", 5);
	store_claim_t c = claim1(f->s, "w", 10000, "o1");
	assert_int_equal(process1(f->s, &c, NULL), PROCESS_REJECTED);
	store_claims_clear(&c, 1);
	const order_t *again[] = {&o1same};
	assert_int_equal(store_submit(f->s, again, 1, r), 0);
	assert_int_equal(r[0].outcome, SUBMIT_REPLAYED);
	assert_int_equal(r[0].order.status, ORDER_REJECTED);
	assert_string_equal(r[0].order.reason, "unknown_sku");
	order_clear(&r[0].order);

	order_clear(&o1);
	order_clear(&o1same);
	order_clear(&o1other);
	order_clear(&o2);
	order_clear(&o2meta);
}

/* Group commit: a full batch in one durable transaction. Timed for the log
 * only, never asserted. */
static void test_submit_group_commit(void **state)
{
	fixture_t *f = *state;
	enum { N = 1000 };
	order_t *os = calloc(N, sizeof *os);
	const order_t **arr = calloc(N, sizeof *arr);
	store_submit_result_t *r = calloc(N, sizeof *r);
	assert_true(os && arr && r);
	for (int i = 0; i < N; i++) {
		char id[32];
		snprintf(id, sizeof id, "g%04d", i);
		os[i] = mkorder(id, "c", "A:1,B:2,C:3", "{\"n\":1}");
		arr[i] = &os[i];
	}
	int64_t t0 = clock_mono_ms();
	assert_int_equal(store_submit(f->s, arr, N, r), 0);
	int64_t t1 = clock_mono_ms();
	print_message("submit of %d orders in one transaction: %lld ms\n", N,
	              (long long)(t1 - t0));
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].outcome, SUBMIT_CREATED);
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

static void test_claim_order_and_fences(void **state)
{
	fixture_t *f = *state;
	const char *ids[] = {"o1", "o2", "o3", "o4", "o5"};
	for (int i = 0; i < 5; i++)
		assert_int_equal(submit1(f->s, ids[i], "A:1", NULL),
		                 SUBMIT_CREATED);
	store_claim_t c[10];
	size_t n;
	assert_int_equal(store_claim(f->s, "w1", 30000, 2, c, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(c[0].order.id, "o1");
	assert_string_equal(c[1].order.id, "o2");
	int64_t f1 = c[0].fence;
	assert_true(f1 > 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(c[i].order.status, ORDER_PROCESSING);
		assert_int_equal(c[i].order.attempts, 1);
		assert_int_equal(c[i].order.n_items, 1);
		assert_true(c[i].lease_until >= c[i].order.updated_at + 30000);
	}
	store_claims_clear(c, n);

	assert_int_equal(store_claim(f->s, "w2", 30000, 10, c, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(c[0].order.id, "o3");
	assert_string_equal(c[2].order.id, "o5");
	assert_true(c[0].fence > f1);
	store_claims_clear(c, n);

	assert_int_equal(store_claim(f->s, "w1", 30000, 10, c, &n), 0);
	assert_int_equal(n, 0);
	store_stats_t st;
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_int_equal(st.count[ORDER_PROCESSING], 5);
	assert_int_equal(st.count[ORDER_PENDING], 0);
	assert_int_equal(st.oldest_pending_ms, 0);
}

/* ---- processing ---- */

static void test_process_complete_and_reject(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	set_stock(f->s, "B", 1);
	assert_int_equal(submit1(f->s, "o1", "A:2,B:1", NULL), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o2", "A:1,X:1", NULL), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o3", "A:4", NULL), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o4", "A:1,B:1", NULL), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o5", "A:3", NULL), SUBMIT_CREATED);

	store_claim_t c[5];
	size_t n;
	assert_int_equal(store_claim(f->s, "w", 30000, 5, c, &n), 0);
	assert_int_equal(n, 5);
	store_process_result_t r[5];
	assert_int_equal(store_process(f->s, c, n, r), 0);
	/* o1 takes A:2 B:1; o2 unknown sku (even though A is there); o3 wants
	 * 4 of the 3 left; o4 is short of B only and takes nothing else; o5
	 * takes the last 3 A. */
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

	order_t o;
	assert_int_equal(store_order_get(f->s, "o3", &o), 0);
	assert_int_equal(o.status, ORDER_REJECTED);
	assert_string_equal(o.reason, "insufficient_stock");
	assert_true(o.finished_at > 0);
	order_clear(&o);
	assert_int_equal(store_order_get(f->s, "o1", &o), 0);
	assert_int_equal(o.status, ORDER_COMPLETED);
	assert_null(o.reason);
	assert_true(o.finished_at >= o.created_at);
	order_clear(&o);
	assert_int_equal(raw_int(f->path,
	                         "SELECT COUNT(*) FROM reservations"
	                         " WHERE order_id IN ('o2','o3','o4')"),
	                 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM reservations"),
	                 3);

	/* Processing the same claims again: the fence still matches but the
	 * order is no longer processing, so nothing happens twice. */
	assert_int_equal(store_process(f->s, c, n, r), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(r[i].outcome, PROCESS_FENCED);
	store_claims_clear(c, n);
	assert_int_equal(stock_of(f->s, "A"), 0);
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
	assert_int_equal(submit1(f->s, "o1", "A:4", NULL), SUBMIT_CREATED);

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
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM reservations"),
	                 0);
	/* 6. A's retry and release with f1: OD_EFENCE, nothing written. */
	bool failed;
	assert_int_equal(
	    store_retry(f->s, "o1", a.fence, 5, 0, "boom", &failed), OD_EFENCE);
	assert_int_equal(store_release(f->s, "o1", a.fence), OD_EFENCE);
	assert_int_equal(status_of(f->s, "o1"), ORDER_PROCESSING);
	/* 7. B processes with f2: COMPLETED, stock taken once. */
	assert_int_equal(process1(f->s, &b, NULL), PROCESS_COMPLETED);
	assert_int_equal(stock_of(f->s, "A"), 6);
	/* 8. The audit is clean and o1 completed exactly once. */
	assert_int_equal(verify(f->s, NULL), 0);
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM order_events"
	                                  " WHERE order_id = 'o1'"
	                                  " AND event = 'complete'"),
	                 1);
	store_claims_clear(&a, 1);
	store_claims_clear(&b, 1);
}

/* Interleaving: a holder whose lease expired but was not reaped yet, and a
 * hand-back on drain. */
static void test_interleaving_release(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(submit1(f->s, "o1", "A:1", NULL), SUBMIT_CREATED);

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
	order_t o;
	assert_int_equal(store_order_get(f->s, "o1", &o), 0);
	assert_int_equal(o.status, ORDER_PENDING);
	assert_string_equal(o.reason, "store timeout");
	assert_int_equal(o.finished_at, 0);
	order_clear(&o);
	store_claims_clear(&a, 1);
	store_claims_clear(&b, 1);
}

static void test_retry_until_failed(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(submit1(f->s, "o1", "A:1", NULL), SUBMIT_CREATED);
	bool failed;
	for (int attempt = 1; attempt <= 3; attempt++) {
		store_claim_t c = claim1(f->s, "w", 30000, "o1");
		assert_int_equal(c.order.attempts, attempt);
		char err[32];
		snprintf(err, sizeof err, "error %d", attempt);
		assert_int_equal(
		    store_retry(f->s, "o1", c.fence, 3, 0, err, &failed), 0);
		assert_int_equal(failed, attempt == 3);
		store_claims_clear(&c, 1);
	}
	order_t o;
	assert_int_equal(store_order_get(f->s, "o1", &o), 0);
	assert_int_equal(o.status, ORDER_FAILED);
	assert_string_equal(o.reason, "error 3");
	assert_true(o.finished_at > 0);
	order_clear(&o);
	store_claim_t c[2];
	size_t n;
	assert_int_equal(store_claim(f->s, "w", 30000, 2, c, &n), 0);
	assert_int_equal(n, 0);

	/* A retry with a delay is not claimable before it is due. */
	assert_int_equal(submit1(f->s, "o2", "A:1", NULL), SUBMIT_CREATED);
	store_claim_t c2 = claim1(f->s, "w", 30000, "o2");
	assert_int_equal(
	    store_retry(f->s, "o2", c2.fence, 3, 150, "later", &failed), 0);
	store_claims_clear(&c2, 1);
	assert_int_equal(store_claim(f->s, "w", 30000, 2, c, &n), 0);
	assert_int_equal(n, 0);
	clock_sleep_ms(200);
	c2 = claim1(f->s, "w", 30000, "o2");
	assert_int_equal(c2.order.attempts, 2);
	store_claims_clear(&c2, 1);

	/* A lease that expires on the last attempt dead-letters the order. */
	assert_int_equal(submit1(f->s, "o3", "A:1", NULL), SUBMIT_CREATED);
	store_claim_t c3 = claim1(f->s, "w", 20, "o3");
	clock_sleep_ms(50);
	size_t reaped;
	assert_int_equal(store_reap(f->s, 1, 100, &reaped), 0);
	assert_int_equal(reaped, 1);
	assert_int_equal(store_order_get(f->s, "o3", &o), 0);
	assert_int_equal(o.status, ORDER_FAILED);
	assert_string_equal(o.reason, "lease expired");
	order_clear(&o);
	store_claims_clear(&c3, 1);
	assert_int_equal(verify(f->s, NULL), 0);
}

static void test_requeue_and_cancel(void **state)
{
	fixture_t *f = *state;
	order_t o;
	assert_int_equal(submit1(f->s, "o1", "A:1", NULL), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o2", "A:1", NULL), SUBMIT_CREATED);

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
}

static void test_list_products_stats(void **state)
{
	fixture_t *f = *state;
	char id[16];
	for (int i = 0; i < 7; i++) {
		snprintf(id, sizeof id, "o%d", i);
		assert_int_equal(submit1(f->s, id, "A:1", NULL),
		                 SUBMIT_CREATED);
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
	order_t o;
	assert_int_equal(store_order_get(f->s, "missing", &o), OD_ENOTFOUND);

	set_stock(f->s, "B", 3);
	set_stock(f->s, "A", 1);
	set_stock(f->s, "C", 2);
	set_stock(f->s, "A", 9); /* a second adjustment of +8 */
	assert_int_equal(raw_int(f->path, "SELECT SUM(delta) FROM adjustments"
	                                  " WHERE sku = 'A'"),
	                 9);
	product_t *ps;
	assert_int_equal(store_product_list(f->s, "", 2, &ps, &n, &more), 0);
	assert_int_equal(n, 2);
	assert_true(more);
	assert_string_equal(ps[0].sku, "A");
	assert_int_equal(ps[0].stock, 9);
	assert_string_equal(ps[1].sku, "B");
	free(ps);
	assert_int_equal(store_product_list(f->s, "B", 2, &ps, &n, &more), 0);
	assert_int_equal(n, 1);
	assert_false(more);
	assert_string_equal(ps[0].sku, "C");
	free(ps);
	product_t p;
	assert_int_equal(store_product_get(f->s, "Z", &p), OD_ENOTFOUND);
	assert_int_equal(store_product_set(f->s, "A", -1, &p), OD_EINVAL);
	assert_int_equal(
	    store_product_set(f->s, "A", PRODUCT_STOCK_MAX + 1, &p), OD_EINVAL);

	clock_sleep_ms(20);
	store_stats_t st;
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_int_equal(st.count[ORDER_PENDING], 5);
	assert_int_equal(st.count[ORDER_CANCELLED], 2);
	assert_true(st.oldest_pending_ms >= 20);
	assert_true(st.now_ms > 1600000000000LL);
	assert_int_equal(verify(f->s, NULL), 0);
}

/* ---- named locks ---- */

static void test_locks(void **state)
{
	fixture_t *f = *state;
	store_lock_t l, held;
	/* One holder. */
	assert_int_equal(store_lock_acquire(f->s, "res", "svc-a", 100, &l), 0);
	assert_string_equal(l.owner, "svc-a");
	int64_t f1 = l.fence;
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
	    store_lock_renew(f->s, "res", "svc-a", f1 + 1, 100, &l),
	    OD_ELOCKLOST);
	assert_int_equal(store_lock_renew(f->s, "res", "svc-b", f1, 100, &l),
	                 OD_ELOCKLOST);
	assert_int_equal(store_lock_renew(f->s, "res", "svc-a", f1, 100, &l),
	                 0);
	assert_int_equal(l.fence, f1);

	/* Expiry: svc-a stalls past its ttl; svc-b gets a larger fence. */
	clock_sleep_ms(150);
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
	assert_int_equal(submit1(f->s, "o1", "A:1", NULL), SUBMIT_CREATED);
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
}

/* ---- the audit ---- */

static void test_verify_detects_damage(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 10);
	set_stock(f->s, "B", 10);
	assert_int_equal(submit1(f->s, "o1", "A:2,B:1", NULL), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o2", "A:1", NULL), SUBMIT_CREATED);
	store_claim_t c = claim1(f->s, "w", 30000, "o1");
	assert_int_equal(process1(f->s, &c, NULL), PROCESS_COMPLETED);
	store_claims_clear(&c, 1);
	assert_int_equal(verify(f->s, NULL), 0);

	/* An adjustment disappears: B no longer adds up. */
	raw_exec(f->path, "DELETE FROM adjustments WHERE sku = 'B'");
	violations_t v = {0};
	assert_int_equal(verify(f->s, &v), 1);
	assert_non_null(strstr(v.lines[0], "'B'"));
	raw_exec(f->path, "INSERT INTO adjustments (sku, delta, created_at)"
	                  " VALUES ('B', 10, 0)");
	assert_int_equal(verify(f->s, NULL), 0);

	/* A stray reservation for a pending order (with its stock taken, so
	 * conservation still holds): held by an order that is not done. */
	raw_exec(f->path,
	         "UPDATE products SET stock = stock - 1 WHERE sku = 'A';"
	         "INSERT INTO reservations VALUES ('o2', 'A', 1, 0, 0)");
	memset(&v, 0, sizeof v);
	assert_int_equal(verify(f->s, &v), 1);
	assert_non_null(strstr(v.lines[0], "'o2'"));
	raw_exec(f->path,
	         "DELETE FROM reservations WHERE order_id = 'o2';"
	         "UPDATE products SET stock = stock + 1 WHERE sku = 'A'");

	/* A completed order missing one of its reservations, a second
	 * completion in the log, and a reservation of a sku that is no
	 * product. */
	raw_exec(f->path,
	         "DELETE FROM reservations WHERE order_id = 'o1' AND sku = 'B';"
	         "UPDATE products SET stock = stock + 1 WHERE sku = 'B';"
	         "INSERT INTO order_events (order_id, event, fence, at)"
	         " VALUES ('o1', 'complete', 99, 0);"
	         "INSERT INTO reservations VALUES ('o1', 'GHOST', 1, 0, 0)");
	memset(&v, 0, sizeof v);
	size_t n = verify(f->s, &v);
	for (size_t i = 0; i < n && i < 16; i++)
		print_message("expected violation: %s\n", v.lines[i]);
	/* item B unreserved, GHOST not an item, two completions, GHOST no
	 * product */
	assert_int_equal(n, 4);
}

/* ---- concurrency ---- */

enum { CC_ORDERS = 2000, CC_WORKERS = 4, CC_SKUS = 5, CC_BATCH = 50 };

typedef struct cc_shared {
	store_t *s;
	atomic_int submitted_done;
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
	atomic_store(&sh->submitted_done, 1);
	return NULL;
}

static void *cc_worker(void *arg)
{
	cc_shared_t *sh = arg;
	char owner[32];
	snprintf(owner, sizeof owner, "w%p", (void *)&owner);
	store_claim_t c[20];
	store_process_result_t r[20];
	while (atomic_load(&sh->finished) < CC_ORDERS &&
	       atomic_load(&sh->errors) == 0) {
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
	store_stats_t st;
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_int_equal(st.count[ORDER_COMPLETED], atomic_load(&sh.completed));
	assert_int_equal(st.count[ORDER_REJECTED], atomic_load(&sh.rejected));
	/* Each order reached its terminal status exactly once. */
	assert_int_equal(raw_int(f->path,
	                         "SELECT COUNT(*) FROM (SELECT order_id"
	                         " FROM order_events WHERE event IN"
	                         " ('complete','reject') GROUP BY order_id"
	                         " HAVING COUNT(*) = 1)"),
	                 CC_ORDERS);
	assert_int_equal(
	    raw_int(f->path, "SELECT MIN(stock) >= 0 FROM products"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_submit_outcomes, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_submit_group_commit, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_claim_order_and_fences, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_process_complete_and_reject,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interleaving_stale_holder,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interleaving_release, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_retry_until_failed, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_requeue_and_cancel, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_list_products_stats, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_locks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_detects_damage, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_claim_and_process,
	                                    setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
