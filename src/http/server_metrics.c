/*
 * server_metrics: the HTTP server's metric families, registered once per
 * server, and the scrape-time collect that refreshes the store-backed
 * gauges (orders by status, the oldest pending age, the per-replica
 * backlog, connection resets) from one store_stats() call, with the age of
 * the last successful one beside them, and the connection guard's counts.
 */
#include <errno.h>
#include <pthread.h>

#include "core/order.h"
#include "http/server_int.h"
#include "obs/metrics.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/failpoint.h"

/*
 * The metrics registry has no way to unregister a collect callback, and a
 * render after http_server_free must not touch the freed server. So the
 * callback goes through this pointer, cleared at free. It is the one piece
 * of static state here; collect_mu protects it and is held during a collect
 * so the server cannot be freed under it.
 */
static pthread_mutex_t collect_mu = PTHREAD_MUTEX_INITIALIZER;
static http_server_t *collect_srv; /* collect_mu */

/* A counter kept by another module: add what it grew by. */
static void catch_up(metric_t *m, double total)
{
	double grew = total - metrics_value(m);

	if (grew > 0)
		metrics_add(m, grew);
}

static void collect_conns(http_server_t *s)
{
	conn_guard_stats_t cs;

	if (s->guard == NULL)
		return; /* a failed start */
	conn_guard_stats(s->guard, &cs);
	metrics_set(s->m_conns, (double)cs.open);
	catch_up(s->m_evicted, (double)cs.evicted);
	catch_up(s->m_conn_timeouts[0], (double)cs.head_timeouts);
	catch_up(s->m_conn_timeouts[1], (double)cs.body_timeouts);
}

static void collect(void *arg)
{
	http_server_t *s;
	store_stats_t st;
	int rc;

	pthread_mutex_lock(&collect_mu);
	s = collect_srv;
	if (s == NULL)
		goto unlock;
	collect_conns(s);
	rc = failpoint_hit("fail_scrape_stats")
	         ? OD_ESTORE
	         : store_stats(s->deps.store, &st);
	if (rc != 0) {
		/* The gauges keep their last values; the age below and this
		 * counter say that they are stale. */
		metrics_inc(s->m_stats_errors);
	} else {
		s->stats_ok_mono_ms = clock_mono_ms();
		for (int i = 0; i < ORDER_STATUS_COUNT; i++)
			metrics_set(metrics_child1(
			                s->m_orders,
			                order_status_name((order_status_t)i)),
			            (double)st.count[i]);
		metrics_set(s->m_oldest, (double)st.oldest_pending_ms / 1000.0);
		/* A counter kept by the store: add what it grew by. */
		double grew = (double)st.resets - metrics_value(s->m_resets);
		if (grew > 0)
			metrics_add(s->m_resets, grew);
		/* The autoscaling signal's other half: backlog per replica
		 * (the reaper keeps orderd_replicas fresh). */
		double replicas = metrics_value(s->m_replicas);
		metrics_set(s->m_per_replica,
		            (double)st.count[ORDER_PENDING] /
		                (replicas >= 1 ? replicas : 1));
	}
	/* Kept in memory by the store: fresh even while it does not
	 * answer, when the deadline is what is being hit. */
	store_counters_t ctr;
	store_counters(s->deps.store, &ctr);
	double hits =
	    (double)ctr.deadline_exceeded - metrics_value(s->m_deadline);
	if (hits > 0)
		metrics_add(s->m_deadline, hits);
	metrics_set(s->m_stats_age,
	            (double)(clock_mono_ms() - s->stats_ok_mono_ms) / 1000.0);
unlock:
	pthread_mutex_unlock(&collect_mu);
}

static void collect_target(http_server_t *s)
{
	pthread_mutex_lock(&collect_mu);
	collect_srv = s;
	pthread_mutex_unlock(&collect_mu);
}

int http_server_metrics_register(http_server_t *s)
{
	static const char *const l_route_code[] = {"route", "code", NULL};
	static const char *const l_route[] = {"route", NULL};
	static const char *const l_status[] = {"status", NULL};
	static const char *const l_outcome[] = {"outcome", NULL};
	metric_family_t *sub, *old, *proc;

	s->m_requests =
	    metrics_family(METRIC_COUNTER, "orderd_http_requests_total",
	                   "HTTP requests answered, by route and status code",
	                   l_route_code, NULL, 0);
	s->m_duration = metrics_family(
	    METRIC_HISTOGRAM, "orderd_http_request_duration_seconds",
	    "HTTP request duration, by route", l_route, metrics_latency_buckets,
	    metrics_latency_n_buckets);
	sub = metrics_family(METRIC_COUNTER, "orderd_orders_submitted_total",
	                     "Orders accepted (201) by this replica", NULL,
	                     NULL, 0);
	s->m_orders =
	    metrics_family(METRIC_GAUGE, "orderd_orders",
	                   "Orders in the store, by status", l_status, NULL, 0);
	old = metrics_family(
	    METRIC_GAUGE, "orderd_oldest_pending_order_age_seconds",
	    "Age of the oldest claimable order (0 if none)", NULL, NULL, 0);
	/* The workers own this family; registration is idempotent, so the
	 * stats route can read it for processed_per_s. */
	proc = metrics_family(
	    METRIC_COUNTER, "orderd_orders_processed_total",
	    "Orders that reached a terminal status here, by outcome.",
	    l_outcome, NULL, 0);
	if (s->m_requests == NULL || s->m_duration == NULL || sub == NULL ||
	    s->m_orders == NULL || old == NULL || proc == NULL)
		return -ENOMEM;
	s->m_processed[0] = metrics_child1(proc, "completed");
	s->m_processed[1] = metrics_child1(proc, "rejected");
	s->m_processed[2] = metrics_child1(proc, "failed");
	s->m_submitted = metrics_child0(sub);
	s->m_oldest = metrics_child0(old);
	s->m_replicas = metrics_child0(metrics_family(
	    METRIC_GAUGE, "orderd_replicas",
	    "Replicas whose heartbeat the store has seen recently.", NULL, NULL,
	    0));
	s->m_per_replica = metrics_child0(metrics_family(
	    METRIC_GAUGE, "orderd_pending_orders_per_replica",
	    "Pending orders divided by the replicas seen: the autoscaling "
	    "signal beside the oldest pending age.",
	    NULL, NULL, 0));
	s->m_queue_expired = metrics_child0(metrics_family(
	    METRIC_COUNTER, "orderd_http_handler_queue_expired_total",
	    "Requests answered 503 because they waited longer than "
	    "ORDERD_HANDLER_QUEUE_MS for a handler thread.",
	    NULL, NULL, 0));
	s->m_stats_age = metrics_child0(metrics_family(
	    METRIC_GAUGE, "orderd_store_stats_age_seconds",
	    "Seconds since the store last answered the scrape's stats query "
	    "(orderd_orders, the oldest pending age and the per-replica "
	    "backlog keep their last values while it grows).",
	    NULL, NULL, 0));
	s->m_resets = metrics_child0(metrics_family(
	    METRIC_COUNTER, "orderd_store_connection_resets_total",
	    "Store connections reset because a failure left them unusable "
	    "(SQLite: the writer, after a ROLLBACK failed; postgres: pooled "
	    "connections found broken or left mid-transaction).",
	    NULL, NULL, 0));
	/* The batcher registers this family too (kind "submit"). */
	s->m_stats_errors = metrics_child1(
	    metrics_family(METRIC_COUNTER, "orderd_store_errors_total",
	                   "Store operations that failed, by kind.",
	                   (const char *const[]){"kind", NULL}, NULL, 0),
	    "stats");
	s->m_deadline = metrics_child0(metrics_family(
	    METRIC_COUNTER, "orderd_store_deadline_exceeded_total",
	    "Store calls that ran out of ORDERD_STORE_DEADLINE_MS (waiting for "
	    "a connection, connecting or waiting for the server) and failed; "
	    "their connection was discarded. PostgreSQL only.",
	    NULL, NULL, 0));
	s->m_submit_late = metrics_child0(metrics_family(
	    METRIC_COUNTER, "orderd_submit_deadline_expired_total",
	    "Submissions answered 503 because the store had not answered "
	    "within ORDERD_STORE_DEADLINE_MS of their arrival.",
	    NULL, NULL, 0));
	s->m_conns = metrics_child0(metrics_family(
	    METRIC_GAUGE, "orderd_http_connections",
	    "Open HTTP connections (at the last scrape).", NULL, NULL, 0));
	s->m_evicted = metrics_child0(metrics_family(
	    METRIC_COUNTER, "orderd_http_connections_evicted_total",
	    "Connections closed to make room for a new one near "
	    "ORDERD_MAX_CONNECTIONS: the oldest that had not sent a complete "
	    "request (head or body) or sat idle between requests.",
	    NULL, NULL, 0));
	metric_family_t *to = metrics_family(
	    METRIC_COUNTER, "orderd_http_connections_timed_out_total",
	    "Connections closed because their request head (phase=head: "
	    "ORDERD_HTTP_HEAD_TIMEOUT_MS, idle keep-alive included) or body "
	    "(phase=body: ORDERD_HTTP_BODY_TIMEOUT_MS) took too long.",
	    (const char *const[]){"phase", NULL}, NULL, 0);
	s->m_conn_timeouts[0] = to ? metrics_child1(to, "head") : NULL;
	s->m_conn_timeouts[1] = to ? metrics_child1(to, "body") : NULL;
	if (s->m_conns == NULL || s->m_evicted == NULL ||
	    s->m_conn_timeouts[0] == NULL || s->m_conn_timeouts[1] == NULL)
		return -ENOMEM;
	if (s->m_stats_age == NULL || s->m_stats_errors == NULL ||
	    s->m_queue_expired == NULL || s->m_resets == NULL ||
	    s->m_deadline == NULL || s->m_submit_late == NULL)
		return -ENOMEM;
	s->stats_ok_mono_ms = s->started_mono_ms;
	/* All six statuses are always present, even before the first scrape
	 * could fill them. */
	for (int i = 0; i < ORDER_STATUS_COUNT; i++)
		metrics_child1(s->m_orders,
		               order_status_name((order_status_t)i));
	collect_target(s);
	metrics_on_collect(collect, NULL);
	return 0;
}

void http_server_metrics_detach(void)
{
	collect_target(NULL);
}
