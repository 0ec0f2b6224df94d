/*
 * test_store_confirm: the store contract for the confirm step, run
 * unchanged against each backend (store_fixture.h says how): reserve and
 * hold, complete or reject a held order, retry and reap holding the stock,
 * failure releasing it, lease renewal, a stale holder fenced out, the
 * audit counting held stock as held (G5) at every step, and the order's
 * history naming the replica behind each transition.
 */
#include "store_fixture.h"

#include <string.h>

#include "util/clock.h"
#include "util/err.h"

static int64_t held_of(const char *id)
{
	char sql[128];
	snprintf(sql, sizeof sql,
	         "SELECT CASE WHEN held THEN 1 ELSE 0 END FROM orders"
	         " WHERE id = '%s'",
	         id);
	return raw_int(sql);
}

static process_outcome_t reserve1(store_t *s, const store_claim_t *c,
                                  const char **ret_reason)
{
	store_process_result_t r = {0};
	assert_int_equal(store_reserve(s, c, 1, &r), 0);
	if (ret_reason)
		*ret_reason = r.reason;
	return r.outcome;
}

static bool finish1(store_t *s, const store_claim_t *c, bool complete)
{
	store_finish_t f = {c->order.id, c->fence, complete,
	                    complete ? NULL : "declined"};
	bool fenced = false;
	assert_int_equal(store_finish(s, &f, 1, &fenced), 0);
	return fenced;
}

static void test_reserve_holds_then_complete(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	set_stock(f->s, "B", 5);
	assert_int_equal(submit1(f->s, "o1", "A:2,B:1"), SUBMIT_CREATED);
	store_claim_t c = claim1(f->s, "w", 30000, "o1");
	assert_int_equal(reserve1(f->s, &c, NULL), PROCESS_RESERVED);
	/* Held: still processing under the same lease, stock taken. */
	assert_int_equal(status_of(f->s, "o1"), ORDER_PROCESSING);
	assert_int_equal(held_of("o1"), 1);
	assert_int_equal(stock_of(f->s, "A"), 3);
	assert_int_equal(stock_of(f->s, "B"), 4);
	assert_int_equal(reservations_of("o1"), 2);
	assert_int_equal(verify(f->s, NULL), 0);
	assert_false(finish1(f->s, &c, true));
	order_t o = get(f->s, "o1");
	assert_int_equal(o.status, ORDER_COMPLETED);
	assert_null(o.reason);
	assert_true(o.finished_at > 0);
	order_clear(&o);
	assert_int_equal(held_of("o1"), 0);
	assert_int_equal(stock_of(f->s, "A"), 3);
	assert_int_equal(reservations_of("o1"), 2);
	assert_lease_cleared("o1");
	assert_int_equal(verify(f->s, NULL), 0);
	/* A second answer for the same lease changes nothing. */
	assert_true(finish1(f->s, &c, false));
	assert_int_equal(status_of(f->s, "o1"), ORDER_COMPLETED);
	assert_int_equal(stock_of(f->s, "A"), 3);
	store_claims_clear(&c, 1);
}

static void test_declined_releases_stock(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	assert_int_equal(submit1(f->s, "o1", "A:2"), SUBMIT_CREATED);
	store_claim_t c = claim1(f->s, "w", 30000, "o1");
	assert_int_equal(reserve1(f->s, &c, NULL), PROCESS_RESERVED);
	assert_int_equal(stock_of(f->s, "A"), 3);
	assert_false(finish1(f->s, &c, false));
	order_t o = get(f->s, "o1");
	assert_int_equal(o.status, ORDER_REJECTED);
	assert_string_equal(o.reason, "declined");
	order_clear(&o);
	assert_int_equal(stock_of(f->s, "A"), 5);
	assert_int_equal(reservations_of("o1"), 0);
	assert_int_equal(held_of("o1"), 0);
	assert_lease_cleared("o1");
	assert_int_equal(verify(f->s, NULL), 0);
	store_claims_clear(&c, 1);
}

static void test_reserve_rejects_without_stock(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 1);
	assert_int_equal(submit1(f->s, "short", "A:2"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "ghost", "Z:1"), SUBMIT_CREATED);
	const char *reason = NULL;
	store_claim_t c = claim1(f->s, "w", 30000, "short");
	assert_int_equal(reserve1(f->s, &c, &reason), PROCESS_REJECTED);
	assert_string_equal(reason, "insufficient_stock");
	store_claims_clear(&c, 1);
	c = claim1(f->s, "w", 30000, "ghost");
	assert_int_equal(reserve1(f->s, &c, &reason), PROCESS_REJECTED);
	assert_string_equal(reason, "unknown_sku");
	store_claims_clear(&c, 1);
	assert_int_equal(held_of("short"), 0);
	assert_int_equal(stock_of(f->s, "A"), 1);
	assert_int_equal(verify(f->s, NULL), 0);
}

/* A transient confirm failure keeps the stock for the next attempt; the
 * next reserve takes nothing more; the last attempt gives it back. */
static void test_retry_keeps_stock_until_failed(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	assert_int_equal(submit1(f->s, "o1", "A:2"), SUBMIT_CREATED);
	bool failed = true;
	for (int attempt = 1; attempt <= 3; attempt++) {
		store_claim_t c = claim1(f->s, "w", 30000, "o1");
		assert_int_equal(c.order.attempts, attempt);
		assert_int_equal(reserve1(f->s, &c, NULL), PROCESS_RESERVED);
		assert_int_equal(stock_of(f->s, "A"), 3);
		assert_int_equal(store_retry(f->s, "o1", c.fence, 3, 0,
		                             "confirm: HTTP 503", &failed),
		                 0);
		assert_int_equal(failed, attempt == 3);
		store_claims_clear(&c, 1);
		if (attempt < 3) {
			/* Pending, holding its stock: counted as held, and
			 * not cancellable (its confirmation may have gone
			 * through). */
			assert_int_equal(status_of(f->s, "o1"), ORDER_PENDING);
			assert_int_equal(held_of("o1"), 1);
			assert_int_equal(stock_of(f->s, "A"), 3);
			assert_int_equal(verify(f->s, NULL), 0);
			assert_int_equal(store_order_cancel(f->s, "o1", NULL),
			                 OD_ESTATE);
		}
	}
	order_t o = get(f->s, "o1");
	assert_int_equal(o.status, ORDER_FAILED);
	assert_string_equal(o.reason, "confirm: HTTP 503");
	order_clear(&o);
	assert_int_equal(held_of("o1"), 0);
	assert_int_equal(stock_of(f->s, "A"), 5);
	assert_int_equal(reservations_of("o1"), 0);
	assert_int_equal(verify(f->s, NULL), 0);
	/* Requeued, it reserves afresh. */
	assert_int_equal(store_order_requeue(f->s, "o1", NULL), 0);
	store_claim_t c = claim1(f->s, "w", 30000, "o1");
	assert_int_equal(reserve1(f->s, &c, NULL), PROCESS_RESERVED);
	assert_int_equal(stock_of(f->s, "A"), 3);
	assert_false(finish1(f->s, &c, true));
	store_claims_clear(&c, 1);
	assert_int_equal(verify(f->s, NULL), 0);
}

/* A holder that died: the reaper returns the order still holding its
 * stock, and fails it (releasing the stock) when out of attempts. */
static void test_reap_keeps_stock_until_failed(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	for (int attempt = 1; attempt <= 2; attempt++) {
		store_claim_t c = claim1(f->s, "w", 20, "o1");
		assert_int_equal(reserve1(f->s, &c, NULL), PROCESS_RESERVED);
		store_claims_clear(&c, 1);
		clock_sleep_ms(40);
		size_t n = 0;
		assert_int_equal(store_reap(f->s, 2, 10, &n), 0);
		assert_int_equal(n, 1);
		assert_int_equal(verify(f->s, NULL), 0);
		if (attempt == 1) {
			assert_int_equal(status_of(f->s, "o1"), ORDER_PENDING);
			assert_int_equal(held_of("o1"), 1);
			assert_int_equal(stock_of(f->s, "A"), 4);
		}
	}
	assert_int_equal(status_of(f->s, "o1"), ORDER_FAILED);
	assert_int_equal(held_of("o1"), 0);
	assert_int_equal(stock_of(f->s, "A"), 5);
	assert_int_equal(reservations_of("o1"), 0);
}

/* Numbered steps: w1 reserves and stalls; its lease runs out; w2 takes the
 * order (holding the same stock) and completes it; w1 wakes up. */
static void test_stale_holder_fenced(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	/* 1. */ store_claim_t c1 = claim1(f->s, "w1", 30, "o1");
	/* 2. */ assert_int_equal(reserve1(f->s, &c1, NULL), PROCESS_RESERVED);
	clock_sleep_ms(50);
	/* 3. w1's lease cannot be renewed once expired. */
	int64_t until = -1;
	const char *id = "o1";
	assert_int_equal(store_renew(f->s, &id, &c1.fence, 1, 30000, &until),
	                 0);
	assert_int_equal(until, 0);
	/* 4. */ size_t n = 0;
	assert_int_equal(store_reap(f->s, 5, 10, &n), 0);
	assert_int_equal(n, 1);
	/* 5. */ store_claim_t c2 = claim1(f->s, "w2", 30000, "o1");
	assert_true(c2.fence > c1.fence);
	/* 6. Already held: nothing reserved again. */
	assert_int_equal(reserve1(f->s, &c2, NULL), PROCESS_RESERVED);
	assert_int_equal(stock_of(f->s, "A"), 4);
	/* 7. w1 wakes up: every write fenced out. */
	assert_true(finish1(f->s, &c1, false));
	assert_int_equal(store_renew(f->s, &id, &c1.fence, 1, 30000, &until),
	                 0);
	assert_int_equal(until, 0);
	assert_int_equal(store_retry(f->s, "o1", c1.fence, 5, 0, "e", NULL),
	                 OD_EFENCE);
	assert_int_equal(store_release(f->s, "o1", c1.fence), OD_EFENCE);
	assert_int_equal(status_of(f->s, "o1"), ORDER_PROCESSING);
	assert_int_equal(stock_of(f->s, "A"), 4);
	/* 8. w2 renews and completes. */
	assert_int_equal(store_renew(f->s, &id, &c2.fence, 1, 60000, &until),
	                 0);
	assert_true(until > c2.lease_until);
	assert_int_equal(raw_int("SELECT lease_until FROM orders"
	                         " WHERE id = 'o1'"),
	                 until);
	assert_false(finish1(f->s, &c2, true));
	assert_int_equal(status_of(f->s, "o1"), ORDER_COMPLETED);
	assert_int_equal(stock_of(f->s, "A"), 4);
	assert_int_equal(verify(f->s, NULL), 0);
	store_claims_clear(&c1, 1);
	store_claims_clear(&c2, 1);
}

/* Renewal in one call for many orders: the live ones are extended, the
 * others say 0. */
static void test_renew_batch(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	submit_many(f->s, "r", 3);
	store_claim_t c[3];
	size_t n = 0;
	assert_int_equal(store_claim(f->s, "w", 30000, 3, c, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(store_release(f->s, c[1].order.id, c[1].fence), 0);
	const char *ids[3] = {c[0].order.id, c[1].order.id, c[2].order.id};
	int64_t fences[3] = {c[0].fence, c[1].fence, c[2].fence + 1};
	int64_t until[3] = {-1, -1, -1};
	assert_int_equal(store_renew(f->s, ids, fences, 3, 60000, until), 0);
	assert_true(until[0] > c[0].lease_until);
	assert_int_equal(until[1], 0);
	assert_int_equal(until[2], 0);
	assert_int_equal(store_renew(f->s, ids, fences, 3, 0, until),
	                 OD_EINVAL);
	store_claims_clear(c, n);
}

/* The confirm step switched off while an order holds its stock: plain
 * processing completes it without reserving again. */
static void test_process_completes_held(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	assert_int_equal(submit1(f->s, "o1", "A:2"), SUBMIT_CREATED);
	store_claim_t c = claim1(f->s, "w", 30000, "o1");
	assert_int_equal(reserve1(f->s, &c, NULL), PROCESS_RESERVED);
	assert_int_equal(store_retry(f->s, "o1", c.fence, 5, 0, "e", NULL), 0);
	store_claims_clear(&c, 1);
	c = claim1(f->s, "w", 30000, "o1");
	assert_int_equal(process1(f->s, &c, NULL), PROCESS_COMPLETED);
	assert_int_equal(stock_of(f->s, "A"), 3);
	assert_int_equal(reservations_of("o1"), 1);
	assert_int_equal(held_of("o1"), 0);
	assert_int_equal(verify(f->s, NULL), 0);
	store_claims_clear(&c, 1);
}

/* held and the reservations must agree; when they do not, the order fails
 * alone as a breach, on both paths. */
static void test_held_without_reservation_is_breach(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	raw_exec(is_pg ? "UPDATE orders SET held = true WHERE id = 'o1'"
	               : "UPDATE orders SET held = 1 WHERE id = 'o1'");
	store_claim_t c = claim1(f->s, "w", 30000, "o1");
	assert_int_equal(reserve1(f->s, &c, NULL), PROCESS_BREACH);
	assert_int_equal(status_of(f->s, "o1"), ORDER_FAILED);
	assert_int_equal(stock_of(f->s, "A"), 5);
	store_claims_clear(&c, 1);
}

/* The history: every transition, oldest first, with the fence it was
 * made under and the replica_id of the store that recorded it; a second
 * store (another replica) on the same database records its own. */
static void test_history(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 5);
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	store_claim_t c1 = claim1(f->s, "w", 30000, "o1");
	assert_int_equal(reserve1(f->s, &c1, NULL), PROCESS_RESERVED);
	bool failed = true;
	assert_int_equal(
	    store_retry(f->s, "o1", c1.fence, 5, 0, "confirm: busy", &failed),
	    0);
	assert_false(failed);
	store_options_t other = fixture_opts;
	other.replica_id = "other";
	store_t *s2;
	assert_int_equal(store_open(f->uri, &other, &s2), 0);
	store_claim_t c2 = claim1(s2, "w2", 30000, "o1");
	assert_int_equal(reserve1(s2, &c2, NULL), PROCESS_RESERVED);
	assert_false(finish1(s2, &c2, true));
	store_free(s2);

	const struct {
		const char *event, *replica;
		int64_t fence;
	} want[] = {
	    {"claim", "contract", c1.fence},
	    {"reserve", "contract", c1.fence},
	    {"retry", "contract", c1.fence},
	    {"claim", "other", c2.fence},
	    /* held since the first reserve: reserving again takes nothing */
	    {"complete", "other", c2.fence},
	};
	store_event_t ev[8];
	size_t n = 0;
	assert_int_equal(store_order_history(f->s, "o1", ev, 8, &n), 0);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(ev[i].event, want[i].event);
		assert_string_equal(ev[i].replica, want[i].replica);
		assert_int_equal(ev[i].fence, want[i].fence);
		assert_true(i == 0 || ev[i].at >= ev[i - 1].at);
	}
	/* A short read keeps the oldest and still counts them all. */
	assert_int_equal(store_order_history(f->s, "o1", ev, 2, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(ev[1].event, "reserve");
	assert_int_equal(store_order_history(f->s, "nope", ev, 8, &n), 0);
	assert_int_equal(n, 0);
	store_claims_clear(&c1, 1);
	store_claims_clear(&c2, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_reserve_holds_then_complete),
	    T(test_declined_releases_stock),
	    T(test_reserve_rejects_without_stock),
	    T(test_retry_keeps_stock_until_failed),
	    T(test_reap_keeps_stock_until_failed),
	    T(test_stale_holder_fenced),
	    T(test_renew_batch),
	    T(test_process_completes_held),
	    T(test_held_without_reservation_is_breach),
	    T(test_history),
	};
	const char *be = getenv("ORDERD_TEST_BACKEND");
	return cmocka_run_group_tests_name(be ? be : "sqlite", tests, setup_all,
	                                   NULL);
}
