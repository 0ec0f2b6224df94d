/*
 * output: see output.h. Everything the server sends is untrusted text, so
 * values go through printf("%s") only, and missing or mistyped fields show
 * as "-" instead of failing: a display must never be the thing that breaks.
 */
#include "orderctl/output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "orderctl/ctl.h"

int output_exit_for_status(long status)
{
	if (status >= 200 && status < 300)
		return EX_OK;
	switch (status) {
	case 400:
	case 409:
	case 413:
	case 415:
		return EX_DATAERR;
	case 401:
	case 403:
		return EX_NOPERM;
	case 404:
		return EX_NOINPUT;
	case 429:
		return EX_TEMPFAIL;
	case 503:
		return EX_UNAVAILABLE;
	}
	if (status >= 500 && status < 600)
		return EX_SOFTWARE;
	if (status == 405)
		return EX_SOFTWARE; /* this client and the server disagree */
	return EX_PROTOCOL;
}

/* Exit code for a client_request() error. */
static int output_exit_for_transport(int rc)
{
	switch (rc) {
	case -ECONNREFUSED:
	case -ECONNRESET:
		return EX_UNAVAILABLE;
	case -ETIMEDOUT:
		return EX_TEMPFAIL;
	case -ENOMEM:
		return EX_OSERR;
	default:
		return EX_PROTOCOL;
	}
}

static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : dflt;
}

int output_http_error(const char *what, const client_response_t *resp)
{
	json_t *j = NULL;
	if (resp->body.len)
		j = json_loadb(resp->body.data, resp->body.len, 0, NULL);
	const json_t *err = json_object_get(j, "error");
	const char *msg = str_or(err, "message", NULL);
	const char *code = str_or(err, "code", NULL);
	if (msg && code) {
		const char *holder = str_or(j, "holder", NULL);
		if (holder)
			fprintf(stderr,
			        "orderctl: %s: %s by %s until %s (%s)\n", what,
			        msg, holder, str_or(j, "expires_at", "?"),
			        code);
		else
			fprintf(stderr, "orderctl: %s: %s (%s)\n", what, msg,
			        code);
	} else {
		/* Not the API's error shape (a proxy, a crash): the status is
		 * all we can trust. */
		fprintf(stderr, "orderctl: %s: unexpected answer (HTTP %ld)\n",
		        what, resp->status);
	}
	if (resp->retry_after >= 0 &&
	    (resp->status == 429 || resp->status == 503))
		fprintf(stderr,
		        "orderctl: %s: server asks to retry after %d s\n", what,
		        resp->retry_after);
	json_decref(j);
	return output_exit_for_status(resp->status);
}

int output_transport_error(const char *what, int rc, const char *errbuf)
{
	const char *kind = "request failed";
	switch (rc) {
	case -ECONNREFUSED:
		kind = "server unreachable";
		break;
	case -ECONNRESET:
		kind = "connection lost";
		break;
	case -ETIMEDOUT:
		kind = "timed out";
		break;
	case -EFBIG:
		kind = "response too large";
		break;
	}
	fprintf(stderr, "orderctl: %s: %s: %s\n", what, kind, errbuf);
	return output_exit_for_transport(rc);
}

void output_raw(const buf_t *body)
{
	size_t n = body->len;
	while (n > 0 &&
	       (body->data[n - 1] == '\n' || body->data[n - 1] == '\r' ||
	        body->data[n - 1] == ' ' || body->data[n - 1] == '\t'))
		n--;
	fwrite(body->data ? body->data : "", 1, n, stdout);
	fputc('\n', stdout);
}

const char *output_cell(const json_t *obj, const char *key,
                        char cell[OUT_CELL_LEN])
{
	const json_t *v = json_object_get(obj, key);
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(cell, OUT_CELL_LEN, "%" JSON_INTEGER_FORMAT,
		         json_integer_value(v));
		return cell;
	}
	if (json_is_real(v)) {
		snprintf(cell, OUT_CELL_LEN, "%g", json_real_value(v));
		return cell;
	}
	if (json_is_true(v))
		return "true";
	if (json_is_false(v))
		return "false";
	return "-";
}

/* "BOOK-1 x2, PEN-7 x10" */
static void print_items(FILE *f, const json_t *items)
{
	size_t i;
	const json_t *it;
	if (!json_is_array(items) || json_array_size(items) == 0) {
		fputs("-", f);
		return;
	}
	json_array_foreach(items, i, it)
	{
		char cell[OUT_CELL_LEN];
		fprintf(f, "%s%s x%s", i ? ", " : "", str_or(it, "sku", "?"),
		        output_cell(it, "qty", cell));
	}
}

void output_order(const json_t *o)
{
	static const char *const fields[] = {
	    "id",     "status",     "customer",   NULL,         "attempts",
	    "reason", "created_at", "updated_at", "finished_at"};
	char cell[OUT_CELL_LEN];
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		if (!fields[i]) {
			printf("%-12s", "items");
			print_items(stdout, json_object_get(o, "items"));
			putchar('\n');
			continue;
		}
		printf("%-12s%s\n", fields[i], output_cell(o, fields[i], cell));
	}
	const json_t *md = json_object_get(o, "metadata");
	if (json_is_object(md) && json_object_size(md) > 0) {
		char *text = json_dumps(md, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%-12s%s\n", "metadata", text ? text : "?");
		free(text);
	}
}

void output_order_table(const json_t *orders, bool header)
{
	size_t i;
	const json_t *o;
	char c1[OUT_CELL_LEN];
	if (header)
		printf("%-24s %-10s %-16s %3s %-24s %s\n", "ID", "STATUS",
		       "CUSTOMER", "ATT", "CREATED", "ITEMS");
	json_array_foreach(orders, i, o)
	{
		printf("%-24s %-10s %-16s %3s %-24s ", str_or(o, "id", "?"),
		       str_or(o, "status", "?"), str_or(o, "customer", "?"),
		       output_cell(o, "attempts", c1),
		       str_or(o, "created_at", "-"));
		print_items(stdout, json_object_get(o, "items"));
		putchar('\n');
	}
}

void output_product_table(const json_t *products, bool header)
{
	size_t i;
	const json_t *p;
	char cell[OUT_CELL_LEN];
	if (header)
		printf("%-24s %12s %s\n", "SKU", "STOCK", "UPDATED");
	json_array_foreach(products, i, p)
	    printf("%-24s %12s %s\n", str_or(p, "sku", "?"),
	           output_cell(p, "stock", cell), str_or(p, "updated_at", "-"));
}

void output_lock(const json_t *l)
{
	static const char *const fields[] = {"name", "owner", "fence",
	                                     "expires_at"};
	char cell[OUT_CELL_LEN];
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (json_object_get(l, fields[i]))
			printf("%-12s%s\n", fields[i],
			       output_cell(l, fields[i], cell));
}

#define FLAT_PATH 256 /* deeper paths are cut; a display, not a format */

/* The length of path after snprintf wrote n more bytes at len: cut to
 * FLAT_PATH - 1 when they did not fit, unchanged when it failed. */
static size_t flat_len(size_t len, int n)
{
	if (n < 0)
		return len;
	return (size_t)n >= FLAT_PATH - len ? FLAT_PATH - 1 : len + (size_t)n;
}

static void flat(const json_t *j, char *path, size_t len)
{
	if (json_is_object(j) && json_object_size(j) > 0) {
		const char *key;
		const json_t *v;
		json_object_foreach((json_t *)j, key, v)
		{
			int n = snprintf(path + len, FLAT_PATH - len, "%s%s",
			                 len ? "." : "", key);
			flat(v, path, flat_len(len, n));
			path[len] = '\0';
		}
		return;
	}
	if (json_is_array(j) && json_array_size(j) > 0) {
		size_t i;
		const json_t *v;
		json_array_foreach(j, i, v)
		{
			int n =
			    snprintf(path + len, FLAT_PATH - len, "[%zu]", i);
			flat(v, path, flat_len(len, n));
			path[len] = '\0';
		}
		return;
	}
	/* Strings unquoted, reals short (0.05, not 0.050000000000000003). */
	char *text = NULL, real[32];
	const char *shown;
	if (json_is_string(j)) {
		shown = json_string_value(j);
	} else if (json_is_real(j)) {
		snprintf(real, sizeof real, "%g", json_real_value(j));
		shown = real;
	} else {
		text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		shown = text ? text : "?";
	}
	printf("%-40s %s\n", len ? path : ".", shown);
	free(text);
}

void output_flat(const json_t *j)
{
	char path[FLAT_PATH] = "";
	flat(j, path, 0);
}
