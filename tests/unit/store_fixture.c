/*
 * store_fixture: the one backend-dependent part of the store contract
 * suites (test_store_contract.c, test_store_leases.c): a fresh store per
 * test on the backend ORDERD_TEST_BACKEND names, raw SQL underneath the
 * interface, and the helpers both suites use. See store_fixture.h.
 */
#include "store_fixture.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the fixture: one fresh store per test ---- */

bool is_pg;
static char pg_base[512]; /* a URI of the cluster's maintenance database */

static fixture_t *cur; /* the running test's fixture, for raw SQL */

/* pg_txn_pooling is set by setup_all for ORDERD_TEST_BACKEND=postgres_txn:
 * the same contract with every statement unnamed and every transaction
 * setting its own timeouts (the mode for a transaction-pooling PgBouncer,
 * here straight to the cluster; tests/integration/test_pgbouncer.py puts
 * a real one in between). */
store_options_t fixture_opts = {
    .replica_id = "contract",
    .busy_timeout_ms = 5000,
    .statement_timeout_ms = 10000,
    .connect_timeout_ms = 3000,
    .readers = 4,
};

void pg_exec_on(const char *uri, const char *sql)
{
	PGconn *c = PQconnectdb(uri);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", uri, PQerrorMessage(c));
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

int setup_all(void **state)
{
	const char *be = getenv("ORDERD_TEST_BACKEND");
	is_pg = be && (strcmp(be, "postgres") == 0 ||
	               strcmp(be, "postgres_txn") == 0);
	fixture_opts.pg_txn_pooling = be && strcmp(be, "postgres_txn") == 0;
	if (!is_pg)
		return 0;
	const char *dir = getenv("ORDERD_TEST_PGDIR");
	char path[512];
	snprintf(path, sizeof path, "%s/uri", dir ? dir : ".");
	FILE *f = fopen(path, "r");
	if (!f || !fgets(pg_base, sizeof pg_base, f)) {
		fprintf(stderr, "cannot read %s (is the pg fixture up?)\n",
		        path);
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	pg_base[strcspn(pg_base, "\r\n")] = '\0';
	return 0;
}

void pg_new_db(char *uri, size_t cap, char *name, size_t ncap)
{
	static int k;
	snprintf(name, ncap, "orderd_test_%d_%d", (int)getpid(), k++);
	char sql[128];
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
	pg_exec_on(pg_base, sql);
	const char *slash = strrchr(pg_base, '/');
	const char *q = strchr(slash, '?');
	snprintf(uri, cap, "%.*s/%s%s", (int)(slash - pg_base), pg_base, name,
	         q ? q : "");
}

void pg_drop_db(const char *name)
{
	char sql[160];
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)",
	         name);
	pg_exec_on(pg_base, sql);
}

int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof *f);
	assert_non_null(f);
	if (is_pg) {
		pg_new_db(f->uri, sizeof f->uri, f->db, sizeof f->db);
	} else {
		snprintf(f->path, sizeof f->path,
		         "/tmp/orderd-contract-XXXXXX");
		int fd = mkstemp(f->path);
		assert_true(fd >= 0);
		close(fd); /* an empty file is an empty database */
		snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->path);
	}
	assert_int_equal(store_open(f->uri, &fixture_opts, &f->s), 0);
	assert_string_equal(store_backend_name(f->s),
	                    is_pg ? "postgres" : "sqlite");
	cur = f;
	*state = f;
	return 0;
}

int teardown(void **state)
{
	fixture_t *f = *state;
	store_free(f->s);
	if (is_pg) {
		pg_drop_db(f->db);
	} else {
		char p[160];
		unlink(f->path);
		snprintf(p, sizeof p, "%s-wal", f->path);
		unlink(p);
		snprintf(p, sizeof p, "%s-shm", f->path);
		unlink(p);
	}
	cur = NULL;
	free(f);
	return 0;
}

/* Raw SQL on the test's store, outside the interface. The same text runs
 * on both backends: the schemas have the same tables and columns. */
void raw_exec(const char *sql)
{
	if (is_pg) {
		pg_exec_on(cur->uri, sql);
		return;
	}
	sqlite3 *db;
	assert_int_equal(sqlite3_open(cur->path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("raw sql %s: %s", sql, err);
	sqlite3_close(db);
}

/* The first column of the first row of sql, as an integer. */
int64_t raw_int(const char *sql)
{
	int64_t v = 0;
	if (is_pg) {
		PGconn *c = PQconnectdb(cur->uri);
		assert_int_equal(PQstatus(c), CONNECTION_OK);
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
			fail_msg("%s: %s", sql, PQerrorMessage(c));
		v = PQgetisnull(r, 0, 0)
		        ? -1
		        : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		PQfinish(c);
		return v;
	}
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(cur->path, &db), SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("raw sql %s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_type(st, 0) == SQLITE_NULL
	        ? -1
	        : sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* The store's clock in SQL, ms since the epoch. */
const char *now_sql(void)
{
	return is_pg ? "(extract(epoch from clock_timestamp()) * 1000)::bigint"
	             : "CAST(ROUND((julianday('now') - 2440587.5) * "
	               "86400000.0) AS INTEGER)";
}

/* ---- helpers on the interface ---- */

/* A canonical order from "SKU:QTY,SKU:QTY" (any order, as a client would
 * send it) through the same validation the API uses. */
order_t mkorder(const char *id, const char *customer, const char *items,
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

submit_outcome_t submit1(store_t *s, const char *id, const char *items)
{
	order_t o = mkorder(id, "cust-1", items, NULL);
	const order_t *arr[1] = {&o};
	store_submit_result_t r;
	assert_int_equal(store_submit(s, arr, 1, &r), 0);
	order_clear(&o);
	order_clear(&r.order);
	return r.outcome;
}

/* Submits n orders "<prefix><i>" of one item each, in one batch. */
void submit_many(store_t *s, const char *prefix, int n)
{
	order_t *os = calloc((size_t)n, sizeof *os);
	const order_t **arr = calloc((size_t)n, sizeof *arr);
	store_submit_result_t *r = calloc((size_t)n, sizeof *r);
	assert_true(os && arr && r);
	for (int i = 0; i < n; i++) {
		char id[48];
		snprintf(id, sizeof id, "%s%05d", prefix, i);
		os[i] = mkorder(id, "c", "A:1", NULL);
		arr[i] = &os[i];
	}
	assert_int_equal(store_submit(s, arr, (size_t)n, r), 0);
	for (int i = 0; i < n; i++) {
		assert_int_equal(r[i].outcome, SUBMIT_CREATED);
		order_clear(&r[i].order);
		order_clear(&os[i]);
	}
	free(os);
	free(arr);
	free(r);
}

void set_stock(store_t *s, const char *sku, int64_t stock)
{
	product_t p;
	assert_int_equal(store_product_set(s, sku, stock, &p), 0);
	assert_string_equal(p.sku, sku);
	assert_int_equal(p.stock, stock);
}

int64_t stock_of(store_t *s, const char *sku)
{
	product_t p;
	assert_int_equal(store_product_get(s, sku, &p), 0);
	return p.stock;
}

order_t get(store_t *s, const char *id)
{
	order_t o;
	assert_int_equal(store_order_get(s, id, &o), 0);
	return o;
}

order_status_t status_of(store_t *s, const char *id)
{
	order_t o = get(s, id);
	order_status_t st = o.status;
	order_clear(&o);
	return st;
}

/* Claims exactly one order, which must be id. */
store_claim_t claim1(store_t *s, const char *owner, int64_t lease_ms,
                     const char *id)
{
	store_claim_t c[1];
	size_t n = 99;
	assert_int_equal(store_claim(s, owner, lease_ms, 1, c, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(c[0].order.id, id);
	return c[0];
}

size_t claim_none(store_t *s)
{
	store_claim_t c[4];
	size_t n = 99;
	assert_int_equal(store_claim(s, "nobody", 30000, 4, c, &n), 0);
	store_claims_clear(c, n);
	return n;
}

process_outcome_t process1(store_t *s, const store_claim_t *c,
                           const char **ret_reason)
{
	store_process_result_t r;
	assert_int_equal(store_process(s, c, 1, &r), 0);
	if (ret_reason)
		*ret_reason = r.reason;
	return r.outcome;
}

/* How many reservations order id holds. */
int64_t reservations_of(const char *id)
{
	char sql[320];
	snprintf(sql, sizeof sql,
	         "SELECT COUNT(*) FROM reservations WHERE order_id = '%.64s'",
	         id);
	return raw_int(sql);
}

/* The lease columns are cleared once the order is no longer processing. */
void assert_lease_cleared(const char *id)
{
	char sql[320];
	snprintf(sql, sizeof sql,
	         "SELECT COUNT(*) FROM orders WHERE id = '%.64s'"
	         " AND lease_owner IS NULL AND lease_until = 0",
	         id);
	assert_int_equal(raw_int(sql), 1);
}

static void on_violation(void *arg, const char *what)
{
	violations_t *v = arg;
	if (v->n < 16)
		snprintf(v->lines[v->n], sizeof v->lines[0], "%s", what);
	v->n++;
}

/* Audits; unexpected lines are printed when v is NULL (nothing expected). */
size_t verify(store_t *s, violations_t *v)
{
	violations_t local = {0};
	if (!v)
		v = &local;
	size_t n = 99;
	assert_int_equal(store_verify(s, on_violation, v, &n), 0);
	assert_int_equal(n, v->n);
	for (size_t i = 0; i < v->n && i < 16 && v == &local; i++)
		print_message("unexpected violation: %s\n", v->lines[i]);
	return n;
}
