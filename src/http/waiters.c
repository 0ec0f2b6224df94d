/*
 * waiters: the one thread that schedules every suspended wait (GET
 * /v1/orders/{id}?wait_ms, lock acquire with wait_ms). It never calls the
 * store itself: every tick (TICK_MS, monotonic clock) it hands the polls to
 * the handler pool as jobs: one job for all order waits, which asks the
 * store once which of the awaited orders are terminal and then polls only
 * those (and those at their deadline), and one job per lock wait, which
 * retries the acquire. Another replica may be the one that changes the
 * state, so polling the store is the mechanism. A slow store call thus
 * delays only the waits of its own job, never the tick or the others.
 *
 * A waiter is idle (on the list, no job has it) or busy (one job has it;
 * it stays on the list, marked busy, so that stop can answer it). Bounded:
 * at most max requests wait, and each has at most one job queued.
 *
 * Locking: mu protects list, n, stop and every waiter's busy flag. Neither
 * the store nor http_server_resume/_abandon is called with mu held.
 */
#include "http/waiters.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "http/api.h"
#include "obs/log.h"
#include "util/clock.h"
#include "util/err.h"

#define TICK_MS 50

typedef struct waiter {
	http_req_t *r; /* holds a reference */
	waiter_poll_fn poll;
	bool order_wait;  /* waits for order r->param to be terminal */
	bool busy;        /* a poll job has it; mu */
	bool ready, done; /* the job's, while busy */
	struct waiter *prev, *next; /* the list; mu */
} waiter_t;

/* One hand-off to the handler pool: n waiters polled in one job. */
typedef struct poll_job {
	handlers_job_t job;
	waiters_t *ws;
	size_t n;
	waiter_t *w[]; /* busy while the job has them */
} poll_job_t;

struct waiters {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond; /* monotonic clock */
	waiter_t *list;      /* mu */
	size_t n;            /* waiting, busy ones included; mu */
	size_t max;
	store_t *store;
	handlers_t *pool;
	bool stop; /* mu */
};

static void unlink_waiter(waiters_t *ws, waiter_t *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		ws->list = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
	ws->n--;
}

/* Resumes (or, at shutdown, abandons) w's request and frees w. */
static void finish(waiter_t *w, bool answered, const char *why)
{
	if (answered)
		http_server_resume(w->r);
	else
		http_server_abandon(w->r, why);
	http_server_req_put(w->r);
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

/*
 * One store round trip for every order wait of the job (one per
 * STORE_LIST_MAX of them): only the orders that became terminal are then
 * read in full and answered. Where the check fails, nobody is polled this
 * time except at a deadline.
 */
static void mark_ready(waiters_t *ws, poll_job_t *j)
{
	size_t n = 0;
	const char **ids = calloc(j->n, sizeof *ids);
	bool *term = calloc(j->n, sizeof *term);

	for (size_t i = 0; i < j->n; i++)
		j->w[i]->ready = !j->w[i]->order_wait;
	if (ids && term) {
		for (size_t i = 0; i < j->n; i++)
			if (j->w[i]->order_wait)
				ids[n++] = j->w[i]->r->param;
		/* At most STORE_LIST_MAX ids per round trip. */
		for (size_t at = 0; at < n; at += STORE_LIST_MAX) {
			size_t k =
			    n - at < STORE_LIST_MAX ? n - at : STORE_LIST_MAX;
			if (store_orders_terminal(ws->store, ids + at, k,
			                          term + at) < 0)
				memset(term + at, 0, k * sizeof *term);
		}
		n = 0;
		for (size_t i = 0; i < j->n; i++)
			if (j->w[i]->order_wait)
				j->w[i]->ready = term[n++];
	}
	free(ids);
	free(term);
}

/* A poll job, on a pool thread. late: the pool was too busy to run it in
 * time; then only the waits at their deadline are answered (503), without
 * the store. */
static void run_poll(handlers_job_t *job, bool late)
{
	poll_job_t *j = (poll_job_t *)job;
	waiters_t *ws = j->ws;
	bool stopping;

	pthread_mutex_lock(&ws->mu);
	stopping = ws->stop;
	pthread_mutex_unlock(&ws->mu);
	for (size_t i = 0; i < j->n; i++)
		j->w[i]->done = false;
	if (!late && !stopping)
		mark_ready(ws, j);
	for (size_t i = 0; i < j->n && !stopping; i++) {
		http_req_t *r = j->w[i]->r;
		bool last = clock_mono_ms() >= r->deadline_mono_ms;
		if (late) {
			if (last) {
				api_unavailable(r, "server too busy to finish "
				                   "the wait");
				j->w[i]->done = true;
			}
		} else if (j->w[i]->ready || last) {
			j->w[i]->done = j->w[i]->poll(r, last);
		}
	}
	/* Waiters put back are the waiter thread's again the moment mu is
	 * dropped; only the unlinked ones (fin) are touched after it. */
	waiter_t *fin = NULL;
	pthread_mutex_lock(&ws->mu);
	stopping = ws->stop;
	for (size_t i = 0; i < j->n; i++) {
		waiter_t *w = j->w[i];
		w->busy = false;
		if (w->done || stopping) {
			unlink_waiter(ws, w);
			w->next = fin;
			fin = w;
		}
	}
	pthread_mutex_unlock(&ws->mu);
	while (fin) {
		waiter_t *w = fin;
		fin = w->next;
		finish(w, w->done, "server is shutting down");
	}
	free(j);
}

/* Takes idle waiters into a new job (mu held); NULL when none or no
 * memory (the next tick tries again). */
static poll_job_t *take(waiters_t *ws, bool order_waits, waiter_t *only)
{
	size_t n = 0, k = 0;
	poll_job_t *j;

	if (only != NULL) {
		n = 1;
	} else {
		for (waiter_t *w = ws->list; w; w = w->next)
			n += !w->busy && w->order_wait == order_waits;
	}
	if (n == 0)
		return NULL;
	j = calloc(1, sizeof *j + n * sizeof j->w[0]);
	if (j == NULL)
		return NULL;
	j->ws = ws;
	j->job.run = run_poll;
	j->job.expires = true;
	if (only != NULL) {
		j->w[k++] = only;
	} else {
		for (waiter_t *w = ws->list; w && k < n; w = w->next)
			if (!w->busy && w->order_wait == order_waits)
				j->w[k++] = w;
	}
	j->n = k;
	for (size_t i = 0; i < k; i++)
		j->w[i]->busy = true;
	return j;
}

static void submit(waiters_t *ws, poll_job_t *j)
{
	if (handlers_submit(ws->pool, &j->job))
		return;
	/* The pool is stopping: the stop path answers them. */
	pthread_mutex_lock(&ws->mu);
	for (size_t i = 0; i < j->n; i++)
		j->w[i]->busy = false;
	pthread_mutex_unlock(&ws->mu);
	free(j);
}

/* One tick: answers departed clients, hands every idle wait to the pool.
 * mu held on entry and exit. */
static void tick(waiters_t *ws)
{
	waiter_t *gone = NULL;
	poll_job_t **jobs;
	size_t n_jobs = 0, n_lock = 0;

	for (waiter_t *w = ws->list, *next; w; w = next) {
		next = w->next;
		if (!w->busy && client_gone(w->r)) {
			unlink_waiter(ws, w);
			w->next = gone;
			gone = w;
		}
	}
	for (waiter_t *w = ws->list; w; w = w->next)
		n_lock += !w->busy && !w->order_wait;
	jobs = calloc(n_lock + 1, sizeof *jobs);
	if (jobs != NULL) {
		jobs[n_jobs] = take(ws, true, NULL);
		n_jobs += jobs[n_jobs] != NULL;
		for (waiter_t *w = ws->list; w; w = w->next)
			if (!w->busy && !w->order_wait && n_jobs <= n_lock) {
				jobs[n_jobs] = take(ws, false, w);
				n_jobs += jobs[n_jobs] != NULL;
			}
	}
	pthread_mutex_unlock(&ws->mu);
	while (gone) {
		waiter_t *w = gone;
		gone = w->next;
		api_unavailable(w->r, "client went away");
		finish(w, true, NULL);
	}
	for (size_t i = 0; i < n_jobs; i++)
		submit(ws, jobs[i]);
	free(jobs);
	pthread_mutex_lock(&ws->mu);
}

static void *waiters_main(void *arg)
{
	waiters_t *ws = arg;

	pthread_mutex_lock(&ws->mu);
	while (!ws->stop) {
		if (ws->list == NULL) {
			pthread_cond_wait(&ws->cond, &ws->mu);
			continue;
		}
		tick(ws);
		if (ws->stop)
			break;
		/* New waiters signal too, but their first poll can wait for
		 * the tick: the handler already tried once. */
		struct timespec ts =
		    clock_mono_timespec(clock_mono_ms() + TICK_MS);
		while (!ws->stop &&
		       pthread_cond_timedwait(&ws->cond, &ws->mu, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&ws->mu);
	return NULL;
}

int waiters_new(size_t max, store_t *store, handlers_t *pool, waiters_t **ret)
{
	waiters_t *ws = calloc(1, sizeof(*ws));
	int rc;

	if (ws == NULL)
		return -ENOMEM;
	ws->max = max;
	ws->store = store;
	ws->pool = pool;
	pthread_mutex_init(&ws->mu, NULL);
	clock_cond_init(&ws->cond);
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
		http_server_req_hold(r);
		w->next = ws->list;
		if (ws->list)
			ws->list->prev = w;
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
	waiter_t *idle = NULL;
	http_req_t **busy = NULL;
	size_t n_busy = 0;

	if (ws == NULL)
		return;
	pthread_mutex_lock(&ws->mu);
	if (ws->stop) {
		pthread_mutex_unlock(&ws->mu);
		return;
	}
	ws->stop = true;
	pthread_cond_broadcast(&ws->cond);
	/* Idle waiters are ours to answer and free; a busy one belongs to
	 * its job, which frees it, but is answered now all the same (the
	 * job's later answer is dropped). */
	busy = calloc(ws->n ? ws->n : 1, sizeof *busy);
	for (waiter_t *w = ws->list, *next; w; w = next) {
		next = w->next;
		if (!w->busy) {
			unlink_waiter(ws, w);
			w->next = idle;
			idle = w;
		} else if (busy != NULL) {
			http_server_req_hold(w->r);
			busy[n_busy++] = w->r;
		}
	}
	pthread_mutex_unlock(&ws->mu);
	while (idle) {
		waiter_t *w = idle;
		idle = w->next;
		finish(w, false, "server is shutting down");
	}
	for (size_t i = 0; i < n_busy; i++) {
		http_server_abandon(busy[i], "server is shutting down");
		http_server_req_put(busy[i]);
	}
	free(busy);
	pthread_join(ws->thread, NULL);
}

void waiters_free(waiters_t *ws)
{
	if (ws == NULL)
		return;
	waiters_stop(ws);
	/* Busy waiters were freed by their jobs: the pool has stopped. */
	pthread_cond_destroy(&ws->cond);
	pthread_mutex_destroy(&ws->mu);
	free(ws);
}
