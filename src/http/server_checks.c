/*
 * server_checks: the API's check order on a request's headers, decided on
 * libmicrohttpd's first call before any body byte is read (see API.md):
 * route and method (404, 405 with Allow), bearer auth (401, compared in
 * constant time), Content-Type (415), Content-Length against the route's
 * body cap (413).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/api.h"
#include "http/server_int.h"

#define AUTH_HEADER_MAX 4096 /* longer Authorization headers are refused */

/* Constant-time over the full length of both strings. */
static bool token_equal(const char *a, size_t la, const char *b, size_t lb)
{
	size_t n = la > lb ? la : lb;
	unsigned char diff = (unsigned char)(la != lb);

	for (size_t i = 0; i < n; i++) {
		unsigned char ca = i < la ? (unsigned char)a[i] : 0;
		unsigned char cb = i < lb ? (unsigned char)b[i] : 0;
		diff |= (unsigned char)(ca ^ cb);
	}
	return diff == 0;
}

static bool auth_enabled(const http_server_t *s)
{
	return s->opt.tokens != NULL && s->opt.tokens[0] != NULL;
}

static bool auth_ok(const http_server_t *s, const char *hdr)
{
	const char *tok;
	size_t len;
	bool ok = false;

	if (hdr == NULL || strnlen(hdr, AUTH_HEADER_MAX + 1) > AUTH_HEADER_MAX)
		return false;
	if (strncasecmp(hdr, "Bearer", 6) != 0 ||
	    (hdr[6] != ' ' && hdr[6] != '\t'))
		return false;
	tok = hdr + 7;
	while (*tok == ' ' || *tok == '\t')
		tok++;
	len = strlen(tok);
	while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
		len--;
	if (len == 0)
		return false;
	/* Every token is compared, so the time does not tell which matched. */
	for (const char *const *t = s->opt.tokens; *t != NULL; t++)
		ok |= token_equal(tok, len, *t, strlen(*t));
	return ok;
}

static bool content_type_json(const char *ct)
{
	static const char want[] = "application/json";
	size_t n = sizeof(want) - 1;

	if (ct == NULL)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, want, n) != 0)
		return false;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

/*
 * The header checks, in the API's order. Returns true when r->resp holds
 * the answer already.
 */
bool http_server_check_headers(http_req_t *r, const char *url)
{
	http_server_t *s = r->srv;
	const http_options_t *opt = &s->opt;
	const char *allow = NULL, *cl, *te, *ct;
	uint64_t len = 0;

	cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
	te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (cl != NULL) {
		char *end = NULL;
		errno = 0;
		unsigned long long v = strtoull(cl, &end, 10);
		if (errno != 0 || end == cl)
			v = UINT64_MAX;
		len = v;
	}
	r->has_body = (cl != NULL && len > 0) || te != NULL;
	/* Until a route sets it, no body is accepted beyond the default. */
	buf_init(&r->body, opt->body_max);
	r->route = api_match(r, r->method, url, &allow, &r->route_label);
	if (r->route == NULL) {
		if (allow != NULL) {
			api_error(r, 405, "method_not_allowed",
			          "method %s is not allowed on %s", r->method,
			          r->route_label);
			r->resp.allow = allow;
		} else {
			api_error(r, 404, "not_found", "no such route");
		}
		return true;
	}
	if (r->route->auth && auth_enabled(s) &&
	    !auth_ok(s, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                            "Authorization"))) {
		api_error(r, 401, "unauthorized",
		          "a valid Authorization: Bearer token is required");
		return true;
	}
	ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                 MHD_HTTP_HEADER_CONTENT_TYPE);
	if ((r->route->body || r->has_body) && !content_type_json(ct)) {
		api_error(r, 415, "unsupported_media_type",
		          "Content-Type must be application/json");
		return true;
	}
	/* Nothing is buffered yet: the headers come before the body. */
	buf_init(&r->body,
	         r->route->batch ? opt->batch_body_max : opt->body_max);
	if (cl != NULL && len > r->body.max) {
		api_error(r, 413, "payload_too_large",
		          "request body exceeds %zu bytes", r->body.max);
		return true;
	}
	return false;
}
