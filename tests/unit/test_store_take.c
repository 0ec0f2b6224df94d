/*
 * test_store_take: the store contract for store_take, the claim and the
 * processing in one transaction, run unchanged against each backend
 * (store_fixture.h): every order decided in one write with a fresh fence
 * and one more attempt, no lease and no claim event ever stored, the
 * outcomes store_process would give, nothing twice, and the backstop of
 * G3 (an order that already holds a reservation) refused whole, with
 * nothing written, so that the leased path can pin it.
 */
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static void test_take_decides_in_one_write(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	set_stock(f->s, "B", 1);
	/* A fence granted before, under a lease: the take's must be newer. */
	assert_int_equal(submit1(f->s, "o0", "X:1"), SUBMIT_CREATED);
	store_claim_t old = claim1(f->s, "w0", 30000, "o0");
	int64_t f0 = old.fence;
	store_process_result_t r0;
	assert_int_equal(store_process(f->s, &old, 1, &r0), 0);
	assert_int_equal(r0.outcome, PROCESS_REJECTED);
	store_claims_clear(&old, 1);
	assert_int_equal(submit1(f->s, "o1", "A:2,B:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o2", "A:1,X:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o3", "A:4"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o4", "A:3"), SUBMIT_CREATED);

	store_claim_t c[8];
	store_process_result_t r[8];
	size_t n = 99;
	assert_int_equal(store_take(f->s, "w", 0, c, &n, r), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_take(f->s, "w", 8, c, &n, r), 0);
	assert_int_equal(n, 4);
	/* Due order, one fresh fence, array-order decisions as
	 * store_process makes them. */
	const char *ids[] = {"o1", "o2", "o3", "o4"};
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(c[i].order.id, ids[i]);
		assert_int_equal(c[i].fence, c[0].fence);
		assert_int_equal(c[i].lease_until, 0);
	}
	assert_true(c[0].fence > f0);
	assert_int_equal(r[0].outcome, PROCESS_COMPLETED);
	assert_int_equal(r[1].outcome, PROCESS_REJECTED);
	assert_string_equal(r[1].reason, "unknown_sku");
	assert_int_equal(r[2].outcome, PROCESS_REJECTED);
	assert_string_equal(r[2].reason, "insufficient_stock");
	assert_int_equal(r[3].outcome, PROCESS_COMPLETED);
	assert_int_equal(stock_of(f->s, "A"), 0);
	assert_int_equal(stock_of(f->s, "B"), 0);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM reservations"), 3);
	assert_int_equal(reservations_of("o2"), 0);

	char sql[256];
	for (size_t i = 0; i < n; i++) {
		order_t o = get(f->s, ids[i]);
		assert_int_equal(o.status, r[i].outcome == PROCESS_COMPLETED
		                               ? ORDER_COMPLETED
		                               : ORDER_REJECTED);
		assert_int_equal(o.attempts, 1);
		assert_int_equal(c[i].order.attempts, 1);
		assert_true(o.finished_at > 0);
		order_clear(&o);
		assert_lease_cleared(ids[i]);
		/* The outcome's event carries the take's fence; no claim. */
		snprintf(
		    sql, sizeof sql,
		    "SELECT COUNT(*) FROM order_events WHERE order_id = '%s'"
		    " AND event IN ('complete', 'reject') AND fence = %lld",
		    ids[i], (long long)c[0].fence);
		assert_int_equal(raw_int(sql), 1);
	}
	assert_int_equal(raw_int("SELECT COUNT(*) FROM order_events"
	                         " WHERE event = 'claim'"),
	                 1); /* o0's, by w0 */
	store_claims_clear(c, n);

	/* Nothing is due any more: nothing is taken twice. */
	assert_int_equal(store_take(f->s, "w", 8, c, &n, r), 0);
	assert_int_equal(n, 0);
	assert_int_equal(stock_of(f->s, "A"), 0);
	assert_int_equal(verify(f->s, NULL), 0);
}

/* Only due orders, up to max, oldest first; the rest stay pending and
 * untouched. */
static void test_take_batches(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 100);
	submit_many(f->s, "b", 5);
	store_claim_t c[8];
	store_process_result_t r[8];
	size_t n;
	assert_int_equal(store_take(f->s, "w", 3, c, &n, r), 0);
	assert_int_equal(n, 3);
	int64_t fence = c[0].fence;
	store_claims_clear(c, n);
	store_stats_t st;
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_int_equal(st.count[ORDER_PENDING], 2);
	assert_int_equal(st.count[ORDER_PROCESSING], 0);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM orders"
	                         " WHERE status = 'pending' AND attempts = 0"
	                         " AND fence = 0"),
	                 2);
	assert_int_equal(store_take(f->s, "w", 8, c, &n, r), 0);
	assert_int_equal(n, 2);
	assert_true(c[0].fence > fence);
	store_claims_clear(c, n);
	assert_int_equal(verify(f->s, NULL), 0);
}

/* An order that already holds a reservation (a bug or a damaged store) is
 * never reserved again. The backend either fails it alone as a breach
 * (sqlite: it checks each order) or fails the take whole, writing nothing
 * and counting no attempt (postgres: the reservations' key refuses it), and
 * the leased path then fails that order alone as a breach. */
static void test_take_refuses_a_reserved_order(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "o2", "A:1"), SUBMIT_CREATED);
	raw_exec("INSERT INTO reservations (order_id, sku, qty, fence,"
	         " created_at) VALUES ('o1', 'A', 1, 0, 0)");
	store_claim_t c[4];
	store_process_result_t r[4];
	size_t n = 99;
	int rc = store_take(f->s, "w", 4, c, &n, r);
	if (rc < 0) {
		assert_int_not_equal(rc, OD_EUNKNOWN);
		assert_int_equal(n, 0);
		assert_int_equal(stock_of(f->s, "A"), 5);
		assert_int_equal(
		    raw_int("SELECT COUNT(*) FROM orders"
		            " WHERE status = 'pending' AND attempts = 0"),
		    2);
		assert_int_equal(raw_int("SELECT COUNT(*) FROM order_events"
		                         " WHERE event <> 'submit'"),
		                 0);
		assert_int_equal(store_claim(f->s, "w", 30000, 4, c, &n), 0);
		assert_int_equal(n, 2);
		assert_int_equal(store_process(f->s, c, n, r), 0);
	}
	assert_int_equal(n, 2);
	assert_int_equal(r[0].outcome, PROCESS_BREACH);
	assert_string_equal(r[0].reason, "duplicate_reservation");
	assert_int_equal(r[1].outcome, PROCESS_COMPLETED);
	store_claims_clear(c, n);
	assert_int_equal(status_of(f->s, "o1"), ORDER_FAILED);
	assert_int_equal(stock_of(f->s, "A"), 4);
	assert_int_equal(reservations_of("o1"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_take_decides_in_one_write),
	    T(test_take_batches),
	    T(test_take_refuses_a_reserved_order),
	};
	const char *be = getenv("ORDERD_TEST_BACKEND");
	return cmocka_run_group_tests_name(be ? be : "sqlite", tests, setup_all,
	                                   NULL);
}
