/*
 * postgres_locks: named locks (leases with fencing tokens from the shared
 * fence sequence) and the G3-G5 audit of the postgres store backend. The
 * statements live in postgres.c's table; see postgres_int.h.
 */
#include <stdio.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/err.h"

static int row_lock(const PGresult *res, int row, store_lock_t *ret)
{
	store_lock_t l;
	memset(&l, 0, sizeof l);
	if (!pg_get_str(res, row, 0, l.name, sizeof l.name) ||
	    !pg_get_str(res, row, 1, l.owner, sizeof l.owner) ||
	    !pg_get_i64(res, row, 2, &l.fence) ||
	    !pg_get_i64(res, row, 3, &l.expires_at))
		return OD_EINTERNAL;
	*ret = l;
	return 0;
}

static bool names_ok(const char *name, const char *owner)
{
	return name && *name && strlen(name) <= ID_MAX &&
	       (!owner || (*owner && strlen(owner) <= ID_MAX));
}

/*
 * Runs a lock statement; *ret_found tells whether it returned a row (copied
 * into *ret when ret is not NULL). Writes lost in flight are OD_EUNKNOWN.
 */
static int lock_stmt(pg_store_t *b, int stmt, const char *const *p, bool write,
                     store_lock_t *ret, bool *ret_found)
{
	pgc_t *c;
	int rc = pg_conn(b, &c);
	if (rc < 0)
		return rc;
	PGresult *res = NULL;
	rc = pgc_exec(b->pool, c, stmt, p, &res);
	if (rc < 0) {
		if (write && c->lost)
			rc = OD_EUNKNOWN;
	} else {
		*ret_found = PQntuples(res) > 0;
		if (*ret_found && ret)
			rc = row_lock(res, 0, ret);
	}
	PQclear(res);
	pgp_put(b->pool, c);
	return rc;
}

int pg_lock_acquire(void *h, const char *name, const char *owner,
                    int64_t ttl_ms, store_lock_t *ret)
{
	if (!names_ok(name, owner) || ttl_ms <= 0)
		return OD_EINVAL;
	char tbuf[24];
	snprintf(tbuf, sizeof tbuf, "%lld", (long long)ttl_ms);
	const char *p[3] = {name, owner, tbuf};
	const char *pn[1] = {name};
	/* The holder we report is read by a second statement; if it let go
	 * in between, the lock is free and we try again (bounded). */
	for (int attempt = 0; attempt < 3; attempt++) {
		store_lock_t l;
		bool found = false;
		int rc = lock_stmt(h, ST_LOCK_ACQUIRE, p, true, &l, &found);
		if (rc < 0)
			return rc;
		if (found) {
			if (ret)
				*ret = l;
			return 0;
		}
		rc = lock_stmt(h, ST_LOCK_READ, pn, false, &l, &found);
		if (rc < 0)
			return rc;
		if (found) {
			if (ret)
				*ret = l;
			return OD_ELOCKHELD;
		}
	}
	return OD_ESTORE;
}

int pg_lock_renew(void *h, const char *name, const char *owner, int64_t fence,
                  int64_t ttl_ms, store_lock_t *ret)
{
	if (!names_ok(name, owner) || ttl_ms <= 0)
		return OD_EINVAL;
	char fbuf[24], tbuf[24];
	snprintf(fbuf, sizeof fbuf, "%lld", (long long)fence);
	snprintf(tbuf, sizeof tbuf, "%lld", (long long)ttl_ms);
	const char *p[4] = {name, owner, fbuf, tbuf};
	store_lock_t l;
	bool found = false;
	int rc = lock_stmt(h, ST_LOCK_RENEW, p, true, &l, &found);
	if (rc < 0)
		return rc;
	if (!found)
		return OD_ELOCKLOST;
	if (ret)
		*ret = l;
	return 0;
}

int pg_lock_release(void *h, const char *name, const char *owner, int64_t fence)
{
	if (!names_ok(name, owner))
		return OD_EINVAL;
	char fbuf[24];
	snprintf(fbuf, sizeof fbuf, "%lld", (long long)fence);
	const char *p[3] = {name, owner, fbuf};
	bool found = false;
	int rc = lock_stmt(h, ST_LOCK_RELEASE, p, true, NULL, &found);
	if (rc < 0)
		return rc;
	return found ? 0 : OD_ELOCKLOST;
}

int pg_replicas_seen(void *h, const char *replica, int64_t window_ms,
                     char (*ret_ids)[ID_MAX + 1], size_t max, size_t *ret_n)
{
	pg_store_t *b = h;
	pgc_t *c;
	int rc = pg_conn(b, &c);
	if (rc < 0)
		return rc;
	char win[24];
	pg_fmt_i64(win, sizeof win, window_ms);
	const char *p[2] = {replica, win};
	PGresult *res = NULL;
	rc = pgc_exec(b->pool, c, ST_REPLICAS_SEEN, p, &res);
	if (rc == 0) {
		size_t n = (size_t)PQntuples(res);
		for (size_t i = 0; i < n && i < max; i++)
			snprintf(ret_ids[i], ID_MAX + 1, "%s",
			         PQgetvalue(res, (int)i, 0));
		*ret_n = n;
	}
	PQclear(res);
	pgp_put(b->pool, c);
	return rc;
}

int pg_lock_get(void *h, const char *name, store_lock_t *ret)
{
	if (!names_ok(name, NULL))
		return OD_EINVAL;
	const char *p[1] = {name};
	store_lock_t l;
	bool found = false;
	int rc = lock_stmt(h, ST_LOCK_GET, p, false, &l, &found);
	if (rc < 0)
		return rc;
	if (!found)
		return OD_ENOTFOUND;
	*ret = l;
	return 0;
}

/* ---- audit ---- */

static const int checks[] = {
    ST_VERIFY_NEGATIVE,       ST_VERIFY_BALANCE, ST_VERIFY_RESERVED_STATUS,
    ST_VERIFY_RESERVED_ITEMS, ST_VERIFY_EVENTS,
};

/* One line describing row r of check stmt. */
static void describe(int stmt, const PGresult *res, int r, char *line,
                     size_t cap)
{
	const char *v[4] = {"", "", "", ""};
	for (int k = 0; k < 4 && k < PQnfields(res); k++)
		v[k] = PQgetvalue(res, r, k);
	switch (stmt) {
	case ST_VERIFY_NEGATIVE:
		snprintf(line, cap, "product %s has negative stock %s", v[0],
		         v[1]);
		break;
	case ST_VERIFY_BALANCE:
		snprintf(line, cap,
		         "product %s: stock %s != adjustments %s - reserved %s",
		         v[0], v[1], v[2], v[3]);
		break;
	case ST_VERIFY_RESERVED_STATUS:
		snprintf(
		    line, cap,
		    "reservation (%s, %s) belongs to an order in status %s",
		    v[0], v[1], v[2]);
		break;
	case ST_VERIFY_RESERVED_ITEMS:
		snprintf(line, cap,
		         "completed order %s: reservations do not match its "
		         "items",
		         v[0]);
		break;
	default:
		snprintf(line, cap,
		         "order %s reached a terminal status %s times", v[0],
		         v[1]);
		break;
	}
}

int pg_verify(void *h, store_violation_fn fn, void *arg, size_t *ret_violations)
{
	pg_store_t *b = h;
	pgc_t *c;
	int rc = pg_conn(b, &c);
	if (rc < 0)
		return rc;
	size_t violations = 0;
	/* One snapshot for every check, so they agree with each other. */
	rc = pgc_cmd(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		PGresult *res;
		rc = pgc_exec(b->pool, c, checks[i], NULL, &res);
		if (rc < 0)
			goto rollback;
		for (int r = 0; r < PQntuples(res); r++) {
			char line[512];
			describe(checks[i], res, r, line, sizeof line);
			violations++;
			if (fn)
				fn(arg, line);
		}
		PQclear(res);
	}
	*ret_violations = violations;
rollback:
	pgc_rollback(c);
out:
	pgp_put(b->pool, c);
	return rc;
}
