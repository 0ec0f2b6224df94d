/*
 * lock_body: decoding the JSON bodies of the named-lock routes (acquire,
 * renew, release; docs/api.md) into a plain struct, with the API's bounds.
 * Pure, so the lock fuzzer (tests/fuzz/fuzz_lock.c) reaches exactly what
 * api_locks.c runs.
 */
#ifndef ORDERD_HTTP_LOCK_BODY_H
#define ORDERD_HTTP_LOCK_BODY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/order.h"

#define LOCK_BODY_TTL_MIN 100
#define LOCK_BODY_TTL_MAX 600000
#define LOCK_BODY_WAIT_MS_MAX 30000

typedef enum lock_body_kind {
	LOCK_BODY_ACQUIRE, /* owner, ttl_ms, optional wait_ms */
	LOCK_BODY_RENEW,   /* owner, fence, ttl_ms */
	LOCK_BODY_RELEASE, /* owner, fence */
} lock_body_kind_t;

typedef struct lock_body {
	char owner[ID_MAX + 1];
	int64_t ttl_ms;  /* acquire, renew */
	int64_t wait_ms; /* acquire; 0 when absent */
	int64_t fence;   /* renew, release: 0..INT64_MAX */
} lock_body_t;

/*
 * Decodes body (a JSON object) as the given kind. 0 and *ret filled (the
 * fields the kind does not take are 0), or OD_EINVAL with the 400 message
 * in err and *ret untouched.
 */
int lock_body_decode(lock_body_kind_t kind, const json_t *body,
                     lock_body_t *ret, char *err, size_t errlen);

#endif
