/*
 * events: GET /v1/events.
 *
 * Threading: MHD runs an internal thread pool with epoll (server.c), so a
 * content reader must never block a pool thread. Each stream is an
 * obs/feed subscriber; its content reader only copies from the ring. When
 * the ring is empty the reader suspends the connection and returns 0; one
 * ticker thread (started with the first stream) resumes suspended streams
 * whenever the feed wakes it (an order event) and at least every second.
 * The ticker also builds the stats frame once a second (one store read
 * and one throughput sample whatever the number of streams) and the 15 s
 * keepalive, and publishes both through the feed, so the store is never
 * read on an MHD thread. Lock order: feed mu -> ev.mu -> MHD's own.
 *
 * An open stream stays busy for conn_guard (its request was complete and
 * it is not answered until the stream ends), so the guard never evicts or
 * times it out; it counts against ORDERD_MAX_CONNECTIONS as any other.
 */
#include "http/events.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/api.h"
#include "http/server_int.h"
#include "obs/feed.h"
#include "obs/log.h"
#include "util/clock.h"
#include "util/err.h"

#define TICK_MS 1000
#define KEEPALIVE_MS 15000
#define RETRY_FRAME "retry: 2000\n\n"
/* The kernel's send buffer of a stream's socket. Left alone, Linux grows
 * it up to net.ipv4.tcp_wmem's maximum (4 MiB by default) for a reader that
 * does not read: that much kernel memory per stream, and the 256 KiB
 * backlog bound (feed.c) would only start counting after it. */
#define STREAM_SNDBUF (64 * 1024)

typedef struct stream {
	struct MHD_Connection *conn;
	feed_sub_t *sub;
	bool sent_retry;
	atomic_bool kick;           /* the feed has data since the last read */
	bool suspended;             /* ev.mu */
	struct stream *prev, *next; /* ev.mu */
} stream_t;

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool started, stop, kick; /* mu */
	atomic_bool draining;
	pthread_t thread;
	http_server_t *srv; /* set with the first stream */
	stream_t *head;     /* mu */
} ev = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Under the feed mutex: only flag and signal. */
static void wake(void *arg)
{
	stream_t *st = arg;

	atomic_store(&st->kick, true);
	pthread_mutex_lock(&ev.mu);
	ev.kick = true;
	pthread_cond_signal(&ev.cv);
	pthread_mutex_unlock(&ev.mu);
}

/* ev.mu held. */
static void resume_all_locked(void)
{
	for (stream_t *st = ev.head; st != NULL; st = st->next)
		if (st->suspended) {
			st->suspended = false;
			MHD_resume_connection(st->conn);
		}
}

static void publish_stats(void)
{
	json_t *j;

	if (api_stats_json(ev.srv, &j) == 0)
		feed_publish_json("stats", j);
}

static void *ticker(void *arg)
{
	int64_t next_tick = clock_mono_ms(),
	        next_keep = next_tick + KEEPALIVE_MS;

	(void)arg;
	pthread_mutex_lock(&ev.mu);
	while (!ev.stop) {
		int64_t now = clock_mono_ms();
		if (now >= next_tick) {
			pthread_mutex_unlock(&ev.mu);
			if (feed_active())
				publish_stats();
			if (now >= next_keep) {
				feed_publish(": keepalive\n\n", 13);
				next_keep = now + KEEPALIVE_MS;
			}
			pthread_mutex_lock(&ev.mu);
			next_tick = now + TICK_MS;
		}
		ev.kick = false;
		resume_all_locked();
		if (ev.stop)
			break;
		struct timespec ts = clock_mono_timespec(next_tick);
		while (!ev.kick && !ev.stop && clock_mono_ms() < next_tick)
			pthread_cond_timedwait(&ev.cv, &ev.mu, &ts);
	}
	pthread_mutex_unlock(&ev.mu);
	return NULL;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	stream_t *st = cls;
	bool dropped = false;

	(void)pos;
	if (!st->sent_retry && max >= sizeof RETRY_FRAME - 1) {
		st->sent_retry = true;
		memcpy(buf, RETRY_FRAME, sizeof RETRY_FRAME - 1);
		return (ssize_t)(sizeof RETRY_FRAME - 1);
	}
	if (atomic_load(&ev.draining))
		return MHD_CONTENT_READER_END_OF_STREAM;
	atomic_store(&st->kick, false);
	size_t n = feed_read(st->sub, buf, max, &dropped);
	if (dropped)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n > 0)
		return (ssize_t)n;
	/* Empty: park until the ticker resumes us (data or the next tick).
	 * Data that came after the read above set kick: read again instead
	 * (the ticker may have run its resumes already). */
	pthread_mutex_lock(&ev.mu);
	if (!ev.stop && !atomic_load(&st->kick)) {
		st->suspended = true;
		MHD_suspend_connection(st->conn);
	}
	pthread_mutex_unlock(&ev.mu);
	return 0;
}

static void stream_free(void *cls)
{
	stream_t *st = cls;

	pthread_mutex_lock(&ev.mu);
	if (st->prev)
		st->prev->next = st->next;
	else if (ev.head == st)
		ev.head = st->next;
	if (st->next)
		st->next->prev = st->prev;
	pthread_mutex_unlock(&ev.mu);
	feed_unsubscribe(st->sub);
	free(st);
}

void api_events(http_req_t *r)
{
	stream_t *st;
	int rc;

	if (atomic_load(&r->srv->draining) || atomic_load(&ev.draining)) {
		api_unavailable(r, "server is draining");
		return;
	}
	st = calloc(1, sizeof *st);
	if (st == NULL) {
		api_error(r, 500, "internal", "out of memory");
		return;
	}
	pthread_mutex_lock(&ev.mu);
	if (!ev.started) {
		ev.srv = r->srv;
		ev.stop = false;
		atomic_store(&ev.draining, false);
		if (pthread_create(&ev.thread, NULL, ticker, NULL) != 0) {
			pthread_mutex_unlock(&ev.mu);
			free(st);
			api_unavailable(r, "cannot start the event ticker");
			return;
		}
		ev.started = true;
	}
	pthread_mutex_unlock(&ev.mu);
	rc = feed_subscribe(wake, st, &st->sub);
	if (rc != 0) {
		free(st);
		api_unavailable(r, "too many event streams");
		return;
	}
	st->conn = r->conn;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci != NULL) {
		int sndbuf = STREAM_SNDBUF;
		(void)setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
		                 sizeof sndbuf);
	}
	pthread_mutex_lock(&ev.mu);
	st->next = ev.head;
	if (ev.head)
		ev.head->prev = st;
	ev.head = st;
	ev.kick = true; /* the first stats frame without waiting a tick */
	pthread_cond_signal(&ev.cv);
	pthread_mutex_unlock(&ev.mu);
	r->resp.status = 200;
	r->resp.content_type = "text/event-stream";
	r->resp.stream = st;
}

struct MHD_Response *events_response(http_req_t *r)
{
	stream_t *st = r->resp.stream;
	struct MHD_Response *mr;

	r->resp.stream = NULL;
	mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader,
	                                       st, stream_free);
	if (mr == NULL) {
		stream_free(st);
		return NULL;
	}
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	return mr;
}

void events_drain(void)
{
	atomic_store(&ev.draining, true);
	pthread_mutex_lock(&ev.mu);
	ev.kick = true;
	pthread_cond_signal(&ev.cv);
	pthread_mutex_unlock(&ev.mu);
}

void events_stop(void)
{
	bool started;

	events_drain();
	pthread_mutex_lock(&ev.mu);
	ev.stop = true;
	resume_all_locked(); /* MHD_stop_daemon aborts on a suspended one */
	started = ev.started;
	pthread_cond_signal(&ev.cv);
	pthread_mutex_unlock(&ev.mu);
	if (started)
		pthread_join(ev.thread, NULL);
	pthread_mutex_lock(&ev.mu);
	ev.started = false;
	pthread_mutex_unlock(&ev.mu);
}
