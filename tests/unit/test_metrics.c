/* Unit tests for obs/metrics: exact exposition text, caps, concurrency. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "obs/metrics.h"

static int setup(void **state)
{
	metrics_reset();
	return 0;
}

static int teardown(void **state)
{
	metrics_reset();
	return 0;
}

static void assert_render(const char *want)
{
	char *got = metrics_render();
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_counter_with_labels(void **state)
{
	static const char *const labels[] = {"route", "code", NULL};
	metric_family_t *f =
	    metrics_family(METRIC_COUNTER, "t_requests_total",
	                   "Requests answered.", labels, NULL, 0);
	assert_non_null(f);
	metric_t *ok = metrics_child2(f, "/v1/orders", "200");
	metrics_inc(ok);
	metrics_inc(ok);
	metrics_inc(metrics_child2(f, "/v1/orders", "200"));
	metrics_add(metrics_child2(f, "/v1/x", "500"), 2.5);
	assert_ptr_equal(ok, metrics_child2(f, "/v1/orders", "200"));
	assert_true(metrics_value(ok) == 3);
	assert_render("# HELP t_requests_total Requests answered.\n"
	              "# TYPE t_requests_total counter\n"
	              "t_requests_total{route=\"/v1/orders\",code=\"200\"} 3\n"
	              "t_requests_total{route=\"/v1/x\",code=\"500\"} 2.5\n");
}

static void test_gauge_and_order(void **state)
{
	metric_family_t *g =
	    metrics_family(METRIC_GAUGE, "t_b_gauge", "B.", NULL, NULL, 0);
	metric_family_t *c =
	    metrics_family(METRIC_COUNTER, "t_a_total", "A.", NULL, NULL, 0);
	assert_non_null(g);
	assert_non_null(c);
	/* Unlabelled families appear (as 0) before their first update, and
	 * families render in registration order, not by name. */
	assert_render("# HELP t_b_gauge B.\n# TYPE t_b_gauge gauge\n"
	              "t_b_gauge 0\n"
	              "# HELP t_a_total A.\n# TYPE t_a_total counter\n"
	              "t_a_total 0\n");
	metrics_set(metrics_child0(g), 42);
	metrics_set(metrics_child0(g), -1.5);
	metrics_add(metrics_child0(g), 0.25);
	metrics_inc(metrics_child0(c));
	assert_render("# HELP t_b_gauge B.\n# TYPE t_b_gauge gauge\n"
	              "t_b_gauge -1.25\n"
	              "# HELP t_a_total A.\n# TYPE t_a_total counter\n"
	              "t_a_total 1\n");
}

static void test_histogram(void **state)
{
	static const double b[] = {0.1, 1, 10};
	static const char *const labels[] = {"op", NULL};
	metric_family_t *f = metrics_family(METRIC_HISTOGRAM, "t_seconds",
	                                    "Latency.", labels, b, 3);
	assert_non_null(f);
	metric_t *m = metrics_child1(f, "claim");
	metrics_observe(m, 0.0625);
	metrics_observe(m, 0.5);
	metrics_observe(m, 1); /* le is inclusive */
	metrics_observe(m, 4);
	metrics_observe(m, 100);
	assert_true(metrics_value(m) == 5);
	assert_render("# HELP t_seconds Latency.\n"
	              "# TYPE t_seconds histogram\n"
	              "t_seconds_bucket{op=\"claim\",le=\"0.1\"} 1\n"
	              "t_seconds_bucket{op=\"claim\",le=\"1\"} 3\n"
	              "t_seconds_bucket{op=\"claim\",le=\"10\"} 4\n"
	              "t_seconds_bucket{op=\"claim\",le=\"+Inf\"} 5\n"
	              "t_seconds_sum{op=\"claim\"} 105.5625\n"
	              "t_seconds_count{op=\"claim\"} 5\n");
}

static void test_histogram_unlabelled_latency(void **state)
{
	assert_int_equal(metrics_latency_n_buckets, 13);
	metric_family_t *f =
	    metrics_family(METRIC_HISTOGRAM, "t_lat", "L.", NULL,
	                   metrics_latency_buckets, metrics_latency_n_buckets);
	metrics_observe(metrics_child0(f), 0.003);
	char *got = metrics_render();
	assert_non_null(got);
	assert_non_null(strstr(got, "t_lat_bucket{le=\"0.001\"} 0\n"
	                            "t_lat_bucket{le=\"0.0025\"} 0\n"
	                            "t_lat_bucket{le=\"0.005\"} 1\n"));
	assert_non_null(strstr(got, "t_lat_bucket{le=\"10\"} 1\n"
	                            "t_lat_bucket{le=\"+Inf\"} 1\n"
	                            "t_lat_sum 0.003\n"
	                            "t_lat_count 1\n"));
	free(got);
}

static void test_escaping(void **state)
{
	static const char *const labels[] = {"v", NULL};
	metric_family_t *f = metrics_family(
	    METRIC_GAUGE, "t_esc", "Back\\slash \"q\"\nline.", labels, NULL, 0);
	metrics_set(metrics_child1(f, "a\"b\\c\nd"), 1);
	/* HELP escapes backslash and newline only; label values also the
	 * double quote. */
	assert_render("# HELP t_esc Back\\\\slash \"q\"\\nline.\n"
	              "# TYPE t_esc gauge\n"
	              "t_esc{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

static void test_child_cap(void **state)
{
	static const char *const labels[] = {"k", "j", NULL};
	metric_family_t *f = metrics_family(METRIC_COUNTER, "t_cap_total",
	                                    "Capped.", labels, NULL, 0);
	metric_t *first = NULL;
	for (int i = 0; i < METRICS_MAX_CHILDREN; i++) {
		char v[16];
		snprintf(v, sizeof v, "v%d", i);
		metric_t *m = metrics_child2(f, v, "x");
		assert_non_null(m);
		if (i == 0)
			first = m;
		metrics_inc(m);
	}
	metric_t *o1 = metrics_child2(f, "new1", "x");
	metric_t *o2 = metrics_child2(f, "new2", "y");
	assert_non_null(o1);
	assert_ptr_equal(o1, o2);
	assert_ptr_not_equal(o1, first);
	/* Existing children are still found past the cap. */
	assert_ptr_equal(first, metrics_child2(f, "v0", "x"));
	metrics_inc(o1);
	metrics_inc(o2);
	char *got = metrics_render();
	assert_non_null(got);
	assert_non_null(
	    strstr(got, "t_cap_total{k=\"other\",j=\"other\"} 2\n"));
	assert_null(strstr(got, "new1"));
	int lines = 0;
	for (const char *p = got; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 2 + METRICS_MAX_CHILDREN + 1);
	free(got);
}

static void test_idempotent_family(void **state)
{
	static const char *const labels[] = {"a", NULL};
	static const char *const other[] = {"b", NULL};
	metric_family_t *f1 = metrics_family(METRIC_COUNTER, "t_idem_total",
	                                     "Idem.", labels, NULL, 0);
	metric_family_t *f2 = metrics_family(METRIC_COUNTER, "t_idem_total",
	                                     "Idem again.", labels, NULL, 0);
	assert_non_null(f1);
	assert_ptr_equal(f1, f2);
	/* A clash in type or labels is refused, and NULL is harmless. */
	assert_null(
	    metrics_family(METRIC_GAUGE, "t_idem_total", "x", labels, NULL, 0));
	metric_family_t *bad =
	    metrics_family(METRIC_COUNTER, "t_idem_total", "x", other, NULL, 0);
	assert_null(bad);
	assert_null(metrics_child1(bad, "v"));
	metrics_inc(metrics_child1(bad, "v"));
	metrics_inc(metrics_child1(f2, "v"));
	assert_render("# HELP t_idem_total Idem.\n"
	              "# TYPE t_idem_total counter\n"
	              "t_idem_total{a=\"v\"} 1\n");
}

static int collect_calls;

static void collect(void *arg)
{
	collect_calls++;
	/* Callbacks may create children: they run outside the lock. */
	metrics_set(metrics_child1(arg, "pending"), collect_calls * 10);
}

static void test_collect_callback(void **state)
{
	static const char *const labels[] = {"status", NULL};
	metric_family_t *f = metrics_family(METRIC_GAUGE, "t_orders", "Orders.",
	                                    labels, NULL, 0);
	collect_calls = 0;
	metrics_on_collect(collect, f);
	assert_render("# HELP t_orders Orders.\n# TYPE t_orders gauge\n"
	              "t_orders{status=\"pending\"} 10\n");
	assert_render("# HELP t_orders Orders.\n# TYPE t_orders gauge\n"
	              "t_orders{status=\"pending\"} 20\n");
	assert_int_equal(collect_calls, 2);
}

#define THREADS 4
#define PER_THREAD 100000

struct worker_arg {
	metric_family_t *counter, *hist;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	metric_t *h = metrics_child0(a->hist);
	for (int i = 0; i < PER_THREAD; i++) {
		/* A fresh lookup each time, so child lookup races too. */
		metrics_inc(metrics_child1(a->counter, "x"));
		metrics_observe(h, 0.5);
	}
	return NULL;
}

static void test_concurrent_increments(void **state)
{
	static const char *const labels[] = {"k", NULL};
	static const double b[] = {1};
	struct worker_arg a = {
	    .counter = metrics_family(METRIC_COUNTER, "t_conc_total", "C.",
	                              labels, NULL, 0),
	    .hist = metrics_family(METRIC_HISTOGRAM, "t_conc_seconds", "H.",
	                           NULL, b, 1),
	};
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, &a), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_true(metrics_value(metrics_child1(a.counter, "x")) ==
	            THREADS * PER_THREAD);
	char *got = metrics_render();
	assert_non_null(got);
	assert_non_null(strstr(got, "t_conc_total{k=\"x\"} 400000\n"));
	assert_non_null(strstr(got,
	                       "t_conc_seconds_bucket{le=\"1\"} 400000\n"
	                       "t_conc_seconds_bucket{le=\"+Inf\"} 400000\n"
	                       "t_conc_seconds_sum 200000\n"
	                       "t_conc_seconds_count 400000\n"));
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_counter_with_labels, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_gauge_and_order, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_histogram, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_histogram_unlabelled_latency,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_child_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idempotent_family, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_collect_callback, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_increments, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
