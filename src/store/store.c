/*
 * store: picks a backend from the URI scheme, checks every call's arguments
 * once (the backends trust them), and forwards the call to the backend's
 * function table. The terminal-count cache of store_stats lives here; the
 * audit's catalogue of invariants lives in store_verify.c.
 */
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/failure.h"
#include "core/order.h"
#include "store/store_backend.h"
#include "util/clock.h"
#include "util/err.h"

struct store {
	const store_backend_t *be;
	void *b; /* the backend's own handle */

	/* The last full count of the terminal statuses (see store_stats). */
	pthread_mutex_t stats_mu;
	int64_t terminal[ORDER_STATUS_COUNT]; /* stats_mu */
	int64_t terminal_at;                  /* stats_mu; monotonic ms */
	bool have_terminal;                   /* stats_mu */
};

static bool ident_ok(const char *s)
{
	return s && order_ident_valid(s, ID_MAX);
}

static bool ms_ok(int64_t ms, int64_t max)
{
	return ms > 0 && ms <= max;
}

int store_open(const char *uri, const store_options_t *opt, store_t **ret)
{
	const store_backend_t *be;
	if (strncmp(uri, "sqlite:", 7) == 0)
		be = &store_sqlite_backend;
	else if (strncmp(uri, "postgres://", 11) == 0 ||
	         strncmp(uri, "postgresql://", 13) == 0)
		be = &store_postgres_backend;
	else
		return OD_ECONFIG;

	store_t *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->be = be;
	int rc = be->open(uri, opt, &s->b);
	if (rc < 0) {
		free(s);
		return rc;
	}
	pthread_mutex_init(&s->stats_mu, NULL);
	*ret = s;
	return 0;
}

void store_free(store_t *s)
{
	if (!s)
		return;
	s->be->free(s->b);
	pthread_mutex_destroy(&s->stats_mu);
	free(s);
}

const char *store_backend_name(const store_t *s)
{
	return s->be->name;
}

int store_ping(store_t *s)
{
	return s->be->ping(s->b);
}

void store_counters(store_t *s, store_counters_t *ret)
{
	memset(ret, 0, sizeof *ret);
	s->be->counters(s->b, ret);
}

int store_submit(store_t *s, const order_t *const *orders, size_t n,
                 store_submit_result_t *results)
{
	if (n == 0)
		return 0;
	if (!orders || !results || n > STORE_SUBMIT_MAX)
		return OD_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!orders[i] || !ident_ok(orders[i]->id))
			return OD_EINVAL;
	return s->be->submit(s->b, orders, n, results);
}

int store_order_get(store_t *s, const char *id, order_t *ret)
{
	if (!ident_ok(id) || !ret)
		return OD_EINVAL;
	return s->be->order_get(s->b, id, ret);
}

int store_order_list(store_t *s, int status, int64_t after_seq, size_t limit,
                     order_t **ret_orders, size_t *ret_n, bool *ret_more)
{
	if (status >= ORDER_STATUS_COUNT || limit == 0 ||
	    limit > STORE_LIST_MAX || !ret_orders || !ret_n || !ret_more)
		return OD_EINVAL;
	return s->be->order_list(s->b, status, after_seq, limit, ret_orders,
	                         ret_n, ret_more);
}

void store_orders_free(order_t *orders, size_t n)
{
	for (size_t i = 0; i < n && orders; i++)
		order_clear(&orders[i]);
	free(orders);
}

int store_orders_terminal(store_t *s, const char *const *ids, size_t n,
                          bool *ret_terminal)
{
	if (n == 0)
		return 0;
	if (!ids || !ret_terminal || n > STORE_LIST_MAX)
		return OD_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!ids[i])
			return OD_EINVAL;
	return s->be->orders_terminal(s->b, ids, n, ret_terminal);
}

int store_order_requeue(store_t *s, const char *id, order_t *ret)
{
	if (!ident_ok(id))
		return OD_EINVAL;
	return s->be->order_requeue(s->b, id, ret);
}

int store_failures_list(store_t *s, size_t limit, store_failure_t **ret,
                        size_t *ret_n)
{
	if (limit == 0 || limit > STORE_LIST_MAX || !ret || !ret_n)
		return OD_EINVAL;
	return s->be->failures_list(s->b, limit, ret, ret_n);
}

void store_failures_free(store_failure_t *f, size_t n)
{
	for (size_t i = 0; i < n && f; i++)
		free(f[i].sample_reason);
	free(f);
}

int store_failures_requeue(store_t *s, const char *fingerprint, int64_t *ret_n)
{
	if (!failure_fingerprint_valid(fingerprint) || !ret_n)
		return OD_EINVAL;
	return s->be->failures_requeue(s->b, fingerprint, ret_n);
}

int store_order_cancel(store_t *s, const char *id, order_t *ret)
{
	if (!ident_ok(id))
		return OD_EINVAL;
	return s->be->order_cancel(s->b, id, ret);
}

static bool is_terminal(int status)
{
	return order_status_terminal((order_status_t)status);
}

int store_stats(store_t *s, store_stats_t *ret)
{
	if (!ret)
		return OD_EINVAL;
	int64_t now = clock_mono_ms();
	pthread_mutex_lock(&s->stats_mu);
	bool full = !s->have_terminal ||
	            now - s->terminal_at >= STORE_STATS_TERMINAL_MS;
	pthread_mutex_unlock(&s->stats_mu);

	store_stats_t st;
	int rc = s->be->stats(s->b, full, &st);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&s->stats_mu);
	for (int i = 0; i < ORDER_STATUS_COUNT; i++) {
		if (!is_terminal(i))
			continue;
		if (full)
			s->terminal[i] = st.count[i];
		else
			st.count[i] = s->terminal[i];
	}
	if (full) {
		s->terminal_at = now;
		s->have_terminal = true;
	}
	pthread_mutex_unlock(&s->stats_mu);
	*ret = st;
	return 0;
}

int store_product_set(store_t *s, const char *sku, int64_t stock,
                      product_t *ret)
{
	if (!ident_ok(sku) || stock < 0 || stock > PRODUCT_STOCK_MAX)
		return OD_EINVAL;
	return s->be->product_set(s->b, sku, stock, ret);
}

int store_product_get(store_t *s, const char *sku, product_t *ret)
{
	if (!ident_ok(sku) || !ret)
		return OD_EINVAL;
	return s->be->product_get(s->b, sku, ret);
}

int store_product_list(store_t *s, const char *after_sku, size_t limit,
                       product_t **ret_products, size_t *ret_n, bool *ret_more)
{
	if (!after_sku || (*after_sku && !ident_ok(after_sku)) || limit == 0 ||
	    limit > STORE_LIST_MAX || !ret_products || !ret_n || !ret_more)
		return OD_EINVAL;
	return s->be->product_list(s->b, after_sku, limit, ret_products, ret_n,
	                           ret_more);
}

int store_claim(store_t *s, const char *owner, int64_t lease_ms, size_t max,
                store_claim_t *ret_claims, size_t *ret_n)
{
	if (!ident_ok(owner) || !ms_ok(lease_ms, STORE_LEASE_MAX_MS) ||
	    !ret_n || (max > 0 && !ret_claims) || max > STORE_LIST_MAX)
		return OD_EINVAL;
	if (max == 0) {
		*ret_n = 0;
		return 0;
	}
	return s->be->claim(s->b, owner, lease_ms, max, ret_claims, ret_n);
}

int store_take(store_t *s, const char *owner, size_t max,
               store_claim_t *ret_claims, size_t *ret_n,
               store_process_result_t *results)
{
	if (!ident_ok(owner) || !ret_n ||
	    (max > 0 && (!ret_claims || !results)) || max > STORE_LIST_MAX)
		return OD_EINVAL;
	*ret_n = 0;
	if (max == 0)
		return 0;
	return s->be->take(s->b, owner, max, ret_claims, ret_n, results);
}

void store_claims_clear(store_claim_t *claims, size_t n)
{
	for (size_t i = 0; i < n; i++)
		order_clear(&claims[i].order);
}

int store_process(store_t *s, const store_claim_t *claims, size_t n,
                  store_process_result_t *results)
{
	if (n == 0)
		return 0;
	if (!claims || !results)
		return OD_EINVAL;
	return s->be->process(s->b, claims, n, false, results);
}

int store_reserve(store_t *s, const store_claim_t *claims, size_t n,
                  store_process_result_t *results)
{
	if (n == 0)
		return 0;
	if (!claims || !results)
		return OD_EINVAL;
	return s->be->process(s->b, claims, n, true, results);
}

int store_finish(store_t *s, const store_finish_t *f, size_t n,
                 bool *ret_fenced)
{
	if (n == 0)
		return 0;
	if (!f || !ret_fenced || n > STORE_LIST_MAX)
		return OD_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!ident_ok(f[i].id) || (!f[i].complete && !f[i].reason))
			return OD_EINVAL;
	return s->be->finish(s->b, f, n, ret_fenced);
}

int store_renew(store_t *s, const char *const *ids, const int64_t *fences,
                size_t n, int64_t lease_ms, int64_t *ret_until)
{
	if (n == 0)
		return 0;
	if (!ids || !fences || !ret_until || n > STORE_LIST_MAX ||
	    lease_ms < 1 || lease_ms > STORE_LEASE_MAX_MS)
		return OD_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!ident_ok(ids[i]))
			return OD_EINVAL;
	return s->be->renew(s->b, ids, fences, n, lease_ms, ret_until);
}

int store_retry(store_t *s, const char *id, int64_t fence, int max_attempts,
                int64_t delay_ms, const char *error, bool *ret_failed)
{
	if (!ident_ok(id) || !error || max_attempts < 1 || delay_ms < 0 ||
	    delay_ms > STORE_DELAY_MAX_MS)
		return OD_EINVAL;
	return s->be->retry(s->b, id, fence, max_attempts, delay_ms, error,
	                    ret_failed);
}

int store_order_fence(store_t *s, const char *id, order_status_t *ret_status,
                      int64_t *ret_fence)
{
	if (!ident_ok(id) || !ret_status || !ret_fence)
		return OD_EINVAL;
	return s->be->order_fence(s->b, id, ret_status, ret_fence);
}

int store_release(store_t *s, const char *id, int64_t fence)
{
	if (!ident_ok(id))
		return OD_EINVAL;
	return s->be->release(s->b, id, fence);
}

int store_reap(store_t *s, int max_attempts, size_t limit, size_t *ret_n)
{
	if (max_attempts < 1 || !ret_n || limit > STORE_LIST_MAX)
		return OD_EINVAL;
	if (limit == 0) {
		*ret_n = 0;
		return 0;
	}
	return s->be->reap(s->b, max_attempts, limit, ret_n);
}

int store_replica_beat(store_t *s, const char *replica)
{
	if (!ident_ok(replica))
		return OD_EINVAL;
	return s->be->replica_beat(s->b, replica);
}

int store_replicas_list(store_t *s, int64_t window_ms,
                        char (*ret_ids)[ID_MAX + 1], size_t max, size_t *ret_n)
{
	if (!ms_ok(window_ms, STORE_LEASE_MAX_MS) || !ret_n ||
	    (max > 0 && !ret_ids))
		return OD_EINVAL;
	return s->be->replicas_list(s->b, window_ms, ret_ids, max, ret_n);
}

int store_order_history(store_t *s, const char *id, store_event_t *ret,
                        size_t max, size_t *ret_n)
{
	if (!ident_ok(id) || !ret_n || (max > 0 && !ret) ||
	    max > STORE_HISTORY_MAX)
		return OD_EINVAL;
	return s->be->order_history(s->b, id, ret, max, ret_n);
}

int store_leases_by_owner(store_t *s, store_lease_group_t *ret, size_t max,
                          size_t *ret_n)
{
	if (!ret_n || (max > 0 && !ret) || max > STORE_LEASE_GROUPS_MAX)
		return OD_EINVAL;
	return s->be->leases_by_owner(s->b, ret, max, ret_n);
}

int store_lock_acquire(store_t *s, const char *name, const char *owner,
                       int64_t ttl_ms, store_lock_t *ret)
{
	if (!ident_ok(name) || !ident_ok(owner) ||
	    !ms_ok(ttl_ms, STORE_LEASE_MAX_MS) || !ret)
		return OD_EINVAL;
	return s->be->lock_acquire(s->b, name, owner, ttl_ms, ret);
}

int store_lock_renew(store_t *s, const char *name, const char *owner,
                     int64_t fence, int64_t ttl_ms, store_lock_t *ret)
{
	if (!ident_ok(name) || !ident_ok(owner) ||
	    !ms_ok(ttl_ms, STORE_LEASE_MAX_MS) || !ret)
		return OD_EINVAL;
	return s->be->lock_renew(s->b, name, owner, fence, ttl_ms, ret);
}

int store_lock_release(store_t *s, const char *name, const char *owner,
                       int64_t fence)
{
	if (!ident_ok(name) || !ident_ok(owner))
		return OD_EINVAL;
	return s->be->lock_release(s->b, name, owner, fence);
}

int store_lock_get(store_t *s, const char *name, store_lock_t *ret)
{
	if (!ident_ok(name) || !ret)
		return OD_EINVAL;
	return s->be->lock_get(s->b, name, ret);
}

int store_verify(store_t *s, store_violation_fn fn, void *arg,
                 size_t *ret_violations)
{
	if (!fn && !ret_violations)
		return OD_EINVAL;
	return store_verify_audit(s->be, s->b, fn, arg, ret_violations);
}

/* ---- notifications ---- */

static const char *const notify_status_names[NOTIFY_STATUS_COUNT] = {
    [NOTIFY_PENDING] = "pending",
    [NOTIFY_DELIVERED] = "delivered",
    [NOTIFY_DEAD] = "dead",
};

const char *store_notify_status_name(notify_status_t st)
{
	return st >= 0 && st < NOTIFY_STATUS_COUNT ? notify_status_names[st]
	                                           : "unknown";
}

int store_notify_status_parse(const char *name, notify_status_t *ret)
{
	for (int i = 0; name && i < NOTIFY_STATUS_COUNT; i++) {
		if (strcmp(name, notify_status_names[i]) == 0) {
			*ret = (notify_status_t)i;
			return 0;
		}
	}
	return OD_EINVAL;
}

void store_notify_id(int64_t seq, char buf[STORE_NOTIFY_ID_MAX + 1])
{
	snprintf(buf, STORE_NOTIFY_ID_MAX + 1, "ev_%lld", (long long)seq);
}

int store_notify_id_parse(const char *id, int64_t *ret_seq)
{
	if (!id || strncmp(id, "ev_", 3) != 0 || !id[3] || strlen(id) > 22)
		return OD_EINVAL;
	int64_t v = 0;
	for (const char *p = id + 3; *p; p++) {
		if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10)
			return OD_EINVAL;
		v = v * 10 + (*p - '0');
	}
	if (v <= 0 || (id[3] == '0'))
		return OD_EINVAL;
	*ret_seq = v;
	return 0;
}

void store_notifications_clear(store_notification_t *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		order_clear(&v[i].order);
		free(v[i].last_error);
		free(v[i].acked);
		v[i].last_error = NULL;
		v[i].acked = NULL;
	}
}

void store_notifications_free(store_notification_t *v, size_t n)
{
	store_notifications_clear(v, n);
	free(v);
}

int store_outbox_enable(store_t *s)
{
	return s->be->outbox_enable(s->b);
}

static bool acked_ok(const char *acked)
{
	return acked && strlen(acked) <= STORE_NOTIFY_ACKED_MAX;
}

int store_notify_claim(store_t *s, const char *owner, int64_t lease_ms,
                       size_t max, store_notification_t *ret, size_t *ret_n)
{
	if (!ident_ok(owner) || !ms_ok(lease_ms, STORE_LEASE_MAX_MS) ||
	    !ret_n || (max > 0 && !ret) || max > STORE_LIST_MAX)
		return OD_EINVAL;
	if (max == 0) {
		*ret_n = 0;
		return 0;
	}
	return s->be->notify_claim(s->b, owner, lease_ms, max, ret, ret_n);
}

int store_notify_delivered(store_t *s, int64_t seq, int64_t fence,
                           const char *acked)
{
	if (seq <= 0 || !acked_ok(acked))
		return OD_EINVAL;
	return s->be->notify_delivered(s->b, seq, fence, acked);
}

/* Cuts error to STORE_NOTIFY_ERROR_MAX bytes at a UTF-8 boundary into buf,
 * which has room for that plus the NUL: the backends store it as given. */
static const char *error_cut(const char *error, char *buf)
{
	if (!error)
		return NULL;
	size_t len = strlen(error);
	if (len <= STORE_NOTIFY_ERROR_MAX)
		return error;
	len = STORE_NOTIFY_ERROR_MAX;
	while (len > 0 && ((unsigned char)error[len] & 0xc0) == 0x80)
		len--;
	memcpy(buf, error, len);
	buf[len] = '\0';
	return buf;
}

int store_notify_retry(store_t *s, int64_t seq, int64_t fence, int max_attempts,
                       int64_t delay_ms, const char *error, const char *acked,
                       bool *ret_dead)
{
	if (seq <= 0 || max_attempts < 1 || delay_ms < 0 ||
	    delay_ms > STORE_DELAY_MAX_MS || !error || !acked_ok(acked))
		return OD_EINVAL;
	char cut[STORE_NOTIFY_ERROR_MAX + 1];
	return s->be->notify_retry(s->b, seq, fence, max_attempts, delay_ms,
	                           error_cut(error, cut), acked, ret_dead);
}

int store_notify_release(store_t *s, int64_t seq, int64_t fence,
                         int64_t delay_ms, const char *error, const char *acked)
{
	if (seq <= 0 || delay_ms < 0 || delay_ms > STORE_DELAY_MAX_MS ||
	    !acked_ok(acked))
		return OD_EINVAL;
	char cut[STORE_NOTIFY_ERROR_MAX + 1];
	return s->be->notify_release(s->b, seq, fence, delay_ms,
	                             error_cut(error, cut), acked);
}

int store_notify_get(store_t *s, int64_t seq, store_notification_t *ret)
{
	if (seq <= 0 || !ret)
		return OD_EINVAL;
	return s->be->notify_get(s->b, seq, ret);
}

int store_notify_list(store_t *s, int status, int64_t after_seq, size_t limit,
                      store_notification_t **ret, size_t *ret_n, bool *ret_more)
{
	if (status >= NOTIFY_STATUS_COUNT || limit == 0 ||
	    limit > STORE_LIST_MAX || !ret || !ret_n || !ret_more)
		return OD_EINVAL;
	return s->be->notify_list(s->b, status, after_seq, limit, ret, ret_n,
	                          ret_more);
}

int store_notify_by_order(store_t *s, const char *order_id, size_t limit,
                          store_notification_t **ret, size_t *ret_n,
                          bool *ret_more)
{
	if (!ident_ok(order_id) || limit == 0 || limit > STORE_LIST_MAX ||
	    !ret || !ret_n || !ret_more)
		return OD_EINVAL;
	return s->be->notify_by_order(s->b, order_id, limit, ret, ret_n,
	                              ret_more);
}

int store_notify_redeliver(store_t *s, int64_t seq, store_notification_t *ret)
{
	if (seq <= 0)
		return OD_EINVAL;
	return s->be->notify_redeliver(s->b, seq, ret);
}

int store_notify_prune(store_t *s, int64_t older_than_ms, size_t limit,
                       size_t *ret_n)
{
	if (older_than_ms < 0 || older_than_ms > INT64_MAX / 4 || !ret_n ||
	    limit > STORE_LIST_MAX)
		return OD_EINVAL;
	if (limit == 0) {
		*ret_n = 0;
		return 0;
	}
	return s->be->notify_prune(s->b, older_than_ms, limit, ret_n);
}

int store_notify_stats(store_t *s, store_notify_stats_t *ret)
{
	if (!ret)
		return OD_EINVAL;
	return s->be->notify_stats(s->b, ret);
}
