/*
 * feed: subscriber rings behind one mutex (see feed.h). A ring is a
 * linear buffer [start, end) grown by doubling up to FEED_RING_MAX and
 * compacted when the front is consumed, so an idle stream holds little.
 */
#include "obs/feed.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/metrics.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/timefmt.h"

struct feed_sub {
	char *data;
	size_t start, end, cap;
	bool dropped, used;
	feed_wake_fn wake;
	void *arg;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static feed_sub_t subs[FEED_SUBS_MAX]; /* mu */
static int max_subs = 64;              /* set once at start */
static atomic_int n_subs;
static metric_t *m_streams, *m_dropped;
static char self[128]; /* this replica, set once at start */

void feed_init(int max, const char *replica)
{
	snprintf(self, sizeof self, "%s", replica ? replica : "");
	max_subs = max < 1 ? 1 : max > FEED_SUBS_MAX ? FEED_SUBS_MAX : max;
	m_streams = metrics_child0(
	    metrics_family(METRIC_GAUGE, "orderd_event_streams",
	                   "Open GET /v1/events streams", NULL, NULL, 0));
	m_dropped = metrics_child0(metrics_family(
	    METRIC_COUNTER, "orderd_event_streams_dropped_total",
	    "Event streams ended because the reader fell 256 KiB behind", NULL,
	    NULL, 0));
}

bool feed_active(void)
{
	return atomic_load_explicit(&n_subs, memory_order_relaxed) > 0;
}

int feed_count(void)
{
	return atomic_load(&n_subs);
}

/* mu held. */
static void append_locked(feed_sub_t *s, const char *text, size_t len)
{
	if (s->dropped)
		return;
	if (s->start > 0 && s->end + len > s->cap) {
		memmove(s->data, s->data + s->start, s->end - s->start);
		s->end -= s->start;
		s->start = 0;
	}
	if (s->end + len > FEED_RING_MAX) {
		s->dropped = true;
		if (m_dropped)
			metrics_inc(m_dropped);
		return;
	}
	if (s->end + len > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->end + len)
			cap *= 2;
		if (cap > FEED_RING_MAX)
			cap = FEED_RING_MAX;
		char *d = realloc(s->data, cap);
		if (d == NULL) {
			s->dropped = true; /* the same as falling behind */
			if (m_dropped)
				metrics_inc(m_dropped);
			return;
		}
		s->data = d;
		s->cap = cap;
	}
	memcpy(s->data + s->end, text, len);
	s->end += len;
}

void feed_publish(const char *text, size_t len)
{
	if (!feed_active() || len == 0)
		return;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < max_subs; i++) {
		if (!subs[i].used)
			continue;
		append_locked(&subs[i], text, len);
		if (subs[i].wake)
			subs[i].wake(subs[i].arg);
	}
	pthread_mutex_unlock(&mu);
}

int feed_subscribe(feed_wake_fn wake, void *arg, feed_sub_t **ret)
{
	int rc = OD_EBUSY;

	pthread_mutex_lock(&mu);
	for (int i = 0; i < max_subs; i++) {
		if (subs[i].used)
			continue;
		subs[i] = (feed_sub_t){.used = true, .wake = wake, .arg = arg};
		atomic_fetch_add(&n_subs, 1);
		if (m_streams)
			metrics_add(m_streams, 1);
		*ret = &subs[i];
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

void feed_unsubscribe(feed_sub_t *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&mu);
	free(s->data);
	*s = (feed_sub_t){0};
	atomic_fetch_sub(&n_subs, 1);
	if (m_streams)
		metrics_add(m_streams, -1);
	pthread_mutex_unlock(&mu);
}

size_t feed_read(feed_sub_t *s, char *buf, size_t max, bool *ret_dropped)
{
	size_t n;

	pthread_mutex_lock(&mu);
	*ret_dropped = s->dropped;
	n = s->end - s->start;
	if (n > max)
		n = max;
	if (n > 0)
		memcpy(buf, s->data + s->start, n);
	s->start += n;
	if (s->start == s->end)
		s->start = s->end = 0;
	pthread_mutex_unlock(&mu);
	return n;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

void feed_order(const char *id, const char *status, const char *event,
                long long fence, const char *replica, const char *reason)
{
	char at[TIMEFMT_LEN];

	if (!feed_active())
		return;
	timefmt_rfc3339(clock_wall_ms(), at);
	json_t *j = json_pack("{s:o,s:o,s:o,s:s,s:o,s:o,s:o}", "id",
	                      str_or_null(id), "status", str_or_null(status),
	                      "event", str_or_null(event), "at", at, "fence",
	                      fence >= 0 ? json_integer(fence) : json_null(),
	                      "replica", str_or_null(replica ? replica : self),
	                      "reason", str_or_null(reason));
	feed_publish_json("order", j);
}

void feed_publish_json(const char *event, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (text == NULL)
		return;
	size_t n = strlen(text) + strlen(event) + sizeof "event: \ndata: \n\n";
	char *frame = malloc(n);
	if (frame != NULL) {
		int len =
		    snprintf(frame, n, "event: %s\ndata: %s\n\n", event, text);
		feed_publish(frame, (size_t)len);
		free(frame);
	}
	free(text);
}
