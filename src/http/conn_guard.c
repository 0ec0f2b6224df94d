/*
 * conn_guard: phases, deadlines and eviction of connections (see
 * conn_guard.h).
 *
 * Every entry in head or body phase is on that phase's list, appended when
 * it enters the phase. The clock is monotonic, so each list is in order of
 * phase entry: the sweep looks only at the front of each list, and the
 * oldest waiting connection is the older of the two fronts. Busy entries
 * and killed ones (still open until the server closes them) are on no
 * list. All of it is O(1) per event.
 *
 * Locking: mu protects everything below it in struct conn_guard and every
 * entry's fields; cv wakes the thread at stop. The kill callback runs
 * under mu, which is what keeps a descriptor from being reused under it:
 * the server's close notification takes mu before the fd is closed.
 */
#include "http/conn_guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "util/clock.h"

typedef enum phase {
	PH_HEAD,
	PH_BODY,
	PH_BUSY,
	PH_KILLED,
} phase_t;

struct conn_guard_entry {
	int fd;
	phase_t phase;
	int64_t since_ms; /* when it entered its phase */
	conn_guard_entry_t *prev, *next;
};

typedef struct list {
	conn_guard_entry_t *head, *tail;
} list_t;

struct conn_guard {
	conn_guard_options_t opt;
	pthread_t thread;
	bool has_thread;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;            /* mu */
	list_t lists[2];      /* PH_HEAD, PH_BODY; mu */
	size_t open;          /* tracked entries, killed ones included; mu */
	size_t killed;        /* killed, not closed yet; mu */
	uint64_t evicted;     /* mu */
	uint64_t timeouts[2]; /* by phase; mu */
};

static void kill_shutdown(int fd, void *arg)
{
	(void)arg;
	shutdown(fd, SHUT_RDWR);
}

static int64_t now_ms(const conn_guard_t *g)
{
	return g->opt.now_ms ? g->opt.now_ms() : clock_mono_ms();
}

/* mu held; e in head or body phase. */
static void unlink_entry(conn_guard_t *g, conn_guard_entry_t *e)
{
	list_t *l = &g->lists[e->phase];

	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
}

/* mu held; e on no list. */
static void enter(conn_guard_t *g, conn_guard_entry_t *e, phase_t ph,
                  int64_t now)
{
	e->phase = ph;
	e->since_ms = now;
	if (ph != PH_HEAD && ph != PH_BODY)
		return;
	list_t *l = &g->lists[ph];
	e->prev = l->tail;
	e->next = NULL;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
}

/* mu held: moves a live entry to phase ph. */
static void move(conn_guard_t *g, conn_guard_entry_t *e, phase_t ph)
{
	if (e->phase == PH_KILLED)
		return; /* the server has not seen the end of it yet */
	if (e->phase == PH_HEAD || e->phase == PH_BODY)
		unlink_entry(g, e);
	enter(g, e, ph, now_ms(g));
}

/* mu held. */
static void kill_entry(conn_guard_t *g, conn_guard_entry_t *e)
{
	unlink_entry(g, e);
	e->phase = PH_KILLED;
	g->killed++;
	g->opt.kill(e->fd, g->opt.kill_arg);
}

/* mu held: the waiting entry that entered its phase first, or NULL. */
static conn_guard_entry_t *oldest_waiting(conn_guard_t *g)
{
	conn_guard_entry_t *h = g->lists[PH_HEAD].head;
	conn_guard_entry_t *b = g->lists[PH_BODY].head;

	if (h == NULL)
		return b;
	if (b == NULL)
		return h;
	return b->since_ms < h->since_ms ? b : h;
}

static void *guard_main(void *arg)
{
	conn_guard_t *g = arg;

	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		struct timespec ts =
		    clock_mono_timespec(clock_mono_ms() + g->opt.tick_ms);
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
		if (g->stop)
			break;
		pthread_mutex_unlock(&g->mu);
		conn_guard_sweep(g);
		pthread_mutex_lock(&g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int conn_guard_new(const conn_guard_options_t *opt, conn_guard_t **ret)
{
	conn_guard_t *g;
	int rc;

	if (opt->max_open == 0 || opt->head_ms <= 0 || opt->body_ms <= 0 ||
	    opt->tick_ms < 0)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return -ENOMEM;
	g->opt = *opt;
	if (g->opt.kill == NULL)
		g->opt.kill = kill_shutdown;
	pthread_mutex_init(&g->mu, NULL);
	clock_cond_init(&g->cv);
	if (opt->tick_ms > 0) {
		rc = pthread_create(&g->thread, NULL, guard_main, g);
		if (rc != 0) {
			pthread_cond_destroy(&g->cv);
			pthread_mutex_destroy(&g->mu);
			free(g);
			return -rc;
		}
		g->has_thread = true;
	}
	*ret = g;
	return 0;
}

void conn_guard_free(conn_guard_t *g)
{
	if (g == NULL)
		return;
	if (g->has_thread) {
		pthread_mutex_lock(&g->mu);
		g->stop = true;
		pthread_cond_broadcast(&g->cv);
		pthread_mutex_unlock(&g->mu);
		pthread_join(g->thread, NULL);
	}
	/* The server closed every connection before (MHD_stop_daemon), so
	 * nothing is left but entries of a server that never told. */
	for (int ph = PH_HEAD; ph <= PH_BODY; ph++)
		while (g->lists[ph].head != NULL) {
			conn_guard_entry_t *e = g->lists[ph].head;
			unlink_entry(g, e);
			free(e);
		}
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

conn_guard_entry_t *conn_guard_open(conn_guard_t *g, int fd)
{
	conn_guard_entry_t *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->fd = fd;
	pthread_mutex_lock(&g->mu);
	/* Killed ones are on their way out: they do not count. */
	while (g->open - g->killed >= g->opt.max_open) {
		conn_guard_entry_t *old = oldest_waiting(g);
		if (old == NULL)
			break; /* every one is busy: the server's hard limit */
		kill_entry(g, old);
		g->evicted++;
	}
	g->open++;
	enter(g, e, PH_HEAD, now_ms(g));
	pthread_mutex_unlock(&g->mu);
	return e;
}

void conn_guard_head_done(conn_guard_t *g, conn_guard_entry_t *e, bool body)
{
	if (e == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	if (e->phase == PH_HEAD)
		move(g, e, body ? PH_BODY : PH_BUSY);
	pthread_mutex_unlock(&g->mu);
}

void conn_guard_body_done(conn_guard_t *g, conn_guard_entry_t *e)
{
	if (e == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	if (e->phase == PH_BODY)
		move(g, e, PH_BUSY);
	pthread_mutex_unlock(&g->mu);
}

void conn_guard_answered(conn_guard_t *g, conn_guard_entry_t *e)
{
	if (e == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	move(g, e, PH_HEAD);
	pthread_mutex_unlock(&g->mu);
}

void conn_guard_close(conn_guard_t *g, conn_guard_entry_t *e)
{
	if (e == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	if (e->phase == PH_KILLED)
		g->killed--;
	else if (e->phase != PH_BUSY)
		unlink_entry(g, e);
	g->open--;
	pthread_mutex_unlock(&g->mu);
	free(e);
}

void conn_guard_sweep(conn_guard_t *g)
{
	const int64_t bound[2] = {g->opt.head_ms, g->opt.body_ms};

	pthread_mutex_lock(&g->mu);
	int64_t now = now_ms(g);
	for (int ph = PH_HEAD; ph <= PH_BODY; ph++) {
		conn_guard_entry_t *e;
		while ((e = g->lists[ph].head) != NULL &&
		       now - e->since_ms >= bound[ph]) {
			kill_entry(g, e);
			g->timeouts[ph]++;
		}
	}
	pthread_mutex_unlock(&g->mu);
}

void conn_guard_stats(conn_guard_t *g, conn_guard_stats_t *ret)
{
	pthread_mutex_lock(&g->mu);
	*ret = (conn_guard_stats_t){
	    .open = g->open,
	    .evicted = g->evicted,
	    .head_timeouts = g->timeouts[PH_HEAD],
	    .body_timeouts = g->timeouts[PH_BODY],
	};
	pthread_mutex_unlock(&g->mu);
}
