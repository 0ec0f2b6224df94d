/* Unit tests for http/conn_guard: phase deadlines, eviction order at the
 * limit, and that busy or closed connections are never killed. A fake
 * clock and a kill callback that records descriptors stand in for time
 * and shutdown(); the real thing runs in tests/fault/test_hostile.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#include "http/conn_guard.h"

static int64_t fake_now;
static int killed[64];
static size_t n_killed;

static int64_t now(void)
{
	/* Read on the guard's thread in test_thread_sweeps. */
	return __atomic_load_n(&fake_now, __ATOMIC_SEQ_CST);
}

static void record_kill(int fd, void *arg)
{
	(void)arg;
	assert_true(n_killed < 64);
	killed[n_killed++] = fd;
}

static conn_guard_t *guard(size_t max_open)
{
	conn_guard_t *g = NULL;
	conn_guard_options_t o = {
	    .max_open = max_open,
	    .head_ms = 1000,
	    .body_ms = 5000,
	    .now_ms = now,
	    .kill = record_kill,
	};

	fake_now = 100000;
	n_killed = 0;
	memset(killed, -1, sizeof killed);
	assert_int_equal(conn_guard_new(&o, &g), 0);
	return g;
}

static void test_head_deadline(void **state)
{
	(void)state;
	conn_guard_t *g = guard(100);
	conn_guard_entry_t *a = conn_guard_open(g, 3);
	fake_now += 500;
	conn_guard_entry_t *b = conn_guard_open(g, 4);
	fake_now += 499;
	conn_guard_sweep(g);
	assert_int_equal(n_killed, 0);
	fake_now += 1; /* a is at its bound, b is not */
	conn_guard_sweep(g);
	assert_int_equal(n_killed, 1);
	assert_int_equal(killed[0], 3);
	/* Killed once only, however often it is swept before it closes. */
	fake_now += 10000;
	conn_guard_sweep(g);
	assert_int_equal(n_killed, 2);
	assert_int_equal(killed[1], 4);
	conn_guard_stats_t st;
	conn_guard_stats(g, &st);
	assert_int_equal(st.open, 2);
	assert_int_equal(st.head_timeouts, 2);
	assert_int_equal(st.evicted, 0);
	conn_guard_close(g, a);
	conn_guard_close(g, b);
	conn_guard_stats(g, &st);
	assert_int_equal(st.open, 0);
	conn_guard_free(g);
}

static void test_phases(void **state)
{
	(void)state;
	conn_guard_t *g = guard(100);
	conn_guard_entry_t *e = conn_guard_open(g, 7);
	fake_now += 900;
	conn_guard_head_done(g, e, true);
	/* In body phase the head bound no longer applies, the body one does,
	 * counted from the end of the head. */
	fake_now += 4999;
	conn_guard_sweep(g);
	assert_int_equal(n_killed, 0);
	conn_guard_body_done(g, e);
	/* Busy: never killed, however long the server works. */
	fake_now += 1000000;
	conn_guard_sweep(g);
	assert_int_equal(n_killed, 0);
	/* Answered: waiting for the next head, from now. */
	conn_guard_answered(g, e);
	fake_now += 999;
	conn_guard_sweep(g);
	assert_int_equal(n_killed, 0);
	conn_guard_head_done(g, e, false); /* no body: busy at once */
	fake_now += 100000;
	conn_guard_sweep(g);
	assert_int_equal(n_killed, 0);
	conn_guard_answered(g, e);
	fake_now += 1000;
	conn_guard_sweep(g);
	assert_int_equal(n_killed, 1);
	/* Events after the kill change nothing until the close. */
	conn_guard_head_done(g, e, true);
	fake_now += 100000;
	conn_guard_sweep(g);
	assert_int_equal(n_killed, 1);
	conn_guard_close(g, e);
	conn_guard_free(g);
}

static void test_body_deadline(void **state)
{
	(void)state;
	conn_guard_t *g = guard(100);
	conn_guard_entry_t *e = conn_guard_open(g, 9);
	conn_guard_head_done(g, e, true);
	fake_now += 5000;
	conn_guard_sweep(g);
	assert_int_equal(n_killed, 1);
	assert_int_equal(killed[0], 9);
	conn_guard_stats_t st;
	conn_guard_stats(g, &st);
	assert_int_equal(st.body_timeouts, 1);
	assert_int_equal(st.head_timeouts, 0);
	conn_guard_close(g, e);
	conn_guard_free(g);
}

static void test_evicts_oldest_waiting(void **state)
{
	(void)state;
	conn_guard_t *g = guard(4);
	conn_guard_entry_t *e[8];

	e[0] = conn_guard_open(g, 10); /* will be busy */
	conn_guard_head_done(g, e[0], false);
	fake_now += 10;
	e[1] = conn_guard_open(g, 11); /* head since +10 */
	fake_now += 10;
	e[2] = conn_guard_open(g, 12); /* body since +30 (below) */
	fake_now += 10;
	e[3] = conn_guard_open(g, 13); /* idle keep-alive, since +40 */
	conn_guard_head_done(g, e[3], false);
	fake_now += 10;
	conn_guard_head_done(g, e[2], true);
	fake_now += 10;
	conn_guard_answered(g, e[3]);
	assert_int_equal(n_killed, 0);

	/* Full: the fifth evicts the oldest waiting one, e[1]. */
	e[4] = conn_guard_open(g, 14);
	assert_int_equal(n_killed, 1);
	assert_int_equal(killed[0], 11);
	/* The killed one no longer counts: the next evicts again, the
	 * oldest of body (since +30) and head (+40, +50): e[2]. */
	fake_now += 10;
	e[5] = conn_guard_open(g, 15);
	assert_int_equal(n_killed, 2);
	assert_int_equal(killed[1], 12);
	conn_guard_close(g, e[1]);
	conn_guard_close(g, e[2]);
	/* Then the idle keep-alive one, then the newest ones in order. */
	e[6] = conn_guard_open(g, 16);
	assert_int_equal(killed[2], 13);
	e[7] = conn_guard_open(g, 17);
	assert_int_equal(killed[3], 14);
	conn_guard_stats_t st;
	conn_guard_stats(g, &st);
	assert_int_equal(st.evicted, 4);
	assert_int_equal(st.open, 6);
	/* The busy one is never evicted: with every other one busy, no one
	 * is, and the new connection is let in past max_open. */
	conn_guard_close(g, e[3]);
	conn_guard_close(g, e[4]);
	conn_guard_head_done(g, e[5], false);
	conn_guard_head_done(g, e[6], false);
	conn_guard_head_done(g, e[7], false);
	conn_guard_entry_t *x = conn_guard_open(g, 18);
	conn_guard_entry_t *y = conn_guard_open(g, 19);
	assert_int_equal(n_killed, 5);
	assert_int_equal(killed[4], 18);
	conn_guard_close(g, x);
	conn_guard_close(g, y);
	for (int i = 0; i < 8; i++)
		if (i != 1 && i != 2 && i != 3 && i != 4)
			conn_guard_close(g, e[i]);
	conn_guard_stats(g, &st);
	assert_int_equal(st.open, 0);
	conn_guard_free(g);
}

static void test_null_and_bad_options(void **state)
{
	(void)state;
	conn_guard_t *g = NULL;
	conn_guard_options_t o = {.max_open = 0, .head_ms = 1, .body_ms = 1};
	assert_int_equal(conn_guard_new(&o, &g), -EINVAL);
	o.max_open = 1;
	o.head_ms = 0;
	assert_int_equal(conn_guard_new(&o, &g), -EINVAL);
	g = guard(2);
	/* An unguarded connection (entry NULL) is ignored everywhere. */
	conn_guard_head_done(g, NULL, true);
	conn_guard_body_done(g, NULL);
	conn_guard_answered(g, NULL);
	conn_guard_close(g, NULL);
	conn_guard_free(g);
	conn_guard_free(NULL);
}

static void test_thread_sweeps(void **state)
{
	(void)state;
	conn_guard_t *g = NULL;
	conn_guard_options_t o = {
	    .max_open = 10,
	    .head_ms = 1000,
	    .body_ms = 1000,
	    .tick_ms = 5,
	    .now_ms = now,
	    .kill = record_kill,
	};
	fake_now = 0;
	n_killed = 0;
	assert_int_equal(conn_guard_new(&o, &g), 0);
	conn_guard_entry_t *e = conn_guard_open(g, 21);
	conn_guard_stats_t st;
	__atomic_store_n(&fake_now, 2000, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 2000; i++) {
		conn_guard_stats(g, &st);
		if (st.head_timeouts == 1)
			break;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(st.head_timeouts, 1);
	conn_guard_close(g, e);
	conn_guard_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_head_deadline),
	    cmocka_unit_test(test_phases),
	    cmocka_unit_test(test_body_deadline),
	    cmocka_unit_test(test_evicts_oldest_waiting),
	    cmocka_unit_test(test_null_and_bad_options),
	    cmocka_unit_test(test_thread_sweeps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
