/*
 * postgres_replica: replica heartbeats for the postgres store backend
 * (replicas_seen): one statement records this replica's beat, forgets
 * replicas silent for a day, and lists those seen within the window.
 */
#include <stdio.h>

#include "store/postgres_int.h"
#include "util/err.h"

/* The statement's snapshot does not see its own upsert, hence the
 * "OR id = $1": this replica always counts itself. */
static const pgp_stmt_t stmt_replicas_seen = {
    .name = "replicas_seen",
    .sql = PGB_WITH_NOW ", up AS (INSERT INTO replicas (id,"
                        " last_seen) SELECT $1, ms FROM now"
                        " ON CONFLICT (id) DO UPDATE"
                        " SET last_seen = excluded.last_seen),"
                        " old AS (DELETE FROM replicas WHERE last_seen <"
                        " " PGB_NOW " - 86400000)"
                        " SELECT id FROM replicas WHERE id = $1 OR"
                        " last_seen >= " PGB_NOW " - $2::bigint"
                        " ORDER BY id = $1 DESC, last_seen DESC, id",
    .nparams = 2,
};

int pgb_replicas_seen(void *h, const char *replica, int64_t window_ms,
                      char (*ret_ids)[ID_MAX + 1], size_t max, size_t *ret_n)
{
	pgb_store_t *b = h;
	pgc_t *c;
	int rc = pgb_conn(b, &c);
	if (rc < 0)
		return rc;
	char win[24];
	pgb_fmt_i64(win, sizeof win, window_ms);
	const char *p[2] = {replica, win};
	PGresult *res = NULL;
	rc = pgc_exec(c, &stmt_replicas_seen, p, &res);
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
