/*
 * sqlite_verify: the audit of G3-G5 (store_verify) for the SQLite backend.
 * Plain SQL queries, each looking for one kind of violation, all run in one
 * read transaction on a reader, so the audit sees a single consistent
 * snapshot while workers keep writing. Each offending row becomes one
 * readable line naming the order or sku.
 */
#include <stdio.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/err.h"

#define LINE_MAX_ 512

typedef struct check {
	const char *sql;
	/* Formats one row of sql into line. */
	void (*describe)(sqlite3_stmt *st, char *line, size_t len);
} check_t;

static const char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? (const char *)t : "(null)";
}

static void negative_stock(sqlite3_stmt *st, char *line, size_t len)
{
	snprintf(line, len, "product '%s': negative stock %lld", col(st, 0),
	         (long long)sqlite3_column_int64(st, 1));
}

static void not_conserved(sqlite3_stmt *st, char *line, size_t len)
{
	snprintf(line, len,
	         "product '%s': stock %lld != adjustments %lld - reserved %lld",
	         col(st, 0), (long long)sqlite3_column_int64(st, 1),
	         (long long)sqlite3_column_int64(st, 2),
	         (long long)sqlite3_column_int64(st, 3));
}

static void reserved_not_completed(sqlite3_stmt *st, char *line, size_t len)
{
	snprintf(line, len,
	         "order '%s': reservation of sku '%s' but order status is %s",
	         col(st, 0), col(st, 1),
	         sqlite3_column_type(st, 2) == SQLITE_NULL
	             ? "missing (no order)"
	             : col(st, 2));
}

static void item_not_reserved(sqlite3_stmt *st, char *line, size_t len)
{
	snprintf(line, len,
	         "order '%s': completed but item sku '%s' qty %lld has no"
	         " matching reservation",
	         col(st, 0), col(st, 1),
	         (long long)sqlite3_column_int64(st, 2));
}

static void reservation_not_item(sqlite3_stmt *st, char *line, size_t len)
{
	snprintf(line, len,
	         "order '%s': reservation of sku '%s' qty %lld matches no item",
	         col(st, 0), col(st, 1),
	         (long long)sqlite3_column_int64(st, 2));
}

static void terminal_twice(sqlite3_stmt *st, char *line, size_t len)
{
	snprintf(line, len,
	         "order '%s': reached a final outcome %lld times"
	         " (complete %lld, reject %lld)",
	         col(st, 0), (long long)sqlite3_column_int64(st, 1),
	         (long long)sqlite3_column_int64(st, 2),
	         (long long)sqlite3_column_int64(st, 3));
}

static void completed_unlogged(sqlite3_stmt *st, char *line, size_t len)
{
	snprintf(line, len,
	         "order '%s': status completed but %lld complete events",
	         col(st, 0), (long long)sqlite3_column_int64(st, 1));
}

static void orphan_reservation(sqlite3_stmt *st, char *line, size_t len)
{
	snprintf(line, len,
	         "order '%s': reservation of sku '%s' which is no product",
	         col(st, 0), col(st, 1));
}

static const check_t checks[] = {
    /* G4: stock never negative (the CHECK constraint should make this
     * impossible; the audit does not trust it). */
    {"SELECT sku, stock FROM products WHERE stock < 0 ORDER BY sku",
     negative_stock},
    /* G5: conservation per product. */
    {"SELECT p.sku, p.stock, COALESCE(a.total, 0), COALESCE(r.total, 0)"
     " FROM products p"
     " LEFT JOIN (SELECT sku, SUM(delta) AS total FROM adjustments"
     "  GROUP BY sku) a ON a.sku = p.sku"
     " LEFT JOIN (SELECT sku, SUM(qty) AS total FROM reservations"
     "  GROUP BY sku) r ON r.sku = p.sku"
     " WHERE p.stock != COALESCE(a.total, 0) - COALESCE(r.total, 0)"
     " ORDER BY p.sku",
     not_conserved},
    /* G3/G4: stock is held only by completed orders (the SQLite backend
     * takes stock and completes in the same transaction). */
    {"SELECT r.order_id, r.sku, o.status FROM reservations r"
     " LEFT JOIN orders o ON o.id = r.order_id"
     " WHERE o.status IS NULL OR o.status != 'completed'"
     " ORDER BY r.order_id, r.sku",
     reserved_not_completed},
    /* G4: a completed order holds exactly its items: every item has its
     * reservation ... */
    {"SELECT o.id, json_extract(j.value, '$.sku'),"
     " json_extract(j.value, '$.qty')"
     " FROM orders o, json_each(o.items) j"
     " WHERE o.status = 'completed' AND NOT EXISTS ("
     "  SELECT 1 FROM reservations r WHERE r.order_id = o.id"
     "  AND r.sku = json_extract(j.value, '$.sku')"
     "  AND r.qty = json_extract(j.value, '$.qty'))"
     " ORDER BY o.seq",
     item_not_reserved},
    /* ... and every reservation is one of its items. */
    {"SELECT r.order_id, r.sku, r.qty FROM reservations r"
     " JOIN orders o ON o.id = r.order_id"
     " WHERE o.status = 'completed' AND NOT EXISTS ("
     "  SELECT 1 FROM json_each(o.items) j"
     "  WHERE json_extract(j.value, '$.sku') = r.sku"
     "  AND json_extract(j.value, '$.qty') = r.qty)"
     " ORDER BY r.order_id, r.sku",
     reservation_not_item},
    /* G3: at most one final outcome per order in the event log. */
    {"SELECT order_id, COUNT(*), SUM(event = 'complete'),"
     " SUM(event = 'reject') FROM order_events"
     " WHERE event IN ('complete', 'reject')"
     " GROUP BY order_id HAVING COUNT(*) > 1 ORDER BY order_id",
     terminal_twice},
    /* G3: a completed order got there by exactly one logged completion. */
    {"SELECT o.id, 0 FROM orders o"
     " LEFT JOIN (SELECT DISTINCT order_id FROM order_events"
     "  WHERE event = 'complete') e ON e.order_id = o.id"
     " WHERE o.status = 'completed' AND e.order_id IS NULL"
     " ORDER BY o.seq",
     completed_unlogged},
    /* G5: a reservation must be for a product that exists. */
    {"SELECT r.order_id, r.sku FROM reservations r"
     " WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.sku = r.sku)"
     " ORDER BY r.order_id, r.sku",
     orphan_reservation},
};

int sqb_verify(void *b, store_violation_fn fn, void *arg,
               size_t *ret_violations)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	size_t violations = 0;
	int rc = sqb_read_begin(c, NULL);
	if (rc < 0)
		goto put;
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		sqlite3_stmt *st;
		/* Not cached: the audit is rare and these are large plans. */
		int src =
		    sqlite3_prepare_v2(c->db, checks[i].sql, -1, &st, NULL);
		if (src != SQLITE_OK) {
			rc = sqb_err(src);
			break;
		}
		while ((rc = sqb_step(st)) == 1) {
			char line[LINE_MAX_];
			checks[i].describe(st, line, sizeof line);
			violations++;
			if (fn)
				fn(arg, line);
		}
		sqlite3_finalize(st);
		if (rc < 0)
			break;
	}
	sqb_read_end(c);
put:
	sqb_reader_put(s, c);
	if (rc < 0)
		return rc;
	if (ret_violations)
		*ret_violations = violations;
	return 0;
}
