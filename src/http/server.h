/*
 * server: the HTTP front end on libmicrohttpd (thread pool + epoll). It
 * owns connections, body buffering under the size caps, the check order of
 * API.md (route/method, auth, content type, size, body), X-Request-Id,
 * per-request metrics and access logs, and suspend/resume for everything
 * that waits (group commit, ?wait_ms, lock wait_ms) so no server thread
 * ever blocks on a wait. Route handlers live in api.c.
 */
#ifndef ORDERD_HTTP_SERVER_H
#define ORDERD_HTTP_SERVER_H

#include "obs/alerts.h"
#include "orderd/config.h"
#include "store/store.h"
#include "work/batcher.h"
#include "work/workers.h"

typedef struct http_server http_server_t;

typedef struct http_deps {
	const config_t *cfg;
	store_t *store;
	batcher_t *batcher;
	alerts_t *alerts;
	int64_t started_wall_ms;
} http_deps_t;

/* Binds cfg->listen and starts serving. deps must outlive the server. */
int http_server_new(const http_deps_t *deps, http_server_t **ret);
/* From now on /readyz answers 503 and submissions 503 (Retry-After). */
void http_server_set_draining(http_server_t *h);
/* Stops listening, resumes and answers every suspended request, joins the
 * server threads and frees. NULL ok. */
void http_server_free(http_server_t *h);

#endif
