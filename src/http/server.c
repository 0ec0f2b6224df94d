/*
 * server: the HTTP front end on libmicrohttpd (see server.h). This file owns
 * the daemon, the per-request context, the body (under its cap; the
 * handlers parse it), X-Request-Id, response headers, per-request metrics,
 * access logs, suspend/resume bookkeeping and the drain. The header checks
 * in the API's order are server_checks.c, the metric families and the
 * scrape-time collect server_metrics.c, the listen address
 * server_listen.c, the connections' deadlines and eviction conn_guard.c,
 * the routes api*.c.
 *
 * MHD calls the access handler first with the headers only, then once per
 * piece of body, then once with *upload_data_size == 0. Everything decided
 * from headers (404/405/401/415/413 by Content-Length) is answered on the
 * first call, before any body byte is read. A chunked body that passes the
 * cap is not buffered further: MHD 0.9.75 refuses a response queued in the
 * middle of an upload, so the rest is read and dropped (up to a hard cap,
 * then the connection is closed) and 413 is answered when it ends.
 *
 * Connections: conn_guard.c bounds how long a connection may keep the
 * server waiting for a request head or body and evicts the oldest waiting
 * one when the connections near the limit; the callbacks below tell it
 * each connection's phase.
 *
 * Suspension: a handler that waits suspends the connection from inside the
 * access handler; another thread fills r->resp and resumes it; MHD then
 * calls the handler again with the same context and we queue r->resp.
 */
#include "http/server.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/order.h"
#include "http/api.h"
#include "http/events.h"
#include "obs/feed.h"
#include "obs/log.h"
#include "util/clock.h"
#include "util/err.h"

/* Bytes of an oversized chunked body read and dropped before closing. */
#define DISCARD_MAX (64ULL << 20)
/* MHD's own inactivity timeout: the backstop for a client that stops
 * reading its answer (the guard bounds the head and body phases). Never
 * below the guard's deadlines plus a second, or MHD would cut a quiet
 * keep-alive connection or a pausing upload before they say it may. */
#define IDLE_TIMEOUT_S 60

static unsigned idle_timeout_s(const http_options_t *opt)
{
	int64_t ms = opt->head_timeout_ms > opt->body_timeout_ms
	                 ? opt->head_timeout_ms
	                 : opt->body_timeout_ms;
	int64_t s = (ms + 999) / 1000 + 1;
	return s > IDLE_TIMEOUT_S ? (unsigned)s : IDLE_TIMEOUT_S;
}
/* The guard evicts when the open connections reach the limit less this
 * share of it (1/16), so MHD itself never has to refuse one. */
#define EVICT_RESERVE_SHIFT 4

/* ---- responses ---- */

static void observe(http_req_t *r, unsigned status)
{
	http_server_t *s = r->srv;
	int64_t ms = clock_mono_ms() - r->start_mono_ms;
	char code[8], dur[24];
	const char *label = r->route_label ? r->route_label : "other";
	bool quiet = r->route != NULL && r->route->quiet;

	snprintf(code, sizeof(code), "%u", status);
	snprintf(dur, sizeof(dur), "%" PRId64, ms);
	metrics_inc(metrics_child2(s->m_requests, label, code));
	metrics_observe(metrics_child1(s->m_duration, label),
	                (double)ms / 1000.0);
	if (s->deps.alerts != NULL)
		alerts_record(s->deps.alerts, status >= 500);
	log_msg(quiet ? LOG_DEBUG : LOG_INFO, "request", "request_id", r->rid,
	        "method", r->method, "route", label, "status", code,
	        "duration_ms", dur, NULL);
}

static enum MHD_Result queue_resp(http_req_t *r)
{
	/* drained is written under mu before the resume that led here. */
	http_resp_t *p = r->drained ? &r->drain_resp : &r->resp;
	struct MHD_Response *mr;
	enum MHD_Result ret;
	char ra[24];

	if (p->status == 0)
		api_error(r, 500, "internal", "no response was prepared");
	if (p->stream != NULL)
		mr = events_response(r);
	else
		mr = MHD_create_response_from_buffer(
		    p->len, p->body,
		    p->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (mr == NULL) {
		free(p->body);
		p->body = NULL;
		return MHD_NO;
	}
	p->body = NULL; /* MHD frees it now */
	MHD_add_response_header(mr, "X-Request-Id", r->rid);
	if (p->content_type != NULL)
		MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
		                        p->content_type);
	if (p->retry_after >= 0) {
		snprintf(ra, sizeof(ra), "%d", p->retry_after);
		MHD_add_response_header(mr, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (p->allow != NULL)
		MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, p->allow);
	if (p->location[0] != '\0')
		MHD_add_response_header(mr, MHD_HTTP_HEADER_LOCATION,
		                        p->location);
	for (size_t i = 0; p->extra[i] != NULL; i += 2)
		MHD_add_response_header(mr, p->extra[i], p->extra[i + 1]);
	/* 413: the rest of the body is never read, do not reuse. Unready
	 * (the shutdown delay) or draining: a client's next request should
	 * open a new connection, which the load balancer sends to a replica
	 * that stays, instead of finding this one closed at exit. */
	if (p->status == 413 || atomic_load(&r->srv->unready) ||
	    atomic_load(&r->srv->draining))
		MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION,
		                        "close");
	ret = MHD_queue_response(r->conn, p->status, mr);
	MHD_destroy_response(mr);
	r->queued = true;
	observe(r, p->status);
	return ret;
}

/* ---- suspension ---- */

/* mu held. */
static void susp_unlink(http_server_t *s, http_req_t *r)
{
	if (!r->listed)
		return;
	if (r->susp_prev)
		r->susp_prev->susp_next = r->susp_next;
	else
		s->susp_head = r->susp_next;
	if (r->susp_next)
		r->susp_next->susp_prev = r->susp_prev;
	r->susp_prev = r->susp_next = NULL;
	r->listed = false;
	s->suspended--;
	pthread_cond_broadcast(&s->cond);
}

void http_server_suspend(http_req_t *r)
{
	http_server_t *s = r->srv;

	if (r->handed_on != NULL) {
		/* A pooled handler hands r on: it is suspended already. */
		*r->handed_on = true;
		r->handed_on = NULL;
		return;
	}
	pthread_mutex_lock(&s->mu);
	s->suspended++;
	r->listed = true;
	r->susp_prev = NULL;
	r->susp_next = s->susp_head;
	if (s->susp_head)
		s->susp_head->susp_prev = r;
	s->susp_head = r;
	pthread_mutex_unlock(&s->mu);
	r->suspended = true;
	MHD_suspend_connection(r->conn);
}

/* Claims r's answer; true when the caller is the one to resume it. */
static bool claim(http_req_t *r)
{
	http_server_t *s = r->srv;
	bool won;

	pthread_mutex_lock(&s->mu);
	won = !r->answered;
	if (won) {
		r->answered = true;
		s->resuming++;
	}
	pthread_mutex_unlock(&s->mu);
	return won;
}

static void resume_claimed(http_req_t *r)
{
	http_server_t *s = r->srv;

	/* MHD_resume_connection takes MHD's own lock, which orders the
	 * writes to the answer before the MHD thread's reads. */
	MHD_resume_connection(r->conn);
	pthread_mutex_lock(&s->mu);
	s->resuming--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

void http_server_resume(http_req_t *r)
{
	if (claim(r))
		resume_claimed(r);
}

bool http_server_abandon(http_req_t *r, const char *msg)
{
	http_server_t *s = r->srv;
	char *text = NULL;
	json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", "unavailable",
	                      "message", msg);

	if (j != NULL)
		text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	pthread_mutex_lock(&s->mu);
	if (r->answered) {
		pthread_mutex_unlock(&s->mu);
		free(text);
		return false;
	}
	r->answered = true;
	r->drained = true;
	s->resuming++;
	r->drain_resp = (http_resp_t){
	    .status = 503,
	    .body = text,
	    .len = text ? strlen(text) : 0,
	    .content_type = text ? "application/json" : NULL,
	    .retry_after = 1,
	};
	pthread_mutex_unlock(&s->mu);
	resume_claimed(r);
	return true;
}

bool http_server_inflight_begin(http_server_t *s)
{
	bool ok;

	pthread_mutex_lock(&s->mu);
	ok = !s->closing;
	if (ok)
		s->inflight++;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

void http_server_inflight_end(http_server_t *s)
{
	pthread_mutex_lock(&s->mu);
	s->inflight--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

/* ---- request context ---- */

static http_req_t *req_new(http_server_t *s, struct MHD_Connection *conn,
                           const char *method)
{
	http_req_t *r = calloc(1, sizeof(*r));
	const char *rid;

	if (r == NULL)
		return NULL;
	r->srv = s;
	r->conn = conn;
	r->start_mono_ms = clock_mono_ms();
	r->resp.retry_after = -1;
	atomic_init(&r->refs, 1); /* MHD's, until "request completed" */
	snprintf(r->method, sizeof(r->method), "%s", method);
	rid =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
	if (order_ident_valid(rid, HTTP_RID_MAX))
		snprintf(r->rid, sizeof(r->rid), "%s", rid);
	else
		snprintf(r->rid, sizeof(r->rid), "%016" PRIx64, clock_rand());
	pthread_mutex_lock(&s->mu);
	s->active++;
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* A lock granted to a request whose answer never reached its client. */
typedef struct release_job {
	handlers_job_t job;
	store_t *store;
	char name[ID_MAX + 1];
	char owner[ID_MAX + 1];
	char rid[HTTP_RID_MAX + 1];
	int64_t fence;
} release_job_t;

static void run_release(handlers_job_t *job, bool late)
{
	release_job_t *j = (release_job_t *)job;
	int rc = store_lock_release(j->store, j->name, j->owner, j->fence);

	log_warn("lock grant undelivered, released", "request_id", j->rid,
	         "lock", j->name, "error", rc == 0 ? NULL : err_str(rc), NULL);
	free(j);
}

/*
 * The client can neither use nor release a lock whose fence it never
 * learned, so give it back. On the handler pool: this runs on whatever
 * thread dropped the last reference, often a server thread. Only when the
 * pool has stopped (the very end of shutdown) does it run here.
 */
static void release_grant(http_req_t *r)
{
	release_job_t *j = calloc(1, sizeof *j);

	if (j == NULL) {
		log_error("lock grant undelivered, cannot release: out of "
		          "memory; it expires with its ttl",
		          "request_id", r->rid, "lock", r->param, NULL);
		return;
	}
	j->job.run = run_release;
	j->store = r->srv->deps.store;
	j->fence = r->granted_fence;
	snprintf(j->name, sizeof j->name, "%s", r->param);
	snprintf(j->owner, sizeof j->owner, "%s", r->owner);
	snprintf(j->rid, sizeof j->rid, "%s", r->rid);
	if (!handlers_submit(r->srv->handlers, &j->job))
		run_release(&j->job, false);
}

static void req_free(http_req_t *r)
{
	http_server_t *s = r->srv;

	if (r->granted_fence > 0 && !r->grant_delivered)
		release_grant(r);
	api_req_release(r);
	free(r->resp.body);
	free(r->drain_resp.body);
	buf_free(&r->body);
	free(r);
	pthread_mutex_lock(&s->mu);
	s->active--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

void http_server_req_hold(http_req_t *r)
{
	atomic_fetch_add(&r->refs, 1);
}

void http_server_req_put(http_req_t *r)
{
	if (r != NULL && atomic_fetch_sub(&r->refs, 1) == 1)
		req_free(r);
}

/* The guard's entry of conn (its socket context), or NULL. */
static conn_guard_entry_t *guard_entry(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

/* MHD calls CLOSED before it closes the socket (daemon.c, cleanup), so
 * the guard never shuts down a descriptor that has been reused. */
static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	http_server_t *s = cls;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		    conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		*socket_context =
		    ci ? conn_guard_open(s->guard, ci->connect_fd) : NULL;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		conn_guard_close(s->guard, *socket_context);
		*socket_context = NULL;
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	http_server_t *s = cls;
	http_req_t *r = *con_cls;

	/* Waiting for the next head now (keep-alive), or closing. */
	conn_guard_answered(s->guard, guard_entry(conn));
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->srv->mu);
	/* Resumed but closed before MHD called us again: still counted. */
	susp_unlink(r->srv, r);
	r->grant_delivered =
	    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && !r->drained;
	pthread_mutex_unlock(&r->srv->mu);
	*con_cls = NULL;
	http_server_req_put(r);
}

static int body_append(http_req_t *r, const char *data, size_t n)
{
	if (r->too_big || n > r->body.max - r->body.len) {
		/* Never buffer past the cap: drop, answer 413 at the end. */
		r->too_big = true;
		buf_free(&r->body);
		r->discarded += n;
		return r->discarded > DISCARD_MAX ? -1 : 0;
	}
	/* The buffer grows to what arrives rather than to the cap at once,
	 * so slow clients cannot pin cap-sized buffers. */
	return buf_append(&r->body, data, n);
}

/* A store route's handler, on a pool thread; late: see handlers.h. */
static void run_request(handlers_job_t *job, bool late)
{
	http_req_t *r = (http_req_t *)((char *)job - offsetof(http_req_t, job));
	http_server_t *s = r->srv;
	bool answered;

	pthread_mutex_lock(&s->mu);
	answered = r->answered;
	pthread_mutex_unlock(&s->mu);
	if (answered) {
		/* Abandoned while queued (shutdown): nothing left to do. */
	} else if (late) {
		metrics_inc(s->m_queue_expired);
		api_error(r, 503, "unavailable",
		          "no handler was free within %lld ms, retry later",
		          (long long)s->opt.handler_queue_ms);
		http_server_resume(r);
	} else {
		/* The handler may hand r on (http_server_suspend sets this
		 * flag); then whoever finishes it resumes it. */
		bool handed_on = false;
		r->handed_on = &handed_on;
		r->route->handler(r);
		if (!handed_on) {
			r->handed_on = NULL;
			http_server_resume(r);
		}
	}
	http_server_req_put(r);
}

/* Queues suspended r for the handler pool, or answers it 503. */
static void pool_submit(http_req_t *r)
{
	http_server_t *s = r->srv;
	bool closing;

	pthread_mutex_lock(&s->mu);
	closing = s->closing;
	pthread_mutex_unlock(&s->mu);
	r->job.run = run_request;
	r->job.expires = true;
	http_server_req_hold(r);
	if (closing || !handlers_submit(s->handlers, &r->job)) {
		http_server_req_put(r);
		api_unavailable(r, "server is shutting down");
		http_server_resume(r);
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	http_server_t *s = cls;
	http_req_t *r = *con_cls;

	if (r == NULL) {
		r = req_new(s, conn, method);
		if (r == NULL)
			return MHD_NO;
		*con_cls = r;
		bool answered = http_server_check_headers(r, url);
		conn_guard_head_done(s->guard, guard_entry(conn), r->has_body);
		if (answered) {
			/* With a body announced, answer before reading it (MHD
			 * then closes the connection); without one, answer on
			 * the next call so the connection stays alive. */
			if (r->has_body)
				return queue_resp(r);
			r->early = true;
		}
		return MHD_YES;
	}
	if (r->queued)
		return MHD_YES;
	if (r->early)
		return queue_resp(r);
	if (r->suspended) {
		/* Resumed: the other thread has filled r->resp. */
		r->suspended = false;
		pthread_mutex_lock(&s->mu);
		susp_unlink(s, r);
		pthread_mutex_unlock(&s->mu);
		return queue_resp(r);
	}
	if (*upload_data_size > 0) {
		int rc = body_append(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return rc == 0 ? MHD_YES : MHD_NO;
	}
	conn_guard_body_done(s->guard, guard_entry(conn));
	if (r->too_big) {
		api_error(r, 413, "payload_too_large",
		          "request body exceeds %zu bytes", r->body.max);
		return queue_resp(r);
	}
	if (r->route->store) {
		/* Off this thread: a slow store must not stall the other
		 * connections it serves (handlers.c). */
		http_server_suspend(r);
		pool_submit(r);
		return MHD_YES;
	}
	r->route->handler(r);
	if (r->suspended)
		return MHD_YES;
	return queue_resp(r);
}

/* ---- daemon ---- */

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	log_warn("http server", "detail", buf, NULL);
}

int http_server_new(const http_options_t *opt, const http_deps_t *deps,
                    http_server_t **ret)
{
	http_server_t *s;
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	uint16_t port = 0;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	int rc;

	rc = http_server_parse_listen(opt->listen, &ss, &sslen, &port);
	if (rc != 0) {
		log_error("bad listen address", "listen", opt->listen, NULL);
		return rc;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->opt = *opt;
	s->deps = *deps;
	s->started_mono_ms = clock_mono_ms();
	atomic_init(&s->draining, false);
	feed_init(opt->max_streams > 0 ? opt->max_streams : 64,
	          opt->replica_id); /* GET /v1/events */
	atomic_init(&s->unready, false);
	pthread_mutex_init(&s->mu, NULL);
	clock_cond_init(&s->cond);
	pthread_mutex_init(&s->stats_mu, NULL);
	rc = http_server_metrics_register(s);
	if (rc != 0)
		goto fail;
	/* First throughput sample: nothing processed here at start. */
	s->sample_ms[0] = s->started_mono_ms;
	s->n_samples = 1;
	s->next_sample = 1;
	rc = alerts_window_new(60, &s->submitted);
	if (rc != 0)
		goto fail;
	rc = handlers_new((size_t)opt->threads, opt->handler_queue_ms,
	                  &s->handlers);
	if (rc != 0)
		goto fail;
	rc = waiters_new(opt->max_waiters, deps->store, s->handlers,
	                 &s->waiters);
	if (rc != 0)
		goto fail;
	if (opt->submit_deadline_ms > 0) {
		rc = overdue_new(opt->submit_deadline_ms, &s->overdue);
		if (rc != 0)
			goto fail;
	}
	rc = conn_guard_new(
	    &(conn_guard_options_t){
	        .max_open = opt->max_connections -
	                    (opt->max_connections >> EVICT_RESERVE_SHIFT),
	        .head_ms = opt->head_timeout_ms,
	        .body_ms = opt->body_timeout_ms,
	        .tick_ms = 50,
	    },
	    &s->guard);
	if (rc != 0)
		goto fail;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s->daemon = MHD_start_daemon(
	    flags, port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
	    mhd_log, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_THREAD_POOL_SIZE,
	    (unsigned int)(opt->threads > 1 ? opt->threads : 0),
	    MHD_OPTION_CONNECTION_LIMIT, opt->max_connections,
	    MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout_s(opt),
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
	    MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1,
	    MHD_OPTION_END);
	if (s->daemon == NULL) {
		log_error("cannot start http server", "listen", opt->listen,
		          NULL);
		rc = -EADDRINUSE;
		goto fail;
	}
	log_info("http server listening", "listen", opt->listen, NULL);
	*ret = s;
	return 0;
fail:
	http_server_metrics_detach();
	waiters_stop(s->waiters);
	overdue_free(s->overdue);
	handlers_free(s->handlers);
	waiters_free(s->waiters);
	conn_guard_free(s->guard);
	alerts_window_free(s->submitted);
	pthread_mutex_destroy(&s->stats_mu);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return rc;
}

void http_server_set_unready(http_server_t *h)
{
	if (h != NULL)
		atomic_store(&h->unready, true);
}

void http_server_set_draining(http_server_t *h)
{
	if (h == NULL)
		return;
	atomic_store(&h->draining, true);
	events_drain();
	/* Waits are answered 503 now, not when the server stops: a poll may
	 * be stuck in the store past the drain deadline, and the client can
	 * retry elsewhere at once. */
	waiters_stop(h->waiters);
}

/* Waits on s->cond until pred holds or ms pass; mu held by the caller. */
static void wait_until(http_server_t *s, bool (*pred)(http_server_t *),
                       int64_t ms)
{
	int64_t end = clock_mono_ms() + ms;

	while (!pred(s)) {
		int64_t left = end - clock_mono_ms();
		if (left <= 0)
			break;
		if (left > 200)
			left = 200; /* re-check: not every change signals */
		struct timespec ts =
		    clock_mono_timespec(clock_mono_ms() + left);
		pthread_cond_timedwait(&s->cond, &s->mu, &ts);
	}
}

static bool no_inflight(http_server_t *s)
{
	return s->inflight == 0;
}
static bool no_suspended(http_server_t *s)
{
	return s->suspended == 0 && s->resuming == 0;
}
static bool no_resuming(http_server_t *s)
{
	return s->resuming == 0;
}
static bool no_active(http_server_t *s)
{
	return s->active == 0;
}

/*
 * Answers 503 every suspended request that nobody has answered yet (its
 * holder is stuck, e.g. in the store): MHD_stop_daemon aborts the process
 * when a connection is still suspended. mu held; dropped while resuming.
 */
static size_t abandon_suspended(http_server_t *s)
{
	size_t n = 0, k = 0;
	http_req_t **list;

	for (http_req_t *r = s->susp_head; r != NULL; r = r->susp_next)
		n += !r->answered;
	if (n == 0)
		return 0;
	list = calloc(n, sizeof *list);
	if (list == NULL)
		return 0; /* the caller's wait is bounded; nothing better */
	for (http_req_t *r = s->susp_head; r != NULL && k < n; r = r->susp_next)
		if (!r->answered) {
			http_server_req_hold(r);
			list[k++] = r;
		}
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < k; i++) {
		http_server_abandon(list[i], "server is shutting down");
		http_server_req_put(list[i]);
	}
	free(list);
	pthread_mutex_lock(&s->mu);
	return k;
}

void http_server_free(http_server_t *h)
{
	MHD_socket lfd;
	size_t abandoned;

	if (h == NULL)
		return;
	atomic_store(&h->draining, true);
	pthread_mutex_lock(&h->mu);
	h->closing = true;
	pthread_mutex_unlock(&h->mu);
	events_stop(); /* streams end; none stays suspended */
	lfd = MHD_quiesce_daemon(h->daemon);
	/* Every wait is answered 503 (already, if draining was set). Store
	 * routes still queued or running on the handler pool finish, with a
	 * real answer if they can. */
	waiters_stop(h->waiters);
	/* The batcher calls every done callback exactly once, after its
	 * commit, and was stopped before us (main.c), so this is short. */
	pthread_mutex_lock(&h->mu);
	while (h->inflight > 0) {
		wait_until(h, no_inflight, 5000);
		if (h->inflight > 0) {
			/* Not under mu: it is a leaf (server_int.h). */
			pthread_mutex_unlock(&h->mu);
			log_warn("http server waiting for group commit", NULL);
			pthread_mutex_lock(&h->mu);
		}
	}
	pthread_mutex_unlock(&h->mu);
	/* No submission is in flight, so none is timed any more. */
	overdue_free(h->overdue);
	h->overdue = NULL;
	pthread_mutex_lock(&h->mu);
	wait_until(h, no_suspended, 1000);
	/* What is left is held by a thread stuck in the store: answer it
	 * 503 now, since MHD must not stop with a suspended connection. */
	abandoned = abandon_suspended(h);
	wait_until(h, no_resuming, 1000);
	/* Let resumed requests queue and send their answers. */
	wait_until(h, no_suspended, 2000);
	wait_until(h, no_active, 2000);
	pthread_mutex_unlock(&h->mu);
	if (abandoned > 0) {
		char n[24];
		snprintf(n, sizeof n, "%zu", abandoned);
		log_warn("requests still in the store at shutdown answered 503",
		         "requests", n, NULL);
	}
	MHD_stop_daemon(h->daemon);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	http_server_metrics_detach();
	conn_guard_free(h->guard); /* every connection is closed now */
	/* Pool threads finish what they run (a stuck store call holds this
	 * up until the drain watchdog); queued requests were answered. */
	handlers_stop(h->handlers);
	handlers_free(h->handlers);
	waiters_free(h->waiters);
	alerts_window_free(h->submitted);
	pthread_mutex_destroy(&h->stats_mu);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
