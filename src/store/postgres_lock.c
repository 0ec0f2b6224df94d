/*
 * postgres_lock: named locks (leases with fencing tokens from the shared
 * fence sequence) for the postgres store backend. Expiry is judged on the
 * database's clock; each grant takes a fresh value of the fence sequence
 * that order leases share.
 */
#include <stdio.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/err.h"

static int row_lock(const PGresult *res, int row, store_lock_t *ret)
{
	store_lock_t l;
	memset(&l, 0, sizeof l);
	if (!pgb_get_str(res, row, 0, l.name, sizeof l.name) ||
	    !pgb_get_str(res, row, 1, l.owner, sizeof l.owner) ||
	    !pgb_get_i64(res, row, 2, &l.fence) ||
	    !pgb_get_i64(res, row, 3, &l.expires_at))
		return OD_EINTERNAL;
	*ret = l;
	return 0;
}

/*
 * Runs a lock statement; *ret_found tells whether it returned a row (copied
 * into *ret when ret is not NULL). Writes lost in flight are OD_EUNKNOWN.
 */
static int lock_stmt(pgb_store_t *b, const pgp_stmt_t *stmt,
                     const char *const *p, bool write, store_lock_t *ret,
                     bool *ret_found)
{
	PGresult *res;
	int rc = pgb_query(b, stmt, p,
	                   write ? PGB_LOST_UNKNOWN : PGB_LOST_RETRY, &res);
	if (rc == 0) {
		*ret_found = PQntuples(res) > 0;
		if (*ret_found && ret)
			rc = row_lock(res, 0, ret);
	}
	PQclear(res);
	return rc;
}

/* Named locks: the conflict arbiter serializes racing acquirers on
 * the primary key; the loser re-evaluates the WHERE against the
 * winner's row and changes nothing. EXCLUDED.expires_at - ttl is the
 * statement's now. */
static const pgp_stmt_t stmt_lock_acquire = {
    .name = "lock_acquire",
    .sql = PGB_WITH_NOW "INSERT INTO locks (name, owner, fence,"
                        " expires_at) SELECT $1::text, $2::text,"
                        " nextval('fence_seq'), now.ms + $3::bigint"
                        " FROM now ON CONFLICT (name) DO UPDATE"
                        " SET owner = EXCLUDED.owner,"
                        " fence = EXCLUDED.fence,"
                        " expires_at = EXCLUDED.expires_at"
                        " WHERE locks.expires_at <="
                        " EXCLUDED.expires_at - $3::bigint"
                        " RETURNING name, owner, fence, expires_at",
    .nparams = 3,
};

static const pgp_stmt_t stmt_lock_read = {
    .name = "lock_read",
    .sql = "SELECT name, owner, fence, expires_at FROM locks"
           " WHERE name = $1 AND expires_at > " PGB_NOW_MS,
    .nparams = 1,
};

int pgb_lock_acquire(void *h, const char *name, const char *owner,
                     int64_t ttl_ms, store_lock_t *ret)
{
	char tbuf[24];
	snprintf(tbuf, sizeof tbuf, "%lld", (long long)ttl_ms);
	const char *p[3] = {name, owner, tbuf};
	const char *pn[1] = {name};
	/* The holder we report is read by a second statement; if it let go
	 * in between, the lock is free and we try again (bounded). */
	for (int attempt = 0; attempt < 3; attempt++) {
		store_lock_t l;
		bool found = false;
		int rc = lock_stmt(h, &stmt_lock_acquire, p, true, &l, &found);
		if (rc < 0)
			return rc;
		if (found) {
			*ret = l;
			return 0;
		}
		rc = lock_stmt(h, &stmt_lock_read, pn, false, &l, &found);
		if (rc < 0)
			return rc;
		if (found) {
			*ret = l;
			return OD_ELOCKHELD;
		}
	}
	return OD_ESTORE;
}

static const pgp_stmt_t stmt_lock_renew = {
    .name = "lock_renew",
    .sql = PGB_WITH_NOW "UPDATE locks"
                        " SET expires_at = " PGB_NOW " + $4::bigint"
                        " WHERE name = $1 AND owner = $2"
                        " AND fence = $3::bigint AND expires_at > " PGB_NOW
                        " RETURNING name, owner, fence, expires_at",
    .nparams = 4,
};

int pgb_lock_renew(void *h, const char *name, const char *owner, int64_t fence,
                   int64_t ttl_ms, store_lock_t *ret)
{
	char fbuf[24], tbuf[24];
	snprintf(fbuf, sizeof fbuf, "%lld", (long long)fence);
	snprintf(tbuf, sizeof tbuf, "%lld", (long long)ttl_ms);
	const char *p[4] = {name, owner, fbuf, tbuf};
	store_lock_t l;
	bool found = false;
	int rc = lock_stmt(h, &stmt_lock_renew, p, true, &l, &found);
	if (rc < 0)
		return rc;
	if (!found)
		return OD_ELOCKLOST;
	*ret = l;
	return 0;
}

static const pgp_stmt_t stmt_lock_release = {
    .name = "lock_release",
    .sql = "DELETE FROM locks WHERE name = $1 AND owner = $2"
           " AND fence = $3::bigint AND expires_at > " PGB_NOW_MS
           " RETURNING name",
    .nparams = 3,
};

int pgb_lock_release(void *h, const char *name, const char *owner,
                     int64_t fence)
{
	char fbuf[24];
	snprintf(fbuf, sizeof fbuf, "%lld", (long long)fence);
	const char *p[3] = {name, owner, fbuf};
	bool found = false;
	int rc = lock_stmt(h, &stmt_lock_release, p, true, NULL, &found);
	if (rc < 0)
		return rc;
	return found ? 0 : OD_ELOCKLOST;
}

static const pgp_stmt_t stmt_lock_get = {
    .name = "lock_get",
    .sql = "SELECT name, owner, fence, expires_at FROM locks"
           " WHERE name = $1 AND expires_at > " PGB_NOW_MS,
    .nparams = 1,
};

int pgb_lock_get(void *h, const char *name, store_lock_t *ret)
{
	const char *p[1] = {name};
	store_lock_t l;
	bool found = false;
	int rc = lock_stmt(h, &stmt_lock_get, p, false, &l, &found);
	if (rc < 0)
		return rc;
	if (!found)
		return OD_ENOTFOUND;
	*ret = l;
	return 0;
}
