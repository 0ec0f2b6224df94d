/*
 * confirm: the confirm step. After a worker has reserved an order's stock
 * (store_reserve), the order is handed here and POSTed to the confirm URL
 * ({"order": {...}, "attempt": n}, header Idempotency-Key = the order id on
 * every attempt) by one thread driving many transfers at once through
 * libcurl's multi interface, outside any database transaction. While a
 * call is in flight the order's lease is renewed (store_renew); a lease
 * found lost abandons the call.
 *
 * The answer: 2xx completes the order (store_finish); any other 4xx but
 * 408 and 429 rejects it, reason "declined", its stock released; 408, 429,
 * 5xx, a timeout or a connection error is transient: the order goes back
 * to pending holding its stock (store_retry), due after a backoff with full
 * jitter that honours Retry-After up to the backoff cap, or becomes failed
 * with its stock released when its attempts are used up. Every write is
 * conditional on the order's fence, so a stalled holder changes nothing
 * (counted in orderd_fence_rejections_total); the next holder calls again
 * with the same Idempotency-Key.
 *
 * Slots bound the calls in flight: a worker reserves slots before it
 * claims, so claimed orders never wait for a free transfer.
 */
#ifndef ORDERD_WORK_CONFIRM_H
#define ORDERD_WORK_CONFIRM_H

#include <stddef.h>
#include <stdint.h>

#include "obs/alerts.h"
#include "store/store.h"

typedef struct confirm confirm_t;

typedef struct confirm_options {
	const char *url;
	int64_t connect_timeout_ms;
	int64_t timeout_ms; /* the whole call */
	size_t concurrency; /* calls in flight at most */
	int64_t lease_ms;   /* renewed to this while a call is in flight */
	int max_attempts;
	int64_t retry_base_ms;
	int64_t retry_max_ms;
	alerts_t *alerts; /* may be NULL: each answer is an event */
	/* The owner's hooks (the workers'), called on the confirm thread
	 * with arg: slots became free; an order reached status st
	 * (completed, rejected, failed) here; a write under c's lease found
	 * its fence stale (what: the write). The owner counts the last two
	 * with its own processing metrics. */
	void (*on_free)(void *arg);
	void (*on_finished)(void *arg, const store_claim_t *c,
	                    order_status_t st);
	void (*on_fenced)(void *arg, const store_claim_t *c, const char *what);
	void *arg;
} confirm_options_t;

int confirm_new(store_t *store, const confirm_options_t *opt, confirm_t **ret);
/* Reserves up to max slots; returns how many (0 when all are taken). */
size_t confirm_slots(confirm_t *c, size_t max);
/* Gives back n reserved slots that were not used. */
void confirm_unslot(confirm_t *c, size_t n);
/*
 * Starts the confirm call of a claim whose stock is held
 * (PROCESS_RESERVED), using one reserved slot. Takes the claim's order
 * (*claim is zeroed), so the caller's clear is harmless.
 */
void confirm_submit(confirm_t *c, store_claim_t *claim);
/*
 * Stops taking calls; lets those in flight finish until deadline
 * (monotonic ms), then abandons the rest and hands their orders back
 * (store_release; they keep their stock). Returns how many were handed
 * back. The thread is joined.
 */
size_t confirm_drain(confirm_t *c, int64_t deadline_mono_ms);
void confirm_free(confirm_t *c);

#endif
