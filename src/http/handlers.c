/*
 * handlers: the threads that run the route handlers which call the store.
 *
 * libmicrohttpd's threads each serve many connections; a handler blocked
 * on a slow or unreachable database would stall all of them, /livez
 * included. So for a store route the access handler suspends the
 * connection and queues the request here; a pool thread runs the handler
 * and resumes the connection, unless the handler handed the request on
 * (http_server_suspend inside a pooled handler: to the batcher or the waiters),
 * in which case whoever finishes it resumes it.
 *
 * Bounded: each connection has at most one request, so the queue holds at
 * most max_connections entries. Locking: mu protects head, tail and stop.
 */
#include "http/handlers.h"

#include <errno.h>
#include <stdlib.h>

#include "http/api.h"

struct handlers {
	pthread_t *threads;
	size_t n_threads;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	http_req_t *head; /* mu */
	http_req_t *tail; /* mu */
	bool stop;        /* mu */
};

static void run(http_req_t *r)
{
	/* The handler may hand r on (http_server_suspend sets this flag before
	 * the hand-off); after that r belongs to someone else and may already
	 * be answered and freed, so only the local flag is read. */
	bool handed_on = false;
	r->handed_on = &handed_on;
	r->route->handler(r);
	if (!handed_on) {
		r->handed_on = NULL;
		http_server_resume(r);
	}
}

static void *handlers_main(void *arg)
{
	handlers_t *h = arg;
	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->head && !h->stop)
			pthread_cond_wait(&h->cv, &h->mu);
		http_req_t *r = h->head;
		if (!r)
			break; /* stopping and nothing queued */
		h->head = r->next_job;
		if (!h->head)
			h->tail = NULL;
		pthread_mutex_unlock(&h->mu);
		run(r);
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int handlers_new(size_t threads, handlers_t **ret)
{
	handlers_t *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->threads = calloc(threads, sizeof *h->threads);
	if (!h->threads) {
		free(h);
		return -ENOMEM;
	}
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	for (; h->n_threads < threads; h->n_threads++) {
		int rc = pthread_create(&h->threads[h->n_threads], NULL,
		                        handlers_main, h);
		if (rc != 0) {
			handlers_free(h);
			return -rc;
		}
	}
	*ret = h;
	return 0;
}

bool handlers_submit(handlers_t *h, http_req_t *r)
{
	r->next_job = NULL;
	pthread_mutex_lock(&h->mu);
	bool ok = !h->stop;
	if (ok) {
		if (h->tail)
			h->tail->next_job = r;
		else
			h->head = r;
		h->tail = r;
		pthread_cond_signal(&h->cv);
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
	pthread_mutex_unlock(&h->mu);
	if (was)
		return;
	for (size_t i = 0; i < h->n_threads; i++)
		pthread_join(h->threads[i], NULL);
}

void handlers_free(handlers_t *h)
{
	if (!h)
		return;
	handlers_stop(h);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h->threads);
	free(h);
}
