/*
 * alerts: the sliding event window and the built-in high_error_rate alert
 * (see alerts.h). Both count events in one-second slots of a ring keyed by
 * the monotonic second, so old slots are recognised by their stamp and
 * reused without a background timer.
 *
 * An alerts_window_t has its own mutex. An alerts_t embeds two bare rings
 * (requests and errors) under its single mutex, so no path ever holds two
 * locks; the state-change log line is written after the mutex is released.
 */
#include "obs/alerts.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "obs/log.h"
#include "obs/metrics.h"
#include "util/clock.h"
#include "util/err.h"

#define WINDOW_MAX_S 3600

/* A ring of seconds + 1 slots: the last `seconds` full ones and the
 * current one. Not locked: the owner serialises access. */
struct ring {
	int seconds;
	int64_t *count;
	int64_t *stamp; /* the monotonic second a slot counts; -1 = none */
};

static int ring_init(struct ring *r, int seconds)
{
	if (seconds < 1 || seconds > WINDOW_MAX_S)
		return OD_EINVAL;
	size_t n = (size_t)seconds + 1;
	r->count = calloc(n, sizeof *r->count);
	r->stamp = malloc(n * sizeof *r->stamp);
	if (!r->count || !r->stamp) {
		free(r->count);
		free(r->stamp);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		r->stamp[i] = -1;
	r->seconds = seconds;
	return 0;
}

static void ring_fini(struct ring *r)
{
	free(r->count);
	free(r->stamp);
}

static void ring_add(struct ring *r, int64_t now_s, int64_t k)
{
	size_t i = (size_t)(now_s % (r->seconds + 1));
	if (r->stamp[i] != now_s) {
		r->stamp[i] = now_s;
		r->count[i] = 0;
	}
	r->count[i] += k;
}

static int64_t ring_sum(const struct ring *r, int64_t now_s)
{
	int64_t sum = 0;
	for (int i = 0; i <= r->seconds; i++)
		if (r->stamp[i] >= now_s - r->seconds && r->stamp[i] <= now_s)
			sum += r->count[i];
	return sum;
}

static int64_t now_s(void)
{
	return clock_mono_ms() / 1000;
}

struct alerts_window {
	pthread_mutex_t lock;
	struct ring ring; /* lock */
};

int alerts_window_new(int seconds, alerts_window_t **ret)
{
	alerts_window_t *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	int rc = ring_init(&w->ring, seconds);
	if (rc) {
		free(w);
		return rc;
	}
	pthread_mutex_init(&w->lock, NULL);
	*ret = w;
	return 0;
}

void alerts_window_free(alerts_window_t *w)
{
	if (!w)
		return;
	pthread_mutex_destroy(&w->lock);
	ring_fini(&w->ring);
	free(w);
}

void alerts_window_add(alerts_window_t *w, int64_t n)
{
	int64_t s = now_s();
	pthread_mutex_lock(&w->lock);
	ring_add(&w->ring, s, n);
	pthread_mutex_unlock(&w->lock);
}

int64_t alerts_window_sum(alerts_window_t *w)
{
	int64_t s = now_s();
	pthread_mutex_lock(&w->lock);
	int64_t sum = ring_sum(&w->ring, s);
	pthread_mutex_unlock(&w->lock);
	return sum;
}

static const char alert_name[] = "high_error_rate";

struct alerts {
	double threshold;     /* immutable */
	int64_t min_requests; /* immutable */
	metric_t *gauge;      /* immutable pointer; the value is atomic */
	pthread_mutex_t lock;
	struct ring requests; /* lock */
	struct ring errors;   /* lock */
	alert_state_t state;  /* lock */
	int64_t last_eval_s;  /* lock: second of the last evaluation */
};

/* What a state change needs for its log line, taken under the lock. */
struct change {
	bool happened;
	bool firing;
	double value;
	int64_t requests, errors;
};

static void evaluate_locked(alerts_t *a, int64_t s, struct change *ch)
{
	int64_t req = ring_sum(&a->requests, s);
	int64_t err = ring_sum(&a->errors, s);
	double value = req > 0 ? (double)err / (double)req : 0;
	bool firing = req >= a->min_requests && value > a->threshold;
	a->last_eval_s = s;
	a->state.value = value;
	ch->happened = firing != a->state.firing;
	if (!ch->happened)
		return;
	a->state.firing = firing;
	a->state.since_ms = clock_wall_ms();
	/* Set under the lock so racing evaluations cannot leave the gauge
	 * disagreeing with the state. */
	metrics_set(a->gauge, firing ? 1 : 0);
	ch->firing = firing;
	ch->value = value;
	ch->requests = req;
	ch->errors = err;
}

static void log_change(const alerts_t *a, const struct change *ch)
{
	if (!ch->happened)
		return;
	char value[32], threshold[32], req[24], err[24];
	snprintf(value, sizeof value, "%.4g", ch->value);
	snprintf(threshold, sizeof threshold, "%g", a->threshold);
	snprintf(req, sizeof req, "%lld", (long long)ch->requests);
	snprintf(err, sizeof err, "%lld", (long long)ch->errors);
	if (ch->firing)
		log_warn("alert firing", "alert", alert_name, "value", value,
		         "threshold", threshold, "requests", req, "errors", err,
		         NULL);
	else
		log_info("alert resolved", "alert", alert_name, "value", value,
		         "threshold", threshold, "requests", req, "errors", err,
		         NULL);
}

int alerts_new(double threshold, int window_s, int64_t min_requests,
               alerts_t **ret)
{
	if (!isfinite(threshold) || threshold < 0 || threshold > 1 ||
	    min_requests < 0)
		return OD_EINVAL;
	int rc;
	alerts_t *a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	rc = ring_init(&a->requests, window_s);
	if (rc)
		goto free_alerts;
	rc = ring_init(&a->errors, window_s);
	if (rc)
		goto fini_requests;
	static const char *const labels[] = {"alert", NULL};
	metric_family_t *f = metrics_family(
	    METRIC_GAUGE, "orderd_alert_firing",
	    "1 while the named built-in alert fires, else 0", labels, NULL, 0);
	a->gauge = metrics_child1(f, alert_name);
	if (!a->gauge) {
		rc = -ENOMEM;
		goto fini_errors;
	}
	/* Explicitly 0 so the series is exported before any traffic. */
	metrics_set(a->gauge, 0);
	a->threshold = threshold;
	a->min_requests = min_requests;
	a->state.name = alert_name;
	a->state.threshold = threshold;
	a->last_eval_s = -1;
	pthread_mutex_init(&a->lock, NULL);
	*ret = a;
	return 0;

fini_errors:
	ring_fini(&a->errors);
fini_requests:
	ring_fini(&a->requests);
free_alerts:
	free(a);
	return rc;
}

void alerts_free(alerts_t *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->lock);
	ring_fini(&a->requests);
	ring_fini(&a->errors);
	free(a);
}

void alerts_record(alerts_t *a, bool is_error)
{
	struct change ch = {0};
	int64_t s = now_s();
	pthread_mutex_lock(&a->lock);
	ring_add(&a->requests, s, 1);
	if (is_error)
		ring_add(&a->errors, s, 1);
	/* Re-evaluating costs a pass over the ring, so the request path does
	 * it at most once a second; alerts_list() always does. */
	if (s != a->last_eval_s)
		evaluate_locked(a, s, &ch);
	pthread_mutex_unlock(&a->lock);
	log_change(a, &ch);
}

size_t alerts_list(alerts_t *a, alert_state_t *out, size_t max)
{
	struct change ch = {0};
	int64_t s = now_s();
	pthread_mutex_lock(&a->lock);
	evaluate_locked(a, s, &ch);
	if (max > 0)
		out[0] = a->state;
	pthread_mutex_unlock(&a->lock);
	log_change(a, &ch);
	return max > 0 ? 1 : 0;
}
