/*
 * postgres_schema: the versioned schema of the postgres store backend and
 * its migration at open. Migrations are append-only and never destructive:
 * entry i takes the database from version i to i + 1. Each runs in its own
 * transaction under a transaction-scoped advisory lock, so replicas that
 * start together apply each step exactly once, one after the other.
 */
#include "store/postgres_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

/* Arbitrary, fixed: "orderd" in ASCII. Keys are per database. */
#define MIGRATE_LOCK_KEY "111114100101114100"

static const char *const migrations[] = {
    /* 1: the whole initial schema. Identifiers compare byte-wise
     * (COLLATE "C") whatever the database's locale: that is the order of
     * the canonical items text, of product pages, and of SQLite. */
    "CREATE SEQUENCE fence_seq AS bigint START 1 CACHE 1;"
    "CREATE TABLE orders ("
    " seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " id text COLLATE \"C\" NOT NULL UNIQUE,"
    " customer text NOT NULL,"
    " items text NOT NULL,"
    " metadata text NOT NULL,"
    " status text NOT NULL CHECK (status IN ('pending', 'processing',"
    "  'completed', 'rejected', 'failed', 'cancelled')),"
    " attempts integer NOT NULL DEFAULT 0,"
    " reason text,"
    " created_at bigint NOT NULL,"
    " updated_at bigint NOT NULL,"
    " finished_at bigint NOT NULL DEFAULT 0,"
    " next_at bigint NOT NULL,"
    " lease_owner text,"
    " lease_until bigint NOT NULL DEFAULT 0,"
    " fence bigint NOT NULL DEFAULT 0);"
    /* The hot queue index stays narrow: only claimable rows. */
    "CREATE INDEX orders_pending ON orders (next_at, seq)"
    " WHERE status = 'pending';"
    "CREATE INDEX orders_leased ON orders (lease_until)"
    " WHERE status = 'processing';"
    "CREATE TABLE products ("
    " sku text COLLATE \"C\" PRIMARY KEY,"
    " stock bigint NOT NULL CHECK (stock >= 0),"
    " updated_at bigint NOT NULL);"
    "CREATE TABLE adjustments ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " sku text NOT NULL,"
    " delta bigint NOT NULL,"
    " created_at bigint NOT NULL);"
    "CREATE INDEX adjustments_sku ON adjustments (sku);"
    "CREATE TABLE reservations ("
    " order_id text COLLATE \"C\" NOT NULL,"
    " sku text COLLATE \"C\" NOT NULL,"
    " qty bigint NOT NULL CHECK (qty > 0),"
    " fence bigint NOT NULL,"
    " created_at bigint NOT NULL,"
    " PRIMARY KEY (order_id, sku));"
    "CREATE INDEX reservations_sku ON reservations (sku);"
    "CREATE TABLE order_events ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " order_id text NOT NULL,"
    " event text NOT NULL,"
    " fence bigint NOT NULL,"
    " at bigint NOT NULL);"
    "CREATE INDEX order_events_order ON order_events (order_id);"
    "CREATE TABLE locks ("
    " name text PRIMARY KEY,"
    " owner text NOT NULL,"
    " fence bigint NOT NULL,"
    " expires_at bigint NOT NULL);",
    /* 2: replica heartbeats, for "replicas seen" and pending per
     * replica. */
    "CREATE TABLE replicas ("
    " id text PRIMARY KEY,"
    " last_seen bigint NOT NULL);",
    /* 3: the confirm step and dead-letter groups. held is true while the
     * order's reservations are taken but not yet confirmed (status pending
     * between confirm attempts, or processing); fingerprint is the group
     * of a failed order's reason (core/failure.h), NULL otherwise. */
    "ALTER TABLE orders ADD COLUMN held boolean NOT NULL DEFAULT false;"
    "ALTER TABLE orders ADD COLUMN fingerprint text COLLATE \"C\";"
    "CREATE INDEX orders_failed ON orders (fingerprint, seq)"
    " WHERE status = 'failed';",
    /* 4: the outbox of notifications (G9), as SQLite's migration 5: one
     * row per terminal transition with the order's snapshot, then its
     * delivery state. The trigger function is defined here; the trigger
     * that calls it is created by store_outbox_enable
     * (postgres_notify.c), only when notifications are configured. */
    "CREATE TABLE notifications ("
    " seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " order_id text COLLATE \"C\" NOT NULL,"
    " type text NOT NULL,"
    " order_status text NOT NULL,"
    " order_reason text,"
    " order_attempts integer NOT NULL,"
    " order_updated_at bigint NOT NULL,"
    " order_finished_at bigint NOT NULL,"
    " created_at bigint NOT NULL,"
    " status text NOT NULL DEFAULT 'pending'"
    "  CHECK (status IN ('pending', 'delivered', 'dead')),"
    " attempts integer NOT NULL DEFAULT 0,"
    " next_at bigint NOT NULL,"
    " lease_owner text,"
    " lease_until bigint NOT NULL DEFAULT 0,"
    " fence bigint NOT NULL DEFAULT 0,"
    " last_error text,"
    " delivered_at bigint NOT NULL DEFAULT 0,"
    " acked text NOT NULL DEFAULT '');"
    "CREATE INDEX notifications_due ON notifications (next_at, seq)"
    " WHERE status = 'pending';"
    "CREATE INDEX notifications_status ON notifications (status, seq);"
    "CREATE INDEX notifications_delivered ON notifications (delivered_at)"
    " WHERE status = 'delivered';"
    "CREATE FUNCTION orders_outbox() RETURNS trigger LANGUAGE plpgsql"
    " AS $f$ DECLARE now_ms bigint :="
    " (extract(epoch from clock_timestamp()) * 1000)::bigint;"
    " BEGIN INSERT INTO notifications (order_id, type, order_status,"
    " order_reason, order_attempts, order_updated_at, order_finished_at,"
    " created_at, next_at) VALUES (NEW.id, 'order.' || NEW.status,"
    " NEW.status, NEW.reason, NEW.attempts, NEW.updated_at,"
    " NEW.finished_at, now_ms, now_ms); RETURN NULL; END $f$;",
    /* 5: orders_leased indexes the same rows (a lease is set exactly
     * while an order is processing) under a predicate that
     * status = 'processing' does not imply. With the old one, the
     * planner answered every fenced write by id (o.id = x.id AND
     * o.status = 'processing') by reading the whole index, whose
     * entries for orders long finished stay while a snapshot pins the
     * horizon; now those writes go through the unique index on id, and
     * only the reap, which asks for lease_until > 0, scans this one
     * (from its mark: postgres_mark.c). Built first under another
     * name (a SHARE lock: writes wait for the build, reads go on), so
     * the ACCESS EXCLUSIVE lock of the drop is held only from the drop
     * to the commit. */
    "CREATE INDEX orders_leased_5 ON orders (lease_until)"
    " WHERE lease_until > 0;"
    "DROP INDEX orders_leased;"
    "ALTER INDEX orders_leased_5 RENAME TO orders_leased;",
    /* 6: no statement looks reservations up by sku (the audit's sum by
     * sku reads the whole table), yet every reserved item paid an entry
     * in this index and its WAL. */
    "DROP INDEX reservations_sku;",
    /* 7, as SQLite's: an order's history names the replica that
     * recorded each transition (NULL for rows from before, and from
     * replicas of an older version still running), and lists the
     * order's notifications, read by order id. The index first: its
     * build holds a SHARE lock on notifications (terminal transitions,
     * whose trigger writes there, wait; reads go on), and the ALTER's
     * ACCESS EXCLUSIVE lock on order_events, which every event write and
     * every history read waits for, is then held only for the catalog
     * change (no default: nothing is rewritten) until the commit. */
    "CREATE INDEX notifications_order ON notifications (order_id);"
    "ALTER TABLE order_events ADD COLUMN replica text;",
};

#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])

/* Reads the version inside the locked transaction; creates the table. */
static int read_version(pgc_t *c, int *ret)
{
	int rc = pgc_cmd(c, "CREATE TABLE IF NOT EXISTS schema_version ("
	                    " one integer PRIMARY KEY CHECK (one = 1),"
	                    " version integer NOT NULL);"
	                    "INSERT INTO schema_version VALUES (1, 0)"
	                    " ON CONFLICT (one) DO NOTHING");
	if (rc < 0)
		return rc;
	PGresult *res;
	rc = pgc_sql(c, "SELECT version FROM schema_version", &res);
	if (rc < 0)
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return OD_ESCHEMA;
	}
	char *end;
	long v = strtol(PQgetvalue(res, 0, 0), &end, 10);
	bool ok = *end == '\0' && v >= 0 && v < 1000000;
	PQclear(res);
	if (!ok)
		return OD_ESCHEMA;
	*ret = (int)v;
	return 0;
}

int pgs_migrate(pgc_t *c, int *ret_version)
{
	int version = 0;
	for (size_t i = 0;; i++) {
		int rc = pgc_cmd(c, "BEGIN");
		if (rc < 0)
			return rc;
		/* Serializes concurrent openers; released at COMMIT. */
		rc = pgc_cmd(c, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY
		                ")");
		if (rc == 0)
			rc = read_version(c, &version);
		if (rc == 0 && version > (int)N_MIGRATIONS)
			rc = OD_ESCHEMA;
		if (rc < 0) {
			pgc_rollback(c);
			return rc;
		}
		if ((size_t)version >= N_MIGRATIONS) {
			pgc_rollback(c);
			break;
		}
		/* Another opener may have moved past step i meanwhile: apply
		 * whatever step the database is actually at. */
		rc = pgc_cmd(c, migrations[version]);
		if (rc == 0) {
			char sql[96];
			snprintf(sql, sizeof sql,
			         "UPDATE schema_version SET version = %d",
			         version + 1);
			rc = pgc_cmd(c, sql);
		}
		if (rc < 0) {
			pgc_rollback(c);
			return rc;
		}
		rc = pgc_commit(c);
		if (rc < 0)
			return rc == OD_EUNKNOWN ? OD_ESTORE : rc;
		if (i > N_MIGRATIONS)
			return OD_EINTERNAL; /* cannot happen: bounded */
	}
	*ret_version = version;
	return 0;
}

int pgs_outbox_enable(pgc_t *c)
{
	int rc = pgc_cmd(c, "BEGIN");
	if (rc < 0)
		return rc;
	rc = pgc_cmd(c, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")");
	/* One row per transition into a terminal status, whatever
	 * statement made it, in that statement's transaction (migration 4
	 * has the function). UPDATE OF status: every transition sets it.
	 * Created only when missing: CREATE TRIGGER locks orders against
	 * writes, and every replica start comes here. */
	if (rc == 0)
		rc = pgc_cmd(
		    c, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_trigger"
		       " WHERE tgname = 'orders_outbox'"
		       " AND tgrelid = 'orders'::regclass) THEN"
		       " CREATE TRIGGER orders_outbox"
		       " AFTER UPDATE OF status ON orders FOR EACH ROW"
		       " WHEN (NEW.status IN ('completed', 'rejected',"
		       " 'failed', 'cancelled')"
		       " AND NEW.status IS DISTINCT FROM OLD.status)"
		       " EXECUTE FUNCTION orders_outbox(); END IF; END $$");
	if (rc < 0) {
		pgc_rollback(c);
		return rc;
	}
	rc = pgc_commit(c);
	return rc == OD_EUNKNOWN ? OD_ESTORE : rc;
}
