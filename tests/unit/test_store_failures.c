/*
 * test_store_failures: the store contract for dead letters, run unchanged
 * against each backend (store_fixture.h says how): the fingerprint every
 * failure path writes and every requeue clears, the groups of
 * store_failures_list (counts, first and last seen, the sample, the
 * order), store_failures_requeue (exactly one group, in chunks, events
 * as a single requeue writes them, nothing that left failed meanwhile),
 * and the fingerprints filled in at open for failed orders stored before
 * the column existed.
 */
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/failure.h"
#include "core/state.h"
#include "util/clock.h"
#include "util/err.h"

/* How many orders hold fingerprint fp of reason (NULL: no fingerprint)
 * among those with id. */
static int64_t has_fp(const char *id, const char *reason)
{
	char sql[512];
	if (!reason) {
		snprintf(sql, sizeof sql,
		         "SELECT COUNT(*) FROM orders WHERE id = '%s'"
		         " AND fingerprint IS NULL",
		         id);
		return raw_int(sql);
	}
	char fp[FAILURE_FP_LEN + 1];
	failure_fingerprint(reason, fp);
	snprintf(sql, sizeof sql,
	         "SELECT COUNT(*) FROM orders WHERE id = '%s'"
	         " AND fingerprint = '%s'",
	         id, fp);
	return raw_int(sql);
}

/* Submits id and fails it at once: one claim, a retry with no attempts
 * left, reason as the error. */
static void fail_with(store_t *s, const char *id, const char *reason)
{
	assert_int_equal(submit1(s, id, "A:1"), SUBMIT_CREATED);
	store_claim_t c = claim1(s, "w", 30000, id);
	bool failed = false;
	assert_int_equal(store_retry(s, id, c.fence, 1, 0, reason, &failed), 0);
	assert_true(failed);
	store_claims_clear(&c, 1);
}

static int64_t finished_of(store_t *s, const char *id)
{
	order_t o = get(s, id);
	int64_t at = o.finished_at;
	order_clear(&o);
	return at;
}

/* ---- the fingerprint on every failure path ---- */

static void test_fingerprint_on_each_failure_path(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 10);
	bool failed;

	/* Retry: attempts left, no group; out of attempts, the error's. */
	assert_int_equal(submit1(f->s, "retry", "A:1"), SUBMIT_CREATED);
	store_claim_t c = claim1(f->s, "w", 30000, "retry");
	assert_int_equal(store_retry(f->s, "retry", c.fence, 2, 0,
	                             "confirm: HTTP 503 after 20 ms", &failed),
	                 0);
	assert_false(failed);
	store_claims_clear(&c, 1);
	assert_int_equal(has_fp("retry", NULL), 1);
	c = claim1(f->s, "w", 30000, "retry");
	assert_int_equal(store_retry(f->s, "retry", c.fence, 2, 0,
	                             "confirm: HTTP 500 after 31 ms", &failed),
	                 0);
	assert_true(failed);
	store_claims_clear(&c, 1);
	assert_int_equal(has_fp("retry", "confirm: HTTP 500 after 31 ms"), 1);
	assert_int_equal(has_fp("retry", "confirm: HTTP 503 after 9 ms"), 1);

	/* Reap: expired with attempts left, no group; out of them,
	 * "lease expired". */
	assert_int_equal(submit1(f->s, "reaped", "A:1"), SUBMIT_CREATED);
	for (int round = 0; round < 2; round++) {
		c = claim1(f->s, "w", 20, "reaped");
		store_claims_clear(&c, 1);
		clock_sleep_ms(40);
		size_t n = 0;
		assert_int_equal(store_reap(f->s, 2, 10, &n), 0);
		assert_int_equal(n, 1);
		assert_int_equal(
		    has_fp("reaped", round ? "lease expired" : NULL), 1);
	}
	assert_int_equal(status_of(f->s, "reaped"), ORDER_FAILED);

	/* The backstop: "duplicate_reservation"; its batch neighbours,
	 * completed and rejected, get none. */
	assert_int_equal(submit1(f->s, "ok", "A:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "dup", "A:1"), SUBMIT_CREATED);
	assert_int_equal(submit1(f->s, "rej", "X:1"), SUBMIT_CREATED);
	raw_exec("INSERT INTO reservations (order_id, sku, qty, fence,"
	         " created_at) VALUES ('dup', 'A', 1, 0, 0)");
	store_claim_t cs[3];
	size_t n = 0;
	assert_int_equal(store_claim(f->s, "w", 30000, 3, cs, &n), 0);
	assert_int_equal(n, 3);
	store_process_result_t r[3];
	assert_int_equal(store_process(f->s, cs, n, r), 0);
	assert_int_equal(r[0].outcome, PROCESS_COMPLETED);
	assert_int_equal(r[1].outcome, PROCESS_BREACH);
	assert_int_equal(r[2].outcome, PROCESS_REJECTED);
	store_claims_clear(cs, n);
	assert_int_equal(has_fp("dup", "duplicate_reservation"), 1);
	assert_int_equal(has_fp("ok", NULL), 1);
	assert_int_equal(has_fp("rej", NULL), 1);

	/* Leaving failed clears it: a single requeue. */
	assert_int_equal(store_order_requeue(f->s, "retry", NULL), 0);
	assert_int_equal(has_fp("retry", NULL), 1);
	/* Only failed orders have one. */
	assert_int_equal(raw_int("SELECT COUNT(*) FROM orders WHERE"
	                         " (status = 'failed') <>"
	                         " (fingerprint IS NOT NULL)"),
	                 0);
}

/* ---- the list ---- */

static void test_failures_list_groups(void **state)
{
	fixture_t *f = *state;
	/* Group A: three orders, reasons of one shape. */
	fail_with(f->s, "a1", "confirm: HTTP 503 after 2000 ms (a1)");
	clock_sleep_ms(5);
	fail_with(f->s, "b1", "unknown host 'pay-1.example'");
	fail_with(f->s, "a2", "confirm: HTTP 500 after 31 ms (a2)");
	fail_with(f->s, "c1", "lease kept by 'w9'; giving up");
	clock_sleep_ms(5);
	fail_with(f->s, "b2", "unknown host 'pay-2.example'");
	clock_sleep_ms(5);
	fail_with(f->s, "a3", "confirm: HTTP 502 after 7 ms (a3)");
	/* Not failed: in no group. */
	assert_int_equal(submit1(f->s, "p1", "A:1"), SUBMIT_CREATED);
	assert_int_equal(store_order_cancel(f->s, "p1", NULL), 0);

	store_failure_t *g = NULL;
	size_t n = 0;
	assert_int_equal(store_failures_list(f->s, 100, &g, &n), 0);
	assert_int_equal(n, 3);
	char fa[FAILURE_FP_LEN + 1], fb[FAILURE_FP_LEN + 1],
	    fc[FAILURE_FP_LEN + 1];
	failure_fingerprint("confirm: HTTP 429 after 1 ms (y1)", fa);
	failure_fingerprint("unknown host 'x'", fb);
	failure_fingerprint("lease kept by 'w1'; giving up", fc);
	/* Largest first. */
	assert_string_equal(g[0].fingerprint, fa);
	assert_int_equal(g[0].count, 3);
	assert_int_equal(g[0].first_seen, finished_of(f->s, "a1"));
	assert_int_equal(g[0].last_seen, finished_of(f->s, "a3"));
	assert_true(g[0].first_seen < g[0].last_seen);
	/* The sample is the latest order's reason. */
	assert_string_equal(g[0].sample_reason,
	                    "confirm: HTTP 502 after 7 ms (a3)");
	assert_string_equal(g[1].fingerprint, fb);
	assert_int_equal(g[1].count, 2);
	assert_int_equal(g[1].first_seen, finished_of(f->s, "b1"));
	assert_int_equal(g[1].last_seen, finished_of(f->s, "b2"));
	assert_string_equal(g[1].sample_reason, "unknown host 'pay-2.example'");
	assert_string_equal(g[2].fingerprint, fc);
	assert_int_equal(g[2].count, 1);
	assert_int_equal(g[2].first_seen, g[2].last_seen);
	store_failures_free(g, n);

	/* The limit takes the largest. */
	assert_int_equal(store_failures_list(f->s, 1, &g, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(g[0].fingerprint, fa);
	store_failures_free(g, n);

	/* Equal counts: the most recently seen first. */
	fail_with(f->s, "c2", "lease kept by 'w2'; giving up");
	assert_int_equal(store_failures_list(f->s, 100, &g, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(g[1].fingerprint, fc);
	assert_int_equal(g[1].count, 2);
	assert_string_equal(g[2].fingerprint, fb);
	store_failures_free(g, n);

	/* Argument checks touch nothing. */
	assert_int_equal(store_failures_list(f->s, 0, &g, &n), OD_EINVAL);
	assert_int_equal(store_failures_list(f->s, STORE_LIST_MAX + 1, &g, &n),
	                 OD_EINVAL);
	assert_int_equal(store_failures_list(f->s, 1, NULL, &n), OD_EINVAL);
	assert_int_equal(store_failures_list(f->s, 1, &g, NULL), OD_EINVAL);
	store_failures_free(NULL, 0);
}

static void test_failures_list_empty(void **state)
{
	fixture_t *f = *state;
	store_failure_t *g = NULL;
	size_t n = 99;
	assert_int_equal(store_failures_list(f->s, 10, &g, &n), 0);
	assert_int_equal(n, 0);
	store_failures_free(g, n);
}

/* ---- requeue of a group ---- */

static int64_t requeues_of(const char *id)
{
	char sql[512];
	snprintf(sql, sizeof sql,
	         "SELECT COUNT(*) FROM order_events WHERE order_id = '%s'"
	         " AND event = '%s'",
	         id, state_event_name(EV_REQUEUE));
	return raw_int(sql);
}

/* id has n requeue events, and (n > 0) the last of its events is one. */
static void assert_requeued(const char *id, int64_t n)
{
	char sql[512];
	assert_int_equal(requeues_of(id), n);
	snprintf(sql, sizeof sql,
	         "SELECT COUNT(*) FROM order_events WHERE order_id = '%s'"
	         " AND event = '%s' AND id = (SELECT MAX(id) FROM order_events"
	         " WHERE order_id = '%s')",
	         id, state_event_name(EV_REQUEUE), id);
	assert_int_equal(raw_int(sql), n > 0);
}

static void test_failures_requeue_one_group(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 10);
	/* A cancelled order carrying the group's fingerprint (only a damaged
	 * store has one), stored before the group: not failed, so not in
	 * the group either. */
	assert_int_equal(submit1(f->s, "x0", "A:1"), SUBMIT_CREATED);
	assert_int_equal(store_order_cancel(f->s, "x0", NULL), 0);
	fail_with(f->s, "a1", "confirm: HTTP 503 after 2000 ms");
	fail_with(f->s, "b1", "unknown host 'pay-1'");
	fail_with(f->s, "a2", "confirm: HTTP 500 after 30 ms");
	fail_with(f->s, "a3", "confirm: HTTP 502 after 10 ms");
	/* a3 leaves failed by itself first and is being processed again:
	 * the group requeue must not touch it. */
	assert_int_equal(store_order_requeue(f->s, "a3", NULL), 0);
	store_claim_t c = claim1(f->s, "w", 30000, "a3");
	char fa[FAILURE_FP_LEN + 1];
	failure_fingerprint("confirm: HTTP 503 after 2000 ms", fa);
	char sql[256];
	snprintf(sql, sizeof sql,
	         "UPDATE orders SET fingerprint = '%s' WHERE id = 'x0'", fa);
	raw_exec(sql);

	int64_t n = -1;
	assert_int_equal(store_failures_requeue(f->s, fa, &n), 0);
	assert_int_equal(n, 2);
	const char *const moved[] = {"a1", "a2"};
	for (size_t i = 0; i < 2; i++) {
		order_t o = get(f->s, moved[i]);
		assert_int_equal(o.status, ORDER_PENDING);
		assert_int_equal(o.attempts, 0);
		assert_null(o.reason);
		assert_int_equal(o.finished_at, 0);
		order_clear(&o);
		assert_int_equal(has_fp(moved[i], NULL), 1);
		assert_lease_cleared(moved[i]);
		assert_requeued(moved[i], 1);
	}
	/* Untouched: the other group, the order that had left, the
	 * cancelled one. */
	assert_int_equal(status_of(f->s, "b1"), ORDER_FAILED);
	assert_int_equal(has_fp("b1", "unknown host 'x'"), 1);
	assert_requeued("b1", 0);
	assert_int_equal(status_of(f->s, "a3"), ORDER_PROCESSING);
	assert_int_equal(requeues_of("a3"), 1); /* its own requeue only */
	assert_int_equal(status_of(f->s, "x0"), ORDER_CANCELLED);
	assert_requeued("x0", 0);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM order_events"
	                         " WHERE event = 'requeue'"),
	                 3);

	/* The requeued orders are due now and go through again. */
	assert_int_equal(process1(f->s, &c, NULL), PROCESS_COMPLETED);
	store_claims_clear(&c, 1);
	store_claim_t cs[4];
	size_t k = 0;
	assert_int_equal(store_claim(f->s, "w", 30000, 4, cs, &k), 0);
	assert_int_equal(k, 2); /* a1, a2 */
	store_process_result_t r[4];
	assert_int_equal(store_process(f->s, cs, k, r), 0);
	for (size_t i = 0; i < k; i++)
		assert_int_equal(r[i].outcome, PROCESS_COMPLETED);
	store_claims_clear(cs, k);

	/* The group is gone from the list; the other one stays. */
	store_failure_t *g = NULL;
	size_t ng = 0;
	assert_int_equal(store_failures_list(f->s, 10, &g, &ng), 0);
	assert_int_equal(ng, 1);
	assert_int_equal(g[0].count, 1);
	assert_string_equal(g[0].sample_reason, "unknown host 'pay-1'");
	store_failures_free(g, ng);

	/* Again, or an unknown group: nothing, and not an error. */
	assert_int_equal(store_failures_requeue(f->s, fa, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_failures_requeue(f->s, "0123456789abcdef", &n),
	                 0);
	assert_int_equal(n, 0);
	/* Not a fingerprint: OD_EINVAL, nothing written. */
	static const char *const bad[] = {"",
	                                  "0123456789ABCDEF",
	                                  "0123456789abcde",
	                                  "0123456789abcdef0",
	                                  "'; DELETE FROM x",
	                                  NULL};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(store_failures_requeue(f->s, bad[i], &n),
		                 OD_EINVAL);
	assert_int_equal(store_failures_requeue(f->s, fa, NULL), OD_EINVAL);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM order_events"
	                         " WHERE event = 'requeue'"),
	                 3);
	assert_int_equal(verify(f->s, NULL), 0);
}

/* A group larger than a chunk: every order once, one event each. */
static void test_failures_requeue_in_chunks(void **state)
{
	fixture_t *f = *state;
	enum { N = 2 * STORE_REQUEUE_CHUNK + 7 };
	submit_many(f->s, "big", N);
	submit_many(f->s, "other", 3);
	char fp[FAILURE_FP_LEN + 1], sql[512];
	failure_fingerprint("store busy 5", fp);
	snprintf(sql, sizeof sql,
	         "UPDATE orders SET status = 'failed', attempts = 8,"
	         " reason = 'store busy 5', fingerprint = '%s',"
	         " finished_at = %s WHERE id LIKE 'big%%'",
	         fp, now_sql());
	raw_exec(sql);
	raw_exec("UPDATE orders SET status = 'failed', reason = 'x',"
	         " fingerprint = 'ffffffffffffffff', finished_at = 1"
	         " WHERE id LIKE 'other%'");
	int64_t n = 0;
	assert_int_equal(store_failures_requeue(f->s, fp, &n), 0);
	assert_int_equal(n, N);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM orders WHERE id LIKE"
	                         " 'big%' AND status = 'pending' AND attempts"
	                         " = 0 AND fingerprint IS NULL"),
	                 N);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM order_events"
	                         " WHERE event = 'requeue'"),
	                 N);
	assert_int_equal(raw_int("SELECT COUNT(DISTINCT order_id) FROM"
	                         " order_events WHERE event = 'requeue'"),
	                 N);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM orders WHERE id LIKE"
	                         " 'other%' AND status = 'failed'"),
	                 3);
}

/* ---- failed orders from before the fingerprint: filled in at open ---- */

static void test_fingerprints_filled_at_open(void **state)
{
	fixture_t *f = *state;
	fail_with(f->s, "old1", "confirm: HTTP 503 after 2000 ms");
	fail_with(f->s, "old2", "confirm: HTTP 500 after 3 ms");
	fail_with(f->s, "old3", "lease expired");
	/* More than one chunk of them, as a store migrated with many
	 * failed orders has. */
	enum { N = 1100 };
	submit_many(f->s, "bulk", N);
	raw_exec("UPDATE orders SET status = 'failed', reason = 'order ' ||"
	         " id || ' timed out', finished_at = 5"
	         " WHERE id LIKE 'bulk%'");
	raw_exec("UPDATE orders SET fingerprint = NULL");
	assert_int_equal(submit1(f->s, "live", "A:1"), SUBMIT_CREATED);

	store_free(f->s);
	f->s = NULL;
	assert_int_equal(store_open(f->uri, &fixture_opts, &f->s), 0);
	assert_int_equal(raw_int("SELECT COUNT(*) FROM orders WHERE"
	                         " status = 'failed' AND fingerprint IS NULL"),
	                 0);
	assert_int_equal(has_fp("old1", "confirm: HTTP 1 after 1 ms"), 1);
	assert_int_equal(has_fp("old2", "confirm: HTTP 1 after 1 ms"), 1);
	assert_int_equal(has_fp("old3", "lease expired"), 1);
	assert_int_equal(has_fp("live", NULL), 1);
	store_failure_t *g = NULL;
	size_t n = 0;
	assert_int_equal(store_failures_list(f->s, 10, &g, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(g[0].count, N);
	assert_int_equal(g[0].first_seen, 5);
	assert_int_equal(g[1].count, 2);
	assert_int_equal(g[2].count, 1);
	store_failures_free(g, n);
	/* Opening again finds nothing to do and changes nothing. */
	store_free(f->s);
	f->s = NULL;
	assert_int_equal(store_open(f->uri, &fixture_opts, &f->s), 0);
	assert_int_equal(has_fp("old1", "confirm: HTTP 1 after 1 ms"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_fingerprint_on_each_failure_path),
	    T(test_failures_list_groups),
	    T(test_failures_list_empty),
	    T(test_failures_requeue_one_group),
	    T(test_failures_requeue_in_chunks),
	    T(test_fingerprints_filled_at_open),
	};
	const char *be = getenv("ORDERD_TEST_BACKEND");
	return cmocka_run_group_tests_name(be ? be : "sqlite", tests, setup_all,
	                                   NULL);
}
