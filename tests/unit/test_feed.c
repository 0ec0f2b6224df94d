/* Unit tests for obs/feed: fan-out to every subscriber, the subscriber
 * cap, the 256 KiB drop, order frames, and nothing published unheard. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "obs/feed.h"
#include "obs/metrics.h"
#include "util/err.h"

static int wakes;
static void wake(void *arg)
{
	(void)arg;
	wakes++;
}

static void test_fanout_and_cap(void **state)
{
	(void)state;
	feed_sub_t *a, *b, *c;
	char buf[64];
	bool dropped = true;

	feed_init(2, "r1");
	assert_false(feed_active());
	feed_publish("lost", 4); /* nobody listens: kept nowhere */
	assert_int_equal(feed_subscribe(wake, NULL, &a), 0);
	assert_int_equal(feed_subscribe(wake, NULL, &b), 0);
	assert_int_equal(feed_subscribe(wake, NULL, &c), OD_EBUSY);
	assert_true(feed_active());
	assert_int_equal(feed_count(), 2);
	wakes = 0;
	feed_publish("one\n", 4);
	feed_publish("two\n", 4);
	assert_int_equal(wakes, 4);
	size_t n = feed_read(a, buf, 5, &dropped);
	assert_false(dropped);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "one\nt", 5);
	n = feed_read(a, buf, sizeof buf, &dropped);
	assert_int_equal(n, 3);
	assert_int_equal(feed_read(a, buf, sizeof buf, &dropped), 0);
	n = feed_read(b, buf, sizeof buf, &dropped);
	assert_int_equal(n, 8);
	assert_memory_equal(buf, "one\ntwo\n", 8);
	feed_unsubscribe(a);
	assert_int_equal(feed_subscribe(wake, NULL, &c), 0);
	/* A new subscriber sees only what comes after it. */
	assert_int_equal(feed_read(c, buf, sizeof buf, &dropped), 0);
	feed_unsubscribe(b);
	feed_unsubscribe(c);
	assert_false(feed_active());
}

static void test_drop_past_cap(void **state)
{
	(void)state;
	feed_sub_t *slow, *fast;
	static char chunk[1000], buf[2000];
	bool dropped = false;

	memset(chunk, 'x', sizeof chunk);
	feed_init(4, "r1");
	assert_int_equal(feed_subscribe(NULL, NULL, &slow), 0);
	assert_int_equal(feed_subscribe(NULL, NULL, &fast), 0);
	for (size_t i = 0; i < FEED_RING_MAX / sizeof chunk + 2; i++) {
		feed_publish(chunk, sizeof chunk);
		assert_int_equal(feed_read(fast, buf, sizeof buf, &dropped),
		                 sizeof chunk);
		assert_false(dropped);
	}
	feed_read(slow, buf, sizeof buf, &dropped);
	assert_true(dropped);
	char *text = metrics_render();
	assert_non_null(strstr(text, "orderd_event_streams_dropped_total 1"));
	assert_non_null(strstr(text, "orderd_event_streams 2"));
	free(text);
	feed_unsubscribe(slow);
	feed_unsubscribe(fast);
}

static void test_order_frame(void **state)
{
	(void)state;
	feed_sub_t *s;
	char buf[512];
	bool dropped;

	feed_init(4, "r1");
	assert_int_equal(feed_subscribe(NULL, NULL, &s), 0);
	feed_order("o\"1", "failed", "fail", 7, NULL, "boom");
	size_t n = feed_read(s, buf, sizeof buf - 1, &dropped);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "event: order\ndata: {"));
	assert_non_null(strstr(buf, "\"id\":\"o\\\"1\""));
	assert_non_null(strstr(buf, "\"fence\":7"));
	assert_non_null(strstr(buf, "\"replica\":\"r1\""));
	assert_non_null(strstr(buf, "\"reason\":\"boom\""));
	assert_non_null(strstr(buf, "\"at\":\"20"));
	assert_string_equal(buf + n - 2, "\n\n");
	feed_order("o2", "pending", "submit", -1, "other", NULL);
	n = feed_read(s, buf, sizeof buf - 1, &dropped);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"fence\":null"));
	assert_non_null(strstr(buf, "\"replica\":\"other\""));
	assert_non_null(strstr(buf, "\"reason\":null"));
	feed_unsubscribe(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fanout_and_cap),
	    cmocka_unit_test(test_drop_past_cap),
	    cmocka_unit_test(test_order_frame),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
