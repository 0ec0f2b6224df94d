/*
 * postgres_replica: replica heartbeats for the postgres store backend. A
 * beat is one write statement (record this replica, forget those silent
 * for a day); the list is a read and records nothing.
 */
#include <stdio.h>
#include <stdlib.h>

#include "store/postgres_int.h"
#include "util/err.h"

static const pgp_stmt_t stmt_replica_beat = {
    .name = "replica_beat",
    .sql = PGB_WITH_NOW ", up AS (INSERT INTO replicas (id,"
                        " last_seen) SELECT $1, ms FROM now"
                        " ON CONFLICT (id) DO UPDATE"
                        " SET last_seen = excluded.last_seen)"
                        " DELETE FROM replicas WHERE last_seen <"
                        " " PGB_NOW " - 86400000 AND id <> $1",
    .nparams = 1,
};

int pgb_replica_beat(void *h, const char *replica)
{
	const char *p[1] = {replica};
	PGresult *res;
	/* A beat lost in flight is harmless: the next one comes soon. */
	int rc = pgb_query(h, &stmt_replica_beat, p, PGB_LOST_RETRY, &res);
	PQclear(res);
	return rc;
}

static const pgp_stmt_t stmt_replicas_list = {
    .name = "replicas_list",
    .sql = "SELECT id FROM replicas WHERE last_seen >= " PGB_NOW_MS
           " - $1::bigint ORDER BY last_seen DESC, id",
    .nparams = 1,
};

int pgb_replicas_list(void *h, int64_t window_ms, char (*ret_ids)[ID_MAX + 1],
                      size_t max, size_t *ret_n)
{
	char win[24];
	pgb_fmt_i64(win, sizeof win, window_ms);
	const char *p[1] = {win};
	PGresult *res;
	int rc = pgb_query(h, &stmt_replicas_list, p, PGB_LOST_RETRY, &res);
	if (rc == 0) {
		size_t n = (size_t)PQntuples(res);
		for (size_t i = 0; i < n && i < max; i++)
			snprintf(ret_ids[i], ID_MAX + 1, "%s",
			         PQgetvalue(res, (int)i, 0));
		*ret_n = n;
	}
	PQclear(res);
	return rc;
}

static const pgp_stmt_t stmt_leases_by_owner = {
    .name = "leases_by_owner",
    .sql = "SELECT lease_owner, COUNT(*) AS n FROM orders"
           " WHERE status = 'processing' AND lease_owner IS NOT NULL"
           " GROUP BY lease_owner ORDER BY n DESC, lease_owner",
    .nparams = 0,
};

int pgb_leases_by_owner(void *h, store_lease_group_t *ret, size_t max,
                        size_t *ret_n)
{
	PGresult *res;
	int rc =
	    pgb_query(h, &stmt_leases_by_owner, NULL, PGB_LOST_RETRY, &res);
	if (rc == 0) {
		size_t n = (size_t)PQntuples(res);
		for (size_t i = 0; i < n && i < max; i++) {
			snprintf(ret[i].replica, ID_MAX + 1, "%s",
			         PQgetvalue(res, (int)i, 0));
			ret[i].orders =
			    strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
		}
		*ret_n = n;
	}
	PQclear(res);
	return rc;
}
