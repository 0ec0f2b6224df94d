/*
 * store_backend: module-private. A backend is a table of function pointers
 * with the signatures of store.h, taking the backend's own handle. store.c
 * picks the table from the URI scheme, checks the arguments (a backend may
 * trust them: see store.h) and forwards every call.
 */
#ifndef ORDERD_STORE_BACKEND_H
#define ORDERD_STORE_BACKEND_H

#include "store/store.h"

/* The audit's invariants, in the order store.h lists them; each backend
 * has one query per check, store_verify.c has the words. */
typedef enum store_check {
	CHECK_NEGATIVE_STOCK,         /* t0 sku, n0 stock */
	CHECK_NOT_CONSERVED,          /* t0 sku, n0 stock, n1 adj, n2 res */
	CHECK_RESERVED_NOT_COMPLETED, /* t0 order, t1 sku, t2 status */
	CHECK_RESERVED_NO_ORDER,      /* t0 order, t1 sku */
	CHECK_ITEM_NOT_RESERVED,      /* t0 order, t1 sku, n0 qty */
	CHECK_RESERVATION_NOT_ITEM,   /* t0 order, t1 sku, n0 qty */
	CHECK_FINAL_TWICE,            /* t0 order, n0 total, n1 compl, n2 rej */
	CHECK_COMPLETED_UNLOGGED,     /* t0 order */
	CHECK_ORPHAN_RESERVATION,     /* t0 order, t1 sku */
	CHECK_COUNT_
} store_check_t;

/* One offending row of a check: its columns in the order given above. */
typedef struct store_check_row {
	const char *text[3];
	int64_t num[3];
} store_check_row_t;
typedef void (*store_check_fn)(void *arg, int check,
                               const store_check_row_t *row);

typedef struct store_backend {
	const char *name;
	int (*open)(const char *uri, const store_options_t *opt, void **ret);
	void (*free)(void *b);
	int (*ping)(void *b);
	/* The in-memory counters of store_counters(); no I/O. */
	void (*counters)(void *b, store_counters_t *ret);
	int (*submit)(void *b, const order_t *const *orders, size_t n,
	              store_submit_result_t *results);
	int (*order_get)(void *b, const char *id, order_t *ret);
	int (*order_list)(void *b, int status, int64_t after_seq, size_t limit,
	                  order_t **ret_orders, size_t *ret_n, bool *ret_more);
	int (*orders_terminal)(void *b, const char *const *ids, size_t n,
	                       bool *ret_terminal);
	int (*order_requeue)(void *b, const char *id, order_t *ret);
	int (*order_cancel)(void *b, const char *id, order_t *ret);
	int (*failures_list)(void *b, size_t limit, store_failure_t **ret,
	                     size_t *ret_n);
	int (*failures_requeue)(void *b, const char *fingerprint,
	                        int64_t *ret_n);
	/* With terminal false only pending and processing are counted (and
	 * the oldest pending age); store.c caches the terminal counts. */
	int (*stats)(void *b, bool terminal, store_stats_t *ret);
	int (*product_set)(void *b, const char *sku, int64_t stock,
	                   product_t *ret);
	int (*product_get)(void *b, const char *sku, product_t *ret);
	int (*product_list)(void *b, const char *after_sku, size_t limit,
	                    product_t **ret_products, size_t *ret_n,
	                    bool *ret_more);
	int (*claim)(void *b, const char *owner, int64_t lease_ms, size_t max,
	             store_claim_t *ret_claims, size_t *ret_n);
	/* hold: store_reserve (true) or store_process (false). */
	int (*process)(void *b, const store_claim_t *claims, size_t n,
	               bool hold, store_process_result_t *results);
	int (*take)(void *b, const char *owner, size_t max,
	            store_claim_t *ret_claims, size_t *ret_n,
	            store_process_result_t *results);
	int (*finish)(void *b, const store_finish_t *f, size_t n,
	              bool *ret_fenced);
	int (*renew)(void *b, const char *const *ids, const int64_t *fences,
	             size_t n, int64_t lease_ms, int64_t *ret_until);
	int (*retry)(void *b, const char *id, int64_t fence, int max_attempts,
	             int64_t delay_ms, const char *error, bool *ret_failed);
	int (*release)(void *b, const char *id, int64_t fence);
	int (*order_fence)(void *b, const char *id, order_status_t *ret_status,
	                   int64_t *ret_fence);
	int (*reap)(void *b, int max_attempts, size_t limit, size_t *ret_n);
	int (*replica_beat)(void *b, const char *replica);
	int (*replicas_list)(void *b, int64_t window_ms,
	                     char (*ret_ids)[ID_MAX + 1], size_t max,
	                     size_t *ret_n);
	int (*order_history)(void *b, const char *id, store_event_t *ret,
	                     size_t max, size_t *ret_n);
	int (*leases_by_owner)(void *b, store_lease_group_t *ret, size_t max,
	                       size_t *ret_n);
	int (*lock_acquire)(void *b, const char *name, const char *owner,
	                    int64_t ttl_ms, store_lock_t *ret);
	int (*lock_renew)(void *b, const char *name, const char *owner,
	                  int64_t fence, int64_t ttl_ms, store_lock_t *ret);
	int (*lock_release)(void *b, const char *name, const char *owner,
	                    int64_t fence);
	int (*lock_get)(void *b, const char *name, store_lock_t *ret);
	int (*outbox_enable)(void *b);
	int (*notify_claim)(void *b, const char *owner, int64_t lease_ms,
	                    size_t max, store_notification_t *ret,
	                    size_t *ret_n);
	int (*notify_delivered)(void *b, int64_t seq, int64_t fence,
	                        const char *acked);
	int (*notify_retry)(void *b, int64_t seq, int64_t fence,
	                    int max_attempts, int64_t delay_ms,
	                    const char *error, const char *acked,
	                    bool *ret_dead);
	int (*notify_release)(void *b, int64_t seq, int64_t fence,
	                      int64_t delay_ms, const char *error,
	                      const char *acked);
	int (*notify_get)(void *b, int64_t seq, store_notification_t *ret);
	int (*notify_list)(void *b, int status, int64_t after_seq, size_t limit,
	                   store_notification_t **ret, size_t *ret_n,
	                   bool *ret_more);
	int (*notify_by_order)(void *b, const char *order_id, size_t limit,
	                       store_notification_t **ret, size_t *ret_n,
	                       bool *ret_more);
	int (*notify_redeliver)(void *b, int64_t seq,
	                        store_notification_t *ret);
	int (*notify_prune)(void *b, int64_t older_than_ms, size_t limit,
	                    size_t *ret_n);
	int (*notify_stats)(void *b, store_notify_stats_t *ret);
	/* Runs every check of store_check_t in one snapshot, in order, and
	 * calls fn once per offending row. */
	int (*verify)(void *b, store_check_fn fn, void *arg);
} store_backend_t;

/* store_verify(): runs be's checks and describes each row (store_verify.c). */
int store_verify_audit(const store_backend_t *be, void *b,
                       store_violation_fn fn, void *arg,
                       size_t *ret_violations);

extern const store_backend_t store_sqlite_backend;
extern const store_backend_t store_postgres_backend;

#endif
