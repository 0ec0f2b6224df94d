/*
 * confirm: the confirm step (see confirm.h).
 *
 * One thread owns the curl multi handle and every job on it. Workers hand
 * jobs over through a queue under mu; the thread moves them onto the multi
 * handle, waits in curl_multi_poll (woken by curl_multi_wakeup when a job
 * arrives or a drain starts), and writes each answer to the store. Jobs
 * whose store write failed stay on the thread and are written again on a
 * later turn, their lease renewed meanwhile, until the write lands, the
 * fence shows the order has moved on, or a lease's time has passed (then
 * the lease decides: the order is handed on and confirmed again).
 *
 * Locking: mu protects queue, slots_used, stopping and deadline.
 * Everything else belongs to the thread.
 */
#include "work/confirm.h"

#include <curl/curl.h>
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

/* What a confirm call answered. */
typedef enum verdict {
	V_PENDING = 0, /* still in flight */
	V_CONFIRMED,
	V_DECLINED,
	V_ERROR, /* transient: retry later */
} verdict_t;

typedef struct job {
	struct job *next;
	store_claim_t claim;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	char errbuf[CURL_ERROR_SIZE];
	int64_t started_ms; /* monotonic */
	verdict_t verdict;
	/* V_ERROR: the error (the order's reason) and the server's
	 * Retry-After. */
	char reason[CURL_ERROR_SIZE + 16];
	int64_t retry_after_ms;
	bool unknown;          /* a write of it was lost in flight */
	int64_t failing_since; /* monotonic ms of the first failed write */
	bool retire;           /* written or abandoned: free it */
} job_t;

struct confirm {
	store_t *store;
	confirm_options_t opt;
	char *url;
	CURLM *multi;
	pthread_t thread;
	bool started;

	pthread_mutex_t mu;
	job_t *queue;      /* mu: submitted, not yet on the thread */
	size_t slots_used; /* mu: reserved + queued + on the thread */
	bool stopping;     /* mu */
	int64_t deadline;  /* mu: monotonic ms */
	size_t handed_back;

	job_t *active; /* thread: on the multi handle or awaiting a write */
	size_t n_active;
	int64_t renew_at; /* thread: monotonic ms of the next renewal */

	metric_t *m_confirmed, *m_declined, *m_error;
	metric_t *m_duration, *m_in_flight, *m_retries, *m_write_err;
};

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static void job_free(job_t *j)
{
	if (j->easy)
		curl_easy_cleanup(j->easy);
	curl_slist_free_all(j->headers);
	free(j->body);
	store_claims_clear(&j->claim, 1);
	free(j);
}

/* Builds the transfer: body, headers, timeouts. 0 or -ENOMEM. */
static int job_start(confirm_t *c, job_t *j)
{
	json_t *o = order_to_json(&j->claim.order);
	json_t *doc = o ? json_pack("{s:o,s:i}", "order", o, "attempt",
	                            (json_int_t)j->claim.order.attempts)
	                : NULL;
	j->body = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(doc);
	char key[ID_MAX + 32];
	snprintf(key, sizeof key, "Idempotency-Key: %s", j->claim.order.id);
	struct curl_slist *h = NULL;
	if (!j->body ||
	    !(h = curl_slist_append(h, "Content-Type: application/json")) ||
	    !(j->headers = h) || !(h = curl_slist_append(h, key)) ||
	    !(h = curl_slist_append(h, "Expect:")) ||
	    !(j->easy = curl_easy_init()))
		return -ENOMEM;
	CURL *e = j->easy;
	curl_easy_setopt(e, CURLOPT_URL, c->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "orderd/" ORDERD_VERSION);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)c->opt.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->opt.timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, j);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	j->started_ms = clock_mono_ms();
	return curl_multi_add_handle(c->multi, e) == CURLM_OK ? 0 : -ENOMEM;
}

/* Classifies a finished transfer (confirm.h has the rule). */
static void job_done(confirm_t *c, job_t *j, CURLcode res)
{
	long code = 0;
	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
	metrics_observe(c->m_duration,
	                (double)(clock_mono_ms() - j->started_ms) / 1000.0);
	if (res != CURLE_OK) {
		j->verdict = V_ERROR;
		snprintf(j->reason, sizeof j->reason, "confirm: %s",
		         j->errbuf[0] ? j->errbuf : curl_easy_strerror(res));
	} else if (code >= 200 && code < 300) {
		j->verdict = V_CONFIRMED;
	} else if (code >= 400 && code < 500 && code != 408 && code != 429) {
		j->verdict = V_DECLINED;
	} else {
		j->verdict = V_ERROR;
		snprintf(j->reason, sizeof j->reason, "confirm: HTTP %ld",
		         code);
		curl_off_t after = 0;
		if (curl_easy_getinfo(j->easy, CURLINFO_RETRY_AFTER, &after) ==
		        CURLE_OK &&
		    after > 0)
			/* Capped below at ORDERD_RETRY_MAX_MS anyway. */
			j->retry_after_ms =
			    (after < 86400 ? (int64_t)after : 86400) * 1000;
	}
	metrics_inc(j->verdict == V_CONFIRMED  ? c->m_confirmed
	            : j->verdict == V_DECLINED ? c->m_declined
	                                       : c->m_error);
	if (c->opt.alerts)
		alerts_record(c->opt.alerts, j->verdict == V_ERROR);
	curl_multi_remove_handle(c->multi, j->easy);
	curl_easy_cleanup(j->easy);
	j->easy = NULL;
}

/* Removes j from the active list and frees it and its slot. */
static void job_retire(confirm_t *c, job_t **link)
{
	job_t *j = *link;
	*link = j->next;
	c->n_active--;
	if (j->easy)
		curl_multi_remove_handle(c->multi, j->easy);
	job_free(j);
	pthread_mutex_lock(&c->mu);
	c->slots_used--;
	pthread_mutex_unlock(&c->mu);
	if (c->opt.on_free)
		c->opt.on_free(c->opt.arg);
}

static void retire_marked(confirm_t *c)
{
	for (job_t **link = &c->active; *link;)
		if ((*link)->retire)
			job_retire(c, link);
		else
			link = &(*link)->next;
}

static void fenced_out(confirm_t *c, const job_t *j, const char *what)
{
	c->opt.on_fenced(c->opt.arg, &j->claim, what);
}

static void record(confirm_t *c, const job_t *j, order_status_t st)
{
	c->opt.on_finished(c->opt.arg, &j->claim, st);
}

/*
 * After a lost write, whether it landed: the order is where this job's
 * write puts it (completed, rejected; pending or failed after an error)
 * with our fence still its last, so nobody claimed it since. A reap of
 * our expired lease also leaves it pending under our fence: for an error
 * that is the same outcome (pending again), for an answer it is not
 * ours. *ret_st is the status found.
 */
static bool landed(confirm_t *c, const job_t *j, order_status_t *ret_st)
{
	int64_t fence;
	if (!j->unknown ||
	    store_order_fence(c->store, j->claim.order.id, ret_st, &fence) !=
	        0 ||
	    fence != j->claim.fence)
		return false;
	switch (j->verdict) {
	case V_CONFIRMED:
		return *ret_st == ORDER_COMPLETED;
	case V_DECLINED:
		return *ret_st == ORDER_REJECTED;
	case V_ERROR:
		return *ret_st == ORDER_PENDING || *ret_st == ORDER_FAILED;
	case V_PENDING:
		break;
	}
	return false;
}

/* Counts what a job's landed write did. */
static void record_landed(confirm_t *c, const job_t *j, order_status_t st)
{
	if (st == ORDER_PENDING)
		metrics_inc(c->m_retries);
	else
		record(c, j, st);
}

/*
 * A write of j failed (rc). Keeps it for the next turn, its lease renewed
 * meanwhile, for as long as one lease: a store that cannot take the write
 * for that long is left to the lease (the order is handed on and confirmed
 * again with the same key). true when the job is given up.
 */
static bool write_failed(confirm_t *c, job_t *j, int rc, const char *what)
{
	int64_t now = clock_mono_ms();
	j->unknown = j->unknown || rc == OD_EUNKNOWN;
	if (j->failing_since == 0)
		j->failing_since = now;
	metrics_inc(c->m_write_err);
	if (now - j->failing_since > c->opt.lease_ms) {
		log_error("confirm outcome not recorded, left to the lease",
		          "order_id", j->claim.order.id, "write", what, "error",
		          err_str(rc), NULL);
		return true;
	}
	log_warn("confirm outcome not recorded, trying again", "order_id",
	         j->claim.order.id, "write", what, "error", err_str(rc), NULL);
	return false;
}

/* Writes a transient failure: retry later, or failed. true when done. */
static bool write_retry(confirm_t *c, job_t *j)
{
	backoff_t b = {c->opt.retry_base_ms, c->opt.retry_max_ms};
	int64_t delay =
	    backoff_delay_ms(&b, j->claim.order.attempts, clock_rand());
	int64_t after = j->retry_after_ms < c->opt.retry_max_ms
	                    ? j->retry_after_ms
	                    : c->opt.retry_max_ms;
	if (after > delay)
		delay = after;
	bool failed = false;
	int rc = store_retry(c->store, j->claim.order.id, j->claim.fence,
	                     c->opt.max_attempts, delay, j->reason, &failed);
	order_status_t st;
	if (rc == OD_EFENCE && landed(c, j, &st)) {
		record_landed(c, j, st);
		return true;
	}
	if (rc == OD_EFENCE) {
		fenced_out(c, j, "retry");
		return true;
	}
	if (rc < 0)
		return write_failed(c, j, rc, "retry");
	if (failed) {
		record(c, j, ORDER_FAILED);
		log_warn("order failed", "order_id", j->claim.order.id, "error",
		         j->reason, NULL);
	} else {
		metrics_inc(c->m_retries);
		feed_order(j->claim.order.id, "pending", "retry",
		           j->claim.fence, NULL, j->reason);
	}
	return true;
}

static void take_queue(confirm_t *c);

/* Renews the lease of every job still waiting for its outcome, the
 * queued ones too (taken first: they may wait behind a burst of writes);
 * a job whose lease is gone is marked to retire (a stalled holder: the
 * order has moved on). The caller retires the marked. */
static void renew_leases(confirm_t *c)
{
	take_queue(c);
	enum { MAX = 256 };
	const char *ids[MAX];
	int64_t fences[MAX], until[MAX];
	job_t *js[MAX];
	job_t *j = c->active;
	while (j) {
		size_t n = 0;
		for (; j && n < MAX; j = j->next) {
			/* Skipped: outcomes written, and answers about to be
			 * written for the first time (a write may land where
			 * a lapsed lease fails the renewal; the write says). */
			if (j->retire ||
			    (j->verdict != V_PENDING && j->failing_since == 0))
				continue;
			js[n] = j;
			ids[n] = j->claim.order.id;
			fences[n++] = j->claim.fence;
		}
		if (n == 0)
			break;
		int rc = store_renew(c->store, ids, fences, n, c->opt.lease_ms,
		                     until);
		if (rc < 0) {
			/* Try again next turn; the lease has time left. */
			log_warn("lease renewal failed", "error", err_str(rc),
			         NULL);
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			order_status_t st;
			if (until[i] != 0)
				continue;
			/* A lost write of ours may be why the lease is
			 * gone: then it landed, and is no fence rejection. */
			if (landed(c, js[i], &st))
				record_landed(c, js[i], st);
			else
				fenced_out(c, js[i], "renew");
			js[i]->retire = true;
		}
	}
	c->renew_at = clock_mono_ms() + c->opt.lease_ms / 3;
}

/* Renews now if a renewal is due: between writes, so that a burst of
 * outcomes written one by one never outlasts the leases of the rest. */
static void renew_if_due(confirm_t *c)
{
	if (clock_mono_ms() >= c->renew_at)
		renew_leases(c);
}

/* Writes every answered job's outcome: one store_finish for the confirmed
 * and declined, then one store_retry each for the transient failures,
 * renewing the others' leases between them when due. Jobs whose write
 * failed stay for the next turn. */
static void write_outcomes(confirm_t *c)
{
	store_finish_t f[64];
	bool fenced[64];
	job_t *batch[64];
	size_t n = 0;
	for (job_t *j = c->active; j && n < 64; j = j->next)
		if (j->verdict != V_PENDING && j->verdict != V_ERROR &&
		    !j->retire) {
			f[n] = (store_finish_t){
			    j->claim.order.id, j->claim.fence,
			    j->verdict == V_CONFIRMED,
			    j->verdict == V_CONFIRMED ? NULL : "declined"};
			batch[n++] = j;
		}
	if (n > 0) {
		int rc = store_finish(c->store, f, n, fenced);
		for (size_t i = 0; i < n; i++) {
			job_t *j = batch[i];
			order_status_t st = j->verdict == V_CONFIRMED
			                        ? ORDER_COMPLETED
			                        : ORDER_REJECTED;
			if (rc < 0) {
				j->retire = write_failed(c, j, rc, "finish");
				continue;
			}
			if (!fenced[i] || landed(c, j, &st))
				record_landed(c, j, st);
			else
				fenced_out(c, j, "finish");
			j->retire = true;
		}
	}
	for (job_t *j = c->active; j; j = j->next)
		if (j->verdict == V_ERROR && !j->retire) {
			j->retire = write_retry(c, j);
			renew_if_due(c);
		}
	retire_marked(c);
}

/* Abandons every job at the drain deadline: hands each order back. */
static void hand_back_all(confirm_t *c)
{
	while (c->active) {
		job_t *j = c->active;
		int rc =
		    store_release(c->store, j->claim.order.id, j->claim.fence);
		if (rc == 0)
			c->handed_back++;
		else if (rc == OD_EFENCE)
			fenced_out(c, j, "release");
		else
			log_warn("hand-back failed, left to the lease",
			         "order_id", j->claim.order.id, "error",
			         err_str(rc), NULL);
		job_retire(c, &c->active);
	}
}

/* Moves submitted jobs onto the multi handle. */
static void take_queue(confirm_t *c)
{
	pthread_mutex_lock(&c->mu);
	job_t *q = c->queue;
	c->queue = NULL;
	pthread_mutex_unlock(&c->mu);
	while (q) {
		job_t *j = q;
		q = q->next;
		j->next = c->active;
		c->active = j;
		c->n_active++;
		if (job_start(c, j) < 0) {
			/* Out of memory: a transient failure like any other. */
			j->verdict = V_ERROR;
			snprintf(j->reason, sizeof j->reason,
			         "confirm: out of memory");
		}
	}
}

static void *confirm_main(void *arg)
{
	confirm_t *c = arg;
	for (;;) {
		pthread_mutex_lock(&c->mu);
		bool stopping = c->stopping;
		int64_t deadline = c->deadline;
		pthread_mutex_unlock(&c->mu);
		take_queue(c);
		if (stopping &&
		    (c->active == NULL || clock_mono_ms() >= deadline))
			break;
		int running = 0;
		curl_multi_perform(c->multi, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(c->multi, &left)))
			if (msg->msg == CURLMSG_DONE) {
				job_t *j;
				curl_easy_getinfo(msg->easy_handle,
				                  CURLINFO_PRIVATE,
				                  (char **)&j);
				job_done(c, j, msg->data.result);
			}
		write_outcomes(c);
		renew_if_due(c);
		retire_marked(c);
		int64_t now = clock_mono_ms();
		metrics_set(c->m_in_flight, (double)c->n_active);
		/* Short turns while writes are waiting to be retried, and
		 * never past the next renewal. */
		int64_t wait = c->n_active > (size_t)running ? 200 : 1000;
		if (c->renew_at - now < wait)
			wait = c->renew_at - now > 0 ? c->renew_at - now : 0;
		/* Draining: never sleep past the deadline, when what is
		 * still in flight must be handed back. */
		if (stopping && deadline - now < wait)
			wait = deadline - now > 0 ? deadline - now : 0;
		curl_multi_poll(c->multi, NULL, 0, (int)wait, NULL);
	}
	hand_back_all(c);
	metrics_set(c->m_in_flight, 0);
	return NULL;
}

int confirm_new(store_t *store, const confirm_options_t *opt, confirm_t **ret)
{
	confirm_t *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->store = store;
	c->opt = *opt;
	c->url = strdup(opt->url);
	c->multi = curl_multi_init();
	if (!c->url || !c->multi) {
		free(c->url);
		if (c->multi)
			curl_multi_cleanup(c->multi);
		free(c);
		return -ENOMEM;
	}
	curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
	                  (long)opt->concurrency);
	c->opt.url = c->url;
	pthread_mutex_init(&c->mu, NULL);

	const char *const outcome[] = {"outcome", NULL};
	metric_family_t *req = metrics_family(
	    METRIC_COUNTER, "orderd_confirm_requests_total",
	    "Confirm calls answered, by outcome.", outcome, NULL, 0);
	c->m_confirmed = metrics_child1(req, "confirmed");
	c->m_declined = metrics_child1(req, "declined");
	c->m_error = metrics_child1(req, "error");
	c->m_duration = metrics_child0(
	    metrics_family(METRIC_HISTOGRAM, "orderd_confirm_duration_seconds",
	                   "Time a confirm call took, answered or not.", NULL,
	                   metrics_latency_buckets, metrics_latency_n_buckets));
	c->m_in_flight = metrics_child0(metrics_family(
	    METRIC_GAUGE, "orderd_confirm_in_flight",
	    "Orders in the confirm step on this replica.", NULL, NULL, 0));
	const char *const reason[] = {"reason", NULL};
	c->m_retries = metrics_child1(
	    metrics_family(METRIC_COUNTER, "orderd_retries_total",
	                   "Processing attempts rescheduled, by reason.",
	                   reason, NULL, 0),
	    "confirm");
	const char *const kind[] = {"kind", NULL};
	c->m_write_err = metrics_child1(
	    metrics_family(METRIC_COUNTER, "orderd_store_errors_total",
	                   "Store operations that failed, by kind.", kind, NULL,
	                   0),
	    "confirm");
	c->renew_at = clock_mono_ms() + c->opt.lease_ms / 3;
	int rc = -pthread_create(&c->thread, NULL, confirm_main, c);
	if (rc < 0) {
		confirm_free(c);
		return rc;
	}
	c->started = true;
	*ret = c;
	return 0;
}

size_t confirm_slots(confirm_t *c, size_t max)
{
	pthread_mutex_lock(&c->mu);
	size_t room = c->stopping ? 0 : c->opt.concurrency - c->slots_used;
	size_t n = max < room ? max : room;
	c->slots_used += n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

void confirm_unslot(confirm_t *c, size_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&c->mu);
	c->slots_used -= n;
	pthread_mutex_unlock(&c->mu);
}

void confirm_submit(confirm_t *c, store_claim_t *claim)
{
	job_t *j = calloc(1, sizeof *j);
	if (!j) {
		/* The order stays processing under our lease; it expires and
		 * the reaper hands the order on (G6). */
		log_error("confirm call not started", "order_id",
		          claim->order.id, "error", err_str(-ENOMEM), NULL);
		confirm_unslot(c, 1);
		return;
	}
	j->claim = *claim;
	memset(claim, 0, sizeof *claim);
	pthread_mutex_lock(&c->mu);
	j->next = c->queue;
	c->queue = j;
	pthread_mutex_unlock(&c->mu);
	curl_multi_wakeup(c->multi);
}

size_t confirm_drain(confirm_t *c, int64_t deadline_mono_ms)
{
	pthread_mutex_lock(&c->mu);
	bool already = c->stopping;
	c->stopping = true;
	c->deadline = deadline_mono_ms;
	pthread_mutex_unlock(&c->mu);
	if (already || !c->started)
		return 0;
	curl_multi_wakeup(c->multi);
	pthread_join(c->thread, NULL);
	c->started = false;
	return c->handed_back;
}

void confirm_free(confirm_t *c)
{
	if (!c)
		return;
	confirm_drain(c, clock_mono_ms());
	while (c->queue) {
		job_t *j = c->queue;
		c->queue = j->next;
		job_free(j);
	}
	curl_multi_cleanup(c->multi);
	pthread_mutex_destroy(&c->mu);
	free(c->url);
	free(c);
}
