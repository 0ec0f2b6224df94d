/*
 * api_ops: the operations routes: liveness, readiness, the Prometheus
 * exposition, the JSON stats summary and the alert states.
 *
 * Throughput in /v1/stats, both for this replica: submitted_per_s is the
 * 201s over the last 60 s (an alerts_window_t); processed_per_s comes
 * from the workers' counter orderd_orders_processed_total (completed +
 * rejected + failed), sampled on every stats call (and once at start), as
 * the rate against the oldest sample at most 60 s old; completed_per_s,
 * rejected_per_s and failed_per_s are the same per outcome (their sum is
 * processed_per_s). api_stats_json() builds the body; the /v1/events
 * stats tick reuses it.
 */
#include "http/api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/err.h"
#include "util/timefmt.h"

#define WINDOW_S 60
#define MAX_ALERTS 16

void api_ops_livez(http_req_t *r)
{
	api_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void api_ops_readyz(http_req_t *r)
{
	if (atomic_load(&r->srv->draining)) {
		api_unavailable(r, "server is draining");
		return;
	}
	if (atomic_load(&r->srv->unready)) {
		api_unavailable(r, "server is shutting down");
		return;
	}
	if (store_ping(r->srv->deps.store) != 0) {
		api_unavailable(r, "store is not reachable");
		return;
	}
	api_json(r, 200, json_pack("{s:s}", "status", "ready"));
}

void api_ops_metrics(http_req_t *r)
{
	char *text = metrics_render();

	if (text == NULL) {
		api_error(r, 500, "internal", "out of memory");
		return;
	}
	free(r->resp.body);
	r->resp.status = 200;
	r->resp.body = text;
	r->resp.len = strlen(text);
	r->resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static json_t *alert_json(const alert_state_t *a)
{
	json_t *since;

	if (a->since_ms > 0) {
		char t[TIMEFMT_LEN];
		timefmt_rfc3339(a->since_ms, t);
		since = json_string(t);
	} else {
		since = json_null();
	}
	return json_pack("{s:s,s:s,s:f,s:f,s:o}", "name", a->name, "state",
	                 a->firing ? "firing" : "inactive", "value", a->value,
	                 "threshold", a->threshold, "since", since);
}

static json_t *alerts_json(http_server_t *s, double *ret_error_rate,
                           double *ret_threshold)
{
	alert_state_t st[MAX_ALERTS];
	size_t n = 0;
	json_t *arr = json_array();

	if (s->deps.alerts != NULL)
		n = alerts_list(s->deps.alerts, st, MAX_ALERTS);
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, alert_json(&st[i]));
		if (ret_error_rate != NULL &&
		    st[i].id == ALERT_HIGH_ERROR_RATE) {
			*ret_error_rate = st[i].value;
			*ret_threshold = st[i].threshold;
		}
	}
	return arr;
}

void api_ops_alerts(http_req_t *r)
{
	api_json(r, 200,
	         json_pack("{s:o}", "alerts", alerts_json(r->srv, NULL, NULL)));
}

/* Records (now, done[3]) and returns each outcome's rate over <= 60 s. */
static void processed_rates(http_server_t *s, const int64_t done[3],
                            double rate[3])
{
	int64_t now = clock_mono_ms(), best_ms = 0;
	size_t best = 0;

	pthread_mutex_lock(&s->stats_mu);
	for (size_t i = 0; i < s->n_samples; i++) {
		int64_t age = now - s->sample_ms[i];
		if (age > 0 && age <= (WINDOW_S + 1) * 1000 &&
		    (best_ms == 0 || s->sample_ms[i] < best_ms)) {
			best_ms = s->sample_ms[i];
			best = i;
		}
	}
	for (size_t k = 0; k < 3; k++) {
		rate[k] = 0;
		if (best_ms != 0 && done[k] >= s->sample_done[best][k])
			rate[k] = (double)(done[k] - s->sample_done[best][k]) *
			          1000.0 / (double)(now - best_ms);
		s->sample_done[s->next_sample][k] = done[k];
	}
	s->sample_ms[s->next_sample] = now;
	s->next_sample = (s->next_sample + 1) % HTTP_STATS_SAMPLES;
	if (s->n_samples < HTTP_STATS_SAMPLES)
		s->n_samples++;
	pthread_mutex_unlock(&s->stats_mu);
}

static json_t *leases_json(http_server_t *s)
{
	store_lease_group_t g[STORE_LEASE_GROUPS_MAX];
	size_t n = 0;
	json_t *arr = json_array();

	if (store_leases_by_owner(s->deps.store, g, STORE_LEASE_GROUPS_MAX,
	                          &n) != 0)
		return arr;
	for (size_t i = 0; i < n && i < STORE_LEASE_GROUPS_MAX; i++)
		json_array_append_new(arr, json_pack("{s:s,s:I}", "replica",
		                                     g[i].replica, "orders",
		                                     (json_int_t)g[i].orders));
	return arr;
}

int api_stats_json(http_server_t *s, json_t **ret)
{
	store_stats_t st;
	json_t *orders, *alerts, *j;
	double error_rate = 0, threshold = 0, rate[3];
	int64_t done[3];
	int rc;

	rc = store_stats(s->deps.store, &st);
	if (rc != 0)
		return rc;
	orders = json_object();
	for (int i = 0; i < ORDER_STATUS_COUNT; i++)
		json_object_set_new(orders,
		                    order_status_name((order_status_t)i),
		                    json_integer(st.count[i]));
	for (size_t i = 0; i < 3; i++)
		done[i] = (int64_t)metrics_value(s->m_processed[i]);
	processed_rates(s, done, rate);
	alerts = alerts_json(s, &error_rate, &threshold);
	/* A young process has not filled the window yet: divide by what it
	 * has seen, not by the full window. */
	double up_s = (double)(clock_mono_ms() - s->started_mono_ms) / 1000.0;
	double span_s = up_s < 1 ? 1 : up_s > WINDOW_S ? WINDOW_S : up_s;
	/* Replicas seen by the store (their heartbeats, which the reaper
	 * writes: this read writes nothing), this one first: it is
	 * answering, so it counts even before its first beat lands. */
	enum { MAX_LISTED = 64 };
	char ids[MAX_LISTED][ID_MAX + 1];
	size_t n_seen = 0;
	json_t *replicas = json_array();
	json_array_append_new(replicas, json_string(s->opt.replica_id));
	rc = store_replicas_list(s->deps.store, s->opt.replica_window_ms, ids,
	                         MAX_LISTED, &n_seen);
	bool self_seen = false;
	for (size_t i = 0; rc == 0 && i < n_seen && i < MAX_LISTED; i++) {
		if (strcmp(ids[i], s->opt.replica_id) == 0)
			self_seen = true;
		else
			json_array_append_new(replicas, json_string(ids[i]));
	}
	if (rc == 0 && !self_seen && n_seen < MAX_LISTED)
		n_seen++;
	j = json_pack(
	    "{s:o,s:f,s:{s:f,s:f,s:f,s:f,s:f},s:f,s:f,s:o,s:o,s:I,s:o,s:I,"
	    "s:s}",
	    "orders", orders, "oldest_pending_age_seconds",
	    (double)st.oldest_pending_ms / 1000.0, "throughput",
	    "submitted_per_s", (double)alerts_window_sum(s->submitted) / span_s,
	    "processed_per_s", rate[0] + rate[1] + rate[2], "completed_per_s",
	    rate[0], "rejected_per_s", rate[1], "failed_per_s", rate[2],
	    "error_rate", error_rate, "alert_threshold", threshold, "alerts",
	    alerts, "replicas", replicas, "replicas_seen",
	    (json_int_t)(rc == 0 ? n_seen : 1), "leases", leases_json(s),
	    "uptime_seconds",
	    (json_int_t)((clock_mono_ms() - s->started_mono_ms) / 1000),
	    "backend", store_backend_name(s->deps.store));
	if (j == NULL)
		return -ENOMEM;
	*ret = j;
	return 0;
}

void api_ops_stats(http_req_t *r)
{
	json_t *j;
	int rc = api_stats_json(r->srv, &j);

	if (rc != 0) {
		api_store_error(r, rc);
		return;
	}
	api_json(r, 200, j);
}
