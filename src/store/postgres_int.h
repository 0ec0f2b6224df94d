/*
 * postgres_int: module-private to the postgres store backend. The backend
 * handle, the prepared statements shared by postgres.c (orders, products),
 * postgres_lease.c (leases) and postgres_locks.c (named locks, audit), and
 * small helpers for parameters and rows.
 */
#ifndef ORDERD_STORE_POSTGRES_INT_H
#define ORDERD_STORE_POSTGRES_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/postgres_pool.h"
#include "store/store.h"

typedef struct pg_store {
	pgp_t *pool;
} pg_store_t;

/* Prepared statements; pg_stmts[] in postgres.c holds their SQL. */
enum pg_stmt {
	ST_SUBMIT = 0,
	ST_SUBMIT_READ,
	ST_GET,
	ST_ORDER_FENCE,
	ST_ORDERS_STATUS,
	ST_LIST,
	ST_REQUEUE,
	ST_CANCEL,
	ST_STATS_COUNT,
	ST_STATS_LIVE,
	ST_STATS_OLDEST,
	ST_PRODUCT_ENSURE,
	ST_PRODUCT_LOCK,
	ST_PRODUCT_SET,
	ST_PRODUCT_GET,
	ST_PRODUCT_LIST,
	ST_CLAIM,
	ST_PROCESS_ORDERS,
	ST_PROCESS_PRODUCTS,
	ST_PROCESS_APPLY,
	ST_RETRY,
	ST_RELEASE,
	ST_REAP,
	ST_LOCK_ACQUIRE,
	ST_LOCK_READ,
	ST_LOCK_RENEW,
	ST_LOCK_RELEASE,
	ST_LOCK_GET,
	ST_REPLICAS_SEEN,
	ST_VERIFY_NEGATIVE,
	ST_VERIFY_BALANCE,
	ST_VERIFY_RESERVED_STATUS,
	ST_VERIFY_RESERVED_ITEMS,
	ST_VERIFY_EVENTS,
	ST_COUNT_
};

/* A growing PostgreSQL array literal: {"a","b"}; every element quoted. */
typedef struct pg_array {
	char *s;
	size_t len, cap;
	size_t n;
} pg_array_t;

/* Appends elem (NULL-terminated text); 0 or -ENOMEM. */
int pg_array_add(pg_array_t *a, const char *elem);
int pg_array_add_i64(pg_array_t *a, int64_t v);
/* The finished literal (valid until the next add or pg_array_free); NULL
 * when out of memory. */
const char *pg_array_text(pg_array_t *a);
void pg_array_free(pg_array_t *a);

/* Parses column col of row as an int64; false when not an integer. */
bool pg_get_i64(const PGresult *res, int row, int col, int64_t *ret);
/* Copies column col into dst (size cap); false when it does not fit. */
bool pg_get_str(const PGresult *res, int row, int col, char *dst, size_t cap);

/* Checks out a connection for an ordinary call. */
int pg_conn(pg_store_t *b, pgc_t **ret);

/* Order rows have ORDER_COLS (postgres.c) first: 11 columns. */
#define N_ORDER_COLS 11

/* Formats v in decimal into buf. */
void pg_fmt_i64(char *buf, size_t cap, int64_t v);
/* Fills *ret (zeroed or cleared) from order columns 0..10 of row; the
 * caller clears it. */
int pg_row_order(const PGresult *res, int row, order_t *ret);

/* Processing under leases, in postgres_lease.c. */
int pg_claim(void *h, const char *owner, int64_t lease_ms, size_t max,
             store_claim_t *ret_claims, size_t *ret_n);
int pg_process(void *h, const store_claim_t *claims, size_t n,
               store_process_result_t *results);
int pg_retry(void *h, const char *id, int64_t fence, int max_attempts,
             int64_t delay_ms, const char *error, bool *ret_failed);
int pg_release(void *h, const char *id, int64_t fence);
int pg_reap(void *h, int max_attempts, size_t limit, size_t *ret_n);

/* Named locks and the audit, in postgres_locks.c. */
int pg_lock_acquire(void *h, const char *name, const char *owner,
                    int64_t ttl_ms, store_lock_t *ret);
int pg_lock_renew(void *h, const char *name, const char *owner, int64_t fence,
                  int64_t ttl_ms, store_lock_t *ret);
int pg_lock_release(void *h, const char *name, const char *owner,
                    int64_t fence);
int pg_lock_get(void *h, const char *name, store_lock_t *ret);
int pg_replicas_seen(void *h, const char *replica, int64_t window_ms,
                     char (*ret_ids)[ID_MAX + 1], size_t max, size_t *ret_n);
int pg_verify(void *h, store_violation_fn fn, void *arg,
              size_t *ret_violations);

#endif
