/*
 * state: the order state machine as one table (see state.h). The store's
 * conditional writes (WHERE status = ...) implement the same transitions;
 * test_state.c pins the table down, and test_store_leases.c holds both
 * backends' recorded events to it.
 */
#include "core/state.h"

#include <stddef.h>

#include "util/err.h"

/* Every allowed transition; anything not listed is refused. */
static const struct transition {
	order_status_t from;
	order_event_t ev;
	order_status_t to;
} transitions[] = {
    {ORDER_PENDING, EV_CLAIM, ORDER_PROCESSING},
    {ORDER_PENDING, EV_CANCEL, ORDER_CANCELLED},
    {ORDER_PROCESSING, EV_COMPLETE, ORDER_COMPLETED},
    {ORDER_PROCESSING, EV_REJECT, ORDER_REJECTED},
    {ORDER_PROCESSING, EV_RETRY, ORDER_PENDING},
    /* Also a lease that expired with no attempts left. */
    {ORDER_PROCESSING, EV_FAIL, ORDER_FAILED},
    {ORDER_PROCESSING, EV_EXPIRE, ORDER_PENDING},
    {ORDER_PROCESSING, EV_RELEASE, ORDER_PENDING},
    {ORDER_FAILED, EV_REQUEUE, ORDER_PENDING},
    {ORDER_PROCESSING, EV_RESERVE, ORDER_PROCESSING},
    /* Decided in the transaction that claims it (store_take): no lease
     * was ever seen, the event carries the fresh fence. */
    {ORDER_PENDING, EV_COMPLETE, ORDER_COMPLETED},
    {ORDER_PENDING, EV_REJECT, ORDER_REJECTED},
    {ORDER_PENDING, EV_FAIL, ORDER_FAILED},
};

int state_next(order_status_t from, order_event_t ev, order_status_t *ret_next)
{
	for (size_t i = 0; i < sizeof transitions / sizeof transitions[0];
	     i++) {
		if (transitions[i].from == from && transitions[i].ev == ev) {
			*ret_next = transitions[i].to;
			return 0;
		}
	}
	return OD_ESTATE;
}

const char *state_event_name(order_event_t ev)
{
	switch (ev) {
	case EV_CLAIM:
		return "claim";
	case EV_COMPLETE:
		return "complete";
	case EV_REJECT:
		return "reject";
	case EV_RETRY:
		return "retry";
	case EV_FAIL:
		return "fail";
	case EV_EXPIRE:
		return "expire";
	case EV_RELEASE:
		return "release";
	case EV_REQUEUE:
		return "requeue";
	case EV_CANCEL:
		return "cancel";
	case EV_RESERVE:
		return "reserve";
	case ORDER_EVENT_COUNT:
		break;
	}
	return "unknown";
}
