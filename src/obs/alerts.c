/*
 * alerts: the sliding event window and the built-in alerts HighErrorRate
 * and BacklogTooOld (see alerts.h). Windows count events in one-second
 * slots of a ring keyed by the monotonic second, so old slots are
 * recognised by their stamp and reused without a background timer.
 *
 * An alerts_window_t has its own mutex. An alerts_t embeds two bare rings
 * (events and errors) under its single mutex, so no path ever holds two
 * locks; state-change log lines are written after the mutex is released.
 * An alerts_t reads time through its injectable clocks (alerts_options_t),
 * so the unit test can walk the window and the hysteresis second by second.
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

static const char *const alert_names[ALERT_COUNT] = {
    [ALERT_HIGH_ERROR_RATE] = "HighErrorRate",
    [ALERT_BACKLOG_TOO_OLD] = "BacklogTooOld",
};

static int64_t real_mono_ms(void *arg)
{
	return clock_mono_ms();
}

static int64_t real_wall_ms(void *arg)
{
	return clock_wall_ms();
}

struct alerts {
	alerts_options_t opt;         /* immutable; clocks never NULL */
	metric_t *gauge[ALERT_COUNT]; /* immutable pointers; atomic values */
	pthread_mutex_t lock;
	struct ring events;               /* lock */
	struct ring errors;               /* lock */
	alert_state_t state[ALERT_COUNT]; /* lock */
	int64_t last_eval_s; /* lock: second of the last evaluation */
	/* lock: the monotonic second from which HighErrorRate's condition has
	 * held no more, while it fires; -1 while the condition holds. */
	int64_t clear_since_s;
	int64_t backlog_ms; /* lock: the last age fed */
};

/* A state change, copied under the lock for its log line. */
struct changes {
	size_t n;
	alert_state_t st[ALERT_COUNT];
};

static void change_locked(alerts_t *a, alert_state_t *st, bool firing,
                          struct changes *ch)
{
	int64_t now = a->opt.wall_ms(a->opt.clock_arg);
	st->firing = firing;
	st->since_ms = now;
	if (firing)
		st->started_ms = now;
	st->changes++;
	/* Set under the lock so racing evaluations cannot leave the gauge
	 * disagreeing with the state. */
	metrics_set(a->gauge[st->id], firing ? 1 : 0);
	ch->st[ch->n++] = *st;
}

static void eval_error_rate_locked(alerts_t *a, int64_t s, struct changes *ch)
{
	alert_state_t *st = &a->state[ALERT_HIGH_ERROR_RATE];
	int64_t ev = ring_sum(&a->events, s);
	int64_t err = ring_sum(&a->errors, s);
	double value = ev > 0 ? (double)err / (double)ev : 0;
	bool breach = ev >= a->opt.min_events && value > a->opt.error_rate;
	a->last_eval_s = s;
	st->value = value;
	st->events = ev;
	st->errors = err;
	if (!st->firing) {
		if (breach) {
			a->clear_since_s = -1;
			change_locked(a, st, true, ch);
		}
		return;
	}
	if (breach) {
		a->clear_since_s = -1;
		return;
	}
	if (a->clear_since_s < 0)
		a->clear_since_s = s;
	if (s - a->clear_since_s >= a->opt.window_s)
		change_locked(a, st, false, ch);
}

static void eval_backlog_locked(alerts_t *a, struct changes *ch)
{
	alert_state_t *st = &a->state[ALERT_BACKLOG_TOO_OLD];
	st->value = (double)a->backlog_ms / 1000.0;
	bool firing = a->backlog_ms > a->opt.backlog_s * 1000;
	if (firing != st->firing)
		change_locked(a, st, firing, ch);
}

static void log_changes(const struct changes *ch)
{
	for (size_t i = 0; i < ch->n; i++) {
		const alert_state_t *st = &ch->st[i];
		char value[32], threshold[32], ev[24], err[24];
		snprintf(value, sizeof value, "%.4g", st->value);
		snprintf(threshold, sizeof threshold, "%g", st->threshold);
		snprintf(ev, sizeof ev, "%lld", (long long)st->events);
		snprintf(err, sizeof err, "%lld", (long long)st->errors);
		log_level_t level = st->firing ? LOG_WARN : LOG_INFO;
		const char *msg =
		    st->firing ? "alert firing" : "alert resolved";
		if (st->id == ALERT_HIGH_ERROR_RATE)
			log_msg(level, msg, "alert", st->name, "value", value,
			        "threshold", threshold, "events", ev, "errors",
			        err, NULL);
		else
			log_msg(level, msg, "alert", st->name, "value", value,
			        "threshold", threshold, NULL);
	}
}

int alerts_new(const alerts_options_t *opt, alerts_t **ret)
{
	if (!isfinite(opt->error_rate) || opt->error_rate < 0 ||
	    opt->error_rate > 1 || opt->min_events < 0 || opt->backlog_s < 1 ||
	    opt->backlog_s > INT64_MAX / 1000)
		return OD_EINVAL;
	int rc;
	alerts_t *a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	rc = ring_init(&a->events, opt->window_s);
	if (rc)
		goto free_alerts;
	rc = ring_init(&a->errors, opt->window_s);
	if (rc)
		goto fini_events;
	static const char *const labels[] = {"alert", NULL};
	metric_family_t *f = metrics_family(
	    METRIC_GAUGE, "orderd_alert_firing",
	    "1 while the named built-in alert fires, else 0", labels, NULL, 0);
	for (int i = 0; i < ALERT_COUNT; i++) {
		a->gauge[i] = metrics_child1(f, alert_names[i]);
		if (!a->gauge[i]) {
			rc = -ENOMEM;
			goto fini_errors;
		}
		/* Explicitly 0 so the series is exported before any event. */
		metrics_set(a->gauge[i], 0);
		a->state[i].id = (alert_id_t)i;
		a->state[i].name = alert_names[i];
	}
	a->opt = *opt;
	if (!a->opt.mono_ms)
		a->opt.mono_ms = real_mono_ms;
	if (!a->opt.wall_ms)
		a->opt.wall_ms = real_wall_ms;
	a->state[ALERT_HIGH_ERROR_RATE].threshold = opt->error_rate;
	a->state[ALERT_BACKLOG_TOO_OLD].threshold = (double)opt->backlog_s;
	a->last_eval_s = -1;
	a->clear_since_s = -1;
	pthread_mutex_init(&a->lock, NULL);
	*ret = a;
	return 0;

fini_errors:
	ring_fini(&a->errors);
fini_events:
	ring_fini(&a->events);
free_alerts:
	free(a);
	return rc;
}

void alerts_free(alerts_t *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->lock);
	ring_fini(&a->events);
	ring_fini(&a->errors);
	free(a);
}

static int64_t alerts_now_s(const alerts_t *a)
{
	return a->opt.mono_ms(a->opt.clock_arg) / 1000;
}

void alerts_record(alerts_t *a, bool is_error)
{
	struct changes ch = {0};
	int64_t s = alerts_now_s(a);
	pthread_mutex_lock(&a->lock);
	ring_add(&a->events, s, 1);
	if (is_error)
		ring_add(&a->errors, s, 1);
	/* Re-evaluating costs a pass over the ring, so the event path does
	 * it at most once a second; alerts_list() always does. */
	if (s != a->last_eval_s)
		eval_error_rate_locked(a, s, &ch);
	pthread_mutex_unlock(&a->lock);
	log_changes(&ch);
}

void alerts_set_backlog(alerts_t *a, int64_t age_ms)
{
	struct changes ch = {0};
	pthread_mutex_lock(&a->lock);
	a->backlog_ms = age_ms > 0 ? age_ms : 0;
	eval_backlog_locked(a, &ch);
	pthread_mutex_unlock(&a->lock);
	log_changes(&ch);
}

size_t alerts_list(alerts_t *a, alert_state_t *out, size_t max)
{
	struct changes ch = {0};
	int64_t s = alerts_now_s(a);
	size_t n = max < ALERT_COUNT ? max : ALERT_COUNT;
	pthread_mutex_lock(&a->lock);
	eval_error_rate_locked(a, s, &ch);
	eval_backlog_locked(a, &ch);
	for (size_t i = 0; i < n; i++)
		out[i] = a->state[i];
	pthread_mutex_unlock(&a->lock);
	log_changes(&ch);
	return n;
}
