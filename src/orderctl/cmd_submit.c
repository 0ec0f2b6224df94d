/*
 * cmd_submit: `submit [FILE|-]` reads orders (one JSON object, a JSON array
 * of objects, or JSON lines) and sends them to POST /v1/orders/batch in
 * batches of at most 1000 orders and 4 MiB, printing one line per order in
 * input order. Entries that cannot be sent at all (bad JSON, not an object,
 * too big) are reported as invalid in their place; everything else is
 * validated by the server, which is the one authority on what is valid.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/order.h"
#include "orderctl/ctl.h"
#include "orderctl/output.h"

#define INPUT_MAX (64u << 20)      /* whole input; split bigger files */
#define LINE_MAX_BYTES (1u << 20)  /* one JSON line */
#define BATCH_MAX_ORDERS 1000      /* API: orders per batch */
#define BATCH_MAX_BYTES (4u << 20) /* API: batch body limit */
#define SUBMIT_TRIES 5             /* sends of one batch on 429/503 */
#define BACKOFF_MAX_S 8            /* without Retry-After: 1, 2, 4, 8 s */
#define LABEL_LEN 80
#define MSG_LEN 512

static const char ENVELOPE_HEAD[] = "{\"orders\":[";
static const char ENVELOPE_TAIL[] = "]}";

typedef struct entry {
	char label[LABEL_LEN]; /* the order's id, else "line N" / "#N" */
	bool local;            /* not sent: error says why */
	char error[MSG_LEN];
} entry_t;

typedef struct submit {
	ctl_t *ctl;
	entry_t entries[BATCH_MAX_ORDERS]; /* the current batch, input order */
	size_t n;                          /* entries used */
	size_t n_sent;                     /* entries that are in body */
	size_t batch_no;                   /* batches flushed so far */
	buf_t body;                        /* the batch request body */
	/* Tallies over the whole run. */
	size_t created, replayed, conflict, invalid, failed, unsent;
	int ex_other; /* first exit code that is not a data error, or 0 */
	bool stopped; /* a batch failed as a whole: send nothing more */
} submit_t;

/* ---- printing results ---- */

static void print_local(submit_t *s, const entry_t *e)
{
	s->invalid++;
	if (!s->ctl->json) {
		printf("%s invalid: %s\n", e->label, e->error);
		return;
	}
	/* The same shape as a server result, so --json output is uniform. */
	char msg[LABEL_LEN + 2 + MSG_LEN];
	snprintf(msg, sizeof msg, "%s: %s", e->label, e->error);
	json_t *j = json_pack("{sis{ssss}}", "status", 400, "error", "code",
	                      "invalid_request", "message", msg);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	printf("%s\n", text ? text : "{\"status\":400}");
	free(text);
	json_decref(j);
}

static void print_result(submit_t *s, const entry_t *e, const json_t *r)
{
	json_int_t st = json_integer_value(json_object_get(r, "status"));
	const json_t *err = json_object_get(r, "error");
	const char *msg = json_string_value(json_object_get(err, "message"));
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *word;
	switch (st) {
	case 201:
		word = "created";
		s->created++;
		break;
	case 200:
		word = "replayed";
		s->replayed++;
		break;
	case 409:
		word = "conflict";
		s->conflict++;
		break;
	case 400:
		word = "invalid";
		s->invalid++;
		break;
	default:
		word = "failed";
		s->failed++;
		if (!s->ex_other)
			s->ex_other = output_exit_for_status((long)st);
	}
	if (s->ctl->json) {
		char *text = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s\n", text ? text : "{}");
		free(text);
	} else if (st == 200 || st == 201) {
		printf("%s %s\n", e->label, word);
	} else if (st == 400 || st == 409) {
		printf("%s %s: %s\n", e->label, word, msg ? msg : "?");
	} else {
		printf("%s %s: %s (%s)\n", e->label, word, msg ? msg : "?",
		       code ? code : "?");
	}
}

/* ---- sending a batch ---- */

static void clear_batch(submit_t *s)
{
	s->n = 0;
	s->n_sent = 0;
	buf_reset(&s->body);
}

/*
 * Sends the batch body, retrying on 429 and 503 (honouring Retry-After)
 * and on a connection lost mid-request, up to SUBMIT_TRIES sends. Resending
 * the whole batch is safe because submit is idempotent per order id: an
 * order the server already committed comes back as a replay (200), never
 * as a second order. Returns client_request()'s result.
 */
static int send_batch(submit_t *s, client_t *c, client_response_t *resp,
                      char errbuf[CLIENT_ERRLEN])
{
	for (int attempt = 1;; attempt++) {
		int rc =
		    client_request(c, "POST", "/v1/orders/batch", s->body.data,
		                   s->body.len, 0, resp, errbuf);
		bool transient =
		    rc == -ECONNRESET ||
		    (rc == 0 && (resp->status == 429 || resp->status == 503));
		if (!transient || attempt == SUBMIT_TRIES)
			return rc;
		int delay = 1 << (attempt - 1);
		if (delay > BACKOFF_MAX_S)
			delay = BACKOFF_MAX_S;
		if (rc == 0 && resp->retry_after >= 0)
			delay = resp->retry_after;
		fprintf(stderr,
		        "orderctl: submit: batch %zu: %s; retrying in "
		        "%d s (try %d of %d)\n",
		        s->batch_no,
		        rc                    ? "connection lost"
		        : resp->status == 429 ? "rate limited"
		                              : "unavailable",
		        delay, attempt + 1, SUBMIT_TRIES);
		if (rc == 0)
			client_response_free(resp);
		sleep((unsigned)delay);
	}
}

/* Marks the batch's orders unsent and stops the run with exit code ex. */
static void stop(submit_t *s, int ex)
{
	s->unsent += s->n_sent;
	s->stopped = true;
	if (!s->ex_other)
		s->ex_other = ex;
}

static void flush(submit_t *s)
{
	if (s->n == 0)
		return;
	if (s->stopped) {
		/* An earlier batch failed as a whole: nothing more is sent. */
		s->unsent += s->n_sent;
		clear_batch(s);
		return;
	}
	s->batch_no++;
	json_t *answer = NULL;
	const json_t *results = NULL;
	client_response_t resp = {0};
	bool have_resp = false;
	char what[64];
	snprintf(what, sizeof what, "submit: batch %zu", s->batch_no);

	if (s->n_sent > 0) {
		client_t *c = ctl_client(s->ctl);
		if (!c) {
			stop(s, EX_USAGE);
			goto print;
		}
		char errbuf[CLIENT_ERRLEN];
		if (buf_append(&s->body, ENVELOPE_TAIL,
		               sizeof ENVELOPE_TAIL - 1)) {
			stop(s, EX_OSERR); /* room was reserved: no memory */
			goto print;
		}
		int rc = send_batch(s, c, &resp, errbuf);
		if (rc < 0) {
			stop(s, output_transport_error(what, rc, errbuf));
			goto print;
		}
		have_resp = true;
		if (resp.status != 200) {
			stop(s, output_http_error(what, &resp));
			goto print;
		}
		answer = json_loadb(resp.body.data, resp.body.len, 0, NULL);
		results = json_object_get(answer, "results");
		if (!json_is_array(results) ||
		    json_array_size(results) != s->n_sent) {
			fprintf(stderr,
			        "orderctl: %s: the answer does not hold "
			        "one result per order\n",
			        what);
			stop(s, EX_PROTOCOL);
			results = NULL;
		}
	}
print:;
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++) {
		const entry_t *e = &s->entries[i];
		if (e->local)
			print_local(s, e);
		else if (results)
			print_result(s, e, json_array_get(results, k++));
	}
	json_decref(answer);
	if (have_resp)
		client_response_free(&resp);
	clear_batch(s);
}

/* ---- collecting entries ---- */

static void set_label(entry_t *e, const json_t *order, const char *where)
{
	const char *id = json_string_value(json_object_get(order, "id"));
	if (id && order_ident_valid(id, ID_MAX))
		snprintf(e->label, sizeof e->label, "%s", id);
	else
		snprintf(e->label, sizeof e->label, "%s", where);
}

static entry_t *next_entry(submit_t *s)
{
	if (s->n == BATCH_MAX_ORDERS)
		flush(s);
	entry_t *e = &s->entries[s->n++];
	e->local = false;
	return e;
}

/* Adds an entry that will not be sent, with its reason. */
static void add_invalid(submit_t *s, const char *where, const char *msg)
{
	if (s->stopped)
		return;
	entry_t *e = next_entry(s);
	snprintf(e->label, sizeof e->label, "%s", where);
	snprintf(e->error, sizeof e->error, "%s", msg);
	e->local = true;
}

/* Adds one parsed JSON value from the input; where is "line N" or "#N". */
static void add_value(submit_t *s, const json_t *v, const char *where)
{
	if (s->stopped)
		return;
	if (!json_is_object(v)) {
		add_invalid(s, where, "an order must be a JSON object");
		return;
	}
	char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text) {
		add_invalid(s, where, "out of memory");
		return;
	}
	size_t len = strlen(text);
	size_t room = BATCH_MAX_BYTES - (sizeof ENVELOPE_HEAD - 1) -
	              (sizeof ENVELOPE_TAIL - 1);
	if (len > room) {
		add_invalid(s, where,
		            "order larger than the 4 MiB batch limit");
		goto out;
	}
	/* Flush first when this order would push the body past the limit. */
	if (s->n_sent &&
	    s->body.len + 1 + len + sizeof ENVELOPE_TAIL - 1 > BATCH_MAX_BYTES)
		flush(s);
	if (s->stopped)
		goto out;
	entry_t *e = next_entry(s);
	set_label(e, v, where);
	int rc = 0;
	if (s->body.len == 0)
		rc = buf_append(&s->body, ENVELOPE_HEAD,
		                sizeof ENVELOPE_HEAD - 1);
	if (!rc && s->n_sent)
		rc = buf_append(&s->body, ",", 1);
	if (!rc)
		rc = buf_append(&s->body, text, len);
	if (rc) {
		e->local = true;
		snprintf(e->error, sizeof e->error, "out of memory");
	} else {
		s->n_sent++;
	}
out:
	free(text);
}

static void parse_error(char *msg, size_t len, const json_error_t *err)
{
	snprintf(msg, len, "invalid JSON: %s (column %d)", err->text,
	         err->column);
}

/* JSON lines: each non-blank line is one order. */
static void add_lines(submit_t *s, char *data, size_t len)
{
	size_t lineno = 0;
	char *p = data, *end = data + len;
	while (p < end && !s->stopped) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eol = nl ? nl : end;
		size_t n = (size_t)(eol - p);
		lineno++;
		char where[32], msg[MSG_LEN];
		snprintf(where, sizeof where, "line %zu", lineno);
		if (n && p[n - 1] == '\r')
			n--;
		/* Blank lines are skipped. strspn stops at the '\n' (or at
		 * the NUL the buffer ends with), so it stays in this line. */
		if (strspn(p, " \t\r") >= n) {
			/* nothing */
		} else if (n > LINE_MAX_BYTES) {
			add_invalid(s, where, "line longer than 1 MiB");
		} else {
			json_error_t err;
			json_t *v =
			    json_loadb(p, n, JSON_REJECT_DUPLICATES, &err);
			if (v) {
				add_value(s, v, where);
				json_decref(v);
			} else {
				parse_error(msg, sizeof msg, &err);
				add_invalid(s, where, msg);
			}
		}
		p = nl ? nl + 1 : end;
	}
}

/* Sorts the input into array, single object or JSON lines (see docs). */
static int add_input(submit_t *s, char *data, size_t len)
{
	size_t skip = 0;
	if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		skip = 3; /* a UTF-8 byte order mark */
	skip += strspn(data + skip, " \t\r\n");
	data += skip;
	len -= skip;
	if (len == 0)
		return EX_OK;
	json_error_t err;
	json_t *all = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
	if (data[0] == '[') {
		if (!json_is_array(all)) {
			fprintf(stderr,
			        "orderctl: submit: input is not a valid "
			        "JSON array: %s (line %d, column %d)\n",
			        err.text, err.line, err.column);
			json_decref(all);
			return EX_DATAERR;
		}
		size_t i;
		json_t *v;
		json_array_foreach(all, i, v)
		{
			char where[32];
			snprintf(where, sizeof where, "#%zu", i + 1);
			add_value(s, v, where);
		}
	} else if (all) {
		add_value(s, all, "#1");
	} else {
		add_lines(s, data, len);
	}
	json_decref(all);
	return EX_OK;
}

static int read_input(const char *path, buf_t *in)
{
	bool is_stdin = !path || strcmp(path, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	const char *name = is_stdin ? "stdin" : path;
	if (!f) {
		fprintf(stderr, "orderctl: submit: cannot open '%s': %s\n",
		        name, strerror(errno));
		return EX_NOINPUT;
	}
	int ex = EX_OK;
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		int rc = buf_append(in, chunk, n);
		if (rc == -EFBIG) {
			fprintf(stderr,
			        "orderctl: submit: '%s' is larger than "
			        "%u MiB: split it\n",
			        name, INPUT_MAX >> 20);
			ex = EX_DATAERR;
			break;
		} else if (rc) {
			fprintf(stderr, "orderctl: submit: out of memory\n");
			ex = EX_OSERR;
			break;
		}
	}
	if (ex == EX_OK && ferror(f)) {
		fprintf(stderr, "orderctl: submit: cannot read '%s': %s\n",
		        name, strerror(errno));
		ex = EX_NOINPUT;
	}
	if (!is_stdin)
		fclose(f);
	return ex;
}

int cmd_submit(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {CTL_COMMON_OPTIONS, {0}};
	int rc = ctl_getopt(ctl, argc, argv, opts, NULL, NULL);
	if (rc)
		return CTL_EXIT(rc);
	if (argc - optind > 1)
		return ctl_usage_error(ctl, "expected at most one FILE");
	buf_t in;
	buf_init(&in, INPUT_MAX);
	int ex = read_input(argc - optind ? argv[optind] : NULL, &in);
	if (ex != EX_OK || in.len == 0)
		goto free_input;

	submit_t *s = calloc(1, sizeof *s);
	if (!s) {
		ex = EX_OSERR;
		goto free_input;
	}
	s->ctl = ctl;
	buf_init(&s->body, BATCH_MAX_BYTES);
	ex = add_input(s, in.data, in.len);
	flush(s);
	fprintf(stderr,
	        "submit: %zu created, %zu replayed, %zu conflict, "
	        "%zu invalid",
	        s->created, s->replayed, s->conflict, s->invalid);
	if (s->failed)
		fprintf(stderr, ", %zu failed", s->failed);
	if (s->stopped)
		fprintf(stderr, ", %zu not sent; stopped, later input not sent",
		        s->unsent);
	fputc('\n', stderr);
	if (ex == EX_OK)
		ex = s->ex_other                 ? s->ex_other
		     : s->invalid || s->conflict ? EX_DATAERR
		                                 : EX_OK;
	clear_batch(s);
	buf_free(&s->body);
	free(s);
free_input:
	buf_free(&in);
	return ex;
}
