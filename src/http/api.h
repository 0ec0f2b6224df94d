/*
 * api: the route table and the helpers every route handler uses (api.c),
 * and the handlers themselves (api_orders.c, api_failures.c, api_locks.c,
 * api_ops.c, api_notifications.c). The
 * request context and suspend/resume belong to the server (server_int.h).
 * Nothing outside src/http/ includes this header.
 */
#ifndef ORDERD_HTTP_API_H
#define ORDERD_HTTP_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/server_int.h"
#include "store/store.h"

typedef void (*api_handler_fn)(http_req_t *r);

/* One route: a path template and the handler of one method. */
struct api_route {
	const char *tmpl;   /* "/v1/orders/{id}"; also the metrics label */
	const char *method; /* "GET", "POST", "PUT" */
	api_handler_fn handler;
	bool auth;  /* needs a bearer token when tokens are set */
	bool body;  /* a JSON body is required */
	bool batch; /* uses the batch body cap */
	bool quiet; /* access log at debug level */
	bool store; /* calls the store: runs on the handler pool */
};

/* ---- response helpers (api.c) ---- */

/* r->resp = status with j as body; steals the reference to j. */
void api_json(http_req_t *r, unsigned status, json_t *j);
/* r->resp = status with the JSON text of b as body; takes b's memory (b is
 * left empty). A NULL b->data is an out-of-memory answer. */
void api_json_buf(http_req_t *r, unsigned status, buf_t *b);
/* r->resp = status with the order as body (order_json_append). */
void api_order(http_req_t *r, unsigned status, const order_t *o);
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
/* For routes that take no body: none, or {}; answers 400 itself and
 * returns non-zero otherwise. */
int api_empty_body(http_req_t *r);
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

/* A notification as the API shows it (api_notifications.c). New
 * reference. */
json_t *api_notification_json(const store_notification_t *n);

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

/* ---- handlers ---- */

void api_orders_submit(http_req_t *r);
void api_orders_batch(http_req_t *r);
void api_orders_get(http_req_t *r);
void api_orders_list(http_req_t *r);
void api_orders_requeue(http_req_t *r);
void api_orders_cancel(http_req_t *r);
void api_failures_list(http_req_t *r);
void api_failures_requeue(http_req_t *r);
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
/* The /v1/stats body (a new reference into *ret), or a store error. */
int api_stats_json(http_server_t *s, json_t **ret);
void api_ops_alerts(http_req_t *r);
void api_notifications_list(http_req_t *r);
void api_notifications_redeliver(http_req_t *r);
void api_static_get(http_req_t *r);
void api_orders_history(http_req_t *r);

/* Frees what the async submission state holds (any thread). */
void api_req_release(http_req_t *r);

#endif
