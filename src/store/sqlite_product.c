/*
 * sqlite_product: products and stock levels for the SQLite backend. Every
 * stock change made here is recorded as an adjustment in the same
 * transaction, so stock stays auditable (G5).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/err.h"

static int product_read(sqb_conn_t *c, const char *sku, product_t *ret)
{
	const sqb_param_t params[] = {SQB_TEXT(sku)};
	sqlite3_stmt *st;
	int rc = sqb_row(c, SQB_PRODUCT_GET,
	                 "SELECT sku, stock, updated_at FROM products"
	                 " WHERE sku = ?1",
	                 params, SQB_NPARAMS(params), &st);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return OD_ENOTFOUND;
	product_t p = {0};
	rc = sqb_col_ident(st, 0, p.sku);
	p.stock = sqlite3_column_int64(st, 1);
	p.updated_at = sqlite3_column_int64(st, 2);
	sqlite3_reset(st);
	if (rc == 0)
		*ret = p;
	return rc;
}

int sqb_product_set(void *b, const char *sku, int64_t stock, product_t *ret)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	product_t old = {0};
	rc = product_read(c, sku, &old);
	if (rc == OD_ENOTFOUND)
		rc = 0; /* a new product starts from 0 */
	if (rc < 0)
		goto rollback;
	const sqb_param_t set[] = {SQB_TEXT(sku), SQB_INT(stock), SQB_INT(now)};
	rc = sqb_exec(c, SQB_PRODUCT_UPSERT,
	              "INSERT INTO products (sku, stock, updated_at)"
	              " VALUES (?1, ?2, ?3) ON CONFLICT (sku) DO UPDATE"
	              " SET stock = excluded.stock,"
	              " updated_at = excluded.updated_at",
	              set, SQB_NPARAMS(set));
	if (rc < 0)
		goto rollback;
	if (stock != old.stock) {
		const sqb_param_t adj[] = {
		    SQB_TEXT(sku), SQB_INT(stock - old.stock), SQB_INT(now)};
		rc = sqb_exec(c, SQB_ADJUSTMENT_INSERT,
		              "INSERT INTO adjustments (sku, delta,"
		              " created_at) VALUES (?1, ?2, ?3)",
		              adj, SQB_NPARAMS(adj));
		if (rc < 0)
			goto rollback;
	}
	rc = sqb_write_commit(s);
	if (rc < 0)
		return rc;
	if (ret) {
		product_t p = {0};
		memcpy(p.sku, sku, strlen(sku) + 1);
		p.stock = stock;
		p.updated_at = now;
		*ret = p;
	}
	return 0;
rollback:
	sqb_write_rollback(s);
	return rc;
}

int sqb_product_get(void *b, const char *sku, product_t *ret)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	int rc = product_read(c, sku, ret);
	sqb_reader_put(s, c);
	return rc;
}

/* A row of SELECT sku, stock, updated_at into a product_t. */
static int row_product(sqlite3_stmt *st, void *elem)
{
	product_t *p = elem;
	int rc = sqb_col_ident(st, 0, p->sku);
	if (rc < 0)
		return rc;
	p->stock = sqlite3_column_int64(st, 1);
	p->updated_at = sqlite3_column_int64(st, 2);
	return 0;
}

int sqb_product_list(void *b, const char *after_sku, size_t limit,
                     product_t **ret_products, size_t *ret_n, bool *ret_more)
{
	sqb_store_t *s = b;
	/* A page is at most STORE_LIST_MAX rows (store.c): room for all. */
	product_t *ps = calloc(limit, sizeof *ps);
	size_t n = 0;
	bool more = false;
	if (!ps)
		return -ENOMEM;
	sqb_conn_t *c = sqb_reader_get(s);
	sqlite3_stmt *st;
	int rc = sqb_stmt(c, SQB_PRODUCT_LIST,
	                  "SELECT sku, stock, updated_at FROM products"
	                  " WHERE sku > ?1 ORDER BY sku LIMIT ?2",
	                  &st);
	if (rc < 0)
		goto put;
	if ((rc = sqb_bind_text(st, 1, after_sku)) < 0 ||
	    (rc = sqb_bind_int(st, 2, (int64_t)limit + 1)) < 0)
		sqlite3_reset(st);
	else
		rc =
		    sqb_page(st, ps, sizeof *ps, limit, row_product, &n, &more);
put:
	sqb_reader_put(s, c);
	if (rc < 0) {
		free(ps);
		return rc;
	}
	*ret_products = ps;
	*ret_n = n;
	*ret_more = more;
	return 0;
}
