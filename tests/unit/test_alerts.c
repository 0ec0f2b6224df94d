/* Unit tests for obs/alerts: window sums and the high_error_rate alert. */
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

static void test_alert_lifecycle(void **state)
{
	alerts_t *a = NULL;
	assert_int_equal(alerts_new(1.5, 60, 20, &a), OD_EINVAL);
	assert_int_equal(alerts_new(0.1, 0, 20, &a), OD_EINVAL);
	assert_null(a);
	assert_int_equal(alerts_new(0.1, 60, 20, &a), 0);
	assert_gauge("orderd_alert_firing{alert=\"high_error_rate\"} 0\n");

	alert_state_t st[2];
	assert_int_equal(alerts_list(a, st, 2), 1);
	assert_string_equal(st[0].name, "high_error_rate");
	assert_false(st[0].firing);
	assert_true(st[0].threshold == 0.1);
	assert_int_equal(st[0].since_ms, 0);
	assert_int_equal(alerts_list(a, st, 0), 0);

	capture_begin();
	/* All errors, but below min_requests: quiet. */
	for (int i = 0; i < 19; i++)
		alerts_record(a, true);
	alerts_list(a, st, 1);
	assert_false(st[0].firing);
	assert_true(st[0].value == 1.0);

	/* The 20th request reaches min_requests: fires. */
	int64_t before = clock_wall_ms();
	alerts_record(a, false);
	alerts_list(a, st, 1);
	assert_true(st[0].firing);
	assert_true(st[0].value == 0.95);
	assert_true(st[0].since_ms >= before);
	int64_t fired_at = st[0].since_ms;
	assert_gauge("orderd_alert_firing{alert=\"high_error_rate\"} 1\n");

	/* Still firing: no second log line, since unchanged. */
	alerts_list(a, st, 1);
	alerts_record(a, true);
	alerts_list(a, st, 1);
	assert_true(st[0].firing);
	assert_int_equal(st[0].since_ms, fired_at);

	/* 20 errors in 400 requests is 0.05 <= 0.1: resolves. */
	for (int i = 0; i < 379; i++)
		alerts_record(a, false);
	alerts_list(a, st, 1);
	assert_false(st[0].firing);
	assert_true(st[0].value == 0.05);
	assert_true(st[0].since_ms >= fired_at);
	assert_gauge("orderd_alert_firing{alert=\"high_error_rate\"} 0\n");
	char *out = capture_end();

	assert_int_equal(count(out, "\n"), 2);
	assert_int_equal(count(out, "\"msg\":\"alert firing\""), 1);
	assert_int_equal(count(out, "\"msg\":\"alert resolved\""), 1);
	assert_non_null(strstr(out,
	                       "\"level\":\"warn\",\"msg\":\"alert firing\","
	                       "\"alert\":\"high_error_rate\","
	                       "\"value\":\"0.95\",\"threshold\":\"0.1\""));
	assert_non_null(
	    strstr(out, "\"level\":\"info\",\"msg\":\"alert resolved\""));
	free(out);
	alerts_free(a);
	alerts_free(NULL);
}

static void test_alert_at_threshold_does_not_fire(void **state)
{
	alerts_t *a = NULL;
	assert_int_equal(alerts_new(0.5, 60, 4, &a), 0);
	capture_begin();
	alerts_record(a, true);
	alerts_record(a, false);
	alerts_record(a, true);
	alerts_record(a, false);
	alert_state_t st;
	alerts_list(a, &st, 1);
	assert_false(st.firing); /* 0.5 is not above 0.5 */
	alerts_record(a, true);
	alerts_list(a, &st, 1);
	assert_true(st.firing); /* 0.6 is */
	char *out = capture_end();
	assert_int_equal(count(out, "alert firing"), 1);
	free(out);
	alerts_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_window_sums, setup),
	    cmocka_unit_test_setup(test_window_expires, setup),
	    cmocka_unit_test_setup(test_alert_lifecycle, setup),
	    cmocka_unit_test_setup(test_alert_at_threshold_does_not_fire,
	                           setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
