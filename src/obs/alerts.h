/*
 * alerts: the built-in alert evaluator. Two alerts, named as Prometheus
 * rules name theirs (API 1.1):
 *
 *   HighErrorRate  error events / all events over a sliding window of
 *                  window_s seconds. An event is whatever a source counts
 *                  with alerts_record(): an HTTP request (error: 5xx), a
 *                  processing attempt (error: a failed one), a confirm call
 *                  (error: a confirm failure). Fires when the rate exceeds
 *                  error_rate once at least min_events were seen; resolves
 *                  only after the rate stayed at or below it (or the events
 *                  fell under min_events) for a full window, so a rate
 *                  hovering at the threshold does not flap.
 *   BacklogTooOld  the oldest pending order's age, as last fed with
 *                  alerts_set_backlog(), is above backlog_s; resolves as
 *                  soon as it is not.
 *
 * Each state change is logged once and exported as orderd_alert_firing{alert}.
 * The alert webhook (work/alertmanager) reads the states with alerts_list()
 * and tells Alertmanager. Thread-safe (one mutex).
 */
#ifndef ORDERD_OBS_ALERTS_H
#define ORDERD_OBS_ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct alerts alerts_t;

/* The alerts, in the order alerts_list() reports them. */
typedef enum alert_id {
	ALERT_HIGH_ERROR_RATE = 0,
	ALERT_BACKLOG_TOO_OLD,
	ALERT_COUNT,
} alert_id_t;

typedef struct alert_state {
	alert_id_t id;
	const char *name; /* static: "HighErrorRate", "BacklogTooOld" */
	bool firing;
	double value;     /* error rate 0..1; backlog age in seconds */
	double threshold; /* in the unit of value */
	int64_t since_ms; /* wall ms of the last state change; 0 = never */
	/* Wall ms at which the current (or, when resolved, the last)
	 * firing began; 0 = never fired. Alertmanager's startsAt. */
	int64_t started_ms;
	/* State changes so far. A reader that remembers it can tell that an
	 * alert changed even when it is back in the state it last saw. */
	uint64_t changes;
	int64_t events, errors; /* HighErrorRate: the window's counts */
} alert_state_t;

typedef struct alerts_options {
	double error_rate;  /* HighErrorRate threshold, 0..1 */
	int window_s;       /* 1..3600 */
	int64_t min_events; /* >= 0 */
	int64_t backlog_s;  /* BacklogTooOld threshold, >= 1 */
	/* Tests: the clocks (ms) and their argument; NULL = util/clock. */
	int64_t (*mono_ms)(void *arg);
	int64_t (*wall_ms)(void *arg);
	void *clock_arg;
} alerts_options_t;

int alerts_new(const alerts_options_t *opt, alerts_t **ret);
void alerts_free(alerts_t *a);
/* Records one event of any source; is_error when it failed. */
void alerts_record(alerts_t *a, bool is_error);
/* Feeds the oldest pending order's age (ms, 0 = none pending). */
void alerts_set_backlog(alerts_t *a, int64_t age_ms);
/* Re-evaluates and copies up to max states to out; returns the count. */
size_t alerts_list(alerts_t *a, alert_state_t *out, size_t max);

/*
 * alerts_window: a thread-safe count of events over the last n seconds
 * in one-second slots (n <= 3600), the same ring the alert counts its
 * events and errors in. The HTTP layer uses one for the 201 throughput.
 */
typedef struct alerts_window alerts_window_t;
int alerts_window_new(int seconds, alerts_window_t **ret);
void alerts_window_free(alerts_window_t *w);
void alerts_window_add(alerts_window_t *w, int64_t n);
/* Sum of the last `seconds` full and current slots. */
int64_t alerts_window_sum(alerts_window_t *w);

#endif
