/*
 * store_fixture: what the store contract suites share. CTest runs each
 * suite twice, with ORDERD_TEST_BACKEND=sqlite (a fresh file per test) and
 * =postgres (a fresh database per test on the throwaway cluster the pg
 * fixture starts). Nothing in a suite depends on the backend except
 * through this fixture: opening a fresh store, and raw SQL on it to look
 * underneath the interface or to damage the data on purpose (the schemas
 * have the same tables and columns, so the same SQL runs on both).
 */
#ifndef ORDERD_TESTS_STORE_FIXTURE_H
#define ORDERD_TESTS_STORE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/order.h"
#include "store/store.h"

typedef struct fixture {
	char uri[1024];
	char path[128]; /* sqlite: the file */
	char db[64];    /* postgres: the database */
	store_t *s;
} fixture_t;

extern bool is_pg; /* the backend under test is postgres */
/* The options every fixture store is opened with. */
extern store_options_t fixture_opts;

/* cmocka group setup, and per-test setup and teardown (*state is the
 * fixture_t). */
int setup_all(void **state);
int setup(void **state);
int teardown(void **state);

/* Raw SQL on the running test's store; raw_int returns the first column of
 * the first row (-1 for NULL). now_sql() is the store's clock in SQL. */
void raw_exec(const char *sql);
int64_t raw_int(const char *sql);
const char *now_sql(void);

/* postgres only: sql on a direct connection to uri (fails the test on an
 * error); a fresh empty database on the cluster, its URI and name into
 * uri and name; dropping one. */
void pg_exec_on(const char *uri, const char *sql);
void pg_new_db(char *uri, size_t cap, char *name, size_t ncap);
void pg_drop_db(const char *name);

/* A canonical order from "SKU:QTY,SKU:QTY" (any order, as a client would
 * send it) through the same validation the API uses. */
order_t mkorder(const char *id, const char *customer, const char *items,
                const char *metadata);
submit_outcome_t submit1(store_t *s, const char *id, const char *items);
/* Submits n orders "<prefix><i>" of one item each, in one batch. */
void submit_many(store_t *s, const char *prefix, int n);
void set_stock(store_t *s, const char *sku, int64_t stock);
int64_t stock_of(store_t *s, const char *sku);
order_t get(store_t *s, const char *id);
order_status_t status_of(store_t *s, const char *id);
/* Claims exactly one order, which must be id. */
store_claim_t claim1(store_t *s, const char *owner, int64_t lease_ms,
                     const char *id);
/* Claims what is due for nobody in particular; returns how many. */
size_t claim_none(store_t *s);
process_outcome_t process1(store_t *s, const store_claim_t *c,
                           const char **ret_reason);
int64_t reservations_of(const char *id);
/* The lease columns are cleared once the order is no longer processing. */
void assert_lease_cleared(const char *id);

typedef struct violations {
	size_t n;
	char lines[16][512];
} violations_t;
/* Audits; unexpected lines are printed when v is NULL (none expected). */
size_t verify(store_t *s, violations_t *v);

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

#endif
