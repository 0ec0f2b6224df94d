/*
 * postgres_mark: the low-water marks of the postgres store backend's two
 * queue scans, the claim (orders_pending, by next_at) and the reap
 * (orders_leased, by lease_until). Why they exist: every transition of an
 * order is a non-HOT update, so each claim leaves the order's old version
 * and its entry in orders_pending behind, at the old next_at. Vacuum
 * removes them, and index scans mark them dead, only once no snapshot can
 * see them; a transaction held open anywhere on the server (the forgotten
 * session that pins the xmin horizon) stops both, and a scan from the
 * start of the index then visits every order claimed since, with its heap
 * tuple, on every claim. A scan that starts at a lower bound descends the
 * btree past that dead prefix instead: its cost is the entries between
 * the mark and now, not the pin's age.
 *
 * A mark is only a hint, never a promise: a row may become claimable below
 * it (a submit or retry that commits later than the clock it read, a claim
 * by another replica that rolls back the rows it had locked, a store clock
 * stepped back, a row written by hand). So the mark trails what was seen
 * by PGB_MARK_MARGIN_MS, which covers the ordinary commit delay, and every
 * PGB_MARK_RESCAN_MS the scan starts from the beginning of the index once,
 * which bounds the delay of any straggler (docs/postgres.md).
 */
#include <stdint.h>

#include "store/postgres_int.h"
#include "util/clock.h"

void pgb_mark_init(pgb_mark_t *m)
{
	pthread_mutex_init(&m->mu, NULL);
	m->lo = INT64_MIN;
	m->full_mono_ms = 0;
}

void pgb_mark_destroy(pgb_mark_t *m)
{
	pthread_mutex_destroy(&m->mu);
}

int64_t pgb_mark_lower(pgb_mark_t *m, bool *ret_full)
{
	int64_t now = clock_mono_ms();
	pthread_mutex_lock(&m->mu);
	bool full = m->lo == INT64_MIN || m->full_mono_ms == 0 ||
	            now - m->full_mono_ms >= PGB_MARK_RESCAN_MS;
	if (full)
		m->full_mono_ms = now;
	int64_t lo = full ? INT64_MIN : m->lo;
	pthread_mutex_unlock(&m->mu);
	*ret_full = full;
	return lo;
}

void pgb_mark_seen(pgb_mark_t *m, bool full, int64_t seen)
{
	int64_t lo = seen - PGB_MARK_MARGIN_MS;
	pthread_mutex_lock(&m->mu);
	/* A full scan knows everything below what it saw: it may lower the
	 * mark (a straggler, a clock stepped back). A bounded scan only
	 * knows its own range: it never lowers what another scan found. */
	if (full || lo > m->lo)
		m->lo = lo;
	pthread_mutex_unlock(&m->mu);
}

void pgb_mark_failed(pgb_mark_t *m, bool full)
{
	if (!full)
		return;
	pthread_mutex_lock(&m->mu);
	m->full_mono_ms = 0;
	pthread_mutex_unlock(&m->mu);
}
