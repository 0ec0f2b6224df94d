/*
 * sqlite_verify: the audit's queries (store_verify) for the SQLite
 * backend: one per invariant of store_check_t, all in one read transaction
 * on a reader, so the audit sees a single consistent snapshot while
 * workers keep writing. Each query returns the columns store_backend.h
 * gives for its check; store_verify.c has the words.
 */
#include "store/sqlite_int.h"
#include "util/err.h"

/* A check's query and its column shape: ntext text columns first, then
 * nnum integers. */
typedef struct check {
	const char *sql;
	int ntext, nnum;
} check_t;

#define ITEM_SKU "json_extract(j.value, '$.sku')"
#define ITEM_QTY "json_extract(j.value, '$.qty')"

static const check_t checks[CHECK_COUNT_] = {
    [CHECK_NEGATIVE_STOCK] = {"SELECT sku, stock FROM products"
                              " WHERE stock < 0 ORDER BY sku",
                              1, 1},
    [CHECK_NOT_CONSERVED] =
        {"SELECT p.sku, p.stock, COALESCE(a.total, 0),"
         " COALESCE(r.total, 0) FROM products p"
         " LEFT JOIN (SELECT sku, SUM(delta) AS total FROM adjustments"
         "  GROUP BY sku) a ON a.sku = p.sku"
         " LEFT JOIN (SELECT sku, SUM(qty) AS total FROM reservations"
         "  GROUP BY sku) r ON r.sku = p.sku"
         " WHERE p.stock != COALESCE(a.total, 0) - COALESCE(r.total, 0)"
         " ORDER BY p.sku",
         1, 3},
    [CHECK_RESERVED_NOT_COMPLETED] =
        {"SELECT r.order_id, r.sku, o.status FROM reservations r"
         " JOIN orders o ON o.id = r.order_id"
         " WHERE o.status != 'completed' AND NOT (o.held = 1"
         "  AND o.status IN ('pending', 'processing'))"
         " ORDER BY r.order_id, r.sku",
         3, 0},
    [CHECK_RESERVED_NO_ORDER] =
        {"SELECT r.order_id, r.sku FROM reservations r"
         " WHERE NOT EXISTS (SELECT 1 FROM orders o"
         "  WHERE o.id = r.order_id) ORDER BY r.order_id, r.sku",
         2, 0},
    [CHECK_ITEM_NOT_RESERVED] =
        {"SELECT o.id, " ITEM_SKU ", " ITEM_QTY
         " FROM orders o, json_each(o.items) j"
         " WHERE (o.status = 'completed' OR o.held = 1) AND NOT EXISTS ("
         "  SELECT 1 FROM reservations r WHERE r.order_id = o.id"
         "  AND r.sku = " ITEM_SKU " AND r.qty = " ITEM_QTY ")"
         " ORDER BY o.seq, 2",
         2, 1},
    [CHECK_RESERVATION_NOT_ITEM] =
        {"SELECT r.order_id, r.sku, r.qty FROM reservations r"
         " JOIN orders o ON o.id = r.order_id"
         " WHERE (o.status = 'completed' OR o.held = 1) AND NOT EXISTS ("
         "  SELECT 1 FROM json_each(o.items) j"
         "  WHERE " ITEM_SKU " = r.sku AND " ITEM_QTY " = r.qty)"
         " ORDER BY r.order_id, r.sku",
         2, 1},
    [CHECK_FINAL_TWICE] =
        {"SELECT order_id, COUNT(*), SUM(event = 'complete'),"
         " SUM(event = 'reject') FROM order_events"
         " WHERE event IN ('complete', 'reject')"
         " GROUP BY order_id HAVING COUNT(*) > 1 ORDER BY order_id",
         1, 3},
    [CHECK_COMPLETED_UNLOGGED] =
        {"SELECT o.id FROM orders o WHERE o.status = 'completed'"
         " AND NOT EXISTS (SELECT 1 FROM order_events e"
         "  WHERE e.order_id = o.id AND e.event = 'complete')"
         " ORDER BY o.seq",
         1, 0},
    [CHECK_ORPHAN_RESERVATION] =
        {"SELECT r.order_id, r.sku FROM reservations r"
         " WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.sku = r.sku)"
         " ORDER BY r.order_id, r.sku",
         2, 0},
};

/* Runs one check and hands every row to fn in the check's shape. */
static int run_check(sqb_conn_t *c, int check, store_check_fn fn, void *arg)
{
	const check_t *ck = &checks[check];
	sqlite3_stmt *st;
	/* Not cached: the audit is rare and these are large plans. */
	int src = sqlite3_prepare_v2(c->db, ck->sql, -1, &st, NULL);
	if (src != SQLITE_OK)
		return sqb_err(src);
	int rc;
	while ((rc = sqb_step(st)) == 1) {
		store_check_row_t row = {{NULL, NULL, NULL}, {0, 0, 0}};
		for (int k = 0; k < ck->ntext; k++)
			row.text[k] = (const char *)sqlite3_column_text(st, k);
		for (int k = 0; k < ck->nnum; k++)
			row.num[k] = sqlite3_column_int64(st, ck->ntext + k);
		fn(arg, check, &row);
	}
	sqlite3_finalize(st);
	return rc;
}

int sqb_verify(void *b, store_check_fn fn, void *arg)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	int rc = sqb_read_begin(c, NULL);
	if (rc == 0) {
		for (int i = 0; i < CHECK_COUNT_ && rc == 0; i++)
			rc = run_check(c, i, fn, arg);
		sqb_read_end(c);
	}
	sqb_reader_put(s, c);
	return rc < 0 ? rc : 0;
}
