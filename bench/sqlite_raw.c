/*
 * sqlite_raw: the raw durable-transaction limit of SQLite on one disk, the
 * figure orderd's SQLite numbers are divided by. It opens a fresh database
 * file in --dir (put it on the same disk as orderd's database) with
 * journal_mode=WAL and synchronous=FULL, so every COMMIT fsyncs the WAL,
 * then runs one-row insert transactions (BEGIN IMMEDIATE; INSERT; COMMIT)
 * for --seconds:
 *
 *   1. one connection in one thread;
 *   2. --threads threads (default 16), each with its own connection, all
 *      contending for SQLite's single writer lock.
 *
 * The limit is the higher of the two (the output says which). Standalone:
 * not linked with the orderd library. Prints one JSON object to stdout.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RAW_MAX_THREADS 256
/* A payload the size of a small serialized order. */
#define RAW_PAYLOAD_LEN 200

struct raw_opts {
	const char *dir;
	double seconds;
	long threads;
	long busy_timeout_ms;
};

struct raw_worker {
	pthread_t tid;
	const char *path;
	long id;
	double deadline; /* monotonic seconds */
	/* Written by the worker, read after join: no lock needed. */
	long long commits;
	long long busy; /* SQLITE_BUSY retries */
	int rc;
	char err[160];
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_ll(const char *s, long long lo, long long hi, long long *ret)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int open_db(const char *path, long busy_ms, sqlite3 **ret, char *err,
                   size_t errlen)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc = sqlite3_open_v2(path, &db,
	                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                             SQLITE_OPEN_NOMUTEX,
	                         NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(db, (int)busy_ms);
	rc = sqlite3_exec(db,
	                  "PRAGMA journal_mode=WAL;"
	                  "PRAGMA synchronous=FULL;",
	                  NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		goto fail;
	*ret = db;
	return 0;
fail:
	snprintf(err, errlen, "open \"%s\": %s", path,
	         msg ? msg : (db ? sqlite3_errmsg(db) : "out of memory"));
	sqlite3_free(msg);
	sqlite3_close(db);
	return -EIO;
}

/* Runs one-row insert transactions until the deadline. */
static void *worker_run(void *arg)
{
	struct raw_worker *w = arg;
	sqlite3 *db = NULL;
	sqlite3_stmt *begin = NULL, *ins = NULL, *commit = NULL;
	char payload[RAW_PAYLOAD_LEN + 1];
	long long seq = 0;

	memset(payload, 'x', RAW_PAYLOAD_LEN);
	payload[RAW_PAYLOAD_LEN] = '\0';
	w->rc = open_db(w->path, 0, &db, w->err, sizeof w->err);
	if (w->rc)
		return NULL;
	if (sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL) ||
	    sqlite3_prepare_v2(db,
	                       "INSERT INTO t(worker, seq, payload) "
	                       "VALUES (?, ?, ?)",
	                       -1, &ins, NULL) ||
	    sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL)) {
		snprintf(w->err, sizeof w->err, "prepare: %s",
		         sqlite3_errmsg(db));
		w->rc = -EIO;
		goto cleanup;
	}
	while (now_s() < w->deadline) {
		/*
		 * Busy is retried here rather than in SQLite's busy handler,
		 * whose sleeps (1, 2, 5, 10 ms...) would measure the handler
		 * instead of the disk. A 100 us nap keeps 16 spinning
		 * threads from starving the committer of the 2 cores.
		 */
		int rc = sqlite3_step(begin);
		sqlite3_reset(begin);
		if (rc == SQLITE_BUSY) {
			w->busy++;
			usleep(100);
			continue;
		}
		if (rc != SQLITE_DONE)
			goto step_fail;
		sqlite3_bind_int64(ins, 1, w->id);
		sqlite3_bind_int64(ins, 2, seq++);
		sqlite3_bind_text(ins, 3, payload, RAW_PAYLOAD_LEN,
		                  SQLITE_STATIC);
		rc = sqlite3_step(ins);
		sqlite3_reset(ins);
		if (rc != SQLITE_DONE)
			goto step_fail;
		rc = sqlite3_step(commit);
		sqlite3_reset(commit);
		if (rc != SQLITE_DONE)
			goto step_fail;
		w->commits++;
	}
	goto cleanup;
step_fail:
	snprintf(w->err, sizeof w->err, "step: %s", sqlite3_errmsg(db));
	w->rc = -EIO;
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
cleanup:
	sqlite3_finalize(begin);
	sqlite3_finalize(ins);
	sqlite3_finalize(commit);
	sqlite3_close(db);
	return NULL;
}

/* Runs n workers for the given time; *ret_tps on success. */
static int run_phase(const char *path, long n, double seconds, double *ret_tps,
                     long long *ret_busy)
{
	struct raw_worker *ws = calloc((size_t)n, sizeof *ws);
	long started = 0;
	int rc = 0;
	if (!ws)
		return -ENOMEM;
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		ws[i].path = path;
		ws[i].id = i;
		ws[i].deadline = t0 + seconds;
		if (pthread_create(&ws[i].tid, NULL, worker_run, &ws[i])) {
			rc = -EAGAIN;
			break;
		}
		started++;
	}
	long long commits = 0, busy = 0;
	for (long i = 0; i < started; i++) {
		pthread_join(ws[i].tid, NULL);
		commits += ws[i].commits;
		busy += ws[i].busy;
		if (ws[i].rc && !rc) {
			fprintf(stderr, "sqlite_raw: worker %ld: %s\n", i,
			        ws[i].err);
			rc = ws[i].rc;
		}
	}
	double el = now_s() - t0;
	free(ws);
	if (rc)
		return rc;
	*ret_tps = el > 0 ? (double)commits / el : 0;
	*ret_busy = busy;
	return 0;
}

static void remove_db(const char *path)
{
	char p[4200];
	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
}

int main(int argc, char **argv)
{
	struct raw_opts o = {.dir = ".", .seconds = 3, .threads = 16};
	char path[4096];
	char err[200];
	sqlite3 *db = NULL;
	int exit_code = 1;

	for (int i = 1; i < argc; i++) {
		long long n;
		if (i + 1 >= argc) {
			fprintf(stderr, "usage: sqlite_raw [--dir DIR] "
			                "[--seconds S] [--threads T]\n");
			return 2;
		}
		const char *v = argv[++i];
		char *end;
		if (strcmp(argv[i - 1], "--dir") == 0) {
			o.dir = v;
		} else if (strcmp(argv[i - 1], "--seconds") == 0) {
			errno = 0;
			o.seconds = strtod(v, &end);
			if (errno || end == v || *end || !(o.seconds > 0) ||
			    o.seconds > 3600) {
				fprintf(stderr, "sqlite_raw: bad --seconds\n");
				return 2;
			}
		} else if (strcmp(argv[i - 1], "--threads") == 0) {
			if (parse_ll(v, 1, RAW_MAX_THREADS, &n)) {
				fprintf(stderr, "sqlite_raw: bad --threads\n");
				return 2;
			}
			o.threads = (long)n;
		} else {
			fprintf(stderr, "sqlite_raw: unknown flag %s\n",
			        argv[i - 1]);
			return 2;
		}
	}
	snprintf(path, sizeof path, "%s/sqlite_raw-%ld.db", o.dir,
	         (long)getpid());
	remove_db(path);
	if (open_db(path, 1000, &db, err, sizeof err)) {
		fprintf(stderr, "sqlite_raw: %s\n", err);
		return 1;
	}
	if (sqlite3_exec(db,
	                 "CREATE TABLE t(id INTEGER PRIMARY KEY, worker "
	                 "INTEGER NOT NULL, seq INTEGER NOT NULL, payload "
	                 "TEXT NOT NULL)",
	                 NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "sqlite_raw: create: %s\n", sqlite3_errmsg(db));
		goto cleanup;
	}

	double single = 0, multi = 0;
	long long busy1 = 0, busyn = 0;
	if (run_phase(path, 1, o.seconds, &single, &busy1) ||
	    run_phase(path, o.threads, o.seconds, &multi, &busyn))
		goto cleanup;
	bool multi_wins = multi > single;
	printf("{\"journal_mode\":\"wal\",\"synchronous\":\"FULL\","
	       "\"seconds\":%.2f,\"single_tx_per_s\":%.1f,"
	       "\"threads\":%ld,\"threads_tx_per_s\":%.1f,"
	       "\"threads_busy_retries\":%lld,"
	       "\"tx_per_s\":%.1f,\"limit_from\":\"%s\"}\n",
	       o.seconds, single, o.threads, multi, busyn,
	       multi_wins ? multi : single, multi_wins ? "threads" : "single");
	exit_code = 0;
cleanup:
	sqlite3_close(db);
	remove_db(path);
	return exit_code;
}
