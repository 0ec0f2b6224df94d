/*
 * api_notifications: the outbox's routes. GET /v1/notifications lists
 * notifications by status with a cursor; POST
 * /v1/notifications/{id}/redeliver makes a dead or delivered one pending
 * again (attempts 0, due now, every endpoint again) and kicks this
 * replica's dispatcher. Both run on the handler pool (they call the store).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/api.h"
#include "http/query.h"
#include "store/store.h"
#include "util/err.h"
#include "util/timefmt.h"
#include "work/notifier.h"

#define LIST_LIMIT_MAX 1000
#define LIST_LIMIT_DEFAULT 100

/* A time, or JSON null when 0 (unset). New reference. */
static json_t *time_or_null(int64_t ms)
{
	char t[TIMEFMT_LEN];
	if (ms == 0)
		return json_null();
	timefmt_rfc3339(ms, t);
	return json_string(t);
}

json_t *api_notification_json(const store_notification_t *n)
{
	char id[STORE_NOTIFY_ID_MAX + 1];
	store_notify_id(n->seq, id);
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:s?}", "id",
	                 id, "type", n->type, "order_id", n->order.id, "status",
	                 store_notify_status_name(n->status), "attempts",
	                 n->attempts, "created_at", time_or_null(n->created_at),
	                 "next_attempt_at",
	                 n->status == NOTIFY_PENDING ? time_or_null(n->next_at)
	                                             : json_null(),
	                 "delivered_at", time_or_null(n->delivered_at),
	                 "last_error", n->last_error);
}

void api_notifications_list(http_req_t *r)
{
	const char *st = api_query(r, "status"), *cur = api_query(r, "cursor");
	notify_status_t status = NOTIFY_PENDING;
	int64_t limit = LIST_LIMIT_DEFAULT, after = 0;
	store_notification_t *v = NULL;
	size_t n = 0;
	bool more = false;

	if (st != NULL && store_notify_status_parse(st, &status) != 0) {
		api_error(r, 400, "invalid_request",
		          "status must be one of pending, delivered, dead");
		return;
	}
	if (api_query_int(r, "limit", 1, LIST_LIMIT_MAX, &limit) != 0)
		return;
	if (cur != NULL && query_cursor_seq_parse(QUERY_CURSOR_NOTIFICATIONS,
	                                          cur, &after) != 0) {
		api_error(r, 400, "invalid_request", "cursor is not valid");
		return;
	}
	int rc = store_notify_list(r->srv->deps.store, st ? (int)status : -1,
	                           after, (size_t)limit, &v, &n, &more);
	if (rc != 0) {
		api_store_error(r, rc);
		return;
	}
	json_t *arr = json_array(), *next = json_null();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, api_notification_json(&v[i]));
	if (more && n > 0) {
		char c[QUERY_CURSOR_LEN];
		query_cursor_seq_format(QUERY_CURSOR_NOTIFICATIONS,
		                        v[n - 1].seq, c);
		next = json_string(c);
	}
	store_notifications_free(v, n);
	api_json(
	    r, 200,
	    json_pack("{s:o, s:o}", "notifications", arr, "next_cursor", next));
}

void api_notifications_redeliver(http_req_t *r)
{
	int64_t seq = 0;
	store_notification_t n;
	if (api_refuse_draining(r))
		return;
	if (store_notify_id_parse(r->param, &seq) != 0) {
		api_error(r, 404, "not_found", "notification \"%s\" not found",
		          r->param);
		return;
	}
	if (r->body.len > 0) {
		json_t *body = NULL;
		static const char *const none[] = {NULL};
		if (api_body(r, &body) != 0)
			return;
		int bad = api_only_fields(r, body, none);
		json_decref(body);
		if (bad)
			return;
	}
	int rc = store_notify_redeliver(r->srv->deps.store, seq, &n);
	if (rc == OD_ESTATE) {
		api_error(r, 409, "conflict",
		          "notification \"%s\" is pending: it will be "
		          "delivered without being asked",
		          r->param);
		return;
	}
	if (rc == OD_ENOTFOUND) {
		api_error(r, 404, "not_found", "notification \"%s\" not found",
		          r->param);
		return;
	}
	if (rc != 0) {
		api_store_error(r, rc);
		return;
	}
	notifier_kick(r->srv->deps.notifier);
	api_json(r, 200, api_notification_json(&n));
	store_notifications_clear(&n, 1);
}
