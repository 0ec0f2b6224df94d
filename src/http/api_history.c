/*
 * api_history: GET /v1/orders/{id}/history, an order's audit trail for
 * people (the dashboard's lookup, orderctl users with curl): its
 * submission, then every transition the store recorded (order_events),
 * oldest first, with the fence of the lease it happened under and the
 * replica that recorded it; then the notifications its terminal
 * transitions wrote to the outbox, with their delivery state.
 */
#include "http/api.h"

#include <stdlib.h>
#include <string.h>

#include "util/timefmt.h"

#define HISTORY_NOTIFICATIONS_MAX 100

static json_t *time_json(int64_t ms)
{
	char t[TIMEFMT_LEN];
	timefmt_rfc3339(ms, t);
	return json_string(t);
}

/* One event. replica "" or NULL: not recorded (the submission, rows
 * from before migration 7). attempt is the claim's ordinal (claims count
 * attempts), 0 for none; reason is the order's, on its final terminal
 * event. */
static json_t *event_json(const char *name, int64_t at, int64_t fence,
                          const char *replica, int64_t attempt,
                          const char *reason)
{
	return json_pack(
	    "{s:o,s:s,s:o,s:o,s:o,s:o}", "at", time_json(at), "event", name,
	    "fence", fence > 0 ? json_integer(fence) : json_null(), "replica",
	    replica && *replica ? json_string(replica) : json_null(), "attempt",
	    attempt > 0 ? json_integer(attempt) : json_null(), "reason",
	    reason ? json_string(reason) : json_null());
}

static bool terminal_event(const char *name)
{
	return strcmp(name, "complete") == 0 || strcmp(name, "reject") == 0 ||
	       strcmp(name, "fail") == 0 || strcmp(name, "cancel") == 0;
}

void api_orders_history(http_req_t *r)
{
	order_t o = {0};
	store_event_t *ev = NULL;
	store_notification_t *nv = NULL;
	size_t n = 0, n_notes = 0;
	bool more_notes = false;
	int rc;

	if (api_param(r, "order id") != 0)
		return;
	rc = store_order_get(r->srv->deps.store, r->param, &o);
	if (rc == 0) {
		ev = malloc(STORE_HISTORY_MAX * sizeof *ev);
		if (ev == NULL) {
			api_error(r, 500, "internal", "out of memory");
			goto out;
		}
		rc = store_order_history(r->srv->deps.store, r->param, ev,
		                         STORE_HISTORY_MAX, &n);
	}
	if (rc == 0)
		rc = store_notify_by_order(r->srv->deps.store, r->param,
		                           HISTORY_NOTIFICATIONS_MAX, &nv,
		                           &n_notes, &more_notes);
	if (rc != 0) {
		api_store_error(r, rc);
		goto out;
	}
	size_t shown = n < STORE_HISTORY_MAX ? n : STORE_HISTORY_MAX;
	json_t *events = json_array();
	json_array_append_new(
	    events, event_json("submit", o.created_at, 0, NULL, 0, NULL));
	int64_t claims = 0;
	size_t last_terminal = shown;
	for (size_t i = 0; i < shown; i++)
		if (terminal_event(ev[i].event))
			last_terminal = i;
	for (size_t i = 0; i < shown; i++) {
		bool claim = strcmp(ev[i].event, "claim") == 0;
		if (claim)
			claims++;
		json_array_append_new(
		    events, event_json(ev[i].event, ev[i].at, ev[i].fence,
		                       ev[i].replica, claim ? claims : 0,
		                       i == last_terminal &&
		                               order_status_terminal(o.status)
		                           ? o.reason
		                           : NULL));
	}
	json_t *notes = json_array();
	for (size_t i = 0; i < n_notes; i++)
		json_array_append_new(notes, api_notification_json(&nv[i]));
	api_json(r, 200,
	         json_pack("{s:s,s:o,s:o,s:b}", "id", o.id, "events", events,
	                   "notifications", notes, "truncated",
	                   n > shown || more_notes));
out:
	store_notifications_free(nv, n_notes);
	free(ev);
	order_clear(&o);
}
