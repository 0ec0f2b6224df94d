/*
 * test_batcher: group commit against a real SQLite store on a temp file.
 * Checks that every submission is answered exactly once after its commit,
 * that concurrent submissions share transactions, that a full queue sheds
 * load with OD_EBUSY, and that stopping commits what was queued.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "util/err.h"
#include "work/batcher.h"

typedef struct fixture {
	char path[128];
	char uri[140];
	store_t *store;
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof *f);
	snprintf(f->path, sizeof f->path, "/tmp/orderd-test-batcher-%d.db",
	         (int)getpid());
	snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->path);
	unlink(f->path);
	store_options_t opt = {
	    .replica_id = "t", .busy_timeout_ms = 5000, .readers = 2};
	assert_int_equal(store_open(f->uri, &opt, &f->store), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	store_free(f->store);
	char p[160];
	unlink(f->path);
	snprintf(p, sizeof p, "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", f->path);
	unlink(p);
	free(f);
	return 0;
}

static void make_order(order_t *o, const char *id, int64_t qty)
{
	memset(o, 0, sizeof *o);
	snprintf(o->id, sizeof o->id, "%s", id);
	snprintf(o->customer, sizeof o->customer, "c1");
	o->items = calloc(1, sizeof *o->items);
	o->n_items = 1;
	snprintf(o->items[0].sku, sizeof o->items[0].sku, "SKU-1");
	o->items[0].qty = qty;
	o->metadata = strdup("{}");
}

/* One request's completion, recorded by the callback. */
typedef struct done {
	atomic_int calls;
	int err;
	int outcome[4];
} done_t;

static void on_done(void *arg, int err, store_submit_result_t *r, size_t n)
{
	done_t *d = arg;
	d->err = err;
	for (size_t i = 0; err == 0 && i < n; i++) {
		d->outcome[i] = (int)r[i].outcome;
		order_clear(&r[i].order);
	}
	atomic_fetch_add(&d->calls, 1);
}

static atomic_int commits;
static void on_commit(void *arg, size_t created)
{
	atomic_fetch_add(&commits, 1);
}

static void wait_calls(done_t *d, int n)
{
	for (int i = 0; i < 1000 && atomic_load(&d->calls) < n; i++)
		usleep(5000);
	assert_int_equal(atomic_load(&d->calls), n);
}

static void test_replay_and_conflict_in_one_request(void **state)
{
	fixture_t *f = *state;
	batcher_t *b;
	batcher_options_t opt = {.max_batch = 100, .max_queued = 100};
	assert_int_equal(batcher_new(f->store, &opt, NULL, NULL, &b), 0);
	order_t o[3];
	make_order(&o[0], "o-1", 1);
	make_order(&o[1], "o-1", 1); /* identical: replay */
	make_order(&o[2], "o-1", 2); /* different: conflict */
	const order_t *p[3] = {&o[0], &o[1], &o[2]};
	done_t d = {0};
	assert_int_equal(batcher_submit(b, p, 3, on_done, &d), 0);
	wait_calls(&d, 1);
	assert_int_equal(d.err, 0);
	assert_int_equal(d.outcome[0], SUBMIT_CREATED);
	assert_int_equal(d.outcome[1], SUBMIT_REPLAYED);
	assert_int_equal(d.outcome[2], SUBMIT_CONFLICT);
	batcher_free(b);
	for (int i = 0; i < 3; i++)
		order_clear(&o[i]);
}

#define THREADS 16
#define PER_THREAD 100

typedef struct submitter {
	batcher_t *b;
	int t;
	int failures;
} submitter_t;

static void *submit_thread(void *arg)
{
	submitter_t *s = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char id[32];
		snprintf(id, sizeof id, "t%d-%d", s->t, i);
		order_t o;
		make_order(&o, id, 1);
		const order_t *p = &o;
		done_t d = {0};
		int rc;
		while ((rc = batcher_submit(s->b, &p, 1, on_done, &d)) ==
		       OD_EBUSY)
			usleep(1000);
		if (rc != 0)
			s->failures++;
		else {
			while (atomic_load(&d.calls) == 0)
				usleep(200);
			if (d.err != 0 || d.outcome[0] != SUBMIT_CREATED ||
			    atomic_load(&d.calls) != 1)
				s->failures++;
		}
		order_clear(&o);
	}
	return NULL;
}

/* 16 threads each submit 100 orders one at a time: every order is stored,
 * answered once, and the commits are far fewer than the submissions. */
static void test_concurrent_submits_share_commits(void **state)
{
	fixture_t *f = *state;
	batcher_t *b;
	batcher_options_t opt = {.max_batch = 1000, .max_queued = 10000};
	atomic_store(&commits, 0);
	assert_int_equal(batcher_new(f->store, &opt, on_commit, NULL, &b), 0);
	pthread_t th[THREADS];
	submitter_t s[THREADS];
	for (int t = 0; t < THREADS; t++) {
		s[t] = (submitter_t){b, t, 0};
		pthread_create(&th[t], NULL, submit_thread, &s[t]);
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(s[t].failures, 0);
	}
	batcher_free(b);
	store_stats_t st;
	assert_int_equal(store_stats(f->store, &st), 0);
	assert_int_equal(st.count[ORDER_PENDING], THREADS * PER_THREAD);
	print_message("%d submissions in %d commits\n", THREADS * PER_THREAD,
	              atomic_load(&commits));
	assert_true(atomic_load(&commits) < THREADS * PER_THREAD);
}

/* While another connection holds SQLite's write lock the committer is
 * stuck; the queue fills and further submissions are refused at once. */
static void test_full_queue_sheds_load(void **state)
{
	fixture_t *f = *state;
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0),
	                 SQLITE_OK);

	batcher_t *b;
	batcher_options_t opt = {.max_batch = 10, .max_queued = 3};
	assert_int_equal(batcher_new(f->store, &opt, NULL, NULL, &b), 0);
	order_t o[4];
	done_t d[4] = {0};
	for (int i = 0; i < 4; i++) {
		char id[16];
		snprintf(id, sizeof id, "q-%d", i);
		make_order(&o[i], id, 1);
	}
	const order_t *p[4] = {&o[0], &o[1], &o[2], &o[3]};
	assert_int_equal(batcher_submit(b, &p[0], 1, on_done, &d[0]), 0);
	usleep(50000); /* the committer now waits for the write lock */
	assert_int_equal(batcher_submit(b, &p[1], 2, on_done, &d[1]), 0);
	assert_int_equal(batcher_submit(b, &p[3], 1, on_done, &d[3]), OD_EBUSY);

	assert_int_equal(sqlite3_exec(db, "COMMIT", 0, 0, 0), SQLITE_OK);
	sqlite3_close(db);
	wait_calls(&d[0], 1);
	wait_calls(&d[1], 1);
	assert_int_equal(d[0].err, 0);
	assert_int_equal(d[1].err, 0);
	assert_int_equal(atomic_load(&d[3].calls), 0);
	batcher_free(b);
	for (int i = 0; i < 4; i++)
		order_clear(&o[i]);
}

/* Stopping answers what was queued; later submissions are refused. */
static void test_stop_commits_queued(void **state)
{
	fixture_t *f = *state;
	batcher_t *b;
	batcher_options_t opt = {.max_batch = 10, .max_queued = 100};
	assert_int_equal(batcher_new(f->store, &opt, NULL, NULL, &b), 0);
	order_t o;
	make_order(&o, "s-1", 1);
	const order_t *p = &o;
	done_t d = {0};
	assert_int_equal(batcher_submit(b, &p, 1, on_done, &d), 0);
	batcher_stop(b);
	assert_int_equal(atomic_load(&d.calls), 1);
	assert_int_equal(d.err, 0);
	done_t d2 = {0};
	assert_int_equal(batcher_submit(b, &p, 1, on_done, &d2), OD_ESHUTDOWN);
	batcher_free(b);
	order_clear(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_replay_and_conflict_in_one_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_concurrent_submits_share_commits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_queue_sheds_load, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_stop_commits_queued, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
