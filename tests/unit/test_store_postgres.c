/*
 * test_store_postgres: what only the postgres backend has, against a real,
 * throwaway PostgreSQL cluster (tests/pgcluster.py; CTest's pg fixture
 * starts it and sets ORDERD_TEST_PGDIR): migrations raced by replicas,
 * recovery from lost connections, submit's read-back, the client-side
 * deadline of every call, and the claim's low-water mark. The behaviour
 * both backends share is the store contract (test_store_contract.c,
 * test_store_leases.c), whose fixture this suite borrows: a fresh
 * database per test.
 */
#include "store_fixture.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/clock.h"

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

/* ---- the client-side deadline ---- */

#define DEADLINE_MS 500
#define MARGIN_MS 500 /* scheduling slack on a loaded 2-core machine */

/* The fixture's options with a short deadline, and server-side timeouts
 * far beyond it: only the client can end the calls below in time. */
static store_options_t deadline_opts(void)
{
	store_options_t o = fixture_opts;
	o.deadline_ms = DEADLINE_MS;
	o.busy_timeout_ms = 60000;
	o.statement_timeout_ms = 60000;
	return o;
}

/* A session of its own that holds row locks until it is finished. */
static PGconn *raw_lock(const char *uri, const char *sql)
{
	PGconn *c = PQconnectdb(uri);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, "BEGIN");
	PQclear(r);
	r = PQexec(c, sql);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(r), 1);
	PQclear(r);
	return c;
}

#define ASSERT_TOOK(t0, rc_expr, want)                                         \
	do {                                                                   \
		int rc_ = (rc_expr);                                           \
		int64_t took_ = clock_mono_ms() - (t0);                        \
		assert_int_equal(rc_, (want));                                 \
		assert_true(took_ >= DEADLINE_MS - 50);                        \
		assert_true(took_ <= DEADLINE_MS + MARGIN_MS);                 \
	} while (0)

/*
 * A server that does not answer (here: a statement waiting on a row lock
 * with lock_timeout and statement_timeout a minute away; as far as the
 * client can tell, the same as a frozen server) holds no call past the
 * deadline. Before COMMIT it is OD_ESTORE (nothing happened); an
 * autocommit write is OD_EUNKNOWN (it may still commit: the caller reads
 * back). Either way the connection is discarded, never pooled
 * mid-statement, the hit is counted, and the store serves again at once.
 */
static void test_deadline_statement(void **state)
{
	fixture_t *f = *state;
	store_options_t o = deadline_opts();
	store_t *s = NULL;
	assert_int_equal(store_open(f->uri, &o, &s), 0);
	set_stock(s, "DL", 10);
	store_lock_t l;
	assert_int_equal(store_lock_acquire(s, "dl", "a", 1, &l), 0);
	store_counters_t c0, c1;
	store_counters(s, &c0);
	assert_int_equal(c0.deadline_exceeded, 0);

	/* 1. In a transaction, before COMMIT: nothing happened. */
	PGconn *raw = raw_lock(
	    f->uri, "SELECT 1 FROM products WHERE sku = 'DL' FOR UPDATE");
	int64_t t0 = clock_mono_ms();
	product_t p;
	ASSERT_TOOK(t0, store_product_set(s, "DL", 20, &p), OD_ESTORE);
	store_counters(s, &c1);
	assert_int_equal(c1.deadline_exceeded, 1);
	assert_int_equal(c1.resets, c0.resets + 1);
	/* Reads that need no lock are served meanwhile, on another
	 * connection. */
	assert_int_equal(store_product_get(s, "DL", &p), 0);
	assert_int_equal(p.stock, 10);
	PQfinish(raw);
	assert_int_equal(stock_of(s, "DL"), 10);

	/* 2. An autocommit write: its outcome is unknown. */
	raw = raw_lock(f->uri,
	               "SELECT 1 FROM locks WHERE name = 'dl' FOR UPDATE");
	t0 = clock_mono_ms();
	ASSERT_TOOK(t0, store_lock_acquire(s, "dl", "b", 30000, &l),
	            OD_EUNKNOWN);
	store_counters(s, &c1);
	assert_int_equal(c1.deadline_exceeded, 2);
	assert_int_equal(c1.resets, c0.resets + 2);
	PQfinish(raw);

	/* 3. The store answers again by itself. */
	assert_int_equal(store_ping(s), 0);
	assert_int_equal(store_product_set(s, "DL", 30, &p), 0);
	assert_int_equal(stock_of(s, "DL"), 30);
	assert_int_equal(verify(s, NULL), 0);
	store_free(s);
}

/*
 * Connecting is bounded by the deadline too: a listener that accepts TCP
 * (the kernel does) but never speaks, like a frozen postmaster. libpq's
 * blocking connect would wait connect_timeout (3 s here, per host).
 */
static int silent_listener(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 16), 0);
	return fd;
}

static void test_deadline_connect(void **state)
{
	int fd = silent_listener();
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	char uri[128];
	snprintf(uri, sizeof uri,
	         "postgres://nobody@127.0.0.1:%d/none?sslmode=disable",
	         ntohs(a.sin_port));
	store_options_t o = deadline_opts();
	store_t *s = NULL;
	int64_t t0 = clock_mono_ms();
	ASSERT_TOOK(t0, store_open(uri, &o, &s), OD_ESTORE);
	assert_null(s);
	close(fd);
}

/*
 * And a silent host first in a list of several does not keep the pool from
 * the next: each host gets a share of the deadline, and connects start at
 * the host that answered last.
 */
static void test_deadline_silent_first_host(void **state)
{
	fixture_t *f = *state;
	int fd = silent_listener();
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	/* postgres://user@HOST:PORT/db?... -> ...@127.0.0.1:SILENT,HOST:PORT/
	 */
	const char *at = strchr(strstr(f->uri, "://") + 3, '@');
	assert_non_null(at);
	char uri[1200];
	snprintf(uri, sizeof uri, "%.*s127.0.0.1:%d,%s", (int)(at + 1 - f->uri),
	         f->uri, ntohs(a.sin_port), at + 1);
	store_options_t o = deadline_opts();
	store_t *s = NULL;
	int64_t t0 = clock_mono_ms();
	assert_int_equal(store_open(uri, &o, &s), 0);
	assert_true(clock_mono_ms() - t0 <= DEADLINE_MS + MARGIN_MS);
	assert_int_equal(store_ping(s), 0);
	/* Reconnecting now starts at the host that answered: no wait. */
	terminate_others(f->uri);
	t0 = clock_mono_ms();
	RECOVERS(store_ping(s));
	assert_true(clock_mono_ms() - t0 < DEADLINE_MS / 2);
	store_free(s);
	close(fd);
}

/* ---- the claim mark ---- */

/* PGB_MARK_RESCAN_MS (postgres_int.h): every scan is full at least this
 * often. Not included: the header is the backend's own. */
#define MARK_RESCAN_MS 5000

/*
 * The claim starts its scan at a low-water mark past the entries earlier
 * claims left in orders_pending (postgres_mark.c). An order that becomes
 * due below the mark (here: its next_at moved an hour back, as a late
 * commit or a store clock stepped back would leave it) is not seen by the
 * bounded scans, so it proves the mark is in use, and it must still be
 * claimed by the next full scan: within MARK_RESCAN_MS, never stranded.
 */
static void test_claim_mark_straggler(void **state)
{
	fixture_t *f = *state;
	store_t *s = f->s;
	set_stock(s, "MK", 100);
	assert_int_equal(submit1(s, "mk-1", "MK:1"), SUBMIT_CREATED);
	/* The first claim is a full scan; it sets the mark near now. */
	store_claim_t c1 = claim1(s, "w", 30000, "mk-1");
	store_claims_clear(&c1, 1);
	int64_t t0 = clock_mono_ms();
	assert_int_equal(submit1(s, "mk-2", "MK:1"), SUBMIT_CREATED);
	pg_exec_on(f->uri, "UPDATE orders SET next_at = next_at - 3600000"
	                   " WHERE id = 'mk-2'");
	assert_int_equal(claim_none(s), 0);
	size_t n = 0;
	store_claim_t cl;
	while (n == 0 && clock_mono_ms() - t0 < MARK_RESCAN_MS + 3000) {
		assert_int_equal(store_claim(s, "w", 30000, 1, &cl, &n), 0);
		if (n == 0)
			clock_sleep_ms(50);
	}
	assert_int_equal(n, 1);
	assert_string_equal(cl.order.id, "mk-2");
	assert_true(clock_mono_ms() - t0 <= MARK_RESCAN_MS + 3000);
	store_claims_clear(&cl, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_migrations),
	    T(test_connection_loss),
	    T(test_submit_read_back_failure),
	    T(test_deadline_statement),
	    T(test_deadline_connect),
	    T(test_deadline_silent_first_host),
	    T(test_claim_mark_straggler),
	};
	/* The fixture's backend, whatever the environment says. */
	setenv("ORDERD_TEST_BACKEND", "postgres", 1);
	return cmocka_run_group_tests(tests, setup_all, NULL);
}
