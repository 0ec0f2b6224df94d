/*
 * buf: a growable byte buffer with a hard cap, the one hand-rolled
 * realloc-doubling buffer of the code base: request bodies (http/server.c),
 * the metrics exposition (obs/metrics.c), PostgreSQL array literals
 * (store/postgres.c) and the CLI's bodies and input files (orderctl). The
 * text is always kept NUL-terminated so it can be handed to parsers and
 * printf as is. General code: knows nothing about orders.
 */
#ifndef ORDERD_UTIL_BUF_H
#define ORDERD_UTIL_BUF_H

#include <stddef.h>

typedef struct buf {
	char *data; /* NULL until the first allocation; malloc'd, owned */
	size_t len; /* bytes used, not counting the terminating NUL */
	size_t cap; /* bytes allocated; never more than max + 1 */
	size_t max; /* len never exceeds this (SIZE_MAX: no cap) */
} buf_t;

/* An empty buffer that will never hold more than max bytes. */
void buf_init(buf_t *b, size_t max);
/* Makes room for n more bytes and the NUL, so that appending them cannot
 * fail; data is then non-NULL. 0, -EFBIG past the cap, -ENOMEM. */
int buf_reserve(buf_t *b, size_t n);
/* Appends data[0..n). 0, -EFBIG past the cap (nothing appended), -ENOMEM. */
int buf_append(buf_t *b, const void *data, size_t n);
/* Forgets the contents, keeps the memory. */
void buf_reset(buf_t *b);
/* Frees the memory; b is empty again, with the same cap. A caller may
 * instead take b->data (it frees it with free()) and not call this. */
void buf_free(buf_t *b);

#endif
