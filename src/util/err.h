/*
 * err: the one error convention of orderd. A fallible function returns int:
 * 0 on success, a negative system errno (-ENOMEM, -EIO, ...) or one of the
 * project codes below. err_str() names any of them; docs/errors.md lists them.
 */
#ifndef ORDERD_UTIL_ERR_H
#define ORDERD_UTIL_ERR_H

enum {
	OD_OK = 0,
	/* Project codes sit far below any errno value. */
	OD_EINVAL = -10000, /* input failed validation (HTTP 400) */
	OD_ENOTFOUND,       /* no such order, product or lock (404) */
	OD_ESTATE,          /* not allowed in the current status (409) */
	OD_EFENCE,    /* the lease's fence is no longer current: abandon */
	OD_ELOCKHELD, /* the named lock is held by someone (409 lock_held) */
	OD_ELOCKLOST, /* the lock expired or has another fence (409 lock_lost)
	               */
	OD_EBUSY,     /* a bounded queue is full: shed load (429 or 503) */
	OD_ESTORE,    /* transient store failure: retry later (503) */
	OD_EUNKNOWN,  /* outcome unknown (connection lost around COMMIT) */
	OD_ESCHEMA,   /* database schema is newer than this binary */
	OD_ESHUTDOWN, /* the component is draining or stopped */
	OD_ETOOBIG,   /* a size limit was exceeded (a config list's cap) */
	OD_ECONFIG,   /* bad configuration */
	OD_EINTERNAL, /* a bug or an impossible state (500) */
};

/* Returns a static, lowercase description of err (never NULL). */
const char *err_str(int err);

#endif
