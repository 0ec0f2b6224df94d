/*
 * api: the route table, path matching and the helpers every handler uses
 * to build answers (JSON bodies, the one error shape, store error mapping,
 * strict body and query parsing). The handlers are in api_orders.c,
 * api_failures.c, api_locks.c and api_ops.c.
 *
 * Path identifiers ({id}, {sku}, {name}) that are not valid identifiers
 * answer 400 invalid_request on every route, reads and writes alike: the
 * request is malformed, not about a missing resource.
 */
#include "http/api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/events.h"
#include "http/fields.h"
#include "http/query.h"
#include "http/static.h"
#include "obs/log.h"
#include "util/err.h"
#include "util/jsonx.h"

static const api_route_t routes[] = {
    /* tmpl, method, handler, auth, body, batch, quiet, store */
    {"/livez", "GET", api_ops_livez, false, false, false, true, false},
    {"/readyz", "GET", api_ops_readyz, false, false, false, true, true},
    {"/metrics", "GET", api_ops_metrics, false, false, false, true, true},
    {"/v1/stats", "GET", api_ops_stats, true, false, false, false, true},
    {"/v1/events", "GET", api_events, true, false, false, false, false},
    {"/v1/alerts", "GET", api_ops_alerts, true, false, false, false, false},
    {"/v1/orders", "GET", api_orders_list, true, false, false, false, true},
    /* Submissions only validate and queue: the batcher does the store. */
    {"/v1/orders", "POST", api_orders_submit, true, true, false, false, false},
    {"/v1/orders/batch", "POST", api_orders_batch, true, true, true, false,
     false},
    {"/v1/orders/{id}", "GET", api_orders_get, true, false, false, false, true},
    {"/v1/orders/{id}/history", "GET", api_orders_history, true, false, false,
     false, true},
    {"/v1/orders/{id}/requeue", "POST", api_orders_requeue, true, false, false,
     false, true},
    {"/v1/orders/{id}/cancel", "POST", api_orders_cancel, true, false, false,
     false, true},
    {"/v1/failures", "GET", api_failures_list, true, false, false, false, true},
    {"/v1/failures/{fingerprint}/requeue", "POST", api_failures_requeue, true,
     false, false, false, true},
    {"/v1/notifications", "GET", api_notifications_list, true, false, false,
     false, true},
    {"/v1/notifications/{id}/redeliver", "POST", api_notifications_redeliver,
     true, false, false, false, true},
    {"/v1/products", "GET", api_products_list, true, false, false, false, true},
    {"/v1/products/{sku}", "GET", api_products_get, true, false, false, false,
     true},
    {"/v1/products/{sku}", "PUT", api_products_put, true, true, false, false,
     true},
    {"/v1/locks/{name}", "GET", api_locks_get, true, false, false, false, true},
    {"/v1/locks/{name}/acquire", "POST", api_locks_acquire, true, true, false,
     false, true},
    {"/v1/locks/{name}/renew", "POST", api_locks_renew, true, true, false,
     false, true},
    {"/v1/locks/{name}/release", "POST", api_locks_release, true, true, false,
     false, true},
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

/* The embedded dashboard files (static.c), tried after the table: GET and
 * HEAD /<name>, no auth, no store. */
static const api_route_t static_route = {
    "/{asset}", "GET", api_static_get, false, false, false, true, false};

/*
 * Matches path against tmpl segment by segment; a "{x}" segment matches
 * any non-empty segment, which is copied (truncated) to param.
 */
static bool tmpl_match(const char *tmpl, const char *path, char *param,
                       bool *ret_param_ok)
{
	const char *t = tmpl, *p = path;

	while (*t != '\0' && *p != '\0') {
		if (*t != '/' || *p != '/')
			return false;
		t++;
		p++;
		const char *te = strchr(t, '/'), *pe = strchr(p, '/');
		size_t tl = te ? (size_t)(te - t) : strlen(t);
		size_t pl = pe ? (size_t)(pe - p) : strlen(p);
		if (tl > 0 && t[0] == '{') {
			if (pl == 0)
				return false;
			if (param != NULL) {
				size_t n = pl > ID_MAX ? ID_MAX : pl;
				memcpy(param, p, n);
				param[n] = '\0';
				*ret_param_ok =
				    pl <= ID_MAX &&
				    order_ident_valid(param, ID_MAX);
			}
		} else if (tl != pl || memcmp(t, p, tl) != 0) {
			return false;
		}
		t += tl;
		p += pl;
	}
	return *t == '\0' && *p == '\0';
}

const api_route_t *api_match(http_req_t *r, const char *method,
                             const char *path, const char **ret_allow,
                             const char **ret_label)
{
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
	const api_route_t *found = NULL;
	size_t off = 0;

	*ret_allow = NULL;
	*ret_label = NULL;
	r->allow[0] = '\0';
	for (size_t i = 0; i < N_ROUTES; i++) {
		char param[ID_MAX + 1];
		bool ok = false;
		if (!tmpl_match(routes[i].tmpl, path, param, &ok))
			continue;
		if (strcmp(routes[i].method, m) == 0 && found == NULL) {
			found = &routes[i];
			memcpy(r->param, param, sizeof(param));
			r->param_ok = ok;
			*ret_label = routes[i].tmpl;
		}
		if (*ret_label == NULL)
			*ret_label = routes[i].tmpl;
		if (strstr(r->allow, routes[i].method) == NULL) {
			int n =
			    snprintf(r->allow + off, sizeof(r->allow) - off,
			             "%s%s", off ? ", " : "", routes[i].method);
			if (n > 0 && (size_t)n < sizeof(r->allow) - off)
				off += (size_t)n;
		}
	}
	if (found == NULL && off == 0 && static_find(path) != NULL) {
		*ret_label = static_route.tmpl;
		if (strcmp(m, "GET") != 0) {
			snprintf(r->allow, sizeof(r->allow), "GET, HEAD");
			*ret_allow = r->allow;
			return NULL;
		}
		/* static_find took only names that fit: no '/', <= ID_MAX. */
		snprintf(r->param, sizeof(r->param), "%s", path + 1);
		r->param_ok = true;
		return &static_route;
	}
	if (found == NULL && off > 0)
		*ret_allow = r->allow;
	if (*ret_label == NULL)
		*ret_label = "other";
	return found;
}

/* ---- answers ---- */

static void resp_reset(http_req_t *r)
{
	free(r->resp.body);
	r->resp.body = NULL;
	r->resp.len = 0;
	r->resp.content_type = NULL;
	r->resp.retry_after = -1;
	r->resp.allow = NULL;
	r->resp.location[0] = '\0';
	r->resp.extra[0] = NULL;
}

/* The body text, or on NULL (out of memory) a static 500 body. */
static void json_body(http_req_t *r, unsigned status, char *text)
{
	if (text == NULL) {
		/* Out of memory: a static body still says what happened. */
		static const char oom[] = "{\"error\":{\"code\":\"internal\","
		                          "\"message\":\"out of memory\"}}";
		text = strdup(oom);
		status = 500;
	}
	r->resp.status = status;
	r->resp.body = text;
	r->resp.len = text ? strlen(text) : 0;
	r->resp.content_type = "application/json";
}

void api_json(http_req_t *r, unsigned status, json_t *j)
{
	char *text = NULL;

	resp_reset(r);
	if (j != NULL)
		text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	json_body(r, status, text);
}

void api_json_buf(http_req_t *r, unsigned status, buf_t *b)
{
	resp_reset(r);
	json_body(r, status, b->data);
	b->data = NULL;
	buf_free(b);
}

void api_order(http_req_t *r, unsigned status, const order_t *o)
{
	buf_t b;
	buf_init(&b, SIZE_MAX);
	int rc = order_json_append(&b, o);
	if (rc == OD_EINVAL) {
		buf_free(&b);
		log_error("stored order cannot be encoded", "request_id",
		          r->rid, "order_id", o->id, NULL);
		api_error(r, 500, "internal", "the stored order is corrupt");
		return;
	}
	if (rc < 0)
		buf_free(&b); /* out of memory: json_body says so */
	api_json_buf(r, status, &b);
}

json_t *api_error_obj(const char *code, const char *msg)
{
	return json_pack("{s:s,s:s}", "code", code, "message", msg);
}

void api_error(http_req_t *r, unsigned status, const char *code,
               const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	jsonx_sanitize_text(msg);
	api_json(r, status,
	         json_pack("{s:o}", "error", api_error_obj(code, msg)));
	if (status == 429 || status == 503)
		r->resp.retry_after = 1;
}

void api_unavailable(http_req_t *r, const char *msg)
{
	api_error(r, 503, "unavailable", "%s", msg);
}

void api_no_content(http_req_t *r)
{
	resp_reset(r);
	r->resp.status = 204;
}

void api_store_error(http_req_t *r, int rc)
{
	switch (rc) {
	case OD_ENOTFOUND:
		api_error(r, 404, "not_found", "\"%s\" not found", r->param);
		break;
	case OD_ESTATE:
		api_error(r, 409, "conflict", "%s", err_str(rc));
		break;
	case OD_ELOCKHELD:
		api_error(r, 409, "lock_held", "lock is held");
		break;
	case OD_ELOCKLOST:
		api_error(r, 409, "lock_lost",
		          "lock expired or is held under another fence");
		break;
	case OD_EBUSY:
		api_error(r, 429, "rate_limited",
		          "too many requests in flight, retry later");
		break;
	case OD_EINVAL:
		api_error(r, 400, "invalid_request", "%s", err_str(rc));
		break;
	case OD_ESTORE:
	case OD_EUNKNOWN:
	case OD_ESHUTDOWN:
		api_error(r, 503, "unavailable", "store unavailable: %s",
		          err_str(rc));
		break;
	default:
		log_error("request failed", "request_id", r->rid, "route",
		          r->route_label, "error", err_str(rc), NULL);
		api_error(r, 500, "internal", "internal error");
		break;
	}
}

bool api_refuse_draining(http_req_t *r)
{
	if (!atomic_load(&r->srv->draining))
		return false;
	api_unavailable(r, "server is draining");
	return true;
}

/* ---- input ---- */

int api_body(http_req_t *r, json_t **ret)
{
	char msg[256];
	int rc;

	if (r->body.len == 0) {
		api_error(r, 400, "invalid_request", "request body required");
		return -1;
	}
	msg[0] = '\0';
	rc = jsonx_parse_object(r->body.data, r->body.len,
	                        r->srv->opt.json_depth, ret, msg, sizeof(msg));
	if (rc == -ENOMEM) {
		api_error(r, 500, "internal", "out of memory");
		return -1;
	}
	if (rc != 0) {
		api_error(r, 400, "invalid_request", "%s",
		          msg[0] ? msg : "invalid JSON body");
		return -1;
	}
	return 0;
}

int api_empty_body(http_req_t *r)
{
	static const char *const none[] = {NULL};
	json_t *body = NULL;
	int rc;

	if (r->body.len == 0)
		return 0;
	if (api_body(r, &body) != 0)
		return -1;
	rc = api_only_fields(r, body, none);
	json_decref(body);
	return rc;
}

int api_only_fields(http_req_t *r, json_t *obj, const char *const *allowed)
{
	char msg[256];

	if (fields_only(obj, allowed, msg, sizeof msg) == 0)
		return 0;
	api_error(r, 400, "invalid_request", "%s", msg);
	return -1;
}

int api_param(http_req_t *r, const char *what)
{
	if (r->param_ok)
		return 0;
	api_error(r, 400, "invalid_request",
	          "%s must be 1..%d characters of [A-Za-z0-9._:-]", what,
	          ID_MAX);
	return -1;
}

const char *api_query(http_req_t *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
	                                   name);
}

int api_query_int(http_req_t *r, const char *name, int64_t min, int64_t max,
                  int64_t *ret)
{
	const char *v = api_query(r, name);

	if (v == NULL)
		return 0;
	if (query_parse_int(v, min, max, ret) != 0) {
		api_error(r, 400, "invalid_request",
		          "%s must be an integer %" PRId64 "..%" PRId64, name,
		          min, max);
		return -1;
	}
	return 0;
}

int api_field_int(http_req_t *r, json_t *obj, const char *name, int64_t min,
                  int64_t max, bool absent_ok, int64_t *ret)
{
	char msg[256];

	if (fields_int(obj, name, min, max, absent_ok, ret, msg, sizeof msg) ==
	    0)
		return 0;
	api_error(r, 400, "invalid_request", "%s", msg);
	return -1;
}

int api_field_ident(http_req_t *r, json_t *obj, const char *name, char *out)
{
	char msg[256];

	if (fields_ident(obj, name, out, msg, sizeof msg) == 0)
		return 0;
	api_error(r, 400, "invalid_request", "%s", msg);
	return -1;
}

void api_req_release(http_req_t *r)
{
	if (r->orders != NULL) {
		for (size_t i = 0; i < r->n_orders; i++)
			order_clear(&r->orders[i]);
		free(r->orders);
	}
	r->orders = NULL;
	r->n_orders = 0;
	free(r->order_ptrs);
	r->order_ptrs = NULL;
	free(r->slots);
	r->slots = NULL;
	json_decref(r->results);
	r->results = NULL;
}
