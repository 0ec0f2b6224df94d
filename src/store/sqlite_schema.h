/*
 * sqlite_schema: the SQLite schema as an ordered list of migrations. Entry i
 * takes the database from version i to i + 1; sqlite_conn.c applies each
 * pending one in its own transaction at open and records it in
 * schema_version. Migrations are append-only and never destructive: a
 * released entry is never edited, a change is a new entry.
 *
 * Included by sqlite_conn.c only.
 */
#ifndef ORDERD_STORE_SQLITE_SCHEMA_H
#define ORDERD_STORE_SQLITE_SCHEMA_H

static const char *const sqlite_migrations[] = {
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
    /* One row per state transition (state_event_name, plus "submit"). */
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
};

#define SQLITE_SCHEMA_VERSION                                                  \
	((int)(sizeof sqlite_migrations / sizeof sqlite_migrations[0]))

#endif
