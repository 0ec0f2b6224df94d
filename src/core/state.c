/*
 * state: the order state machine as one table (see state.h). The store's
 * conditional writes (WHERE status = ...) implement the same transitions;
 * this table is what the tests pin down.
 */
#include "core/state.h"

#include "util/err.h"

/* -1 marks a transition that is not allowed. */
static const int next_status[ORDER_STATUS_COUNT][ORDER_EVENT_COUNT] = {
    [ORDER_PENDING] =
        {
            [EV_CLAIM] = ORDER_PROCESSING,
            [EV_COMPLETE] = -1,
            [EV_REJECT] = -1,
            [EV_RETRY] = -1,
            [EV_FAIL] = -1,
            [EV_EXPIRE] = -1,
            [EV_RELEASE] = -1,
            [EV_REQUEUE] = -1,
            [EV_CANCEL] = ORDER_CANCELLED,
        },
    [ORDER_PROCESSING] =
        {
            [EV_CLAIM] = -1,
            [EV_COMPLETE] = ORDER_COMPLETED,
            [EV_REJECT] = ORDER_REJECTED,
            [EV_RETRY] = ORDER_PENDING,
            /* Also a lease that expired with no attempts left. */
            [EV_FAIL] = ORDER_FAILED,
            [EV_EXPIRE] = ORDER_PENDING,
            [EV_RELEASE] = ORDER_PENDING,
            [EV_REQUEUE] = -1,
            [EV_CANCEL] = -1,
        },
    [ORDER_COMPLETED] =
        {
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
        },
    [ORDER_REJECTED] =
        {
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
        },
    [ORDER_FAILED] =
        {
            [EV_CLAIM] = -1,
            [EV_COMPLETE] = -1,
            [EV_REJECT] = -1,
            [EV_RETRY] = -1,
            [EV_FAIL] = -1,
            [EV_EXPIRE] = -1,
            [EV_RELEASE] = -1,
            [EV_REQUEUE] = ORDER_PENDING,
            [EV_CANCEL] = -1,
        },
    [ORDER_CANCELLED] =
        {
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
            -1,
        },
};

_Static_assert(ORDER_EVENT_COUNT == 9, "update the state table rows");

int state_next(order_status_t from, order_event_t ev, order_status_t *ret_next)
{
	int next;

	if ((int)from < 0 || from >= ORDER_STATUS_COUNT || (int)ev < 0 ||
	    ev >= ORDER_EVENT_COUNT)
		return OD_ESTATE;
	next = next_status[from][ev];
	if (next < 0)
		return OD_ESTATE;
	*ret_next = (order_status_t)next;
	return 0;
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
	case ORDER_EVENT_COUNT:
		break;
	}
	return "unknown";
}
