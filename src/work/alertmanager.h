/*
 * alertmanager: the thread that feeds the built-in alerts (obs/alerts) and
 * tells a person about them. Each tick (1 s) it
 *
 *   - polls the store once for the oldest pending order's age
 *     (store_stats) and feeds it to alerts_set_backlog(), at most every
 *     backlog_s / 10 (1..10 s: a store_stats call can count every order
 *     kept, so it is not made more often than the alert needs);
 *   - re-evaluates the alerts (alerts_list), so HighErrorRate resolves on
 *     time even when no event arrives;
 *   - when a webhook URL is set, POSTs every alert that changed state
 *     since it was last delivered, and every firing alert not sent for
 *     resend_ms, as one Alertmanager v2 API body (a JSON array of alerts
 *     with labels, annotations, startsAt, endsAt, generatorURL).
 *
 * A firing alert's endsAt lies 4 resend intervals ahead, as Prometheus
 * does, so Alertmanager keeps a live alert active and resolves the alert
 * of a replica that died by itself; a resolved one is sent with endsAt =
 * the time it resolved. A failed POST is logged (once per failure streak,
 * then at most every resend interval) and retried on the next tick; each
 * POST is bounded by timeout_ms, and only this thread ever waits for it.
 * Counted in orderd_alert_notifications_total{outcome="sent|error"}.
 */
#ifndef ORDERD_WORK_ALERTMANAGER_H
#define ORDERD_WORK_ALERTMANAGER_H

#include <stddef.h>
#include <stdint.h>

#include "obs/alerts.h"
#include "store/store.h"

typedef struct alertmanager alertmanager_t;

typedef struct alertmanager_options {
	const char *url;        /* POST target; NULL or "" = do not send */
	const char *replica_id; /* the `replica` label */
	/* This replica's HTTP address (host:port) for generatorURL
	 * (http://<listen>/v1/alerts); a wildcard host becomes the host
	 * name. */
	const char *listen;
	int64_t backlog_s;  /* the BacklogTooOld threshold (poll period) */
	int64_t tick_ms;    /* 0 = 1000 */
	int64_t resend_ms;  /* 0 = 30000 */
	int64_t timeout_ms; /* per POST, connect included; 0 = 5000 */
} alertmanager_options_t;

/* Starts the thread. alerts and store must outlive it. */
int alertmanager_new(const alertmanager_options_t *opt, alerts_t *alerts,
                     store_t *store, alertmanager_t **ret);
/* Stops and joins the thread (waits for a POST in flight, bounded by
 * timeout_ms), then frees. NULL is fine. */
void alertmanager_free(alertmanager_t *m);

/*
 * The Alertmanager v2 body for states st[0..n): firing ones with endsAt =
 * firing_ends_ms, resolved ones with endsAt = the time they resolved.
 * generator_url is given whole. Returns malloc'd JSON the caller frees,
 * or NULL when out of memory. Exposed for the unit test.
 */
char *alertmanager_payload(const char *replica_id, const char *generator_url,
                           const alert_state_t *st, size_t n,
                           int64_t firing_ends_ms);

#endif
