/*
 * sqlite_schema: the SQLite schema as an ordered list of migrations. Entry i
 * takes the database from version i to i + 1; each pending one is applied
 * in its own transaction at open and recorded in schema_version.
 * Migrations are append-only and never destructive: a released entry is
 * never edited, a change is a new entry.
 */
#include "store/sqlite_schema.h"

#include <stdio.h>

#include "util/err.h"

static const char *const migrations[] = {
    /* 1: the initial schema. */
    /*
     * orders: finished orders are kept, they are the idempotency record.
     * seq orders listing and claiming (AUTOINCREMENT: never reused).
     * next_at is when a pending order becomes claimable; lease_owner,
     * lease_until and fence describe the current or last lease.
     */
    "CREATE TABLE orders ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " customer TEXT NOT NULL,"
    " items TEXT NOT NULL,"
    " metadata TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('pending', 'processing',"
    "  'completed', 'rejected', 'failed', 'cancelled')),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " reason TEXT,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " finished_at INTEGER,"
    " next_at INTEGER NOT NULL,"
    " lease_owner TEXT,"
    " lease_until INTEGER,"
    " fence INTEGER NOT NULL DEFAULT 0);"
    /* The hot queue index: pending orders only, in claim order (seq), with
     * next_at inside so due-ness is decided without touching the table. A
     * (next_at, seq) index would make a claim sort every due order to find
     * the oldest few; scanning by seq stops after LIMIT rows, skipping only
     * the (few) retries that are not yet due. */
    "CREATE INDEX orders_pending ON orders (seq, next_at)"
    " WHERE status = 'pending';"
    "CREATE INDEX orders_status ON orders (status, seq);"
    "CREATE INDEX orders_leased ON orders (lease_until)"
    " WHERE status = 'processing';"
    "CREATE TABLE products ("
    " sku TEXT PRIMARY KEY,"
    " stock INTEGER NOT NULL CHECK (stock >= 0),"
    " updated_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE adjustments ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " sku TEXT NOT NULL,"
    " delta INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL);"
    /* The backstop of G3: one reservation per (order, sku), ever. */
    "CREATE TABLE reservations ("
    " order_id TEXT NOT NULL,"
    " sku TEXT NOT NULL,"
    " qty INTEGER NOT NULL CHECK (qty > 0),"
    " fence INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (order_id, sku)) WITHOUT ROWID;"
    /* One row per state transition (state_event_name; databases from
     * before 2026-12 also hold a "submit" row per order, which the order
     * row itself records). */
    "CREATE TABLE order_events ("
    " id INTEGER PRIMARY KEY,"
    " order_id TEXT NOT NULL,"
    " event TEXT NOT NULL,"
    " fence INTEGER,"
    " at INTEGER NOT NULL);"
    /* 'fence': the one sequence shared by order leases and named locks. */
    "CREATE TABLE counters ("
    " name TEXT PRIMARY KEY,"
    " value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO counters (name, value) VALUES ('fence', 0);"
    "CREATE TABLE locks ("
    " name TEXT PRIMARY KEY,"
    " owner TEXT NOT NULL,"
    " fence INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL) WITHOUT ROWID;",
    /* 2: replica heartbeats, for "replicas seen" and pending per replica. */
    "CREATE TABLE replicas ("
    " id TEXT PRIMARY KEY,"
    " last_seen INTEGER NOT NULL) WITHOUT ROWID;",
    /* 3: the same stored values as the postgres backend (the store
     * contract, tests/unit/test_store_contract.c): "not finished" and "no
     * lease" are 0, never NULL, an event without a fence has fence 0, and
     * the lease is cleared whenever an order leaves processing. Claims
     * take due orders by (next_at, seq), like postgres: the order that has
     * been claimable longest goes first, read straight off this index. */
    "UPDATE orders SET finished_at = 0 WHERE finished_at IS NULL;"
    "UPDATE orders SET lease_owner = NULL, lease_until = 0"
    " WHERE status <> 'processing';"
    "UPDATE orders SET lease_until = 0 WHERE lease_until IS NULL;"
    "UPDATE order_events SET fence = 0 WHERE fence IS NULL;"
    "CREATE INDEX orders_due ON orders (next_at, seq)"
    " WHERE status = 'pending';",
    /* 4: the confirm step and dead-letter groups. held is 1 while the
     * order's reservations are taken but not yet confirmed (status pending
     * between confirm attempts, or processing); fingerprint is the group
     * of a failed order's reason (core/failure.h), NULL otherwise. */
    "ALTER TABLE orders ADD COLUMN held INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE orders ADD COLUMN fingerprint TEXT;"
    "CREATE INDEX orders_failed ON orders (fingerprint, seq)"
    " WHERE status = 'failed';",
    /* 5: the outbox of notifications (G9). One row per terminal
     * transition, written by the trigger orders_outbox in the same
     * transaction as the transition; the trigger itself is created by
     * store_outbox_enable (sqlite_notify.c), only when notifications are
     * configured. The order_* columns are the order's snapshot at the
     * transition (its content is immutable and read from orders), so the
     * body is the same on every redelivery. The rest is delivery state:
     * pending rows are claimed under a lease with a fence from the shared
     * sequence, like orders; acked lists the endpoints that took it. */
    "CREATE TABLE notifications ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " order_id TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " order_status TEXT NOT NULL,"
    " order_reason TEXT,"
    " order_attempts INTEGER NOT NULL,"
    " order_updated_at INTEGER NOT NULL,"
    " order_finished_at INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'pending'"
    "  CHECK (status IN ('pending', 'delivered', 'dead')),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_at INTEGER NOT NULL,"
    " lease_owner TEXT,"
    " lease_until INTEGER NOT NULL DEFAULT 0,"
    " fence INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " delivered_at INTEGER NOT NULL DEFAULT 0,"
    " acked TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX notifications_due ON notifications (next_at, seq)"
    " WHERE status = 'pending';"
    "CREATE INDEX notifications_status ON notifications (status, seq);"
    "CREATE INDEX notifications_delivered ON notifications (delivered_at)"
    " WHERE status = 'delivered';",
    /* 6: an order's history (GET /v1/orders/{id}/history) is read by
     * order id: without this index every lookup scans every event ever
     * recorded. postgres has had the same index since its first schema. */
    "CREATE INDEX order_events_order ON order_events (order_id);",
    /* 7, as postgres's: an order's history names the replica that
     * recorded each transition (NULL for rows from before), and lists
     * the order's notifications, read by order id. */
    "ALTER TABLE order_events ADD COLUMN replica TEXT;"
    "CREATE INDEX notifications_order ON notifications (order_id);",
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* Applies the pending migrations, each in its own transaction. Safe against
 * another process migrating the same file at the same time: the version is
 * read again under the write lock before each step. */
int sqs_migrate(sqb_conn_t *c)
{
	int rc;
	for (;;) {
		rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return sqb_err(rc);
		rc = sqlite3_exec(c->db,
		                  "CREATE TABLE IF NOT EXISTS schema_version ("
		                  " version INTEGER PRIMARY KEY,"
		                  " applied_at INTEGER NOT NULL)",
		                  NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			goto fail_rc;
		sqlite3_stmt *st;
		rc = sqlite3_prepare_v2(c->db,
		                        "SELECT COALESCE(MAX(version), 0)"
		                        " FROM schema_version",
		                        -1, &st, NULL);
		if (rc != SQLITE_OK)
			goto fail_rc;
		rc = sqlite3_step(st);
		int version = (int)sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW)
			goto fail_rc;
		if (version > SCHEMA_VERSION) {
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
			return OD_ESCHEMA;
		}
		if (version == SCHEMA_VERSION) {
			rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
			if (rc != SQLITE_OK)
				goto fail_rc;
			return 0;
		}
		rc = sqlite3_exec(c->db, migrations[version], NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			goto fail_rc;
		char sql[160];
		snprintf(sql, sizeof sql,
		         "INSERT INTO schema_version (version, applied_at)"
		         " VALUES (%d, " SQB_NOW_SQL ")",
		         version + 1);
		rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			goto fail_rc;
		rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			goto fail_rc;
	}
fail_rc:
	if (!sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return sqb_err(rc);
}
