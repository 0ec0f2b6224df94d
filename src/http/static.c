/*
 * static: serves the embedded dashboard files (static.h). Every answer is
 * Cache-Control: no-cache with the build-time ETag, so a browser
 * revalidates and gets 304 until the binary changes. The HTML carries the
 * security headers: a Content-Security-Policy that allows only this
 * origin's files (no inline script or style), no sniffing, no referrer, no
 * framing.
 */
#include "http/static.h"

#include <stdlib.h>
#include <string.h>

#include "http/api.h"

#define CSP                                                                    \
	"default-src 'self'; script-src 'self'; style-src 'self'; "            \
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; "          \
	"form-action 'none'; frame-ancestors 'none'"

const static_asset_t *static_lookup(const char *name)
{
	if (name[0] == '\0')
		name = "index.html";
	for (size_t i = 0; i < static_assets_n; i++)
		if (strcmp(static_assets[i].name, name) == 0)
			return &static_assets[i];
	return NULL;
}

const static_asset_t *static_find(const char *path)
{
	if (path == NULL || path[0] != '/' || strchr(path + 1, '/') != NULL)
		return NULL;
	return static_lookup(path + 1);
}

bool static_etag_match(const char *inm, const char *etag)
{
	size_t el = strlen(etag);
	const char *p = inm;

	if (inm == NULL)
		return false;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 1 && p[0] == '*')
			return true;
		/* If-None-Match uses the weak comparison (RFC 9110 13.1.2). */
		const char *t = p;
		size_t tl = n;
		if (tl > 2 && t[0] == 'W' && t[1] == '/') {
			t += 2;
			tl -= 2;
		}
		if (tl == el && memcmp(t, etag, el) == 0)
			return true;
		p += e ? (size_t)(e - p) : strlen(p);
	}
	return false;
}

static void set_headers(http_req_t *r, const static_asset_t *a)
{
	const char **h = r->resp.extra;
	size_t i = 0;

	h[i++] = "Cache-Control";
	h[i++] = "no-cache";
	h[i++] = "ETag";
	h[i++] = a->etag;
	h[i++] = "X-Content-Type-Options";
	h[i++] = "nosniff";
	if (strncmp(a->content_type, "text/html", 9) == 0) {
		h[i++] = "Content-Security-Policy";
		h[i++] = CSP;
		h[i++] = "Referrer-Policy";
		h[i++] = "no-referrer";
		h[i++] = "X-Frame-Options";
		h[i++] = "DENY";
	}
	h[i] = NULL;
}

void api_static_get(http_req_t *r)
{
	const static_asset_t *a = static_lookup(r->param);
	const char *inm;

	if (a == NULL) {
		api_error(r, 404, "not_found", "no such route");
		return;
	}
	inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                  MHD_HTTP_HEADER_IF_NONE_MATCH);
	api_no_content(r);
	if (static_etag_match(inm, a->etag)) {
		r->resp.status = 304;
	} else {
		char *body = malloc(a->len > 0 ? a->len : 1);
		if (body == NULL) {
			api_error(r, 500, "internal", "out of memory");
			return;
		}
		memcpy(body, a->data, a->len);
		r->resp.status = 200;
		r->resp.body = body;
		r->resp.len = a->len;
		r->resp.content_type = a->content_type;
	}
	set_headers(r, a);
}
