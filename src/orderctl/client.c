/*
 * client: see client.h. One curl easy handle per client; every request sets
 * all of its per-request options again, so nothing leaks from one request
 * into the next (a GET after a POST, a longer timeout for a wait).
 */
#include "orderctl/client.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#define URL_MAX 8192 /* base URL plus path: far above any path we build */

struct client {
	CURL *curl;
	char *base;                  /* base URL without a trailing '/' */
	struct curl_slist *hdr_get;  /* Accept, Authorization, ... */
	struct curl_slist *hdr_body; /* the same plus Content-Type */
	long timeout_ms;
	/* Per-request state, written by the callbacks during one perform. */
	client_response_t *resp;
	bool too_big;
	char curl_err[CURL_ERROR_SIZE];
};

static bool curl_ready;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	client_t *c = arg;
	size_t n = size * nmemb;
	int rc = buf_append(&c->resp->body, ptr, n);
	if (rc == -EFBIG)
		c->too_big = true;
	return rc == 0 ? n : 0; /* a short count makes curl abort */
}

int client_retry_after(const char *line, size_t n)
{
	static const char name[] = "retry-after:";
	if (n <= sizeof name - 1 || strncasecmp(line, name, sizeof name - 1))
		return -1;
	/* Only the delta-seconds form; an HTTP-date is treated as absent and
	 * the caller falls back to its own delay. */
	char val[32];
	size_t i = sizeof name - 1, j = 0;
	while (i < n && (line[i] == ' ' || line[i] == '\t'))
		i++;
	while (i < n && j < sizeof val - 1 && isdigit((unsigned char)line[i]))
		val[j++] = line[i++];
	val[j] = '\0';
	if (j == 0)
		return -1;
	long long secs = strtoll(val, NULL, 10);
	return secs > CLIENT_MAX_RETRY_AFTER ? CLIENT_MAX_RETRY_AFTER
	                                     : (int)secs;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	client_t *c = arg;
	size_t n = size * nmemb;
	int secs = client_retry_after(ptr, n);
	if (secs >= 0)
		c->resp->retry_after = secs;
	return n;
}

static int add_header(struct curl_slist **list, const char *h)
{
	struct curl_slist *l = curl_slist_append(*list, h);
	if (!l)
		return -ENOMEM;
	*list = l;
	return 0;
}

static int build_headers(client_t *c, const char *token)
{
	char auth[1024];
	int rc = 0;
	if (add_header(&c->hdr_get, "Accept: application/json") < 0 ||
	    add_header(&c->hdr_get, "User-Agent: orderctl/" ORDERD_VERSION) < 0)
		return -ENOMEM;
	if (token && *token) {
		int n = snprintf(auth, sizeof auth, "Authorization: Bearer %s",
		                 token);
		if (n < 0 || (size_t)n >= sizeof auth)
			return -EINVAL;
		rc = add_header(&c->hdr_get, auth);
		/* The token must not linger in our memory longer than in
		 * curl's list. */
		explicit_bzero(auth, sizeof auth);
		if (rc < 0)
			return rc;
	}
	for (struct curl_slist *l = c->hdr_get; l; l = l->next)
		if (add_header(&c->hdr_body, l->data) < 0)
			return -ENOMEM;
	return add_header(&c->hdr_body, "Content-Type: application/json");
}

int client_new(const char *base_url, const char *token, long timeout_ms,
               client_t **ret)
{
	if (token)
		for (const char *p = token; *p; p++)
			if ((unsigned char)*p < 0x21 || *p == 0x7f)
				return -EINVAL; /* would break the header */
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -ENOMEM;
		curl_ready = true;
	}
	client_t *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	int rc = -ENOMEM;
	size_t len = strlen(base_url);
	while (len > 0 && base_url[len - 1] == '/')
		len--;
	c->base = strndup(base_url, len);
	c->curl = curl_easy_init();
	if (!c->base || !c->curl)
		goto fail;
	rc = build_headers(c, token);
	if (rc < 0)
		goto fail;
	c->timeout_ms = timeout_ms;
	CURL *h = c->curl;
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	*ret = c;
	return 0;
fail:
	client_free(c);
	return rc;
}

void client_free(client_t *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->hdr_get);
	curl_slist_free_all(c->hdr_body);
	free(c->base);
	free(c);
}

static int map_curl_error(CURLcode cc, bool too_big)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_WRITE_ERROR:
		return too_big ? -EFBIG : -ENOMEM;
	default:
		return -EPROTO;
	}
}

int client_request(client_t *c, const char *method, const char *path,
                   const char *body, size_t body_len, long extra_timeout_ms,
                   client_response_t *resp, char errbuf[CLIENT_ERRLEN])
{
	char url[URL_MAX];
	int n = snprintf(url, sizeof url, "%s%s", c->base, path);
	if (n < 0 || (size_t)n >= sizeof url) {
		snprintf(errbuf, CLIENT_ERRLEN, "URL longer than %d bytes",
		         URL_MAX);
		return -EPROTO;
	}
	resp->status = 0;
	resp->retry_after = -1;
	buf_init(&resp->body, CLIENT_MAX_BODY);
	c->resp = resp;
	c->too_big = false;
	c->curl_err[0] = '\0';

	CURL *h = c->curl;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
	                 c->timeout_ms + extra_timeout_ms);
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdr_get);
	} else {
		/* POST and PUT both carry a (possibly empty) JSON body. */
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)(body ? body_len : 0));
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
		                 strcmp(method, "POST") ? method : NULL);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER,
		                 body ? c->hdr_body : c->hdr_get);
	}

	CURLcode cc = curl_easy_perform(h);
	c->resp = NULL;
	if (cc != CURLE_OK) {
		int rc = map_curl_error(cc, c->too_big);
		if (rc == -EFBIG)
			snprintf(errbuf, CLIENT_ERRLEN,
			         "response larger than %u MiB",
			         CLIENT_MAX_BODY >> 20);
		else
			snprintf(errbuf, CLIENT_ERRLEN, "%s",
			         c->curl_err[0] ? c->curl_err
			                        : curl_easy_strerror(cc));
		buf_free(&resp->body);
		return rc;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	if (buf_append(&resp->body, "", 0) < 0) { /* NUL even when empty */
		snprintf(errbuf, CLIENT_ERRLEN, "out of memory");
		buf_free(&resp->body);
		return -ENOMEM;
	}
	return 0;
}

void client_response_free(client_response_t *resp)
{
	buf_free(&resp->body);
}

char *client_escape(client_t *c, const char *s)
{
	char *e = curl_easy_escape(c->curl, s, 0);
	if (!e)
		return NULL;
	char *copy = strdup(e);
	curl_free(e);
	return copy;
}
