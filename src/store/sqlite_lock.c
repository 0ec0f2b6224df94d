/*
 * sqlite_lock: named locks (leases with fencing tokens) for the SQLite
 * backend. Expiry is judged on the store's clock; each grant takes a fresh
 * value of the fence sequence that order leases share, so a fence is larger
 * than every fence granted before, for any lock or order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/err.h"

static int lock_row(sqlite3_stmt *st, const char *name, store_lock_t *ret)
{
	store_lock_t l = {0};
	size_t len = strlen(name);
	if (len > ID_MAX)
		return OD_EINTERNAL;
	memcpy(l.name, name, len + 1);
	int rc = sqb_col_ident(st, 0, l.owner);
	if (rc < 0)
		return rc;
	l.fence = sqlite3_column_int64(st, 1);
	l.expires_at = sqlite3_column_int64(st, 2);
	*ret = l;
	return 0;
}

int sqb_lock_acquire(void *b, const char *name, const char *owner,
                     int64_t ttl_ms, store_lock_t *ret)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	const sqb_param_t get[] = {SQB_TEXT(name)};
	sqlite3_stmt *st;
	store_lock_t held;
	rc = sqb_row(c, SQB_LOCK_GET_ANY,
	             "SELECT owner, fence, expires_at FROM locks"
	             " WHERE name = ?1",
	             get, SQB_NPARAMS(get), &st);
	if (rc == 1) {
		rc = lock_row(st, name, &held);
		if (rc == 0)
			rc = held.expires_at > now ? OD_ELOCKHELD : 0;
		sqlite3_reset(st);
	}
	if (rc == OD_ELOCKHELD) {
		sqb_write_rollback(s);
		*ret = held;
		return rc;
	}
	if (rc < 0)
		goto rollback;
	store_lock_t l = {0};
	rc = sqb_next_fence(c, &l.fence);
	if (rc < 0)
		goto rollback;
	l.expires_at = now + ttl_ms;
	const sqb_param_t set[] = {SQB_TEXT(name), SQB_TEXT(owner),
	                           SQB_INT(l.fence), SQB_INT(l.expires_at)};
	rc = sqb_exec(c, SQB_LOCK_UPSERT,
	              "INSERT INTO locks (name, owner, fence, expires_at)"
	              " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO UPDATE"
	              " SET owner = excluded.owner, fence = excluded.fence,"
	              " expires_at = excluded.expires_at",
	              set, SQB_NPARAMS(set));
	if (rc < 0)
		goto rollback;
	rc = sqb_write_commit(s);
	if (rc < 0)
		return rc;
	memcpy(l.name, name, strlen(name) + 1);
	memcpy(l.owner, owner, strlen(owner) + 1);
	*ret = l;
	return 0;
rollback:
	sqb_write_rollback(s);
	return rc;
}

int sqb_lock_renew(void *b, const char *name, const char *owner, int64_t fence,
                   int64_t ttl_ms, store_lock_t *ret)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	const sqb_param_t p[] = {SQB_TEXT(name), SQB_TEXT(owner),
	                         SQB_INT(fence), SQB_INT(now), SQB_INT(ttl_ms)};
	rc = sqb_exec(c, SQB_LOCK_RENEW,
	              "UPDATE locks SET expires_at = ?4 + ?5"
	              " WHERE name = ?1 AND owner = ?2 AND fence = ?3"
	              " AND expires_at > ?4",
	              p, SQB_NPARAMS(p));
	if (rc >= 0 && rc != 1)
		rc = OD_ELOCKLOST;
	if (rc < 0)
		goto rollback;
	rc = sqb_write_commit(s);
	if (rc < 0)
		return rc;
	store_lock_t l = {0};
	memcpy(l.name, name, strlen(name) + 1);
	memcpy(l.owner, owner, strlen(owner) + 1);
	l.fence = fence;
	l.expires_at = now + ttl_ms;
	*ret = l;
	return 0;
rollback:
	sqb_write_rollback(s);
	return rc;
}

int sqb_lock_release(void *b, const char *name, const char *owner,
                     int64_t fence)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	const sqb_param_t p[] = {SQB_TEXT(name), SQB_TEXT(owner),
	                         SQB_INT(fence), SQB_INT(now)};
	rc = sqb_exec(c, SQB_LOCK_DELETE,
	              "DELETE FROM locks WHERE name = ?1 AND owner = ?2"
	              " AND fence = ?3 AND expires_at > ?4",
	              p, SQB_NPARAMS(p));
	if (rc >= 0 && rc != 1)
		rc = OD_ELOCKLOST;
	if (rc < 0)
		goto rollback;
	return sqb_write_commit(s);
rollback:
	sqb_write_rollback(s);
	return rc;
}

int sqb_lock_get(void *b, const char *name, store_lock_t *ret)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	const sqb_param_t p[] = {SQB_TEXT(name)};
	sqlite3_stmt *st;
	int rc = sqb_row(c, SQB_LOCK_GET_LIVE,
	                 "SELECT owner, fence, expires_at FROM locks"
	                 " WHERE name = ?1 AND expires_at > " SQB_NOW_SQL,
	                 p, SQB_NPARAMS(p), &st);
	if (rc == 1) {
		rc = lock_row(st, name, ret);
		sqlite3_reset(st);
	} else if (rc == 0) {
		rc = OD_ENOTFOUND;
	}
	sqb_reader_put(s, c);
	return rc;
}
