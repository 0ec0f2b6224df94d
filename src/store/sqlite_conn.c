/*
 * sqlite_conn: the connection layer of the SQLite backend. One writer
 * connection behind a mutex (every write transaction is BEGIN IMMEDIATE, so
 * SQLite's own write lock is taken up front and busy_timeout applies there,
 * never in the middle of a transaction), a pool of read-only connections
 * for reads, a per-connection cache of prepared statements, error mapping,
 * and checkpoints. Open applies the schema's migrations (sqlite_schema.c)
 * on the writer before the readers connect.
 *
 * Connections are opened with SQLITE_OPEN_NOMUTEX: each is used by one
 * thread at a time (the wlock holder, or the borrower of a reader), so
 * SQLite's per-connection mutex would only cost time.
 */
#include "store/sqlite_int.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_schema.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/failpoint.h"

#define SQB_READERS_DEFAULT 4
#define SQB_READERS_MAX 64
#define SQB_BUSY_TIMEOUT_DEFAULT 5000
/* A PASSIVE checkpoint at most this often, from the writer after a commit,
 * on top of SQLite's autocheckpoint: keeps the WAL short under steady load. */
#define SQB_CHECKPOINT_EVERY_MS 1000

int sqb_err(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CONSTRAINT:
		/* Our writes are conditional; a violated constraint means the
		 * data or the code is not what we think. */
		return OD_EINTERNAL;
	case SQLITE_ERROR:
	case SQLITE_MISUSE:
	case SQLITE_RANGE:
	case SQLITE_MISMATCH:
		return OD_EINTERNAL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
	case SQLITE_READONLY:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_INTERRUPT:
	case SQLITE_ABORT:
	case SQLITE_SCHEMA:
	default:
		return OD_ESTORE;
	}
}

int sqb_stmt(sqb_conn_t *c, int id, const char *sql, sqlite3_stmt **ret)
{
	sqlite3_stmt *st = c->stmt[id];
	if (!st) {
		int rc = sqlite3_prepare_v3(
		    c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
		if (rc != SQLITE_OK)
			return sqb_err(rc);
		c->stmt[id] = st;
	} else {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	*ret = st;
	return 0;
}

int sqb_step(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return sqb_err(rc);
}

int sqb_page(sqlite3_stmt *st, void *v, size_t elem, size_t limit,
             sqb_row_fn row, size_t *ret_n, bool *ret_more)
{
	size_t n = 0;
	int rc;
	*ret_more = false;
	while ((rc = sqb_step(st)) == 1) {
		if (n == limit) {
			*ret_more = true;
			rc = 0;
			break;
		}
		rc = row(st, (char *)v + n * elem);
		if (rc < 0)
			break;
		n++;
	}
	sqlite3_reset(st);
	*ret_n = n;
	return rc < 0 ? rc : 0;
}

int sqb_run(sqb_conn_t *c, int id, const char *sql)
{
	sqlite3_stmt *st;
	int rc = sqb_stmt(c, id, sql, &st);
	if (rc < 0)
		return rc;
	rc = sqb_step(st);
	sqlite3_reset(st);
	return rc < 0 ? rc : 0;
}

/* Prepares the cached statement id and binds p[0..n) to it. */
static int stmt_bound(sqb_conn_t *c, int id, const char *sql,
                      const sqb_param_t *p, size_t n, sqlite3_stmt **ret)
{
	sqlite3_stmt *st;
	int rc = sqb_stmt(c, id, sql, &st);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		int at = (int)i + 1;
		rc = p[i].is_int ? sqb_bind_int(st, at, p[i].num)
		                 : sqb_bind_text(st, at, p[i].text);
		if (rc < 0) {
			sqlite3_reset(st);
			return rc;
		}
	}
	*ret = st;
	return 0;
}

int sqb_exec(sqb_conn_t *c, int id, const char *sql, const sqb_param_t *p,
             size_t n)
{
	sqlite3_stmt *st;
	int rc = stmt_bound(c, id, sql, p, n, &st);
	if (rc < 0)
		return rc;
	rc = sqb_step(st);
	sqlite3_reset(st);
	return rc < 0 ? rc : sqlite3_changes(c->db);
}

int sqb_row(sqb_conn_t *c, int id, const char *sql, const sqb_param_t *p,
            size_t n, sqlite3_stmt **ret_st)
{
	sqlite3_stmt *st;
	int rc = stmt_bound(c, id, sql, p, n, &st);
	if (rc < 0)
		return rc;
	rc = sqb_step(st);
	if (rc != 1) {
		sqlite3_reset(st);
		return rc;
	}
	*ret_st = st;
	return 1;
}

static int read_now(sqb_conn_t *c, int64_t *ret_now)
{
	sqlite3_stmt *st;
	int rc = sqb_row(c, SQB_NOW, "SELECT " SQB_NOW_SQL, NULL, 0, &st);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return OD_EINTERNAL;
	*ret_now = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

/* Back to synchronous=FULL after a lazy transaction; called with wlock. */
static void end_lazy(sqb_store_t *s)
{
	if (!s->lazy)
		return;
	s->lazy = false;
	/* If this failed, the next lazy begin or the next commit would run
	 * without fsync: treat it as fatal for durability and say so loudly
	 * through the error path of the next write instead of guessing. */
	if (sqb_run(&s->writer, SQB_SYNC_FULL, "PRAGMA synchronous = FULL") < 0)
		s->sync_broken = true;
}

static void conn_close(sqb_conn_t *c, bool checkpoint);
static int conn_open(sqb_conn_t *c, const char *path, bool writer, int busy_ms);

/* (Re)opens the writer, which records the store's replica with events. */
static int writer_open(sqb_store_t *s)
{
	int rc = conn_open(&s->writer, s->path, true, s->busy_ms);
	s->writer.replica = s->replica[0] ? s->replica : NULL;
	return rc;
}

/*
 * Ends the writer's open transaction, if any, with ROLLBACK; called with
 * wlock. A ROLLBACK that fails, or leaves a transaction open, would wedge
 * the writer for good (every later BEGIN fails "within a transaction"):
 * the writer is marked broken and the next begin repairs it.
 */
static void writer_abort(sqb_store_t *s)
{
	sqb_conn_t *c = &s->writer;
	if (!c->db || sqlite3_get_autocommit(c->db))
		return;
	int rc = failpoint_hit("sqlite_rollback_fail")
	             ? OD_ESTORE
	             : sqb_run(c, SQB_ROLLBACK, "ROLLBACK");
	if (rc < 0 || !sqlite3_get_autocommit(c->db))
		s->writer_broken = true;
}

/* Makes the writer usable again after writer_abort could not end its
 * transaction: one more ROLLBACK, else a fresh connection (closing the
 * old one discards whatever it had not committed). Counted either way. */
static int writer_repair(sqb_store_t *s)
{
	sqb_conn_t *c = &s->writer;
	s->resets++;
	if (c->db && !sqlite3_get_autocommit(c->db))
		sqb_run(c, SQB_ROLLBACK, "ROLLBACK");
	if (!c->db || !sqlite3_get_autocommit(c->db)) {
		conn_close(c, false);
		int rc = writer_open(s);
		if (rc < 0)
			return rc; /* still broken: the next begin tries again
			            */
	}
	s->writer_broken = false;
	return 0;
}

int sqb_write_begin(sqb_store_t *s, sqb_commit_t commit, sqb_conn_t **ret_c,
                    int64_t *ret_now)
{
	pthread_mutex_lock(&s->wlock);
	sqb_conn_t *c = &s->writer;
	int rc;
	if (s->writer_broken || !c->db || !sqlite3_get_autocommit(c->db)) {
		rc = writer_repair(s);
		if (rc < 0)
			goto unlock;
	}
	if (s->sync_broken) {
		/* Re-establish FULL before any write; refuse until it holds. */
		rc = sqb_run(c, SQB_SYNC_FULL, "PRAGMA synchronous = FULL");
		if (rc < 0)
			goto unlock;
		s->sync_broken = false;
	}
	if (commit == SQB_LAZY) {
		rc = sqb_run(c, SQB_SYNC_NORMAL, "PRAGMA synchronous = NORMAL");
		if (rc < 0)
			goto unlock;
		s->lazy = true;
	}
	rc = sqb_run(c, SQB_BEGIN_IMMEDIATE, "BEGIN IMMEDIATE");
	if (rc < 0)
		goto unlock;
	int64_t now;
	rc = read_now(c, &now);
	if (rc < 0) {
		writer_abort(s);
		goto unlock;
	}
	*ret_c = c;
	*ret_now = now;
	return 0;
unlock:
	end_lazy(s);
	pthread_mutex_unlock(&s->wlock);
	return rc;
}

int sqb_write_commit(sqb_store_t *s)
{
	sqb_conn_t *c = &s->writer;
	sqlite3_stmt *st;
	int rc = sqb_stmt(c, SQB_COMMIT, "COMMIT", &st);
	if (rc < 0) {
		writer_abort(s);
		goto unlock;
	}
	int src = sqlite3_step(st);
	sqlite3_reset(st);
	if (src != SQLITE_DONE) {
		int busy = (src & 0xff) == SQLITE_BUSY ||
		           (src & 0xff) == SQLITE_LOCKED;
		writer_abort(s);
		/* BUSY leaves the transaction open and uncommitted; an I/O
		 * error during the commit may or may not have made it
		 * durable. */
		rc = busy ? OD_ESTORE : OD_EUNKNOWN;
		goto unlock;
	}
	int64_t mono = clock_mono_ms();
	if (mono - s->last_ckpt_ms >= SQB_CHECKPOINT_EVERY_MS) {
		/* Best effort: PASSIVE never waits for readers, and a failed
		 * checkpoint is retried next time. */
		sqlite3_wal_checkpoint_v2(
		    c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		s->last_ckpt_ms = mono;
	}
	rc = 0;
unlock:
	end_lazy(s);
	pthread_mutex_unlock(&s->wlock);
	return rc;
}

void sqb_write_rollback(sqb_store_t *s)
{
	writer_abort(s);
	end_lazy(s);
	pthread_mutex_unlock(&s->wlock);
}

int sqb_write_end(sqb_store_t *s, int rc, size_t changed)
{
	if (rc < 0 || changed == 0) {
		sqb_write_rollback(s);
		return rc < 0 ? rc : 0;
	}
	return sqb_write_commit(s);
}

sqb_conn_t *sqb_reader_get(sqb_store_t *s)
{
	pthread_mutex_lock(&s->rlock);
	while (s->n_idle == 0)
		pthread_cond_wait(&s->rcond, &s->rlock);
	sqb_conn_t *c = s->idle[--s->n_idle];
	pthread_mutex_unlock(&s->rlock);
	return c;
}

void sqb_reader_put(sqb_store_t *s, sqb_conn_t *c)
{
	pthread_mutex_lock(&s->rlock);
	s->idle[s->n_idle++] = c;
	pthread_cond_signal(&s->rcond);
	pthread_mutex_unlock(&s->rlock);
}

int sqb_read_begin(sqb_conn_t *c, int64_t *ret_now)
{
	int rc = sqb_run(c, SQB_BEGIN, "BEGIN");
	if (rc < 0)
		return rc;
	/* The first read starts the snapshot; reading the clock is one. */
	int64_t now;
	rc = read_now(c, &now);
	if (rc < 0) {
		sqb_read_end(c);
		return rc;
	}
	if (ret_now)
		*ret_now = now;
	return 0;
}

void sqb_read_end(sqb_conn_t *c)
{
	if (!sqlite3_get_autocommit(c->db))
		sqb_run(c, SQB_COMMIT, "COMMIT");
	if (!sqlite3_get_autocommit(c->db))
		sqb_run(c, SQB_ROLLBACK, "ROLLBACK");
}

static void conn_close(sqb_conn_t *c, bool checkpoint)
{
	if (!c->db)
		return;
	for (int i = 0; i < SQB_STMT_COUNT; i++) {
		sqlite3_finalize(c->stmt[i]);
		c->stmt[i] = NULL;
	}
	if (checkpoint)
		sqlite3_wal_checkpoint_v2(
		    c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	sqlite3_close(c->db);
	c->db = NULL;
}

static int conn_open(sqb_conn_t *c, const char *path, bool writer, int busy_ms)
{
	int flags = SQLITE_OPEN_NOMUTEX |
	            (writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
	                    : SQLITE_OPEN_READONLY);
	memset(c, 0, sizeof *c);
	int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
	if (rc != SQLITE_OK) {
		rc = c->db ? sqb_err(sqlite3_errcode(c->db)) : -ENOMEM;
		if (rc == OD_EINTERNAL)
			rc = OD_ESTORE;
		goto fail;
	}
	sqlite3_extended_result_codes(c->db, 1);
	rc = sqlite3_busy_timeout(c->db, busy_ms);
	if (rc != SQLITE_OK)
		goto fail_rc;
	if (writer) {
		/* WAL: readers never block the writer nor the writer them.
		 * synchronous=FULL: a commit is on stable storage when COMMIT
		 * returns (G1). The journal mode is persistent in the file. */
		rc = sqlite3_exec(c->db,
		                  "PRAGMA journal_mode=WAL;"
		                  "PRAGMA synchronous=FULL;",
		                  NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			goto fail_rc;
	}
	return 0;
fail_rc:
	rc = sqb_err(rc);
fail:
	conn_close(c, false);
	return rc;
}

int sqb_store_open(const char *path, const store_options_t *opt,
                   sqb_store_t **ret)
{
	int busy_ms = SQB_BUSY_TIMEOUT_DEFAULT;
	size_t readers = SQB_READERS_DEFAULT;
	if (opt && opt->busy_timeout_ms > 0)
		busy_ms = opt->busy_timeout_ms;
	if (opt && opt->readers > 0)
		readers = (size_t)opt->readers;
	if (readers > SQB_READERS_MAX)
		readers = SQB_READERS_MAX;
	if (!path || !*path)
		return OD_ECONFIG;

	sqb_store_t *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->wlock, NULL);
	pthread_mutex_init(&s->rlock, NULL);
	pthread_cond_init(&s->rcond, NULL);
	int rc = -ENOMEM;
	s->readers = calloc(readers, sizeof *s->readers);
	s->idle = calloc(readers, sizeof *s->idle);
	if (!s->readers || !s->idle)
		goto free_store;
	s->last_ckpt_ms = clock_mono_ms();
	s->busy_ms = busy_ms;
	if (!(s->path = strdup(path)))
		goto free_store;
	if (opt && opt->replica_id)
		snprintf(s->replica, sizeof s->replica, "%s", opt->replica_id);

	rc = writer_open(s);
	if (rc < 0)
		goto free_store;
	rc = sqs_migrate(&s->writer);
	if (rc < 0)
		goto free_store;
	/* Readers open after the writer so the file, its WAL and its schema
	 * exist (a read-only connection cannot create them). */
	for (size_t i = 0; i < readers; i++) {
		rc = conn_open(&s->readers[i], path, false, busy_ms);
		if (rc < 0)
			goto free_store;
		s->n_readers = i + 1;
		s->idle[s->n_idle++] = &s->readers[i];
	}
	*ret = s;
	return 0;
free_store:
	sqb_store_free(s);
	return rc;
}

void sqb_store_free(sqb_store_t *s)
{
	if (!s)
		return;
	/* The caller guarantees no call is in flight. Readers close first so
	 * the writer's final checkpoint can copy the whole WAL back. */
	for (size_t i = 0; s->readers && i < s->n_readers; i++)
		conn_close(&s->readers[i], false);
	conn_close(&s->writer, true);
	pthread_cond_destroy(&s->rcond);
	pthread_mutex_destroy(&s->rlock);
	pthread_mutex_destroy(&s->wlock);
	free(s->idle);
	free(s->readers);
	free(s->path);
	free(s);
}
