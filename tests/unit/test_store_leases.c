/*
 * test_store_leases: the store contract for processing under leases, run
 * unchanged against each backend (store_fixture.h says how): claim,
 * process, retry, release, reap, the interleavings of a
 * stale holder, a concurrent run, and every transition checked against
 * core/state.c's table.
 *
 * Lease and fencing interleavings are written as numbered steps, one store
 * call each. Boundaries that depend on the store's clock (reap at the
 * deadline, claim at the due time) are tested without controlling that
 * clock: rows are spread one millisecond apart around "now", and the
 * operation's own timestamp (updated_at of the rows it wrote) says which
 * side of the boundary each row was on.
 */
#include "store_fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/state.h"
#include "util/clock.h"
#include "util/err.h"

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

/* The store's clock, read once. Spreading deadlines with now_sql() inside
 * the UPDATE reads postgres' clock_timestamp() once per row: a millisecond
 * that ticks during the update shifts every row after it by one, and the
 * boundary is no longer where the test computes it (CI once saw one order
 * more reaped than predicted). */
static int64_t clock_once(void)
{
	char sql[160];
	snprintf(sql, sizeof sql, "SELECT %s", now_sql());
	return raw_int(sql);
}

static void test_claim_due_boundary(void **state)
{
	fixture_t *f = *state;
	submit_many(f->s, "d", SPREAD);
	char sql[512];
	snprintf(
	    sql, sizeof sql,
	    "UPDATE orders SET next_at = %lld - %d + (seq - (SELECT MIN(seq)"
	    " FROM orders))",
	    (long long)clock_once(), SPREAD_BEFORE);
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
	         "UPDATE orders SET lease_until = %lld - %d + (seq - (SELECT"
	         " MIN(seq) FROM orders))",
	         (long long)clock_once(), SPREAD_BEFORE);
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

/* ---- the state table ---- */

/*
 * The store's SQL and core/state.c's table are two writings of one state
 * machine. Orders go through every event the SQL performs (fail three
 * ways: retry and reap out of attempts, the duplicate_reservation
 * backstop); each order's order_events, replayed from pending (its
 * submission, which the order row records) through state_next, must be
 * allowed step by step and end in the stored status.
 * Client events are tried from every status: the store refuses exactly
 * what the table refuses.
 */
/* The k-th event of order id as an order_event_t, -2 for a name state.c
 * does not know (a submit event among them), -1 past the last. */
static int event_at(const char *id, int k)
{
	char sql[1024];
	int off = snprintf(sql, sizeof sql, "SELECT (SELECT CASE event");
	for (int e = 0; e < ORDER_EVENT_COUNT; e++)
		off += snprintf(sql + off, sizeof sql - (size_t)off,
		                " WHEN '%s' THEN %d",
		                state_event_name((order_event_t)e), e);
	snprintf(sql + off, sizeof sql - (size_t)off,
	         " ELSE -2 END FROM order_events"
	         " WHERE order_id = '%.64s' ORDER BY id LIMIT 1 OFFSET %d)",
	         id, k);
	return (int)raw_int(sql);
}

static void test_events_follow_state_table(void **state)
{
	fixture_t *f = *state;
	/* Each order is submitted just before its steps: claims take the
	 * earliest due, and the ones before are no longer pending. */
	static const char *const ids[] = {"done",    "rej", "reaped", "dup",
	                                  "retried", "can", "pend",   "held"};
	store_claim_t c;
	bool failed;
	set_stock(f->s, "A", 10);
	/* claim, then complete; claim, then reject. */
	assert_int_equal(submit1(f->s, "done", "A:1"), SUBMIT_CREATED);
	c = claim1(f->s, "w", 30000, "done");
	assert_int_equal(process1(f->s, &c, NULL), PROCESS_COMPLETED);
	store_claims_clear(&c, 1);
	assert_int_equal(submit1(f->s, "rej", "X:1"), SUBMIT_CREATED);
	c = claim1(f->s, "w", 30000, "rej");
	assert_int_equal(process1(f->s, &c, NULL), PROCESS_REJECTED);
	store_claims_clear(&c, 1);
	/* expire, then fail by reap (out of attempts). */
	assert_int_equal(submit1(f->s, "reaped", "A:1"), SUBMIT_CREATED);
	for (int round = 0; round < 2; round++) {
		c = claim1(f->s, "w", 20, "reaped");
		store_claims_clear(&c, 1);
		clock_sleep_ms(40);
		size_t n = 0;
		assert_int_equal(store_reap(f->s, 2, 10, &n), 0);
		assert_int_equal(n, 1);
	}
	assert_int_equal(status_of(f->s, "reaped"), ORDER_FAILED);
	/* fail by the duplicate_reservation backstop. */
	assert_int_equal(submit1(f->s, "dup", "A:1"), SUBMIT_CREATED);
	raw_exec("INSERT INTO reservations (order_id, sku, qty, fence,"
	         " created_at) VALUES ('dup', 'A', 1, 0, 0)");
	c = claim1(f->s, "w", 30000, "dup");
	assert_int_equal(process1(f->s, &c, NULL), PROCESS_BREACH);
	store_claims_clear(&c, 1);
	/* retry, fail by retry, requeue, release; left processing. */
	assert_int_equal(submit1(f->s, "retried", "A:1"), SUBMIT_CREATED);
	for (int round = 0; round < 2; round++) {
		c = claim1(f->s, "w", 30000, "retried");
		assert_int_equal(
		    store_retry(f->s, "retried", c.fence, 2, 0, "e", &failed),
		    0);
		assert_int_equal(failed, round == 1);
		store_claims_clear(&c, 1);
	}
	assert_int_equal(store_order_requeue(f->s, "retried", NULL), 0);
	c = claim1(f->s, "w", 30000, "retried");
	assert_int_equal(store_release(f->s, "retried", c.fence), 0);
	store_claims_clear(&c, 1);
	c = claim1(f->s, "w", 30000, "retried");
	/* the confirm step: reserve, retry holding the stock, reserve
	 * again (nothing written), complete. */
	assert_int_equal(submit1(f->s, "held", "A:1"), SUBMIT_CREATED);
	for (int round = 0; round < 2; round++) {
		store_claim_t h = claim1(f->s, "w", 30000, "held");
		store_process_result_t r;
		assert_int_equal(store_reserve(f->s, &h, 1, &r), 0);
		assert_int_equal(r.outcome, PROCESS_RESERVED);
		bool fenced = true;
		store_finish_t fin = {"held", h.fence, true, NULL};
		if (round == 0)
			assert_int_equal(store_retry(f->s, "held", h.fence, 5,
			                             0, "e", &failed),
			                 0);
		else
			assert_int_equal(store_finish(f->s, &fin, 1, &fenced),
			                 0);
		store_claims_clear(&h, 1);
	}
	/* cancel; and one left pending. */
	assert_int_equal(submit1(f->s, "can", "A:1"), SUBMIT_CREATED);
	assert_int_equal(store_order_cancel(f->s, "can", NULL), 0);
	assert_int_equal(submit1(f->s, "pend", "A:1"), SUBMIT_CREATED);

	/* The client events from every status, cancel then requeue: the
	 * store does what state_next allows and refuses (OD_ESTATE, nothing
	 * written) the rest. */
	static const order_event_t client[] = {EV_CANCEL, EV_REQUEUE};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		for (size_t k = 0; k < 2; k++) {
			order_status_t from = status_of(f->s, ids[i]), to;
			bool ok = state_next(from, client[k], &to) == 0;
			int rc = client[k] == EV_CANCEL
			             ? store_order_cancel(f->s, ids[i], NULL)
			             : store_order_requeue(f->s, ids[i], NULL);
			if (rc != (ok ? 0 : OD_ESTATE))
				fail_msg("%s from %s: rc %d", ids[i],
				         order_status_name(from), rc);
			assert_int_equal(status_of(f->s, ids[i]),
			                 ok ? to : from);
		}
	}
	store_claims_clear(&c, 1);

	/* Replay: every order, every event, through the table. */
	bool seen[ORDER_EVENT_COUNT] = {false};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		order_status_t cur = ORDER_PENDING;
		int ev;
		for (int k = 0; (ev = event_at(ids[i], k)) != -1; k++) {
			assert_in_range(ev, 0, ORDER_EVENT_COUNT - 1);
			order_status_t next;
			if (state_next(cur, (order_event_t)ev, &next) != 0)
				fail_msg("%s: the store did %s --%s-->", ids[i],
				         order_status_name(cur),
				         state_event_name((order_event_t)ev));
			cur = next;
			seen[ev] = true;
		}
		assert_int_equal(status_of(f->s, ids[i]), cur);
	}
	for (int e = 0; e < ORDER_EVENT_COUNT; e++)
		if (!seen[e])
			fail_msg("no %s event",
			         state_event_name((order_event_t)e));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_claim_order_batch_fence),
	    T(test_claim_due_boundary),
	    T(test_claim_by_due_time),
	    T(test_process_complete_and_reject),
	    T(test_retry_until_failed),
	    T(test_release),
	    T(test_reap_boundary),
	    T(test_reap_limits_and_dead_letters),
	    T(test_interleaving_stale_holder),
	    T(test_interleaving_expired_unreaped),
	    T(test_concurrent_claim_and_process),
	    T(test_events_follow_state_table),
	};
	const char *be = getenv("ORDERD_TEST_BACKEND");
	return cmocka_run_group_tests_name(be ? be : "sqlite", tests, setup_all,
	                                   NULL);
}
