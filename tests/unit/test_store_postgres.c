/*
 * test_store_postgres: what only the postgres backend has, against a real,
 * throwaway PostgreSQL cluster (tests/pgcluster.py; CTest's pg fixture
 * starts it and sets ORDERD_TEST_PGDIR): migrations raced by replicas,
 * recovery from lost connections, and submit's read-back. The behaviour
 * both backends share is the store contract (test_store_contract.c,
 * test_store_leases.c), whose fixture this suite borrows: a fresh
 * database per test.
 */
#include "store_fixture.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/err.h"
#include "util/failpoint.h"

/* ---- migrations ---- */

static void *open_thread(void *arg)
{
	store_t *s = NULL;
	intptr_t rc = store_open(arg, &fixture_opts, &s);
	store_free(s);
	return (void *)rc;
}

static void test_migrations(void **state)
{
	fixture_t *f = *state;
	/* Opening again applies nothing. */
	store_t *again = NULL;
	assert_int_equal(store_open(f->uri, &fixture_opts, &again), 0);
	store_free(again);

	/* Four replicas starting at once on an empty database. */
	char uri[1024], name[64];
	pg_new_db(uri, sizeof uri, name, sizeof name);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, open_thread, uri);
	for (int i = 0; i < 4; i++) {
		void *rc;
		pthread_join(t[i], &rc);
		assert_int_equal((intptr_t)rc, 0);
	}
	/* A database newer than this binary is refused. */
	pg_exec_on(uri, "UPDATE schema_version SET version = version + 1");
	store_t *s = NULL;
	assert_int_equal(store_open(uri, &fixture_opts, &s), OD_ESCHEMA);
	pg_drop_db(name);
}

/* ---- connection loss ---- */

static void terminate_others(const char *uri)
{
	pg_exec_on(uri, "SELECT pg_terminate_backend(pid, 5000) FROM"
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
	fixture_t *f = *state;
	store_t *s = f->s;
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

	terminate_others(f->uri);
	RECOVERS(store_ping(s));
	RECOVERS(store_product_get(s, "CL", &p));

	terminate_others(f->uri);
	order_t o = mkorder("cl-1", "c", "CL:1", NULL);
	const order_t *one[1] = {&o};
	store_submit_result_t r;
	RECOVERS(store_submit(s, one, 1, &r));
	assert_int_equal(r.outcome, SUBMIT_CREATED);
	order_clear(&r.order);

	terminate_others(f->uri);
	store_claim_t cl;
	size_t n = 0;
	RECOVERS(store_claim(s, "w", 30000, 1, &cl, &n));
	assert_int_equal(n, 1);
	terminate_others(f->uri);
	store_process_result_t pr;
	RECOVERS(store_process(s, &cl, 1, &pr));
	assert_int_equal(pr.outcome, PROCESS_COMPLETED);
	store_claims_clear(&cl, 1);

	terminate_others(f->uri);
	store_lock_t l;
	RECOVERS(store_lock_acquire(s, "cl-lock", "w", 30000, &l));
	assert_int_equal(verify(s, NULL), 0);
	order_clear(&o);
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
	fixture_t *f = *state;
	store_t *s = f->s;
	order_t old = mkorder("rb-old", "cust-1", "X:1", NULL);
	store_submit_result_t r[2];
	assert_int_equal(submit1(s, "rb-old", "X:1"), SUBMIT_CREATED);

	/* 1. A batch of a new order and a replay; every read-back fails. */
	order_t fresh = mkorder("rb-new", "c", "X:1", NULL);
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
	order_t third = mkorder("rb-third", "c", "X:1", NULL);
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
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_migrations),
	    T(test_connection_loss),
	    T(test_submit_read_back_failure),
	};
	/* The fixture's backend, whatever the environment says. */
	setenv("ORDERD_TEST_BACKEND", "postgres", 1);
	return cmocka_run_group_tests(tests, setup_all, NULL);
}
