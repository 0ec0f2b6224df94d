/*
 * handlers: the threads that run the store work of the HTTP layer (see
 * handlers.h).
 *
 * libmicrohttpd's threads each serve many connections; a handler blocked
 * on a slow or unreachable database would stall all of them, /livez
 * included. So store work is queued here as jobs and run by pool threads.
 *
 * Bounded: each connection has at most one request job and each waiter at
 * most one poll job queued, so the queue holds at most max_connections +
 * max_waiters entries, plus the rare grant release. In time: the queue is
 * FIFO and every expiring job has the same bound, so the first expiring
 * job in the queue is the oldest one; the timer thread sleeps until it is
 * due (monotonic clock) and runs every due one late, so a request never
 * waits for a handler longer than the bound, however long the store
 * stalls the pool.
 *
 * Locking: mu protects head, tail and stop; cv wakes pool threads,
 * timer_cv (monotonic) the timer thread. Jobs run without the lock.
 */
#include "http/handlers.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "util/clock.h"

struct handlers {
	pthread_t *threads;
	size_t n_threads;
	pthread_t timer;
	bool timer_started;
	int64_t max_wait_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;       /* a job was queued, or stop */
	pthread_cond_t timer_cv; /* the queue went from empty, or stop */
	handlers_job_t *head;    /* mu */
	handlers_job_t *tail;    /* mu */
	bool stop;               /* mu */
};

static void *worker_main(void *arg)
{
	handlers_t *h = arg;
	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->head && !h->stop)
			pthread_cond_wait(&h->cv, &h->mu);
		handlers_job_t *job = h->head;
		if (!job)
			break; /* stopping and nothing queued */
		h->head = job->next;
		if (!h->head)
			h->tail = NULL;
		pthread_mutex_unlock(&h->mu);
		/* A job the timer did not reach in time is still late. */
		bool late =
		    job->expires &&
		    clock_mono_ms() - job->queued_mono_ms > h->max_wait_ms;
		job->run(job, late);
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/*
 * Unlinks every due expiring job (mu held) and returns them as a list;
 * *ret_next is when the next expiring job falls due (INT64_MAX: none).
 */
static handlers_job_t *take_due(handlers_t *h, int64_t now, int64_t *ret_next)
{
	handlers_job_t *due = NULL, **due_tail = &due, *prev = NULL;
	handlers_job_t **pp = &h->head;

	*ret_next = INT64_MAX;
	while (*pp) {
		handlers_job_t *job = *pp;
		if (!job->expires) {
			prev = job;
			pp = &job->next;
			continue;
		}
		int64_t at = job->queued_mono_ms + h->max_wait_ms;
		if (at > now) {
			*ret_next = at; /* FIFO: every later one is due later */
			break;
		}
		*pp = job->next;
		if (h->tail == job)
			h->tail = prev;
		job->next = NULL;
		*due_tail = job;
		due_tail = &job->next;
	}
	return due;
}

static void *timer_main(void *arg)
{
	handlers_t *h = arg;
	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		int64_t next;
		handlers_job_t *due = take_due(h, clock_mono_ms(), &next);
		if (due) {
			pthread_mutex_unlock(&h->mu);
			while (due) {
				handlers_job_t *job = due;
				due = job->next;
				job->run(job, true);
			}
			pthread_mutex_lock(&h->mu);
			continue;
		}
		if (next == INT64_MAX) {
			pthread_cond_wait(&h->timer_cv, &h->mu);
		} else {
			struct timespec ts = clock_mono_timespec(next);
			pthread_cond_timedwait(&h->timer_cv, &h->mu, &ts);
		}
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int handlers_new(size_t threads, int64_t max_wait_ms, handlers_t **ret)
{
	handlers_t *h = calloc(1, sizeof *h);
	int rc;

	if (!h)
		return -ENOMEM;
	h->threads = calloc(threads, sizeof *h->threads);
	if (!h->threads) {
		free(h);
		return -ENOMEM;
	}
	h->max_wait_ms = max_wait_ms;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	clock_cond_init(&h->timer_cv);
	rc = pthread_create(&h->timer, NULL, timer_main, h);
	if (rc != 0) {
		handlers_free(h);
		return -rc;
	}
	h->timer_started = true;
	for (; h->n_threads < threads; h->n_threads++) {
		rc = pthread_create(&h->threads[h->n_threads], NULL,
		                    worker_main, h);
		if (rc != 0) {
			handlers_free(h);
			return -rc;
		}
	}
	*ret = h;
	return 0;
}

bool handlers_submit(handlers_t *h, handlers_job_t *job)
{
	job->next = NULL;
	job->queued_mono_ms = clock_mono_ms();
	pthread_mutex_lock(&h->mu);
	bool ok = !h->stop;
	if (ok) {
		bool was_empty = h->head == NULL;
		if (h->tail)
			h->tail->next = job;
		else
			h->head = job;
		h->tail = job;
		pthread_cond_signal(&h->cv);
		/* Only an empty queue changes the first deadline. */
		if (was_empty)
			pthread_cond_signal(&h->timer_cv);
	}
	pthread_mutex_unlock(&h->mu);
	return ok;
}

void handlers_stop(handlers_t *h)
{
	pthread_mutex_lock(&h->mu);
	bool was = h->stop;
	h->stop = true;
	pthread_cond_broadcast(&h->cv);
	pthread_cond_broadcast(&h->timer_cv);
	pthread_mutex_unlock(&h->mu);
	if (was)
		return;
	for (size_t i = 0; i < h->n_threads; i++)
		pthread_join(h->threads[i], NULL);
	if (h->timer_started)
		pthread_join(h->timer, NULL);
}

void handlers_free(handlers_t *h)
{
	if (!h)
		return;
	handlers_stop(h);
	pthread_cond_destroy(&h->timer_cv);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h->threads);
	free(h);
}
