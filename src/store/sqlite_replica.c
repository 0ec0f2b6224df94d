/*
 * sqlite_replica: replica heartbeats for the SQLite backend. A beat is a
 * write (record this replica, forget those silent for a day); the list is
 * a read on a reader connection and records nothing.
 */
#include <stdio.h>

#include "store/sqlite_int.h"
#include "util/err.h"

#define DAY_MS 86400000

/* A heartbeat is harmless to lose in a power cut: a lazy commit. */
int sqb_replica_beat(void *b, const char *replica)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_LAZY, &c, &now);
	if (rc < 0)
		return rc;
	sqb_param_t beat[] = {SQB_TEXT(replica), SQB_INT(now)};
	rc = sqb_exec(c, SQB_REPLICA_BEAT,
	              "INSERT INTO replicas (id, last_seen) VALUES (?1, ?2)"
	              " ON CONFLICT (id) DO UPDATE"
	              " SET last_seen = excluded.last_seen",
	              beat, SQB_NPARAMS(beat));
	sqb_param_t old[] = {SQB_INT(now - DAY_MS)};
	if (rc >= 0)
		rc = sqb_exec(c, SQB_REPLICA_FORGET,
		              "DELETE FROM replicas WHERE last_seen < ?1", old,
		              SQB_NPARAMS(old));
	if (rc < 0) {
		sqb_write_rollback(s);
		return rc;
	}
	return sqb_write_commit(s);
}

int sqb_replicas_list(void *b, int64_t window_ms, char (*ret_ids)[ID_MAX + 1],
                      size_t max, size_t *ret_n)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	int64_t now;
	size_t n = 0;
	int rc = sqb_read_begin(c, &now);
	if (rc < 0)
		goto put;
	sqlite3_stmt *st = NULL;
	rc = sqb_stmt(c, SQB_REPLICA_LIST,
	              "SELECT id FROM replicas WHERE last_seen >= ?1"
	              " ORDER BY last_seen DESC, id",
	              &st);
	if (rc == 0 && (rc = sqb_bind_int(st, 1, now - window_ms)) == 0) {
		while ((rc = sqb_step(st)) == 1) {
			const char *id =
			    (const char *)sqlite3_column_text(st, 0);
			if (n < max && id)
				snprintf(ret_ids[n], ID_MAX + 1, "%s", id);
			n++;
		}
	}
	if (st)
		sqlite3_reset(st);
	sqb_read_end(c);
put:
	sqb_reader_put(s, c);
	if (rc < 0)
		return rc;
	*ret_n = n;
	return 0;
}

int sqb_leases_by_owner(void *b, store_lease_group_t *ret, size_t max,
                        size_t *ret_n)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	int64_t now;
	size_t n = 0;
	int rc = sqb_read_begin(c, &now);
	if (rc < 0)
		goto put;
	sqlite3_stmt *st = NULL;
	rc = sqb_stmt(c, SQB_LEASES_BY_OWNER,
	              "SELECT lease_owner, COUNT(*) AS n FROM orders"
	              " WHERE status = 'processing' AND lease_owner IS NOT NULL"
	              " GROUP BY lease_owner ORDER BY n DESC, lease_owner",
	              &st);
	if (rc == 0) {
		while ((rc = sqb_step(st)) == 1) {
			const char *id =
			    (const char *)sqlite3_column_text(st, 0);
			if (n < max && id) {
				snprintf(ret[n].replica, ID_MAX + 1, "%s", id);
				ret[n].orders = sqlite3_column_int64(st, 1);
			}
			n++;
		}
	}
	if (st)
		sqlite3_reset(st);
	sqb_read_end(c);
put:
	sqb_reader_put(s, c);
	if (rc < 0)
		return rc;
	*ret_n = n;
	return 0;
}
