/*
 * failure: dead-letter groups. A failed order's reason is normalised (every
 * word that holds a digit, such as an id, a count, an address or a status
 * code, becomes "#"; quoted text, opened by a quote at the start of a word,
 * becomes "'*'") and the normalised text is
 * hashed to a short fingerprint, so "confirm: HTTP 503 after 2000 ms" and
 * "confirm: HTTP 500 after 31 ms" are one group an operator can requeue
 * after one fix. Pure code.
 */
#ifndef ORDERD_CORE_FAILURE_H
#define ORDERD_CORE_FAILURE_H

#include <stdbool.h>
#include <stddef.h>

#define FAILURE_FP_LEN 16 /* lower-case hex characters */

/* Writes the normalised form of reason (NULL counts as "") to out, cut to
 * len - 1 bytes and always terminated. len must be at least 1. */
void failure_normalise(const char *reason, char *out, size_t len);
/* The fingerprint of reason: FAILURE_FP_LEN hex characters and a NUL. */
void failure_fingerprint(const char *reason, char out[FAILURE_FP_LEN + 1]);
/* True when s has the form of a fingerprint. */
bool failure_fingerprint_valid(const char *s);

#endif
