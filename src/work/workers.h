/*
 * workers: the processing side. A pool of threads, each of which claims a
 * batch of due orders under a lease, processes them in one transaction
 * (reserve all items and complete, or reject; fail the one order the
 * duplicate-reservation backstop catches), and on a transient store
 * error schedules a retry with backoff and full jitter. A reaper thread
 * returns orders whose lease expired (their replica died or stalled) and
 * records this replica's heartbeat (store_replica_beat) every period.
 *
 * Idle workers sleep on a condition variable with a bounded poll interval;
 * workers_kick() wakes one when new orders were committed locally. The poll
 * is the mechanism (other replicas' submissions), the kick only a hint.
 */
#ifndef ORDERD_WORK_WORKERS_H
#define ORDERD_WORK_WORKERS_H

#include <stddef.h>
#include <stdint.h>

#include "obs/alerts.h"
#include "store/store.h"
#include "work/confirm.h"

typedef struct workers workers_t;

typedef struct workers_options {
	const char *replica_id; /* lease owner */
	int threads;
	size_t claim_batch;
	int64_t lease_ms;
	int max_attempts;
	int64_t poll_ms;       /* longest idle sleep between claims */
	int64_t retry_base_ms; /* backoff base */
	int64_t retry_max_ms;  /* backoff cap */
	int64_t reap_ms;       /* reaper period */
	/* The confirm step (may be NULL: orders complete as soon as their
	 * stock is reserved). The workers run it (its on_free is theirs):
	 * they reserve (store_reserve), hand the held orders to it, and
	 * drain it with themselves. */
	const confirm_options_t *confirm;
	alerts_t *alerts; /* may be NULL: each processing attempt an event */
} workers_options_t;

/* How recent a replica's heartbeat must be for it to count as seen: a few
 * reaper periods (the reaper beats), and never under 5 s. */
static inline int64_t workers_replica_window_ms(int64_t reap_ms)
{
	return 5 * reap_ms + 2000 > 5000 ? 5 * reap_ms + 2000 : 5000;
}

int workers_new(store_t *store, const workers_options_t *opt, workers_t **ret);
/* Hint: new orders may be due now. Cheap; callable from any thread. */
void workers_kick(workers_t *w);
/*
 * Stops claiming; lets in-flight batches and confirm calls finish until
 * deadline (monotonic ms), then hands back (store_release) whatever is
 * still held. Returns the number of orders handed back. Threads are
 * joined.
 */
size_t workers_drain(workers_t *w, int64_t deadline_mono_ms);
void workers_free(workers_t *w);

#endif
