/*
 * sqlite: the SQLite backend of the store (store.h), the embedded default.
 * This file holds the backend table, open, free and ping, and the row,
 * bind and event helpers the other files share. The operations live by
 * noun, each file with its SQL at the call site: sqlite_order.c (submit,
 * order reads, requeue, cancel, stats), sqlite_lease.c (claim, process,
 * retry, release, reap), sqlite_product.c, sqlite_lock.c (named locks),
 * sqlite_replica.c (replica heartbeats), sqlite_failure.c (dead-letter
 * groups), sqlite_notify.c (the outbox of notifications) and
 * sqlite_verify.c (the audit);
 * sqlite_conn.c owns connections, the statement cache and transactions,
 * sqlite_schema.c the schema and its migrations. The PostgreSQL backend
 * has the same files under the same names.
 *
 * Every write runs in one BEGIN IMMEDIATE transaction on the single writer
 * connection, and reads the store clock once at its start (sqb_write_begin),
 * so all timestamps of one transaction agree. Writes made under a lease are
 * conditional on (id, fence, status = 'processing'); a write that changes no
 * row means the lease is gone and nothing is written.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "store/store_backend.h"
#include "util/err.h"

/* Copies column col of st into dst[ID_MAX + 1]; OD_EINTERNAL when too long. */
int sqb_col_ident(sqlite3_stmt *st, int col, char *dst)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	int len = sqlite3_column_bytes(st, col);
	if (!t && sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM)
		return -ENOMEM;
	if (!t || len < 0 || len > ID_MAX)
		return OD_EINTERNAL;
	memcpy(dst, t, (size_t)len);
	dst[len] = '\0';
	return 0;
}

/* Duplicates column col (NULL stays NULL). */
static int col_dup(sqlite3_stmt *st, int col, char **ret)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL) {
		*ret = NULL;
		return 0;
	}
	const unsigned char *t = sqlite3_column_text(st, col);
	if (!t)
		return -ENOMEM;
	char *d = strdup((const char *)t);
	if (!d)
		return -ENOMEM;
	*ret = d;
	return 0;
}

/* Reads the SQB_ORDER_COLS columns of the current row into *ret; *ret is
 * written only on success. */
int sqb_row_order(sqlite3_stmt *st, order_t *ret)
{
	order_t o = {0};
	int rc;
	o.seq = sqlite3_column_int64(st, 0);
	if ((rc = sqb_col_ident(st, 1, o.id)) < 0 ||
	    (rc = sqb_col_ident(st, 2, o.customer)) < 0)
		goto fail;
	const unsigned char *items = sqlite3_column_text(st, 3);
	if (!items) {
		rc = OD_EINTERNAL;
		goto fail;
	}
	rc = order_items_from_text((const char *)items, &o);
	if (rc < 0) {
		if (rc != -ENOMEM)
			rc = OD_EINTERNAL;
		goto fail;
	}
	if ((rc = col_dup(st, 4, &o.metadata)) < 0 ||
	    (rc = col_dup(st, 7, &o.reason)) < 0)
		goto fail;
	if (!o.metadata) {
		rc = OD_EINTERNAL;
		goto fail;
	}
	const unsigned char *status = sqlite3_column_text(st, 5);
	if (order_status_parse((const char *)status, &o.status) < 0) {
		rc = OD_EINTERNAL;
		goto fail;
	}
	o.attempts = sqlite3_column_int(st, 6);
	o.created_at = sqlite3_column_int64(st, 8);
	o.updated_at = sqlite3_column_int64(st, 9);
	o.finished_at = sqlite3_column_int64(st, 10);
	*ret = o;
	return 0;
fail:
	order_clear(&o);
	return rc;
}

int sqb_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	int rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC)
	           : sqlite3_bind_null(st, i);
	return rc == SQLITE_OK ? 0 : sqb_err(rc);
}

int sqb_bind_int(sqlite3_stmt *st, int i, int64_t v)
{
	int rc = sqlite3_bind_int64(st, i, v);
	return rc == SQLITE_OK ? 0 : sqb_err(rc);
}

/* Records one state transition, with the replica that wrote it; fence 0
 * means none (as on postgres). */
int sqb_event_add(sqb_conn_t *c, const char *order_id, const char *event,
                  int64_t fence, int64_t now)
{
	const sqb_param_t p[] = {SQB_TEXT(order_id), SQB_TEXT(event),
	                         SQB_INT(fence), SQB_INT(now),
	                         SQB_TEXT(c->replica)};
	int rc = sqb_exec(c, SQB_EVENT_INSERT,
	                  "INSERT INTO order_events (order_id, event, fence,"
	                  " at, replica) VALUES (?1, ?2, ?3, ?4, ?5)",
	                  p, SQB_NPARAMS(p));
	return rc < 0 ? rc : 0;
}

/* Takes the next value of the fence sequence shared by leases and locks. */
int sqb_next_fence(sqb_conn_t *c, int64_t *ret_fence)
{
	sqlite3_stmt *st;
	int rc = sqb_row(c, SQB_NEXT_FENCE,
	                 "UPDATE counters SET value = value + 1"
	                 " WHERE name = 'fence' RETURNING value",
	                 NULL, 0, &st);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return OD_EINTERNAL;
	*ret_fence = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

static int sqb_open(const char *uri, const store_options_t *opt, void **ret)
{
	if (strncmp(uri, "sqlite:", 7) != 0)
		return OD_ECONFIG;
	sqb_store_t *s;
	int rc = sqb_store_open(uri + 7, opt, &s);
	if (rc < 0)
		return rc;
	rc = sqb_failures_backfill(s);
	if (rc < 0) {
		sqb_store_free(s);
		return rc;
	}
	*ret = s;
	return 0;
}

static void sqb_free(void *b)
{
	sqb_store_free(b);
}

static int sqb_ping(void *b)
{
	sqb_store_t *s = b;
	sqb_conn_t *c = sqb_reader_get(s);
	sqlite3_stmt *st;
	int rc = sqb_stmt(c, SQB_PING, "SELECT 1", &st);
	if (rc == 0) {
		rc = sqb_step(st);
		sqlite3_reset(st);
	}
	sqb_reader_put(s, c);
	return rc < 0 ? rc : 0;
}

/* A local file has no client-side deadline (docs/design.md): busy_timeout
 * bounds the lock waits, and nothing else waits on another party. */
static void sqb_counters(void *b, store_counters_t *ret)
{
	sqb_store_t *s = b;
	ret->resets = s->resets;
	ret->deadline_exceeded = 0;
}

const store_backend_t store_sqlite_backend = {
    .name = "sqlite",
    .open = sqb_open,
    .free = sqb_free,
    .ping = sqb_ping,
    .counters = sqb_counters,
    .submit = sqb_submit,
    .order_get = sqb_order_get,
    .order_fence = sqb_order_fence,
    .orders_terminal = sqb_orders_terminal,
    .order_list = sqb_order_list,
    .order_requeue = sqb_order_requeue,
    .order_cancel = sqb_order_cancel,
    .failures_list = sqb_failures_list,
    .failures_requeue = sqb_failures_requeue,
    .stats = sqb_stats,
    .product_set = sqb_product_set,
    .product_get = sqb_product_get,
    .product_list = sqb_product_list,
    .claim = sqb_claim,
    .process = sqb_process,
    .take = sqb_take,
    .finish = sqb_finish,
    .renew = sqb_renew,
    .retry = sqb_retry,
    .release = sqb_release,
    .reap = sqb_reap,
    .lock_acquire = sqb_lock_acquire,
    .lock_renew = sqb_lock_renew,
    .lock_release = sqb_lock_release,
    .lock_get = sqb_lock_get,
    .replica_beat = sqb_replica_beat,
    .replicas_list = sqb_replicas_list,
    .order_history = sqb_order_history,
    .leases_by_owner = sqb_leases_by_owner,
    .outbox_enable = sqb_outbox_enable,
    .notify_claim = sqb_notify_claim,
    .notify_delivered = sqb_notify_delivered,
    .notify_retry = sqb_notify_retry,
    .notify_release = sqb_notify_release,
    .notify_get = sqb_notify_get,
    .notify_list = sqb_notify_list,
    .notify_by_order = sqb_notify_by_order,
    .notify_redeliver = sqb_notify_redeliver,
    .notify_prune = sqb_notify_prune,
    .notify_stats = sqb_notify_stats,
    .verify = sqb_verify,
};
