/*
 * conn_guard: keeps hostile or broken clients from holding the server's
 * connection slots. It tracks every open connection in one of three
 * phases and closes those that have made the server wait too long:
 *
 *   head  accepted, or its previous answer sent (keep-alive), and no
 *         complete request head yet: closed head_ms after it entered
 *         the phase however the bytes trickle in (slowloris, a client
 *         that never sends, an idle keep-alive connection);
 *   body  the head is in, the body is not: closed body_ms after the head
 *         (slow bodies, bodies that never finish);
 *   busy  the server is working on the request or sending its answer:
 *         never closed here (the handlers' own deadlines bound it).
 *
 * And when the open connections reach max_open, every new connection
 * evicts the oldest one in head or body phase (by the time it entered its
 * phase), so a new client always finds a slot while the server is not
 * working for them all.
 *
 * Closing is a kill callback (shutdown(fd, SHUT_RDWR) by default): the
 * server's event loop then sees the end of the stream and closes the
 * connection itself. The callback runs under the guard's lock, and the
 * server reports a close (conn_guard_close) before the descriptor is
 * closed, so a descriptor is never shut down after it has been reused.
 *
 * The guard knows nothing of HTTP; server.c maps libmicrohttpd's
 * callbacks onto open / head_done / body_done / answered / close.
 * Thread-safe; one internal lock, a leaf (no other lock is taken under
 * it; the kill callback must not take one).
 */
#ifndef ORDERD_HTTP_CONN_GUARD_H
#define ORDERD_HTTP_CONN_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct conn_guard conn_guard_t;
typedef struct conn_guard_entry conn_guard_entry_t;

typedef struct conn_guard_options {
	size_t max_open; /* open connections at which a new one evicts */
	int64_t head_ms; /* bound of the head phase, > 0 */
	int64_t body_ms; /* bound of the body phase, > 0 */
	/* Sweep period of the guard's thread; 0: no thread (the caller
	 * calls conn_guard_sweep, as the unit tests do). */
	int64_t tick_ms;
	int64_t (*now_ms)(void);         /* NULL: clock_mono_ms */
	void (*kill)(int fd, void *arg); /* NULL: shutdown(fd, SHUT_RDWR) */
	void *kill_arg;
} conn_guard_options_t;

typedef struct conn_guard_stats {
	size_t open;            /* tracked, not yet closed */
	uint64_t evicted;       /* killed to make room at max_open */
	uint64_t head_timeouts; /* killed past head_ms */
	uint64_t body_timeouts; /* killed past body_ms */
} conn_guard_stats_t;

int conn_guard_new(const conn_guard_options_t *opt, conn_guard_t **ret);
/* Stops the thread and frees the guard; call after the server has closed
 * every connection (an entry still tracked is freed only when it waits
 * in head or body phase). NULL ok. */
void conn_guard_free(conn_guard_t *g);

/* A connection on descriptor fd was accepted: it starts in head phase,
 * after evicting the oldest waiting one when max_open are open. Returns
 * its entry (the guard's; freed by conn_guard_close), or NULL when out of
 * memory (the connection then goes unguarded). */
conn_guard_entry_t *conn_guard_open(conn_guard_t *g, int fd);
/* The calls below take the entry conn_guard_open returned; NULL (an
 * unguarded connection) is ignored. */
/* Its request head is complete; body: a body is still to come. */
void conn_guard_head_done(conn_guard_t *g, conn_guard_entry_t *e, bool body);
/* Its request body is complete (does nothing unless in body phase). */
void conn_guard_body_done(conn_guard_t *g, conn_guard_entry_t *e);
/* Its answer was sent (or the request ended): back to head phase. */
void conn_guard_answered(conn_guard_t *g, conn_guard_entry_t *e);
/* The connection is closing; e is freed. Call before closing the fd. */
void conn_guard_close(conn_guard_t *g, conn_guard_entry_t *e);
/* Kills every connection past its phase's bound now. */
void conn_guard_sweep(conn_guard_t *g);
void conn_guard_stats(conn_guard_t *g, conn_guard_stats_t *ret);

#endif
