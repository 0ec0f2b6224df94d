/*
 * sqlite_ceiling: the store-only ceiling of orderd on SQLite, the figure
 * its SQLite end-to-end rate is divided by. One thread, one connection
 * (orderd's single writer), no HTTP, no thread hand-offs: exactly the SQL
 * writes orderd runs for each order, on orderd's own schema, with
 * journal_mode=WAL and synchronous=FULL, in transactions of B orders.
 *
 * The schema is made by orderd's store code itself: store_open() on a fresh
 * file applies the migrations of src/store/sqlite_schema.c (the public
 * store API, the same call orderd makes at start; the store's private
 * headers stay private), and store_product_set() creates the --skus
 * products with ample stock. The store is then closed and the file opened
 * with a plain sqlite3 connection that runs, per round of B orders, the
 * two transactions orderd runs without a confirm step (SQL text copied from
 * the files named; keep them in step):
 *
 *   submit   (sqlite_order.c sqb_submit, group commit; durable)
 *            BEGIN IMMEDIATE; SELECT now;
 *            per order: INSERT INTO orders ... ON CONFLICT (id) DO NOTHING
 *              RETURNING seq;
 *            COMMIT (fsync)
 *   take     (sqlite_lease.c sqb_take: the claim and the processing in
 *            one transaction; durable)
 *            BEGIN IMMEDIATE; SELECT now;
 *            UPDATE counters (the fence) RETURNING value;
 *            UPDATE orders SET status = 'processing' ... WHERE seq IN
 *              (SELECT ... INDEXED BY orders_due LIMIT B) RETURNING ...;
 *            per order: SELECT EXISTS(reservations), held
 *              (the fenced check); per item SELECT stock; per item
 *              UPDATE products SET stock = stock - qty WHERE stock >= qty
 *              and INSERT INTO reservations; UPDATE orders SET status =
 *              'completed' (fenced); INSERT INTO order_events
 *              ('complete');
 *            COMMIT (fsync)
 *
 * and after each commit, like sqb_write_commit, a PASSIVE checkpoint at
 * most once a second. So B orders cost 2 transactions and 2 fsyncs. Not
 * included, because it is C work and not SQL: building the items JSON with
 * jansson and parsing it back from the claim's rows (the text columns are
 * read, not parsed), the in-memory copies, the outbox trigger (created only
 * when notifications are configured; the bench does not configure them).
 *
 * For each batch size in --batches (default 1,100: one order per
 * transaction, and the batch of a 100-order batch request) it runs rounds
 * for --seconds on a fresh database in --dir and prints one JSON object.
 * --keep 1 leaves the databases there, so that `orderctl verify
 * --database sqlite:PATH` can audit what the ceiling wrote.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define CEIL_MAX_BATCHES 8
#define CEIL_MAX_BATCH 2000 /* orderd's default commit-batch */
#define CEIL_MAX_ITEMS 16
#define CEIL_STOCK 1000000000LL
#define CEIL_LEASE_MS 10000 /* orderd's default lease-ms */
#define CEIL_CKPT_EVERY_S 1.0
#define CEIL_ID_LEN 64

/* Copied from src/store/sqlite_int.h (SQB_NOW_SQL, SQB_ORDER_COLS). */
#define NOW_SQL                                                                \
	"CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"
#define ORDER_COLS                                                             \
	"seq, id, customer, items, metadata, status, attempts, reason,"        \
	" created_at, updated_at, finished_at"

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_NOW,
	ST_ORDER_INSERT,
	ST_EVENT_INSERT,
	ST_NEXT_FENCE,
	ST_CLAIM,
	ST_CHECK,
	ST_STOCK,
	ST_TAKE,
	ST_RESERVE,
	ST_FINISH,
	ST_COUNT
};

static const char *const sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_NOW] = "SELECT " NOW_SQL,
    /* sqlite_order.c submit_one */
    [ST_ORDER_INSERT] = "INSERT INTO orders (id, customer, items, metadata,"
                        " status, attempts, created_at, updated_at,"
                        " finished_at, next_at, lease_until, fence)"
                        " VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, 0,"
                        " ?5, 0, 0)"
                        " ON CONFLICT (id) DO NOTHING RETURNING seq",
    /* sqlite.c sqb_event_add */
    [ST_EVENT_INSERT] = "INSERT INTO order_events (order_id, event, fence,"
                        " at) VALUES (?1, ?2, ?3, ?4)",
    /* sqlite.c sqb_next_fence */
    [ST_NEXT_FENCE] = "UPDATE counters SET value = value + 1"
                      " WHERE name = 'fence' RETURNING value",
    /* sqlite_lease.c sqb_claim */
    [ST_CLAIM] = "UPDATE orders SET status = 'processing',"
                 " attempts = attempts + 1, lease_owner = ?1,"
                 " lease_until = ?2, fence = ?3, updated_at = ?4"
                 " WHERE seq IN (SELECT seq FROM orders"
                 " INDEXED BY orders_due"
                 " WHERE status = 'pending' AND next_at <= ?4"
                 " ORDER BY next_at, seq LIMIT ?5)"
                 " RETURNING " ORDER_COLS ", next_at",
    /* sqlite_lease.c process_one, process_check, process_decide,
     * process_reserve, process_finish */
    [ST_CHECK] = "SELECT EXISTS (SELECT 1 FROM reservations"
                 " WHERE order_id = ?1), held FROM orders"
                 " WHERE id = ?1 AND fence = ?2"
                 " AND status = 'processing'",
    [ST_STOCK] = "SELECT stock FROM products WHERE sku = ?1",
    [ST_TAKE] = "UPDATE products SET stock = stock - ?2,"
                " updated_at = ?3"
                " WHERE sku = ?1 AND stock >= ?2",
    [ST_RESERVE] = "INSERT INTO reservations (order_id, sku, qty,"
                   " fence, created_at)"
                   " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_FINISH] = "UPDATE orders SET status = ?3, reason = ?4,"
                  " finished_at = ?5, updated_at = ?5, held = 0,"
                  " fingerprint = ?6,"
                  " lease_owner = NULL, lease_until = 0"
                  " WHERE id = ?1 AND fence = ?2"
                  " AND status = 'processing'",
};

struct ceil_opts {
	const char *dir;
	double seconds;
	long batches[CEIL_MAX_BATCHES];
	int n_batches;
	long skus;
	long items;
	bool keep; /* leave the databases, for `orderctl verify` */
};

/* A claimed order: what process needs of the claim's RETURNING row. */
struct claimed {
	char id[CEIL_ID_LEN + 1];
	long long n; /* the order's number: its skus follow from it */
};

struct ceil {
	const struct ceil_opts *o;
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	char (*skus)[32];
	struct claimed *claimed;
	long long next;       /* order counter */
	long long statements; /* statements executed */
	long long commits, durable_commits;
	double last_ckpt;
	double t_submit, t_take;
	char err[300];
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(struct ceil *c, const char *what)
{
	snprintf(c->err, sizeof c->err, "%s: %s", what, sqlite3_errmsg(c->db));
	return -EIO;
}

/* Resets and clears statement id for a new execution. */
static sqlite3_stmt *stmt(struct ceil *c, int id)
{
	sqlite3_stmt *st = c->st[id];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	c->statements++;
	return st;
}

/* Steps st to the end; 0, or -EIO. The number of rows goes to *ret_rows. */
static int finish_stmt(struct ceil *c, sqlite3_stmt *st, const char *what)
{
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(c, what);
}

/* Runs a statement without parameters. */
static int run(struct ceil *c, int id)
{
	return finish_stmt(c, stmt(c, id), sql[id]);
}

static void bind_text(sqlite3_stmt *st, int at, const char *v)
{
	if (v)
		sqlite3_bind_text(st, at, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, at);
}

/* BEGIN IMMEDIATE and the store clock, like sqb_write_begin. */
static int begin(struct ceil *c, int64_t *ret_now)
{
	if (run(c, ST_BEGIN))
		return -EIO;
	sqlite3_stmt *st = stmt(c, ST_NOW);
	if (sqlite3_step(st) != SQLITE_ROW)
		return fail(c, "now");
	*ret_now = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

/* COMMIT and the periodic PASSIVE checkpoint, like sqb_write_commit. */
static int commit(struct ceil *c, bool durable)
{
	if (run(c, ST_COMMIT))
		return -EIO;
	c->commits++;
	c->durable_commits += durable;
	double t = now_s();
	if (t - c->last_ckpt >= CEIL_CKPT_EVERY_S) {
		sqlite3_wal_checkpoint_v2(
		    c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		c->last_ckpt = t;
	}
	return 0;
}

static int event_add(struct ceil *c, const char *id, const char *event,
                     int64_t fence, int64_t now)
{
	sqlite3_stmt *st = stmt(c, ST_EVENT_INSERT);
	bind_text(st, 1, id);
	bind_text(st, 2, event);
	sqlite3_bind_int64(st, 3, fence);
	sqlite3_bind_int64(st, 4, now);
	return finish_stmt(c, st, "event");
}

static const char *sku_of(struct ceil *c, long long n, long item)
{
	return c->skus[(n * c->o->items + item) % c->o->skus];
}

/* The submit transaction of batch orders, numbered from c->next. */
static int submit(struct ceil *c, long batch, const char *prefix)
{
	int64_t now;
	if (begin(c, &now))
		return -EIO;
	for (long k = 0; k < batch; k++) {
		long long n = c->next++;
		char id[CEIL_ID_LEN + 1], customer[32], items[1024];
		snprintf(id, sizeof id, "%s-%lld", prefix, n);
		snprintf(customer, sizeof customer, "bench-c%lld", n % 1000);
		/* order_items_to_text's format: compact, keys sorted. */
		size_t len = (size_t)snprintf(items, sizeof items, "[");
		for (long i = 0; i < c->o->items; i++)
			len += (size_t)snprintf(items + len, sizeof items - len,
			                        "%s{\"qty\":1,\"sku\":\"%s\"}",
			                        i ? "," : "", sku_of(c, n, i));
		snprintf(items + len, sizeof items - len, "]");
		sqlite3_stmt *st = stmt(c, ST_ORDER_INSERT);
		bind_text(st, 1, id);
		bind_text(st, 2, customer);
		bind_text(st, 3, items);
		bind_text(st, 4, "{}");
		sqlite3_bind_int64(st, 5, now);
		if (sqlite3_step(st) != SQLITE_ROW)
			return fail(c, "order insert");
		if (finish_stmt(c, st, "order insert"))
			return -EIO;
	}
	return commit(c, true);
}

/* The claim, in the open transaction: up to max due orders into
 * c->claimed. */
static int claim(struct ceil *c, int64_t now, long max, int64_t *ret_fence,
                 long *ret_n)
{
	int64_t fence;
	long n = 0;
	sqlite3_stmt *st = stmt(c, ST_NEXT_FENCE);
	if (sqlite3_step(st) != SQLITE_ROW)
		return fail(c, "fence");
	fence = sqlite3_column_int64(st, 0);
	if (finish_stmt(c, st, "fence"))
		return -EIO;
	st = stmt(c, ST_CLAIM);
	bind_text(st, 1, "ceiling");
	sqlite3_bind_int64(st, 2, now + CEIL_LEASE_MS);
	sqlite3_bind_int64(st, 3, fence);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_int64(st, 5, max);
	int rc;
	/* Every column is read as sqb_row_order reads it (the items text is
	 * read, not parsed). */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == max)
			return fail(c, "claim: too many rows");
		const char *id = (const char *)sqlite3_column_text(st, 1);
		size_t len = id ? strlen(id) : 0;
		if (!id || len > CEIL_ID_LEN)
			return fail(c, "claim: bad id");
		memcpy(c->claimed[n].id, id, len + 1);
		const char *dash = strrchr(id, '-');
		c->claimed[n].n = dash ? strtoll(dash + 1, NULL, 10) : 0;
		for (int col = 2; col <= 7; col++)
			(void)sqlite3_column_text(st, col);
		for (int col = 8; col <= 11; col++)
			(void)sqlite3_column_int64(st, col);
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return fail(c, "claim");
	*ret_fence = fence;
	*ret_n = n;
	return 0;
}

/* process_one for an order in stock, no confirm step: completed. */
static int process_one(struct ceil *c, const struct claimed *cl, int64_t fence,
                       int64_t now)
{
	sqlite3_stmt *st = stmt(c, ST_CHECK);
	bind_text(st, 1, cl->id);
	sqlite3_bind_int64(st, 2, fence);
	if (sqlite3_step(st) != SQLITE_ROW)
		return fail(c, "check: order not ours");
	if (sqlite3_column_int(st, 0) || sqlite3_column_int(st, 1))
		return fail(c, "check: already reserved");
	if (finish_stmt(c, st, "check"))
		return -EIO;
	for (long i = 0; i < c->o->items; i++) {
		st = stmt(c, ST_STOCK);
		bind_text(st, 1, sku_of(c, cl->n, i));
		if (sqlite3_step(st) != SQLITE_ROW ||
		    sqlite3_column_int64(st, 0) < 1)
			return fail(c, "stock: unknown sku or short");
		if (finish_stmt(c, st, "stock"))
			return -EIO;
	}
	for (long i = 0; i < c->o->items; i++) {
		const char *sku = sku_of(c, cl->n, i);
		st = stmt(c, ST_TAKE);
		bind_text(st, 1, sku);
		sqlite3_bind_int64(st, 2, 1);
		sqlite3_bind_int64(st, 3, now);
		if (finish_stmt(c, st, "take"))
			return -EIO;
		if (sqlite3_changes(c->db) != 1)
			return fail(c, "take: no row");
		st = stmt(c, ST_RESERVE);
		bind_text(st, 1, cl->id);
		bind_text(st, 2, sku);
		sqlite3_bind_int64(st, 3, 1);
		sqlite3_bind_int64(st, 4, fence);
		sqlite3_bind_int64(st, 5, now);
		if (finish_stmt(c, st, "reserve"))
			return -EIO;
	}
	st = stmt(c, ST_FINISH);
	bind_text(st, 1, cl->id);
	sqlite3_bind_int64(st, 2, fence);
	bind_text(st, 3, "completed");
	bind_text(st, 4, NULL);
	sqlite3_bind_int64(st, 5, now);
	bind_text(st, 6, NULL);
	if (finish_stmt(c, st, "finish"))
		return -EIO;
	if (sqlite3_changes(c->db) != 1)
		return fail(c, "finish: fenced");
	return event_add(c, cl->id, "complete", fence, now) ? -EIO : 0;
}

/* The take transaction: the claim, then each order processed. */
static int take(struct ceil *c, long max, long *ret_n)
{
	int64_t now, fence = 0;
	long n = 0;
	if (begin(c, &now) || claim(c, now, max, &fence, &n))
		return -EIO;
	*ret_n = n;
	for (long i = 0; i < n; i++)
		if (process_one(c, &c->claimed[i], fence, now))
			return -EIO;
	return commit(c, true);
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

/* A fresh database with orderd's schema and products, by orderd's store. */
static int make_db(const struct ceil_opts *o, const char *path,
                   char (*skus)[32])
{
	char uri[4200];
	store_t *s = NULL;
	remove_db(path);
	snprintf(uri, sizeof uri, "sqlite:%s", path);
	int rc = store_open(uri, NULL, &s);
	if (rc < 0) {
		fprintf(stderr, "sqlite_ceiling: store_open %s: %d\n", uri, rc);
		return rc;
	}
	for (long i = 0; i < o->skus && rc == 0; i++) {
		snprintf(skus[i], sizeof skus[i], "bench-sku-%ld", i);
		rc = store_product_set(s, skus[i], CEIL_STOCK, NULL);
	}
	store_free(s);
	if (rc < 0)
		fprintf(stderr, "sqlite_ceiling: store_product_set: %d\n", rc);
	return rc;
}

static int open_raw(struct ceil *c, const char *path)
{
	int rc = sqlite3_open_v2(
	    path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return fail(c, "open");
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, 5000);
	/* As sqlite_conn.c conn_open for the writer. */
	if (sqlite3_exec(c->db,
	                 "PRAGMA journal_mode=WAL;"
	                 "PRAGMA synchronous=FULL;",
	                 NULL, NULL, NULL) != SQLITE_OK)
		return fail(c, "pragma");
	for (int i = 0; i < ST_COUNT; i++)
		if (sqlite3_prepare_v3(c->db, sql[i], -1,
		                       SQLITE_PREPARE_PERSISTENT, &c->st[i],
		                       NULL) != SQLITE_OK)
			return fail(c, sql[i]);
	return 0;
}

static void close_raw(struct ceil *c)
{
	for (int i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(c->st[i]);
		c->st[i] = NULL;
	}
	sqlite3_close(c->db);
	c->db = NULL;
}

/* Rounds of batch orders for o->seconds; prints one JSON member. */
static int run_batch(const struct ceil_opts *o, long batch, char (*skus)[32],
                     bool first)
{
	char path[4096], prefix[32];
	struct ceil c = {.o = o, .skus = skus};
	snprintf(path, sizeof path, "%s/sqlite_ceiling-%ld-%ld.db", o->dir,
	         (long)getpid(), batch);
	snprintf(prefix, sizeof prefix, "ceil%ld", batch);
	int rc = make_db(o, path, skus);
	if (rc < 0)
		return rc;
	c.claimed = calloc((size_t)batch, sizeof *c.claimed);
	if (!c.claimed) {
		remove_db(path);
		return -ENOMEM;
	}
	rc = open_raw(&c, path);
	long long done = 0;
	double t0 = now_s(), deadline = t0 + o->seconds;
	c.last_ckpt = t0;
	while (rc == 0 && (done == 0 || now_s() < deadline)) {
		double a = now_s();
		long n = 0;
		rc = submit(&c, batch, prefix);
		double b = now_s();
		if (rc == 0)
			rc = take(&c, batch, &n);
		if (rc == 0 && n != batch)
			rc = fail(&c, "take: fewer orders than submitted");
		double e = now_s();
		c.t_submit += b - a;
		c.t_take += e - b;
		done += n;
	}
	double el = now_s() - t0;
	if (rc)
		fprintf(stderr, "sqlite_ceiling: batch %ld: %s\n", batch,
		        c.err);
	else
		printf("%s{\"batch\":%ld,\"orders\":%lld,\"seconds\":%.3f,"
		       "\"orders_per_s\":%.1f,\"transactions\":%lld,"
		       "\"durable_commits\":%lld,"
		       "\"statements_per_order\":%.2f,"
		       "\"share\":{\"submit\":%.3f,\"take\":%.3f}}",
		       first ? "" : ",", batch, done, el,
		       el > 0 ? (double)done / el : 0, c.commits,
		       c.durable_commits,
		       done ? (double)c.statements / (double)done : 0,
		       c.t_submit / el, c.t_take / el);
	close_raw(&c);
	free(c.claimed);
	if (o->keep)
		fprintf(stderr, "sqlite_ceiling: kept %s\n", path);
	else
		remove_db(path);
	return rc;
}

static int parse_batches(const char *v, struct ceil_opts *o)
{
	o->n_batches = 0;
	while (*v) {
		char *end;
		errno = 0;
		long b = strtol(v, &end, 10);
		if (errno || end == v || b < 1 || b > CEIL_MAX_BATCH ||
		    o->n_batches == CEIL_MAX_BATCHES)
			return -EINVAL;
		o->batches[o->n_batches++] = b;
		if (*end == ',')
			end++;
		else if (*end)
			return -EINVAL;
		v = end;
	}
	return o->n_batches ? 0 : -EINVAL;
}

static int usage(void)
{
	fprintf(stderr, "usage: sqlite_ceiling [--dir DIR] [--seconds S]"
	                " [--batches 1,100] [--skus K] [--items I]"
	                " [--keep 0|1]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct ceil_opts o = {.dir = ".",
	                      .seconds = 2,
	                      .batches = {1, 100},
	                      .n_batches = 2,
	                      .skus = 20,
	                      .items = 1};
	for (int i = 1; i < argc; i += 2) {
		if (i + 1 >= argc)
			return usage();
		const char *f = argv[i], *v = argv[i + 1];
		char *end;
		errno = 0;
		if (strcmp(f, "--dir") == 0) {
			o.dir = v;
		} else if (strcmp(f, "--seconds") == 0) {
			o.seconds = strtod(v, &end);
			if (errno || end == v || *end || !(o.seconds > 0) ||
			    o.seconds > 3600)
				return usage();
		} else if (strcmp(f, "--batches") == 0) {
			if (parse_batches(v, &o))
				return usage();
		} else if (strcmp(f, "--keep") == 0) {
			o.keep = strcmp(v, "1") == 0;
		} else if (strcmp(f, "--skus") == 0) {
			o.skus = strtol(v, &end, 10);
			if (errno || *end || o.skus < 1 || o.skus > 100000)
				return usage();
		} else if (strcmp(f, "--items") == 0) {
			o.items = strtol(v, &end, 10);
			if (errno || *end || o.items < 1 ||
			    o.items > CEIL_MAX_ITEMS)
				return usage();
		} else {
			return usage();
		}
	}
	if (o.items > o.skus)
		return usage();
	char(*skus)[32] = calloc((size_t)o.skus, sizeof *skus);
	if (!skus)
		return 1;
	printf("{\"journal_mode\":\"wal\",\"synchronous\":\"FULL\","
	       "\"schema\":\"orderd store_open\",\"skus\":%ld,\"items\":%ld,"
	       "\"seconds\":%.2f,\"runs\":[",
	       o.skus, o.items, o.seconds);
	int rc = 0;
	for (int i = 0; i < o.n_batches && rc == 0; i++)
		rc = run_batch(&o, o.batches[i], skus, i == 0);
	printf("]}\n");
	free(skus);
	return rc ? 1 : 0;
}
