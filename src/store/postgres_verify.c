/*
 * postgres_verify: the audit's queries (store_verify) for the postgres
 * backend: one per invariant of store_check_t, all in one read-only
 * REPEATABLE READ transaction, so the checks see one snapshot while
 * workers keep writing. Each query returns the columns store_backend.h
 * gives for its check; store_verify.c has the words.
 */
#include <stdlib.h>

#include "store/postgres_int.h"
#include "util/err.h"

/* A check's statement and its column shape: ntext text columns first,
 * then nnum integers. */
typedef struct check {
	pgp_stmt_t stmt;
	int ntext, nnum;
} check_t;

/* Items of an order, one row per item (the canonical items text). */
#define ITEMS(o) "jsonb_array_elements(" o ".items::jsonb) AS j(v)"
#define ITEM_SKU "(j.v->>'sku')"
#define ITEM_QTY "((j.v->>'qty')::bigint)"

static const check_t checks[CHECK_COUNT_] = {
    [CHECK_NEGATIVE_STOCK] =
        {{.name = "verify_negative",
          .sql = "SELECT sku, stock FROM products WHERE stock < 0"
                 " ORDER BY sku"},
         1,
         1},
    [CHECK_NOT_CONSERVED] =
        {{.name = "verify_conserved",
          .sql = "SELECT p.sku, p.stock, coalesce(a.s, 0),"
                 " coalesce(r.s, 0) FROM products p"
                 " LEFT JOIN (SELECT sku, sum(delta) AS s"
                 "  FROM adjustments GROUP BY sku) a ON a.sku = p.sku"
                 " LEFT JOIN (SELECT sku, sum(qty) AS s"
                 "  FROM reservations GROUP BY sku) r ON r.sku = p.sku"
                 " WHERE p.stock <> coalesce(a.s, 0) - coalesce(r.s, 0)"
                 " ORDER BY p.sku"},
         1,
         3},
    [CHECK_RESERVED_NOT_COMPLETED] =
        {{.name = "verify_reserved_status",
          .sql = "SELECT r.order_id, r.sku, o.status FROM reservations r"
                 " JOIN orders o ON o.id = r.order_id"
                 " WHERE o.status <> 'completed' AND NOT (o.held"
                 "  AND o.status IN ('pending', 'processing'))"
                 " ORDER BY r.order_id, r.sku"},
         3,
         0},
    [CHECK_RESERVED_NO_ORDER] =
        {{.name = "verify_reserved_orphan",
          .sql = "SELECT r.order_id, r.sku FROM reservations r"
                 " WHERE NOT EXISTS (SELECT 1 FROM orders o"
                 "  WHERE o.id = r.order_id)"
                 " ORDER BY r.order_id, r.sku"},
         2,
         0},
    [CHECK_ITEM_NOT_RESERVED] =
        {{.name = "verify_item_reserved",
          .sql =
              "SELECT o.id, " ITEM_SKU ", " ITEM_QTY " FROM orders o, " ITEMS(
                  "o") " WHERE (o.status ="
                       " 'completed' OR o.held) AND NOT EXISTS (SELECT 1"
                       "  FROM reservations r WHERE r.order_id = o.id"
                       "  AND r.sku = " ITEM_SKU " AND r.qty = " ITEM_QTY ")"
                       " ORDER BY o.seq, 2"},
         2,
         1},
    [CHECK_RESERVATION_NOT_ITEM] =
        {{.name = "verify_reservation_item",
          .sql = "SELECT r.order_id, r.sku, r.qty FROM reservations r"
                 " JOIN orders o ON o.id = r.order_id"
                 " WHERE (o.status = 'completed' OR o.held)"
                 " AND NOT EXISTS ("
                 "  SELECT 1 FROM " ITEMS("o") " WHERE " ITEM_SKU
                                               "  = r.sku AND " ITEM_QTY
                                               " = r.qty)"
                                               " ORDER BY r.order_id, r.sku"},
         2,
         1},
    [CHECK_FINAL_TWICE] =
        {{.name = "verify_final_twice",
          .sql = "SELECT order_id, count(*),"
                 " count(*) FILTER (WHERE event = 'complete'),"
                 " count(*) FILTER (WHERE event = 'reject')"
                 " FROM order_events WHERE event IN ('complete', 'reject')"
                 " GROUP BY order_id HAVING count(*) > 1"
                 " ORDER BY order_id"},
         1,
         3},
    [CHECK_COMPLETED_UNLOGGED] =
        {{.name = "verify_completed_logged",
          .sql = "SELECT o.id FROM orders o WHERE o.status = 'completed'"
                 " AND NOT EXISTS (SELECT 1 FROM order_events e"
                 "  WHERE e.order_id = o.id AND e.event = 'complete')"
                 " ORDER BY o.seq"},
         1,
         0},
    [CHECK_ORPHAN_RESERVATION] =
        {{.name = "verify_reservation_product",
          .sql = "SELECT r.order_id, r.sku FROM reservations r"
                 " WHERE NOT EXISTS (SELECT 1 FROM products p"
                 "  WHERE p.sku = r.sku)"
                 " ORDER BY r.order_id, r.sku"},
         2,
         0},
};

/* Hands every row of res to fn in the check's shape. */
static int report(const check_t *ck, int check, const PGresult *res,
                  store_check_fn fn, void *arg)
{
	for (int r = 0; r < PQntuples(res); r++) {
		store_check_row_t row = {{NULL, NULL, NULL}, {0, 0, 0}};
		for (int k = 0; k < ck->ntext; k++)
			row.text[k] = PQgetisnull(res, r, k)
			                  ? NULL
			                  : PQgetvalue(res, r, k);
		for (int k = 0; k < ck->nnum; k++)
			if (!pgb_get_i64(res, r, ck->ntext + k, &row.num[k]))
				return OD_EINTERNAL;
		fn(arg, check, &row);
	}
	return 0;
}

int pgb_verify(void *h, store_check_fn fn, void *arg)
{
	pgb_store_t *b = h;
	pgc_t *c;
	int rc = pgb_conn(b, &c);
	if (rc < 0)
		return rc;
	/* One snapshot for every check, so they agree with each other. */
	rc = pgc_cmd(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc < 0)
		goto out;
	for (int i = 0; i < CHECK_COUNT_ && rc == 0; i++) {
		PGresult *res;
		rc = pgc_exec(c, &checks[i].stmt, NULL, &res);
		if (rc < 0)
			break;
		rc = report(&checks[i], i, res, fn, arg);
		PQclear(res);
	}
	pgc_rollback(c);
out:
	pgp_put(b->pool, c);
	return rc;
}
