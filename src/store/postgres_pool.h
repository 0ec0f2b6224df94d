/*
 * postgres_pool: module-private to the postgres store backend. A bounded
 * pool of libpq connections with checkout/checkin, lazy (re)connection with
 * exponential backoff and full jitter, per-connection prepared statements,
 * and the mapping of libpq/SQLSTATE failures to store error codes.
 *
 * Statements are not registered anywhere: each file of the backend defines
 * the ones it runs (static const pgp_stmt_t) beside the code that runs
 * them, and pgc_exec() prepares a statement on a connection the first time
 * that connection runs it. Preparing lives in pgc_exec() alone, so how
 * statements reach the server is one function's decision: named per
 * connection, or, under transaction pooling (store_options_t
 * pg_txn_pooling: PgBouncer pool_mode=transaction, where consecutive
 * transactions of one client connection may run on different server
 * sessions), unnamed every time. Under transaction pooling nothing is set
 * per session either: the session settings (statement_timeout,
 * lock_timeout, ...) are set with set_config(..., true) in every
 * transaction, by pgc_sql after a BEGIN and by pgc_exec ahead of a
 * statement run outside a transaction, pipelined with it (one round trip,
 * one implicit transaction).
 *
 * A connection that breaks (connection-class SQLSTATE, admin shutdown,
 * read-only after failover, or a bad PQstatus) is closed at checkin and its
 * slot reconnects on a later checkout; the process never restarts for it.
 *
 * The deadline: a checkout is one store call, and the call has until
 * opt->deadline_ms after pgp_get began, for the wait for a slot, a
 * (re)connect and every statement it runs. Every wait on the server is a
 * poll() on the connection's socket against that monotonic instant (libpq's
 * asynchronous API, the connection in nonblocking mode), never a blocking
 * libpq call: a server that stops answering without closing its sockets
 * (frozen, a stalled disk, a path that drops packets) cannot hold a caller
 * past it, which the server's own statement_timeout cannot promise. A
 * statement still outstanding at the deadline marks the connection lost,
 * exactly as a broken connection would, so callers map it the same way
 * (OD_ESTORE, or OD_EUNKNOWN around a COMMIT) and it is closed at checkin,
 * never reused mid-statement. A statement the deadline stops before it is
 * sent is a plain OD_ESTORE: nothing reached the server.
 */
#ifndef ORDERD_STORE_POSTGRES_POOL_H
#define ORDERD_STORE_POSTGRES_POOL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/*
 * One statement. Its identity is the descriptor's address, so descriptors
 * are static and never copied; name is its prepared-statement name on every
 * connection and must be unique across the backend (a duplicate fails to
 * prepare, as OD_EINTERNAL).
 */
typedef struct pgp_stmt {
	const char *name;
	const char *sql;
	int nparams;
} pgp_stmt_t;

/* At most this many distinct statements are prepared on one connection. */
#define PGP_MAX_STMTS 128 /* the backend defines about 60 */

typedef struct pgp pgp_t;

/* A checked-out connection. */
typedef struct pgc {
	pgp_t *pool; /* the pool the slot belongs to */
	PGconn *conn;
	/* The statements prepared on conn: an open-addressed set of
	 * descriptor addresses, emptied whenever conn is closed. */
	const pgp_stmt_t *prepared[2 * PGP_MAX_STMTS];
	size_t n_prepared;
	/* Transaction pooling: the settings every transaction on conn sets
	 * for itself (a SELECT of set_config(..., true)); NULL when the
	 * session is ours and was set up once at connect. */
	const char *local_sql;
	bool lost;           /* the connection broke during this checkout */
	char sqlstate[6];    /* of the last failure, "" if none */
	int64_t deadline_ms; /* monotonic ms by which this checkout's call
	                        must be done (set by pgp_get) */
	bool timed_out;      /* this checkout ran out of its deadline */
} pgc_t;

/*
 * Creates a pool for uri with opt's settings. Does not connect. The caller
 * frees the pool with pgp_free().
 */
int pgp_new(const char *uri, const store_options_t *opt, pgp_t **ret);
void pgp_free(pgp_t *p);

/*
 * Checks out a live connection, waiting at most wait_ms for a free slot and
 * (re)connecting if needed, and starts the call's deadline. OD_ESTORE when
 * none can be had now, or not before the deadline.
 */
int pgp_get(pgp_t *p, int64_t wait_ms, pgc_t **ret);
/*
 * Moves c's deadline to ms from now: only for work that is known to run
 * long and is on no request's path (migrations at open).
 */
void pgc_extend(pgc_t *c, int64_t ms);
/* Returns c to the pool; a broken or mid-transaction connection is closed. */
void pgp_put(pgp_t *p, pgc_t *c);
/* Connections closed by pgp_put because they were broken or left
 * mid-transaction, since pgp_new. */
int64_t pgp_resets(const pgp_t *p);
/* Default checkout wait (ms) for ordinary calls. */
int64_t pgp_wait_ms(const pgp_t *p);
/* Checkouts that ran out of their deadline (waiting for a slot, connecting
 * or waiting for the server), since pgp_new. */
int64_t pgp_deadline_hits(const pgp_t *p);

/*
 * Runs statement st with text params vals[0..st->nparams) (NULL = SQL
 * NULL), preparing it on c first if c has not run it yet. On success *ret
 * is a PGRES_TUPLES_OK/COMMAND_OK result the caller PQclear()s. On failure:
 * OD_ESTORE for transient failures (c->lost set when the connection broke),
 * OD_EINTERNAL for errors that are bugs (syntax, constraint violations, more
 * than PGP_MAX_STMTS statements).
 */
int pgc_exec(pgc_t *c, const pgp_stmt_t *st, const char *const *vals,
             PGresult **ret);
/*
 * Runs sql, text that may hold several statements and no parameters, with
 * the simple query protocol. On success *ret is the last statement's
 * PGRES_TUPLES_OK/COMMAND_OK result, which the caller PQclear()s; errors as
 * pgc_exec. Under transaction pooling, outside a transaction, the
 * transaction's settings go after sql when it starts with BEGIN (the last
 * result is then theirs) and before it otherwise, so sql runs in a
 * transaction block: nothing that refuses one (VACUUM, CREATE INDEX
 * CONCURRENTLY) goes through here.
 */
int pgc_sql(pgc_t *c, const char *sql, PGresult **ret);
/* Runs a parameterless command (BEGIN, COMMIT, ...) and discards the result. */
int pgc_cmd(pgc_t *c, const char *sql);
/* ROLLBACK if a transaction is open; never fails (drops the connection). */
void pgc_rollback(pgc_t *c);
/*
 * COMMIT. 0, OD_ESTORE when the server refused it (serialization failure:
 * nothing committed), OD_EUNKNOWN when the connection broke while it was in
 * flight.
 */
int pgc_commit(pgc_t *c);

/* Maps the failure of res (may be NULL) on c to a store error. */
int pgc_error(pgc_t *c, const PGresult *res);

#endif
