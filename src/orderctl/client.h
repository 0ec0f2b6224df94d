/*
 * client: the CLI's HTTP client, a thin wrapper over one libcurl easy handle
 * (kept for the whole run, so batches reuse one keep-alive connection).
 * It knows the base URL, the bearer token and the timeout, and nothing about
 * orders: a request goes out with an optional JSON body and comes back as a
 * status, the Retry-After header and a bounded body.
 *
 * Errors are values: client_request() returns 0 whenever the server answered
 * with any HTTP status, or a negative errno-style code when no answer came:
 *   -ECONNREFUSED  the server could not be reached (resolve, connect)
 *   -ECONNRESET    the connection broke before a full answer arrived
 *   -ETIMEDOUT     the timeout passed
 *   -EFBIG         the answer was larger than CLIENT_MAX_BODY
 *   -EPROTO        anything else curl reports (bad URL, bad answer, ...)
 *   -ENOMEM
 * with curl's own description in the caller's errbuf.
 */
#ifndef ORDERCTL_CLIENT_H
#define ORDERCTL_CLIENT_H

#include <stddef.h>

#include "util/buf.h"

#define CLIENT_MAX_BODY (64u << 20) /* cap on a response body */
#define CLIENT_MAX_RETRY_AFTER 60   /* seconds; longer hints are cut */
#define CLIENT_ERRLEN 256           /* size of a transport error message */

typedef struct client client_t;

typedef struct client_response {
	long status;     /* HTTP status */
	int retry_after; /* seconds from Retry-After, -1 when absent */
	buf_t
	    body; /* the body, NUL-terminated; freed by client_response_free */
} client_response_t;

/*
 * A client for base_url (e.g. "http://127.0.0.1:8080", trailing '/' allowed)
 * sending token (may be NULL) as a bearer token, with timeout_ms for each
 * request. Calls curl_global_init() on first use. The caller frees *ret with
 * client_free(). 0, -EINVAL (token with control characters), -ENOMEM.
 */
int client_new(const char *base_url, const char *token, long timeout_ms,
               client_t **ret);
void client_free(client_t *c);

/*
 * Sends method path (path starts with '/', query included) with body
 * (JSON text of body_len bytes; NULL for none). extra_timeout_ms is added
 * to the client's timeout for requests that wait on the server on purpose
 * (wait_ms). On 0, *resp holds the answer and the caller frees it with
 * client_response_free(); on error *resp is left empty and errbuf
 * (CLIENT_ERRLEN bytes) says what happened.
 */
int client_request(client_t *c, const char *method, const char *path,
                   const char *body, size_t body_len, long extra_timeout_ms,
                   client_response_t *resp, char errbuf[CLIENT_ERRLEN]);
void client_response_free(client_response_t *resp);

/*
 * Escapes s for use as one path segment or query value. Returns malloc'd
 * text the caller frees, or NULL on allocation failure.
 */
char *client_escape(client_t *c, const char *s);

/* Reads one raw response header line, line[0..n) (not NUL-terminated, as
 * libcurl hands it over): the Retry-After delay in seconds, capped at
 * CLIENT_MAX_RETRY_AFTER, or -1 when the line is another header or not
 * the delta-seconds form. */
int client_retry_after(const char *line, size_t n);

#endif
