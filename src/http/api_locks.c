/*
 * api_locks: the named-lock routes (leases with fencing tokens). An acquire
 * with wait_ms that finds the lock held suspends the connection and
 * registers a waiter that retries the acquire every tick until it is
 * granted or the deadline passes (then 409 lock_held with the holder).
 */
#include "http/api.h"

#include <string.h>

#include "util/clock.h"
#include "util/err.h"
#include "util/timefmt.h"

#define TTL_MIN 100
#define TTL_MAX 600000
#define WAIT_MS_MAX 30000
#define FENCE_MAX INT64_MAX

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

void api_locks_acquire(http_req_t *r)
{
	static const char *const fields[] = {"owner", "ttl_ms", "wait_ms",
	                                     NULL};
	json_t *body = NULL;
	int64_t wait_ms = 0;
	int rc;

	if (api_refuse_draining(r) || api_param(r, "lock name") != 0 ||
	    api_body(r, &body) != 0)
		return;
	if (api_only_fields(r, body, fields) != 0 ||
	    api_field_ident(r, body, "owner", r->owner) != 0 ||
	    api_field_int(r, body, "ttl_ms", TTL_MIN, TTL_MAX, false,
	                  &r->ttl_ms) != 0 ||
	    api_field_int(r, body, "wait_ms", 0, WAIT_MS_MAX, true, &wait_ms) !=
	        0)
		goto out;
	if (try_acquire(r, wait_ms == 0))
		goto out;
	r->deadline_mono_ms = clock_mono_ms() + wait_ms;
	http_server_suspend(r);
	rc = waiters_add(r->srv->waiters, r, api_locks_wait_poll, false);
	if (rc != 0) {
		api_unavailable(r, rc == OD_EBUSY ? "too many waiting requests"
		                                  : "server is shutting down");
		http_server_resume(r);
	}
out:
	json_decref(body);
}

void api_locks_renew(http_req_t *r)
{
	static const char *const fields[] = {"owner", "fence", "ttl_ms", NULL};
	json_t *body = NULL;
	store_lock_t l;
	int64_t fence = 0;
	int rc;

	if (api_param(r, "lock name") != 0 || api_body(r, &body) != 0)
		return;
	if (api_only_fields(r, body, fields) != 0 ||
	    api_field_ident(r, body, "owner", r->owner) != 0 ||
	    api_field_int(r, body, "fence", 0, FENCE_MAX, false, &fence) != 0 ||
	    api_field_int(r, body, "ttl_ms", TTL_MIN, TTL_MAX, false,
	                  &r->ttl_ms) != 0)
		goto out;
	memset(&l, 0, sizeof(l));
	rc = store_lock_renew(r->srv->deps.store, r->param, r->owner, fence,
	                      r->ttl_ms, &l);
	if (rc != 0)
		api_store_error(r, rc);
	else
		api_json(r, 200, lock_json(&l));
out:
	json_decref(body);
}

void api_locks_release(http_req_t *r)
{
	static const char *const fields[] = {"owner", "fence", NULL};
	json_t *body = NULL;
	int64_t fence = 0;
	int rc;

	if (api_param(r, "lock name") != 0 || api_body(r, &body) != 0)
		return;
	if (api_only_fields(r, body, fields) != 0 ||
	    api_field_ident(r, body, "owner", r->owner) != 0 ||
	    api_field_int(r, body, "fence", 0, FENCE_MAX, false, &fence) != 0)
		goto out;
	rc = store_lock_release(r->srv->deps.store, r->param, r->owner, fence);
	if (rc != 0)
		api_store_error(r, rc);
	else
		api_no_content(r);
out:
	json_decref(body);
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
