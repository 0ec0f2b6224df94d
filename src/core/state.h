/*
 * state: the order state machine. Every transition the store performs is
 * one of these events; the store's conditional writes enforce the same table
 * (WHERE status = ..., each statement names its event), and this module is
 * its readable form. tests/unit/test_store_leases.c replays every event
 * both backends record (order_events) through state_next, so the SQL and
 * this table cannot drift apart unnoticed.
 *
 *   pending --claim--> processing --complete--> completed
 *                         |  --reject--> rejected
 *                         |  --retry/expire/release--> pending
 *                         |  --fail--> failed --requeue--> pending
 *   pending --cancel--> cancelled
 *   processing --reserve--> processing   (confirm step: stock held; the
 *       order then completes, rejects, or retries holding its stock)
 */
#ifndef ORDERD_CORE_STATE_H
#define ORDERD_CORE_STATE_H

#include "core/order.h"

typedef enum order_event {
	EV_CLAIM = 0, /* a replica takes the order under a lease */
	EV_COMPLETE,  /* stock reserved for every item */
	EV_REJECT,    /* business outcome: unknown_sku, insufficient_stock */
	EV_RETRY,     /* transient failure, attempts left: back to pending */
	EV_FAIL,      /* no attempts left, or a backstop fired: dead letter */
	EV_EXPIRE,    /* lease ran out (reaper): back to pending */
	EV_RELEASE,   /* handed back on drain: back to pending */
	EV_REQUEUE,   /* operator: failed goes back to pending */
	EV_CANCEL,    /* client: pending becomes cancelled */
	EV_RESERVE,   /* confirm step: stock held, awaiting confirmation */
	ORDER_EVENT_COUNT
} order_event_t;

/* Writes the status after ev to *ret_next; OD_ESTATE if ev is not allowed
 * from `from`. */
int state_next(order_status_t from, order_event_t ev, order_status_t *ret_next);
const char *state_event_name(order_event_t ev);

#endif
