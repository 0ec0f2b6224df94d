/*
 * events: GET /v1/events, a text/event-stream of this replica's stats
 * (every 1 s) and order transitions (obs/feed), with a keepalive comment
 * every 15 s. See events.c for the threading.
 */
#ifndef ORDERD_HTTP_EVENTS_H
#define ORDERD_HTTP_EVENTS_H

#include <stddef.h>
#include <stdint.h>

struct http_req;
struct http_server;

void api_events(struct http_req *r);
/* Builds the MHD response for a stream prepared by api_events. */
struct MHD_Response *events_response(struct http_req *r);
/* Drain: every stream ends at its next read (within ~1 s). */
void events_drain(void);
/* Before MHD_stop_daemon: ends the streams, resumes every suspended one,
 * stops the ticker. */
void events_stop(void);

#endif
