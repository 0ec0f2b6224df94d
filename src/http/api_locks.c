/*
 * api_locks: the named-lock routes (leases with fencing tokens). An acquire
 * with wait_ms that finds the lock held suspends the connection and
 * registers a waiter that retries the acquire every tick until it is
 * granted or the deadline passes (then 409 lock_held with the holder).
 */
#include "http/api.h"
#include "http/lock_body.h"

#include <string.h>

#include "util/clock.h"
#include "util/err.h"
#include "util/timefmt.h"

static json_t *lock_json(const store_lock_t *l)
{
	char exp[TIMEFMT_LEN];

	timefmt_rfc3339(l->expires_at, exp);
	return json_pack("{s:s,s:s,s:I,s:s}", "name", l->name, "owner",
	                 l->owner, "fence", (json_int_t)l->fence, "expires_at",
	                 exp);
}

static void lock_held(http_req_t *r, const store_lock_t *holder)
{
	char exp[TIMEFMT_LEN];

	timefmt_rfc3339(holder->expires_at, exp);
	api_json(r, 409,
	         json_pack("{s:o,s:s,s:s}", "error",
	                   api_error_obj("lock_held", "lock is held"), "holder",
	                   holder->owner, "expires_at", exp));
}

/* Tries once; true when r->resp is set. */
static bool try_acquire(http_req_t *r, bool last)
{
	store_lock_t l;
	int rc;

	memset(&l, 0, sizeof(l));
	rc = store_lock_acquire(r->srv->deps.store, r->param, r->owner,
	                        r->ttl_ms, &l);
	if (rc == 0) {
		r->granted_fence = l.fence;
		api_json(r, 200, lock_json(&l));
		return true;
	}
	if (rc == OD_ELOCKHELD) {
		if (!last)
			return false;
		lock_held(r, &l);
		return true;
	}
	if (rc == OD_ESTORE && !last)
		return false;
	api_store_error(r, rc);
	return true;
}

static bool api_locks_wait_poll(http_req_t *r, bool deadline)
{
	return try_acquire(r, deadline);
}

/* Reads the body of a lock route; answers 400 itself and returns non-zero
 * on failure. */
static int lock_body(http_req_t *r, lock_body_kind_t kind, lock_body_t *ret)
{
	json_t *body = NULL;
	char msg[256];
	int rc;

	if (api_body(r, &body) != 0)
		return -1;
	rc = lock_body_decode(kind, body, ret, msg, sizeof msg);
	json_decref(body);
	if (rc != 0)
		api_error(r, 400, "invalid_request", "%s", msg);
	return rc;
}

void api_locks_acquire(http_req_t *r)
{
	lock_body_t b;
	int rc;

	if (api_refuse_draining(r) || api_param(r, "lock name") != 0 ||
	    lock_body(r, LOCK_BODY_ACQUIRE, &b) != 0)
		return;
	memcpy(r->owner, b.owner, sizeof b.owner);
	r->ttl_ms = b.ttl_ms;
	if (try_acquire(r, b.wait_ms == 0))
		return;
	r->deadline_mono_ms = clock_mono_ms() + b.wait_ms;
	http_server_suspend(r);
	rc = waiters_add(r->srv->waiters, r, api_locks_wait_poll, false);
	if (rc != 0) {
		api_unavailable(r, rc == OD_EBUSY ? "too many waiting requests"
		                                  : "server is shutting down");
		http_server_resume(r);
	}
}

void api_locks_renew(http_req_t *r)
{
	lock_body_t b;
	store_lock_t l;
	int rc;

	if (api_param(r, "lock name") != 0 ||
	    lock_body(r, LOCK_BODY_RENEW, &b) != 0)
		return;
	memcpy(r->owner, b.owner, sizeof b.owner);
	r->ttl_ms = b.ttl_ms;
	memset(&l, 0, sizeof(l));
	rc = store_lock_renew(r->srv->deps.store, r->param, r->owner, b.fence,
	                      r->ttl_ms, &l);
	if (rc != 0)
		api_store_error(r, rc);
	else
		api_json(r, 200, lock_json(&l));
}

void api_locks_release(http_req_t *r)
{
	lock_body_t b;
	int rc;

	if (api_param(r, "lock name") != 0 ||
	    lock_body(r, LOCK_BODY_RELEASE, &b) != 0)
		return;
	rc = store_lock_release(r->srv->deps.store, r->param, b.owner, b.fence);
	if (rc != 0)
		api_store_error(r, rc);
	else
		api_no_content(r);
}

void api_locks_get(http_req_t *r)
{
	store_lock_t l;
	json_t *j;
	int rc;

	if (api_param(r, "lock name") != 0)
		return;
	memset(&l, 0, sizeof(l));
	rc = store_lock_get(r->srv->deps.store, r->param, &l);
	if (rc == OD_ENOTFOUND) {
		api_error(r, 404, "not_found", "lock \"%s\" is free", r->param);
		return;
	}
	if (rc != 0) {
		api_store_error(r, rc);
		return;
	}
	/* "holder" as in the 409 lock_held answer, beside "owner". */
	j = lock_json(&l);
	json_object_set_new(j, "holder", json_string(l.owner));
	api_json(r, 200, j);
}
