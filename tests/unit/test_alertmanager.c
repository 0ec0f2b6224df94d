/*
 * Unit tests for work/alertmanager: the Alertmanager v2 body, and the
 * sender thread against a small HTTP receiver in this process (a real
 * socket and real HTTP; the real Alertmanager is in
 * tests/integration/test_alertmanager.py): a state change is POSTed
 * within a tick, a failed POST is retried, a firing alert is resent, a
 * resolved one is sent once with endsAt at its resolution.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "obs/alerts.h"
#include "obs/metrics.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/timefmt.h"
#include "work/alertmanager.h"

/* ---- the receiver: one request per connection, scripted answers ---- */

#define MAX_BODIES 64

typedef struct receiver {
	int fd;
	int port;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	int fail_next;             /* lock: answer 500 to this many */
	int n;                     /* lock: requests received */
	char *bodies[MAX_BODIES];  /* lock */
	int64_t at_ms[MAX_BODIES]; /* lock: mono ms received */
	char path[MAX_BODIES][64]; /* lock */
	bool stop;                 /* lock */
} receiver_t;

static bool read_request(int c, char *path, size_t plen, char **ret_body)
{
	static const size_t cap = 1 << 16;
	char *buf = malloc(cap + 1);
	size_t len = 0;
	char *end = NULL;
	while (!end && len < cap) {
		ssize_t k = read(c, buf + len, cap - len);
		if (k <= 0)
			goto fail;
		len += (size_t)k;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	if (!end)
		goto fail;
	size_t head = (size_t)(end - buf) + 4;
	const char *cl = strcasestr(buf, "\r\ncontent-length:");
	size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
	if (want > cap - head)
		goto fail;
	while (len < head + want) {
		ssize_t k = read(c, buf + len, cap - len);
		if (k <= 0)
			goto fail;
		len += (size_t)k;
	}
	sscanf(buf, "%*s %63s", path);
	(void)plen;
	char *body = malloc(want + 1);
	memcpy(body, buf + head, want);
	body[want] = '\0';
	*ret_body = body;
	free(buf);
	return true;
fail:
	free(buf);
	return false;
}

static void *receiver_run(void *arg)
{
	receiver_t *r = arg;
	for (;;) {
		int c = accept(r->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		pthread_mutex_lock(&r->lock);
		bool stop = r->stop;
		pthread_mutex_unlock(&r->lock);
		if (stop) {
			close(c);
			return NULL;
		}
		char path[64] = "";
		char *body = NULL;
		if (!read_request(c, path, sizeof path, &body)) {
			close(c);
			continue;
		}
		pthread_mutex_lock(&r->lock);
		int code = 200;
		if (r->fail_next > 0) {
			r->fail_next--;
			code = 500;
		}
		if (r->n < MAX_BODIES) {
			r->bodies[r->n] = body;
			r->at_ms[r->n] = clock_mono_ms();
			snprintf(r->path[r->n], sizeof r->path[0], "%s", path);
			r->n++;
			body = NULL;
		}
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->lock);
		free(body);
		char resp[128];
		int n = snprintf(resp, sizeof resp,
		                 "HTTP/1.1 %d X\r\nContent-Length: 0\r\n"
		                 "Connection: close\r\n\r\n",
		                 code);
		assert_true(write(c, resp, (size_t)n) == n);
		close(c);
	}
}

static receiver_t *receiver_start(void)
{
	receiver_t *r = calloc(1, sizeof *r);
	r->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(r->fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(r->fd, 16), 0);
	socklen_t alen = sizeof a;
	getsockname(r->fd, (struct sockaddr *)&a, &alen);
	r->port = ntohs(a.sin_port);
	pthread_mutex_init(&r->lock, NULL);
	clock_cond_init(&r->cv);
	assert_int_equal(pthread_create(&r->thread, NULL, receiver_run, r), 0);
	return r;
}

static void receiver_stop(receiver_t *r)
{
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_mutex_unlock(&r->lock);
	/* Wake accept() with a connection of our own. */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)r->port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	connect(c, (struct sockaddr *)&a, sizeof a);
	pthread_join(r->thread, NULL);
	close(c);
	close(r->fd);
	for (int i = 0; i < r->n; i++)
		free(r->bodies[i]);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Waits (deadline 10 s) until the receiver got more than n requests;
 * returns the parsed body of request n (caller decrefs). */
static json_t *receiver_wait(receiver_t *r, int n)
{
	int64_t deadline = clock_mono_ms() + 10000;
	struct timespec ts = clock_mono_timespec(deadline);
	pthread_mutex_lock(&r->lock);
	while (r->n <= n && clock_mono_ms() < deadline)
		pthread_cond_timedwait(&r->cv, &r->lock, &ts);
	char *body = r->n > n ? strdup(r->bodies[n]) : NULL;
	pthread_mutex_unlock(&r->lock);
	if (!body)
		fail_msg("no request %d within 10 s", n + 1);
	json_error_t e;
	json_t *j = json_loads(body, 0, &e);
	if (!j)
		fail_msg("not JSON (%s): %s", e.text, body);
	free(body);
	return j;
}

static int receiver_count(receiver_t *r)
{
	pthread_mutex_lock(&r->lock);
	int n = r->n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* ---- fixture: an empty SQLite store for the backlog poll ---- */

typedef struct fixture {
	char path[128];
	store_t *store;
} fixture_t;

static int setup(void **state)
{
	metrics_reset();
	fixture_t *f = calloc(1, sizeof *f);
	snprintf(f->path, sizeof f->path, "/tmp/orderd-test-alertmanager-%d.db",
	         (int)getpid());
	unlink(f->path);
	char uri[160];
	snprintf(uri, sizeof uri, "sqlite:%s", f->path);
	store_options_t opt = {
	    .replica_id = "t", .busy_timeout_ms = 5000, .readers = 2};
	assert_int_equal(store_open(uri, &opt, &f->store), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	store_free(f->store);
	char p[160];
	unlink(f->path);
	snprintf(p, sizeof p, "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", f->path);
	unlink(p);
	free(f);
	return 0;
}

static const char *str(json_t *o, const char *k1, const char *k2)
{
	json_t *v = json_object_get(o, k1);
	if (k2)
		v = json_object_get(v, k2);
	const char *s = json_string_value(v);
	if (!s)
		fail_msg("no string at %s%s%s", k1, k2 ? "." : "",
		         k2 ? k2 : "");
	return s;
}

/* ---- tests ---- */

static void test_payload(void **state)
{
	alert_state_t st[2] = {
	    {.id = ALERT_HIGH_ERROR_RATE,
	     .name = "HighErrorRate",
	     .firing = true,
	     .value = 0.25,
	     .threshold = 0.05,
	     .since_ms = 1764547200000, /* 2025-12-01T00:00:00Z */
	     .started_ms = 1764547200000,
	     .events = 40,
	     .errors = 10},
	    {.id = ALERT_BACKLOG_TOO_OLD,
	     .name = "BacklogTooOld",
	     .firing = false,
	     .value = 12,
	     .threshold = 300,
	     .since_ms = 1764547260500,
	     .started_ms = 1764547200000},
	};
	char *text = alertmanager_payload("r-1", "http://h:8080/v1/alerts", st,
	                                  2, 1764547320000);
	assert_non_null(text);
	json_t *j = json_loads(text, 0, NULL);
	free(text);
	assert_true(json_is_array(j));
	assert_int_equal(json_array_size(j), 2);

	json_t *a = json_array_get(j, 0);
	assert_int_equal(json_object_size(json_object_get(a, "labels")), 4);
	assert_string_equal(str(a, "labels", "alertname"), "HighErrorRate");
	assert_string_equal(str(a, "labels", "service"), "orderd");
	assert_string_equal(str(a, "labels", "replica"), "r-1");
	assert_string_equal(str(a, "labels", "severity"), "critical");
	assert_string_equal(str(a, "annotations", "value"), "0.25");
	assert_string_equal(str(a, "annotations", "threshold"), "0.05");
	assert_non_null(strstr(str(a, "annotations", "summary"), "5%"));
	assert_non_null(strstr(str(a, "annotations", "description"),
	                       "10 of 40 events failed"));
	assert_string_equal(str(a, "startsAt", NULL),
	                    "2025-12-01T00:00:00.000Z");
	/* Firing: endsAt is the one given, in the future. */
	assert_string_equal(str(a, "endsAt", NULL), "2025-12-01T00:02:00.000Z");
	assert_string_equal(str(a, "generatorURL", NULL),
	                    "http://h:8080/v1/alerts");

	json_t *b = json_array_get(j, 1);
	assert_string_equal(str(b, "labels", "alertname"), "BacklogTooOld");
	assert_string_equal(str(b, "labels", "severity"), "warning");
	assert_string_equal(str(b, "annotations", "value"), "12");
	assert_string_equal(str(b, "annotations", "threshold"), "300");
	/* Resolved: endsAt is when it resolved. */
	assert_string_equal(str(b, "startsAt", NULL),
	                    "2025-12-01T00:00:00.000Z");
	assert_string_equal(str(b, "endsAt", NULL), "2025-12-01T00:01:00.500Z");
	json_decref(j);

	text = alertmanager_payload("r-1", "u", st, 0, 0);
	assert_string_equal(text, "[]");
	free(text);
}

static alerts_t *fast_alerts(void)
{
	/* One event fires it; it resolves a 1 s window after the errors
	 * left the 1 s window. */
	alerts_options_t o = {.error_rate = 0.5,
	                      .window_s = 1,
	                      .min_events = 1,
	                      .backlog_s = 300};
	alerts_t *a = NULL;
	assert_int_equal(alerts_new(&o, &a), 0);
	return a;
}

static double counter(const char *line)
{
	char *text = metrics_render();
	const char *p = strstr(text, line);
	double v = p ? strtod(p + strlen(line), NULL) : -1;
	free(text);
	return v;
}

/* Waits (deadline 10 s) for the counter line to reach at least v. */
static double wait_counter(const char *line, double v)
{
	int64_t deadline = clock_mono_ms() + 10000;
	double got;
	while ((got = counter(line)) < v && clock_mono_ms() < deadline)
		clock_sleep_ms(10);
	return got;
}

static void test_sender_lifecycle(void **state)
{
	fixture_t *f = *state;
	receiver_t *r = receiver_start();
	alerts_t *a = fast_alerts();
	char url[96];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v2/alerts", r->port);
	alertmanager_options_t o = {.url = url,
	                            .replica_id = "r-1",
	                            .listen = "0.0.0.0:8080",
	                            .backlog_s = 300,
	                            .tick_ms = 50,
	                            .resend_ms = 1000,
	                            .timeout_ms = 2000};
	alertmanager_t *m = NULL;
	assert_int_equal(alertmanager_new(&o, a, f->store, &m), 0);

	/* Nothing fires: nothing is sent. */
	clock_sleep_ms(300);
	assert_int_equal(receiver_count(r), 0);

	/* It fires; the first POST fails (500) and is retried next tick. */
	pthread_mutex_lock(&r->lock);
	r->fail_next = 1;
	pthread_mutex_unlock(&r->lock);
	int64_t fired = clock_wall_ms();
	alerts_record(a, true);
	json_t *j = receiver_wait(r, 0);
	json_decref(j);
	j = receiver_wait(r, 1);
	assert_string_equal(r->path[1], "/api/v2/alerts");
	/* Retried on the next tick, not at the next resend. */
	pthread_mutex_lock(&r->lock);
	int64_t retry_gap = r->at_ms[1] - r->at_ms[0];
	pthread_mutex_unlock(&r->lock);
	assert_true(retry_gap < 700);
	assert_int_equal(json_array_size(j), 1);
	json_t *al = json_array_get(j, 0);
	assert_string_equal(str(al, "labels", "alertname"), "HighErrorRate");
	assert_string_equal(str(al, "labels", "replica"), "r-1");
	char host[256], gen[300];
	gethostname(host, sizeof host);
	snprintf(gen, sizeof gen, "http://%s:8080/v1/alerts", host);
	assert_string_equal(str(al, "generatorURL", NULL), gen);
	char t[TIMEFMT_LEN];
	timefmt_rfc3339(fired - 1000, t);
	assert_true(strcmp(str(al, "startsAt", NULL), t) > 0);
	/* endsAt: 4 resend intervals ahead. */
	timefmt_rfc3339(clock_wall_ms() + 3000, t);
	assert_true(strcmp(str(al, "endsAt", NULL), t) > 0);
	json_decref(j);
	/* The receiver counts before it answers: the sender's count follows. */
	assert_true(wait_counter("orderd_alert_notifications_total{outcome="
	                         "\"sent\"} ",
	                         1) >= 1);
	assert_true(counter("orderd_alert_notifications_total{outcome="
	                    "\"error\"} ") == 1);

	/* While it fires (keep the errors coming), it is resent about every
	 * resend interval, never every tick. */
	int64_t until = clock_mono_ms() + 1500;
	while (clock_mono_ms() < until) {
		alerts_record(a, true);
		clock_sleep_ms(50);
	}
	j = receiver_wait(r, 2);
	assert_string_equal(str(json_array_get(j, 0), "labels", "alertname"),
	                    "HighErrorRate");
	json_decref(j);
	pthread_mutex_lock(&r->lock);
	int64_t gap = r->at_ms[2] - r->at_ms[1];
	int n = r->n;
	pthread_mutex_unlock(&r->lock);
	assert_true(gap >= 950);
	assert_true(n <= 5); /* 1.5 s / 1 s, plus slack */

	/* The errors stop: resolved after both windows, sent once with
	 * endsAt = its resolution (in the past by the time it arrives). */
	int64_t deadline = clock_mono_ms() + 10000;
	json_t *resolved = NULL;
	for (int i = n; !resolved && clock_mono_ms() < deadline; i++) {
		j = receiver_wait(r, i);
		json_t *x = json_array_get(j, 0);
		timefmt_rfc3339(clock_wall_ms(), t);
		if (strcmp(str(x, "endsAt", NULL), t) <= 0)
			resolved = j;
		else
			json_decref(j);
	}
	assert_non_null(resolved);
	json_decref(resolved);
	/* And then quiet: no resend of a resolved alert. */
	int after = receiver_count(r);
	clock_sleep_ms(1000);
	assert_int_equal(receiver_count(r), after);

	alertmanager_free(m);
	alerts_free(a);
	receiver_stop(r);
}

/* No webhook: the thread still evaluates (HighErrorRate resolves on
 * time without events); a dead webhook costs only error counts. */
static void test_sender_without_or_dead_webhook(void **state)
{
	fixture_t *f = *state;
	alerts_t *a = fast_alerts();
	alertmanager_options_t o = {.replica_id = "r-1",
	                            .listen = "127.0.0.1:1",
	                            .backlog_s = 300,
	                            .tick_ms = 50};
	alertmanager_t *m = NULL;
	assert_int_equal(alertmanager_new(&o, a, f->store, &m), 0);
	alert_state_t st[ALERT_COUNT];
	alerts_record(a, true);
	alerts_list(a, st, ALERT_COUNT);
	assert_true(st[0].firing);
	alertmanager_free(m);

	/* A port nobody listens on. */
	receiver_t *r = receiver_start();
	char url[96];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/", r->port);
	receiver_stop(r);
	o.url = url;
	assert_int_equal(alertmanager_new(&o, a, f->store, &m), 0);
	wait_counter("orderd_alert_notifications_total{outcome=\"error\"} ", 2);
	assert_true(
	    counter("orderd_alert_notifications_total{outcome=\"error\"} ") >=
	    2);
	int64_t t0 = clock_mono_ms();
	alertmanager_free(m);
	assert_true(clock_mono_ms() - t0 < 3000);
	alerts_free(a);

	alertmanager_options_t bad = {.backlog_s = 300};
	assert_int_equal(alertmanager_new(&bad, NULL, f->store, &m), OD_EINVAL);
	alertmanager_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_payload),
	    cmocka_unit_test_setup_teardown(test_sender_lifecycle, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_sender_without_or_dead_webhook,
	                                    setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
