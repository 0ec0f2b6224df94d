/* err: descriptions of the project-wide error codes (see err.h). */
#include "util/err.h"

#include <string.h>

const char *err_str(int err)
{
	switch (err) {
	case OD_OK:
		return "success";
	case OD_EINVAL:
		return "invalid input";
	case OD_ENOTFOUND:
		return "not found";
	case OD_ESTATE:
		return "not allowed in the current status";
	case OD_EFENCE:
		return "lease fence is no longer current";
	case OD_ELOCKHELD:
		return "lock is held";
	case OD_ELOCKLOST:
		return "lock was lost";
	case OD_EBUSY:
		return "queue is full";
	case OD_ESTORE:
		return "store is unavailable";
	case OD_EUNKNOWN:
		return "outcome unknown";
	case OD_ESCHEMA:
		return "database schema is newer than this binary";
	case OD_ESHUTDOWN:
		return "shutting down";
	case OD_ETOOBIG:
		return "size limit exceeded";
	case OD_ECONFIG:
		return "bad configuration";
	case OD_EINTERNAL:
		return "internal error";
	}
	if (err < 0 && err > -4096)
		return strerror(-err); /* glibc: thread-safe for known codes */
	return "unknown error";
}
