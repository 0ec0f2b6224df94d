/*
 * notifier: the outbox dispatcher (see notifier.h for the rules). One
 * thread runs a curl multi loop: claim what fits in the concurrency, start
 * one transfer per (event, endpoint not yet acknowledged, circuit
 * allowing), and when an event's last transfer ends, write its outcome
 * under its fence. Gauges of the outbox are refreshed every second and
 * delivered events pruned every few seconds from the same thread.
 *
 * Ownership: everything but the fields under mu belongs to the dispatcher
 * thread. An event owns its body, its headers and its transfers.
 */
#include "work/notifier.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "work/notify_body.h"

#define STATS_EVERY_MS 1000
#define PRUNE_EVERY_MS 5000
#define PRUNE_BATCH 500
#define PRUNE_BATCHES 20 /* per round: bounded work, the rest next time */
#define POLL_MIN_MS 10
#define LABEL_MAX 300

typedef enum breaker_state {
	BREAKER_CLOSED = 0,
	BREAKER_OPEN,
	BREAKER_HALF_OPEN, /* one probe in flight */
} breaker_state_t;

typedef struct endpoint {
	char *url;
	char label[LABEL_MAX]; /* host:port, the metric's label */
	breaker_state_t state;
	int failures;       /* consecutive, while closed */
	int64_t open_until; /* monotonic ms, while open */
	metric_t *m_open;   /* orderd_notification_circuit_open */
} endpoint_t;

struct event;

typedef struct transfer {
	struct event *ev;
	CURL *easy;
	struct curl_slist *headers;
	size_t ep; /* index into endpoints */
	bool probe;
} transfer_t;

typedef struct event {
	store_notification_t n;
	char *body;
	size_t body_len;
	buf_t acked; /* space-separated URLs that took it */
	transfer_t t[NOTIFIER_ENDPOINTS_MAX];
	size_t n_t, running;
	bool failed;           /* a counted failure */
	bool blocked;          /* an endpoint's circuit stopped it */
	int64_t blocked_until; /* monotonic ms */
	int64_t retry_after_ms;
	char error[256];
} event_t;

struct notifier {
	store_t *store;
	notifier_options_t opt; /* strings owned (copies) */
	backoff_t backoff;
	int64_t lease_ms;
	endpoint_t ep[NOTIFIER_ENDPOINTS_MAX];
	size_t n_ep;
	CURLM *multi;
	event_t **events; /* thread: in flight, up to opt.concurrency */
	size_t n_events;
	size_t transfers; /* thread: running transfers */
	size_t handed_back;

	pthread_t thread;
	pthread_mutex_t mu;
	bool stop;        /* mu */
	bool draining;    /* mu */
	int64_t deadline; /* mu: monotonic ms, while draining */
	bool kicked;      /* mu */

	metric_t *m_out[3]; /* delivered, error, dead */
	metric_t *m_fenced;
	metric_t *m_errors;
	metric_t *m_status[NOTIFY_STATUS_COUNT];
	metric_t *m_oldest;
};

enum { OUT_DELIVERED, OUT_ERROR, OUT_DEAD };

/* ---- endpoints and their circuits ---- */

/* host:port of url (the default port of its scheme when none). */
static void endpoint_label(const char *url, char *out, size_t cap)
{
	bool https = strncmp(url, "https://", 8) == 0;
	const char *a = url + (https ? 8 : 7);
	size_t len = strcspn(a, "/?#");
	const char *at = memchr(a, '@', len);
	if (at) {
		len -= (size_t)(at + 1 - a);
		a = at + 1;
	}
	const char *close = a[0] == '[' ? memchr(a, ']', len) : NULL;
	const char *host_end = close ? close + 1 : a;
	bool port = memchr(host_end, ':', len - (size_t)(host_end - a));
	snprintf(out, cap, "%.*s%s", (int)len, a,
	         port    ? ""
	         : https ? ":443"
	                 : ":80");
}

static bool acked_has(const buf_t *acked, const char *url)
{
	size_t ul = strlen(url);
	const char *p = acked->data;
	size_t left = acked->len;
	while (p && left > 0) {
		const char *sp = memchr(p, ' ', left);
		size_t l = sp ? (size_t)(sp - p) : left;
		if (l == ul && memcmp(p, url, ul) == 0)
			return true;
		if (!sp)
			break;
		left -= l + 1;
		p = sp + 1;
	}
	return false;
}

static void breaker_set(endpoint_t *e, breaker_state_t st)
{
	e->state = st;
	metrics_set(e->m_open, st == BREAKER_CLOSED ? 0 : 1);
}

/* May a request go to e now? *ret_probe when it is the half-open probe. */
static bool breaker_allow(endpoint_t *e, int64_t now, bool *ret_probe)
{
	*ret_probe = false;
	switch (e->state) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_OPEN:
		if (now < e->open_until)
			return false;
		breaker_set(e, BREAKER_HALF_OPEN);
		*ret_probe = true;
		return true;
	case BREAKER_HALF_OPEN:
		return false;
	}
	return false;
}

static void breaker_result(notifier_t *n, endpoint_t *e, bool ok, bool probe)
{
	if (ok) {
		if (e->state != BREAKER_CLOSED)
			log_info("notification endpoint recovered, circuit "
			         "closed",
			         "endpoint", e->label, NULL);
		e->failures = 0;
		breaker_set(e, BREAKER_CLOSED);
		return;
	}
	if (!probe && e->state == BREAKER_CLOSED &&
	    ++e->failures < n->opt.breaker_failures)
		return;
	if (e->state == BREAKER_CLOSED)
		log_warn("notification endpoint failing, circuit open",
		         "endpoint", e->label, NULL);
	e->open_until = clock_mono_ms() + n->opt.breaker_cooldown_ms;
	breaker_set(e, BREAKER_OPEN);
}

/* ---- events ---- */

static void event_free(event_t *ev)
{
	if (!ev)
		return;
	free(ev->body);
	buf_free(&ev->acked);
	store_notifications_clear(&ev->n, 1);
	free(ev);
}

static void event_block(event_t *ev, const endpoint_t *e)
{
	int64_t until =
	    e->state == BREAKER_OPEN ? e->open_until : clock_mono_ms() + 100;
	if (!ev->blocked || until < ev->blocked_until)
		ev->blocked_until = until;
	ev->blocked = true;
}

static size_t discard(char *p, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb;
}

/* Starts the transfer of ev to endpoint i; false when it cannot. */
static bool transfer_start(notifier_t *n, event_t *ev, size_t i, bool probe,
                           const char *sig)
{
	transfer_t *t = &ev->t[ev->n_t];
	char id[STORE_NOTIFY_ID_MAX + 1], h[NOTIFY_SIG_MAX + 64];
	memset(t, 0, sizeof *t);
	t->ev = ev;
	t->ep = i;
	t->probe = probe;
	t->easy = curl_easy_init();
	if (!t->easy)
		return false;
	store_notify_id(ev->n.seq, id);
	struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: "
	                                                "application/json");
	snprintf(h, sizeof h, "Idempotency-Key: %s", id);
	hl = hl ? curl_slist_append(hl, h) : NULL;
	snprintf(h, sizeof h, "Orderd-Signature: %s", sig);
	hl = hl ? curl_slist_append(hl, h) : NULL;
	snprintf(h, sizeof h, "Orderd-Event: %s", ev->n.type);
	hl = hl ? curl_slist_append(hl, h) : NULL;
	hl = hl ? curl_slist_append(hl, "Expect:") : NULL;
	if (!hl) {
		curl_easy_cleanup(t->easy);
		return false;
	}
	t->headers = hl;
	CURL *c = t->easy;
	curl_easy_setopt(c, CURLOPT_URL, n->ep[i].url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, ev->body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
	                 (curl_off_t)ev->body_len);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)n->opt.timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "orderd/" ORDERD_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_PRIVATE, t);
	if (curl_multi_add_handle(n->multi, c) != CURLM_OK) {
		curl_slist_free_all(hl);
		curl_easy_cleanup(c);
		return false;
	}
	ev->n_t++;
	ev->running++;
	n->transfers++;
	return true;
}

static void event_finish(notifier_t *n, event_t *ev);

/* Sets ev on its way: one transfer per endpoint still to take it. */
static void event_start(notifier_t *n, event_t *ev)
{
	char sig[NOTIFY_SIG_MAX];
	int rc = notify_sign(ev->body, ev->body_len, n->opt.secret,
	                     n->opt.secret_previous, sig);
	int64_t now = clock_mono_ms();
	for (size_t i = 0; rc == 0 && i < n->n_ep; i++) {
		if (acked_has(&ev->acked, n->ep[i].url))
			continue;
		bool probe;
		if (!breaker_allow(&n->ep[i], now, &probe)) {
			event_block(ev, &n->ep[i]);
			snprintf(ev->error, sizeof ev->error,
			         "circuit open for %.200s", n->ep[i].label);
			continue;
		}
		if (!transfer_start(n, ev, i, probe, sig)) {
			if (probe)
				breaker_set(&n->ep[i], BREAKER_OPEN);
			event_block(ev, &n->ep[i]);
			snprintf(ev->error, sizeof ev->error,
			         "cannot start a request to %.200s",
			         n->ep[i].label);
		}
	}
	if (rc < 0) {
		ev->blocked = true;
		ev->blocked_until = now + 1000;
		snprintf(ev->error, sizeof ev->error, "cannot sign: %s",
		         err_str(rc));
	}
	if (ev->running == 0)
		event_finish(n, ev);
}

static bool all_acked(const notifier_t *n, const event_t *ev)
{
	for (size_t i = 0; i < n->n_ep; i++)
		if (!acked_has(&ev->acked, n->ep[i].url))
			return false;
	return true;
}

static const char *acked_text(event_t *ev)
{
	return ev->acked.len ? ev->acked.data : "";
}

static void outcome_failed(notifier_t *n, const event_t *ev, int rc)
{
	char id[STORE_NOTIFY_ID_MAX + 1];
	store_notify_id(ev->n.seq, id);
	if (rc == OD_EFENCE) {
		metrics_inc(n->m_fenced);
		log_warn("notification lease lost; another replica has it",
		         "notification", id, "order_id", ev->n.order.id, NULL);
		return;
	}
	metrics_inc(n->m_errors);
	log_warn("cannot record a notification outcome; it is due again "
	         "when its lease ends",
	         "notification", id, "error", err_str(rc), NULL);
}

/* Writes ev's outcome under its fence, then frees it. */
static void event_finish(notifier_t *n, event_t *ev)
{
	int rc;
	char id[STORE_NOTIFY_ID_MAX + 1];
	store_notify_id(ev->n.seq, id);
	if (all_acked(n, ev)) {
		rc = store_notify_delivered(n->store, ev->n.seq, ev->n.fence,
		                            acked_text(ev));
		if (rc == 0)
			metrics_inc(n->m_out[OUT_DELIVERED]);
	} else if (ev->failed) {
		int64_t delay =
		    backoff_delay_ms(&n->backoff, ev->n.attempts, clock_rand());
		if (ev->retry_after_ms > delay)
			delay = ev->retry_after_ms;
		if (delay > STORE_DELAY_MAX_MS)
			delay = STORE_DELAY_MAX_MS;
		bool dead = false;
		rc = store_notify_retry(n->store, ev->n.seq, ev->n.fence,
		                        n->opt.max_attempts, delay, ev->error,
		                        acked_text(ev), &dead);
		if (rc == 0)
			metrics_inc(n->m_out[dead ? OUT_DEAD : OUT_ERROR]);
		if (rc == 0 && dead)
			log_warn("notification dead after its last attempt",
			         "notification", id, "order_id", ev->n.order.id,
			         "error", ev->error, NULL);
	} else {
		/* Only open circuits stopped it: back without an attempt,
		 * due when the earliest of them may let a probe through. */
		int64_t delay = ev->blocked_until - clock_mono_ms();
		if (delay < 50)
			delay = 50;
		delay += (int64_t)(clock_rand() % 250);
		rc = store_notify_release(n->store, ev->n.seq, ev->n.fence,
		                          delay, ev->error, acked_text(ev));
	}
	if (rc < 0)
		outcome_failed(n, ev, rc);
	for (size_t i = 0; i < n->n_events; i++) {
		if (n->events[i] == ev) {
			n->events[i] = n->events[--n->n_events];
			break;
		}
	}
	event_free(ev);
}

static void transfer_done(notifier_t *n, transfer_t *t, CURLcode res)
{
	event_t *ev = t->ev;
	endpoint_t *e = &n->ep[t->ep];
	long code = 0;
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
	bool ok = res == CURLE_OK && code >= 200 && code < 300;
	if (ok) {
		if (ev->acked.len)
			buf_append(&ev->acked, " ", 1);
		buf_append(&ev->acked, e->url, strlen(e->url));
	} else {
		curl_off_t ra = -1;
		if (curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &ra) ==
		        CURLE_OK &&
		    ra > 0 && ra < 86400 && ra * 1000 > ev->retry_after_ms)
			ev->retry_after_ms = (int64_t)ra * 1000;
		if (res == CURLE_OK)
			snprintf(ev->error, sizeof ev->error,
			         "http %ld from %.200s", code, e->label);
		else
			snprintf(ev->error, sizeof ev->error, "%.48s (%.200s)",
			         curl_easy_strerror(res), e->label);
	}
	breaker_result(n, e, ok, t->probe);
	if (!ok && t->probe)
		event_block(ev, e); /* a failed probe is no counted attempt */
	else if (!ok)
		ev->failed = true;
	curl_multi_remove_handle(n->multi, t->easy);
	curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->headers);
	t->easy = NULL;
	t->headers = NULL;
	n->transfers--;
	if (--ev->running == 0)
		event_finish(n, ev);
}

/* ---- the loop ---- */

/*
 * How many events a claim may take now: all it has room for while some
 * endpoint's circuit is closed; one (the probe) when the only way forward
 * is an open circuit whose cool-down ended; none while every circuit is
 * open or probing, so a long outage does not claim and hand back the
 * whole backlog over and over. *ret_next is when to look again then.
 */
static size_t claim_limit(notifier_t *n, int64_t now, int64_t *ret_next)
{
	size_t limit = 0;
	*ret_next = now + n->opt.poll_ms;
	for (size_t i = 0; i < n->n_ep; i++) {
		const endpoint_t *e = &n->ep[i];
		if (e->state == BREAKER_CLOSED)
			return SIZE_MAX;
		if (e->state == BREAKER_OPEN && now >= e->open_until)
			limit = 1;
		else if (e->state == BREAKER_OPEN && e->open_until < *ret_next)
			*ret_next = e->open_until;
	}
	return limit;
}

static size_t claim_some(notifier_t *n, size_t limit)
{
	size_t room = (size_t)n->opt.concurrency - n->transfers;
	size_t max = room / n->n_ep;
	if (max == 0 && n->transfers == 0)
		max = 1;
	if (max + n->n_events > (size_t)n->opt.concurrency)
		max = (size_t)n->opt.concurrency - n->n_events;
	if (max > limit)
		max = limit;
	if (max == 0)
		return 0;
	store_notification_t *v = calloc(max, sizeof *v);
	if (!v)
		return 0;
	size_t got = 0;
	int rc = store_notify_claim(n->store, n->opt.replica_id, n->lease_ms,
	                            max, v, &got);
	if (rc < 0) {
		metrics_inc(n->m_errors);
		log_warn("cannot claim notifications", "error", err_str(rc),
		         NULL);
		free(v);
		return 0;
	}
	for (size_t i = 0; i < got; i++) {
		event_t *ev = calloc(1, sizeof *ev);
		if (!ev) {
			store_notifications_clear(&v[i], 1);
			continue; /* due again when the lease ends */
		}
		ev->n = v[i];
		buf_init(&ev->acked, STORE_NOTIFY_ACKED_MAX);
		if (ev->n.acked[0])
			buf_append(&ev->acked, ev->n.acked,
			           strlen(ev->n.acked));
		n->events[n->n_events++] = ev;
		int brc = notify_body(&ev->n, &ev->body, &ev->body_len);
		if (brc < 0) {
			ev->blocked = true;
			ev->blocked_until = clock_mono_ms() + 1000;
			snprintf(ev->error, sizeof ev->error,
			         "cannot render the body: %s", err_str(brc));
			event_finish(n, ev);
			continue;
		}
		event_start(n, ev);
	}
	free(v);
	return got;
}

static void refresh_stats(notifier_t *n)
{
	store_notify_stats_t st;
	int rc = store_notify_stats(n->store, &st);
	if (rc < 0) {
		metrics_inc(n->m_errors);
		return;
	}
	for (int i = 0; i < NOTIFY_STATUS_COUNT; i++)
		metrics_set(n->m_status[i], (double)st.count[i]);
	metrics_set(n->m_oldest, (double)st.oldest_pending_ms / 1000.0);
}

static void prune(notifier_t *n)
{
	for (int i = 0; i < PRUNE_BATCHES; i++) {
		size_t got = 0;
		int rc = store_notify_prune(n->store, n->opt.retention_ms,
		                            PRUNE_BATCH, &got);
		if (rc < 0) {
			metrics_inc(n->m_errors);
			return;
		}
		if (got < PRUNE_BATCH)
			return;
	}
}

/* Hands back every event still held (drain), the attempt not counted. */
static void hand_back_all(notifier_t *n)
{
	while (n->n_events > 0) {
		event_t *ev = n->events[n->n_events - 1];
		for (size_t i = 0; i < ev->n_t; i++) {
			transfer_t *t = &ev->t[i];
			if (!t->easy)
				continue;
			curl_multi_remove_handle(n->multi, t->easy);
			curl_easy_cleanup(t->easy);
			curl_slist_free_all(t->headers);
			t->easy = NULL;
			n->transfers--;
		}
		int rc = store_notify_release(n->store, ev->n.seq, ev->n.fence,
		                              0, NULL, acked_text(ev));
		if (rc == 0)
			n->handed_back++;
		else
			outcome_failed(n, ev, rc);
		n->n_events--;
		event_free(ev);
	}
}

static void *run(void *arg)
{
	notifier_t *n = arg;
	int64_t next_claim = 0, next_stats = 0, next_prune = 0;
	int64_t idle = POLL_MIN_MS;
	for (;;) {
		pthread_mutex_lock(&n->mu);
		bool stop = n->stop, draining = n->draining;
		int64_t deadline = n->deadline;
		bool kicked = n->kicked;
		n->kicked = false;
		pthread_mutex_unlock(&n->mu);
		int64_t now = clock_mono_ms();
		if (stop || (draining && (n->n_events == 0 || now >= deadline)))
			break;
		if (!draining && (kicked || now >= next_claim) &&
		    n->transfers < (size_t)n->opt.concurrency &&
		    n->n_events < (size_t)n->opt.concurrency) {
			if (kicked)
				idle = POLL_MIN_MS;
			int64_t retry_at;
			size_t limit = claim_limit(n, now, &retry_at);
			if (limit == 0) {
				next_claim = retry_at;
			} else if (claim_some(n, limit) > 0) {
				idle = POLL_MIN_MS;
				next_claim = now;
			} else {
				next_claim = now + idle;
				idle = idle * 2 > n->opt.poll_ms
				           ? n->opt.poll_ms
				           : idle * 2;
			}
		}
		if (now >= next_stats) {
			refresh_stats(n);
			next_stats = now + STATS_EVERY_MS;
		}
		if (!draining && now >= next_prune) {
			prune(n);
			next_prune = now + PRUNE_EVERY_MS;
		}
		int64_t wait = next_claim - clock_mono_ms();
		if (n->transfers >= (size_t)n->opt.concurrency || draining)
			wait = 100;
		if (wait > 1000)
			wait = 1000;
		if (wait < 0)
			wait = 0;
		if (wait > 0 || n->transfers > 0)
			curl_multi_poll(n->multi, NULL, 0, (int)wait, NULL);
		int running = 0;
		curl_multi_perform(n->multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(n->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			transfer_t *t = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &t);
			if (t)
				transfer_done(n, t, m->data.result);
		}
	}
	hand_back_all(n);
	refresh_stats(n);
	return NULL;
}

/* ---- life cycle ---- */

static int register_metrics(notifier_t *n)
{
	static const char *const l_outcome[] = {"outcome", NULL};
	static const char *const l_status[] = {"status", NULL};
	static const char *const l_endpoint[] = {"endpoint", NULL};
	metric_family_t *out = metrics_family(
	    METRIC_COUNTER, "orderd_notification_deliveries_total",
	    "Notification delivery rounds by this replica, by outcome: "
	    "delivered (every endpoint took it), error (a counted failed "
	    "attempt, retried later), dead (the last attempt failed).",
	    l_outcome, NULL, 0);
	metric_family_t *st = metrics_family(
	    METRIC_GAUGE, "orderd_notifications",
	    "Notifications in the outbox, by status.", l_status, NULL, 0);
	metric_family_t *open = metrics_family(
	    METRIC_GAUGE, "orderd_notification_circuit_open",
	    "1 while the circuit breaker of a notification endpoint "
	    "(host:port) is open or half-open, else 0.",
	    l_endpoint, NULL, 0);
	n->m_oldest = metrics_child0(metrics_family(
	    METRIC_GAUGE, "orderd_oldest_pending_notification_age_seconds",
	    "Age of the oldest pending notification (0 if none).", NULL, NULL,
	    0));
	/* The workers register these families too; registration is
	 * idempotent. */
	n->m_fenced = metrics_child0(metrics_family(
	    METRIC_COUNTER, "orderd_fence_rejections_total",
	    "Writes refused because the lease's fence was stale.", NULL, NULL,
	    0));
	n->m_errors = metrics_child1(
	    metrics_family(METRIC_COUNTER, "orderd_store_errors_total",
	                   "Store operations that failed, by kind.",
	                   (const char *const[]){"kind", NULL}, NULL, 0),
	    "notify");
	if (!out || !st || !open || !n->m_oldest || !n->m_fenced ||
	    !n->m_errors)
		return -ENOMEM;
	n->m_out[OUT_DELIVERED] = metrics_child1(out, "delivered");
	n->m_out[OUT_ERROR] = metrics_child1(out, "error");
	n->m_out[OUT_DEAD] = metrics_child1(out, "dead");
	for (int i = 0; i < NOTIFY_STATUS_COUNT; i++)
		n->m_status[i] = metrics_child1(
		    st, store_notify_status_name((notify_status_t)i));
	for (size_t i = 0; i < n->n_ep; i++) {
		n->ep[i].m_open = metrics_child1(open, n->ep[i].label);
		metrics_set(n->ep[i].m_open, 0);
	}
	return 0;
}

static int parse_endpoints(notifier_t *n, const char *urls)
{
	const char *p = urls;
	while (*p) {
		size_t len = strcspn(p, ",");
		if (n->n_ep == NOTIFIER_ENDPOINTS_MAX || len == 0)
			return OD_EINVAL;
		endpoint_t *e = &n->ep[n->n_ep];
		e->url = strndup(p, len);
		if (!e->url)
			return -ENOMEM;
		if (strncmp(e->url, "http://", 7) != 0 &&
		    strncmp(e->url, "https://", 8) != 0)
			return OD_EINVAL;
		endpoint_label(e->url, e->label, sizeof e->label);
		n->n_ep++;
		p += len;
		if (*p == ',')
			p++;
	}
	return n->n_ep > 0 ? 0 : OD_EINVAL;
}

int notifier_new(store_t *store, const notifier_options_t *opt,
                 notifier_t **ret)
{
	if (!store || !opt || !opt->urls || !opt->secret || !opt->replica_id ||
	    opt->concurrency < 1 || opt->max_attempts < 1 ||
	    opt->timeout_ms < 1 || opt->breaker_failures < 1 ||
	    opt->poll_ms < 1)
		return OD_EINVAL;
	notifier_t *n = calloc(1, sizeof *n);
	if (!n)
		return -ENOMEM;
	int rc = -ENOMEM;
	n->store = store;
	n->opt = *opt;
	n->opt.replica_id = strdup(opt->replica_id);
	n->opt.secret = strdup(opt->secret);
	n->opt.secret_previous =
	    opt->secret_previous ? strdup(opt->secret_previous) : NULL;
	n->opt.urls = NULL;
	n->events = calloc((size_t)opt->concurrency, sizeof *n->events);
	if (!n->opt.replica_id || !n->opt.secret || !n->events ||
	    (opt->secret_previous && !n->opt.secret_previous))
		goto fail;
	if ((rc = parse_endpoints(n, opt->urls)) < 0)
		goto fail;
	n->backoff = (backoff_t){opt->retry_base_ms, opt->retry_max_ms};
	/* Room for a request to time out, and its outcome to be written,
	 * before another replica may take the event. */
	n->lease_ms = 2 * opt->timeout_ms + 5000;
	rc = register_metrics(n);
	if (rc < 0)
		goto fail;
	rc = -ENOMEM;
	n->multi = curl_multi_init();
	if (!n->multi)
		goto fail;
	pthread_mutex_init(&n->mu, NULL);
	if (pthread_create(&n->thread, NULL, run, n) != 0) {
		pthread_mutex_destroy(&n->mu);
		rc = -EAGAIN;
		goto fail;
	}
	*ret = n;
	return 0;
fail:
	if (n->multi)
		curl_multi_cleanup(n->multi);
	for (size_t i = 0; i < NOTIFIER_ENDPOINTS_MAX; i++)
		free(n->ep[i].url);
	free(n->events);
	free((char *)n->opt.replica_id);
	free((char *)n->opt.secret);
	free((char *)n->opt.secret_previous);
	free(n);
	return rc;
}

void notifier_kick(notifier_t *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->mu);
	n->kicked = true;
	pthread_mutex_unlock(&n->mu);
	curl_multi_wakeup(n->multi);
}

static void stop_and_join(notifier_t *n, bool drain, int64_t deadline)
{
	pthread_mutex_lock(&n->mu);
	bool joined = n->stop || n->draining;
	if (drain) {
		n->draining = true;
		n->deadline = deadline;
	} else {
		n->stop = true;
	}
	pthread_mutex_unlock(&n->mu);
	if (joined)
		return;
	curl_multi_wakeup(n->multi);
	pthread_join(n->thread, NULL);
}

size_t notifier_drain(notifier_t *n, int64_t deadline_mono_ms)
{
	if (!n)
		return 0;
	stop_and_join(n, true, deadline_mono_ms);
	return n->handed_back;
}

void notifier_free(notifier_t *n)
{
	if (!n)
		return;
	stop_and_join(n, false, 0);
	curl_multi_cleanup(n->multi);
	pthread_mutex_destroy(&n->mu);
	for (size_t i = 0; i < n->n_ep; i++)
		free(n->ep[i].url);
	free(n->events);
	free((char *)n->opt.replica_id);
	/* The key is a secret: wipe it before it goes back to malloc. */
	explicit_bzero((char *)n->opt.secret, strlen(n->opt.secret));
	free((char *)n->opt.secret);
	if (n->opt.secret_previous)
		explicit_bzero((char *)n->opt.secret_previous,
		               strlen(n->opt.secret_previous));
	free((char *)n->opt.secret_previous);
	free(n);
}
