/*
 * test_store_contract: the one contract of store.h, run unchanged against
 * each backend (store_fixture.h says how): submit, reads and client
 * transitions, products, stats, replicas, argument checks, and a damaged
 * store (the duplicate-reservation backstop, the audit). Processing under
 * leases is test_store_leases.c, named locks test_store_locks.c.
 */
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/err.h"

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

	/* The stored row is the record of the submission (id, created_at):
	 * no event repeats it. */
	assert_int_equal(raw_int("SELECT COUNT(*) FROM order_events"), 0);
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
	/* Callers with more ids split them (waiters.c does). */
	assert_int_equal(
	    store_orders_terminal(f->s, ids, STORE_LIST_MAX + 1, term),
	    OD_EINVAL);

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

/* Orders in processing, counted per lease owner: most first. */
static void test_leases_by_owner(void **state)
{
	fixture_t *f = *state;
	store_lease_group_t g[4];
	size_t n = 99;
	assert_int_equal(store_leases_by_owner(f->s, g, 4, &n), 0);
	assert_int_equal(n, 0);
	set_stock(f->s, "A", 10);
	assert_int_equal(submit1(f->s, "l1", "A:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "l2", "A:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "l3", "A:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "l4", "A:1"), SUBMIT_CREATED);
	store_claim_t c[3];
	size_t nc;
	assert_int_equal(store_claim(f->s, "w-a", 30000, 1, c, &nc), 0);
	assert_int_equal(nc, 1);
	assert_int_equal(store_claim(f->s, "w-b", 30000, 2, c + 1, &nc), 0);
	assert_int_equal(nc, 2);
	assert_int_equal(store_leases_by_owner(f->s, g, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(g[0].replica, "w-b");
	assert_int_equal(g[0].orders, 2);
	assert_string_equal(g[1].replica, "w-a");
	assert_int_equal(g[1].orders, 1);
	assert_int_equal(store_leases_by_owner(f->s, g, 1, &n), 0);
	assert_int_equal(n, 2); /* the total, though one group fits */
	/* A finished order holds no lease. */
	store_process_result_t r[1];
	assert_int_equal(store_process(f->s, c, 1, r), 0);
	assert_int_equal(r[0].outcome, PROCESS_COMPLETED);
	store_claims_clear(c, 3);
	assert_int_equal(store_leases_by_owner(f->s, g, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(g[0].replica, "w-b");
	assert_int_equal(store_leases_by_owner(f->s, NULL, 1, &n), OD_EINVAL);
	assert_int_equal(store_leases_by_owner(f->s, g, 1, NULL), OD_EINVAL);
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

/* ---- a damaged store: the backstop ---- */

/*
 * The backstop: a reservation already exists for an order that is being
 * processed under a current fence (only a bug or a damaged store gets
 * here). The order must not take stock a second time, must not loop
 * between claim and reap, and must not take its neighbours down: it ends
 * failed with reason "duplicate_reservation", reported as PROCESS_BREACH,
 * while the rest of the batch is processed as usual. The backstop comes
 * before the stock is looked at: the usual shape of a double processing
 * is an order whose first reservation took the stock it would need again,
 * and that order must not end "rejected" while holding stock.
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

/* The same when the stock is gone (it went to the first reservation), and
 * when the reservation held is of a sku that is none of the items. */
static void test_process_duplicate_reservation_no_stock(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 2);
	set_stock(f->s, "B", 5);
	assert_int_equal(submit1(f->s, "dup", "A:2"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "odd", "B:1"), SUBMIT_CREATED);
	raw_exec("UPDATE products SET stock = 0 WHERE sku = 'A'");
	raw_exec("INSERT INTO reservations (order_id, sku, qty, fence,"
	         " created_at) VALUES ('dup', 'A', 2, 0, 0)");
	raw_exec("INSERT INTO reservations (order_id, sku, qty, fence,"
	         " created_at) VALUES ('odd', 'A', 1, 0, 0)");
	store_claim_t c[2];
	size_t n;
	assert_int_equal(store_claim(f->s, "w", 30000, 2, c, &n), 0);
	assert_int_equal(n, 2);
	store_process_result_t r[2];
	assert_int_equal(store_process(f->s, c, n, r), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[i].outcome, PROCESS_BREACH);
		assert_string_equal(r[i].reason, "duplicate_reservation");
		assert_int_equal(status_of(f->s, c[i].order.id), ORDER_FAILED);
	}
	store_claims_clear(c, n);
	assert_int_equal(stock_of(f->s, "A"), 0);
	assert_int_equal(stock_of(f->s, "B"), 5);
	assert_int_equal(reservations_of("odd"), 1);
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
	    "order 'o1': completed or held but item sku 'A' qty 2 has no "
	    "matching"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_submit_new_replay_conflict),
	    T(test_submit_batch_order),
	    T(test_requeue_and_cancel),
	    T(test_list_get_terminal),
	    T(test_products),
	    T(test_stats_oldest_pending),
	    T(test_replicas),
	    T(test_leases_by_owner),
	    T(test_arguments),
	    T(test_process_duplicate_reservation),
	    T(test_process_duplicate_reservation_no_stock),
	    T(test_verify_each_violation),
	};
	const char *be = getenv("ORDERD_TEST_BACKEND");
	return cmocka_run_group_tests_name(be ? be : "sqlite", tests, setup_all,
	                                   NULL);
}
