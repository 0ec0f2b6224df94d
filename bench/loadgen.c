/*
 * loadgen: an HTTP load generator for orderd, standalone (not linked with
 * the orderd library). One thread drives C keep-alive connections through
 * the libcurl multi interface, each with exactly one request in flight, so
 * C is the offered concurrency (a closed-loop load, like C clients).
 *
 *   submit  POST /v1/orders, one order per request, ids PREFIX-N
 *   batch   POST /v1/orders/batch, B orders per request
 *   livez   GET /livez: no body, no store; the HTTP stack's own ceiling
 *           with the same connections and the same client
 *
 * It runs for --seconds or until --requests requests have been started,
 * records every request's latency in a preallocated array (reservoir
 * sampling once the array is full, so memory stays bounded on long runs),
 * counts HTTP statuses (0 = transport error), and prints one JSON object to
 * stdout. bench/bench.py parses that object.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LG_MAX_CONNS 1024
#define LG_MAX_BATCH 1000
#define LG_MAX_ITEMS 100
#define LG_MAX_STATUS 600
/* Sized for the API's 4 MiB batch body limit and its answer. */
#define LG_RESP_MAX (8u << 20)
#define LG_ID_MAX 64
#define LG_DEFAULT_SAMPLES 1000000

enum lg_mode { LG_SUBMIT, LG_BATCH, LG_LIVEZ };

struct lg_opts {
	const char *url; /* base, e.g. http://127.0.0.1:8080 */
	enum lg_mode mode;
	long conns;
	double seconds;
	double warmup;      /* leading seconds not recorded */
	long long requests; /* 0 = no count limit */
	long batch;
	long skus;
	long items;
	const char *prefix;
	const char *sku_prefix;
	const char *token;
	long long max_samples;
};

/* One connection slot: its easy handle and the request in flight. */
struct lg_conn {
	CURL *easy;
	char *body; /* request body, rebuilt per request */
	size_t body_cap;
	char *resp; /* response body, kept only in batch mode */
	size_t resp_len;
	size_t resp_cap;
	bool resp_truncated;
	double started; /* monotonic seconds */
	long norders;   /* orders in this request */
	bool recorded;  /* started after warmup */
};

struct lg_state {
	const struct lg_opts *o;
	long long next_id; /* order counter */
	long long started;
	long long done; /* completed and recorded */
	long long ok;   /* 2xx */
	long long by_status[LG_MAX_STATUS];
	long long orders_sent; /* in recorded requests */
	long long
	    orders_ok; /* accepted orders (201/200) in recorded requests */
	long long order_status[LG_MAX_STATUS]; /* batch: per-order results */
	long long resp_truncated;
	bool reported[LG_MAX_STATUS]; /* first failure of a status printed */
	uint32_t *lat_us;             /* samples, capacity max_samples */
	long long nsamples;
	uint64_t rng;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: enough for reservoir slots. */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 2685821657736338717ull;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: loadgen --url URL [--mode submit|batch|livez]"
	    " [--connections C]\n"
	    "               [--seconds S | --requests N] [--warmup S]\n"
	    "               [--batch B] [--skus K] [--items I] [--prefix P]\n"
	    "               [--sku-prefix P] [--token T] [--max-samples N]\n"
	    "Prints one JSON object with throughput and latency to stdout.\n");
}

static int parse_ll(const char *s, long long lo, long long hi, long long *ret)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_dbl(const char *s, double lo, double hi, double *ret)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct lg_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "loadgen: %s: missing value\n", a);
			return -EINVAL;
		}
		const char *v = argv[++i];
		long long n = 0;
		int rc = 0;
		if (strcmp(a, "--url") == 0) {
			o->url = v;
		} else if (strcmp(a, "--mode") == 0) {
			if (strcmp(v, "submit") == 0)
				o->mode = LG_SUBMIT;
			else if (strcmp(v, "batch") == 0)
				o->mode = LG_BATCH;
			else if (strcmp(v, "livez") == 0)
				o->mode = LG_LIVEZ;
			else
				rc = -EINVAL;
		} else if (strcmp(a, "--connections") == 0) {
			rc = parse_ll(v, 1, LG_MAX_CONNS, &n);
			o->conns = (long)n;
		} else if (strcmp(a, "--seconds") == 0) {
			rc = parse_dbl(v, 0.01, 86400, &o->seconds);
		} else if (strcmp(a, "--warmup") == 0) {
			rc = parse_dbl(v, 0, 3600, &o->warmup);
		} else if (strcmp(a, "--requests") == 0) {
			rc = parse_ll(v, 1, 1000000000000LL, &o->requests);
		} else if (strcmp(a, "--batch") == 0) {
			rc = parse_ll(v, 1, LG_MAX_BATCH, &n);
			o->batch = (long)n;
		} else if (strcmp(a, "--skus") == 0) {
			rc = parse_ll(v, 1, 1000000, &n);
			o->skus = (long)n;
		} else if (strcmp(a, "--items") == 0) {
			rc = parse_ll(v, 1, LG_MAX_ITEMS, &n);
			o->items = (long)n;
		} else if (strcmp(a, "--prefix") == 0) {
			o->prefix = v;
		} else if (strcmp(a, "--sku-prefix") == 0) {
			o->sku_prefix = v;
		} else if (strcmp(a, "--token") == 0) {
			o->token = v;
		} else if (strcmp(a, "--max-samples") == 0) {
			rc = parse_ll(v, 1, 100000000, &o->max_samples);
		} else {
			fprintf(stderr, "loadgen: unknown flag %s\n", a);
			usage(stderr);
			return -EINVAL;
		}
		if (rc) {
			fprintf(stderr, "loadgen: %s: bad value \"%s\"\n", a,
			        v);
			return rc;
		}
	}
	if (!o->url) {
		usage(stderr);
		return -EINVAL;
	}
	if (o->items > o->skus) {
		fprintf(stderr, "loadgen: --items %ld exceeds --skus %ld\n",
		        o->items, o->skus);
		return -EINVAL;
	}
	/* prefix + "-" + up to 19 digits must stay a valid 64-char id. */
	if (strlen(o->prefix) > LG_ID_MAX - 21 ||
	    strlen(o->sku_prefix) > LG_ID_MAX - 8) {
		fprintf(stderr, "loadgen: prefix too long\n");
		return -EINVAL;
	}
	return 0;
}

/* Appends to c->body, growing it; the size is bounded by B*items. */
static int body_add(struct lg_conn *c, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int body_add(struct lg_conn *c, size_t *len, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(c->body + *len, c->body_cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if ((size_t)n < c->body_cap - *len) {
			*len += (size_t)n;
			return 0;
		}
		size_t cap = c->body_cap * 2;
		while (cap - *len <= (size_t)n)
			cap *= 2;
		char *nb = realloc(c->body, cap);
		if (!nb)
			return -ENOMEM;
		c->body = nb;
		c->body_cap = cap;
	}
}

/* One order object; skus are spread round-robin over the K products. */
static int add_order(struct lg_state *st, struct lg_conn *c, size_t *len)
{
	const struct lg_opts *o = st->o;
	long long id = st->next_id++;
	int rc = body_add(c, len,
	                  "{\"id\":\"%s-%lld\",\"customer\":\"bench-c%lld\","
	                  "\"items\":[",
	                  o->prefix, id, id % 1000);
	for (long i = 0; rc == 0 && i < o->items; i++) {
		long sku = (long)((id * o->items + i) % o->skus);
		rc = body_add(c, len, "%s{\"sku\":\"%s%ld\",\"qty\":1}",
		              i ? "," : "", o->sku_prefix, sku);
	}
	if (rc == 0)
		rc = body_add(c, len, "]}");
	return rc;
}

static int build_body(struct lg_state *st, struct lg_conn *c)
{
	size_t len = 0;
	int rc;
	if (st->o->mode == LG_LIVEZ) {
		c->norders = 0;
		return 0;
	}
	if (st->o->mode == LG_SUBMIT) {
		c->norders = 1;
		return add_order(st, c, &len);
	}
	c->norders = st->o->batch;
	rc = body_add(c, &len, "{\"orders\":[");
	for (long i = 0; rc == 0 && i < st->o->batch; i++) {
		if (i)
			rc = body_add(c, &len, ",");
		if (rc == 0)
			rc = add_order(st, c, &len);
	}
	if (rc == 0)
		rc = body_add(c, &len, "]}");
	return rc;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct lg_conn *c = arg;
	size_t n = size * nmemb;
	if (c->resp_len + n > LG_RESP_MAX) {
		c->resp_truncated = true;
		return n;
	}
	if (c->resp_len + n + 1 > c->resp_cap) {
		size_t cap = c->resp_cap ? c->resp_cap : 65536;
		while (cap < c->resp_len + n + 1)
			cap *= 2;
		char *nr = realloc(c->resp, cap);
		if (!nr) {
			c->resp_truncated = true;
			return n;
		}
		c->resp = nr;
		c->resp_cap = cap;
	}
	memcpy(c->resp + c->resp_len, data, n);
	c->resp_len += n;
	c->resp[c->resp_len] = '\0';
	return n;
}

static void record_latency(struct lg_state *st, double secs)
{
	double us = secs * 1e6;
	uint32_t v = us > 4e9 ? UINT32_MAX : (uint32_t)us;
	long long seen = st->done; /* samples offered before this one */
	if (st->nsamples < st->o->max_samples) {
		st->lat_us[st->nsamples++] = v;
		return;
	}
	uint64_t slot = rng_next(&st->rng) % (uint64_t)(seen + 1);
	if (slot < (uint64_t)st->o->max_samples)
		st->lat_us[slot] = v;
}

/* Batch mode: counts the per-order statuses in {"results":[...]}. */
static void count_batch(struct lg_state *st, struct lg_conn *c)
{
	if (c->resp_truncated || !c->resp) {
		st->resp_truncated++;
		return;
	}
	json_error_t jerr;
	json_t *root = json_loadb(c->resp, c->resp_len, 0, &jerr);
	json_t *results = root ? json_object_get(root, "results") : NULL;
	size_t i;
	json_t *r;
	json_array_foreach(results, i, r)
	{
		json_int_t s = json_integer_value(json_object_get(r, "status"));
		if (s < 0 || s >= LG_MAX_STATUS)
			s = 0;
		st->order_status[s]++;
		if (s == 200 || s == 201)
			st->orders_ok++;
	}
	json_decref(root);
}

static void finish(struct lg_state *st, struct lg_conn *c, CURLcode res,
                   double t)
{
	long status = 0;
	if (res == CURLE_OK)
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 0 || status >= LG_MAX_STATUS)
		status = 0;
	if (!c->recorded)
		return;
	record_latency(st, t - c->started);
	st->done++;
	st->by_status[status]++;
	st->orders_sent += c->norders;
	if ((status < 200 || status >= 300) && !st->reported[status]) {
		/* The first answer of each failing kind, to tell why. */
		st->reported[status] = true;
		fprintf(stderr, "loadgen: first %ld answer: %.300s\n", status,
		        res == CURLE_OK ? (c->resp ? c->resp : "")
		                        : curl_easy_strerror(res));
	}
	if (status >= 200 && status < 300) {
		st->ok++;
		if (st->o->mode == LG_SUBMIT)
			st->orders_ok++;
		else if (st->o->mode == LG_BATCH)
			count_batch(st, c);
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static double pct_ms(const uint32_t *s, long long n, double p)
{
	if (n == 0)
		return 0;
	long long k = (long long)(p * (double)(n - 1) + 0.5);
	return (double)s[k] / 1000.0;
}

static void print_counts(const char *name, const long long *counts)
{
	printf("\"%s\":{", name);
	bool first = true;
	for (int s = 0; s < LG_MAX_STATUS; s++) {
		if (!counts[s])
			continue;
		printf("%s\"%d\":%lld", first ? "" : ",", s, counts[s]);
		first = false;
	}
	printf("}");
}

static void report(struct lg_state *st, double secs)
{
	const struct lg_opts *o = st->o;
	qsort(st->lat_us, (size_t)st->nsamples, sizeof *st->lat_us, cmp_u32);
	double max_ms =
	    st->nsamples ? (double)st->lat_us[st->nsamples - 1] / 1000.0 : 0;
	static const char *const names[] = {
	    [LG_SUBMIT] = "submit", [LG_BATCH] = "batch", [LG_LIVEZ] = "livez"};
	printf("{\"mode\":\"%s\",\"connections\":%ld,", names[o->mode],
	       o->conns);
	if (o->mode == LG_BATCH)
		printf("\"batch\":%ld,", o->batch);
	printf("\"requests\":%lld,\"ok\":%lld,\"errors\":%lld,", st->done,
	       st->ok, st->done - st->ok);
	print_counts("by_status", st->by_status);
	if (o->mode == LG_BATCH) {
		printf(",");
		print_counts("by_order_status", st->order_status);
		printf(",\"responses_unparsed\":%lld", st->resp_truncated);
	}
	printf(",\"seconds\":%.3f,\"rps\":%.1f,\"orders\":%lld,"
	       "\"orders_ok\":%lld,\"orders_per_s\":%.1f,",
	       secs, secs > 0 ? (double)st->done / secs : 0, st->orders_sent,
	       st->orders_ok, secs > 0 ? (double)st->orders_ok / secs : 0);
	printf("\"latency_samples\":%lld,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
	       "\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
	       st->nsamples, pct_ms(st->lat_us, st->nsamples, 0.50),
	       pct_ms(st->lat_us, st->nsamples, 0.90),
	       pct_ms(st->lat_us, st->nsamples, 0.99), max_ms);
}

static int start_request(struct lg_state *st, struct lg_conn *c, CURLM *multi,
                         double t, double measure_from)
{
	int rc = build_body(st, c);
	if (rc)
		return rc;
	if (st->o->mode != LG_LIVEZ) {
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)strlen(c->body));
	}
	c->resp_len = 0;
	c->resp[0] = '\0';
	c->resp_truncated = false;
	c->started = t;
	c->recorded = t >= measure_from;
	st->started++;
	if (curl_multi_add_handle(multi, c->easy) != CURLM_OK)
		return -EIO;
	return 0;
}

int main(int argc, char **argv)
{
	struct lg_opts o = {
	    .mode = LG_SUBMIT,
	    .conns = 16,
	    .seconds = 10,
	    .batch = 100,
	    .skus = 100,
	    .items = 1,
	    .prefix = "bench",
	    .sku_prefix = "bench-sku-",
	    .max_samples = LG_DEFAULT_SAMPLES,
	};
	struct lg_state st = {.o = &o, .rng = 0x9e3779b97f4a7c15ull};
	struct lg_conn *conns = NULL;
	struct curl_slist *hdrs = NULL;
	CURLM *multi = NULL;
	char url[1024];
	char auth[512];
	int exit_code = 1;

	if (parse_args(argc, argv, &o))
		return 2;
	if (o.requests && o.requests < o.max_samples)
		o.max_samples = o.requests;
	static const char *const paths[] = {[LG_SUBMIT] = "/v1/orders",
	                                    [LG_BATCH] = "/v1/orders/batch",
	                                    [LG_LIVEZ] = "/livez"};
	snprintf(url, sizeof url, "%s%s", o.url, paths[o.mode]);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	st.lat_us = calloc((size_t)o.max_samples, sizeof *st.lat_us);
	conns = calloc((size_t)o.conns, sizeof *conns);
	multi = curl_multi_init();
	if (!st.lat_us || !conns || !multi)
		goto cleanup;
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, o.conns);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	/* Without this curl waits for "100 Continue" on bodies over 1 KiB. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (o.token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s",
		         o.token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (!hdrs)
		goto cleanup;

	for (long i = 0; i < o.conns; i++) {
		struct lg_conn *c = &conns[i];
		c->body_cap = 4096;
		c->body = malloc(c->body_cap);
		c->easy = curl_easy_init();
		if (!c->body || !c->easy)
			goto cleanup;
		/* Kept in submit mode too, to show failing answers. */
		c->resp_cap = o.mode == LG_BATCH ? 65536 : 4096;
		c->resp = malloc(c->resp_cap);
		if (!c->resp)
			goto cleanup;
		c->resp[0] = '\0';
		curl_easy_setopt(c->easy, CURLOPT_URL, url);
		curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_write);
		curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
		curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
		curl_easy_setopt(c->easy, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, 60000L);
		curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	}

	double t0 = now_s();
	double measure_from = t0 + o.warmup;
	double deadline = measure_from + o.seconds;
	long long limit = o.requests;
	int running = 0;
	bool stopping = false;
	double last_done = t0;

	for (long i = 0; i < o.conns && (!limit || st.started < limit); i++) {
		if (start_request(&st, &conns[i], multi, t0, measure_from))
			goto cleanup;
		running++;
	}
	while (running > 0) {
		int still;
		if (curl_multi_perform(multi, &still) != CURLM_OK)
			goto cleanup;
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct lg_conn *c;
			CURLcode res = m->data.result;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
			                  (char **)&c);
			curl_multi_remove_handle(multi, c->easy);
			running--;
			double t = now_s();
			finish(&st, c, res, t);
			if (c->recorded)
				last_done = t;
			if (t >= deadline && !limit)
				stopping = true;
			if (limit && st.started >= limit)
				stopping = true;
			if (stopping)
				continue;
			if (start_request(&st, c, multi, t, measure_from))
				goto cleanup;
			running++;
		}
		if (running > 0 &&
		    curl_multi_poll(multi, NULL, 0, 100, NULL) != CURLM_OK)
			goto cleanup;
	}
	double start = o.warmup > 0 ? measure_from : t0;
	report(&st, last_done > start ? last_done - start : 0);
	exit_code = 0;

cleanup:
	if (exit_code)
		fprintf(stderr,
		        "loadgen: failed (out of memory or curl error)\n");
	for (long i = 0; conns && i < o.conns; i++) {
		if (conns[i].easy) {
			curl_multi_remove_handle(multi, conns[i].easy);
			curl_easy_cleanup(conns[i].easy);
		}
		free(conns[i].body);
		free(conns[i].resp);
	}
	if (multi)
		curl_multi_cleanup(multi);
	curl_slist_free_all(hdrs);
	free(conns);
	free(st.lat_us);
	curl_global_cleanup();
	return exit_code;
}
