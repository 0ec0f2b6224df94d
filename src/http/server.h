/*
 * server: the HTTP front end on libmicrohttpd (thread pool + epoll). It
 * owns connections, body buffering under the size caps, the check order of
 * API.md (route/method, auth, content type, size, body), X-Request-Id,
 * per-request metrics and access logs, and suspend/resume for everything
 * that waits (group commit, ?wait_ms, lock wait_ms) so no server thread
 * ever blocks on a wait. Route handlers live in api*.c.
 *
 * This is the interface the daemon sees: the options it fills in from its
 * configuration and the modules the server calls. The server never reads
 * the daemon's configuration itself. server_int.h is the module-private
 * part shared with the route code.
 */
#ifndef ORDERD_HTTP_SERVER_H
#define ORDERD_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "obs/alerts.h"
#include "store/store.h"
#include "work/batcher.h"
#include "work/workers.h"
#include "work/notifier.h"

typedef struct http_server http_server_t;

/* Every limit and knob of the server. Strings and the token list are
 * borrowed: they must outlive the server. */
typedef struct http_options {
	const char *listen;        /* "host:port" or "[v6]:port" */
	const char *const *tokens; /* NULL-terminated; NULL or empty: no auth */
	const char *replica_id;    /* this replica, first in /v1/stats */
	int threads; /* MHD threads, and as many handler threads */
	unsigned max_connections;
	int max_streams; /* GET /v1/events streams; 0: 64 */
	/* A request head must be complete this long after the connection
	 * was accepted or its previous answer sent, and a body this long
	 * after its head; else the connection is closed (conn_guard.h). */
	int64_t head_timeout_ms;
	int64_t body_timeout_ms;
	size_t body_max;       /* bytes, single requests */
	size_t batch_body_max; /* bytes, POST /v1/orders/batch */
	int json_depth;
	size_t max_items;   /* items per order */
	size_t max_batch;   /* orders per batch request */
	size_t max_waiters; /* suspended ?wait_ms and lock waits */
	/* A store request that waited longer than this for a handler thread
	 * is answered 503 without touching the store. */
	int64_t handler_queue_ms;
	/* How recent a heartbeat must be for a replica to count as seen. */
	int64_t replica_window_ms;
	/* A submission not answered this long after it was queued for group
	 * commit is answered 503 (Retry-After) whatever the store call it
	 * waits for is doing; 0: never. The store's deadline, on PostgreSQL. */
	int64_t submit_deadline_ms;
} http_options_t;

/* The modules the server calls; they must outlive the server. alerts and
 * workers may be NULL (workers: kicked after a requeue, a hint only). */
typedef struct http_deps {
	store_t *store;
	batcher_t *batcher;
	alerts_t *alerts;
	workers_t *workers;
	notifier_t *notifier; /* NULL when notifications are off */
} http_deps_t;

/* Binds opt->listen and starts serving. */
int http_server_new(const http_options_t *opt, const http_deps_t *deps,
                    http_server_t **ret);
/* From now on /readyz answers 503; everything else is served as before
 * (the shutdown delay: load balancers take the replica out first). */
void http_server_set_unready(http_server_t *h);
/* From now on /readyz answers 503 and submissions 503 (Retry-After). */
void http_server_set_draining(http_server_t *h);
/* Stops listening, resumes and answers every suspended request, joins the
 * server threads and frees. NULL ok. */
void http_server_free(http_server_t *h);

#endif
