/*
 * lock_body: the named-lock bodies (see lock_body.h). Checks run in the
 * order the API documents: unknown fields first, then owner, then the
 * numbers, so a body with several faults always gets the same message.
 */
#include "http/lock_body.h"

#include <string.h>

#include "http/fields.h"
#include "util/err.h"

int lock_body_decode(lock_body_kind_t kind, const json_t *body,
                     lock_body_t *ret, char *err, size_t errlen)
{
	static const char *const acquire[] = {"owner", "ttl_ms", "wait_ms",
	                                      NULL};
	static const char *const renew[] = {"owner", "fence", "ttl_ms", NULL};
	static const char *const release[] = {"owner", "fence", NULL};
	const char *const *allowed = kind == LOCK_BODY_ACQUIRE ? acquire
	                             : kind == LOCK_BODY_RENEW ? renew
	                                                       : release;
	lock_body_t b;
	int rc;

	memset(&b, 0, sizeof b);
	if ((rc = fields_only(body, allowed, err, errlen)) != 0 ||
	    (rc = fields_ident(body, "owner", b.owner, err, errlen)) != 0)
		return rc;
	if (kind != LOCK_BODY_ACQUIRE &&
	    (rc = fields_int(body, "fence", 0, INT64_MAX, false, &b.fence, err,
	                     errlen)) != 0)
		return rc;
	if (kind != LOCK_BODY_RELEASE &&
	    (rc = fields_int(body, "ttl_ms", LOCK_BODY_TTL_MIN,
	                     LOCK_BODY_TTL_MAX, false, &b.ttl_ms, err,
	                     errlen)) != 0)
		return rc;
	if (kind == LOCK_BODY_ACQUIRE &&
	    (rc = fields_int(body, "wait_ms", 0, LOCK_BODY_WAIT_MS_MAX, true,
	                     &b.wait_ms, err, errlen)) != 0)
		return rc;
	*ret = b;
	return 0;
}
