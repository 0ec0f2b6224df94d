/*
 * handlers: the pool of threads that runs the route handlers which call
 * the store, so that no libmicrohttpd thread ever waits on the database
 * (see handlers.c).
 */
#ifndef ORDERD_HTTP_HANDLERS_H
#define ORDERD_HTTP_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct handlers handlers_t;
typedef struct http_req http_req_t;

int handlers_new(size_t threads, handlers_t **ret);
/* Queues suspended r; a pool thread runs its handler, then resumes it.
 * false once the pool is stopping (the caller answers r itself). */
bool handlers_submit(handlers_t *h, http_req_t *r);
/* Runs what is queued and joins the threads; later submits fail. */
void handlers_stop(handlers_t *h);
/* handlers_stop, then frees. NULL ok. */
void handlers_free(handlers_t *h);

#endif
