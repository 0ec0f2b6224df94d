/*
 * sqlite_lease: processing under leases for the SQLite backend: claim,
 * process, take (both at once), retry, release and reap. Every write about a
 * claimed order is conditional on (id, fence, status = 'processing'), inside
 * one BEGIN IMMEDIATE transaction on the writer; a write that matches no row
 * means the lease is no longer ours and nothing is written (G7).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/failure.h"
#include "core/state.h"
#include "store/sqlite_int.h"
#include "util/err.h"
#include "util/failpoint.h"

/* Claim order, (next_at, seq); sqb_claim keeps next_at in lease_until
 * while it sorts (RETURNING promises no row order). */
static int cmp_claim_due(const void *a, const void *b)
{
	const store_claim_t *x = a, *y = b;
	if (x->lease_until != y->lease_until)
		return x->lease_until > y->lease_until ? 1 : -1;
	return (x->order.seq > y->order.seq) - (x->order.seq < y->order.seq);
}

/* The claim on c's open write transaction: a fresh fence, then up to max
 * due orders into ret_claims (lease_until holds next_at, for
 * cmp_claim_due), each with a claim event when events is true. */
static int claim_rows(sqb_conn_t *c, const char *owner, int64_t lease_until,
                      int64_t now, size_t max, bool events,
                      store_claim_t *ret_claims, size_t *ret_n)
{
	sqlite3_stmt *st;
	size_t n = 0;
	int64_t fence = 0;
	*ret_n = 0;
	int rc = sqb_next_fence(c, &fence);
	if (rc < 0)
		return rc;
	/* Event claim: pending --> processing (core/state.c).
	 * IN (subquery LIMIT n) is safe here: the single writer serializes
	 * claims, so the subquery's rows cannot change under it. INDEXED BY
	 * pins the narrow partial index (without ANALYZE data the planner
	 * prefers orders_status and reads every candidate row from the
	 * table), and fails loudly at prepare time if it ever goes away. */
	rc = sqb_stmt(c, SQB_CLAIM,
	              "UPDATE orders SET status = 'processing',"
	              " attempts = attempts + 1, lease_owner = ?1,"
	              " lease_until = ?2, fence = ?3, updated_at = ?4"
	              " WHERE seq IN (SELECT seq FROM orders"
	              " INDEXED BY orders_due"
	              " WHERE status = 'pending' AND next_at <= ?4"
	              " ORDER BY next_at, seq LIMIT ?5)"
	              " RETURNING " SQB_ORDER_COLS ", next_at",
	              &st);
	if (rc < 0)
		return rc;
	if ((rc = sqb_bind_text(st, 1, owner)) < 0 ||
	    (rc = sqb_bind_int(st, 2, lease_until)) < 0 ||
	    (rc = sqb_bind_int(st, 3, fence)) < 0 ||
	    (rc = sqb_bind_int(st, 4, now)) < 0 ||
	    (rc = sqb_bind_int(st, 5, (int64_t)max)) < 0)
		goto reset;
	while ((rc = sqb_step(st)) == 1) {
		if (n == max) {
			rc = OD_EINTERNAL;
			break;
		}
		store_claim_t *cl = &ret_claims[n];
		rc = sqb_row_order(st, &cl->order);
		if (rc < 0)
			break;
		cl->fence = fence;
		cl->lease_until = sqlite3_column_int64(st, SQB_N_ORDER_COLS);
		n++;
		if (events && (rc = sqb_event_add(c, cl->order.id,
		                                  state_event_name(EV_CLAIM),
		                                  fence, now)) < 0)
			break;
	}
reset:
	sqlite3_reset(st);
	*ret_n = n;
	return rc < 0 ? rc : 0;
}

int sqb_claim(void *b, const char *owner, int64_t lease_ms, size_t max,
              store_claim_t *ret_claims, size_t *ret_n)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	size_t n = 0;
	int rc = sqb_write_begin(s, SQB_LAZY, &c, &now);
	if (rc < 0)
		return rc;
	rc = claim_rows(c, owner, now + lease_ms, now, max, true, ret_claims,
	                &n);
	if (rc < 0)
		goto rollback;
	if (n == 0) {
		/* Nothing due: undo the fence and skip a durable commit. */
		sqb_write_rollback(s);
		*ret_n = 0;
		return 0;
	}
	rc = sqb_write_commit(s);
	if (rc < 0)
		goto clear;
	qsort(ret_claims, n, sizeof *ret_claims, cmp_claim_due);
	for (size_t i = 0; i < n; i++)
		ret_claims[i].lease_until = now + lease_ms;
	*ret_n = n;
	return 0;
rollback:
	sqb_write_rollback(s);
clear:
	store_claims_clear(ret_claims, n);
	return rc;
}

/* The conditional finishing write of a processed order. Events complete
 * (processing --> completed), reject (--> rejected) and, when the
 * backstop fired, fail (--> failed); see process_one. */
static int process_finish(sqb_conn_t *c, const store_claim_t *cl,
                          const char *status, const char *reason, int64_t now)
{
	/* A failed order gets its dead-letter group (store.h). */
	char fp[FAILURE_FP_LEN + 1];
	bool failed = strcmp(status, "failed") == 0;
	if (failed)
		failure_fingerprint(reason, fp);
	const sqb_param_t p[] = {
	    SQB_TEXT(cl->order.id), SQB_INT(cl->fence),
	    SQB_TEXT(status),       SQB_TEXT(reason),
	    SQB_INT(now),           SQB_TEXT(failed ? fp : NULL)};
	int rc = sqb_exec(c, SQB_PROCESS_FINISH,
	                  "UPDATE orders SET status = ?3, reason = ?4,"
	                  " finished_at = ?5, updated_at = ?5, held = 0,"
	                  " fingerprint = ?6,"
	                  " lease_owner = NULL, lease_until = 0"
	                  " WHERE id = ?1 AND fence = ?2"
	                  " AND status = 'processing'",
	                  p, SQB_NPARAMS(p));
	if (rc < 0)
		return rc;
	return rc == 1 ? 0 : OD_EINTERNAL;
}

/* What process_check found. */
enum {
	CLAIM_FENCED = 0,
	CLAIM_LIVE = 1,   /* ours, holding nothing: decide it */
	CLAIM_BREACH = 2, /* ours, with reservations it does not hold */
	CLAIM_HELD = 3,   /* ours, holding its stock from an earlier attempt */
};

/* CLAIM_LIVE when the order is still processing under cl->fence,
 * CLAIM_FENCED when not, CLAIM_HELD when it holds its stock (held and
 * reserved), CLAIM_BREACH when reservations and held disagree (the backstop
 * of G3, checked before the stock is looked at, as on postgres); or a
 * negative error. */
static int process_check(sqb_conn_t *c, const store_claim_t *cl)
{
	const sqb_param_t p[] = {SQB_TEXT(cl->order.id), SQB_INT(cl->fence)};
	sqlite3_stmt *st;
	int rc = sqb_row(c, SQB_PROCESS_CHECK,
	                 "SELECT EXISTS (SELECT 1 FROM reservations"
	                 " WHERE order_id = ?1), held FROM orders"
	                 " WHERE id = ?1 AND fence = ?2"
	                 " AND status = 'processing'",
	                 p, SQB_NPARAMS(p), &st);
	if (rc == 1) {
		bool reserved = sqlite3_column_int(st, 0) != 0;
		bool held = sqlite3_column_int(st, 1) != 0;
		rc = reserved != held ? CLAIM_BREACH
		     : held           ? CLAIM_HELD
		                      : CLAIM_LIVE;
		sqlite3_reset(st);
	}
	return rc;
}

/* Marks a freshly reserved order held; it stays processing under its
 * lease. Event reserve (processing --> processing). */
static int process_hold(sqb_conn_t *c, const store_claim_t *cl, int64_t now)
{
	const sqb_param_t p[] = {SQB_TEXT(cl->order.id), SQB_INT(cl->fence),
	                         SQB_INT(now)};
	int rc = sqb_exec(c, SQB_PROCESS_HOLD,
	                  "UPDATE orders SET held = 1, updated_at = ?3"
	                  " WHERE id = ?1 AND fence = ?2"
	                  " AND status = 'processing'",
	                  p, SQB_NPARAMS(p));
	if (rc < 0)
		return rc;
	if (rc != 1)
		return OD_EINTERNAL;
	return sqb_event_add(c, cl->order.id, state_event_name(EV_RESERVE),
	                     cl->fence, now);
}

/* Decides the outcome: NULL (all in stock) or the rejection reason. */
static int process_decide(sqb_conn_t *c, const order_t *o,
                          const char **ret_reason)
{
	sqlite3_stmt *st;
	int rc = sqb_stmt(c, SQB_PROCESS_STOCK,
	                  "SELECT stock FROM products WHERE sku = ?1", &st);
	if (rc < 0)
		return rc;
	bool unknown = false, shortage = false;
	for (size_t i = 0; i < o->n_items; i++) {
		sqlite3_reset(st);
		if ((rc = sqb_bind_text(st, 1, o->items[i].sku)) < 0)
			break;
		rc = sqb_step(st);
		if (rc < 0)
			break;
		if (rc == 0)
			unknown = true;
		else if (sqlite3_column_int64(st, 0) < o->items[i].qty)
			shortage = true;
	}
	sqlite3_reset(st);
	if (rc < 0)
		return rc;
	*ret_reason = unknown    ? "unknown_sku"
	              : shortage ? "insufficient_stock"
	                         : NULL;
	return 0;
}

/* Takes the stock and writes the reservation for every item: 0 or a
 * negative error. Both checks here are backstops of what process_check and
 * process_decide saw in the same transaction on the one writer, so stock
 * short or a reservation there already is impossible: OD_EINTERNAL (the
 * unique key makes a second reservation fail; workers.c then isolates the
 * batch's orders). */
static int process_reserve(sqb_conn_t *c, const store_claim_t *cl, int64_t now)
{
	const order_t *o = &cl->order;
	for (size_t i = 0; i < o->n_items; i++) {
		const sqb_param_t take[] = {SQB_TEXT(o->items[i].sku),
		                            SQB_INT(o->items[i].qty),
		                            SQB_INT(now)};
		int rc = sqb_exec(c, SQB_PROCESS_TAKE,
		                  "UPDATE products SET stock = stock - ?2,"
		                  " updated_at = ?3"
		                  " WHERE sku = ?1 AND stock >= ?2",
		                  take, SQB_NPARAMS(take));
		if (rc < 0)
			return rc;
		if (rc != 1)
			return OD_EINTERNAL;
		const sqb_param_t res[] = {
		    SQB_TEXT(o->id), SQB_TEXT(o->items[i].sku),
		    SQB_INT(o->items[i].qty), SQB_INT(cl->fence), SQB_INT(now)};
		rc = sqb_exec(c, SQB_RESERVATION_INSERT,
		              "INSERT INTO reservations (order_id, sku, qty,"
		              " fence, created_at)"
		              " VALUES (?1, ?2, ?3, ?4, ?5)",
		              res, SQB_NPARAMS(res));
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* What each outcome writes: the status and the event (core/state.c). */
static const char *const outcome_status[] = {
    [PROCESS_COMPLETED] = "completed",
    [PROCESS_REJECTED] = "rejected",
    [PROCESS_BREACH] = "failed",
};
static const order_event_t outcome_event[] = {
    [PROCESS_COMPLETED] = EV_COMPLETE,
    [PROCESS_REJECTED] = EV_REJECT,
    [PROCESS_BREACH] = EV_FAIL,
};

/* One order of a batch. Its writes need no savepoint of their own: on an
 * error the caller rolls the whole transaction back. */
static int process_one(sqb_conn_t *c, int64_t now, bool hold,
                       const store_claim_t *cl, store_process_result_t *r)
{
	int rc;
	int found = process_check(c, cl);
	if (found <= CLAIM_FENCED) {
		r->outcome = PROCESS_FENCED;
		r->reason = NULL;
		return found < 0 ? found : 0;
	}
	/* An order that holds a reservation it should not is neither
	 * reserved again nor claimed again: it is failed. */
	process_outcome_t outcome = PROCESS_BREACH;
	const char *reason = "duplicate_reservation";
	if (found == CLAIM_HELD) {
		/* Its stock is taken: confirm it again, or (confirm step
		 * off) complete it as it stands. */
		reason = NULL;
		outcome = hold ? PROCESS_RESERVED : PROCESS_COMPLETED;
		if (hold)
			goto done;
	} else if (found == CLAIM_LIVE) {
		rc = process_decide(c, &cl->order, &reason);
		if (rc < 0)
			return rc;
		outcome = reason ? PROCESS_REJECTED
		          : hold ? PROCESS_RESERVED
		                 : PROCESS_COMPLETED;
		if (!reason && (rc = process_reserve(c, cl, now)) < 0)
			return rc;
		if (outcome == PROCESS_RESERVED) {
			if ((rc = process_hold(c, cl, now)) < 0)
				return rc;
			goto done;
		}
	}
	rc = process_finish(c, cl, outcome_status[outcome], reason, now);
	if (rc < 0)
		return rc;
	rc = sqb_event_add(c, cl->order.id,
	                   state_event_name(outcome_event[outcome]), cl->fence,
	                   now);
	if (rc < 0)
		return rc;
done:
	r->outcome = outcome;
	r->reason = reason;
	return 0;
}

int sqb_process(void *b, const store_claim_t *claims, size_t n, bool hold,
                store_process_result_t *results)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		rc = process_one(c, now, hold, &claims[i], &results[i]);
		if (rc < 0) {
			sqb_write_rollback(s);
			return rc;
		}
	}
	return sqb_write_commit(s);
}

/* The claim and the processing in one durable transaction on the one
 * writer: the lease the claim writes is never seen outside it, and the
 * rows are finished before COMMIT (no claim event: the outcome's event
 * carries the fence). */
int sqb_take(void *b, const char *owner, size_t max, store_claim_t *claims,
             size_t *ret_n, store_process_result_t *results)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	size_t n = 0;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	rc = claim_rows(c, owner, now, now, max, false, claims, &n);
	if (rc < 0)
		goto rollback;
	if (n == 0) {
		sqb_write_rollback(s);
		return 0;
	}
	qsort(claims, n, sizeof *claims, cmp_claim_due);
	for (size_t i = 0; i < n && rc == 0; i++) {
		claims[i].lease_until = 0;
		rc = process_one(c, now, false, &claims[i], &results[i]);
	}
	if (rc == 0 && failpoint_hit("fail_take"))
		rc = OD_ESTORE;
	if (rc < 0)
		goto rollback;
	if ((rc = sqb_write_commit(s)) < 0 && rc != OD_EUNKNOWN)
		goto clear;
	*ret_n = n;
	return rc;
rollback:
	sqb_write_rollback(s);
clear:
	store_claims_clear(claims, n);
	return rc;
}

int sqb_retry(void *b, const char *id, int64_t fence, int max_attempts,
              int64_t delay_ms, const char *error, bool *ret_failed)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	char fp[FAILURE_FP_LEN + 1];
	failure_fingerprint(error, fp);
	const sqb_param_t p[] = {SQB_TEXT(id),          SQB_INT(fence),
	                         SQB_INT(max_attempts), SQB_TEXT(error),
	                         SQB_INT(now),          SQB_INT(delay_ms),
	                         SQB_TEXT(fp)};
	sqlite3_stmt *st;
	bool failed = false;
	/* Event retry (processing --> pending), or fail (--> failed) when
	 * the attempts are used up. */
	rc = sqb_row(c, SQB_RETRY,
	             "UPDATE orders SET"
	             " status = CASE WHEN attempts < ?3 THEN 'pending'"
	             " ELSE 'failed' END,"
	             " lease_owner = NULL, lease_until = 0,"
	             " finished_at = CASE WHEN attempts < ?3 THEN 0"
	             " ELSE ?5 END,"
	             " held = CASE WHEN attempts < ?3 THEN held ELSE 0 END,"
	             " fingerprint = CASE WHEN attempts < ?3 THEN NULL"
	             " ELSE ?7 END,"
	             " reason = ?4, next_at = ?5 + ?6, updated_at = ?5"
	             " WHERE id = ?1 AND fence = ?2"
	             " AND status = 'processing' RETURNING status",
	             p, SQB_NPARAMS(p), &st);
	if (rc == 1) {
		const unsigned char *status = sqlite3_column_text(st, 0);
		failed = status && strcmp((const char *)status, "failed") == 0;
		if (sqb_step(st) < 0)
			rc = OD_ESTORE;
		sqlite3_reset(st);
	}
	if (rc == 0)
		rc = OD_EFENCE;
	if (rc < 0)
		goto rollback;
	rc = sqb_event_add(c, id, state_event_name(failed ? EV_FAIL : EV_RETRY),
	                   fence, now);
	if (rc == 0 && failed)
		rc = sqb_release_held(c, id, now);
	if (rc < 0)
		goto rollback;
	rc = sqb_write_commit(s);
	if (rc < 0)
		return rc;
	if (ret_failed)
		*ret_failed = failed;
	return 0;
rollback:
	sqb_write_rollback(s);
	return rc;
}

int sqb_release(void *b, const char *id, int64_t fence)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	int rc = sqb_write_begin(s, SQB_DURABLE, &c, &now);
	if (rc < 0)
		return rc;
	const sqb_param_t p[] = {SQB_TEXT(id), SQB_INT(fence), SQB_INT(now)};
	/* Event release: processing --> pending, the attempt not counted. */
	rc = sqb_exec(c, SQB_RELEASE,
	              "UPDATE orders SET status = 'pending',"
	              " attempts = MAX(attempts - 1, 0), next_at = ?3,"
	              " lease_owner = NULL, lease_until = 0,"
	              " updated_at = ?3 WHERE id = ?1 AND fence = ?2"
	              " AND status = 'processing'",
	              p, SQB_NPARAMS(p));
	if (rc >= 0 && rc != 1)
		rc = OD_EFENCE;
	if (rc < 0)
		goto rollback;
	rc = sqb_event_add(c, id, state_event_name(EV_RELEASE), fence, now);
	if (rc < 0)
		goto rollback;
	return sqb_write_commit(s);
rollback:
	sqb_write_rollback(s);
	return rc;
}

int sqb_reap(void *b, int max_attempts, size_t limit, size_t *ret_n)
{
	sqb_store_t *s = b;
	sqb_conn_t *c;
	int64_t now;
	size_t n = 0;
	char fp[FAILURE_FP_LEN + 1];
	failure_fingerprint("lease expired", fp);
	int rc = sqb_write_begin(s, SQB_LAZY, &c, &now);
	if (rc < 0)
		return rc;
	sqlite3_stmt *st;
	/* Event expire (processing --> pending), or fail (--> failed) when
	 * the attempts are used up. */
	rc = sqb_stmt(c, SQB_REAP,
	              "UPDATE orders SET"
	              " status = CASE WHEN attempts >= ?1 THEN 'failed'"
	              " ELSE 'pending' END,"
	              " reason = CASE WHEN attempts >= ?1"
	              " THEN 'lease expired' ELSE reason END,"
	              " fingerprint = CASE WHEN attempts >= ?1 THEN ?4"
	              " ELSE NULL END,"
	              " finished_at = CASE WHEN attempts >= ?1 THEN ?2"
	              " ELSE 0 END, lease_owner = NULL, lease_until = 0,"
	              " held = CASE WHEN attempts >= ?1 THEN 0 ELSE held END,"
	              " next_at = ?2, updated_at = ?2"
	              " WHERE seq IN (SELECT seq FROM orders"
	              " INDEXED BY orders_leased"
	              " WHERE status = 'processing' AND lease_until <= ?2"
	              " ORDER BY lease_until LIMIT ?3)"
	              " RETURNING id, fence, status",
	              &st);
	if (rc < 0)
		goto end;
	if ((rc = sqb_bind_int(st, 1, max_attempts)) < 0 ||
	    (rc = sqb_bind_int(st, 2, now)) < 0 ||
	    (rc = sqb_bind_int(st, 3, (int64_t)limit)) < 0 ||
	    (rc = sqb_bind_text(st, 4, fp)) < 0)
		goto reset;
	while ((rc = sqb_step(st)) == 1) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		const char *status = (const char *)sqlite3_column_text(st, 2);
		if (!id || !status) {
			/* NOT NULL columns: the file is damaged. */
			rc = OD_EINTERNAL;
			break;
		}
		bool failed = strcmp(status, "failed") == 0;
		rc = sqb_event_add(
		    c, id, state_event_name(failed ? EV_FAIL : EV_EXPIRE),
		    sqlite3_column_int64(st, 1), now);
		if (rc == 0 && failed)
			rc = sqb_release_held(c, id, now);
		if (rc < 0)
			break;
		n++;
	}
reset:
	sqlite3_reset(st);
end:
	rc = sqb_write_end(s, rc, n);
	if (rc < 0)
		return rc;
	*ret_n = n;
	return 0;
}
