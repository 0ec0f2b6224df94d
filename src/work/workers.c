/*
 * workers: the processing pool and the reaper (see workers.h).
 *
 * Each worker thread loops: claim a batch under a lease, process it in one
 * transaction, and on a transient failure schedule each order's retry with
 * exponential backoff and full jitter (or fail it when out of attempts).
 * Without a confirm step the claim and the processing are one transaction
 * (store_take): no lease to write, nothing to fence, each order written
 * once. After any error of that path the next round takes the leased one,
 * which counts the attempt, backs off and isolates a poison order; and the
 * failpoints that stall or fail a claimed batch (slow_process_ms,
 * fail_process) exist only in it, so with one set the leased path is used.
 * A claimed order's outcome is only ever written conditionally on its fence,
 * so a worker that stalled past its lease writes nothing (counted in
 * orderd_fence_rejections_total).
 *
 * An unknown outcome (connection lost around COMMIT) is resolved by reading
 * each order back: still processing under our fence means the commit did
 * not happen (reschedule it); terminal under our fence means it did (count
 * it). Guessing either way would miscount or, worse, double-process.
 *
 * Locking: mu protects stopping, deadline, kicks and the handed-back
 * count; cv wakes idle workers (a kick, stopping), reaper_cv the reaper
 * (stopping only: a kick is a sign of work for the workers, and the
 * reaper's round, a reap and a heartbeat, runs on its clock). Threads
 * share nothing else;
 * the store is thread-safe.
 */
#include "work/workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "obs/feed.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/failpoint.h"

struct workers {
	store_t *store;
	workers_options_t opt;
	char replica_id[ID_MAX + 1];
	pthread_t *threads;
	int n_threads;
	pthread_t reaper;
	bool reaper_started;
	confirm_t *confirm; /* NULL without a confirm step */

	pthread_mutex_t mu;
	pthread_cond_t cv;        /* CLOCK_MONOTONIC */
	pthread_cond_t reaper_cv; /* CLOCK_MONOTONIC */
	bool stopping;            /* mu */
	int64_t deadline;   /* mu: monotonic ms; work past it is handed back */
	uint64_t kicks;     /* mu */
	size_t handed_back; /* mu */

	/* orderd_orders_processed_total by outcome, looked up once: the
	 * registry lock is not for the per-order path. */
	metric_t *m_completed;
	metric_t *m_rejected;
	metric_t *m_failed;
	metric_t *m_latency;
	metric_t *m_retries;
	metric_t *m_expired;
	metric_t *m_fenced;
	metric_t *m_claim_err;
	metric_t *m_process_err;
	metric_t *m_reap_err;
	metric_t *m_beat_err;
	metric_t *m_breaches;
	metric_t *m_replicas;
};

static bool is_stopping(workers_t *w, int64_t *ret_deadline)
{
	pthread_mutex_lock(&w->mu);
	bool s = w->stopping;
	if (ret_deadline)
		*ret_deadline = w->deadline;
	pthread_mutex_unlock(&w->mu);
	return s;
}

/* Sleeps up to ms unless kicked or stopping. Returns true when kicked. */
static bool idle_wait(workers_t *w, int64_t ms, uint64_t *seen_kicks)
{
	struct timespec ts = clock_mono_timespec(clock_mono_ms() + ms);
	pthread_mutex_lock(&w->mu);
	while (!w->stopping && w->kicks == *seen_kicks) {
		if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
			break;
	}
	bool kicked = w->kicks != *seen_kicks;
	*seen_kicks = w->kicks;
	pthread_mutex_unlock(&w->mu);
	return kicked;
}

/* A write under a lease found the fence stale: nothing was written (G7). */
static void fenced_out(workers_t *w, const store_claim_t *c, const char *what)
{
	metrics_inc(w->m_fenced);
	log_warn("lease lost, work abandoned", "order_id", c->order.id, "write",
	         what, NULL);
}

static void hand_back(workers_t *w, store_claim_t *claims, size_t n)
{
	size_t done = 0;
	for (size_t i = 0; i < n; i++) {
		int rc = store_release(w->store, claims[i].order.id,
		                       claims[i].fence);
		if (rc == 0)
			done++;
		else if (rc == OD_EFENCE)
			fenced_out(w, &claims[i], "release");
		else
			/* Still held under our lease: it expires and the
			 * reaper hands the order on (G6). */
			log_warn("hand-back failed, left to the lease",
			         "order_id", claims[i].order.id, "error",
			         err_str(rc), NULL);
	}
	pthread_mutex_lock(&w->mu);
	w->handed_back += done;
	pthread_mutex_unlock(&w->mu);
	char num[24];
	snprintf(num, sizeof num, "%zu", done);
	log_info("orders handed back", "count", num, NULL);
}

/* Counts an order that reached a terminal status here, by outcome. */
static void count_finished(workers_t *w, const store_claim_t *c,
                           metric_t *outcome)
{
	metrics_inc(outcome);
	int64_t secs_ms = clock_wall_ms() - c->order.created_at;
	metrics_observe(w->m_latency, secs_ms > 0 ? secs_ms / 1000.0 : 0);
}

static void record_outcome(workers_t *w, const store_claim_t *c,
                           metric_t *outcome)
{
	count_finished(w, c, outcome);
	if (feed_active()) {
		bool ok = outcome == w->m_completed,
		     no = outcome == w->m_rejected;
		feed_order(c->order.id,
		           ok   ? "completed"
		           : no ? "rejected"
		                : "failed",
		           ok   ? "complete"
		           : no ? "reject"
		                : "fail",
		           c->fence, NULL, NULL);
	}
	/* A failure was counted where it happened (retry_batch, the
	 * backstop); a decided order is a successful attempt. */
	if (w->opt.alerts && outcome != w->m_failed)
		alerts_record(w->opt.alerts, false);
}

/*
 * The batch's COMMIT was lost in flight: read each order back. Still ours
 * and processing: the commit did not happen (retry it). Ours and terminal:
 * it did (count it). Another fence: someone else has it now. Returns false
 * when the store cannot answer yet (the caller leaves it to the lease).
 */
static bool resolve_unknown(workers_t *w, const store_claim_t *c,
                            bool *ret_retry)
{
	order_status_t st;
	int64_t fence;
	/* Ask until the store answers: this worker could not claim anything
	 * meanwhile anyway. Only a drain stops it (then the lease decides). */
	backoff_t b = {50, 1000};
	int rc;
	for (int i = 1;; i++) {
		rc = store_order_fence(w->store, c->order.id, &st, &fence);
		if (rc >= 0 || rc == OD_ENOTFOUND || is_stopping(w, NULL))
			break;
		clock_sleep_ms(backoff_ceiling_ms(&b, i) / 2 +
		               backoff_delay_ms(&b, i, clock_rand()) / 2);
	}
	if (rc < 0)
		return false;
	*ret_retry = fence == c->fence && st == ORDER_PROCESSING;
	if (fence == c->fence && order_status_terminal(st))
		record_outcome(w, c,
		               st == ORDER_COMPLETED  ? w->m_completed
		               : st == ORDER_REJECTED ? w->m_rejected
		                                      : w->m_failed);
	return true;
}

/* A transient failure hit the whole batch: reschedule or fail each order. */
static void retry_batch(workers_t *w, store_claim_t *claims, size_t n, int err)
{
	backoff_t b = {w->opt.retry_base_ms, w->opt.retry_max_ms};
	for (size_t i = 0; i < n; i++) {
		store_claim_t *c = &claims[i];
		bool retry = true;
		if (err == OD_EUNKNOWN && !resolve_unknown(w, c, &retry)) {
			log_warn(
			    "outcome unresolved at drain, left to the lease",
			    "order_id", c->order.id, NULL);
			continue;
		}
		if (!retry)
			continue;
		/* A failed processing attempt is an error event. */
		if (w->opt.alerts)
			alerts_record(w->opt.alerts, true);
		int64_t delay =
		    backoff_delay_ms(&b, c->order.attempts, clock_rand());
		bool failed = false;
		int rc = store_retry(w->store, c->order.id, c->fence,
		                     w->opt.max_attempts, delay, err_str(err),
		                     &failed);
		if (rc == OD_EFENCE) {
			/* The lease moved on: not ours to judge. */
			fenced_out(w, c, "retry");
			continue;
		}
		if (rc < 0) {
			/* The lease will expire and the reaper recovers it. */
			log_warn("retry not recorded", "order_id", c->order.id,
			         "error", err_str(rc), NULL);
			continue;
		}
		if (failed) {
			record_outcome(w, c, w->m_failed);
			log_warn("order failed", "order_id", c->order.id,
			         "error", err_str(err), NULL);
		} else {
			metrics_inc(w->m_retries);
			feed_order(c->order.id, "pending", "retry", c->fence,
			           NULL, err_str(err));
		}
	}
}

/* The backstop of G3 fired for c: nothing was reserved twice and the order
 * is failed, so this is counted and logged once, never again for it. */
static void breach(workers_t *w, const store_claim_t *c,
                   const store_process_result_t *r)
{
	metrics_inc(w->m_breaches);
	if (w->opt.alerts)
		alerts_record(w->opt.alerts, true);
	log_error("invariant breach: order already holds a reservation,"
	          " failed without reserving",
	          "order_id", c->order.id, "reason", r->reason, NULL);
}

/* Processes a claimed batch; returns how many orders went on to the
 * confirm step (each took one of the slots the caller reserved). */
static size_t process_batch(workers_t *w, store_claim_t *claims, size_t n,
                            store_process_result_t *results)
{
	int64_t slow = (int64_t)failpoint_value("slow_process_ms", 0);
	if (slow > 0)
		clock_sleep_ms(slow);

	int64_t deadline;
	if (is_stopping(w, &deadline) && clock_mono_ms() >= deadline) {
		hand_back(w, claims, n);
		return 0;
	}

	confirm_t *confirm = w->confirm;
	int rc = failpoint_hit("fail_process") ? OD_ESTORE
	         : confirm ? store_reserve(w->store, claims, n, results)
	                   : store_process(w->store, claims, n, results);
	if (rc == OD_EINTERNAL && n > 1) {
		/* The store met an impossible state it could not pin on one
		 * order (the backstop it can pin is PROCESS_BREACH). Process
		 * one order at a time so a single poison order costs only its
		 * own attempts, not its neighbours'. */
		log_warn("processing batch failed, isolating", "error",
		         err_str(rc), "first_order_id", claims[0].order.id,
		         NULL);
		size_t sent = 0;
		for (size_t i = 0; i < n; i++)
			sent += process_batch(w, &claims[i], 1, &results[i]);
		return sent;
	}
	if (rc < 0) {
		metrics_inc(w->m_process_err);
		log_warn("processing batch failed", "error", err_str(rc),
		         "first_order_id", claims[0].order.id, NULL);
		retry_batch(w, claims, n, rc);
		return 0;
	}
	size_t sent = 0;
	for (size_t i = 0; i < n; i++) {
		switch (results[i].outcome) {
		case PROCESS_RESERVED:
			confirm_submit(confirm, &claims[i]);
			sent++;
			break;
		case PROCESS_COMPLETED:
			record_outcome(w, &claims[i], w->m_completed);
			break;
		case PROCESS_REJECTED:
			record_outcome(w, &claims[i], w->m_rejected);
			break;
		case PROCESS_FENCED:
			fenced_out(w, &claims[i], "process");
			break;
		case PROCESS_BREACH:
			breach(w, &claims[i], &results[i]);
			record_outcome(w, &claims[i], w->m_failed);
			break;
		}
	}
	return sent;
}

/* Outcomes of a store_take batch: as process_batch counts them. */
static void took_batch(workers_t *w, const store_claim_t *claims, size_t n,
                       const store_process_result_t *results)
{
	for (size_t i = 0; i < n; i++) {
		process_outcome_t out = results[i].outcome;
		if (out == PROCESS_BREACH)
			breach(w, &claims[i], &results[i]);
		record_outcome(w, &claims[i],
		               out == PROCESS_COMPLETED  ? w->m_completed
		               : out == PROCESS_REJECTED ? w->m_rejected
		                                         : w->m_failed);
	}
}

/* store_take failed with err: counted, logged, and for a COMMIT lost in
 * flight each order read back, counted when it was decided under our
 * fence (else it is still pending: nothing to undo). */
static void take_failed(workers_t *w, store_claim_t *claims, size_t n, int err)
{
	/* A failed processing attempt is an error event, as on the leased
	 * path (which counts it per order, in retry_batch). */
	if (w->opt.alerts)
		alerts_record(w->opt.alerts, true);
	metrics_inc(w->m_process_err);
	log_warn("processing batch failed", "error", err_str(err), NULL);
	for (size_t i = 0; err == OD_EUNKNOWN && i < n; i++) {
		bool retry;
		if (!resolve_unknown(w, &claims[i], &retry))
			log_warn("outcome unresolved at drain", "order_id",
			         claims[i].order.id, NULL);
	}
	store_claims_clear(claims, n);
}

/* Whether this round may use store_take (see the top of the file). */
static bool take_ok(const workers_t *w, bool after_error)
{
	return !w->confirm && !after_error &&
	       failpoint_value("slow_process_ms", 0) == 0 &&
	       failpoint_value("fail_process", 0) == 0;
}

static void *worker_main(void *arg)
{
	workers_t *w = arg;
	size_t max = w->opt.claim_batch;
	store_claim_t *claims = calloc(max, sizeof *claims);
	store_process_result_t *results = calloc(max, sizeof *results);
	if (!claims || !results) {
		log_error("worker cannot start", "error", err_str(-ENOMEM),
		          NULL);
		goto out;
	}
	int64_t idle = 1;
	uint64_t seen = 0;
	bool after_error = false;
	while (!is_stopping(w, NULL)) {
		size_t n = 0, slots = max;
		if (take_ok(w, after_error)) {
			int rc = store_take(w->store, w->replica_id, max,
			                    claims, &n, results);
			if (rc < 0) {
				take_failed(w, claims, n, rc);
				after_error = true;
				continue;
			}
			took_batch(w, claims, n, results);
			store_claims_clear(claims, n);
			if (n > 0) {
				idle = 1;
			} else if (idle_wait(w, idle, &seen)) {
				idle = 1;
			} else if ((idle *= 2) > w->opt.poll_ms) {
				idle = w->opt.poll_ms;
			}
			continue;
		}
		/* With a confirm step, claim only what can be confirmed now:
		 * a claimed order never waits for a free call. Freed slots
		 * kick the workers. */
		if (w->confirm &&
		    (slots = confirm_slots(w->confirm, max)) == 0) {
			idle_wait(w, w->opt.poll_ms, &seen);
			continue;
		}
		int rc = store_claim(w->store, w->replica_id, w->opt.lease_ms,
		                     slots, claims, &n);
		after_error = rc < 0;
		size_t sent = 0;
		if (rc == 0 && n > 0)
			sent = process_batch(w, claims, n, results);
		if (w->confirm)
			confirm_unslot(w->confirm, slots - sent);
		if (rc < 0) {
			metrics_inc(w->m_claim_err);
			log_warn("claim failed", "error", err_str(rc), NULL);
			/* Back off with jitter so replicas do not stampede a
			 * recovering store. */
			idle_wait(w,
			          w->opt.poll_ms +
			              (int64_t)(clock_rand() %
			                        (uint64_t)w->opt.poll_ms),
			          &seen);
			continue;
		}
		if (n == 0) {
			/* Nothing due: sleep, doubling up to poll_ms; a kick
			 * (local commit) ends the sleep at once. */
			if (idle_wait(w, idle, &seen))
				idle = 1;
			else if ((idle *= 2) > w->opt.poll_ms)
				idle = w->opt.poll_ms;
			continue;
		}
		idle = 1;
		store_claims_clear(claims, n);
	}
out:
	free(claims);
	free(results);
	return NULL;
}

/* Records this replica's heartbeat and refreshes the replicas gauge. A
 * failure is counted and logged; the gauge keeps its last value. */
static void beat(workers_t *w)
{
	int rc = store_replica_beat(w->store, w->replica_id);
	size_t replicas = 0;
	if (rc == 0)
		rc = store_replicas_list(
		    w->store, workers_replica_window_ms(w->opt.reap_ms), NULL,
		    0, &replicas);
	if (rc < 0) {
		metrics_inc(w->m_beat_err);
		log_warn("heartbeat failed", "error", err_str(rc), NULL);
		return;
	}
	metrics_set(w->m_replicas, (double)replicas);
}

/* Sleeps ms, or until stopping. */
static void reaper_wait(workers_t *w, int64_t ms)
{
	struct timespec ts = clock_mono_timespec(clock_mono_ms() + ms);
	pthread_mutex_lock(&w->mu);
	while (!w->stopping &&
	       pthread_cond_timedwait(&w->reaper_cv, &w->mu, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&w->mu);
}

static void *reaper_main(void *arg)
{
	workers_t *w = arg;
	while (!is_stopping(w, NULL)) {
		size_t n = 0;
		int rc;
		do {
			rc =
			    store_reap(w->store, w->opt.max_attempts, 1000, &n);
			if (rc == 0 && n > 0) {
				char num[24];
				snprintf(num, sizeof num, "%zu", n);
				metrics_add(w->m_expired, (double)n);
				log_warn("expired leases taken back", "count",
				         num, NULL);
			}
		} while (rc == 0 && n == 1000);
		if (rc < 0) {
			metrics_inc(w->m_reap_err);
			log_warn("reap failed", "error", err_str(rc), NULL);
		}
		beat(w);
		reaper_wait(w, w->opt.reap_ms);
	}
	return NULL;
}

/* The confirm step's hooks: its outcomes and fence rejections count in
 * the workers' metrics (its answers are the alert's events). */
static void kick(void *arg)
{
	workers_kick(arg);
}

static void confirm_finished(void *arg, const store_claim_t *c,
                             order_status_t st)
{
	workers_t *w = arg;
	count_finished(w, c,
	               st == ORDER_COMPLETED  ? w->m_completed
	               : st == ORDER_REJECTED ? w->m_rejected
	                                      : w->m_failed);
}

static void confirm_fenced(void *arg, const store_claim_t *c, const char *what)
{
	fenced_out(arg, c, what);
}

int workers_new(store_t *store, const workers_options_t *opt, workers_t **ret)
{
	workers_t *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->store = store;
	w->opt = *opt;
	snprintf(w->replica_id, sizeof w->replica_id, "%s", opt->replica_id);
	w->opt.replica_id = w->replica_id;
	if (w->opt.poll_ms < 1)
		w->opt.poll_ms = 1;
	pthread_mutex_init(&w->mu, NULL);
	clock_cond_init(&w->cv);
	clock_cond_init(&w->reaper_cv);

	const char *const outcome[] = {"outcome", NULL};
	const char *const reason[] = {"reason", NULL};
	const char *const kind[] = {"kind", NULL};
	metric_family_t *processed = metrics_family(
	    METRIC_COUNTER, "orderd_orders_processed_total",
	    "Orders that reached a terminal status here, by outcome.", outcome,
	    NULL, 0);
	w->m_latency = metrics_child0(
	    metrics_family(METRIC_HISTOGRAM, "orderd_order_processing_seconds",
	                   "Time from submission to terminal status.", NULL,
	                   metrics_latency_buckets, metrics_latency_n_buckets));
	w->m_retries = metrics_child1(
	    metrics_family(METRIC_COUNTER, "orderd_retries_total",
	                   "Processing attempts rescheduled, by reason.",
	                   reason, NULL, 0),
	    "store");
	w->m_expired = metrics_child0(metrics_family(
	    METRIC_COUNTER, "orderd_lease_expirations_total",
	    "Orders whose lease expired and were taken back.", NULL, NULL, 0));
	w->m_fenced = metrics_child0(metrics_family(
	    METRIC_COUNTER, "orderd_fence_rejections_total",
	    "Writes refused because the lease's fence was stale.", NULL, NULL,
	    0));
	metric_family_t *errs = metrics_family(
	    METRIC_COUNTER, "orderd_store_errors_total",
	    "Store operations that failed, by kind.", kind, NULL, 0);
	w->m_claim_err = metrics_child1(errs, "claim");
	w->m_process_err = metrics_child1(errs, "process");
	w->m_reap_err = metrics_child1(errs, "reap");
	w->m_beat_err = metrics_child1(errs, "heartbeat");
	w->m_breaches = metrics_child1(
	    metrics_family(METRIC_COUNTER, "orderd_invariant_breaches_total",
	                   "Orders on which a store backstop caught a broken"
	                   " invariant, by kind.",
	                   kind, NULL, 0),
	    "duplicate_reservation");
	w->m_replicas = metrics_child0(metrics_family(
	    METRIC_GAUGE, "orderd_replicas",
	    "Replicas whose heartbeat the store has seen recently.", NULL, NULL,
	    0));
	/* Looked up once, and every outcome visible from the start. */
	w->m_completed = metrics_child1(processed, "completed");
	w->m_rejected = metrics_child1(processed, "rejected");
	w->m_failed = metrics_child1(processed, "failed");

	int rc = 0;
	w->opt.confirm = NULL;
	if (opt->confirm) {
		confirm_options_t copt = *opt->confirm;
		copt.on_free = kick;
		copt.on_finished = confirm_finished;
		copt.on_fenced = confirm_fenced;
		copt.arg = w;
		if ((rc = confirm_new(store, &copt, &w->confirm)) < 0)
			goto fail;
	}
	w->threads = calloc((size_t)opt->threads, sizeof *w->threads);
	if (!w->threads) {
		rc = -ENOMEM;
		goto fail;
	}
	for (; w->n_threads < opt->threads; w->n_threads++) {
		rc = -pthread_create(&w->threads[w->n_threads], NULL,
		                     worker_main, w);
		if (rc < 0)
			goto fail;
	}
	rc = -pthread_create(&w->reaper, NULL, reaper_main, w);
	if (rc < 0)
		goto fail;
	w->reaper_started = true;
	*ret = w;
	return 0;
fail:
	workers_drain(w, clock_mono_ms());
	workers_free(w);
	return rc;
}

void workers_kick(workers_t *w)
{
	pthread_mutex_lock(&w->mu);
	w->kicks++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

size_t workers_drain(workers_t *w, int64_t deadline_mono_ms)
{
	pthread_mutex_lock(&w->mu);
	bool already = w->stopping;
	w->stopping = true;
	w->deadline = deadline_mono_ms;
	pthread_cond_broadcast(&w->cv);
	pthread_cond_broadcast(&w->reaper_cv);
	pthread_mutex_unlock(&w->mu);
	if (already)
		return 0;
	for (int i = 0; i < w->n_threads; i++)
		pthread_join(w->threads[i], NULL);
	w->n_threads = 0;
	/* No worker submits any more: the confirm calls finish or are
	 * handed back by the same deadline. */
	size_t confirms =
	    w->confirm ? confirm_drain(w->confirm, deadline_mono_ms) : 0;
	if (w->reaper_started)
		pthread_join(w->reaper, NULL);
	w->reaper_started = false;
	pthread_mutex_lock(&w->mu);
	size_t n = w->handed_back;
	pthread_mutex_unlock(&w->mu);
	return n + confirms;
}

void workers_free(workers_t *w)
{
	if (!w)
		return;
	workers_drain(w, clock_mono_ms());
	confirm_free(w->confirm);
	pthread_cond_destroy(&w->cv);
	pthread_cond_destroy(&w->reaper_cv);
	pthread_mutex_destroy(&w->mu);
	free(w->threads);
	free(w);
}
