/*
 * postgres_verify: the audit of G3-G5 (store_verify) for the postgres
 * store backend. One query per kind of violation, all in one read-only
 * REPEATABLE READ transaction, so the checks see one snapshot while
 * workers keep writing. Each offending row becomes one readable line.
 */
#include <stdio.h>

#include "store/postgres_int.h"
#include "util/err.h"

static const pgp_stmt_t stmt_verify_negative = {
    .name = "verify_negative",
    .sql = "SELECT sku, stock FROM products"
           " WHERE stock < 0",
    .nparams = 0,
};

static const pgp_stmt_t stmt_verify_balance = {
    .name = "verify_balance",
    .sql = "SELECT coalesce(p.sku, a.sku, r.sku), coalesce(p.stock, 0),"
           " coalesce(a.s, 0), coalesce(r.s, 0) FROM products p"
           " FULL JOIN (SELECT sku, sum(delta) AS s FROM adjustments"
           " GROUP BY sku) a ON a.sku = p.sku"
           " FULL JOIN (SELECT sku, sum(qty) AS s FROM reservations"
           " GROUP BY sku) r ON r.sku = coalesce(p.sku, a.sku)"
           " WHERE p.sku IS NULL"
           " OR p.stock <> coalesce(a.s, 0) - coalesce(r.s, 0)",
    .nparams = 0,
};

static const pgp_stmt_t stmt_verify_reserved_status = {
    .name = "verify_reserved_status",
    .sql = "SELECT r.order_id, r.sku, coalesce(o.status, '(missing)')"
           " FROM reservations r LEFT JOIN orders o ON o.id = r.order_id"
           " WHERE o.status IS DISTINCT FROM 'completed'",
    .nparams = 0,
};

/* jsonb compares the canonical items text with the reservations
 * independently of key order and whitespace. */
static const pgp_stmt_t stmt_verify_reserved_items = {
    .name = "verify_reserved_items",
    .sql = "SELECT o.id FROM orders o WHERE o.status = 'completed'"
           " AND o.items::jsonb IS DISTINCT FROM (SELECT coalesce("
           "jsonb_agg(jsonb_build_object('qty', r.qty, 'sku', r.sku)"
           " ORDER BY r.sku), '[]'::jsonb) FROM reservations r"
           " WHERE r.order_id = o.id)",
    .nparams = 0,
};

static const pgp_stmt_t stmt_verify_events = {
    .name = "verify_events",
    .sql = "SELECT order_id, count(*) FROM order_events"
           " WHERE event IN ('complete', 'reject')"
           " GROUP BY order_id HAVING count(*) > 1",
    .nparams = 0,
};

typedef struct check {
	const pgp_stmt_t *stmt;
	/* Formats one row of stmt (its first four columns in v) into line. */
	void (*describe)(const char *const *v, char *line, size_t cap);
} check_t;

static void negative_stock(const char *const *v, char *line, size_t cap)
{
	snprintf(line, cap, "product %s has negative stock %s", v[0], v[1]);
}

static void not_balanced(const char *const *v, char *line, size_t cap)
{
	snprintf(line, cap,
	         "product %s: stock %s != adjustments %s - reserved %s", v[0],
	         v[1], v[2], v[3]);
}

static void reserved_not_completed(const char *const *v, char *line, size_t cap)
{
	snprintf(line, cap,
	         "reservation (%s, %s) belongs to an order in status %s", v[0],
	         v[1], v[2]);
}

static void items_not_reserved(const char *const *v, char *line, size_t cap)
{
	snprintf(line, cap,
	         "completed order %s: reservations do not match its "
	         "items",
	         v[0]);
}

static void terminal_twice(const char *const *v, char *line, size_t cap)
{
	snprintf(line, cap, "order %s reached a terminal status %s times", v[0],
	         v[1]);
}

static const check_t checks[] = {
    {&stmt_verify_negative, negative_stock},
    {&stmt_verify_balance, not_balanced},
    {&stmt_verify_reserved_status, reserved_not_completed},
    {&stmt_verify_reserved_items, items_not_reserved},
    {&stmt_verify_events, terminal_twice},
};

int pgb_verify(void *h, store_violation_fn fn, void *arg,
               size_t *ret_violations)
{
	pgb_store_t *b = h;
	pgc_t *c;
	int rc = pgb_conn(b, &c);
	if (rc < 0)
		return rc;
	size_t violations = 0;
	/* One snapshot for every check, so they agree with each other. */
	rc = pgc_cmd(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		PGresult *res;
		rc = pgc_exec(c, checks[i].stmt, NULL, &res);
		if (rc < 0)
			goto rollback;
		for (int r = 0; r < PQntuples(res); r++) {
			const char *v[4] = {"", "", "", ""};
			for (int k = 0; k < 4 && k < PQnfields(res); k++)
				v[k] = PQgetvalue(res, r, k);
			char line[512];
			checks[i].describe(v, line, sizeof line);
			violations++;
			if (fn)
				fn(arg, line);
		}
		PQclear(res);
	}
	*ret_violations = violations;
rollback:
	pgc_rollback(c);
out:
	pgp_put(b->pool, c);
	return rc;
}
