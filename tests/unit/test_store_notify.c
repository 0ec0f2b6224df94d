/*
 * test_store_notify: the outbox of notifications (G9) in the store
 * contract, run unchanged on both backends (store_fixture.h): the trigger
 * writes exactly one event per terminal transition on every path and none
 * for the others, nothing at all while the outbox is not enabled; events
 * keep the order's snapshot; claims are fenced; retry, dead, release and
 * redeliver; pruning never touches an undelivered event; counts and lists,
 * of all, by status and by order.
 */
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static int64_t events_of(const char *id)
{
	char sql[160];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM notifications WHERE order_id = '%s'",
	         id);
	return raw_int(sql);
}

/* The nth event of order id (which must exist), from the order's list;
 * that list is every event of the order there is, oldest first. */
static store_notification_t event_of(store_t *s, const char *id, int nth)
{
	store_notification_t *v;
	size_t n;
	bool more;
	assert_int_equal(store_notify_by_order(s, id, 1000, &v, &n, &more), 0);
	assert_false(more);
	assert_int_equal((int64_t)n, events_of(id));
	for (size_t i = 1; i < n; i++)
		assert_true(v[i].seq > v[i - 1].seq);
	assert_true((size_t)nth < n);
	store_notification_t out = v[nth];
	memset(&v[nth], 0, sizeof v[nth]);
	assert_string_equal(out.order.id, id);
	store_notifications_free(v, n);
	return out;
}

static void complete(store_t *s, const char *id, const char *items)
{
	store_claim_t c = claim1(s, "w", 60000, id);
	const char *reason = NULL;
	process1(s, &c, &reason);
	store_claims_clear(&c, 1);
}

static void test_every_terminal_path(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(store_outbox_enable(f->s), 0);
	/* Enabling twice (a second replica starting) changes nothing. */
	assert_int_equal(store_outbox_enable(f->s), 0);
	set_stock(f->s, "A", 100);

	/* complete */
	submit1(f->s, "c1", "A:2");
	complete(f->s, "c1", "A:2");
	assert_int_equal(status_of(f->s, "c1"), ORDER_COMPLETED);
	/* reject */
	submit1(f->s, "r1", "NOPE:1");
	complete(f->s, "r1", "NOPE:1");
	assert_int_equal(status_of(f->s, "r1"), ORDER_REJECTED);
	/* retry with attempts left: no event; then exhaustion: failed */
	submit1(f->s, "f1", "A:1");
	store_claim_t c = claim1(f->s, "w", 60000, "f1");
	bool failed = true;
	assert_int_equal(
	    store_retry(f->s, "f1", c.fence, 5, 0, "flaky", &failed), 0);
	assert_false(failed);
	store_claims_clear(&c, 1);
	assert_int_equal(events_of("f1"), 0);
	c = claim1(f->s, "w", 60000, "f1");
	assert_int_equal(
	    store_retry(f->s, "f1", c.fence, 2, 0, "boom", &failed), 0);
	assert_true(failed);
	store_claims_clear(&c, 1);
	/* release (drain): no event */
	submit1(f->s, "h1", "A:1");
	c = claim1(f->s, "w", 60000, "h1");
	assert_int_equal(store_release(f->s, "h1", c.fence), 0);
	store_claims_clear(&c, 1);
	assert_int_equal(events_of("h1"), 0);
	assert_int_equal(store_order_cancel(f->s, "h1", NULL), 0);
	/* reap: expired with attempts left (no event), then exhausted */
	submit1(f->s, "x1", "A:1");
	c = claim1(f->s, "w", 60000, "x1");
	store_claims_clear(&c, 1);
	/* Expired just now, as a lease runs out: a deadline far in the past
	 * may sit below the reap's mark and wait for its next full scan
	 * (postgres_mark.c; test_claim_mark_straggler has that bound). */
	char expire[160];
	snprintf(expire, sizeof expire,
	         "UPDATE orders SET lease_until = %s - 1 WHERE id = 'x1'",
	         now_sql());
	raw_exec(expire);
	size_t n = 0;
	assert_int_equal(store_reap(f->s, 5, 10, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(events_of("x1"), 0);
	c = claim1(f->s, "w", 60000, "x1");
	store_claims_clear(&c, 1);
	raw_exec(expire);
	assert_int_equal(store_reap(f->s, 2, 10, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(status_of(f->s, "x1"), ORDER_FAILED);

	static const struct {
		const char *id, *type, *status, *reason;
		int attempts;
	} want[] = {
	    {"c1", "order.completed", "completed", NULL, 1},
	    {"r1", "order.rejected", "rejected", "unknown_sku", 1},
	    {"f1", "order.failed", "failed", "boom", 2},
	    {"h1", "order.cancelled", "cancelled", NULL, 0},
	    {"x1", "order.failed", "failed", "lease expired", 2},
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		assert_int_equal(events_of(want[i].id), 1);
		store_notification_t e = event_of(f->s, want[i].id, 0);
		order_t o = get(f->s, want[i].id);
		assert_string_equal(e.type, want[i].type);
		assert_string_equal(order_status_name(e.order.status),
		                    want[i].status);
		if (want[i].reason)
			assert_string_equal(e.order.reason, want[i].reason);
		else
			assert_null(e.order.reason);
		assert_int_equal(e.order.attempts, want[i].attempts);
		assert_int_equal(e.order.finished_at, o.finished_at);
		assert_int_equal(e.order.updated_at, o.updated_at);
		assert_int_equal(e.order.created_at, o.created_at);
		assert_string_equal(e.order.customer, o.customer);
		assert_int_equal(e.order.n_items, o.n_items);
		assert_true(e.created_at >= o.finished_at);
		assert_int_equal(e.status, NOTIFY_PENDING);
		assert_int_equal(e.attempts, 0);
		assert_string_equal(e.acked, "");
		assert_null(e.last_error);
		order_clear(&o);
		store_notifications_clear(&e, 1);
	}

	/* requeue (no event), then complete: a second event, and the first
	 * keeps its snapshot. */
	assert_int_equal(store_order_requeue(f->s, "f1", NULL), 0);
	assert_int_equal(events_of("f1"), 1);
	complete(f->s, "f1", "A:1");
	assert_int_equal(events_of("f1"), 2);
	store_notification_t e0 = event_of(f->s, "f1", 0);
	store_notification_t e1 = event_of(f->s, "f1", 1);
	assert_string_equal(e0.type, "order.failed");
	assert_string_equal(e0.order.reason, "boom");
	assert_string_equal(e1.type, "order.completed");
	assert_null(e1.order.reason);
	assert_true(e1.seq > e0.seq);
	store_notifications_clear(&e0, 1);
	store_notifications_clear(&e1, 1);
	/* An order's list pages like the others: one past the page says
	 * more; an order without events has an empty one. */
	store_notification_t *v;
	size_t nv;
	bool more;
	assert_int_equal(store_notify_by_order(f->s, "f1", 1, &v, &nv, &more),
	                 0);
	assert_int_equal(nv, 1);
	assert_true(more);
	assert_string_equal(v[0].type, "order.failed");
	store_notifications_free(v, nv);
	assert_int_equal(
	    store_notify_by_order(f->s, "no-such", 10, &v, &nv, &more), 0);
	assert_int_equal(nv, 0);
	assert_false(more);
	store_notifications_free(v, nv);
	assert_int_equal(raw_int("SELECT count(*) FROM notifications"), 6);
	assert_int_equal(verify(f->s, NULL), 0);
}

static void test_disabled_writes_nothing(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 10);
	submit1(f->s, "o1", "A:1");
	complete(f->s, "o1", "A:1");
	submit1(f->s, "o2", "A:1");
	assert_int_equal(store_order_cancel(f->s, "o2", NULL), 0);
	assert_int_equal(raw_int("SELECT count(*) FROM notifications"), 0);
	store_notify_stats_t st;
	assert_int_equal(store_notify_stats(f->s, &st), 0);
	assert_int_equal(st.count[NOTIFY_PENDING], 0);
	assert_int_equal(st.oldest_pending_ms, 0);
}

/* n cancelled orders "<prefix><i>": n pending events. */
static void make_events(store_t *s, const char *prefix, int n)
{
	for (int i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof id, "%s%d", prefix, i);
		submit1(s, id, "A:1");
		assert_int_equal(store_order_cancel(s, id, NULL), 0);
	}
}

static void test_claim_fenced(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(store_outbox_enable(f->s), 0);
	make_events(f->s, "o", 3);
	store_notification_t a[4], b[4];
	size_t na = 0, nb = 9;
	assert_int_equal(store_notify_claim(f->s, "r1", 60000, 2, a, &na), 0);
	assert_int_equal(na, 2);
	assert_true(a[0].seq < a[1].seq);
	assert_int_equal(a[0].fence, a[1].fence);
	assert_int_equal(a[0].attempts, 1);
	assert_true(a[0].lease_until > 0);
	assert_string_equal(a[0].order.id, "o0");
	/* The claimed ones are not due for anyone else. */
	assert_int_equal(store_notify_claim(f->s, "r2", 60000, 4, b, &nb), 0);
	assert_int_equal(nb, 1);
	assert_string_equal(b[0].order.id, "o2");
	assert_true(b[0].fence > a[0].fence);
	store_notifications_clear(b, nb);
	assert_int_equal(store_notify_claim(f->s, "r2", 60000, 4, b, &nb), 0);
	assert_int_equal(nb, 0);
	/* r1 stalls past its lease: the event is due again, r2 takes it
	 * with a fresh fence, and r1's late write is refused. */
	char sql[128];
	snprintf(sql, sizeof sql,
	         "UPDATE notifications SET next_at = 1, lease_until = 1"
	         " WHERE seq = %lld",
	         (long long)a[0].seq);
	raw_exec(sql);
	assert_int_equal(store_notify_claim(f->s, "r2", 60000, 4, b, &nb), 0);
	assert_int_equal(nb, 1);
	assert_int_equal(b[0].seq, a[0].seq);
	assert_true(b[0].fence > a[0].fence);
	assert_int_equal(b[0].attempts, 2);
	assert_int_equal(store_notify_delivered(f->s, a[0].seq, a[0].fence, ""),
	                 OD_EFENCE);
	assert_int_equal(store_notify_retry(f->s, a[0].seq, a[0].fence, 5, 0,
	                                    "late", "", NULL),
	                 OD_EFENCE);
	assert_int_equal(
	    store_notify_release(f->s, a[0].seq, a[0].fence, 0, NULL, ""),
	    OD_EFENCE);
	assert_int_equal(
	    store_notify_delivered(f->s, b[0].seq, b[0].fence, "http://a:1/x"),
	    0);
	/* Once delivered, not even the current holder writes again. */
	assert_int_equal(store_notify_delivered(f->s, b[0].seq, b[0].fence, ""),
	                 OD_EFENCE);
	store_notification_t g;
	assert_int_equal(store_notify_get(f->s, b[0].seq, &g), 0);
	assert_int_equal(g.status, NOTIFY_DELIVERED);
	assert_true(g.delivered_at > 0);
	assert_int_equal(g.lease_until, 0);
	assert_string_equal(g.acked, "http://a:1/x");
	store_notifications_clear(&g, 1);
	/* r1's other claim is still its own. */
	assert_int_equal(store_notify_delivered(f->s, a[1].seq, a[1].fence, ""),
	                 0);
	store_notifications_clear(a, na);
	store_notifications_clear(b, nb);
	assert_int_equal(store_notify_get(f->s, 999999, &g), OD_ENOTFOUND);
}

static void test_retry_dead_release_redeliver(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(store_outbox_enable(f->s), 0);
	make_events(f->s, "o", 1);
	store_notification_t a[1];
	size_t n = 0;
	bool dead = true;
	assert_int_equal(store_notify_claim(f->s, "r", 60000, 1, a, &n), 0);
	assert_int_equal(n, 1);
	int64_t seq = a[0].seq;
	/* An open circuit hands it back: the attempt is not counted. */
	assert_int_equal(store_notify_release(f->s, seq, a[0].fence, 0,
	                                      "circuit open", "http://a/"),
	                 0);
	store_notifications_clear(a, n);
	assert_int_equal(store_notify_claim(f->s, "r", 60000, 1, a, &n), 0);
	assert_int_equal(a[0].attempts, 1);
	assert_string_equal(a[0].acked, "http://a/");
	assert_string_equal(a[0].last_error, "circuit open");
	/* A failure with attempts left: pending, due after the delay. */
	assert_int_equal(store_notify_retry(f->s, seq, a[0].fence, 2, 60000,
	                                    "http 500", "http://a/", &dead),
	                 0);
	assert_false(dead);
	store_notifications_clear(a, n);
	assert_int_equal(store_notify_claim(f->s, "r", 60000, 1, a, &n), 0);
	assert_int_equal(n, 0);
	raw_exec("UPDATE notifications SET next_at = 1");
	assert_int_equal(store_notify_claim(f->s, "r", 60000, 1, a, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].attempts, 2);
	/* Out of attempts: dead, the last error kept (cut to its cap). */
	char big[STORE_NOTIFY_ERROR_MAX + 100];
	memset(big, 'e', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(store_notify_retry(f->s, seq, a[0].fence, 2, 0, big,
	                                    "http://a/", &dead),
	                 0);
	assert_true(dead);
	store_notifications_clear(a, n);
	store_notification_t g;
	assert_int_equal(store_notify_get(f->s, seq, &g), 0);
	assert_int_equal(g.status, NOTIFY_DEAD);
	assert_int_equal(strlen(g.last_error), STORE_NOTIFY_ERROR_MAX);
	store_notifications_clear(&g, 1);
	raw_exec("UPDATE notifications SET next_at = 1");
	assert_int_equal(store_notify_claim(f->s, "r", 60000, 1, a, &n), 0);
	assert_int_equal(n, 0);
	/* Redeliver: pending, attempts 0, due now, every endpoint again. */
	assert_int_equal(store_notify_redeliver(f->s, seq, &g), 0);
	assert_int_equal(g.status, NOTIFY_PENDING);
	assert_int_equal(g.attempts, 0);
	assert_string_equal(g.acked, "");
	assert_string_equal(g.order.id, "o0");
	store_notifications_clear(&g, 1);
	assert_int_equal(store_notify_redeliver(f->s, seq, NULL), OD_ESTATE);
	assert_int_equal(store_notify_redeliver(f->s, seq + 100, NULL),
	                 OD_ENOTFOUND);
	assert_int_equal(store_notify_claim(f->s, "r", 60000, 1, a, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_notify_delivered(f->s, seq, a[0].fence, ""), 0);
	store_notifications_clear(a, n);
	/* A delivered one can be redelivered too. */
	assert_int_equal(store_notify_redeliver(f->s, seq, NULL), 0);
	assert_int_equal(store_notify_get(f->s, seq, &g), 0);
	assert_int_equal(g.status, NOTIFY_PENDING);
	assert_int_equal(g.delivered_at, 0);
	store_notifications_clear(&g, 1);
}

static void test_prune_only_delivered(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(store_outbox_enable(f->s), 0);
	make_events(f->s, "o", 6);
	store_notification_t a[6];
	size_t n = 0;
	assert_int_equal(store_notify_claim(f->s, "r", 60000, 6, a, &n), 0);
	assert_int_equal(n, 6);
	/* o0..o2 delivered, o3 dead, o4 back to pending, o5 leased. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    store_notify_delivered(f->s, a[i].seq, a[i].fence, ""), 0);
	assert_int_equal(
	    store_notify_retry(f->s, a[3].seq, a[3].fence, 1, 0, "x", "", NULL),
	    0);
	assert_int_equal(
	    store_notify_release(f->s, a[4].seq, a[4].fence, 0, NULL, ""), 0);
	store_notifications_clear(a, n);
	/* Everything is old; only o0 and o1 were delivered long ago. */
	raw_exec("UPDATE notifications SET created_at = 1000, next_at = 1000");
	raw_exec("UPDATE notifications SET delivered_at = 1000"
	         " WHERE order_id IN ('o0', 'o1')");
	size_t pruned = 9;
	assert_int_equal(store_notify_prune(f->s, 3600000, 1, &pruned), 0);
	assert_int_equal(pruned, 1); /* bounded batch */
	assert_int_equal(store_notify_prune(f->s, 3600000, 100, &pruned), 0);
	assert_int_equal(pruned, 1);
	assert_int_equal(store_notify_prune(f->s, 3600000, 100, &pruned), 0);
	assert_int_equal(pruned, 0);
	assert_int_equal(events_of("o0") + events_of("o1"), 0);
	for (int i = 2; i < 6; i++) {
		char id[8];
		snprintf(id, sizeof id, "o%d", i);
		assert_int_equal(events_of(id), 1);
	}
	/* Retention 0 takes every delivered one, still no other. */
	assert_int_equal(store_notify_prune(f->s, 0, 100, &pruned), 0);
	assert_int_equal(pruned, 1);
	assert_int_equal(raw_int("SELECT count(*) FROM notifications"), 3);

	store_notify_stats_t st;
	assert_int_equal(store_notify_stats(f->s, &st), 0);
	assert_int_equal(st.count[NOTIFY_PENDING], 2);
	assert_int_equal(st.count[NOTIFY_DELIVERED], 0);
	assert_int_equal(st.count[NOTIFY_DEAD], 1);
	assert_true(st.oldest_pending_ms > 1000000);
}

static void test_list_pages(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(store_outbox_enable(f->s), 0);
	make_events(f->s, "o", 5);
	store_notification_t *v;
	size_t n;
	bool more;
	assert_int_equal(
	    store_notify_list(f->s, NOTIFY_PENDING, 0, 2, &v, &n, &more), 0);
	assert_int_equal(n, 2);
	assert_true(more);
	int64_t after = v[1].seq;
	store_notifications_free(v, n);
	assert_int_equal(
	    store_notify_list(f->s, NOTIFY_PENDING, after, 10, &v, &n, &more),
	    0);
	assert_int_equal(n, 3);
	assert_false(more);
	assert_string_equal(v[0].order.id, "o2");
	store_notifications_free(v, n);
	assert_int_equal(
	    store_notify_list(f->s, NOTIFY_DEAD, 0, 10, &v, &n, &more), 0);
	assert_int_equal(n, 0);
	store_notifications_free(v, n);
	char id[STORE_NOTIFY_ID_MAX + 1];
	int64_t seq = 0;
	store_notify_id(42, id);
	assert_string_equal(id, "ev_42");
	assert_int_equal(store_notify_id_parse(id, &seq), 0);
	assert_int_equal(seq, 42);
	assert_int_equal(store_notify_id_parse("ev_", &seq), OD_EINVAL);
	assert_int_equal(store_notify_id_parse("ev_042", &seq), OD_EINVAL);
	assert_int_equal(store_notify_id_parse("ev_1x", &seq), OD_EINVAL);
	assert_int_equal(store_notify_id_parse("42", &seq), OD_EINVAL);
	assert_int_equal(store_notify_id_parse("ev_99999999999999999999", &seq),
	                 OD_EINVAL);
	/* Arguments are checked once, before any backend runs. */
	assert_int_equal(
	    store_notify_list(f->s, NOTIFY_STATUS_COUNT, 0, 10, &v, &n, &more),
	    OD_EINVAL);
	assert_int_equal(
	    store_notify_by_order(f->s, "bad id", 10, &v, &n, &more),
	    OD_EINVAL);
	assert_int_equal(store_notify_by_order(f->s, "o1", 0, &v, &n, &more),
	                 OD_EINVAL);
	assert_int_equal(store_notify_retry(f->s, 1, 1, 0, 0, "x", "", NULL),
	                 OD_EINVAL);
	assert_int_equal(store_notify_delivered(f->s, 1, 1, NULL), OD_EINVAL);
	assert_int_equal(
	    store_notify_claim(f->s, "bad owner", 1000, 1, NULL, &n),
	    OD_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_every_terminal_path),  T(test_disabled_writes_nothing),
	    T(test_claim_fenced),         T(test_retry_dead_release_redeliver),
	    T(test_prune_only_delivered), T(test_list_pages),
	};
	const char *be = getenv("ORDERD_TEST_BACKEND");
	return cmocka_run_group_tests_name(be ? be : "sqlite", tests, setup_all,
	                                   NULL);
}
