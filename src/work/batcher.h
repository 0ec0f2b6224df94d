/*
 * batcher: group commit for submissions. Request threads hand in orders
 * with a completion callback; one committer thread takes everything queued
 * (up to max_batch orders), stores it in one transaction with
 * store_submit(), and only then calls each callback. So many concurrent
 * submits share one fsync, and every acknowledgement follows its commit.
 *
 * Bounded: at most max_queued orders wait; past that batcher_submit()
 * answers OD_EBUSY at once (the API turns it into 429 with Retry-After).
 */
#ifndef ORDERD_WORK_BATCHER_H
#define ORDERD_WORK_BATCHER_H

#include <stddef.h>

#include "store/store.h"

typedef struct batcher batcher_t;

typedef struct batcher_options {
	size_t max_batch;  /* orders per transaction */
	size_t max_queued; /* orders waiting, across all requests */
} batcher_options_t;

/*
 * Called once per batcher_submit(), on the committer thread, after the
 * transaction: err is 0 and results[0..n) are set, or err < 0 (OD_ESTORE,
 * OD_EUNKNOWN, OD_ESHUTDOWN) and results are unset. The callback owns the
 * orders inside results (clears them); the results array itself belongs
 * to the batcher and is valid only during the call. It must not block.
 */
typedef void (*batcher_done_fn)(void *arg, int err,
                                store_submit_result_t *results, size_t n);

/* Called after every successful commit that created orders (e.g. to wake
 * the workers). May be NULL. */
typedef void (*batcher_commit_fn)(void *arg, size_t created);

int batcher_new(store_t *store, const batcher_options_t *opt,
                batcher_commit_fn on_commit, void *commit_arg, batcher_t **ret);

/*
 * Queues orders[0..n) (borrowed: they must stay valid until done runs).
 * Returns 0 (done will be called exactly once), OD_EBUSY (queue full) or
 * OD_ESHUTDOWN (draining); done is not called when it returns an error.
 */
int batcher_submit(batcher_t *b, const order_t *const *orders, size_t n,
                   batcher_done_fn done, void *arg);

/* Commits and answers what is queued, then stops the committer thread;
 * from then on batcher_submit() answers OD_ESHUTDOWN. Idempotent. */
void batcher_stop(batcher_t *b);
/* batcher_stop(), then frees. NULL ok. */
void batcher_free(batcher_t *b);

#endif
