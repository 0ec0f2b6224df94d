/*
 * alertmanager: the alert sender thread (see alertmanager.h). It owns one
 * libcurl easy handle (kept alive between POSTs) and what it last
 * delivered per alert; the only shared field is the stop flag.
 *
 * Threads: the sender thread only. alertmanager_free() sets stop under
 * lock, signals, and joins; no other lock is ever held with lock.
 */
#include "work/alertmanager.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "obs/log.h"
#include "obs/metrics.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/timefmt.h"

#define DEFAULT_TICK_MS 1000
#define DEFAULT_RESEND_MS 30000
#define DEFAULT_TIMEOUT_MS 5000
/* A firing alert's endsAt: this many resend intervals ahead. */
#define ENDS_RESENDS 4
#define BACKLOG_POLL_MIN_MS 1000
#define BACKLOG_POLL_MAX_MS 10000
#define URL_MAX 2048

/* What was last delivered for one alert (sender thread only). */
struct sent {
	uint64_t changes;   /* alert_state_t.changes when delivered */
	int64_t at_mono_ms; /* when; 0 = never */
};

struct alertmanager {
	alerts_t *alerts;                 /* immutable */
	store_t *store;                   /* immutable */
	char *url;                        /* immutable; NULL = do not send */
	char *replica_id;                 /* immutable */
	char generator_url[URL_MAX + 16]; /* immutable */
	int64_t tick_ms, resend_ms, timeout_ms, backlog_poll_ms; /* immutable */
	metric_t *m_sent, *m_error; /* immutable pointers */

	/* Sender thread only. */
	CURL *curl;
	struct curl_slist *headers;
	struct sent sent[ALERT_COUNT];
	int64_t failing_since_ms;  /* mono ms of the streak's first error; 0 */
	int64_t fail_logged_ms;    /* mono ms of the last error line */
	int64_t backlog_polled_ms; /* mono ms of the last store_stats; 0 */
	bool stats_failing;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool stop; /* lock */
};

/* ---- the body ---- */

static const char *severity(alert_id_t id)
{
	return id == ALERT_HIGH_ERROR_RATE ? "critical" : "warning";
}

static void texts(const alert_state_t *st, char *summary, size_t slen,
                  char *desc, size_t dlen, char *value, size_t vlen,
                  char *threshold, size_t tlen)
{
	snprintf(value, vlen, "%.4g", st->value);
	snprintf(threshold, tlen, "%g", st->threshold);
	if (st->id == ALERT_HIGH_ERROR_RATE) {
		snprintf(summary, slen, "orderd error rate above %g%%",
		         st->threshold * 100);
		snprintf(desc, dlen,
		         "%lld of %lld events failed in the window (%.2f%%, "
		         "threshold %g%%): 5xx answers, failed processing "
		         "attempts and confirm failures on this replica. See "
		         "docs/operations.md#higherrorrate.",
		         (long long)st->errors, (long long)st->events,
		         st->value * 100, st->threshold * 100);
	} else {
		snprintf(summary, slen,
		         "orderd oldest pending order older than %g s",
		         st->threshold);
		snprintf(desc, dlen,
		         "The oldest pending order is %.0f s old (threshold "
		         "%g s): processing falls behind, store-wide. See "
		         "docs/operations.md#backlogtooold.",
		         st->value, st->threshold);
	}
}

static json_t *alert_json(const char *replica_id, const char *generator_url,
                          const alert_state_t *st, int64_t firing_ends_ms)
{
	char summary[128], desc[512], value[32], threshold[32];
	char starts[TIMEFMT_LEN], ends[TIMEFMT_LEN];
	texts(st, summary, sizeof summary, desc, sizeof desc, value,
	      sizeof value, threshold, sizeof threshold);
	timefmt_rfc3339(st->started_ms, starts);
	timefmt_rfc3339(st->firing ? firing_ends_ms : st->since_ms, ends);
	return json_pack(
	    "{s:{s:s,s:s,s:s,s:s},s:{s:s,s:s,s:s,s:s},s:s,s:s,s:s}", "labels",
	    "alertname", st->name, "service", "orderd", "replica", replica_id,
	    "severity", severity(st->id), "annotations", "summary", summary,
	    "description", desc, "value", value, "threshold", threshold,
	    "startsAt", starts, "endsAt", ends, "generatorURL", generator_url);
}

char *alertmanager_payload(const char *replica_id, const char *generator_url,
                           const alert_state_t *st, size_t n,
                           int64_t firing_ends_ms)
{
	json_t *arr = json_array();
	if (!arr)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *a = alert_json(replica_id, generator_url, &st[i],
		                       firing_ends_ms);
		if (!a || json_array_append_new(arr, a) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	char *text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return text;
}

/* ---- the POST ---- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

/* 0 on a 2xx answer; else a negative code, and why in err. */
static int post(alertmanager_t *m, const char *body, char *err, size_t len)
{
	curl_easy_setopt(m->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(m->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	CURLcode cc = curl_easy_perform(m->curl);
	if (cc != CURLE_OK) {
		snprintf(err, len, "%s", curl_easy_strerror(cc));
		return -EIO;
	}
	long code = 0;
	curl_easy_getinfo(m->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299) {
		snprintf(err, len, "HTTP %ld", code);
		return -EIO;
	}
	return 0;
}

static void log_failure(alertmanager_t *m, int64_t now, size_t n,
                        const char *why)
{
	if (m->failing_since_ms == 0)
		m->failing_since_ms = now;
	else if (now - m->fail_logged_ms < m->resend_ms)
		return;
	m->fail_logged_ms = now;
	char nbuf[24];
	snprintf(nbuf, sizeof nbuf, "%zu", n);
	log_warn("alert webhook failed, retrying", "url", m->url, "error", why,
	         "alerts", nbuf, NULL);
}

/* Sends what is due among st[0..n); updates m->sent on success. */
static void deliver(alertmanager_t *m, const alert_state_t *st, size_t n)
{
	int64_t now = clock_mono_ms();
	alert_state_t due[ALERT_COUNT];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const struct sent *s = &m->sent[st[i].id];
		bool changed = st[i].changes != s->changes;
		bool resend =
		    st[i].firing && now - s->at_mono_ms >= m->resend_ms;
		if (changed || resend)
			due[k++] = st[i];
	}
	if (k == 0)
		return;
	int64_t ends = clock_wall_ms() + ENDS_RESENDS * m->resend_ms;
	char *body =
	    alertmanager_payload(m->replica_id, m->generator_url, due, k, ends);
	char why[CURL_ERROR_SIZE + 32] = "out of memory";
	int rc = body ? post(m, body, why, sizeof why) : -ENOMEM;
	free(body);
	if (rc < 0) {
		metrics_inc(m->m_error);
		log_failure(m, now, k, why);
		return;
	}
	metrics_inc(m->m_sent);
	if (m->failing_since_ms) {
		log_info("alert webhook delivers again", "url", m->url, NULL);
		m->failing_since_ms = 0;
	}
	for (size_t i = 0; i < k; i++) {
		m->sent[due[i].id].changes = due[i].changes;
		m->sent[due[i].id].at_mono_ms = now;
	}
}

/* ---- the thread ---- */

static void poll_backlog(alertmanager_t *m)
{
	int64_t now = clock_mono_ms();
	if (m->backlog_polled_ms &&
	    now - m->backlog_polled_ms < m->backlog_poll_ms)
		return;
	m->backlog_polled_ms = now;
	store_stats_t ss;
	int rc = store_stats(m->store, &ss);
	if (rc < 0) {
		/* BacklogTooOld keeps its last state: a store that cannot be
		 * asked is not evidence either way (orderd_store_errors_total
		 * and /readyz say it). */
		if (!m->stats_failing)
			log_warn("alert backlog poll failed", "error",
			         err_str(rc), NULL);
		m->stats_failing = true;
		return;
	}
	m->stats_failing = false;
	alerts_set_backlog(m->alerts, ss.oldest_pending_ms);
}

static bool wait_tick(alertmanager_t *m, int64_t until)
{
	struct timespec ts = clock_mono_timespec(until);
	pthread_mutex_lock(&m->lock);
	while (!m->stop && clock_mono_ms() < until)
		pthread_cond_timedwait(&m->cv, &m->lock, &ts);
	bool stop = m->stop;
	pthread_mutex_unlock(&m->lock);
	return !stop;
}

static void *run(void *arg)
{
	alertmanager_t *m = arg;
	do {
		int64_t next = clock_mono_ms() + m->tick_ms;
		poll_backlog(m);
		alert_state_t st[ALERT_COUNT];
		size_t n = alerts_list(m->alerts, st, ALERT_COUNT);
		if (m->url)
			deliver(m, st, n);
		if (!wait_tick(m, next))
			break;
	} while (true);
	return NULL;
}

/* ---- life cycle ---- */

/* http://<listen>/v1/alerts, with a wildcard host replaced. */
static void make_generator_url(const char *listen, char *out, size_t len)
{
	const char *colon = listen ? strrchr(listen, ':') : NULL;
	if (!colon) {
		snprintf(out, len, "http://%s/v1/alerts",
		         listen ? listen : "localhost");
		return;
	}
	size_t hlen = (size_t)(colon - listen);
	bool wildcard = hlen == 0 ||
	                (hlen == 7 && memcmp(listen, "0.0.0.0", 7) == 0) ||
	                (hlen == 4 && memcmp(listen, "[::]", 4) == 0);
	if (!wildcard) {
		snprintf(out, len, "http://%s/v1/alerts", listen);
		return;
	}
	char host[256];
	if (gethostname(host, sizeof host) != 0 || !host[0])
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	snprintf(out, len, "http://%s%s/v1/alerts", host, colon);
}

static int curl_setup(alertmanager_t *m)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return OD_EINTERNAL;
	m->curl = curl_easy_init();
	m->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!m->curl || !m->headers)
		return -ENOMEM;
	curl_easy_setopt(m->curl, CURLOPT_URL, m->url);
	curl_easy_setopt(m->curl, CURLOPT_HTTPHEADER, m->headers);
	curl_easy_setopt(m->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(m->curl, CURLOPT_TIMEOUT_MS, (long)m->timeout_ms);
	curl_easy_setopt(m->curl, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(m->timeout_ms < 2000 ? m->timeout_ms : 2000));
	curl_easy_setopt(m->curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(m->curl, CURLOPT_USERAGENT, "orderd/" ORDERD_VERSION);
	curl_easy_setopt(m->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	return 0;
}

static void release(alertmanager_t *m)
{
	if (m->curl)
		curl_easy_cleanup(m->curl);
	curl_slist_free_all(m->headers);
	if (m->curl || m->headers)
		curl_global_cleanup();
	free(m->url);
	free(m->replica_id);
	free(m);
}

int alertmanager_new(const alertmanager_options_t *opt, alerts_t *alerts,
                     store_t *store, alertmanager_t **ret)
{
	if (!opt->replica_id || opt->backlog_s < 1 || opt->tick_ms < 0 ||
	    opt->resend_ms < 0 || opt->timeout_ms < 0)
		return OD_EINVAL;
	alertmanager_t *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	int rc = -ENOMEM;
	m->alerts = alerts;
	m->store = store;
	m->tick_ms = opt->tick_ms ? opt->tick_ms : DEFAULT_TICK_MS;
	m->resend_ms = opt->resend_ms ? opt->resend_ms : DEFAULT_RESEND_MS;
	m->timeout_ms = opt->timeout_ms ? opt->timeout_ms : DEFAULT_TIMEOUT_MS;
	int64_t poll = opt->backlog_s * 1000 / 10;
	m->backlog_poll_ms = poll < BACKLOG_POLL_MIN_MS   ? BACKLOG_POLL_MIN_MS
	                     : poll > BACKLOG_POLL_MAX_MS ? BACKLOG_POLL_MAX_MS
	                                                  : poll;
	make_generator_url(opt->listen, m->generator_url,
	                   sizeof m->generator_url);
	m->replica_id = strdup(opt->replica_id);
	if (!m->replica_id)
		goto fail;
	if (opt->url && opt->url[0]) {
		m->url = strdup(opt->url);
		if (!m->url)
			goto fail;
		rc = curl_setup(m);
		if (rc < 0)
			goto fail;
	}
	static const char *const labels[] = {"outcome", NULL};
	metric_family_t *f =
	    metrics_family(METRIC_COUNTER, "orderd_alert_notifications_total",
	                   "POSTs of alert states to ORDERD_ALERT_WEBHOOK_URL, "
	                   "by outcome: sent (2xx), error",
	                   labels, NULL, 0);
	m->m_sent = metrics_child1(f, "sent");
	m->m_error = metrics_child1(f, "error");
	rc = -ENOMEM;
	if (!m->m_sent || !m->m_error)
		goto fail;
	pthread_mutex_init(&m->lock, NULL);
	clock_cond_init(&m->cv);
	rc = pthread_create(&m->thread, NULL, run, m);
	if (rc != 0) {
		rc = -rc;
		pthread_cond_destroy(&m->cv);
		pthread_mutex_destroy(&m->lock);
		goto fail;
	}
	*ret = m;
	return 0;

fail:
	release(m);
	return rc;
}

void alertmanager_free(alertmanager_t *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->thread, NULL);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->lock);
	release(m);
}
