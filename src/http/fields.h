/*
 * fields: strict reading of the fields of a decoded JSON request body
 * (after jsonx_parse_object). Pure: each returns 0, or OD_EINVAL with the
 * message the API answers in a 400 (printable UTF-8, at most errlen - 1
 * bytes); api.c wraps them into answers, the body decoders (lock_body.c)
 * use them directly so a fuzzer can reach them without a server.
 */
#ifndef ORDERD_HTTP_FIELDS_H
#define ORDERD_HTTP_FIELDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* OD_EINVAL when obj has a key not in the NULL-terminated allowed list. */
int fields_only(const json_t *obj, const char *const *allowed, char *err,
                size_t errlen);
/* An integer field in [min, max]; absent_ok leaves *ret untouched when
 * the field is missing. */
int fields_int(const json_t *obj, const char *name, int64_t min, int64_t max,
               bool absent_ok, int64_t *ret, char *err, size_t errlen);
/* An identifier field, copied into out (ID_MAX + 1 bytes). */
int fields_ident(const json_t *obj, const char *name, char *out, char *err,
                 size_t errlen);

#endif
