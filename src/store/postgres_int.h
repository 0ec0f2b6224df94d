/*
 * postgres_int: module-private to the postgres store backend, shared by its
 * files: postgres.c (the backend table, open, free, ping and the helpers
 * declared here), postgres_order.c, postgres_lease.c, postgres_product.c,
 * postgres_lock.c, postgres_replica.c, postgres_failure.c,
 * postgres_notify.c, postgres_mark.c and
 * postgres_verify.c. It holds the
 * backend handle, the SQL fragments every file's statements use, the
 * helpers for parameters and rows, and the operations with the backend
 * table's signatures. Statements are not declared here: each file defines
 * its own beside the code that runs it (see postgres_pool.h).
 *
 * Names: the backend's symbols carry the prefix pgb_ (PGB_ for macros),
 * the pool's pgp_ and its connections' pgc_, the schema's pgs_; never pg_
 * or PQ, which are PostgreSQL's and libpq's namespaces.
 */
#ifndef ORDERD_STORE_POSTGRES_INT_H
#define ORDERD_STORE_POSTGRES_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/postgres_pool.h"
#include "store/store_backend.h"
#include "util/buf.h"

/*
 * A low-water mark of one queue scan (postgres_mark.c): the scan starts at
 * lo instead of the start of its index, except once every
 * PGB_MARK_RESCAN_MS, and lo trails what the scans saw by
 * PGB_MARK_MARGIN_MS. Shared by the replica's threads; mu guards both
 * fields and is never held with another lock.
 */
typedef struct pgb_mark {
	pthread_mutex_t mu;
	int64_t lo;           /* mu; store ms; INT64_MIN: none yet */
	int64_t full_mono_ms; /* mu; monotonic ms of the last full scan */
} pgb_mark_t;

/* The commit delay the mark allows for: a row committed up to this long
 * after the clock it read (its next_at) is still found by bounded scans. */
#define PGB_MARK_MARGIN_MS 250
/* A full scan at least this often: the bound on how long a straggler
 * below the mark waits, plus one claim (poll) interval. */
#define PGB_MARK_RESCAN_MS 5000

void pgb_mark_init(pgb_mark_t *m);
void pgb_mark_destroy(pgb_mark_t *m);
/* The lower bound for the next scan: INT64_MIN (and *ret_full true) when
 * this one is to be a full scan. */
int64_t pgb_mark_lower(pgb_mark_t *m, bool *ret_full);
/* After a scan that succeeded: nothing claimable is left below seen (the
 * statement's clock when it took fewer rows than it asked for, else the
 * key of the last row it took), save rows another scan holds locked. */
void pgb_mark_seen(pgb_mark_t *m, bool full, int64_t seen);
/* After a scan that failed: a full one is owed again at once. */
void pgb_mark_failed(pgb_mark_t *m, bool full);

typedef struct pgb_store {
	pgp_t *pool;
	pgb_mark_t claim_mark;    /* orders_pending, by next_at */
	pgb_mark_t reap_mark;     /* orders_leased, by lease_until */
	char replica[ID_MAX + 1]; /* recorded with the events it writes */
} pgb_store_t;

/* The replica id as a statement parameter: NULL when none was given. */
static inline const char *pgb_replica(const pgb_store_t *b)
{
	return b->replica[0] ? b->replica : NULL;
}

/*
 * The store clock in SQL. Every timestamp is the database's clock, read as
 * PGB_NOW_MS, once per statement (a CTE or a value passed on) so one statement
 * never mixes two instants. We use clock_timestamp(), not now(): now() is
 * the start of the transaction, which may be arbitrarily older than the
 * moment a row is written (pool waits, lock waits, a long batch). A lease
 * deadline computed from it would silently shrink, and a "still
 * unexpired?" test (lock renew) could succeed on a lease that has in fact
 * already run out.
 *
 * Fences: one sequence (fence_seq, CACHE 1, so values are increasing
 * across all sessions) shared by order leases and named locks.
 */
#define PGB_NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"
#define PGB_WITH_NOW "WITH now AS (SELECT " PGB_NOW_MS " AS ms) "
#define PGB_NOW "(SELECT ms FROM now)"
/* Columns 0..10 of every order row, in this order (pgb_row_order). */
#define PGB_ORDER_COLS                                                         \
	"seq, id, customer, items, metadata, status, attempts, reason, "       \
	"created_at, updated_at, finished_at"
#define PGB_LEASE_CLEAR "lease_owner = NULL, lease_until = 0"

/* A growing PostgreSQL array literal: {"a","b"}; every element quoted.
 * The quoting over util/buf; a zeroed pgb_array_t is an empty array. */
typedef struct pgb_array {
	buf_t b;
	size_t n; /* elements added */
} pgb_array_t;

/* Appends elem (NUL-terminated text); 0 or -ENOMEM. */
int pgb_array_add(pgb_array_t *a, const char *elem);
int pgb_array_add_i64(pgb_array_t *a, int64_t v);
/* The finished literal (valid until the next add or pgb_array_free); NULL
 * when out of memory. */
const char *pgb_array_text(pgb_array_t *a);
void pgb_array_free(pgb_array_t *a);

/* Parses column col of row as an int64; false when not an integer. */
bool pgb_get_i64(const PGresult *res, int row, int col, int64_t *ret);
/* Copies column col into dst (size cap); false when it does not fit. */
bool pgb_get_str(const PGresult *res, int row, int col, char *dst, size_t cap);

/* Checks out a connection for an ordinary call. */
int pgb_conn(pgb_store_t *b, pgc_t **ret);

/* What a statement whose connection broke in flight returns. */
typedef enum pgb_outcome {
	/* OD_ESTORE: a read, or a write that is harmless to repeat or undo
	 * itself (a claim's leases expire, a reap runs again). */
	PGB_LOST_RETRY,
	/* OD_EUNKNOWN: a write that may have committed; the caller reads
	 * back before it believes either way. */
	PGB_LOST_UNKNOWN,
} pgb_outcome_t;
/*
 * The one-statement call: checks out a connection, runs stmt with p in
 * autocommit and returns the connection. *ret_res is the result (the
 * caller PQclears it; NULL on error); it outlives the connection.
 */
int pgb_query(pgb_store_t *b, const pgp_stmt_t *stmt, const char *const *p,
              pgb_outcome_t lost, PGresult **ret_res);

/* Order rows have PGB_ORDER_COLS first: 11 columns. */
#define PGB_N_ORDER_COLS 11

/* Formats v in decimal into buf. */
void pgb_fmt_i64(char *buf, size_t cap, int64_t v);
/* Fills *ret (zeroed or cleared) from order columns 0..10 of row; the
 * caller clears it. */
int pgb_row_order(const PGresult *res, int row, order_t *ret);

/* Operations with the backend table's signatures (store_backend.h). */

/* Orders, in postgres_order.c. */
int pgb_submit(void *h, const order_t *const *orders, size_t n,
               store_submit_result_t *results);
int pgb_order_get(void *h, const char *id, order_t *ret);
int pgb_order_fence(void *h, const char *id, order_status_t *ret_status,
                    int64_t *ret_fence);
int pgb_orders_terminal(void *h, const char *const *ids, size_t n,
                        bool *ret_terminal);
int pgb_order_list(void *h, int status, int64_t after_seq, size_t limit,
                   order_t **ret_orders, size_t *ret_n, bool *ret_more);
int pgb_order_requeue(void *h, const char *id, order_t *ret);
int pgb_order_cancel(void *h, const char *id, order_t *ret);
int pgb_stats(void *h, bool terminal, store_stats_t *ret);

/* Processing under leases, in postgres_lease.c; deciding, in
 * postgres_process.c. */
int pgb_claim(void *h, const char *owner, int64_t lease_ms, size_t max,
              store_claim_t *ret_claims, size_t *ret_n);
int pgb_process(void *h, const store_claim_t *claims, size_t n, bool hold,
                store_process_result_t *results);
int pgb_take(void *h, const char *owner, size_t max, store_claim_t *ret_claims,
             size_t *ret_n, store_process_result_t *results);

/* The confirm step, in postgres_confirm.c. */
int pgb_finish(void *h, const store_finish_t *f, size_t n, bool *ret_fenced);
int pgb_renew(void *h, const char *const *ids, const int64_t *fences, size_t n,
              int64_t lease_ms, int64_t *ret_until);
/* In c's open transaction: returns the stock of every reservation of the
 * orders in ids (a text[] literal) and deletes them. */
int pgb_release_held(pgc_t *c, const char *ids, int64_t now);
/* Runs body(c, arg) in a transaction on a pooled connection: COMMIT when
 * it returns 0 (OD_EUNKNOWN when the COMMIT is lost), ROLLBACK when not. */
int pgb_tx(pgb_store_t *b, int (*body)(pgc_t *c, void *arg), void *arg);
int pgb_retry(void *h, const char *id, int64_t fence, int max_attempts,
              int64_t delay_ms, const char *error, bool *ret_failed);
int pgb_release(void *h, const char *id, int64_t fence);
int pgb_reap(void *h, int max_attempts, size_t limit, size_t *ret_n);

/* Dead-letter groups, in postgres_failure.c; the backfill runs once at
 * open (postgres.c), after the migrations. */
int pgb_failures_list(void *h, size_t limit, store_failure_t **ret,
                      size_t *ret_n);
int pgb_failures_requeue(void *h, const char *fingerprint, int64_t *ret_n);
int pgb_failures_backfill(pgb_store_t *b);

/* Products, in postgres_product.c. */
int pgb_product_set(void *h, const char *sku, int64_t stock, product_t *ret);
int pgb_product_get(void *h, const char *sku, product_t *ret);
int pgb_product_list(void *h, const char *after_sku, size_t limit,
                     product_t **ret_products, size_t *ret_n, bool *ret_more);

/* Named locks, in postgres_lock.c. */
int pgb_lock_acquire(void *h, const char *name, const char *owner,
                     int64_t ttl_ms, store_lock_t *ret);
int pgb_lock_renew(void *h, const char *name, const char *owner, int64_t fence,
                   int64_t ttl_ms, store_lock_t *ret);
int pgb_lock_release(void *h, const char *name, const char *owner,
                     int64_t fence);
int pgb_lock_get(void *h, const char *name, store_lock_t *ret);

/* Replica heartbeats, in postgres_replica.c. */
int pgb_replica_beat(void *h, const char *replica);
int pgb_order_history(void *h, const char *id, store_event_t *ret, size_t max,
                      size_t *ret_n);
int pgb_leases_by_owner(void *h, store_lease_group_t *ret, size_t max,
                        size_t *ret_n);
int pgb_replicas_list(void *h, int64_t window_ms, char (*ret_ids)[ID_MAX + 1],
                      size_t max, size_t *ret_n);

/* Notifications (the outbox), in postgres_notify.c. */
int pgb_outbox_enable(void *h);
int pgb_notify_claim(void *h, const char *owner, int64_t lease_ms, size_t max,
                     store_notification_t *ret, size_t *ret_n);
int pgb_notify_delivered(void *h, int64_t seq, int64_t fence,
                         const char *acked);
int pgb_notify_retry(void *h, int64_t seq, int64_t fence, int max_attempts,
                     int64_t delay_ms, const char *error, const char *acked,
                     bool *ret_dead);
int pgb_notify_release(void *h, int64_t seq, int64_t fence, int64_t delay_ms,
                       const char *error, const char *acked);
int pgb_notify_get(void *h, int64_t seq, store_notification_t *ret);
int pgb_notify_by_order(void *h, const char *order_id, size_t limit,
                        store_notification_t **ret, size_t *ret_n,
                        bool *ret_more);
int pgb_notify_list(void *h, int status, int64_t after_seq, size_t limit,
                    store_notification_t **ret, size_t *ret_n, bool *ret_more);
int pgb_notify_redeliver(void *h, int64_t seq, store_notification_t *ret);
int pgb_notify_prune(void *h, int64_t older_than_ms, size_t limit,
                     size_t *ret_n);
int pgb_notify_stats(void *h, store_notify_stats_t *ret);

/* The audit (store_verify), in postgres_verify.c. */
int pgb_verify(void *h, store_check_fn fn, void *arg);

#endif
