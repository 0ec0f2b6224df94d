/*
 * failpoint: fault injection for tests, off unless ORDERD_FAILPOINTS is set,
 * e.g. ORDERD_FAILPOINTS="fail_process=0.3,slow_process_ms=50". Parsed once
 * at start-up (failpoint_init); reads afterwards are lock-free.
 *
 * Known failpoints:
 *   fail_process=P     a processing transaction fails as a transient store
 *                      error with probability P (0..1)
 *   fail_take=P        a store_take transaction (claim and processing in
 *                      one) fails after its writes, before COMMIT, as a
 *                      transient store error: it rolls back, and the
 *                      workers' next round takes the leased path
 *   slow_process_ms=N  each processing batch sleeps N ms first, widening the
 *                      window in which a crash finds orders in flight
 *                      (either one set: the workers claim under leases
 *                      and process apart, never store_take)
 *   sqlite_rollback_fail=P  a ROLLBACK of the SQLite writer fails (is not
 *                      run) with probability P, leaving its transaction
 *                      open for the next write to repair
 *   fail_batch_encode=P  a stored order's entry in a batch submit answer
 *                      cannot be encoded (as if out of memory)
 *   fail_scrape_stats=P  the store stats query behind a /metrics scrape
 *                      fails
 *   pg_submit_result_fail=P  PostgreSQL submit: reading the committed
 *                      insert's result fails (as if out of memory)
 *   pg_submit_readback_fail=P  PostgreSQL submit: the read-back that tells
 *                      replays from conflicts fails (each attempt)
 */
#ifndef ORDERD_UTIL_FAILPOINT_H
#define ORDERD_UTIL_FAILPOINT_H

#include <stdbool.h>

/* Parses spec (NULL or "" = none); OD_EINVAL on a malformed spec. */
int failpoint_init(const char *spec);
/* The configured value of name, or dflt when unset. */
double failpoint_value(const char *name, double dflt);
/* True with the probability configured for name (never when unset). */
bool failpoint_hit(const char *name);

#endif
