/*
 * waiters: the one thread that schedules every suspended wait (GET
 * /v1/orders/{id}?wait_ms, lock acquire with wait_ms); the store polls
 * themselves run on the handler pool. See waiters.c.
 */
#ifndef ORDERD_HTTP_WAITERS_H
#define ORDERD_HTTP_WAITERS_H

#include <stdbool.h>
#include <stddef.h>

#include "http/handlers.h"
#include "store/store.h"

typedef struct waiters waiters_t;
typedef struct http_req http_req_t;

/*
 * Polls r once, on a handler thread; deadline tells that this is the last
 * chance. Returns true when r->resp is filled (the waiter then resumes r),
 * false to keep waiting.
 */
typedef bool (*waiter_poll_fn)(http_req_t *r, bool deadline);

/* pool runs the polls and must outlive the waiters (stop the pool before
 * waiters_free). */
int waiters_new(size_t max, store_t *store, handlers_t *pool, waiters_t **ret);
/*
 * Registers suspended r until poll says done or r->deadline_mono_ms.
 * order_wait: r waits for order r->param to become terminal; such waits
 * share one batched store check per tick and are polled only when it says
 * so (or at their deadline). OD_EBUSY when max waiters wait, OD_ESHUTDOWN
 * when stopping; the caller then answers r itself.
 */
int waiters_add(waiters_t *w, http_req_t *r, waiter_poll_fn poll,
                bool order_wait);
/* Answers every waiter 503 at once (a poll in flight too: its answer is
 * then dropped), and stops the thread; later waiters_add calls answer
 * OD_ESHUTDOWN. Idempotent. */
void waiters_stop(waiters_t *w);
/* Stops (if not yet) and frees. NULL ok. */
void waiters_free(waiters_t *w);

#endif
