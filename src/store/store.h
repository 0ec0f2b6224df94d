/*
 * store: the one interface to durable state. Two backends implement it,
 * sqlite (embedded default) and postgres, each as a table of function
 * pointers (store_backend.h) chosen from the URI scheme at store_open().
 *
 * A store_t is safe to use from any number of threads at once: each backend
 * keeps its own connections (sqlite: one writer connection behind a mutex
 * plus reader connections; postgres: a pool) and hands one to each call.
 *
 * Time: every timestamp and lease deadline is the store's clock, in ms since
 * the Unix epoch; no caller passes its own "now".
 *
 * Errors: 0, or a negative code from util/err.h. OD_ESTORE means a transient
 * failure (busy, connection lost, serialization failure): nothing happened
 * and the caller may retry. OD_EUNKNOWN means the outcome of a write is not
 * known (lost around COMMIT); callers resolve it by reading back.
 *
 * Arguments are checked once, in store.c, before any backend runs: a NULL
 * where a value or an out-parameter is required, an identifier that is not
 * one (core/order.h order_ident_valid), or a number outside the bounds
 * below is OD_EINVAL and touches nothing. Out-parameters documented as "may be
 * NULL" are the only optional ones.
 */
#ifndef ORDERD_STORE_STORE_H
#define ORDERD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/failure.h"
#include "core/order.h"

typedef struct store store_t;

#define STORE_SUBMIT_MAX 100000     /* orders per store_submit() */
#define STORE_LIST_MAX 10000        /* rows per list call */
#define STORE_LEASE_MAX_MS 86400000 /* leases, lock ttls, window_ms */
#define STORE_DELAY_MAX_MS 86400000 /* retry delays */

typedef struct store_options {
	const char *replica_id;   /* application_name; recorded with events */
	int busy_timeout_ms;      /* sqlite busy_timeout; pg lock_timeout */
	int statement_timeout_ms; /* pg statement_timeout */
	int connect_timeout_ms;   /* pg connect_timeout */
	int readers; /* read connections (sqlite) / pool size (pg) */
	/* pg: the client-side deadline of every call, in ms (0: 5000): the
	 * wait for a pooled connection, a reconnect and every round trip of
	 * the call end by then, whether or not the server answers. Past it
	 * the call fails as if its connection had broken (OD_ESTORE, or
	 * OD_EUNKNOWN for a write that may have committed). Unused by
	 * sqlite, a local file (busy_timeout_ms bounds its lock waits). */
	int deadline_ms;
	/* pg: connections go through a transaction-pooling proxy (PgBouncer
	 * pool_mode=transaction), so a session is only ours for one
	 * transaction: no named prepared statements (each statement is sent
	 * unnamed) and no session settings (every transaction sets its own,
	 * locally). Unused by sqlite. */
	bool pg_txn_pooling;
} store_options_t;

/*
 * Opens the store named by uri ("sqlite:PATH", "postgres://...",
 * "postgresql://...") and applies pending schema migrations. On success the
 * caller owns *ret and frees it with store_free().
 */
int store_open(const char *uri, const store_options_t *opt, store_t **ret);
void store_free(store_t *s);
/* "sqlite" or "postgres". */
const char *store_backend_name(const store_t *s);
/* 0 when the store answers a trivial query now (within the deadline). */
int store_ping(store_t *s);

/* Counters this process keeps in memory since store_open; reading them
 * never touches the database, so they move while it does not answer. */
typedef struct store_counters {
	int64_t resets; /* as store_stats_t.resets */
	/* Calls that ran out of their deadline (store_options_t). */
	int64_t deadline_exceeded;
} store_counters_t;
void store_counters(store_t *s, store_counters_t *ret);

/* ---- submissions (group commit) ---- */

typedef enum submit_outcome {
	SUBMIT_CREATED = 201,  /* stored now */
	SUBMIT_REPLAYED = 200, /* identical order already stored */
	SUBMIT_CONFLICT = 409, /* same id, different content */
} submit_outcome_t;

typedef struct store_submit_result {
	submit_outcome_t outcome;
	order_t order; /* the stored order (created or replayed); owned, the
	                  caller clears it; zeroed on conflict */
} store_submit_result_t;

/*
 * Stores orders[0..n) in ONE transaction, in array order, as if each were
 * submitted alone (a later duplicate of an earlier entry is a replay or a
 * conflict). results[i] is written for every i on success. On error nothing
 * was stored (or, OD_EUNKNOWN, possibly everything) and results are unset.
 * Durable (synchronous commit) before it returns 0.
 */
int store_submit(store_t *s, const order_t *const *orders, size_t n,
                 store_submit_result_t *results);

/* ---- order reads and client transitions ---- */

int store_order_get(store_t *s, const char *id, order_t *ret);
/*
 * Up to limit orders with seq > after_seq, oldest first, optionally only
 * those with status (status < 0: any). *ret_orders is a malloc'd array of
 * *ret_n orders the caller clears and frees (store_orders_free).
 * *ret_more is true when further orders exist after the last one returned.
 */
int store_order_list(store_t *s, int status, int64_t after_seq, size_t limit,
                     order_t **ret_orders, size_t *ret_n, bool *ret_more);
void store_orders_free(order_t *orders, size_t n);
/*
 * For each of ids[0..n), whether the order is terminal, in one round trip:
 * ret_terminal[i] is true for a terminal status and for an unknown id (the
 * caller's full read then answers it). For waits on many orders at once.
 */
int store_orders_terminal(store_t *s, const char *const *ids, size_t n,
                          bool *ret_terminal);
/* failed -> pending with attempts 0 (reason and fingerprint cleared);
 * OD_ESTATE otherwise, OD_ENOTFOUND. */
int store_order_requeue(store_t *s, const char *id, order_t *ret);
/* pending -> cancelled; OD_ESTATE otherwise (also for a pending order
 * that holds stock awaiting a confirm retry: its confirmation may have
 * gone through), OD_ENOTFOUND. */
int store_order_cancel(store_t *s, const char *id, order_t *ret);

/* ---- dead letters: failed orders grouped by fingerprint ---- */

/*
 * Every order that becomes failed gets the fingerprint of its reason
 * (core/failure.h) in the same statement that writes status 'failed'
 * (retry and reap out of attempts, the duplicate_reservation backstop);
 * leaving failed clears it. Failed orders stored before fingerprints
 * existed get theirs at store_open.
 */
typedef struct store_failure {
	char fingerprint[FAILURE_FP_LEN + 1];
	char *sample_reason; /* the reason of the group's latest order (the
	                        highest seq); owned, NULL when it has none */
	int64_t count;       /* failed orders in the group */
	int64_t first_seen;  /* min(finished_at), store clock ms */
	int64_t last_seen;   /* max(finished_at) */
} store_failure_t;

/*
 * Up to limit (1..STORE_LIST_MAX) groups of failed orders, the largest
 * first (count descending, then last_seen descending, then fingerprint).
 * *ret is a malloc'd array of *ret_n groups the caller frees with
 * store_failures_free(). A read; it scans the failed orders (their partial
 * index), not the whole table.
 */
int store_failures_list(store_t *s, size_t limit, store_failure_t **ret,
                        size_t *ret_n);
void store_failures_free(store_failure_t *f, size_t n);

/* Orders per transaction of store_failures_requeue. */
#define STORE_REQUEUE_CHUNK 500

/*
 * Requeues every order that is failed in group fingerprint, as
 * store_order_requeue does one (pending, attempts 0, due now, reason and
 * fingerprint cleared, an EV_REQUEUE event each), STORE_REQUEUE_CHUNK
 * orders per transaction in seq order, up to the group's highest seq at
 * the start (an order that fails again meanwhile is not requeued twice).
 * An order that left failed meanwhile is not touched. *ret_n is how many
 * were requeued; an unknown or empty group is 0. A fingerprint that is not
 * one (failure_fingerprint_valid) is OD_EINVAL. On an error the chunks
 * before it stay requeued; calling again requeues the rest.
 */
int store_failures_requeue(store_t *s, const char *fingerprint, int64_t *ret_n);

/*
 * Order counts. pending and processing are exact at the time of the call
 * (small partial indexes); the terminal statuses need a scan of every order
 * ever kept, so they are refreshed at most every STORE_STATS_TERMINAL_MS
 * and may lag by that much. Scrapes and dashboards poll this often; it must
 * not cost a full count each time.
 */
#define STORE_STATS_TERMINAL_MS 2000

typedef struct store_stats {
	int64_t count[ORDER_STATUS_COUNT];
	int64_t oldest_pending_ms; /* age of the oldest claimable order; 0 if
	                              none */
	int64_t now_ms;            /* the store's clock */
	/* Connections this process reset because a failure left them
	 * unusable (SQLite: the writer, when a transaction could not be
	 * rolled back; postgres: pooled connections found broken or left
	 * mid-transaction). A counter since store_open. */
	int64_t resets;
} store_stats_t;
int store_stats(store_t *s, store_stats_t *ret);

/* ---- products ---- */

/* Sets stock (0..PRODUCT_STOCK_MAX), creating the product if needed, and
 * records the difference as an adjustment in the same transaction. */
int store_product_set(store_t *s, const char *sku, int64_t stock,
                      product_t *ret);
int store_product_get(store_t *s, const char *sku, product_t *ret);
/* Up to limit products with sku > after_sku ("" = from the start), by sku. */
int store_product_list(store_t *s, const char *after_sku, size_t limit,
                       product_t **ret_products, size_t *ret_n, bool *ret_more);

/* ---- processing under leases ---- */

typedef struct store_claim {
	order_t order; /* status processing, attempts already incremented */
	int64_t fence; /* every write about this order must carry it */
	int64_t lease_until;
} store_claim_t;

/*
 * Claims up to max claimable orders (pending, and due: next_at <= now),
 * in the order (next_at, seq), so the order claimable longest goes first,
 * for owner with a lease of lease_ms on the store's clock and a fresh fence
 * (strictly larger than any fence granted before), in one statement; the
 * claims come back in that order. ret_claims must have room for max
 * entries; *ret_n is how many were claimed (0 is success). Claims are
 * cleared with store_claims_clear().
 *
 * A backend may start its scan past what it already claimed (postgres: a
 * low-water mark, so a pinned vacuum horizon does not slow the claim). An
 * order that becomes due below that point (committed well after the clock
 * it read, a store clock stepped back, a row edited by hand) is then
 * claimed by the next full scan, at most 5 s later (docs/postgres.md);
 * the same holds for store_reap and a lease deadline below its mark.
 */
int store_claim(store_t *s, const char *owner, int64_t lease_ms, size_t max,
                store_claim_t *ret_claims, size_t *ret_n);
void store_claims_clear(store_claim_t *claims, size_t n);

typedef enum process_outcome {
	PROCESS_COMPLETED = 0, /* stock reserved for every item */
	PROCESS_REJECTED,      /* reason: unknown_sku | insufficient_stock */
	PROCESS_FENCED,        /* lease no longer ours: nothing written */
	/* The backstop of G3 fired: a reservation already exists for an
	 * order processed under a current fence (a bug or a damaged store).
	 * Nothing is reserved again; the order ends failed with reason
	 * "duplicate_reservation" so it cannot loop, and the caller counts
	 * and logs it as an invariant breach. Its neighbours are unaffected. */
	PROCESS_BREACH,
	/* store_reserve only: the order's stock is held (reserved now, or
	 * already held from an earlier attempt) and it stays processing
	 * under the same lease, awaiting its confirmation (store_finish). */
	PROCESS_RESERVED,
} process_outcome_t;

typedef struct store_process_result {
	process_outcome_t outcome;
	const char *reason; /* static string for PROCESS_REJECTED and
	                       PROCESS_BREACH, else NULL */
} store_process_result_t;

/*
 * Processes claims[0..n) in ONE transaction: for each order whose fence is
 * still current, reserves every item (one reservation row per (order, sku),
 * unique) and completes it, or reserves nothing and rejects it, deciding in
 * array order against the stock left. Orders whose fence is stale are
 * skipped as PROCESS_FENCED; an order that already holds a reservation is
 * failed as PROCESS_BREACH. Leaving processing clears the order's lease
 * (lease_owner NULL, lease_until 0). results[i] for every i.
 * On error (OD_ESTORE, OD_EUNKNOWN) nothing is known to have been written.
 */
int store_process(store_t *s, const store_claim_t *claims, size_t n,
                  store_process_result_t *results);

/*
 * The confirm step's half of store_process, same transaction rules: for
 * each order whose fence is still current, reserves every item and marks
 * the order held (it stays processing, lease unchanged): PROCESS_RESERVED;
 * or reserves nothing and rejects it as store_process would. An order that
 * already holds its stock from an earlier attempt (held) is
 * PROCESS_RESERVED with nothing written. Outcomes otherwise as above.
 * store_process on a held order completes it without reserving again
 * (the confirm step was switched off meanwhile).
 */
int store_reserve(store_t *s, const store_claim_t *claims, size_t n,
                  store_process_result_t *results);

/*
 * Claims up to max due orders as store_claim would and decides them as
 * store_process would, in ONE transaction: no lease is ever visible, and
 * each order is written once, pending --> terminal, with a fresh fence and
 * one more attempt (events complete, reject or fail; no claim event).
 * ret_claims[0..*ret_n) are the orders decided (attempts incremented,
 * fence the batch's), results[i] their outcomes (never PROCESS_FENCED or
 * PROCESS_RESERVED). For the processing without a confirm step. On
 * OD_ESTORE nothing was written; on OD_EUNKNOWN (COMMIT lost in flight)
 * the claims are returned so that the caller can read back which
 * committed. No attempt is counted on an error: a caller that meets one
 * goes through store_claim and store_process next, which count them.
 */
int store_take(store_t *s, const char *owner, size_t max,
               store_claim_t *ret_claims, size_t *ret_n,
               store_process_result_t *results);

/* The confirm step's answer for one held order. */
typedef struct store_finish {
	const char *id;
	int64_t fence;
	bool complete;      /* true: completed, the stock stays taken;
	                       false: rejected, the stock is released */
	const char *reason; /* rejection reason; NULL when complete */
} store_finish_t;

/*
 * Writes confirm outcomes in ONE transaction: each held order still
 * processing under its fence is completed or rejected (its reservations
 * released, stock returned); ret_fenced[i] is true for an order whose
 * fence is stale (nothing written for it).
 */
int store_finish(store_t *s, const store_finish_t *f, size_t n,
                 bool *ret_fenced);

/*
 * Extends the unexpired leases of ids[i] held under fences[i] to lease_ms
 * from now (store clock), in one statement. ret_until[i] is the new
 * deadline, or 0 when the lease is no longer ours (expired or another
 * fence): the caller abandons that order.
 */
int store_renew(store_t *s, const char *const *ids, const int64_t *fences,
                size_t n, int64_t lease_ms, int64_t *ret_until);

/*
 * After a transient failure: if the order has attempts left (attempts <
 * max_attempts) it returns to pending, claimable after delay_ms, keeping
 * any stock it holds for its next confirm attempt; otherwise it becomes
 * failed and held stock is released. error is kept as its reason either
 * way. Conditional on fence: OD_EFENCE when the lease is no longer ours.
 * *ret_failed (may be NULL) tells which happened.
 */
int store_retry(store_t *s, const char *id, int64_t fence, int max_attempts,
                int64_t delay_ms, const char *error, bool *ret_failed);

/*
 * The order's status and the fence of the last lease granted on it (0 when
 * never claimed). After OD_EUNKNOWN this tells a worker whether its own
 * write landed: the fence is still its own and the status terminal.
 */
int store_order_fence(store_t *s, const char *id, order_status_t *ret_status,
                      int64_t *ret_fence);

/* Hands a claimed order back untouched (drain): pending, due now, the
 * attempt not counted. OD_EFENCE when no longer ours. */
int store_release(store_t *s, const char *id, int64_t fence);

/*
 * Returns up to limit orders whose lease has expired (lease_until <= now: a
 * lease is valid strictly before its deadline) to pending (held stock stays
 * held), or to failed with reason "lease expired" and held stock released
 * when they have no attempts left.
 * *ret_n is how many were reaped.
 */
int store_reap(store_t *s, int max_attempts, size_t limit, size_t *ret_n);

/* ---- replicas ---- */

/* Records that replica is alive now (store clock), a write. Rows older than
 * a day are forgotten in the same transaction so the table stays small. */
int store_replica_beat(store_t *s, const char *replica);
/*
 * Lists the replicas seen within window_ms, most recent first: up to max
 * ids into ret_ids (may be NULL when max is 0), and their total in *ret_n.
 * A read: it records nothing.
 */
int store_replicas_list(store_t *s, int64_t window_ms,
                        char (*ret_ids)[ID_MAX + 1], size_t max, size_t *ret_n);

/* Orders in processing, counted per lease owner (whole store). */
#define STORE_LEASE_GROUPS_MAX 64
typedef struct store_lease_group {
	char replica[ID_MAX + 1];
	int64_t orders;
} store_lease_group_t;
/*
 * Fills up to max groups into ret, most orders first (then by replica),
 * and their total in *ret_n. A read: it records nothing.
 */
int store_leases_by_owner(store_t *s, store_lease_group_t *ret, size_t max,
                          size_t *ret_n);

/* ---- order history ---- */

#define STORE_HISTORY_MAX 1000 /* events per store_order_history() */
#define STORE_EVENT_NAME_MAX 15

/* One recorded transition of an order (order_events). */
typedef struct store_event {
	char event[STORE_EVENT_NAME_MAX + 1]; /* "claim", "complete", ... */
	int64_t fence;                        /* 0: none */
	int64_t at;                           /* store clock, ms */
	char replica[ID_MAX + 1]; /* the replica_id of the store that
	                             recorded it; "": none */
} store_event_t;
/*
 * Fills up to max (<= STORE_HISTORY_MAX) of the order's recorded
 * transitions into ret, oldest first, and their total in *ret_n. The
 * submission itself is not an event: the order row records it
 * (created_at). An unknown order has none (0, not an error). A read.
 */
int store_order_history(store_t *s, const char *id, store_event_t *ret,
                        size_t max, size_t *ret_n);

/* ---- named locks (leases with fencing tokens) ---- */

typedef struct store_lock {
	char name[ID_MAX + 1];
	char owner[ID_MAX + 1];
	int64_t fence;
	int64_t expires_at;
} store_lock_t;

/* Grants the lock if free or expired (fresh fence); OD_ELOCKHELD with the
 * current holder in *ret otherwise (also when owner already holds it). */
int store_lock_acquire(store_t *s, const char *name, const char *owner,
                       int64_t ttl_ms, store_lock_t *ret);
/* Extends an unexpired lease held by (owner, fence); OD_ELOCKLOST otherwise. */
int store_lock_renew(store_t *s, const char *name, const char *owner,
                     int64_t fence, int64_t ttl_ms, store_lock_t *ret);
/* Frees an unexpired lease held by (owner, fence); OD_ELOCKLOST otherwise. */
int store_lock_release(store_t *s, const char *name, const char *owner,
                       int64_t fence);
/* The current unexpired holder, or OD_ENOTFOUND. */
int store_lock_get(store_t *s, const char *name, store_lock_t *ret);

/* ---- notifications: the outbox (G9) ---- */

/*
 * Every terminal transition of an order (completed, rejected, failed,
 * cancelled; by whatever path) writes one notification row in the same
 * transaction, once the outbox is enabled: a trigger on orders, one place
 * per backend that no transition path can forget. The trigger is installed
 * in the database, so once any process enabled it, every process's
 * transitions write events. Without it the table stays empty and
 * transitions cost nothing more.
 */
int store_outbox_enable(store_t *s);

typedef enum notify_status {
	NOTIFY_PENDING = 0, /* to be delivered (possibly leased right now) */
	NOTIFY_DELIVERED,   /* every endpoint acknowledged it */
	NOTIFY_DEAD,        /* out of attempts; redeliver by hand */
	NOTIFY_STATUS_COUNT
} notify_status_t;

const char *store_notify_status_name(notify_status_t st);
/* 0, or OD_EINVAL for a name that is not a notification status. */
int store_notify_status_parse(const char *name, notify_status_t *ret);

#define STORE_NOTIFY_ID_MAX 24     /* "ev_" and up to 20 digits */
#define STORE_NOTIFY_ERROR_MAX 512 /* bytes of last_error kept */
#define STORE_NOTIFY_ACKED_MAX 8192

/* Writes "ev_<seq>", the event id (the Idempotency-Key), into buf. */
void store_notify_id(int64_t seq, char buf[STORE_NOTIFY_ID_MAX + 1]);
/* Parses an event id; OD_EINVAL when id is not one. */
int store_notify_id_parse(const char *id, int64_t *ret_seq);

typedef struct store_notification {
	int64_t seq;   /* the event id is "ev_<seq>" */
	char type[32]; /* "order.completed" | ".rejected" | ".failed" | ... */
	/* The order at the transition: its content from the order, status,
	 * reason, attempts, updated_at and finished_at from the snapshot. */
	order_t order;
	notify_status_t status;
	int attempts;         /* delivery attempts counted so far */
	int64_t created_at;   /* the transition, store clock */
	int64_t next_at;      /* pending: when it is due */
	int64_t delivered_at; /* 0 unless delivered */
	char *last_error;     /* owned; NULL when none */
	char *acked;   /* owned, never NULL: endpoints that acknowledged it,
	                  separated by spaces ("" for none) */
	int64_t fence; /* of the last claim: writes must carry it */
	int64_t lease_until; /* of the last claim; 0 when none */
} store_notification_t;

/* Frees the owned fields of v[0..n) (not v itself). */
void store_notifications_clear(store_notification_t *v, size_t n);
/* Clears v[0..n) and frees v. */
void store_notifications_free(store_notification_t *v, size_t n);

/*
 * Claims up to max due pending notifications (next_at <= now), in the
 * order (next_at, seq), for owner with a lease of lease_ms and a fresh
 * fence, in one statement; attempts is incremented. A claim also moves
 * next_at to the lease's deadline, so an event whose holder died is due
 * again when its lease runs out: no reaper needed. ret must have room for
 * max entries; clear them with store_notifications_clear.
 */
int store_notify_claim(store_t *s, const char *owner, int64_t lease_ms,
                       size_t max, store_notification_t *ret, size_t *ret_n);
/*
 * The outcome of a delivery, each conditional on (seq, fence, pending):
 * OD_EFENCE when the claim is no longer current (nothing written).
 * acked is the full list of endpoints that acknowledged it so far (at
 * most STORE_NOTIFY_ACKED_MAX bytes).
 *   delivered: status delivered, delivered_at now, the lease cleared.
 *   retry: attempts < max_attempts: pending again, due after delay_ms;
 *     else dead. error is kept as last_error (cut to
 *     STORE_NOTIFY_ERROR_MAX). *ret_dead (may be NULL) says which.
 *   release: handed back without counting the attempt (drain, or an
 *     endpoint whose circuit is open): pending, due after delay_ms;
 *     error (may be NULL) replaces last_error when given.
 */
int store_notify_delivered(store_t *s, int64_t seq, int64_t fence,
                           const char *acked);
int store_notify_retry(store_t *s, int64_t seq, int64_t fence, int max_attempts,
                       int64_t delay_ms, const char *error, const char *acked,
                       bool *ret_dead);
int store_notify_release(store_t *s, int64_t seq, int64_t fence,
                         int64_t delay_ms, const char *error,
                         const char *acked);
/* One notification; OD_ENOTFOUND. Clear *ret with
 * store_notifications_clear(ret, 1). */
int store_notify_get(store_t *s, int64_t seq, store_notification_t *ret);
/*
 * Up to limit notifications with seq > after_seq, oldest first, only those
 * with status (status < 0: any). *ret is a malloc'd array of *ret_n the
 * caller frees with store_notifications_free; *ret_more as order_list.
 */
int store_notify_list(store_t *s, int status, int64_t after_seq, size_t limit,
                      store_notification_t **ret, size_t *ret_n,
                      bool *ret_more);
/* Up to limit of one order's notifications, oldest first, returned as by
 * store_notify_list. A read. */
int store_notify_by_order(store_t *s, const char *order_id, size_t limit,
                          store_notification_t **ret, size_t *ret_n,
                          bool *ret_more);
/* dead or delivered -> pending: attempts 0, due now, delivered_at 0 and
 * acked "" (every endpoint gets it again). OD_ESTATE when pending,
 * OD_ENOTFOUND. *ret (may be NULL) is the notification after it. */
int store_notify_redeliver(store_t *s, int64_t seq, store_notification_t *ret);
/* Deletes up to limit delivered notifications delivered at least
 * older_than_ms ago; never a pending or dead one. *ret_n how many. */
int store_notify_prune(store_t *s, int64_t older_than_ms, size_t limit,
                       size_t *ret_n);

typedef struct store_notify_stats {
	int64_t count[NOTIFY_STATUS_COUNT];
	int64_t oldest_pending_ms; /* age of the oldest pending; 0 if none */
} store_notify_stats_t;
int store_notify_stats(store_t *s, store_notify_stats_t *ret);

/* ---- audit ---- */

/* Called once per violation with a one-line description. */
typedef void (*store_violation_fn)(void *arg, const char *what);
/*
 * Audits G3-G5 against the stored data, in one snapshot. The invariants,
 * the same list and the same words on every backend (store_verify.c):
 *   1. no product has negative stock;
 *   2. per product, stock == sum(adjustments) - sum(reserved quantities);
 *   3. only completed orders, and held orders (pending or processing,
 *      awaiting confirmation), hold reservations;
 *   4. every reservation belongs to an order that exists;
 *   5. every item of a completed or held order has its reservation (sku
 *      and qty);
 *   6. every reservation of a completed or held order is one of its items;
 *   7. an order reaches a final outcome (complete, reject) at most once in
 *      the event log;
 *   8. a completed order has its completion in the event log;
 *   9. every reservation is of a product that exists.
 * fn (may be NULL) is called once per violation; *ret_violations counts
 * them. At least one of fn and ret_violations must be given.
 */
int store_verify(store_t *s, store_violation_fn fn, void *arg,
                 size_t *ret_violations);

#endif
