/*
 * test_store_postgres: the postgres store backend against a real, throwaway
 * PostgreSQL cluster (tests/pgcluster.py; CTest's pg fixture starts it and
 * sets ORDERD_TEST_PGDIR). Each run creates fresh databases and drops them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "util/clock.h"
#include "util/err.h"

static char base_uri[512]; /* .../postgres */
static char test_uri[512]; /* the shared database of this run */
static char test_db[64];
static char dbs[8][64];
static int n_dbs;

static const store_options_t opts = {
    .replica_id = "test",
    .busy_timeout_ms = 5000,
    .statement_timeout_ms = 10000,
    .connect_timeout_ms = 3000,
    .readers = 4,
};

/* Runs sql on a direct connection to uri; fails the test on error. */
static void sql_on(const char *uri, const char *sql)
{
	PGconn *c = PQconnectdb(uri);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

/* Creates a fresh database; writes its URI to uri. */
static void new_db(char *uri, size_t cap, char *name, size_t ncap)
{
	static int k;
	snprintf(name, ncap, "orderd_test_%d_%d", (int)getpid(), k++);
	char sql[128];
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
	sql_on(base_uri, sql);
	const char *slash = strrchr(base_uri, '/');
	snprintf(uri, cap, "%.*s/%s", (int)(slash - base_uri), base_uri, name);
	if (n_dbs < 8)
		snprintf(dbs[n_dbs++], sizeof dbs[0], "%s", name);
}

static int setup_all(void **state)
{
	const char *dir = getenv("ORDERD_TEST_PGDIR");
	if (!dir) {
		fprintf(stderr, "ORDERD_TEST_PGDIR not set\n");
		return -1;
	}
	char path[512];
	snprintf(path, sizeof path, "%s/uri", dir);
	FILE *f = fopen(path, "r");
	if (!f || !fgets(base_uri, sizeof base_uri, f)) {
		fprintf(stderr, "cannot read %s\n", path);
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	base_uri[strcspn(base_uri, "\r\n")] = '\0';
	new_db(test_uri, sizeof test_uri, test_db, sizeof test_db);
	return 0;
}

static int teardown_all(void **state)
{
	for (int i = 0; i < n_dbs; i++) {
		char sql[640];
		snprintf(sql, sizeof sql,
		         "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbs[i]);
		sql_on(base_uri, sql);
	}
	return 0;
}

static store_t *open_store(const char *uri)
{
	store_t *s = NULL;
	assert_int_equal(store_open(uri, &opts, &s), 0);
	assert_string_equal(store_backend_name(s), "postgres");
	return s;
}

/* An order with items "SKU:QTY,..." (sorted by the caller). */
static order_t make_order(const char *id, const char *customer,
                          const char *items)
{
	order_t o;
	memset(&o, 0, sizeof o);
	snprintf(o.id, sizeof o.id, "%s", id);
	snprintf(o.customer, sizeof o.customer, "%s", customer);
	o.items = calloc(8, sizeof *o.items);
	const char *t = items;
	while (*t && o.n_items < 8) {
		const char *colon = strchr(t, ':');
		const char *comma = strchr(t, ',');
		snprintf(o.items[o.n_items].sku, sizeof o.items[0].sku, "%.*s",
		         (int)(colon - t), t);
		o.items[o.n_items].qty = strtoll(colon + 1, NULL, 10);
		o.n_items++;
		t = comma ? comma + 1 : t + strlen(t);
	}
	o.metadata = strdup("{}");
	return o;
}

static int submit1(store_t *s, const order_t *o, store_submit_result_t *r)
{
	const order_t *arr[1] = {o};
	return store_submit(s, arr, 1, r);
}

static void set_stock(store_t *s, const char *sku, int64_t stock)
{
	product_t p;
	assert_int_equal(store_product_set(s, sku, stock, &p), 0);
	assert_int_equal(p.stock, stock);
}

static int64_t stock_of(store_t *s, const char *sku)
{
	product_t p;
	assert_int_equal(store_product_get(s, sku, &p), 0);
	return p.stock;
}

static void on_violation(void *arg, const char *what)
{
	(*(int *)arg)++;
	fprintf(stderr, "  violation: %s\n", what);
}

static size_t verify(store_t *s)
{
	int seen = 0;
	size_t n = 99;
	assert_int_equal(store_verify(s, on_violation, &seen, &n), 0);
	assert_int_equal((size_t)seen, n);
	return n;
}

/* Claims exactly the order id (test data is submitted just before). */
static void claim_one(store_t *s, const char *owner, int64_t lease_ms,
                      const char *id, store_claim_t *cl)
{
	size_t n = 0;
	assert_int_equal(store_claim(s, owner, lease_ms, 1, cl, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(cl->order.id, id);
	assert_int_equal(cl->order.status, ORDER_PROCESSING);
}

/* ---- migrations ---- */

static void *open_thread(void *arg)
{
	store_t *s = NULL;
	intptr_t rc = store_open(arg, &opts, &s);
	store_free(s);
	return (void *)rc;
}

static void test_migrations(void **state)
{
	store_free(open_store(test_uri));
	store_free(open_store(test_uri));

	/* Four replicas starting at once on an empty database. */
	char uri[512], name[64];
	new_db(uri, sizeof uri, name, sizeof name);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, open_thread, uri);
	for (int i = 0; i < 4; i++) {
		void *rc;
		pthread_join(t[i], &rc);
		assert_int_equal((intptr_t)rc, 0);
	}
	/* A database newer than this binary is refused. */
	sql_on(uri, "UPDATE schema_version SET version = version + 1");
	store_t *s = NULL;
	assert_int_equal(store_open(uri, &opts, &s), OD_ESCHEMA);
}

/* ---- submit ---- */

static void test_submit(void **state)
{
	store_t *s = open_store(test_uri);
	order_t a = make_order("sub-a", "c1", "X:1,Y:2");
	order_t a2 = make_order("sub-a", "c1", "X:1,Y:2");
	order_t a3 = make_order("sub-a", "c1", "X:1,Y:3");
	order_t b = make_order("sub-b", "c2", "X:5");
	store_submit_result_t r[4];

	assert_int_equal(submit1(s, &a, r), 0);
	assert_int_equal(r[0].outcome, SUBMIT_CREATED);
	assert_string_equal(r[0].order.id, "sub-a");
	assert_int_equal(r[0].order.status, ORDER_PENDING);
	assert_int_equal(r[0].order.n_items, 2);
	assert_int_equal(r[0].order.items[1].qty, 2);
	assert_true(r[0].order.created_at > 1600000000000LL);
	int64_t seq = r[0].order.seq;
	order_clear(&r[0].order);

	assert_int_equal(submit1(s, &a2, r), 0);
	assert_int_equal(r[0].outcome, SUBMIT_REPLAYED);
	assert_int_equal(r[0].order.seq, seq);
	order_clear(&r[0].order);

	assert_int_equal(submit1(s, &a3, r), 0);
	assert_int_equal(r[0].outcome, SUBMIT_CONFLICT);

	/* In one batch: new, duplicate of it, conflicting duplicate, old. */
	order_t c = make_order("sub-c", "c3", "Z:1");
	order_t c2 = make_order("sub-c", "c3", "Z:1");
	order_t c3 = make_order("sub-c", "c4", "Z:1");
	const order_t *batch[4] = {&c, &c2, &c3, &b};
	assert_int_equal(store_submit(s, batch, 4, r), 0);
	assert_int_equal(r[0].outcome, SUBMIT_CREATED);
	assert_int_equal(r[1].outcome, SUBMIT_REPLAYED);
	assert_int_equal(r[1].order.seq, r[0].order.seq);
	assert_int_equal(r[2].outcome, SUBMIT_CONFLICT);
	assert_int_equal(r[3].outcome, SUBMIT_CREATED);
	assert_true(r[3].order.seq > r[0].order.seq);
	for (int i = 0; i < 4; i++)
		order_clear(&r[i].order);

	order_t got;
	assert_int_equal(store_order_get(s, "sub-c", &got), 0);
	assert_string_equal(got.customer, "c3");
	order_clear(&got);
	assert_int_equal(store_order_get(s, "nope", &got), OD_ENOTFOUND);

	order_t *list;
	size_t n;
	bool more;
	assert_int_equal(
	    store_order_list(s, ORDER_PENDING, 0, 2, &list, &n, &more), 0);
	assert_int_equal(n, 2);
	assert_true(more);
	assert_true(list[0].seq < list[1].seq);
	store_orders_free(list, n);

	/* Batch of 1000 in one transaction. */
	enum { BIG = 1000 };
	order_t *big = calloc(BIG, sizeof *big);
	const order_t **bp = calloc(BIG, sizeof *bp);
	store_submit_result_t *br = calloc(BIG, sizeof *br);
	for (int i = 0; i < BIG; i++) {
		char id[32];
		snprintf(id, sizeof id, "bulk-%04d", i);
		big[i] = make_order(id, "bulk", "B:1");
		bp[i] = &big[i];
	}
	int64_t t0 = clock_mono_ms();
	assert_int_equal(store_submit(s, bp, BIG, br), 0);
	fprintf(stderr, "  submit of %d orders in one batch: %lld ms\n", BIG,
	        (long long)(clock_mono_ms() - t0));
	for (int i = 0; i < BIG; i++) {
		assert_int_equal(br[i].outcome, SUBMIT_CREATED);
		if (i)
			assert_true(br[i].order.seq > br[i - 1].order.seq);
		/* Cancelled so they do not disturb the claim tests. */
		assert_int_equal(store_order_cancel(s, big[i].id, NULL), 0);
		order_clear(&br[i].order);
		order_clear(&big[i]);
	}
	free(big);
	free(bp);
	free(br);
	order_clear(&a);
	order_clear(&a2);
	order_clear(&a3);
	order_clear(&b);
	order_clear(&c);
	order_clear(&c2);
	order_clear(&c3);
	store_free(s);
}

/* Cancels every pending order, so a test starts from an empty queue. */
static void drain_pending(store_t *s)
{
	order_t *list;
	size_t n;
	bool more;
	do {
		assert_int_equal(store_order_list(s, ORDER_PENDING, 0, 100,
		                                  &list, &n, &more),
		                 0);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(
			    store_order_cancel(s, list[i].id, NULL), 0);
		store_orders_free(list, n);
	} while (more);
}

/* ---- claim and process ---- */

static void test_claim_process(void **state)
{
	store_t *s = open_store(test_uri);
	drain_pending(s);
	set_stock(s, "P1", 10);
	set_stock(s, "P2", 3);
	order_t o1 = make_order("cp-1", "c", "P1:4,P2:1");
	order_t o2 = make_order("cp-2", "c", "P1:1,P2:5"); /* too many P2 */
	order_t o3 = make_order("cp-3", "c", "P1:1,ZZ:1"); /* unknown sku */
	const order_t *batch[3] = {&o1, &o2, &o3};
	store_submit_result_t r[3];
	assert_int_equal(store_submit(s, batch, 3, r), 0);
	for (int i = 0; i < 3; i++)
		order_clear(&r[i].order);

	store_claim_t cl[3];
	size_t n;
	assert_int_equal(store_claim(s, "w1", 30000, 2, cl, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(cl[0].order.id, "cp-1");
	assert_string_equal(cl[1].order.id, "cp-2");
	assert_int_equal(cl[0].order.attempts, 1);
	assert_int_equal(cl[0].fence, cl[1].fence);
	assert_true(cl[0].lease_until > cl[0].order.updated_at);
	int64_t f1 = cl[0].fence;
	assert_int_equal(store_claim(s, "w2", 30000, 3, &cl[2], &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(cl[2].order.id, "cp-3");
	assert_true(cl[2].fence > f1);
	size_t none;
	store_claim_t extra;
	assert_int_equal(store_claim(s, "w2", 30000, 1, &extra, &none), 0);
	assert_int_equal(none, 0);

	store_process_result_t pr[3];
	assert_int_equal(store_process(s, cl, 3, pr), 0);
	assert_int_equal(pr[0].outcome, PROCESS_COMPLETED);
	assert_int_equal(pr[1].outcome, PROCESS_REJECTED);
	assert_string_equal(pr[1].reason, "insufficient_stock");
	assert_int_equal(pr[2].outcome, PROCESS_REJECTED);
	assert_string_equal(pr[2].reason, "unknown_sku");
	/* All or nothing: only order 1 took stock. */
	assert_int_equal(stock_of(s, "P1"), 6);
	assert_int_equal(stock_of(s, "P2"), 2);

	/* Processing the same claims again is fenced: nothing changes. */
	assert_int_equal(store_process(s, cl, 3, pr), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pr[i].outcome, PROCESS_FENCED);
	assert_int_equal(stock_of(s, "P1"), 6);

	order_t got;
	assert_int_equal(store_order_get(s, "cp-2", &got), 0);
	assert_int_equal(got.status, ORDER_REJECTED);
	assert_string_equal(got.reason, "insufficient_stock");
	assert_true(got.finished_at > 0);
	order_clear(&got);
	assert_int_equal(store_order_get(s, "cp-1", &got), 0);
	assert_int_equal(got.status, ORDER_COMPLETED);
	order_clear(&got);

	store_stats_t st;
	assert_int_equal(store_stats(s, &st), 0);
	assert_true(st.count[ORDER_COMPLETED] >= 1);
	assert_true(st.now_ms > 0);
	assert_int_equal(verify(s), 0);

	store_claims_clear(cl, 3);
	order_clear(&o1);
	order_clear(&o2);
	order_clear(&o3);
	store_free(s);
}

/*
 * The lease-fencing interleaving, as steps:
 *   1. A claims the order, fence f1, lease 200 ms.
 *   2. A stalls past the lease.
 *   3. The reaper returns the order to pending.
 *   4. B claims it, fence f2 > f1.
 *   5. A wakes and processes: FENCED, nothing written.
 *   6. B processes: COMPLETED.
 *   7. The audit is clean and stock was taken once.
 */
static void test_lease_fencing(void **state)
{
	store_t *s = open_store(test_uri);
	drain_pending(s);
	set_stock(s, "LF", 5);
	order_t o = make_order("lf-1", "c", "LF:2");
	store_submit_result_t r;
	assert_int_equal(submit1(s, &o, &r), 0);
	order_clear(&r.order);

	store_claim_t a, b;
	claim_one(s, "A", 200, "lf-1", &a); /* 1 */
	clock_sleep_ms(300);                /* 2 */
	size_t reaped = 0;
	assert_int_equal(store_reap(s, 5, 100, &reaped), 0); /* 3 */
	assert_int_equal(reaped, 1);
	claim_one(s, "B", 30000, "lf-1", &b); /* 4 */
	assert_true(b.fence > a.fence);
	assert_int_equal(b.order.attempts, 2);
	store_process_result_t pr;
	assert_int_equal(store_process(s, &a, 1, &pr), 0); /* 5 */
	assert_int_equal(pr.outcome, PROCESS_FENCED);
	assert_int_equal(store_retry(s, "lf-1", a.fence, 5, 0, "x", NULL),
	                 OD_EFENCE);
	assert_int_equal(store_release(s, "lf-1", a.fence), OD_EFENCE);
	assert_int_equal(store_process(s, &b, 1, &pr), 0); /* 6 */
	assert_int_equal(pr.outcome, PROCESS_COMPLETED);
	assert_int_equal(stock_of(s, "LF"), 3); /* 7 */
	assert_int_equal(verify(s), 0);

	store_claims_clear(&a, 1);
	store_claims_clear(&b, 1);
	order_clear(&o);
	store_free(s);
}

static void test_retry_release(void **state)
{
	store_t *s = open_store(test_uri);
	drain_pending(s);
	order_t o = make_order("rt-1", "c", "Q:1");
	store_submit_result_t r;
	assert_int_equal(submit1(s, &o, &r), 0);
	order_clear(&r.order);

	store_claim_t cl;
	bool failed = true;
	claim_one(s, "w", 30000, "rt-1", &cl);
	/* Release: back to pending, attempt not counted. */
	assert_int_equal(store_release(s, "rt-1", cl.fence), 0);
	store_claims_clear(&cl, 1);
	claim_one(s, "w", 30000, "rt-1", &cl);
	assert_int_equal(cl.order.attempts, 1);
	assert_int_equal(
	    store_retry(s, "rt-1", cl.fence, 2, 0, "boom", &failed), 0);
	assert_false(failed);
	store_claims_clear(&cl, 1);
	claim_one(s, "w", 30000, "rt-1", &cl);
	assert_int_equal(cl.order.attempts, 2);
	assert_string_equal(cl.order.reason, "boom");
	assert_int_equal(
	    store_retry(s, "rt-1", cl.fence, 2, 0, "boom2", &failed), 0);
	assert_true(failed);
	store_claims_clear(&cl, 1);

	order_t got;
	assert_int_equal(store_order_get(s, "rt-1", &got), 0);
	assert_int_equal(got.status, ORDER_FAILED);
	assert_string_equal(got.reason, "boom2");
	order_clear(&got);

	/* A retry with delay is not claimable before it is due. */
	assert_int_equal(store_order_requeue(s, "rt-1", &got), 0);
	assert_int_equal(got.status, ORDER_PENDING);
	assert_int_equal(got.attempts, 0);
	order_clear(&got);
	assert_int_equal(store_order_requeue(s, "rt-1", NULL), OD_ESTATE);
	claim_one(s, "w", 30000, "rt-1", &cl);
	assert_int_equal(
	    store_retry(s, "rt-1", cl.fence, 5, 60000, "later", &failed), 0);
	store_claims_clear(&cl, 1);
	size_t n;
	assert_int_equal(store_claim(s, "w", 30000, 1, &cl, &n), 0);
	assert_int_equal(n, 0);

	assert_int_equal(store_order_cancel(s, "rt-1", NULL), 0);
	assert_int_equal(store_order_cancel(s, "rt-1", NULL), OD_ESTATE);
	assert_int_equal(store_order_cancel(s, "no-such", NULL), OD_ENOTFOUND);
	assert_int_equal(store_order_requeue(s, "no-such", NULL), OD_ENOTFOUND);
	order_clear(&o);
	store_free(s);
}

/* ---- named locks ---- */

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

static void test_locks(void **state)
{
	store_t *s = open_store(test_uri);
	racer_t rs[8];
	pthread_t t[8];
	for (int i = 0; i < 8; i++) {
		memset(&rs[i], 0, sizeof rs[i]);
		rs[i].s = s;
		snprintf(rs[i].owner, sizeof rs[i].owner, "r%d", i);
		pthread_create(&t[i], NULL, race_thread, &rs[i]);
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

	store_lock_t l, held;
	assert_int_equal(store_lock_get(s, "race", &l), 0);
	assert_int_equal(l.fence, rs[winner].lock.fence);
	/* The holder itself cannot acquire again. */
	assert_int_equal(
	    store_lock_acquire(s, "race", rs[winner].owner, 1000, &held),
	    OD_ELOCKHELD);

	/* Short lease, expiry, takeover; the stale holder can do nothing. */
	store_lock_t a, b;
	assert_int_equal(store_lock_acquire(s, "short", "A", 150, &a), 0);
	assert_int_equal(store_lock_renew(s, "short", "A", a.fence, 150, &a),
	                 0);
	assert_int_equal(store_lock_renew(s, "short", "B", a.fence, 150, &l),
	                 OD_ELOCKLOST);
	clock_sleep_ms(250);
	assert_int_equal(store_lock_get(s, "short", &l), OD_ENOTFOUND);
	assert_int_equal(store_lock_renew(s, "short", "A", a.fence, 150, &l),
	                 OD_ELOCKLOST);
	assert_int_equal(store_lock_acquire(s, "short", "B", 30000, &b), 0);
	assert_true(b.fence > a.fence);
	assert_int_equal(store_lock_release(s, "short", "A", a.fence),
	                 OD_ELOCKLOST);
	assert_int_equal(store_lock_renew(s, "short", "A", a.fence, 150, &l),
	                 OD_ELOCKLOST);
	assert_int_equal(store_lock_release(s, "short", "B", b.fence), 0);
	assert_int_equal(store_lock_get(s, "short", &l), OD_ENOTFOUND);
	assert_int_equal(store_lock_acquire(s, "short", "A", 30000, &a), 0);
	assert_true(a.fence > b.fence);
	store_free(s);
}

/* ---- audit ---- */

static void test_verify_corruption(void **state)
{
	char uri[512], name[64];
	new_db(uri, sizeof uri, name, sizeof name);
	store_t *s = open_store(uri);
	set_stock(s, "V1", 10);
	order_t o = make_order("v-1", "c", "V1:3");
	store_submit_result_t r;
	assert_int_equal(submit1(s, &o, &r), 0);
	order_clear(&r.order);
	store_claim_t cl;
	claim_one(s, "w", 30000, "v-1", &cl);
	store_process_result_t pr;
	assert_int_equal(store_process(s, &cl, 1, &pr), 0);
	assert_int_equal(pr.outcome, PROCESS_COMPLETED);
	store_claims_clear(&cl, 1);
	assert_int_equal(verify(s), 0);

	sql_on(uri, "UPDATE products SET stock = stock + 1 WHERE sku = 'V1'");
	assert_int_equal(verify(s), 1);
	sql_on(uri, "UPDATE products SET stock = stock - 1 WHERE sku = 'V1'");
	sql_on(uri, "UPDATE reservations SET qty = 2 WHERE order_id = 'v-1'");
	/* Balance and items mismatch. */
	assert_int_equal(verify(s), 2);
	sql_on(uri, "UPDATE reservations SET qty = 3 WHERE order_id = 'v-1'");
	sql_on(uri, "INSERT INTO order_events (order_id, event, fence, at)"
	            " VALUES ('v-1', 'complete', 1, 1)");
	assert_int_equal(verify(s), 1);
	order_clear(&o);
	store_free(s);
}

/* ---- connection loss ---- */

static void terminate_others(const char *uri)
{
	sql_on(uri, "SELECT pg_terminate_backend(pid, 5000) FROM"
	            " pg_stat_activity WHERE datname = current_database()"
	            " AND pid <> pg_backend_pid()");
}

/* Runs op until it succeeds; at most one transient failure allowed. */
#define RECOVERS(expr)                                                         \
	do {                                                                   \
		int rc_ = (expr);                                              \
		if (rc_ == OD_ESTORE || rc_ == OD_EUNKNOWN)                    \
			rc_ = (expr);                                          \
		assert_int_equal(rc_, 0);                                      \
	} while (0)

static void *warm_thread(void *arg)
{
	product_t p;
	for (int i = 0; i < 20; i++)
		if (store_product_get(arg, "CL", &p) != 0)
			return (void *)1;
	return NULL;
}

static void test_connection_loss(void **state)
{
	store_t *s = open_store(test_uri);
	drain_pending(s);
	product_t p;
	set_stock(s, "CL", 100);
	/* Warm every pooled connection, so all of them are killed below. */
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, warm_thread, s);
	for (int i = 0; i < 4; i++) {
		void *bad;
		pthread_join(t[i], &bad);
		assert_null(bad);
	}

	terminate_others(test_uri);
	RECOVERS(store_ping(s));
	RECOVERS(store_product_get(s, "CL", &p));

	terminate_others(test_uri);
	order_t o = make_order("cl-1", "c", "CL:1");
	store_submit_result_t r;
	RECOVERS(submit1(s, &o, &r));
	assert_int_equal(r.outcome, SUBMIT_CREATED);
	order_clear(&r.order);

	terminate_others(test_uri);
	store_claim_t cl;
	size_t n = 0;
	RECOVERS(store_claim(s, "w", 30000, 1, &cl, &n));
	assert_int_equal(n, 1);
	terminate_others(test_uri);
	store_process_result_t pr;
	RECOVERS(store_process(s, &cl, 1, &pr));
	assert_int_equal(pr.outcome, PROCESS_COMPLETED);
	store_claims_clear(&cl, 1);

	terminate_others(test_uri);
	store_lock_t l;
	RECOVERS(store_lock_acquire(s, "cl-lock", "w", 30000, &l));
	assert_int_equal(verify(s), 0);
	order_clear(&o);
	store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_migrations),
	    cmocka_unit_test(test_submit),
	    cmocka_unit_test(test_claim_process),
	    cmocka_unit_test(test_lease_fencing),
	    cmocka_unit_test(test_retry_release),
	    cmocka_unit_test(test_locks),
	    cmocka_unit_test(test_verify_corruption),
	    cmocka_unit_test(test_connection_loss),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
