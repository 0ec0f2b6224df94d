/*
 * postgres_product: products and stock levels for the postgres store
 * backend. Every stock change made here is recorded as an adjustment in the
 * same transaction (one statement), so stock stays auditable (G5).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/err.h"

static int row_product(const PGresult *res, int row, product_t *ret)
{
	product_t p;
	memset(&p, 0, sizeof p);
	if (!pgb_get_str(res, row, 0, p.sku, sizeof p.sku) ||
	    !pgb_get_i64(res, row, 1, &p.stock) ||
	    !pgb_get_i64(res, row, 2, &p.updated_at))
		return OD_EINTERNAL;
	*ret = p;
	return 0;
}

static const pgp_stmt_t stmt_product_ensure = {
    .name = "product_ensure",
    .sql = "INSERT INTO products (sku, stock, updated_at)"
           " VALUES ($1, 0, " PGB_NOW_MS ")"
           " ON CONFLICT (sku) DO NOTHING",
    .nparams = 1,
};

static const pgp_stmt_t stmt_product_lock = {
    .name = "product_lock",
    .sql = "SELECT stock FROM products WHERE sku = $1"
           " FOR UPDATE",
    .nparams = 1,
};

static const pgp_stmt_t stmt_product_set = {
    .name = "product_set",
    .sql = PGB_WITH_NOW ", u AS (UPDATE products"
                        " SET stock = $2::bigint, updated_at = " PGB_NOW
                        " WHERE sku = $1 RETURNING sku, stock, updated_at),"
                        " a AS (INSERT INTO adjustments (sku, delta,"
                        " created_at) SELECT sku, $3::bigint, updated_at"
                        " FROM u WHERE $3::bigint <> 0)"
                        " SELECT sku, stock, updated_at FROM u",
    .nparams = 3,
};

int pgb_product_set(void *h, const char *sku, int64_t stock, product_t *ret)
{
	pgb_store_t *b = h;
	pgc_t *c;
	int rc = pgb_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *res = NULL;
	product_t p;
	const char *p1[1] = {sku};
	rc = pgc_cmd(c, "BEGIN");
	if (rc < 0)
		goto out;
	/* Make sure the row exists (stock 0, no adjustment needed), then
	 * lock it: the delta is computed against the stock we hold. */
	rc = pgc_exec(c, &stmt_product_ensure, p1, &res);
	if (rc < 0)
		goto rollback;
	PQclear(res);
	res = NULL;
	rc = pgc_exec(c, &stmt_product_lock, p1, &res);
	if (rc < 0)
		goto rollback;
	int64_t old;
	rc = OD_EINTERNAL;
	if (PQntuples(res) != 1 || !pgb_get_i64(res, 0, 0, &old))
		goto rollback;
	PQclear(res);
	res = NULL;
	char sbuf[24], dbuf[24];
	pgb_fmt_i64(sbuf, sizeof sbuf, stock);
	pgb_fmt_i64(dbuf, sizeof dbuf, stock - old);
	const char *p3[3] = {sku, sbuf, dbuf};
	rc = pgc_exec(c, &stmt_product_set, p3, &res);
	if (rc < 0)
		goto rollback;
	rc = OD_EINTERNAL;
	if (PQntuples(res) != 1 || row_product(res, 0, &p) < 0)
		goto rollback;
	rc = pgc_commit(c);
	if (rc == 0 && ret)
		*ret = p;
	goto out;
rollback:
	pgc_rollback(c);
out:
	PQclear(res);
	pgp_put(b->pool, c);
	return rc;
}

static const pgp_stmt_t stmt_product_get = {
    .name = "product_get",
    .sql = "SELECT sku, stock, updated_at FROM products"
           " WHERE sku = $1",
    .nparams = 1,
};

int pgb_product_get(void *h, const char *sku, product_t *ret)
{
	pgb_store_t *b = h;
	PGresult *res;
	const char *p[1] = {sku};
	int rc = pgb_query(b, &stmt_product_get, p, PGB_LOST_RETRY, &res);
	if (rc == 0)
		rc = PQntuples(res) == 1 ? row_product(res, 0, ret)
		                         : OD_ENOTFOUND;
	PQclear(res);
	return rc;
}

static const pgp_stmt_t stmt_product_list = {
    .name = "product_list",
    .sql = "SELECT sku, stock, updated_at FROM products"
           " WHERE sku > $1 ORDER BY sku LIMIT $2::bigint",
    .nparams = 2,
};

int pgb_product_list(void *h, const char *after_sku, size_t limit,
                     product_t **ret_products, size_t *ret_n, bool *ret_more)
{
	pgb_store_t *b = h;
	char limbuf[24];
	pgb_fmt_i64(limbuf, sizeof limbuf, (int64_t)limit + 1);
	const char *p[2] = {after_sku, limbuf};
	PGresult *res;
	product_t *ps = NULL;
	int rc = pgb_query(b, &stmt_product_list, p, PGB_LOST_RETRY, &res);
	if (rc < 0)
		goto out;
	size_t rows = (size_t)PQntuples(res);
	size_t take = rows > limit ? limit : rows;
	rc = -ENOMEM;
	ps = calloc(take ? take : 1, sizeof *ps);
	if (!ps)
		goto out;
	for (size_t i = 0; i < take; i++) {
		rc = row_product(res, (int)i, &ps[i]);
		if (rc < 0)
			goto out;
	}
	*ret_products = ps;
	*ret_n = take;
	*ret_more = rows > limit;
	ps = NULL;
	rc = 0;
out:
	free(ps);
	PQclear(res);
	return rc;
}
