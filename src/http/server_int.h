/*
 * server_int: the module-private part of the server (server.c), shared
 * with the route code (api*.c), the handler pool glue and the waiters.
 * Nothing outside src/http/ includes this header.
 *
 * It owns the per-request context and the server's bookkeeping of
 * suspended connections. A request lives in one http_req_t from its first
 * header callback until its last reference is dropped. A handler either
 * fills r->resp (through the api_* helpers in api.h) and returns, or
 * suspends the connection (http_server_suspend) and hands r to another
 * thread (the batcher's committer, the waiters, a handler thread), which
 * fills r->resp and calls http_server_resume() exactly once. The server
 * then queues r->resp on the next MHD callback.
 *
 * References: MHD holds one from the first callback to "request
 * completed"; every other thread that keeps r past a hand-off holds one
 * (http_server_req_hold/_put), so r outlives whoever may still touch it.
 *
 * Answers are claimed once: the first of http_server_resume and
 * http_server_abandon wins. Abandon answers 503 at once from a response of
 * its own (drain_resp), so a holder stuck in the store can be overtaken at
 * shutdown; its later answer is dropped, and a lock it was granted after
 * all is released when the last reference goes.
 *
 * Lock order: http_server.mu is a leaf; no other lock (not even the
 * log's) is taken while it is held, and no module calls
 * http_server_resume or _abandon with its own lock held.
 */
#ifndef ORDERD_HTTP_SERVER_INT_H
#define ORDERD_HTTP_SERVER_INT_H

#include <microhttpd.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/conn_guard.h"
#include "http/handlers.h"
#include "http/overdue.h"
#include "http/server.h"
#include "http/waiters.h"
#include "obs/metrics.h"
#include "util/buf.h"

#define HTTP_RID_MAX 128      /* X-Request-Id length cap */
#define HTTP_STATS_SAMPLES 64 /* processed-throughput samples kept */
#define HTTP_EXTRA_HEADERS 6  /* http_resp_t.extra pairs */

typedef struct api_route api_route_t;

/* The answer being prepared for a request. */
typedef struct http_resp {
	unsigned status; /* 0: nothing prepared yet */
	char *body;      /* malloc'd, freed by MHD; NULL = empty */
	size_t len;
	const char *content_type; /* static; NULL for empty bodies */
	int retry_after;          /* seconds; < 0: no Retry-After */
	const char *allow;        /* static Allow header value, or NULL */
	char location[96];        /* "" or the Location header value */
	/* More headers: static name, value pairs ended by NULL (static.c). */
	const char *extra[HTTP_EXTRA_HEADERS * 2 + 1];
	void *stream; /* GET /v1/events: its stream (events.c) */
} http_resp_t;

struct http_server {
	http_options_t opt;
	http_deps_t deps;
	struct MHD_Daemon *daemon;
	waiters_t *waiters;
	handlers_t *handlers;
	overdue_t *overdue;         /* submissions' deadline; NULL when none */
	conn_guard_t *guard;        /* connection phases and eviction */
	alerts_window_t *submitted; /* 201s over the last 60 s (thread-safe) */
	atomic_bool draining;
	atomic_bool unready; /* shutdown delay: only /readyz says 503 */
	int64_t started_mono_ms;

	pthread_mutex_t mu;
	pthread_cond_t cond;   /* signalled when a count below drops */
	int suspended;         /* suspended connections; mu */
	http_req_t *susp_head; /* those requests, linked by susp_next; mu */
	int resuming;          /* claimed, MHD_resume_connection not yet done */
	int inflight;          /* batcher submissions not yet done; mu */
	int active;            /* live request contexts; mu */
	bool closing;          /* http_server_free has begun; mu */

	/* Processed-throughput samples taken by GET /v1/stats; stats_mu. */
	pthread_mutex_t stats_mu;
	int64_t sample_ms[HTTP_STATS_SAMPLES];
	int64_t sample_done[HTTP_STATS_SAMPLES][3]; /* per m_processed */
	size_t n_samples, next_sample;

	/* Metric families (registered once in http_server_new). */
	metric_family_t *m_requests;
	metric_family_t *m_duration;
	metric_family_t *m_orders;
	metric_t *m_submitted;
	metric_t *m_oldest;
	metric_t *m_replicas;
	metric_t *m_per_replica;
	metric_t *m_processed[3]; /* completed, rejected, failed */
	metric_t
	    *m_queue_expired;     /* answered 503 after waiting for a handler */
	metric_t *m_resets;       /* orderd_store_connection_resets_total */
	metric_t *m_stats_age;    /* orderd_store_stats_age_seconds */
	metric_t *m_stats_errors; /* orderd_store_errors_total{kind="stats"} */
	metric_t *m_deadline;     /* orderd_store_deadline_exceeded_total */
	metric_t *m_submit_late;  /* orderd_submit_deadline_expired_total */
	metric_t *m_conns;        /* orderd_http_connections */
	metric_t *m_evicted;      /* orderd_http_connections_evicted_total */
	metric_t *m_conn_timeouts[2]; /* ..._timed_out_total{phase=head|body} */
	/* The last scrape whose store stats query succeeded; server.c's
	 * collect_mu. */
	int64_t stats_ok_mono_ms;
};

/* The per-request context (MHD's con_cls). */
struct http_req {
	http_server_t *srv;
	struct MHD_Connection *conn;
	const api_route_t *route; /* NULL until matched */
	const char *route_label;  /* metrics/log label of the path */
	char method[8];
	char rid[HTTP_RID_MAX + 1];
	int64_t start_mono_ms;
	/* The {id}/{sku}/{name} path segment; param_ok when it is a valid
	 * identifier (handlers answer 400 otherwise). */
	char param[ID_MAX + 1];
	bool param_ok;
	char allow[40]; /* Allow header of a 405 */

	/* Request body, capped at body.max bytes (the route's limit). */
	buf_t body;
	uint64_t discarded; /* bytes dropped past the cap */
	bool too_big;

	bool has_body;  /* Content-Length > 0 or chunked */
	bool early;     /* answered from the headers alone */
	bool suspended; /* waiting for http_server_resume(); see server.c */
	bool queued;    /* a response was handed to MHD */
	http_resp_t resp;

	atomic_int refs; /* see above */
	bool answered;   /* an answer was claimed; srv->mu */
	bool drained;    /* answered by http_server_abandon; srv->mu */
	bool listed;     /* on srv->susp_head; srv->mu */
	http_req_t *susp_prev, *susp_next; /* srv->mu */
	http_resp_t drain_resp; /* the abandon answer; srv->mu until queued */
	bool grant_delivered;   /* an answer with granted_fence reached the
	                         * client (set at "request completed") */

	/* Async submission state, owned by the handler that started it. */
	order_t *orders; /* orders handed to the batcher */
	size_t n_orders;
	const order_t **order_ptrs;
	json_t *results;         /* batch: results array, slots prefilled */
	size_t *slots;           /* batch: result slot of orders[i] */
	overdue_entry_t overdue; /* the submission's deadline (srv->overdue) */

	/* Waits (?wait_ms, lock wait_ms). */
	int64_t deadline_mono_ms;
	char owner[ID_MAX + 1];
	int64_t ttl_ms;
	/* A lock granted to this request (fence > 0): released again if the
	 * answer never reaches the client, so no lock is held by nobody. */
	int64_t granted_fence;

	/* The handler pool (handlers.c). */
	handlers_job_t job;
	bool *handed_on; /* set while a pool thread runs the handler */
};

/* Takes and drops a reference to r; the last put frees it. Any thread. */
void http_server_req_hold(http_req_t *r);
void http_server_req_put(http_req_t *r);

/* Suspends r's connection; call only from inside a handler. */
void http_server_suspend(http_req_t *r);
/* Resumes r after r->resp was filled; any thread, once. Does nothing when
 * r was abandoned already (its answer was sent). */
void http_server_resume(http_req_t *r);
/* Answers suspended r 503 unavailable (msg) now, whoever holds it; the
 * holder's own answer is then dropped. False if r was answered already. */
bool http_server_abandon(http_req_t *r, const char *msg);
/* Counts a batcher submission in flight (before batcher_submit) and its
 * end (in the done callback, after http_server_resume). begin returns
 * false (and counts nothing) once http_server_free has begun. */
bool http_server_inflight_begin(http_server_t *s);
void http_server_inflight_end(http_server_t *s);

/* server_checks.c: the header checks, in the API's order, on MHD's first
 * call. True when r->resp holds the answer already. */
bool http_server_check_headers(http_req_t *r, const char *url);

/* server_listen.c: resolves "host:port" or "[v6]:port" into *ss;
 * OD_ECONFIG when it is not one. */
int http_server_parse_listen(const char *listen, struct sockaddr_storage *ss,
                             socklen_t *ret_len, uint16_t *ret_port);

/* server_metrics.c: registers s's metric families and makes s the target
 * of the scrape-time collect; detach clears the target (at free), so a
 * scrape after it touches nothing. */
int http_server_metrics_register(http_server_t *s);
void http_server_metrics_detach(void);

#endif
