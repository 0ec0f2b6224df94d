/*
 * notifier: the outbox dispatcher (G9). One thread claims due pending
 * notifications under a lease with a fresh fence (store_notify_claim), so
 * any replica can deliver and two never own one event at once, and POSTs
 * each, with libcurl's multi interface (up to `concurrency` requests in
 * flight, each bounded by `timeout_ms`), to every endpoint that has not
 * acknowledged it yet. Headers: Idempotency-Key (the event id, stable
 * across redeliveries) and Orderd-Signature (notify_body.h).
 *
 * Outcomes, every write conditional on the claim's fence (a stale one is
 * OD_EFENCE, counted in orderd_fence_rejections_total):
 *   - every endpoint answered 2xx: delivered;
 *   - an endpoint whose circuit was closed failed (not 2xx, timeout,
 *     connection error): a counted attempt; pending again after
 *     exponential backoff with full jitter, or the Retry-After it sent
 *     when longer; dead after max_attempts, the last error kept;
 *   - otherwise some endpoint's circuit was open (or its half-open probe
 *     failed): handed back without counting the attempt, due when the
 *     circuit may close, so an outage never kills events.
 * Per endpoint circuit breaker: breaker_failures consecutive failures
 * open it; while open nothing is sent to it; after breaker_cooldown_ms
 * one request goes through as a probe (half-open): success closes it,
 * failure opens it for another cool-down.
 *
 * Delivered notifications older than retention_ms are pruned in bounded
 * batches every few seconds; pending and dead ones never are.
 *
 * Threading: the dispatcher thread owns the curl handles, the events in
 * flight and the breakers. mu protects stop, draining, the deadline and
 * kicked; the thread never holds it across a store or curl call.
 * Waits are curl_multi_poll's relative timeouts (poll(2), monotonic).
 */
#ifndef ORDERD_WORK_NOTIFIER_H
#define ORDERD_WORK_NOTIFIER_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define NOTIFIER_ENDPOINTS_MAX 8

typedef struct notifier notifier_t;

typedef struct notifier_options {
	const char *replica_id;      /* lease owner */
	const char *urls;            /* 1..8 comma-separated endpoints */
	const char *secret;          /* HMAC key; never logged */
	const char *secret_previous; /* during a rotation; may be NULL */
	int max_attempts;
	int64_t timeout_ms; /* per request */
	int concurrency;    /* requests in flight */
	int64_t retry_base_ms, retry_max_ms;
	int64_t retention_ms;
	int64_t poll_ms; /* longest idle wait between claims */
	int breaker_failures;
	int64_t breaker_cooldown_ms;
} notifier_options_t;

/* Starts the dispatcher. The caller has enabled the outbox
 * (store_outbox_enable). Free with notifier_free. */
int notifier_new(store_t *store, const notifier_options_t *opt,
                 notifier_t **ret);
/* Hint: new notifications may be due now. Cheap; any thread; NULL ok. */
void notifier_kick(notifier_t *n);
/*
 * Stops claiming; lets requests in flight finish until deadline
 * (monotonic ms), then hands back (store_notify_release, the attempt not
 * counted) every event still held. Joins the thread; returns how many were
 * handed back. NULL ok (0).
 */
size_t notifier_drain(notifier_t *n, int64_t deadline_mono_ms);
void notifier_free(notifier_t *n);

#endif
