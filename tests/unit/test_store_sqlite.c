/*
 * test_store_sqlite: what only the SQLite backend has, through store.h:
 * migrations of a file, and recovery of the one writer connection. The
 * behaviour both backends share is the store contract
 * (test_store_contract.c, test_store_leases.c), whose fixture this suite
 * borrows: every test gets its own database file under /tmp.
 */
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/err.h"
#include "util/failpoint.h"

static int reopen(fixture_t *f)
{
	store_options_t opt = {.replica_id = "test", .readers = 2};
	return store_open(f->uri, &opt, &f->s);
}

/* ---- schema ---- */

static void test_migrations_idempotent(void **state)
{
	fixture_t *f = *state;
	assert_string_equal(store_backend_name(f->s), "sqlite");
	assert_int_equal(store_ping(f->s), 0);
	set_stock(f->s, "A", 7);
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);

	/* Reopening applies nothing and keeps the data. */
	store_free(f->s);
	assert_int_equal(reopen(f), 0);
	store_free(f->s);
	assert_int_equal(reopen(f), 0);
	/* One row per migration, each applied once: no version twice. */
	assert_int_equal(raw_int("SELECT COUNT(*) = MAX(version)"
	                         " AND COUNT(DISTINCT version) ="
	                         " COUNT(*) FROM schema_version"),
	                 1);
	assert_int_equal(stock_of(f->s, "A"), 7);
	assert_int_equal(status_of(f->s, "o1"), ORDER_PENDING);
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_REPLAYED);

	/* A file from a newer orderd is refused, untouched. */
	store_free(f->s);
	f->s = NULL;
	raw_exec("INSERT INTO schema_version VALUES (999, 0)");
	store_t *s2 = (store_t *)0x1;
	store_options_t opt = {0};
	assert_int_equal(store_open(f->uri, &opt, &s2), OD_ESCHEMA);
	assert_ptr_equal(s2, (store_t *)0x1);
	raw_exec("DELETE FROM schema_version WHERE version = 999");
	assert_int_equal(reopen(f), 0);
	assert_int_equal(stock_of(f->s, "A"), 7);
}

/* ---- the writer ---- */

/*
 * A ROLLBACK that fails leaves the writer inside a transaction; before,
 * every later BEGIN IMMEDIATE failed and the store was wedged for good.
 * The writer recovers on its next write, and the reset is counted.
 */
static void test_writer_recovers_from_failed_rollback(void **state)
{
	fixture_t *f = *state;
	set_stock(f->s, "A", 1);
	assert_int_equal(submit1(f->s, "o1", "A:1"), SUBMIT_CREATED);
	/* 1. A write that rolls back (a stale fence), whose ROLLBACK fails. */
	assert_int_equal(failpoint_init("sqlite_rollback_fail=1"), 0);
	assert_int_equal(store_release(f->s, "o1", 12345), OD_EFENCE);
	assert_int_equal(failpoint_init(NULL), 0);
	/* 2. The next writes work, and nothing of step 1 was kept. */
	set_stock(f->s, "A", 2);
	assert_int_equal(submit1(f->s, "o2", "A:1"), SUBMIT_CREATED);
	assert_int_equal(stock_of(f->s, "A"), 2);
	assert_int_equal(status_of(f->s, "o1"), ORDER_PENDING);
	store_stats_t st;
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_int_equal(st.resets, 1);
	/* 3. Many failed rollbacks in a row: still one repair each. */
	assert_int_equal(failpoint_init("sqlite_rollback_fail=1"), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(store_release(f->s, "o1", 12345), OD_EFENCE);
	}
	assert_int_equal(failpoint_init(NULL), 0);
	set_stock(f->s, "A", 3);
	assert_int_equal(store_stats(f->s, &st), 0);
	assert_int_equal(st.resets, 4);
	assert_int_equal(stock_of(f->s, "A"), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_migrations_idempotent),
	    T(test_writer_recovers_from_failed_rollback),
	};
	return cmocka_run_group_tests(tests, setup_all, NULL);
}
