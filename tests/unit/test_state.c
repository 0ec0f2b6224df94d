/* Unit tests for core/state: the whole (status, event) table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/state.h"
#include "util/err.h"

/* The allowed transitions, written out independently of state.c. */
static const struct {
	order_status_t from;
	order_event_t ev;
	order_status_t to;
} allowed[] = {
    {ORDER_PENDING, EV_CLAIM, ORDER_PROCESSING},
    {ORDER_PENDING, EV_CANCEL, ORDER_CANCELLED},
    {ORDER_PROCESSING, EV_COMPLETE, ORDER_COMPLETED},
    {ORDER_PROCESSING, EV_REJECT, ORDER_REJECTED},
    {ORDER_PROCESSING, EV_RETRY, ORDER_PENDING},
    {ORDER_PROCESSING, EV_FAIL, ORDER_FAILED},
    {ORDER_PROCESSING, EV_EXPIRE, ORDER_PENDING},
    {ORDER_PROCESSING, EV_RELEASE, ORDER_PENDING},
    {ORDER_FAILED, EV_REQUEUE, ORDER_PENDING},
    {ORDER_PROCESSING, EV_RESERVE, ORDER_PROCESSING},
    {ORDER_PENDING, EV_COMPLETE, ORDER_COMPLETED},
    {ORDER_PENDING, EV_REJECT, ORDER_REJECTED},
    {ORDER_PENDING, EV_FAIL, ORDER_FAILED},
};

static void test_every_pair(void **state)
{
	(void)state;
	int n_allowed = 0;
	for (int s = 0; s < ORDER_STATUS_COUNT; s++) {
		for (int e = 0; e < ORDER_EVENT_COUNT; e++) {
			int want = -1;
			for (size_t i = 0;
			     i < sizeof allowed / sizeof allowed[0]; i++)
				if ((int)allowed[i].from == s &&
				    (int)allowed[i].ev == e)
					want = (int)allowed[i].to;
			order_status_t next = (order_status_t)99;
			int rc = state_next((order_status_t)s, (order_event_t)e,
			                    &next);
			if (want < 0) {
				if (rc != OD_ESTATE)
					fail_msg(
					    "%s --%s--> should be refused",
					    order_status_name(
					        (order_status_t)s),
					    state_event_name((order_event_t)e));
				assert_int_equal(next, 99); /* untouched */
			} else {
				if (rc != 0 || (int)next != want)
					fail_msg(
					    "%s --%s--> got rc %d next %d",
					    order_status_name(
					        (order_status_t)s),
					    state_event_name((order_event_t)e),
					    rc, (int)next);
				n_allowed++;
			}
		}
	}
	assert_int_equal(n_allowed, 13);
}

static void test_terminal_states_are_final(void **state)
{
	(void)state;
	/* Nothing leaves completed, rejected or cancelled; failed only by
	 * requeue. */
	order_status_t next;
	for (int e = 0; e < ORDER_EVENT_COUNT; e++) {
		assert_int_equal(
		    state_next(ORDER_COMPLETED, (order_event_t)e, &next),
		    OD_ESTATE);
		assert_int_equal(
		    state_next(ORDER_REJECTED, (order_event_t)e, &next),
		    OD_ESTATE);
		assert_int_equal(
		    state_next(ORDER_CANCELLED, (order_event_t)e, &next),
		    OD_ESTATE);
	}
}

static void test_out_of_range(void **state)
{
	(void)state;
	order_status_t next = ORDER_PENDING;
	assert_int_equal(state_next(ORDER_STATUS_COUNT, EV_CLAIM, &next),
	                 OD_ESTATE);
	assert_int_equal(state_next((order_status_t)-1, EV_CLAIM, &next),
	                 OD_ESTATE);
	assert_int_equal(state_next(ORDER_PENDING, ORDER_EVENT_COUNT, &next),
	                 OD_ESTATE);
	assert_int_equal(state_next(ORDER_PENDING, (order_event_t)-1, &next),
	                 OD_ESTATE);
}

static void test_event_names(void **state)
{
	(void)state;
	const char *names[] = {"claim",  "complete", "reject",  "retry",
	                       "fail",   "expire",   "release", "requeue",
	                       "cancel", "reserve"};
	for (int e = 0; e < ORDER_EVENT_COUNT; e++)
		assert_string_equal(state_event_name((order_event_t)e),
		                    names[e]);
	assert_string_equal(state_event_name(ORDER_EVENT_COUNT), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_pair),
	    cmocka_unit_test(test_terminal_states_are_final),
	    cmocka_unit_test(test_out_of_range),
	    cmocka_unit_test(test_event_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
