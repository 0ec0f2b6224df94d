/*
 * sqlite_int: module-private declarations of the SQLite backend, shared by
 * its three files: sqlite_conn.c (connections, the statement cache,
 * transactions, migrations), sqlite.c (the store operations and the backend
 * table) and sqlite_verify.c (the audit). Nothing outside src/store/sqlite*
 * includes this header.
 *
 * Lock order: a thread never holds wlock and rlock at the same time. A write
 * operation does all its reads on the writer connection, inside its own
 * transaction, so it never needs a reader.
 */
#ifndef ORDERD_STORE_SQLITE_INT_H
#define ORDERD_STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* The store clock in SQL: integer ms since the Unix epoch. SQLite 3.40 has
 * no unixepoch('subsec'); 'now' has ms resolution, ROUND undoes the double
 * rounding of julianday(). */
#define SQ_NOW_SQL \
	"CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"

/* Every cached statement has a slot; the SQL text is given where it is
 * used, and each connection prepares it once on first use. */
enum sqlite_stmt_id {
	SQ_BEGIN_IMMEDIATE = 0,
	SQ_BEGIN,
	SQ_COMMIT,
	SQ_ROLLBACK,
	SQ_NOW,
	SQ_SAVEPOINT,
	SQ_SAVEPOINT_RELEASE,
	SQ_SAVEPOINT_ROLLBACK,
	SQ_NEXT_FENCE,
	SQ_EVENT_INSERT,
	SQ_ORDER_INSERT,
	SQ_ORDER_BY_ID,
	SQ_ORDER_EXISTS,
	SQ_ORDER_LIST_ALL,
	SQ_ORDER_LIST_STATUS,
	SQ_ORDER_REQUEUE,
	SQ_ORDER_CANCEL,
	SQ_STATS_COUNT,
	SQ_STATS_OLDEST,
	SQ_PRODUCT_GET,
	SQ_PRODUCT_UPSERT,
	SQ_ADJUSTMENT_INSERT,
	SQ_PRODUCT_LIST,
	SQ_CLAIM,
	SQ_PROCESS_CHECK,
	SQ_PROCESS_STOCK,
	SQ_PROCESS_TAKE,
	SQ_RESERVATION_INSERT,
	SQ_PROCESS_FINISH,
	SQ_RETRY,
	SQ_RELEASE,
	SQ_REAP,
	SQ_LOCK_GET_ANY,
	SQ_LOCK_UPSERT,
	SQ_LOCK_RENEW,
	SQ_LOCK_DELETE,
	SQ_LOCK_GET_LIVE,
	SQ_PING,
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
	sqlite_conn_t writer;   /* wlock */
	int64_t last_ckpt_ms;   /* wlock; monotonic clock */

	pthread_mutex_t rlock;
	pthread_cond_t rcond;   /* signalled when a reader is returned */
	sqlite_conn_t *readers; /* immutable after open */
	size_t n_readers;       /* immutable after open */
	sqlite_conn_t **idle;   /* rlock: stack of readers not borrowed */
	size_t n_idle;          /* rlock */
} sqlite_store_t;

/* Maps an SQLite result code to an orderd error (never 0). */
int sqlite_err(int rc);

/* Opens PATH: the writer (creating the file), migrations, then the
 * readers. The caller frees *ret with sqlite_store_free(). */
int sqlite_store_open(const char *path, const store_options_t *opt,
		      sqlite_store_t **ret);
void sqlite_store_free(sqlite_store_t *s);

/* The cached statement id of c, prepared from sql on first use, reset and
 * unbound. The caller resets it again when done (sqlite3_reset). */
int sqlite_stmt(sqlite_conn_t *c, int id, const char *sql,
		sqlite3_stmt **ret);
/* Steps st: 1 for a row, 0 when done, or a negative error. */
int sqlite_step(sqlite3_stmt *st);
/* Runs a cached statement that returns no rows, then resets it. */
int sqlite_run(sqlite_conn_t *c, int id, const char *sql);

/*
 * Write transactions: begin takes wlock and runs BEGIN IMMEDIATE, then reads
 * the store clock into *ret_now. Exactly one of commit or rollback follows;
 * both release wlock. On a begin error nothing is held.
 */
int sqlite_write_begin(sqlite_store_t *s, sqlite_conn_t **ret_c,
		       int64_t *ret_now);
int sqlite_write_commit(sqlite_store_t *s);
void sqlite_write_rollback(sqlite_store_t *s);

/* Reader pool: get blocks until a reader is idle; put returns it. */
sqlite_conn_t *sqlite_reader_get(sqlite_store_t *s);
void sqlite_reader_put(sqlite_store_t *s, sqlite_conn_t *c);
/* A read transaction (one snapshot) on a borrowed reader; *ret_now may be
 * NULL. read_end ends it (always). */
int sqlite_read_begin(sqlite_conn_t *c, int64_t *ret_now);
void sqlite_read_end(sqlite_conn_t *c);

/* The audit (store_verify), in sqlite_verify.c. */
int sqlite_verify(sqlite_store_t *s, store_violation_fn fn, void *arg,
		  size_t *ret_violations);

#endif
