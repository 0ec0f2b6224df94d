/*
 * overdue: the timer of entries with one fixed bound (see overdue.h).
 *
 * Locking: mu protects the list (head, tail, each entry's links and
 * listed) and stop; cv (monotonic) wakes the timer thread when the list
 * goes from empty, or at stop. fire runs without the lock.
 */
#include "http/overdue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "util/clock.h"

struct overdue {
	int64_t bound_ms;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	overdue_entry_t *head; /* mu: oldest first */
	overdue_entry_t *tail; /* mu */
	bool stop;             /* mu */
};

/* mu held. */
static void unlink_entry(overdue_t *o, overdue_entry_t *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		o->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		o->tail = e->prev;
	e->prev = e->next = NULL;
	e->listed = false;
}

static void *timer_main(void *arg)
{
	overdue_t *o = arg;
	pthread_mutex_lock(&o->mu);
	while (!o->stop) {
		overdue_entry_t *e = o->head;
		if (!e) {
			pthread_cond_wait(&o->cv, &o->mu);
			continue;
		}
		int64_t due = e->added_mono_ms + o->bound_ms;
		if (clock_mono_ms() < due) {
			struct timespec ts = clock_mono_timespec(due);
			pthread_cond_timedwait(&o->cv, &o->mu, &ts);
			continue;
		}
		unlink_entry(o, e);
		pthread_mutex_unlock(&o->mu);
		e->fire(e);
		pthread_mutex_lock(&o->mu);
	}
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

int overdue_new(int64_t bound_ms, overdue_t **ret)
{
	overdue_t *o = calloc(1, sizeof *o);
	if (!o)
		return -ENOMEM;
	o->bound_ms = bound_ms;
	pthread_mutex_init(&o->mu, NULL);
	clock_cond_init(&o->cv);
	int rc = pthread_create(&o->thread, NULL, timer_main, o);
	if (rc != 0) {
		pthread_cond_destroy(&o->cv);
		pthread_mutex_destroy(&o->mu);
		free(o);
		return -rc;
	}
	*ret = o;
	return 0;
}

void overdue_add(overdue_t *o, overdue_entry_t *e)
{
	e->added_mono_ms = clock_mono_ms();
	pthread_mutex_lock(&o->mu);
	e->next = NULL;
	e->prev = o->tail;
	if (o->tail)
		o->tail->next = e;
	else
		o->head = e;
	o->tail = e;
	e->listed = true;
	/* Only an empty list changes the first deadline. */
	if (o->head == e)
		pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
}

bool overdue_remove(overdue_t *o, overdue_entry_t *e)
{
	pthread_mutex_lock(&o->mu);
	bool was = e->listed;
	if (was)
		unlink_entry(o, e);
	pthread_mutex_unlock(&o->mu);
	return was;
}

void overdue_free(overdue_t *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->mu);
	o->stop = true;
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
	pthread_join(o->thread, NULL);
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	free(o);
}
