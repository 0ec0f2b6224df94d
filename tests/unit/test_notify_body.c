/*
 * test_notify_body: the bytes of a notification and their signature. The
 * HMAC is checked against RFC 4231's test case 2, the rotation header
 * carries both signatures, and the body is the same bytes every time for
 * the same event (compact, sorted keys, exactly id/type/created_at/order).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "work/notify_body.h"

static void test_hmac_rfc4231(void **state)
{
	const char *data = "what do ya want for nothing?";
	char sig[NOTIFY_SIG_MAX];
	assert_int_equal(notify_sign(data, strlen(data), "Jefe", NULL, sig), 0);
	assert_string_equal(sig, "sha256=5bdcc146bf60754e6a042426089575c7"
	                         "5a003f089d2739839dec58b964ec3843");
	assert_int_equal(
	    notify_sign(data, strlen(data), "other-key", "Jefe", sig), 0);
	const char *comma = strchr(sig, ',');
	assert_non_null(comma);
	assert_string_equal(comma + 1, "sha256=5bdcc146bf60754e6a042426089575c7"
	                               "5a003f089d2739839dec58b964ec3843");
	assert_int_equal(strlen(sig), 2 * (7 + 64) + 1);
}

static void test_body_deterministic(void **state)
{
	store_notification_t n;
	memset(&n, 0, sizeof n);
	n.seq = 7;
	snprintf(n.type, sizeof n.type, "order.completed");
	n.created_at = 1764547200123LL;
	snprintf(n.order.id, sizeof n.order.id, "o1");
	snprintf(n.order.customer, sizeof n.order.customer, "c1");
	order_item_t items[2] = {{"A", 2}, {"B", 1}};
	n.order.items = items;
	n.order.n_items = 2;
	n.order.metadata = "{\"k\":1}";
	n.order.status = ORDER_COMPLETED;
	n.order.attempts = 1;
	n.order.created_at = 1764547200000LL;
	n.order.updated_at = n.order.finished_at = 1764547200100LL;
	char *a, *b;
	size_t la, lb;
	assert_int_equal(notify_body(&n, &a, &la), 0);
	assert_int_equal(notify_body(&n, &b, &lb), 0);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	assert_string_equal(
	    a,
	    "{\"created_at\":\"2025-12-01T00:00:00.123Z\",\"id\":\"ev_7\","
	    "\"order\":{\"attempts\":1,\"created_at\":"
	    "\"2025-12-01T00:00:00.000Z\",\"customer\":\"c1\","
	    "\"finished_at\":\"2025-12-01T00:00:00.100Z\",\"id\":\"o1\","
	    "\"items\":[{\"qty\":2,\"sku\":\"A\"},{\"qty\":1,\"sku\":\"B\"}],"
	    "\"metadata\":{\"k\":1},\"reason\":null,\"status\":"
	    "\"completed\",\"updated_at\":\"2025-12-01T00:00:00.100Z\"},"
	    "\"type\":\"order.completed\"}");
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hmac_rfc4231),
	    cmocka_unit_test(test_body_deterministic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
