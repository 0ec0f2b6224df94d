/*
 * buf: a growable byte buffer with a hard cap, for the CLI's response
 * bodies, input files and batch request bodies. The text is always kept
 * NUL-terminated so it can be handed to parsers and printf as is.
 */
#ifndef ORDERCTL_BUF_H
#define ORDERCTL_BUF_H

#include <stddef.h>

typedef struct buf {
	char *data; /* NULL until the first append; owned, freed by buf_free */
	size_t len; /* bytes used, not counting the terminating NUL */
	size_t cap; /* bytes allocated */
	size_t max; /* len never exceeds this */
} buf_t;

/* An empty buffer that will never hold more than max bytes. */
void buf_init(buf_t *b, size_t max);
/* Appends data[0..n). 0, -EFBIG past the cap (nothing appended), -ENOMEM. */
int buf_append(buf_t *b, const void *data, size_t n);
/* Forgets the contents, keeps the memory. */
void buf_reset(buf_t *b);
void buf_free(buf_t *b);

#endif
