/*
 * test_store_locks: named locks (leases with fencing tokens) in the store
 * contract, run unchanged against each backend (store_fixture.h says how):
 * one holder, not re-entrant; renew and release need owner and fence; on
 * expiry the next holder gets a larger fence and the stale one is refused;
 * fences shared with order leases; eight acquirers racing for one lock.
 */
#include "store_fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/err.h"

static void test_locks(void **state)
{
	fixture_t *f = *state;
	store_lock_t l, held;
	/* One holder. */
	assert_int_equal(store_lock_acquire(f->s, "res", "svc-a", 150, &l), 0);
	assert_string_equal(l.name, "res");
	assert_string_equal(l.owner, "svc-a");
	int64_t f1 = l.fence;
	assert_true(f1 > 0);
	assert_true(l.expires_at > 1600000000000LL);
	assert_int_equal(store_lock_acquire(f->s, "res", "svc-b", 10000, &held),
	                 OD_ELOCKHELD);
	assert_string_equal(held.owner, "svc-a");
	assert_int_equal(held.fence, f1);
	/* Not re-entrant. */
	assert_int_equal(store_lock_acquire(f->s, "res", "svc-a", 10000, &held),
	                 OD_ELOCKHELD);
	assert_int_equal(store_lock_get(f->s, "res", &held), 0);
	assert_string_equal(held.owner, "svc-a");
	/* Renew needs owner and fence. */
	assert_int_equal(
	    store_lock_renew(f->s, "res", "svc-a", f1 + 1, 150, &l),
	    OD_ELOCKLOST);
	assert_int_equal(store_lock_renew(f->s, "res", "svc-b", f1, 150, &l),
	                 OD_ELOCKLOST);
	assert_int_equal(store_lock_renew(f->s, "res", "svc-a", f1, 150, &l),
	                 0);
	assert_int_equal(l.fence, f1);

	/* Expiry: svc-a stalls past its ttl; svc-b gets a larger fence. */
	clock_sleep_ms(250);
	assert_int_equal(store_lock_get(f->s, "res", &held), OD_ENOTFOUND);
	assert_int_equal(store_lock_renew(f->s, "res", "svc-a", f1, 100, &l),
	                 OD_ELOCKLOST);
	assert_int_equal(store_lock_acquire(f->s, "res", "svc-b", 10000, &l),
	                 0);
	int64_t f2 = l.fence;
	assert_true(f2 > f1);
	/* The stale holder can neither renew nor release. */
	assert_int_equal(store_lock_release(f->s, "res", "svc-a", f1),
	                 OD_ELOCKLOST);
	assert_int_equal(store_lock_renew(f->s, "res", "svc-a", f1, 100, &l),
	                 OD_ELOCKLOST);

	/* Fences are shared with order leases: always growing. */
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	store_claim_t c = claim1(f->s, "w", 30000, "o1");
	assert_true(c.fence > f2);
	store_claims_clear(&c, 1);
	assert_int_equal(store_lock_acquire(f->s, "other", "svc-a", 1000, &l),
	                 0);
	assert_true(l.fence > c.fence);

	assert_int_equal(store_lock_release(f->s, "res", "svc-b", f2), 0);
	assert_int_equal(store_lock_get(f->s, "res", &held), OD_ENOTFOUND);
	assert_int_equal(store_lock_release(f->s, "res", "svc-b", f2),
	                 OD_ELOCKLOST);
	assert_int_equal(store_lock_acquire(f->s, "res", "svc-a", 1000, &l), 0);
	assert_true(l.fence > f2);
	assert_int_equal(store_lock_get(f->s, "never", &held), OD_ENOTFOUND);
}

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

/* Eight acquirers at once: exactly one wins, the others see it. */
static void test_lock_race(void **state)
{
	fixture_t *f = *state;
	racer_t rs[8];
	pthread_t t[8];
	for (int i = 0; i < 8; i++) {
		memset(&rs[i], 0, sizeof rs[i]);
		rs[i].s = f->s;
		snprintf(rs[i].owner, sizeof rs[i].owner, "r%d", i);
		assert_int_equal(
		    pthread_create(&t[i], NULL, race_thread, &rs[i]), 0);
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
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_locks),
	    T(test_lock_race),
	};
	const char *be = getenv("ORDERD_TEST_BACKEND");
	return cmocka_run_group_tests_name(be ? be : "sqlite", tests, setup_all,
	                                   NULL);
}
