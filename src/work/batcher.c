/*
 * batcher: group commit (see batcher.h). Request threads append to a FIFO
 * under one mutex; the committer thread drains it in batches of at most
 * max_batch orders, runs one store_submit() per batch and answers every
 * request of the batch after the commit.
 *
 * Locking: mu protects the queue, queued and stopping; everything else is
 * owned by the committer thread. No other lock is ever taken while mu is held
 * (callbacks run without it).
 */
#include "work/batcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "obs/feed.h"
#include "obs/metrics.h"
#include "util/err.h"

typedef struct request {
	const order_t *const *orders;
	size_t n;
	batcher_done_fn done;
	void *arg;
	struct request *next;
} request_t;

struct batcher {
	store_t *store;
	batcher_options_t opt;
	batcher_commit_fn on_commit;
	void *commit_arg;
	pthread_t thread;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	request_t *head; /* mu */
	request_t *tail; /* mu */
	size_t queued;   /* mu: orders in the queue and in the running batch */
	bool stopping;   /* mu */

	/* Committer thread only: scratch arrays grown as needed. */
	const order_t **orders;
	store_submit_result_t *results;
	size_t cap;

	metric_t *m_batch_size;
	metric_t *m_errors;
};

static int ensure_capacity(batcher_t *b, size_t n)
{
	if (n <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < n)
		cap *= 2;
	const order_t **o = realloc(b->orders, cap * sizeof *o);
	if (!o)
		return -ENOMEM;
	b->orders = o;
	store_submit_result_t *r = realloc(b->results, cap * sizeof *r);
	if (!r)
		return -ENOMEM;
	b->results = r;
	b->cap = cap;
	return 0;
}

/* Takes requests off the queue, up to max_batch orders (at least one
 * request). Called with mu held; returns the detached list. */
static request_t *take_batch(batcher_t *b, size_t *ret_orders)
{
	request_t *first = b->head, *last = NULL;
	size_t n = 0;
	for (request_t *r = b->head; r; r = r->next) {
		if (last && n + r->n > b->opt.max_batch)
			break;
		n += r->n;
		last = r;
	}
	b->head = last->next;
	if (!b->head)
		b->tail = NULL;
	last->next = NULL;
	*ret_orders = n;
	return first;
}

static void commit_batch(batcher_t *b, request_t *batch, size_t n)
{
	int rc = ensure_capacity(b, n);
	if (rc == 0) {
		size_t k = 0;
		for (request_t *r = batch; r; r = r->next)
			for (size_t i = 0; i < r->n; i++)
				b->orders[k++] = r->orders[i];
		rc = store_submit(b->store, (const order_t *const *)b->orders,
		                  n, b->results);
	}
	metrics_observe(b->m_batch_size, (double)n);
	if (rc < 0)
		metrics_inc(b->m_errors);

	size_t k = 0, created = 0;
	for (request_t *r = batch, *next; r; r = next) {
		next = r->next;
		if (rc == 0) {
			for (size_t i = 0; i < r->n; i++) {
				const store_submit_result_t *sr =
				    &b->results[k + i];
				if (sr->outcome != SUBMIT_CREATED)
					continue;
				created++;
				feed_order(sr->order.id, "pending", "submit",
				           -1, NULL, NULL);
			}
			r->done(r->arg, 0, b->results + k, r->n);
		} else {
			r->done(r->arg, rc, NULL, r->n);
		}
		k += r->n;
		free(r);
	}
	if (created && b->on_commit)
		b->on_commit(b->commit_arg, created);
}

static void *committer(void *arg)
{
	batcher_t *b = arg;
	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (!b->head && !b->stopping)
			pthread_cond_wait(&b->cv, &b->mu);
		if (!b->head)
			break; /* stopping and nothing left */
		size_t n;
		request_t *batch = take_batch(b, &n);
		pthread_mutex_unlock(&b->mu);
		commit_batch(b, batch, n);
		pthread_mutex_lock(&b->mu);
		b->queued -= n;
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

int batcher_new(store_t *store, const batcher_options_t *opt,
                batcher_commit_fn on_commit, void *commit_arg, batcher_t **ret)
{
	static const double sizes[] = {1,   2,   4,   8,    16,   32,  64,
	                               128, 256, 512, 1024, 2048, 4096};
	batcher_t *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->store = store;
	b->opt = *opt;
	b->on_commit = on_commit;
	b->commit_arg = commit_arg;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->m_batch_size = metrics_child0(
	    metrics_family(METRIC_HISTOGRAM, "orderd_group_commit_orders",
	                   "Orders stored per group-commit transaction.", NULL,
	                   sizes, sizeof sizes / sizeof sizes[0]));
	b->m_errors = metrics_child1(
	    metrics_family(METRIC_COUNTER, "orderd_store_errors_total",
	                   "Store operations that failed, by kind.",
	                   (const char *[]){"kind", NULL}, NULL, 0),
	    "submit");
	int rc = pthread_create(&b->thread, NULL, committer, b);
	if (rc != 0) {
		pthread_cond_destroy(&b->cv);
		pthread_mutex_destroy(&b->mu);
		free(b);
		return -rc;
	}
	*ret = b;
	return 0;
}

int batcher_submit(batcher_t *b, const order_t *const *orders, size_t n,
                   batcher_done_fn done, void *arg)
{
	request_t *r = malloc(sizeof *r);
	if (!r)
		return -ENOMEM;
	*r = (request_t){orders, n, done, arg, NULL};

	pthread_mutex_lock(&b->mu);
	int rc = 0;
	if (b->stopping)
		rc = OD_ESHUTDOWN;
	else if (b->queued + n > b->opt.max_queued && b->queued > 0)
		rc = OD_EBUSY; /* one oversized request alone is still let in */
	if (rc == 0) {
		if (b->tail)
			b->tail->next = r;
		else
			b->head = r;
		b->tail = r;
		b->queued += n;
		pthread_cond_signal(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	if (rc < 0)
		free(r);
	return rc;
}

void batcher_stop(batcher_t *b)
{
	pthread_mutex_lock(&b->mu);
	bool was = b->stopping;
	b->stopping = true;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	if (!was)
		pthread_join(b->thread, NULL);
}

void batcher_free(batcher_t *b)
{
	if (!b)
		return;
	batcher_stop(b);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b->orders);
	free(b->results);
	free(b);
}
