/*
 * feed: the order-event fan-out behind GET /v1/events. publish() copies
 * one frame into every subscriber's ring under one mutex and never waits
 * for a reader. A ring that would pass FEED_RING_MAX bytes marks its
 * subscriber dropped (counted in orderd_event_streams_dropped_total); its
 * stream ends. feed_active() is one atomic load: publishers build a frame
 * only when someone listens, so the hot path pays nothing otherwise.
 */
#ifndef ORDERD_OBS_FEED_H
#define ORDERD_OBS_FEED_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define FEED_RING_MAX (256 * 1024)
#define FEED_SUBS_MAX 1024 /* hard cap on max_subs */

typedef struct feed_sub feed_sub_t;
/* Called (under the feed mutex: keep it short) when a sub gets data. */
typedef void (*feed_wake_fn)(void *arg);

/* Sets the subscriber limit (1..FEED_SUBS_MAX); once, at start. */
void feed_init(int max_subs, const char *replica);
bool feed_active(void);
/* Appends text (a whole frame) to every subscriber. */
void feed_publish(const char *text, size_t len);
/* Publishes j as the frame "event: EVENT\ndata: <j compact>\n\n";
 * steals the reference to j (NULL: nothing). */
void feed_publish_json(const char *event, json_t *j);
/* OD_EBUSY when max_subs are subscribed, -ENOMEM. */
int feed_subscribe(feed_wake_fn wake, void *arg, feed_sub_t **ret);
void feed_unsubscribe(feed_sub_t *sub);
/* Copies up to max bytes out; *ret_dropped when the ring overflowed. */
size_t feed_read(feed_sub_t *sub, char *buf, size_t max, bool *ret_dropped);
/* Subscribers now. */
int feed_count(void);

/*
 * Publishes `event: order` {"id","status","event","at","fence","replica",
 * "reason"} (fence < 0 and NULL strings are null, but a NULL replica is this
 * one; at is now). Returns at once when nobody subscribes.
 */
void feed_order(const char *id, const char *status, const char *event,
                long long fence, const char *replica, const char *reason);
#endif
