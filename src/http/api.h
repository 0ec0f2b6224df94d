/*
 * api: the module-private interface between the HTTP server glue
 * (server.c), the waiter thread (waiters.c) and the route handlers
 * (api.c, api_orders.c, api_locks.c, api_ops.c). Nothing outside src/http/
 * includes this header.
 *
 * A request lives in one http_req_t from its first header callback to the
 * MHD "request completed" notification. A handler either fills r->resp
 * (through the api_* helpers) and returns, or suspends the connection
 * (api_suspend) and hands r to another thread (the batcher's committer or
 * the waiter thread), which fills r->resp and calls api_resume() exactly
 * once. The server then queues r->resp on the next MHD callback.
 *
 * Lock order: http_server.mu, then waiters' own mutex is never held while
 * taking http_server.mu (waiters.c only calls api_resume without its lock).
 */
#ifndef ORDERD_HTTP_API_H
#define ORDERD_HTTP_API_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/server.h"
#include "obs/metrics.h"

#define HTTP_RID_MAX 128      /* X-Request-Id length cap */
#define HTTP_STATS_SAMPLES 64 /* processed-throughput samples kept */

typedef struct http_req http_req_t;
typedef struct waiters waiters_t;
typedef struct handlers handlers_t;

typedef void (*api_handler_fn)(http_req_t *r);

/* One route: a path template and the handler of one method. */
typedef struct api_route {
	const char *tmpl;   /* "/v1/orders/{id}"; also the metrics label */
	const char *method; /* "GET", "POST", "PUT" */
	api_handler_fn handler;
	bool auth;  /* needs a bearer token when tokens are set */
	bool body;  /* a JSON body is required */
	bool batch; /* uses cfg->batch_body_max as the body cap */
	bool quiet; /* access log at debug level */
	bool store; /* calls the store: runs on the handler pool */
} api_route_t;

/* The answer being prepared for a request. */
typedef struct http_resp {
	unsigned status; /* 0: nothing prepared yet */
	char *body;      /* malloc'd, freed by MHD; NULL = empty */
	size_t len;
	const char *content_type; /* static; NULL for empty bodies */
	int retry_after;          /* seconds; < 0: no Retry-After */
	const char *allow;        /* static Allow header value, or NULL */
	char location[96];        /* "" or the Location header value */
} http_resp_t;

struct http_server {
	http_deps_t deps;
	struct MHD_Daemon *daemon;
	waiters_t *waiters;
	handlers_t *handlers;
	window_t *submitted; /* 201s over the last 60 s (thread-safe) */
	atomic_bool draining;
	int64_t started_mono_ms;

	pthread_mutex_t mu;
	pthread_cond_t cond; /* signalled when a count below drops */
	int suspended;       /* suspended connections; mu */
	int inflight;        /* batcher submissions not yet done; mu */
	int active;          /* live request contexts; mu */
	bool closing;        /* http_server_free has begun; mu */

	/* Processed-throughput samples taken by GET /v1/stats; stats_mu. */
	pthread_mutex_t stats_mu;
	int64_t sample_ms[HTTP_STATS_SAMPLES];
	int64_t sample_done[HTTP_STATS_SAMPLES];
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

	/* Request body, capped at body_max bytes. */
	char *body;
	size_t body_len;
	size_t body_max;
	size_t body_cap;    /* allocated bytes of body */
	uint64_t discarded; /* bytes dropped past the cap */
	bool too_big;

	bool done_first; /* the header callback has run */
	bool has_body;   /* Content-Length > 0 or chunked */
	bool early;      /* answered from the headers alone */
	bool suspended;  /* waiting for api_resume(); see server.c */
	bool queued;     /* a response was handed to MHD */
	http_resp_t resp;

	/* Async submission state, owned by the handler that started it. */
	order_t *orders; /* orders handed to the batcher */
	size_t n_orders;
	const order_t **order_ptrs;
	json_t *results; /* batch: results array, slots prefilled */
	size_t *slots;   /* batch: result slot of orders[i] */

	/* Waits (?wait_ms, lock wait_ms). */
	int64_t deadline_mono_ms;
	char owner[ID_MAX + 1];
	int64_t ttl_ms;
	/* A lock granted to this request (fence > 0): released again if the
	 * answer never reaches the client, so no lock is held by nobody. */
	int64_t granted_fence;

	/* The handler pool (handlers.c). */
	struct http_req *next_job; /* queue link, the pool's lock */
	bool *handed_on; /* set while a pool thread runs the handler */
};

/* ---- response helpers (api.c) ---- */

/* r->resp = status with j as body; steals the reference to j. */
void api_json(http_req_t *r, unsigned status, json_t *j);
/* r->resp = the standard error body. */
void api_error(http_req_t *r, unsigned status, const char *code,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* 503 unavailable or 429 rate_limited with Retry-After. */
void api_unavailable(http_req_t *r, const char *msg);
/* Maps a store/batcher error code to its answer (and logs 500s). */
void api_store_error(http_req_t *r, int rc);
/* r->resp = 204 without a body. */
void api_no_content(http_req_t *r);
/* Builds the error object {"code","message"} (new reference). */
json_t *api_error_obj(const char *code, const char *msg);

/* Parses the body as one strict JSON object; answers 400 itself and
 * returns non-zero on failure. */
int api_body(http_req_t *r, json_t **ret);
/* Answers 400 when obj has a key not in the NULL-terminated allowed list. */
int api_only_fields(http_req_t *r, json_t *obj, const char *const *allowed);
/* Answers 400 unless the path parameter is a valid identifier. */
int api_param(http_req_t *r, const char *what);
/* Reads query parameter name as an integer in [min, max]; *ret untouched
 * when absent (returns 0); answers 400 and returns -1 on a bad value. */
int api_query_int(http_req_t *r, const char *name, int64_t min, int64_t max,
                  int64_t *ret);
const char *api_query(http_req_t *r, const char *name);
/* Reads an integer field; answers 400 on a wrong type or range. absent_ok
 * leaves *ret untouched when the field is missing. */
int api_field_int(http_req_t *r, json_t *obj, const char *name, int64_t min,
                  int64_t max, bool absent_ok, int64_t *ret);
/* Reads an identifier field into out (ID_MAX + 1 bytes); answers 400. */
int api_field_ident(http_req_t *r, json_t *obj, const char *name, char *out);

/* True while draining: answers 503 itself. */
bool api_refuse_draining(http_req_t *r);

/* ---- route table (api.c) ---- */

/*
 * Matches path. Returns the route for method, or NULL. On NULL, *ret_allow
 * is the static Allow list when the path exists with other methods (405),
 * or NULL (404). *ret_label is the template for metrics. The {param}
 * segment is copied into r->param.
 */
const api_route_t *api_match(http_req_t *r, const char *method,
                             const char *path, const char **ret_allow,
                             const char **ret_label);

/* ---- suspension (server.c) ---- */

/* Suspends r's connection; call only from inside a handler. */
void api_suspend(http_req_t *r);
/* Resumes r after r->resp was filled; any thread, exactly once. */
void api_resume(http_req_t *r);
/* Counts a batcher submission in flight (before batcher_submit) and its
 * end (in the done callback, after api_resume). begin returns false (and
 * counts nothing) once http_server_free has begun. */
bool api_inflight_begin(http_server_t *s);
void api_inflight_end(http_server_t *s);

/* ---- handlers ---- */

void api_orders_submit(http_req_t *r);
void api_orders_batch(http_req_t *r);
void api_orders_get(http_req_t *r);
void api_orders_list(http_req_t *r);
void api_orders_requeue(http_req_t *r);
void api_orders_cancel(http_req_t *r);
void api_products_put(http_req_t *r);
void api_products_get(http_req_t *r);
void api_products_list(http_req_t *r);
void api_locks_acquire(http_req_t *r);
void api_locks_renew(http_req_t *r);
void api_locks_release(http_req_t *r);
void api_locks_get(http_req_t *r);
void api_ops_livez(http_req_t *r);
void api_ops_readyz(http_req_t *r);
void api_ops_metrics(http_req_t *r);
void api_ops_stats(http_req_t *r);
void api_ops_alerts(http_req_t *r);

/* Frees what the async submission state holds (any thread). */
void api_req_release(http_req_t *r);

/* ---- handler pool (handlers.c) ---- */

int handlers_new(size_t threads, handlers_t **ret);
/* Queues suspended r; a pool thread runs its handler, then resumes it.
 * false once the pool is stopping (the caller answers r itself). */
bool handlers_submit(handlers_t *h, http_req_t *r);
/* Runs what is queued and joins the threads; later submits fail. */
void handlers_stop(handlers_t *h);
/* handlers_stop, then frees. NULL ok. */
void handlers_free(handlers_t *h);

/* ---- waiters (waiters.c) ---- */

/*
 * Polls r once; deadline tells that this is the last chance. Returns true
 * when r->resp is filled (the waiter then resumes r), false to keep
 * waiting. Runs on the waiter thread.
 */
typedef bool (*waiter_poll_fn)(http_req_t *r, bool deadline);

int waiters_new(size_t max, store_t *store, waiters_t **ret);
/*
 * Registers suspended r until poll says done or r->deadline_mono_ms.
 * order_wait: r waits for order r->param to become terminal; such waits
 * share one batched store check per tick and are polled only when it says
 * so (or at their deadline). OD_EBUSY when max waiters wait, OD_ESHUTDOWN
 * when stopping; the caller then answers r itself.
 */
int waiters_add(waiters_t *w, http_req_t *r, waiter_poll_fn poll,
                bool order_wait);
/* Answers every waiter 503 and resumes it, and stops the thread; later
 * waiters_add calls answer OD_ESHUTDOWN. */
void waiters_stop(waiters_t *w);
/* Stops (if not yet) and frees. NULL ok. */
void waiters_free(waiters_t *w);

/* Poll functions used with waiters_add. */
bool api_orders_wait_poll(http_req_t *r, bool deadline);
bool api_locks_wait_poll(http_req_t *r, bool deadline);

#endif
