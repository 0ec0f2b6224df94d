/*
 * ctl: the helpers every command shares (see ctl.h): argument checks and
 * the one request path that prints the server's errors and maps them to
 * exit codes, so each command only handles its success case.
 */
#include "orderctl/ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/order.h"
#include "orderctl/output.h"

int ctl_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	if (!s || !*s)
		return -EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

int ctl_check_ident(const ctl_t *ctl, const char *what, const char *s)
{
	if (order_ident_valid(s, ID_MAX))
		return 0;
	return ctl_usage_error(ctl,
	                       "invalid %s '%.80s': must be 1-%d characters "
	                       "from [A-Za-z0-9._:-]",
	                       what, s, ID_MAX);
}

client_t *ctl_client(ctl_t *ctl)
{
	if (ctl->client)
		return ctl->client;
	int rc = client_new(ctl->url, ctl->token, ctl->timeout_s * 1000,
	                    &ctl->client);
	if (rc == -EINVAL)
		fprintf(stderr,
		        "orderctl: the token contains spaces or control "
		        "characters\n");
	else if (rc < 0)
		fprintf(stderr, "orderctl: cannot start the HTTP client: %s\n",
		        rc == -ENOMEM ? "out of memory" : "curl failed");
	return rc < 0 ? NULL : ctl->client;
}

int ctl_call(ctl_t *ctl, const char *what, const char *method, const char *path,
             const json_t *body, long extra_timeout_ms, json_t **ret_json)
{
	client_t *c = ctl_client(ctl);
	if (!c)
		return EX_USAGE;
	char *text = NULL;
	if (body) {
		text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!text) {
			fprintf(stderr, "orderctl: %s: out of memory\n", what);
			return EX_OSERR;
		}
	}
	client_response_t resp;
	char errbuf[CLIENT_ERRLEN];
	int rc = client_request(c, method, path, text, text ? strlen(text) : 0,
	                        extra_timeout_ms, &resp, errbuf);
	free(text);
	if (rc < 0)
		return output_transport_error(what, rc, errbuf);
	int ex;
	if (resp.status < 200 || resp.status >= 300) {
		ex = output_http_error(what, &resp);
		goto out;
	}
	json_t *j = NULL;
	if (resp.body.len) {
		json_error_t jerr;
		j = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
		if (!j) {
			fprintf(stderr,
			        "orderctl: %s: the server's answer is not "
			        "JSON: %s\n",
			        what, jerr.text);
			ex = EX_PROTOCOL;
			goto out;
		}
	}
	if (ctl->json && resp.body.len)
		output_raw(&resp.body);
	if (ret_json)
		*ret_json = j;
	else
		json_decref(j);
	ex = EX_OK;
out:
	client_response_free(&resp);
	return ex;
}

int ctl_getopt(ctl_t *ctl, int argc, char **argv, const struct option *opts,
               ctl_option_fn on_opt, void *arg)
{
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int rc;
		if (c >= CTL_OPT_FIRST_FREE && on_opt)
			rc = on_opt(ctl, arg, c, optarg);
		else
			rc = ctl_common_option(ctl, c, optarg);
		if (rc)
			return rc;
	}
	return 0;
}

int ctl_page_option(ctl_t *ctl, void *arg, int c, const char *optarg)
{
	ctl_page_args_t *a = arg;
	switch (c) {
	case CTL_OPT_CURSOR:
		a->cursor = optarg;
		return 0;
	case CTL_OPT_ALL:
		a->all = true;
		return 0;
	case CTL_OPT_LIMIT:
		if (ctl_parse_int(optarg, 1, CTL_PAGE_LIMIT_MAX, &a->limit) < 0)
			return ctl_usage_error(ctl, "--limit must be 1..%d",
			                       CTL_PAGE_LIMIT_MAX);
		return 0;
	}
	return ctl_usage_error(ctl, "bad option");
}

#define PATH_MAX_LEN 2048 /* our paths: a route, ids and an opaque cursor */

int ctl_pages(ctl_t *ctl, const char *what, const char *path, const char *key,
              const char *start, bool all, ctl_page_fn show)
{
	client_t *c = ctl_client(ctl);
	if (!c)
		return EX_USAGE;
	/* The escaped cursor of the page to fetch. */
	char *cursor = start ? client_escape(c, start) : NULL;
	if (start && !cursor) {
		fprintf(stderr, "orderctl: %s: out of memory\n", what);
		return EX_OSERR;
	}
	int ex = EX_OK;
	for (bool first = true;; first = false) {
		char full[PATH_MAX_LEN];
		int n =
		    snprintf(full, sizeof full, "%s%s%s", path,
		             cursor ? "&cursor=" : "", cursor ? cursor : "");
		if (n < 0 || (size_t)n >= sizeof full) {
			fprintf(stderr, "orderctl: %s: cursor too long\n",
			        what);
			ex = EX_PROTOCOL;
			break;
		}
		json_t *page = NULL;
		ex = ctl_call(ctl, what, "GET", full, NULL, 0, &page);
		if (ex != EX_OK)
			break;
		const json_t *items = json_object_get(page, key);
		const char *next =
		    json_string_value(json_object_get(page, "next_cursor"));
		if (!json_is_array(items)) {
			fprintf(stderr,
			        "orderctl: %s: answer has no '%s' array\n",
			        what, key);
			json_decref(page);
			ex = EX_PROTOCOL;
			break;
		}
		if (!ctl->json)
			show(items, first);
		if (next && !all && !ctl->json)
			fprintf(stderr,
			        "orderctl: more %s follow: use --all or "
			        "--cursor '%s'\n",
			        key, next);
		char *escaped = next && all ? client_escape(c, next) : NULL;
		bool failed = next && all && !escaped;
		json_decref(page);
		if (failed) {
			fprintf(stderr, "orderctl: %s: out of memory\n", what);
			ex = EX_OSERR;
			break;
		}
		if (!escaped)
			break; /* the last page, or the only one wanted */
		/* A server that hands back the cursor it was given would page
		 * forever: stop instead. */
		bool stuck = cursor && strcmp(escaped, cursor) == 0;
		free(cursor);
		cursor = escaped;
		if (stuck) {
			fprintf(stderr,
			        "orderctl: %s: the server repeated its "
			        "cursor\n",
			        what);
			ex = EX_PROTOCOL;
			break;
		}
	}
	free(cursor);
	return ex;
}
