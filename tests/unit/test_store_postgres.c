/*
 * test_store_postgres: what only the postgres backend has, against a real,
 * throwaway PostgreSQL cluster (tests/pgcluster.py; CTest's pg fixture
 * starts it and sets ORDERD_TEST_PGDIR): migrations raced by replicas,
 * recovery from lost connections, and submit's read-back. The behaviour
 * both backends share is the store contract, test_store_contract.c and
 * test_store_leases.c. Each
 * run creates fresh databases and drops them.
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
#include "util/failpoint.h"

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

/* ---- submit's read-back ---- */

/*
 * The insert commits in autocommit; telling replays from conflicts is a
 * read after it. If that read fails, the orders just created ARE stored:
 * the answer may be "unknown" (the caller reads back) but never "nothing
 * stored" (OD_ESTORE), which turned durable orders into 503s.
 */
static void test_submit_read_back_failure(void **state)
{
	store_t *s = open_store(test_uri);
	order_t old = make_order("rb-old", "c", "X:1");
	store_submit_result_t r[2];
	assert_int_equal(submit1(s, &old, r), 0);
	assert_int_equal(r[0].outcome, SUBMIT_CREATED);
	order_clear(&r[0].order);

	/* 1. A batch of a new order and a replay; every read-back fails. */
	order_t fresh = make_order("rb-new", "c", "X:1");
	const order_t *batch[2] = {&fresh, &old};
	assert_int_equal(failpoint_init("pg_submit_readback_fail=1"), 0);
	int rc = store_submit(s, batch, 2, r);
	assert_int_equal(failpoint_init(NULL), 0);
	/* 2. Not "nothing stored": the new order is durable. */
	assert_int_equal(rc, OD_EUNKNOWN);
	order_t got;
	assert_int_equal(store_order_get(s, "rb-new", &got), 0);
	order_clear(&got);
	/* 3. Reading back (a client's retry) answers both as replays. */
	assert_int_equal(store_submit(s, batch, 2, r), 0);
	assert_int_equal(r[0].outcome, SUBMIT_REPLAYED);
	assert_int_equal(r[1].outcome, SUBMIT_REPLAYED);
	order_clear(&r[0].order);
	order_clear(&r[1].order);
	/* 4. The same when reading the insert's own result fails: the order
	 *    was stored by then, so the answer is unknown, not "not stored". */
	order_t third = make_order("rb-third", "c", "X:1");
	const order_t *one[1] = {&third};
	assert_int_equal(failpoint_init("pg_submit_result_fail=1"), 0);
	rc = store_submit(s, one, 1, r);
	assert_int_equal(failpoint_init(NULL), 0);
	assert_int_equal(rc, OD_EUNKNOWN);
	assert_int_equal(store_order_get(s, "rb-third", &got), 0);
	order_clear(&got);
	order_clear(&third);
	order_clear(&old);
	order_clear(&fresh);
	store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_migrations),
	    cmocka_unit_test(test_connection_loss),
	    cmocka_unit_test(test_submit_read_back_failure),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
