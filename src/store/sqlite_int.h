/*
 * sqlite_int: module-private declarations of the SQLite backend, shared by
 * its files: sqlite_conn.c (connections, the statement cache,
 * transactions), sqlite_schema.c (the schema and its migrations), sqlite.c
 * (the backend table, open, free, ping and the shared row helpers), and
 * the operations by noun: sqlite_order.c, sqlite_lease.c, sqlite_product.c,
 * sqlite_lock.c, sqlite_replica.c and sqlite_verify.c (the audit). Nothing
 * outside src/store/sqlite* includes this header.
 *
 * Lock order: a thread never holds wlock and rlock at the same time. A write
 * operation does all its reads on the writer connection, inside its own
 * transaction, so it never needs a reader.
 */
#ifndef ORDERD_STORE_SQLITE_INT_H
#define ORDERD_STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* The store clock in SQL: integer ms since the Unix epoch. SQLite 3.40 has
 * no unixepoch('subsec'); 'now' has ms resolution, ROUND undoes the double
 * rounding of julianday(). */
#define SQ_NOW_SQL                                                             \
	"CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"

/* Every cached statement has a slot, listed here by the file that runs it;
 * the SQL text is given where it is used, and each connection prepares it
 * once on first use. */
enum sqlite_stmt_id {
	/* sqlite_conn.c */
	SQ_BEGIN_IMMEDIATE = 0,
	SQ_BEGIN,
	SQ_COMMIT,
	SQ_ROLLBACK,
	SQ_NOW,
	SQ_SYNC_NORMAL,
	SQ_SYNC_FULL,
	/* sqlite.c */
	SQ_PING,
	SQ_NEXT_FENCE,
	SQ_EVENT_INSERT,
	/* sqlite_order.c */
	SQ_ORDER_INSERT,
	SQ_ORDER_BY_ID,
	SQ_ORDER_FENCE,
	SQ_ORDER_STATUS,
	SQ_ORDER_LIST_ALL,
	SQ_ORDER_LIST_STATUS,
	SQ_ORDER_REQUEUE,
	SQ_ORDER_CANCEL,
	SQ_STATS_COUNT,
	SQ_STATS_LIVE,
	SQ_STATS_OLDEST,
	/* sqlite_lease.c */
	SQ_CLAIM,
	SQ_SAVEPOINT,
	SQ_SAVEPOINT_RELEASE,
	SQ_SAVEPOINT_ROLLBACK,
	SQ_PROCESS_CHECK,
	SQ_PROCESS_STOCK,
	SQ_PROCESS_TAKE,
	SQ_RESERVATION_INSERT,
	SQ_PROCESS_FINISH,
	SQ_RETRY,
	SQ_RELEASE,
	SQ_REAP,
	/* sqlite_product.c */
	SQ_PRODUCT_GET,
	SQ_PRODUCT_UPSERT,
	SQ_ADJUSTMENT_INSERT,
	SQ_PRODUCT_LIST,
	/* sqlite_lock.c */
	SQ_LOCK_GET_ANY,
	SQ_LOCK_UPSERT,
	SQ_LOCK_RENEW,
	SQ_LOCK_DELETE,
	SQ_LOCK_GET_LIVE,
	/* sqlite_replica.c */
	SQ_REPLICA_BEAT,
	SQ_REPLICA_FORGET,
	SQ_REPLICA_LIST,
	SQ_STMT_COUNT
};

/* One connection and its statements; used by one thread at a time (the
 * holder of wlock for the writer, the borrower for a reader). */
typedef struct sqlite_conn {
	sqlite3 *db;
	sqlite3_stmt *stmt[SQ_STMT_COUNT];
} sqlite_conn_t;

typedef struct sqlite_store {
	pthread_mutex_t wlock;
	sqlite_conn_t writer; /* wlock */
	int64_t last_ckpt_ms; /* wlock; monotonic clock */
	bool lazy;        /* wlock: this transaction commits without fsync */
	bool sync_broken; /* wlock: restoring synchronous=FULL failed */

	pthread_mutex_t rlock;
	pthread_cond_t rcond;   /* signalled when a reader is returned */
	sqlite_conn_t *readers; /* immutable after open */
	size_t n_readers;       /* immutable after open */
	sqlite_conn_t **idle;   /* rlock: stack of readers not borrowed */
	size_t n_idle;          /* rlock */
} sqlite_store_t;

/* Maps an SQLite result code to an orderd error (never 0). */
int sqlite_err(int rc);

/* Opens PATH: the writer (creating the file), the migrations of
 * sqlite_schema.c, then the
 * readers. The caller frees *ret with sqlite_store_free(). */
int sqlite_store_open(const char *path, const store_options_t *opt,
                      sqlite_store_t **ret);
void sqlite_store_free(sqlite_store_t *s);

/* The cached statement id of c, prepared from sql on first use, reset and
 * unbound. The caller resets it again when done (sqlite3_reset). */
int sqlite_stmt(sqlite_conn_t *c, int id, const char *sql, sqlite3_stmt **ret);
/* Steps st: 1 for a row, 0 when done, or a negative error. */
int sqlite_step(sqlite3_stmt *st);
/* Runs a cached statement that returns no rows, then resets it. */
int sqlite_run(sqlite_conn_t *c, int id, const char *sql);

/* A parameter of sqlite_exec() and sqlite_row(), bound to ?1, ?2, ... in
 * array order: text (NULL binds SQL NULL, as SQ_NULL) or an integer. */
typedef struct sqlite_param {
	bool is_int;
	int64_t num;      /* is_int */
	const char *text; /* !is_int; must outlive the call */
} sqlite_param_t;
#define SQ_TEXT(s) ((sqlite_param_t){.is_int = false, .text = (s)})
#define SQ_INT(v) ((sqlite_param_t){.is_int = true, .num = (v)})
#define SQ_NULL SQ_TEXT(NULL)
#define SQ_NPARAMS(p) (sizeof(p) / sizeof((p)[0]))

/* Runs the cached INSERT, UPDATE or DELETE id (no RETURNING) with params
 * p[0..n) and resets it: the number of rows it changed, or an error. */
int sqlite_exec(sqlite_conn_t *c, int id, const char *sql,
                const sqlite_param_t *p, size_t n);
/* Runs the cached statement id with params p[0..n) up to its first row:
 * 1 with the row current in *ret_st (the caller reads its columns, then
 * resets it with sqlite3_reset), 0 when there is no row, or an error; on 0
 * and on an error the statement is already reset. */
int sqlite_row(sqlite_conn_t *c, int id, const char *sql,
               const sqlite_param_t *p, size_t n, sqlite3_stmt **ret_st);

/* How the COMMIT of a write transaction reaches the disk; every caller of
 * sqlite_write_begin names one. */
typedef enum sqlite_commit {
	/* synchronous=FULL: the transaction is on stable storage when COMMIT
	 * returns (G1). Every write but the few below. */
	SQ_DURABLE,
	/* synchronous=NORMAL for this one transaction: COMMIT does not wait
	 * for fsync. Only for writes whose loss in a power cut is harmless:
	 * claims, reaps and heartbeats (an order is simply pending again, and
	 * every later durable commit fsyncs the WAL up to and including them,
	 * so nothing acknowledged can be ordered before a lost lazy write). */
	SQ_LAZY,
} sqlite_commit_t;

/*
 * Write transactions: begin takes wlock, sets the commit mode and runs
 * BEGIN IMMEDIATE, then reads the store clock into *ret_now. Exactly one of
 * commit or rollback follows; both release wlock (and restore
 * synchronous=FULL after a lazy transaction). On a begin error nothing is
 * held.
 */
int sqlite_write_begin(sqlite_store_t *s, sqlite_commit_t commit,
                       sqlite_conn_t **ret_c, int64_t *ret_now);
int sqlite_write_commit(sqlite_store_t *s);
void sqlite_write_rollback(sqlite_store_t *s);

/* Reader pool: get blocks until a reader is idle; put returns it. */
sqlite_conn_t *sqlite_reader_get(sqlite_store_t *s);
void sqlite_reader_put(sqlite_store_t *s, sqlite_conn_t *c);
/* A read transaction (one snapshot) on a borrowed reader; *ret_now may be
 * NULL. read_end ends it (always). */
int sqlite_read_begin(sqlite_conn_t *c, int64_t *ret_now);
void sqlite_read_end(sqlite_conn_t *c);

/* Column list that sqlite_row_order() reads, in this order. */
#define ORDER_COLS                                                             \
	"seq, id, customer, items, metadata, status, attempts, reason,"        \
	" created_at, updated_at, finished_at"

/* Helpers shared by the operation files, in sqlite.c. Binds and column reads
 * return 0 or an orderd error. */
int sqlite_bind_text(sqlite3_stmt *st, int i, const char *s); /* NULL: null */
int sqlite_bind_int(sqlite3_stmt *st, int i, int64_t v);
/* Copies an identifier column into dst[ID_MAX + 1]. */
int sqlite_col_ident(sqlite3_stmt *st, int col, char *dst);
/* Reads the ORDER_COLS of the current row into *ret, which the caller
 * clears with order_clear(); on error *ret is untouched. */
int sqlite_row_order(sqlite3_stmt *st, order_t *ret);
/* Appends one state transition to order_events; fence 0 means none. */
int sqlite_event_add(sqlite_conn_t *c, const char *order_id, const char *event,
                     int64_t fence, int64_t now);
/* Takes the next value of the fence sequence shared by leases and locks. */
int sqlite_next_fence(sqlite_conn_t *c, int64_t *ret_fence);

/* Operations with the backend table's signatures (store_backend.h). */

/* Orders, in sqlite_order.c. */
int sqlite_submit(void *b, const order_t *const *orders, size_t n,
                  store_submit_result_t *results);
int sqlite_order_get(void *b, const char *id, order_t *ret);
int sqlite_order_fence(void *b, const char *id, order_status_t *ret_status,
                       int64_t *ret_fence);
int sqlite_orders_terminal(void *b, const char *const *ids, size_t n,
                           bool *ret_terminal);
int sqlite_order_list(void *b, int status, int64_t after_seq, size_t limit,
                      order_t **ret_orders, size_t *ret_n, bool *ret_more);
int sqlite_order_requeue(void *b, const char *id, order_t *ret);
int sqlite_order_cancel(void *b, const char *id, order_t *ret);
int sqlite_stats(void *b, bool terminal, store_stats_t *ret);

/* Processing under leases, in sqlite_lease.c. */
int sqlite_claim(void *b, const char *owner, int64_t lease_ms, size_t max,
                 store_claim_t *ret_claims, size_t *ret_n);
int sqlite_process(void *b, const store_claim_t *claims, size_t n,
                   store_process_result_t *results);
int sqlite_retry(void *b, const char *id, int64_t fence, int max_attempts,
                 int64_t delay_ms, const char *error, bool *ret_failed);
int sqlite_release(void *b, const char *id, int64_t fence);
int sqlite_reap(void *b, int max_attempts, size_t limit, size_t *ret_n);

/* Products, in sqlite_product.c. */
int sqlite_product_set(void *b, const char *sku, int64_t stock, product_t *ret);
int sqlite_product_get(void *b, const char *sku, product_t *ret);
int sqlite_product_list(void *b, const char *after_sku, size_t limit,
                        product_t **ret_products, size_t *ret_n,
                        bool *ret_more);

/* Named locks, in sqlite_lock.c. */
int sqlite_lock_acquire(void *b, const char *name, const char *owner,
                        int64_t ttl_ms, store_lock_t *ret);
int sqlite_lock_renew(void *b, const char *name, const char *owner,
                      int64_t fence, int64_t ttl_ms, store_lock_t *ret);
int sqlite_lock_release(void *b, const char *name, const char *owner,
                        int64_t fence);
int sqlite_lock_get(void *b, const char *name, store_lock_t *ret);

/* Replica heartbeats, in sqlite_replica.c. */
int sqlite_replicas_seen(void *b, const char *replica, int64_t window_ms,
                         char (*ret_ids)[ID_MAX + 1], size_t max,
                         size_t *ret_n);

/* The audit (store_verify), in sqlite_verify.c. */
int sqlite_verify(void *b, store_violation_fn fn, void *arg,
                  size_t *ret_violations);

#endif
