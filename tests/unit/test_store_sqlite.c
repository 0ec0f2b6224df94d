/*
 * test_store_sqlite: what only the SQLite backend has, through store.h:
 * migrations of a file, and recovery of the one writer connection. The
 * behaviour both backends share is the store contract,
 * test_store_contract.c. Every test gets its own database file under
 * /tmp, removed afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/order.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/failpoint.h"

typedef struct fixture {
	char path[64];
	char uri[80];
	store_t *s;
} fixture_t;

static void remove_db(const char *path)
{
	char p[96];
	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
}

static int open_store(fixture_t *f)
{
	store_options_t opt = {.replica_id = "test", .readers = 2};
	return store_open(f->uri, &opt, &f->s);
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof *f);
	assert_non_null(f);
	snprintf(f->path, sizeof f->path, "/tmp/orderd-test-sqlite-XXXXXX");
	int fd = mkstemp(f->path);
	assert_true(fd >= 0);
	close(fd); /* an empty file is an empty database */
	snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->path);
	assert_int_equal(open_store(f), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	store_free(f->s);
	remove_db(f->path);
	free(f);
	return 0;
}

/* Builds a canonical order the way the API does, from JSON text with items
 * given as "SKU:QTY,SKU:QTY" in any order. */
static order_t mkorder(const char *id, const char *customer, const char *items,
                       const char *metadata)
{
	char buf[2048];
	size_t off = (size_t)snprintf(buf, sizeof buf,
	                              "{\"id\":\"%s\",\"customer\":\"%s\","
	                              "\"items\":[",
	                              id, customer);
	const char *p = items;
	bool first = true;
	while (*p) {
		const char *colon = strchr(p, ':');
		assert_non_null(colon);
		char *end;
		long long qty = strtoll(colon + 1, &end, 10);
		off += (size_t)snprintf(buf + off, sizeof buf - off,
		                        "%s{\"sku\":\"%.*s\",\"qty\":%lld}",
		                        first ? "" : ",", (int)(colon - p), p,
		                        qty);
		first = false;
		p = *end == ',' ? end + 1 : end;
	}
	snprintf(buf + off, sizeof buf - off, "]%s%s}",
	         metadata ? ",\"metadata\":" : "", metadata ? metadata : "");
	json_error_t jerr;
	json_t *j = json_loads(buf, 0, &jerr);
	if (!j)
		fail_msg("bad test json %s: %s", buf, jerr.text);
	order_limits_t lim = {.max_items = 100, .max_metadata = 4096};
	order_t o;
	char err[256];
	if (order_from_json(j, &lim, "", &o, err, sizeof err) != 0)
		fail_msg("order_from_json(%s): %s", buf, err);
	json_decref(j);
	return o;
}

/* Submits one order and returns the outcome; the stored order is cleared
 * unless ret is given. */
static submit_outcome_t submit1(store_t *s, const char *id, const char *items,
                                order_t *ret)
{
	order_t o = mkorder(id, "cust-1", items, NULL);
	const order_t *arr[1] = {&o};
	store_submit_result_t r;
	assert_int_equal(store_submit(s, arr, 1, &r), 0);
	order_clear(&o);
	if (ret)
		*ret = r.order;
	else
		order_clear(&r.order);
	return r.outcome;
}

static void set_stock(store_t *s, const char *sku, int64_t stock)
{
	product_t p;
	assert_int_equal(store_product_set(s, sku, stock, &p), 0);
	assert_string_equal(p.sku, sku);
	assert_int_equal(p.stock, stock);
}

static int64_t stock_of(store_t *s, const char *sku)
{
	product_t p;
	assert_int_equal(store_product_get(s, sku, &p), 0);
	return p.stock;
}

static order_status_t status_of(store_t *s, const char *id)
{
	order_t o;
	assert_int_equal(store_order_get(s, id, &o), 0);
	order_status_t st = o.status;
	order_clear(&o);
	return st;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("raw sql %s: %s", sql, err);
	sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* ---- schema ---- */

static void test_migrations_idempotent(void **state)
{
	fixture_t *f = *state;
	assert_string_equal(store_backend_name(f->s), "sqlite");
	assert_int_equal(store_ping(f->s), 0);
	set_stock(f->s, "A", 7);
	assert_int_equal(submit1(f->s, "o1", "A:1", NULL), SUBMIT_CREATED);

	/* Reopening applies nothing and keeps the data. */
	store_free(f->s);
	assert_int_equal(open_store(f), 0);
	store_free(f->s);
	assert_int_equal(open_store(f), 0);
	/* One row per migration, each applied once: no version twice. */
	assert_int_equal(raw_int(f->path, "SELECT COUNT(*) = MAX(version)"
	                                  " AND COUNT(DISTINCT version) ="
	                                  " COUNT(*) FROM schema_version"),
	                 1);
	assert_int_equal(stock_of(f->s, "A"), 7);
	assert_int_equal(status_of(f->s, "o1"), ORDER_PENDING);
	assert_int_equal(submit1(f->s, "o1", "A:1", NULL), SUBMIT_REPLAYED);

	/* A file from a newer orderd is refused, untouched. */
	store_free(f->s);
	f->s = NULL;
	raw_exec(f->path, "INSERT INTO schema_version VALUES (999, 0)");
	store_t *s2 = (store_t *)0x1;
	store_options_t opt = {0};
	assert_int_equal(store_open(f->uri, &opt, &s2), OD_ESCHEMA);
	assert_ptr_equal(s2, (store_t *)0x1);
	raw_exec(f->path, "DELETE FROM schema_version WHERE version = 999");
	assert_int_equal(open_store(f), 0);
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
	assert_int_equal(submit1(f->s, "o1", "A:1", NULL), SUBMIT_CREATED);
	/* 1. A write that rolls back (a stale fence), whose ROLLBACK fails. */
	assert_int_equal(failpoint_init("sqlite_rollback_fail=1"), 0);
	assert_int_equal(store_release(f->s, "o1", 12345), OD_EFENCE);
	assert_int_equal(failpoint_init(NULL), 0);
	/* 2. The next writes work, and nothing of step 1 was kept. */
	set_stock(f->s, "A", 2);
	assert_int_equal(submit1(f->s, "o2", "A:1", NULL), SUBMIT_CREATED);
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
	    cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_writer_recovers_from_failed_rollback, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
