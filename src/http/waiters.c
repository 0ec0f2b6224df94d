/*
 * waiters: the one thread that serves every suspended wait (GET
 * /v1/orders/{id}?wait_ms, lock acquire with wait_ms). Every tick it asks
 * the store once which of the awaited orders are terminal, then polls
 * through its poll function each lock wait, each order wait that is ready
 * and each wait at its deadline (another replica may be the one that
 * changes the state, so polling the store is the mechanism), and resumes
 * those that are done. Bounded: at most max requests wait.
 *
 * The list is taken out from under the mutex for the polls, so the store is
 * never called with the lock held, and http_server_resume is never called with
 * it.
 */
#include "http/waiters.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/api.h"
#include "obs/log.h"
#include "util/clock.h"
#include "util/err.h"

#define TICK_MS 50

typedef struct waiter {
	http_req_t *r;
	waiter_poll_fn poll;
	bool order_wait; /* waits for order r->param to be terminal */
	bool ready;      /* this sweep: the batched check says poll it */
	struct waiter *next;
} waiter_t;

struct waiters {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	waiter_t *list; /* mu */
	size_t n;       /* waiting, including those being polled; mu */
	size_t max;
	store_t *store;
	bool stop; /* mu */
};

static void answer_shutdown(waiter_t *w)
{
	api_unavailable(w->r, "server is shutting down");
	http_server_resume(w->r);
	free(w);
}

/*
 * True when the client hung up while its request was suspended (EOF on a
 * peek). Such a wait is answered at once, without polling: an acquire for a
 * client that left would grant a lock nobody can use or release, and a
 * dead wait should not hold a slot until its deadline.
 */
static bool client_gone(http_req_t *r)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	char c;
	if (ci == NULL)
		return false;
	return recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static bool stopping(waiters_t *ws)
{
	pthread_mutex_lock(&ws->mu);
	bool s = ws->stop;
	pthread_mutex_unlock(&ws->mu);
	return s;
}

/*
 * One store round trip for every order wait of the sweep: only the orders
 * that became terminal are then read in full and answered, so a tick costs
 * one query however many clients wait (plus one read per answer). If the
 * check fails, nobody is polled this tick except at a deadline.
 */
static void mark_ready(waiters_t *ws, waiter_t *batch)
{
	size_t n = 0, k = 0;
	for (waiter_t *w = batch; w != NULL; w = w->next)
		n += w->order_wait;
	if (n == 0)
		return;
	const char **ids = calloc(n, sizeof *ids);
	bool *term = calloc(n, sizeof *term);
	if (ids && term) {
		for (waiter_t *w = batch; w != NULL; w = w->next)
			if (w->order_wait)
				ids[k++] = w->r->param;
		if (store_orders_terminal(ws->store, ids, n, term) < 0)
			memset(term, 0, n * sizeof *term);
	}
	k = 0;
	for (waiter_t *w = batch; w != NULL; w = w->next)
		if (w->order_wait)
			w->ready = ids && term ? term[k++] : true;
	free(ids);
	free(term);
}

static void *waiters_main(void *arg)
{
	waiters_t *ws = arg;

	pthread_mutex_lock(&ws->mu);
	while (!ws->stop) {
		waiter_t *batch, *keep = NULL, *next;
		size_t done = 0;
		struct timespec ts;

		if (ws->list == NULL) {
			pthread_cond_wait(&ws->cond, &ws->mu);
			continue;
		}
		batch = ws->list;
		ws->list = NULL;
		pthread_mutex_unlock(&ws->mu);
		mark_ready(ws, batch);

		for (waiter_t *w = batch; w != NULL; w = next) {
			bool last = clock_mono_ms() >= w->r->deadline_mono_ms;
			next = w->next;
			if (stopping(ws)) {
				/* Hand the unpolled rest back for the
				 * shutdown answer below. */
				w->next = keep;
				keep = w;
				continue;
			}
			if (client_gone(w->r)) {
				api_unavailable(w->r, "client went away");
				http_server_resume(w->r);
				free(w);
				done++;
			} else if ((!w->order_wait || w->ready || last) &&
			           w->poll(w->r, last)) {
				http_server_resume(w->r);
				free(w);
				done++;
			} else {
				w->next = keep;
				keep = w;
			}
		}

		pthread_mutex_lock(&ws->mu);
		ws->n -= done;
		while (keep != NULL) {
			next = keep->next;
			keep->next = ws->list;
			ws->list = keep;
			keep = next;
		}
		if (ws->stop || ws->list == NULL)
			continue;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		/* New waiters signal too, but their first poll can wait for
		 * the tick: the handler already tried once. */
		while (!ws->stop &&
		       pthread_cond_timedwait(&ws->cond, &ws->mu, &ts) == 0)
			;
	}
	/* Stopping: everyone still waiting is answered 503. */
	while (ws->list != NULL) {
		waiter_t *w = ws->list;
		ws->list = w->next;
		ws->n--;
		pthread_mutex_unlock(&ws->mu);
		answer_shutdown(w);
		pthread_mutex_lock(&ws->mu);
	}
	pthread_mutex_unlock(&ws->mu);
	return NULL;
}

int waiters_new(size_t max, store_t *store, waiters_t **ret)
{
	waiters_t *ws = calloc(1, sizeof(*ws));
	int rc;

	if (ws == NULL)
		return -ENOMEM;
	ws->max = max;
	ws->store = store;
	pthread_mutex_init(&ws->mu, NULL);
	pthread_cond_init(&ws->cond, NULL);
	rc = pthread_create(&ws->thread, NULL, waiters_main, ws);
	if (rc != 0) {
		pthread_cond_destroy(&ws->cond);
		pthread_mutex_destroy(&ws->mu);
		free(ws);
		return -rc;
	}
	*ret = ws;
	return 0;
}

int waiters_add(waiters_t *ws, http_req_t *r, waiter_poll_fn poll,
                bool order_wait)
{
	waiter_t *w;
	int rc = 0;

	if (ws == NULL)
		return OD_ESHUTDOWN;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	w->r = r;
	w->poll = poll;
	w->order_wait = order_wait;
	pthread_mutex_lock(&ws->mu);
	if (ws->stop) {
		rc = OD_ESHUTDOWN;
	} else if (ws->n >= ws->max) {
		rc = OD_EBUSY;
	} else {
		w->next = ws->list;
		ws->list = w;
		ws->n++;
		if (ws->n == 1)
			pthread_cond_signal(&ws->cond);
	}
	pthread_mutex_unlock(&ws->mu);
	if (rc != 0)
		free(w);
	return rc;
}

void waiters_stop(waiters_t *ws)
{
	bool join;

	if (ws == NULL)
		return;
	pthread_mutex_lock(&ws->mu);
	join = !ws->stop;
	ws->stop = true;
	pthread_cond_broadcast(&ws->cond);
	pthread_mutex_unlock(&ws->mu);
	if (join)
		pthread_join(ws->thread, NULL);
}

void waiters_free(waiters_t *ws)
{
	if (ws == NULL)
		return;
	waiters_stop(ws);
	pthread_cond_destroy(&ws->cond);
	pthread_mutex_destroy(&ws->mu);
	free(ws);
}
