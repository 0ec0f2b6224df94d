/*
 * handlers: the pool of threads that runs the HTTP work which calls the
 * store (route handlers, waiter polls, releases of undelivered lock
 * grants), so that no libmicrohttpd thread and not the waiter thread ever
 * waits on the database. A generic FIFO of jobs; it knows nothing of HTTP.
 *
 * Bounded in time: a job marked `expires` that has waited longer than the
 * pool's max_wait_ms is taken out of the queue by the pool's timer thread
 * and run with late = true, without waiting for a free handler thread; it
 * must then finish without calling the store (the server answers 503).
 */
#ifndef ORDERD_HTTP_HANDLERS_H
#define ORDERD_HTTP_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct handlers handlers_t;
typedef struct handlers_job handlers_job_t;

/* Runs job (which it may free). late: see above. */
typedef void (*handlers_fn)(handlers_job_t *job, bool late);

/* Embedded in whatever the job works on; owned by the caller, linked into
 * the pool's queue between handlers_submit and the run. */
struct handlers_job {
	handlers_fn run;
	bool expires;           /* may be run late past max_wait_ms */
	int64_t queued_mono_ms; /* set by handlers_submit */
	handlers_job_t *next;   /* the pool's queue; the pool's lock */
};

int handlers_new(size_t threads, int64_t max_wait_ms, handlers_t **ret);
/* Queues job; false once the pool is stopping (the caller handles job
 * itself). Any thread, pool threads included. */
bool handlers_submit(handlers_t *h, handlers_job_t *job);
/* Runs what is queued and joins the threads; later submits fail. */
void handlers_stop(handlers_t *h);
/* handlers_stop, then frees. NULL ok. */
void handlers_free(handlers_t *h);

#endif
