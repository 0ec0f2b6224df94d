/*
 * alerts: the built-in alert evaluator. For now one alert, "high_error_rate":
 * the share of HTTP requests answered 5xx over a sliding window of
 * window_s seconds fires above threshold once at least min_requests were
 * seen. State changes are logged once and exported as
 * orderd_alert_firing{alert}. Thread-safe (one mutex).
 */
#ifndef ORDERD_OBS_ALERTS_H
#define ORDERD_OBS_ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct alerts alerts_t;

typedef struct alert_state {
	const char *name; /* static */
	bool firing;
	double value;
	double threshold;
	int64_t since_ms; /* wall ms of the last state change; 0 = never */
} alert_state_t;

int alerts_new(double threshold, int window_s, int64_t min_requests,
               alerts_t **ret);
void alerts_free(alerts_t *a);
/* Records one finished request; is_error for a 5xx answer. */
void alerts_record(alerts_t *a, bool is_error);
/* Re-evaluates and copies up to max states to out; returns the count. */
size_t alerts_list(alerts_t *a, alert_state_t *out, size_t max);

/*
 * alerts_window: a thread-safe count of events over the last n seconds
 * in one-second slots (n <= 3600), the same ring the alert counts its
 * requests and errors in. The HTTP layer uses one for the 201 throughput.
 */
typedef struct alerts_window alerts_window_t;
int alerts_window_new(int seconds, alerts_window_t **ret);
void alerts_window_free(alerts_window_t *w);
void alerts_window_add(alerts_window_t *w, int64_t n);
/* Sum of the last `seconds` full and current slots. */
int64_t alerts_window_sum(alerts_window_t *w);

#endif
