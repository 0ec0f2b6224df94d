/*
 * notify_body: what a notification says on the wire, pure and
 * deterministic so the same event always has the same bytes and the same
 * signature: the body {"id", "type", "created_at", "order"} as compact
 * JSON with sorted keys (the order as the API renders it, at the
 * transition), and the Orderd-Signature header value, HMAC-SHA256 of the
 * raw body (OpenSSL libcrypto).
 */
#ifndef ORDERD_WORK_NOTIFY_BODY_H
#define ORDERD_WORK_NOTIFY_BODY_H

#include <stddef.h>

#include "store/store.h"

/* "sha256=" + 64 hex digits, twice with a comma, and the NUL. */
#define NOTIFY_SIG_MAX (2 * (7 + 64) + 2)

/* The body of n: malloc'd NUL-terminated *ret_body of *ret_len bytes, the
 * caller frees it. 0, -ENOMEM or OD_EINTERNAL (an unrenderable row). */
int notify_body(const store_notification_t *n, char **ret_body,
                size_t *ret_len);
/*
 * The Orderd-Signature value of body[0..len) into buf[NOTIFY_SIG_MAX]:
 * "sha256=<hex HMAC-SHA256 keyed with secret>", followed during a key
 * rotation (previous not NULL) by ",sha256=<hex keyed with previous>".
 * A receiver accepts the request when any one of them matches a secret
 * it holds. 0, or OD_EINTERNAL when libcrypto fails.
 */
int notify_sign(const char *body, size_t len, const char *secret,
                const char *previous, char buf[NOTIFY_SIG_MAX]);

#endif
