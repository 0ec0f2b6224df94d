/*
 * sqlite_int: module-private declarations of the SQLite backend, shared by
 * its files: sqlite_conn.c (connections, the statement cache,
 * transactions), sqlite_schema.c (the schema and its migrations), sqlite.c
 * (the backend table, open, free, ping and the shared row helpers), and
 * the operations by noun: sqlite_order.c, sqlite_lease.c, sqlite_product.c,
 * sqlite_lock.c, sqlite_replica.c, sqlite_failure.c (dead-letter groups)
 * and sqlite_verify.c (the audit). Nothing
 * outside src/store/sqlite* includes this header.
 *
 * Names: the backend's symbols carry the prefix sqb_ (SQB_ for macros and
 * constants) and the schema's sqs_, never sqlite_ or sqlite3_, which are the
 * SQLite library's namespace.
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

#include "store/store_backend.h"

/* The store clock in SQL: integer ms since the Unix epoch. SQLite 3.40 has
 * no unixepoch('subsec'); 'now' has ms resolution, ROUND undoes the double
 * rounding of julianday(). */
#define SQB_NOW_SQL                                                            \
	"CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"

/* Every cached statement has a slot, listed here by the file that runs it;
 * the SQL text is given where it is used, and each connection prepares it
 * once on first use. */
enum sqb_stmt_id {
	/* sqlite_conn.c */
	SQB_BEGIN_IMMEDIATE = 0,
	SQB_BEGIN,
	SQB_COMMIT,
	SQB_ROLLBACK,
	SQB_NOW,
	SQB_SYNC_NORMAL,
	SQB_SYNC_FULL,
	/* sqlite.c */
	SQB_PING,
	SQB_NEXT_FENCE,
	SQB_EVENT_INSERT,
	/* sqlite_order.c */
	SQB_ORDER_INSERT,
	SQB_ORDER_BY_ID,
	SQB_ORDER_FENCE,
	SQB_ORDER_STATUS,
	SQB_ORDER_LIST_ALL,
	SQB_ORDER_LIST_STATUS,
	SQB_ORDER_REQUEUE,
	SQB_ORDER_CANCEL,
	SQB_STATS_COUNT,
	SQB_STATS_LIVE,
	SQB_STATS_OLDEST,
	/* sqlite_failure.c */
	SQB_FAILURES_LIST,
	SQB_FAILURES_BOUND,
	SQB_FAILURES_REQUEUE,
	SQB_FAILURES_UNPRINTED,
	SQB_FAILURES_PRINT,
	/* sqlite_lease.c */
	SQB_CLAIM,
	SQB_PROCESS_CHECK,
	SQB_PROCESS_STOCK,
	SQB_PROCESS_TAKE,
	SQB_RESERVATION_INSERT,
	SQB_PROCESS_FINISH,
	SQB_PROCESS_HOLD,
	SQB_FINISH,
	SQB_RENEW,
	SQB_HELD_RETURN,
	SQB_HELD_DELETE,
	SQB_RETRY,
	SQB_RELEASE,
	SQB_REAP,
	/* sqlite_product.c */
	SQB_PRODUCT_GET,
	SQB_PRODUCT_UPSERT,
	SQB_ADJUSTMENT_INSERT,
	SQB_PRODUCT_LIST,
	/* sqlite_lock.c */
	SQB_LOCK_GET_ANY,
	SQB_LOCK_UPSERT,
	SQB_LOCK_RENEW,
	SQB_LOCK_DELETE,
	SQB_LOCK_GET_LIVE,
	/* sqlite_replica.c */
	SQB_REPLICA_BEAT,
	SQB_REPLICA_FORGET,
	SQB_REPLICA_LIST,
	SQB_LEASES_BY_OWNER,
	SQB_ORDER_HISTORY,
	/* sqlite_notify.c */
	SQB_NOTIFY_CLAIM,
	SQB_NOTIFY_BY_SEQ,
	SQB_NOTIFY_DELIVERED,
	SQB_NOTIFY_RETRY,
	SQB_NOTIFY_RELEASE,
	SQB_NOTIFY_LIST_ALL,
	SQB_NOTIFY_LIST_STATUS,
	SQB_NOTIFY_BY_ORDER,
	SQB_NOTIFY_REDELIVER,
	SQB_NOTIFY_STATE,
	SQB_NOTIFY_PRUNE,
	SQB_NOTIFY_COUNT,
	SQB_NOTIFY_OLDEST,
	SQB_STMT_COUNT
};

/* One connection and its statements; used by one thread at a time (the
 * holder of wlock for the writer, the borrower for a reader). */
typedef struct sqb_conn {
	sqlite3 *db;
	sqlite3_stmt *stmt[SQB_STMT_COUNT];
	const char *replica; /* the writer's: recorded with its events */
} sqb_conn_t;

typedef struct sqb_store {
	pthread_mutex_t wlock;
	sqb_conn_t writer;    /* wlock */
	int64_t last_ckpt_ms; /* wlock; monotonic clock */
	bool lazy;          /* wlock: this transaction commits without fsync */
	bool sync_broken;   /* wlock: restoring synchronous=FULL failed */
	bool writer_broken; /* wlock: a transaction could not be ended */
	char *path;         /* immutable after open: to reopen the writer */
	char replica[ID_MAX + 1]; /* immutable after open; "": none */
	int busy_ms;              /* immutable after open */
	_Atomic int64_t resets;   /* writer transactions ended by force */

	pthread_mutex_t rlock;
	pthread_cond_t rcond; /* signalled when a reader is returned */
	sqb_conn_t *readers;  /* immutable after open */
	size_t n_readers;     /* immutable after open */
	sqb_conn_t **idle;    /* rlock: stack of readers not borrowed */
	size_t n_idle;        /* rlock */
} sqb_store_t;

/* Maps an SQLite result code to an orderd error (never 0). */
int sqb_err(int rc);

/* Opens PATH: the writer (creating the file), the migrations of
 * sqlite_schema.c, then the
 * readers. The caller frees *ret with sqb_store_free(). */
int sqb_store_open(const char *path, const store_options_t *opt,
                   sqb_store_t **ret);
void sqb_store_free(sqb_store_t *s);

/* The cached statement id of c, prepared from sql on first use, reset and
 * unbound. The caller resets it again when done (sqlite3_reset). */
int sqb_stmt(sqb_conn_t *c, int id, const char *sql, sqlite3_stmt **ret);
/* Steps st: 1 for a row, 0 when done, or a negative error. */
int sqb_step(sqlite3_stmt *st);
/*
 * A page of a list: steps st (bound with LIMIT limit + 1: one row past the
 * page tells whether more follow) and reads up to limit rows into
 * v[0..limit), elem bytes each, with row(st, &v[i]). *ret_n counts the rows
 * read, also on an error (the caller frees them); *ret_more is true when
 * another row follows. Resets st. 0 or a negative error.
 */
typedef int (*sqb_row_fn)(sqlite3_stmt *st, void *elem);
int sqb_page(sqlite3_stmt *st, void *v, size_t elem, size_t limit,
             sqb_row_fn row, size_t *ret_n, bool *ret_more);
/* Runs a cached statement that returns no rows, then resets it. */
int sqb_run(sqb_conn_t *c, int id, const char *sql);

/* A parameter of sqb_exec() and sqb_row(), bound to ?1, ?2, ... in
 * array order: text (NULL binds SQL NULL, as SQB_NULL) or an integer. */
typedef struct sqb_param {
	bool is_int;
	int64_t num;      /* is_int */
	const char *text; /* !is_int; must outlive the call */
} sqb_param_t;
#define SQB_TEXT(s) ((sqb_param_t){.is_int = false, .text = (s)})
#define SQB_INT(v) ((sqb_param_t){.is_int = true, .num = (v)})
#define SQB_NULL SQB_TEXT(NULL)
#define SQB_NPARAMS(p) (sizeof(p) / sizeof((p)[0]))

/* Runs the cached INSERT, UPDATE or DELETE id (no RETURNING) with params
 * p[0..n) and resets it: the number of rows it changed, or an error. */
int sqb_exec(sqb_conn_t *c, int id, const char *sql, const sqb_param_t *p,
             size_t n);
/* Runs the cached statement id with params p[0..n) up to its first row:
 * 1 with the row current in *ret_st (the caller reads its columns, then
 * resets it with sqlite3_reset), 0 when there is no row, or an error; on 0
 * and on an error the statement is already reset. */
int sqb_row(sqb_conn_t *c, int id, const char *sql, const sqb_param_t *p,
            size_t n, sqlite3_stmt **ret_st);

/* How the COMMIT of a write transaction reaches the disk; every caller of
 * sqb_write_begin names one. */
typedef enum sqb_commit {
	/* synchronous=FULL: the transaction is on stable storage when COMMIT
	 * returns (G1). Every write but the few below. */
	SQB_DURABLE,
	/* synchronous=NORMAL for this one transaction: COMMIT does not wait
	 * for fsync. Only for writes whose loss in a power cut is harmless:
	 * claims, reaps and heartbeats (an order is simply pending again, and
	 * every later durable commit fsyncs the WAL up to and including them,
	 * so nothing acknowledged can be ordered before a lost lazy write). */
	SQB_LAZY,
} sqb_commit_t;

/*
 * Write transactions: begin takes wlock, sets the commit mode and runs
 * BEGIN IMMEDIATE, then reads the store clock into *ret_now. Exactly one of
 * commit or rollback follows; both release wlock (and restore
 * synchronous=FULL after a lazy transaction). On a begin error nothing is
 * held.
 */
int sqb_write_begin(sqb_store_t *s, sqb_commit_t commit, sqb_conn_t **ret_c,
                    int64_t *ret_now);
int sqb_write_commit(sqb_store_t *s);
void sqb_write_rollback(sqb_store_t *s);
/* Ends a write transaction after its statements returned rc and changed
 * `changed` rows: rolls back on an error (returns rc) and when nothing
 * changed (no commit to wait for, returns 0), commits otherwise. */
int sqb_write_end(sqb_store_t *s, int rc, size_t changed);

/* Reader pool: get blocks until a reader is idle; put returns it. */
sqb_conn_t *sqb_reader_get(sqb_store_t *s);
void sqb_reader_put(sqb_store_t *s, sqb_conn_t *c);
/* A read transaction (one snapshot) on a borrowed reader; *ret_now may be
 * NULL. read_end ends it (always). */
int sqb_read_begin(sqb_conn_t *c, int64_t *ret_now);
void sqb_read_end(sqb_conn_t *c);

/* Column list that sqb_row_order() reads, in this order. */
#define SQB_ORDER_COLS                                                         \
	"seq, id, customer, items, metadata, status, attempts, reason,"        \
	" created_at, updated_at, finished_at"
#define SQB_N_ORDER_COLS 11

/* Helpers shared by the operation files, in sqlite.c. Binds and column reads
 * return 0 or an orderd error. */
int sqb_bind_text(sqlite3_stmt *st, int i, const char *s); /* NULL: null */
int sqb_bind_int(sqlite3_stmt *st, int i, int64_t v);
/* Copies an identifier column into dst[ID_MAX + 1]. */
int sqb_col_ident(sqlite3_stmt *st, int col, char *dst);
/* Reads the SQB_ORDER_COLS of the current row into *ret, which the caller
 * clears with order_clear(); on error *ret is untouched. */
int sqb_row_order(sqlite3_stmt *st, order_t *ret);
/* Appends one state transition to order_events; fence 0 means none. */
int sqb_event_add(sqb_conn_t *c, const char *order_id, const char *event,
                  int64_t fence, int64_t now);
/* Takes the next value of the fence sequence shared by leases and locks. */
int sqb_next_fence(sqb_conn_t *c, int64_t *ret_fence);

/* Operations with the backend table's signatures (store_backend.h). */

/* Orders, in sqlite_order.c. */
int sqb_submit(void *b, const order_t *const *orders, size_t n,
               store_submit_result_t *results);
int sqb_order_get(void *b, const char *id, order_t *ret);
int sqb_order_fence(void *b, const char *id, order_status_t *ret_status,
                    int64_t *ret_fence);
int sqb_orders_terminal(void *b, const char *const *ids, size_t n,
                        bool *ret_terminal);
int sqb_order_list(void *b, int status, int64_t after_seq, size_t limit,
                   order_t **ret_orders, size_t *ret_n, bool *ret_more);
int sqb_order_requeue(void *b, const char *id, order_t *ret);
int sqb_order_cancel(void *b, const char *id, order_t *ret);
int sqb_stats(void *b, bool terminal, store_stats_t *ret);

/* Processing under leases, in sqlite_lease.c. */
int sqb_claim(void *b, const char *owner, int64_t lease_ms, size_t max,
              store_claim_t *ret_claims, size_t *ret_n);
int sqb_take(void *b, const char *owner, size_t max, store_claim_t *claims,
             size_t *ret_n, store_process_result_t *results);
int sqb_process(void *b, const store_claim_t *claims, size_t n, bool hold,
                store_process_result_t *results);
int sqb_finish(void *b, const store_finish_t *f, size_t n, bool *ret_fenced);
int sqb_renew(void *b, const char *const *ids, const int64_t *fences, size_t n,
              int64_t lease_ms, int64_t *ret_until);
/* In the writer's open transaction: returns the stock of every
 * reservation of order id and deletes them (sqlite_confirm.c). */
int sqb_release_held(sqb_conn_t *c, const char *id, int64_t now);
int sqb_retry(void *b, const char *id, int64_t fence, int max_attempts,
              int64_t delay_ms, const char *error, bool *ret_failed);
int sqb_release(void *b, const char *id, int64_t fence);
int sqb_reap(void *b, int max_attempts, size_t limit, size_t *ret_n);

/* Dead-letter groups, in sqlite_failure.c; the backfill runs once at open
 * (sqlite.c), after the migrations. */
int sqb_failures_list(void *b, size_t limit, store_failure_t **ret,
                      size_t *ret_n);
int sqb_failures_requeue(void *b, const char *fingerprint, int64_t *ret_n);
int sqb_failures_backfill(sqb_store_t *s);

/* Products, in sqlite_product.c. */
int sqb_product_set(void *b, const char *sku, int64_t stock, product_t *ret);
int sqb_product_get(void *b, const char *sku, product_t *ret);
int sqb_product_list(void *b, const char *after_sku, size_t limit,
                     product_t **ret_products, size_t *ret_n, bool *ret_more);

/* Named locks, in sqlite_lock.c. */
int sqb_lock_acquire(void *b, const char *name, const char *owner,
                     int64_t ttl_ms, store_lock_t *ret);
int sqb_lock_renew(void *b, const char *name, const char *owner, int64_t fence,
                   int64_t ttl_ms, store_lock_t *ret);
int sqb_lock_release(void *b, const char *name, const char *owner,
                     int64_t fence);
int sqb_lock_get(void *b, const char *name, store_lock_t *ret);

/* Replica heartbeats, in sqlite_replica.c. */
int sqb_replica_beat(void *b, const char *replica);
int sqb_order_history(void *b, const char *id, store_event_t *ret, size_t max,
                      size_t *ret_n);
int sqb_leases_by_owner(void *b, store_lease_group_t *ret, size_t max,
                        size_t *ret_n);
int sqb_replicas_list(void *b, int64_t window_ms, char (*ret_ids)[ID_MAX + 1],
                      size_t max, size_t *ret_n);

/* Notifications (the outbox), in sqlite_notify.c. */
int sqb_outbox_enable(void *b);
int sqb_notify_claim(void *b, const char *owner, int64_t lease_ms, size_t max,
                     store_notification_t *ret, size_t *ret_n);
int sqb_notify_delivered(void *b, int64_t seq, int64_t fence,
                         const char *acked);
int sqb_notify_retry(void *b, int64_t seq, int64_t fence, int max_attempts,
                     int64_t delay_ms, const char *error, const char *acked,
                     bool *ret_dead);
int sqb_notify_release(void *b, int64_t seq, int64_t fence, int64_t delay_ms,
                       const char *error, const char *acked);
int sqb_notify_get(void *b, int64_t seq, store_notification_t *ret);
int sqb_notify_by_order(void *b, const char *order_id, size_t limit,
                        store_notification_t **ret, size_t *ret_n,
                        bool *ret_more);
int sqb_notify_list(void *b, int status, int64_t after_seq, size_t limit,
                    store_notification_t **ret, size_t *ret_n, bool *ret_more);
int sqb_notify_redeliver(void *b, int64_t seq, store_notification_t *ret);
int sqb_notify_prune(void *b, int64_t older_than_ms, size_t limit,
                     size_t *ret_n);
int sqb_notify_stats(void *b, store_notify_stats_t *ret);

/* The audit (store_verify), in sqlite_verify.c. */
int sqb_verify(void *b, store_check_fn fn, void *arg);

#endif
