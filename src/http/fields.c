/*
 * fields: the JSON body field readers (see fields.h). The wording of the
 * messages is the API's (docs/api.md): the field named first, then the rule.
 */
#include "http/fields.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/order.h"
#include "util/err.h"
#include "util/jsonx.h"

int fields_only(const json_t *obj, const char *const *allowed, char *err,
                size_t errlen)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		bool ok = false;
		for (const char *const *a = allowed; *a != NULL; a++)
			ok = ok || strcmp(*a, key) == 0;
		if (!ok) {
			snprintf(err, errlen, "unknown field \"%.64s\"", key);
			/* %.64s may cut a UTF-8 sequence short. */
			jsonx_sanitize_text(err);
			return OD_EINVAL;
		}
	}
	return 0;
}

int fields_int(const json_t *obj, const char *name, int64_t min, int64_t max,
               bool absent_ok, int64_t *ret, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, name);
	json_int_t n;

	if (v == NULL && absent_ok)
		return 0;
	if (v == NULL || !json_is_integer(v) ||
	    (n = json_integer_value(v)) < min || n > max) {
		snprintf(err, errlen,
		         "%s must be an integer %" PRId64 "..%" PRId64, name,
		         min, max);
		return OD_EINVAL;
	}
	*ret = n;
	return 0;
}

int fields_ident(const json_t *obj, const char *name, char *out, char *err,
                 size_t errlen)
{
	json_t *v = json_object_get(obj, name);
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;

	if (s == NULL || !order_ident_valid(s, ID_MAX)) {
		snprintf(err, errlen,
		         "%s must be 1..%d characters of [A-Za-z0-9._:-]", name,
		         ID_MAX);
		return OD_EINVAL;
	}
	memcpy(out, s, strlen(s) + 1);
	return 0;
}
