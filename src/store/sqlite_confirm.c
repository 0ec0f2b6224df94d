/*
 * sqlite_confirm: the confirm step's writes for the SQLite backend: the
 * outcome of a held order (complete, or reject and release its stock),
 * lease renewal while a confirm call is in flight, and the release of held
 * stock that retry and reap use when an order fails. Each write is
 * conditional on (id, fence, status = 'processing') on the one writer.
 */
#include <stdlib.h>

#include "core/state.h"
#include "store/sqlite_int.h"
#include "util/err.h"

int sqb_release_held(sqb_conn_t *c, const char *id, int64_t now)
{
	const sqb_param_t p[] = {SQB_TEXT(id), SQB_INT(now)};
	int rc = sqb_exec(c, SQB_HELD_RETURN,
	                  "UPDATE products SET stock = stock + (SELECT r.qty"
	                  " FROM reservations r WHERE r.order_id = ?1"
	                  " AND r.sku = products.sku), updated_at = ?2"
	                  " WHERE sku IN (SELECT sku FROM reservations"
	                  " WHERE order_id = ?1)",
	                  p, SQB_NPARAMS(p));
	if (rc < 0)
		return rc;
	rc = sqb_exec(c, SQB_HELD_DELETE,
	              "DELETE FROM reservations WHERE order_id = ?1", p, 1);
	return rc < 0 ? rc : 0;
}

/* Events complete (processing --> completed, the stock stays taken) and
 * reject (--> rejected, the stock returned). */
static int finish_one(sqb_conn_t *c, const store_finish_t *f, int64_t now,
                      bool *ret_fenced)
{
	const sqb_param_t p[] = {
	    SQB_TEXT(f->id), SQB_INT(f->fence),
	    SQB_TEXT(f->complete ? "completed" : "rejected"),
	    SQB_TEXT(f->complete ? NULL : f->reason), SQB_INT(now)};
	int rc = sqb_exec(c, SQB_FINISH,
	                  "UPDATE orders SET status = ?3, reason = ?4,"
	                  " finished_at = ?5, updated_at = ?5, held = 0,"
	                  " lease_owner = NULL, lease_until = 0"
	                  " WHERE id = ?1 AND fence = ?2 AND held = 1"
	                  " AND status = 'processing'",
	                  p, SQB_NPARAMS(p));
	if (rc < 0)
		return rc;
	*ret_fenced = rc == 0;
	if (rc == 0)
		return 0;
	rc = sqb_event_add(
	    c, f->id, state_event_name(f->complete ? EV_COMPLETE : EV_REJECT),
	    f->fence, now);
	if (rc == 0 && !f->complete)
		rc = sqb_release_held(c, f->id, now);
	return rc;
}

int sqb_finish(void *b, const store_finish_t *f, size_t n, bool *ret_fenced)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = finish_one(c, &f[i], now, &ret_fenced[i]);
	if (rc < 0) {
		sqb_write_rollback(s);
		return rc;
	}
	return sqb_write_commit(s);
}

int sqb_renew(void *b, const char *const *ids, const int64_t *fences, size_t n,
              int64_t lease_ms, int64_t *ret_until)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	/* Lazy: a renewal lost in a crash only shortens a lease that the
	 * crash ended anyway. */
	int rc = sqb_write_begin(s, SQB_LAZY, &c, &now);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const sqb_param_t p[] = {SQB_TEXT(ids[i]), SQB_INT(fences[i]),
		                         SQB_INT(now), SQB_INT(now + lease_ms)};
		rc = sqb_exec(c, SQB_RENEW,
		              "UPDATE orders SET lease_until = ?4"
		              " WHERE id = ?1 AND fence = ?2"
		              " AND status = 'processing' AND lease_until > ?3",
		              p, SQB_NPARAMS(p));
		if (rc >= 0) {
			ret_until[i] = rc == 1 ? now + lease_ms : 0;
			rc = 0;
		}
	}
	if (rc < 0) {
		sqb_write_rollback(s);
		return rc;
	}
	return sqb_write_commit(s);
}
