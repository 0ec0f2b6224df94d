/* Unit tests for obs/alerts: window sums, HighErrorRate (threshold,
 * minimum events, hysteresis) and BacklogTooOld, on an injected clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "obs/alerts.h"
#include "obs/metrics.h"
#include "util/clock.h"
#include "util/err.h"

static int saved_stderr = -1;
static FILE *capture;

static void capture_begin(void)
{
	capture = tmpfile();
	assert_non_null(capture);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
}

/* Restores stderr; returns the captured text (caller frees). */
static char *capture_end(void)
{
	assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
	close(saved_stderr);
	static const size_t max = 65536;
	char *buf = malloc(max + 1);
	assert_non_null(buf);
	rewind(capture);
	size_t n = fread(buf, 1, max, capture);
	buf[n] = '\0';
	fclose(capture);
	return buf;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static int setup(void **state)
{
	metrics_reset();
	return 0;
}

static void test_window_sums(void **state)
{
	alerts_window_t *w = NULL;
	assert_int_equal(alerts_window_new(0, &w), OD_EINVAL);
	assert_int_equal(alerts_window_new(3601, &w), OD_EINVAL);
	assert_null(w);
	assert_int_equal(alerts_window_new(5, &w), 0);
	assert_int_equal(alerts_window_sum(w), 0);
	alerts_window_add(w, 3);
	alerts_window_add(w, 4);
	assert_int_equal(alerts_window_sum(w), 7);
	alerts_window_free(w);
	alerts_window_free(NULL);
}

static void test_window_expires(void **state)
{
	alerts_window_t *w = NULL;
	assert_int_equal(alerts_window_new(1, &w), 0);
	alerts_window_add(w, 5);
	assert_int_equal(alerts_window_sum(w), 5);
	/* A 1 s window holds the last full second and the current one. */
	clock_sleep_ms(2100);
	assert_int_equal(alerts_window_sum(w), 0);
	alerts_window_add(w, 2);
	assert_int_equal(alerts_window_sum(w), 2);
	alerts_window_free(w);
}

static void assert_gauge(const char *value_line)
{
	char *text = metrics_render();
	assert_non_null(text);
	assert_non_null(strstr(text, value_line));
	free(text);
}

/* The injectable clock: tests move time by hand. */
struct fake_clock {
	int64_t mono_ms, wall_ms;
};

static int64_t fake_mono(void *arg)
{
	return ((struct fake_clock *)arg)->mono_ms;
}

static int64_t fake_wall(void *arg)
{
	return ((struct fake_clock *)arg)->wall_ms;
}

static void advance(struct fake_clock *c, int64_t ms)
{
	c->mono_ms += ms;
	c->wall_ms += ms;
}

static alerts_t *new_alerts(struct fake_clock *c, double rate, int window_s,
                            int64_t min_events, int64_t backlog_s)
{
	alerts_options_t o = {
	    .error_rate = rate,
	    .window_s = window_s,
	    .min_events = min_events,
	    .backlog_s = backlog_s,
	    .mono_ms = fake_mono,
	    .wall_ms = fake_wall,
	    .clock_arg = c,
	};
	alerts_t *a = NULL;
	assert_int_equal(alerts_new(&o, &a), 0);
	return a;
}

static alert_state_t get(alerts_t *a, alert_id_t id)
{
	alert_state_t st[ALERT_COUNT];
	assert_int_equal(alerts_list(a, st, ALERT_COUNT), ALERT_COUNT);
	return st[id];
}

static void record_n(alerts_t *a, int n, bool is_error)
{
	for (int i = 0; i < n; i++)
		alerts_record(a, is_error);
}

static void test_alert_options(void **state)
{
	alerts_options_t o = {.error_rate = 1.5,
	                      .window_s = 60,
	                      .min_events = 20,
	                      .backlog_s = 300};
	alerts_t *a = NULL;
	assert_int_equal(alerts_new(&o, &a), OD_EINVAL);
	o.error_rate = 0.1;
	o.window_s = 0;
	assert_int_equal(alerts_new(&o, &a), OD_EINVAL);
	o.window_s = 60;
	o.backlog_s = 0;
	assert_int_equal(alerts_new(&o, &a), OD_EINVAL);
	o.backlog_s = 300;
	o.min_events = -1;
	assert_int_equal(alerts_new(&o, &a), OD_EINVAL);
	assert_null(a);
	o.min_events = 20;
	/* The real clocks when none is given. */
	assert_int_equal(alerts_new(&o, &a), 0);
	assert_gauge("orderd_alert_firing{alert=\"HighErrorRate\"} 0\n");
	assert_gauge("orderd_alert_firing{alert=\"BacklogTooOld\"} 0\n");

	alert_state_t st[3];
	assert_int_equal(alerts_list(a, st, 3), 2);
	assert_int_equal(st[0].id, ALERT_HIGH_ERROR_RATE);
	assert_string_equal(st[0].name, "HighErrorRate");
	assert_int_equal(st[1].id, ALERT_BACKLOG_TOO_OLD);
	assert_string_equal(st[1].name, "BacklogTooOld");
	assert_false(st[0].firing);
	assert_false(st[1].firing);
	assert_true(st[0].threshold == 0.1);
	assert_true(st[1].threshold == 300);
	assert_int_equal(st[0].since_ms, 0);
	assert_int_equal(st[0].started_ms, 0);
	assert_int_equal(st[0].changes, 0);
	assert_int_equal(alerts_list(a, st, 1), 1);
	assert_int_equal(alerts_list(a, st, 0), 0);
	alerts_free(a);
	alerts_free(NULL);
}

static void test_error_rate_fires(void **state)
{
	struct fake_clock c = {1000000, 1700000000000};
	alerts_t *a = new_alerts(&c, 0.1, 60, 20, 300);

	capture_begin();
	/* All errors, but below min_events: quiet. */
	record_n(a, 19, true);
	alert_state_t st = get(a, ALERT_HIGH_ERROR_RATE);
	assert_false(st.firing);
	assert_true(st.value == 1.0);
	assert_int_equal(st.events, 19);

	/* The 20th event reaches min_events: fires. */
	advance(&c, 10);
	alerts_record(a, false);
	st = get(a, ALERT_HIGH_ERROR_RATE);
	assert_true(st.firing);
	assert_true(st.value == 0.95);
	assert_int_equal(st.events, 20);
	assert_int_equal(st.errors, 19);
	assert_int_equal(st.since_ms, c.wall_ms);
	assert_int_equal(st.started_ms, c.wall_ms);
	assert_int_equal(st.changes, 1);
	assert_gauge("orderd_alert_firing{alert=\"HighErrorRate\"} 1\n");
	assert_gauge("orderd_alert_firing{alert=\"BacklogTooOld\"} 0\n");

	/* Still firing: no second log line, nothing changes. */
	advance(&c, 1000);
	alerts_record(a, true);
	st = get(a, ALERT_HIGH_ERROR_RATE);
	assert_true(st.firing);
	assert_int_equal(st.changes, 1);
	char *out = capture_end();

	assert_int_equal(count(out, "\n"), 1);
	assert_non_null(strstr(out,
	                       "\"level\":\"warn\",\"msg\":\"alert firing\","
	                       "\"alert\":\"HighErrorRate\","
	                       "\"value\":\"0.95\",\"threshold\":\"0.1\","
	                       "\"events\":\"20\",\"errors\":\"19\""));
	free(out);
	alerts_free(a);
}

static void test_error_rate_at_threshold_does_not_fire(void **state)
{
	struct fake_clock c = {5000, 1};
	alerts_t *a = new_alerts(&c, 0.5, 60, 4, 300);
	capture_begin();
	alerts_record(a, true);
	alerts_record(a, false);
	alerts_record(a, true);
	alerts_record(a, false);
	assert_false(get(a, ALERT_HIGH_ERROR_RATE).firing); /* 0.5 is not > */
	alerts_record(a, true);
	assert_true(get(a, ALERT_HIGH_ERROR_RATE).firing); /* 0.6 is */
	char *out = capture_end();
	assert_int_equal(count(out, "alert firing"), 1);
	free(out);
	alerts_free(a);
}

/*
 * Hysteresis: once the rate is back at or below the threshold, the alert
 * keeps firing for a full window, and a new breach within that window
 * starts the wait again.
 */
static void test_error_rate_resolves_after_full_window(void **state)
{
	struct fake_clock c = {100000, 1700000000000};
	alerts_t *a = new_alerts(&c, 0.1, 10, 20, 300);
	capture_begin();
	record_n(a, 20, true);
	alert_state_t st = get(a, ALERT_HIGH_ERROR_RATE);
	assert_true(st.firing);
	int64_t started = st.started_ms;

	/* Enough good events in the same second to bring the rate to 0.1:
	 * at the threshold, no longer above it. The clear period begins. */
	record_n(a, 180, false);
	st = get(a, ALERT_HIGH_ERROR_RATE);
	assert_true(st.value == 0.1);
	assert_true(st.firing);

	/* Nine seconds later: still firing. */
	for (int i = 0; i < 9; i++) {
		advance(&c, 1000);
		assert_true(get(a, ALERT_HIGH_ERROR_RATE).firing);
	}
	/* A burst of errors breaches again: the wait starts over. */
	record_n(a, 100, true);
	assert_true(get(a, ALERT_HIGH_ERROR_RATE).value > 0.1);
	/* The burst ages out of the 10 s window (10 full seconds plus the
	 * current one): clear again from then on. */
	for (int i = 0; i < 11; i++) {
		advance(&c, 1000);
		assert_true(get(a, ALERT_HIGH_ERROR_RATE).firing);
	}
	st = get(a, ALERT_HIGH_ERROR_RATE);
	assert_true(st.value <= 0.1); /* no events left: 0 */
	assert_int_equal(st.events, 0);
	for (int i = 0; i < 9; i++) {
		advance(&c, 1000);
		assert_true(get(a, ALERT_HIGH_ERROR_RATE).firing);
	}
	/* A full window at or below the threshold: resolved. */
	advance(&c, 1000);
	st = get(a, ALERT_HIGH_ERROR_RATE);
	assert_false(st.firing);
	assert_int_equal(st.since_ms, c.wall_ms);
	assert_int_equal(st.started_ms, started); /* the episode's start */
	assert_int_equal(st.changes, 2);
	assert_gauge("orderd_alert_firing{alert=\"HighErrorRate\"} 0\n");

	/* Resolved means quiet: a clean window does not fire it again, a
	 * new breach does, at once, as a new episode. */
	advance(&c, 5000);
	record_n(a, 20, false);
	assert_false(get(a, ALERT_HIGH_ERROR_RATE).firing);
	record_n(a, 10, true);
	st = get(a, ALERT_HIGH_ERROR_RATE);
	assert_true(st.firing);
	assert_int_equal(st.started_ms, c.wall_ms);
	assert_int_equal(st.changes, 3);
	char *out = capture_end();
	assert_int_equal(count(out, "\"msg\":\"alert firing\""), 2);
	assert_int_equal(count(out, "\"msg\":\"alert resolved\""), 1);
	assert_non_null(strstr(out, "\"level\":\"info\",\"msg\":\"alert "
	                            "resolved\",\"alert\":\"HighErrorRate\""));
	free(out);
	alerts_free(a);
}

static void test_backlog(void **state)
{
	struct fake_clock c = {100000, 1700000000000};
	alerts_t *a = new_alerts(&c, 0.05, 60, 20, 300);
	capture_begin();
	alerts_set_backlog(a, 300000); /* exactly the threshold: not above */
	alert_state_t st = get(a, ALERT_BACKLOG_TOO_OLD);
	assert_false(st.firing);
	assert_true(st.value == 300);
	alerts_set_backlog(a, 300001);
	st = get(a, ALERT_BACKLOG_TOO_OLD);
	assert_true(st.firing);
	assert_true(st.value == 300.001);
	assert_int_equal(st.started_ms, c.wall_ms);
	assert_gauge("orderd_alert_firing{alert=\"BacklogTooOld\"} 1\n");
	assert_false(get(a, ALERT_HIGH_ERROR_RATE).firing);
	/* Resolves as soon as the backlog is young again. */
	advance(&c, 2000);
	alerts_set_backlog(a, 0);
	st = get(a, ALERT_BACKLOG_TOO_OLD);
	assert_false(st.firing);
	assert_int_equal(st.since_ms, c.wall_ms);
	assert_int_equal(st.changes, 2);
	alerts_set_backlog(a, -5); /* nonsense reads as none */
	assert_true(get(a, ALERT_BACKLOG_TOO_OLD).value == 0);
	assert_gauge("orderd_alert_firing{alert=\"BacklogTooOld\"} 0\n");
	char *out = capture_end();
	assert_int_equal(count(out, "\n"), 2);
	assert_non_null(strstr(out,
	                       "\"msg\":\"alert firing\","
	                       "\"alert\":\"BacklogTooOld\","
	                       "\"value\":\"300\",\"threshold\":\"300\"}"));
	assert_non_null(strstr(out, "\"msg\":\"alert resolved\","
	                            "\"alert\":\"BacklogTooOld\""));
	free(out);
	alerts_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_window_sums, setup),
	    cmocka_unit_test_setup(test_window_expires, setup),
	    cmocka_unit_test_setup(test_alert_options, setup),
	    cmocka_unit_test_setup(test_error_rate_fires, setup),
	    cmocka_unit_test_setup(test_error_rate_at_threshold_does_not_fire,
	                           setup),
	    cmocka_unit_test_setup(test_error_rate_resolves_after_full_window,
	                           setup),
	    cmocka_unit_test_setup(test_backlog, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
