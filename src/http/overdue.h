/*
 * overdue: a timer for things that must be finished within one fixed
 * bound of being started, whoever is still working on them. The HTTP
 * server uses it for submissions: the batcher's committer may be stuck in
 * a store call (a database that does not answer) for up to the store's
 * deadline per transaction, and a submission queued behind a stuck batch
 * would wait for that one and then its own; this answers it 503 at its own
 * deadline instead. A generic FIFO of entries; it knows nothing of HTTP.
 *
 * Every entry has the same bound and is added at the time it starts, so
 * the list is in deadline order: the timer thread sleeps (monotonic clock)
 * until the first one is due and fires every due one, without the lock.
 *
 * Ownership: an entry is the caller's, embedded in what it times. Between
 * overdue_add and either overdue_remove returning true or fire being
 * called, the entry must stay valid; fire is called at most once, and
 * never after overdue_remove returned true. A caller that counts
 * references takes one for the timer at add and drops it in fire, or
 * after an overdue_remove that returned true.
 */
#ifndef ORDERD_HTTP_OVERDUE_H
#define ORDERD_HTTP_OVERDUE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct overdue overdue_t;
typedef struct overdue_entry overdue_entry_t;

/* Called on the timer thread once the entry is past the bound. */
typedef void (*overdue_fn)(overdue_entry_t *e);

struct overdue_entry {
	overdue_fn fire;
	int64_t added_mono_ms;        /* set by overdue_add */
	overdue_entry_t *prev, *next; /* the list; the timer's lock */
	bool listed;                  /* the timer's lock */
};

/* Starts the timer thread; entries are due bound_ms after their add. */
int overdue_new(int64_t bound_ms, overdue_t **ret);
/* Starts timing e (e->fire set by the caller). Any thread. */
void overdue_add(overdue_t *o, overdue_entry_t *e);
/* Stops timing e: true when it was still waiting (fire will not be
 * called), false when fire has been or is being called. */
bool overdue_remove(overdue_t *o, overdue_entry_t *e);
/* Stops and joins the timer thread, then frees; entries still listed are
 * never fired. NULL ok. */
void overdue_free(overdue_t *o);

#endif
