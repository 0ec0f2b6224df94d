/*
 * jsonx: the strict JSON reader for request bodies, on top of jansson. It
 * enforces the API's body rules before any field is looked at: valid UTF-8,
 * no NUL (raw or \u0000), no duplicate keys, nesting at most max_depth, and a
 * JSON object at the top. General code: knows nothing about orders.
 */
#ifndef ORDERD_UTIL_JSONX_H
#define ORDERD_UTIL_JSONX_H

#include <jansson.h>
#include <stddef.h>

#define JSONX_MAX_DEPTH 32 /* API default nesting limit */

/*
 * Parses buf[0..len) as one JSON object. On success returns 0 and stores a
 * new reference in *ret_obj (the caller decrefs it). On failure returns
 * OD_EINVAL (or -ENOMEM) and writes a message into errbuf such as
 * "invalid JSON: duplicate object key near '"a"' at line 1 column 12",
 * "JSON nesting deeper than 32" or "body must be a JSON object". The message
 * is always valid UTF-8 without control characters, so it can be echoed in a
 * JSON error body as is. errbuf may be NULL when errlen is 0.
 */
int jsonx_parse_object(const char *buf, size_t len, int max_depth,
                       json_t **ret_obj, char *errbuf, size_t errlen);

/*
 * Replaces, in place, control characters and bytes that are not part of a
 * well-formed UTF-8 sequence (such as a sequence cut short by snprintf
 * truncation) with '?', so a message built from untrusted text stays
 * printable valid UTF-8.
 */
void jsonx_sanitize_text(char *s);

#endif
