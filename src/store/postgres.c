/*
 * postgres: the PostgreSQL store backend (libpq). Implements store.h over
 * a bounded connection pool (postgres_pool.c) with the versioned schema of
 * postgres_schema.c. This file holds the backend table, open, free and
 * ping, and the helpers the other files share (array parameters, column
 * reads, the order row). The operations live by noun, each file with the
 * statements it runs, defined beside the code that runs them and prepared
 * per connection on first use by postgres_pool.c (or sent unnamed, behind a
 * transaction pooler):
 * postgres_order.c (submit, order reads, requeue, cancel, stats),
 * postgres_lease.c (claim, retry, release, reap), postgres_process.c
 * (process, reserve, take),
 * postgres_product.c, postgres_lock.c (named locks), postgres_replica.c
 * (replica heartbeats), postgres_failure.c (dead-letter groups),
 * postgres_notify.c (the outbox of notifications) and postgres_verify.c
 * (the audit). The SQLite
 * backend has the same files under the same names.
 *
 * Time and fences: see postgres_int.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "store/postgres_schema.h"
#include "store/store_backend.h"
#include "util/err.h"

/* ---- helpers shared by the operation files ---- */

/* Room for n more bytes plus the closing brace; a zeroed array gets its
 * buffer (no cap: a batch's size is bounded by the caller) here. */
static int array_reserve(pgb_array_t *a, size_t n)
{
	if (!a->b.data)
		buf_init(&a->b, SIZE_MAX);
	return buf_reserve(&a->b, n + 1) < 0 ? -ENOMEM : 0;
}

int pgb_array_add(pgb_array_t *a, const char *elem)
{
	size_t len = strlen(elem);
	/* Worst case every byte escaped, plus quotes and comma: reserved at
	 * once, so none of the appends below can fail. */
	if (array_reserve(a, 2 * len + 3) < 0)
		return -ENOMEM;
	buf_append(&a->b, a->n ? ",\"" : "{\"", 2);
	for (const char *p = elem, *run = elem;; p++) {
		if (*p != '"' && *p != '\\' && *p != '\0')
			continue;
		buf_append(&a->b, run, (size_t)(p - run));
		if (*p == '\0')
			break;
		buf_append(&a->b, "\\", 1);
		run = p; /* the escaped byte starts the next run */
	}
	buf_append(&a->b, "\"", 1);
	a->n++;
	return 0;
}

int pgb_array_add_i64(pgb_array_t *a, int64_t v)
{
	char buf[24];
	snprintf(buf, sizeof buf, "%lld", (long long)v);
	return pgb_array_add(a, buf);
}

const char *pgb_array_text(pgb_array_t *a)
{
	if (array_reserve(a, 2) < 0)
		return NULL;
	if (a->n == 0) {
		memcpy(a->b.data, "{}", 3);
		return a->b.data;
	}
	/* The closing brace goes past len (into the room array_reserve
	 * keeps), so adding goes on. */
	a->b.data[a->b.len] = '}';
	a->b.data[a->b.len + 1] = '\0';
	return a->b.data;
}

void pgb_array_free(pgb_array_t *a)
{
	buf_free(&a->b);
	a->n = 0;
}

bool pgb_get_i64(const PGresult *res, int row, int col, int64_t *ret)
{
	if (PQgetisnull(res, row, col)) {
		*ret = 0;
		return true;
	}
	const char *s = PQgetvalue(res, row, col);
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end != '\0')
		return false;
	*ret = v;
	return true;
}

bool pgb_get_str(const PGresult *res, int row, int col, char *dst, size_t cap)
{
	const char *s = PQgetvalue(res, row, col);
	size_t len = strlen(s);
	if (len >= cap)
		return false;
	memcpy(dst, s, len + 1);
	return true;
}

int pgb_conn(pgb_store_t *b, pgc_t **ret)
{
	return pgp_get(b->pool, pgp_wait_ms(b->pool), ret);
}

int pgb_query(pgb_store_t *b, const pgp_stmt_t *stmt, const char *const *p,
              pgb_outcome_t lost, PGresult **ret_res)
{
	pgc_t *c;
	*ret_res = NULL;
	int rc = pgb_conn(b, &c);
	if (rc < 0)
		return rc;
	rc = pgc_exec(c, stmt, p, ret_res);
	if (rc < 0 && lost == PGB_LOST_UNKNOWN && c->lost)
		rc = OD_EUNKNOWN;
	pgp_put(b->pool, c);
	return rc;
}

void pgb_fmt_i64(char *buf, size_t cap, int64_t v)
{
	snprintf(buf, cap, "%lld", (long long)v);
}

int pgb_row_order(const PGresult *res, int row, order_t *ret)
{
	order_t o;
	memset(&o, 0, sizeof o);
	int64_t attempts;
	int rc = OD_EINTERNAL;
	if (!pgb_get_i64(res, row, 0, &o.seq) ||
	    !pgb_get_str(res, row, 1, o.id, sizeof o.id) ||
	    !pgb_get_str(res, row, 2, o.customer, sizeof o.customer) ||
	    order_status_parse(PQgetvalue(res, row, 5), &o.status) < 0 ||
	    !pgb_get_i64(res, row, 6, &attempts) ||
	    !pgb_get_i64(res, row, 8, &o.created_at) ||
	    !pgb_get_i64(res, row, 9, &o.updated_at) ||
	    !pgb_get_i64(res, row, 10, &o.finished_at))
		goto fail;
	o.attempts = (int)attempts;
	rc = order_items_from_text(PQgetvalue(res, row, 3), &o);
	if (rc < 0)
		goto fail;
	rc = -ENOMEM;
	o.metadata = strdup(PQgetvalue(res, row, 4));
	if (!o.metadata)
		goto fail;
	if (!PQgetisnull(res, row, 7) &&
	    order_set_reason(&o, PQgetvalue(res, row, 7)) < 0)
		goto fail;
	*ret = o;
	return 0;
fail:
	order_clear(&o);
	return rc < 0 ? rc : OD_EINTERNAL;
}

/* ---- open, free, ping ---- */

static int pgb_open(const char *uri, const store_options_t *opt, void **ret)
{
	pgb_store_t *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	pgb_mark_init(&b->claim_mark);
	pgb_mark_init(&b->reap_mark);
	if (opt && opt->replica_id)
		snprintf(b->replica, sizeof b->replica, "%s", opt->replica_id);
	int rc = pgp_new(uri, opt, &b->pool);
	if (rc < 0)
		goto fail_pool;
	pgc_t *c;
	rc = pgb_conn(b, &c);
	if (rc < 0)
		goto fail_conn;
	int version;
	/* Not a request's call: an index build may take longer than a
	 * request may wait. Bounded all the same, by the server's own
	 * statement_timeout plus the connect timeout. */
	pgc_extend(c, pgp_wait_ms(b->pool));
	rc = pgs_migrate(c, &version);
	pgp_put(b->pool, c);
	if (rc < 0)
		goto fail_conn;
	rc = pgb_failures_backfill(b);
	if (rc < 0)
		goto fail_conn;
	*ret = b;
	return 0;
fail_conn:
	pgp_free(b->pool);
fail_pool:
	pgb_mark_destroy(&b->claim_mark);
	pgb_mark_destroy(&b->reap_mark);
	free(b);
	return rc;
}

static void pgb_free(void *h)
{
	pgb_store_t *b = h;
	if (!b)
		return;
	pgp_free(b->pool);
	pgb_mark_destroy(&b->claim_mark);
	pgb_mark_destroy(&b->reap_mark);
	free(b);
}

static int pgb_ping(void *h)
{
	pgb_store_t *b = h;
	pgc_t *c;
	int rc = pgp_get(b->pool, 1000, &c);
	if (rc < 0)
		return rc;
	rc = pgc_cmd(c, "SELECT 1");
	pgp_put(b->pool, c);
	return rc;
}

static void pgb_counters(void *h, store_counters_t *ret)
{
	pgb_store_t *b = h;
	ret->resets = pgp_resets(b->pool);
	ret->deadline_exceeded = pgp_deadline_hits(b->pool);
}

const store_backend_t store_postgres_backend = {
    .name = "postgres",
    .open = pgb_open,
    .free = pgb_free,
    .ping = pgb_ping,
    .counters = pgb_counters,
    .submit = pgb_submit,
    .order_get = pgb_order_get,
    .order_list = pgb_order_list,
    .order_requeue = pgb_order_requeue,
    .order_fence = pgb_order_fence,
    .orders_terminal = pgb_orders_terminal,
    .order_cancel = pgb_order_cancel,
    .failures_list = pgb_failures_list,
    .failures_requeue = pgb_failures_requeue,
    .stats = pgb_stats,
    .product_set = pgb_product_set,
    .product_get = pgb_product_get,
    .product_list = pgb_product_list,
    .claim = pgb_claim,
    .process = pgb_process,
    .take = pgb_take,
    .finish = pgb_finish,
    .renew = pgb_renew,
    .retry = pgb_retry,
    .release = pgb_release,
    .reap = pgb_reap,
    .lock_acquire = pgb_lock_acquire,
    .lock_renew = pgb_lock_renew,
    .lock_release = pgb_lock_release,
    .lock_get = pgb_lock_get,
    .replica_beat = pgb_replica_beat,
    .replicas_list = pgb_replicas_list,
    .order_history = pgb_order_history,
    .leases_by_owner = pgb_leases_by_owner,
    .outbox_enable = pgb_outbox_enable,
    .notify_claim = pgb_notify_claim,
    .notify_delivered = pgb_notify_delivered,
    .notify_retry = pgb_notify_retry,
    .notify_release = pgb_notify_release,
    .notify_get = pgb_notify_get,
    .notify_list = pgb_notify_list,
    .notify_by_order = pgb_notify_by_order,
    .notify_redeliver = pgb_notify_redeliver,
    .notify_prune = pgb_notify_prune,
    .notify_stats = pgb_notify_stats,
    .verify = pgb_verify,
};
