/*
 * postgres_pool: the connection pool of the postgres store backend. See
 * postgres_pool.h. One mutex guards the free list and the reconnect
 * backoff; connecting, preparing and running statements happen outside it,
 * on a connection that only the thread that checked it out touches.
 *
 * All I/O with the server goes through two functions, await_result (a
 * statement) and slot_connect (a connection), which wait in poll() against
 * the checkout's deadline: see postgres_pool.h. On a deadline hit the
 * connection is only closed, never cancelled: libpq 15's PQcancel opens a
 * new connection and waits for the server to close it, with no timeout,
 * so against a frozen server it would hang the very caller the deadline
 * protects. A statement abandoned this way runs on until it ends by itself
 * (statement_timeout, lock_timeout), the server notices the closed socket
 * (client_connection_check_interval, set where the server has it) or, in
 * a transaction, the server reads our Terminate and rolls back.
 */
#include "store/postgres_pool.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/backoff.h"
#include "util/clock.h"
#include "util/err.h"

#define POOL_MAX 256
#define N_KW 12

struct pgp {
	/* libpq connection keywords; values point into the buffers below. */
	const char *kw[N_KW + 1];
	const char *val[N_KW + 1];
	char *uri;
	char app[ID_MAX + 1];
	char connect_timeout[16];
	char tcp_user_timeout[16];
	char setup_sql[320]; /* session settings run after each connect */
	/* Transaction pooling (opt->pg_txn_pooling): no setup_sql; these
	 * set the same settings for one transaction instead, [1] with the
	 * setting only PostgreSQL 14 and later have. */
	bool txn_pooling;
	char local_sql[2][448];
	int64_t wait_ms;
	int64_t deadline_ms; /* of every checkout */
	/* The URI's host, hostaddr and port lists when it names several hosts
	 * (NULL: not given, or one value for all), so a connect can start at
	 * any of them; see slot_connect. */
	char *hosts[3];
	size_t n_hosts; /* 1: nothing to rotate */
	size_t
	    first_host; /* mu: where connects start: the last that answered */

	_Atomic int64_t resets; /* connections closed as broken in pgp_put */
	_Atomic int64_t deadline_hits; /* checkouts out of their deadline */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled when a slot returns to the list */
	pgc_t *slots;      /* n slots; a slot's fields belong to its holder */
	size_t n;
	pgc_t **free_list;   /* mu: n_free free slots, live ones at the top */
	size_t n_free;       /* mu */
	int failures;        /* mu: consecutive failed connects */
	int64_t next_try_ms; /* mu: monotonic time before which no connect */
};

static const char *const host_kw[3] = {"host", "hostaddr", "port"};

static size_t list_len(const char *s)
{
	size_t n = 1;
	for (; *s; s++)
		n += *s == ',';
	return n;
}

/* Fills p's host lists from uri (see struct pgp); 0 or -ENOMEM. */
static int parse_hosts(pgp_t *p, const char *uri)
{
	PQconninfoOption *ci = PQconninfoParse(uri, NULL);
	int rc = 0;
	p->n_hosts = 1;
	for (PQconninfoOption *o = ci; o && o->keyword; o++)
		for (int i = 0; i < 3; i++)
			if (o->val && *o->val &&
			    strcmp(o->keyword, host_kw[i]) == 0 &&
			    !(p->hosts[i] = strdup(o->val)))
				rc = -ENOMEM;
	PQconninfoFree(ci);
	if (p->hosts[0])
		p->n_hosts = list_len(p->hosts[0]);
	else if (p->hosts[1])
		p->n_hosts = list_len(p->hosts[1]);
	for (int i = 0; i < 3; i++)
		if (p->hosts[i] &&
		    (p->n_hosts == 1 || list_len(p->hosts[i]) != p->n_hosts)) {
			free(p->hosts[i]);
			p->hosts[i] = NULL;
		}
	return rc;
}

static const backoff_t reconnect_backoff = {.base_ms = 50, .cap_ms = 5000};

int pgp_new(const char *uri, const store_options_t *opt, pgp_t **ret)
{
	int pool = opt && opt->readers > 0 ? opt->readers : 8;
	if (pool > POOL_MAX)
		pool = POOL_MAX;
	int connect_ms =
	    opt && opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : 5000;
	int stmt_ms = opt && opt->statement_timeout_ms > 0
	                  ? opt->statement_timeout_ms
	                  : 30000;
	int lock_ms =
	    opt && opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : 5000;
	int deadline_ms = opt && opt->deadline_ms > 0 ? opt->deadline_ms : 5000;
	const char *app = opt && opt->replica_id && *opt->replica_id
	                      ? opt->replica_id
	                      : "orderd";

	pgp_t *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->uri = strdup(uri);
	p->slots = calloc((size_t)pool, sizeof *p->slots);
	p->free_list = calloc((size_t)pool, sizeof *p->free_list);
	if (!p->uri || !p->slots || !p->free_list) {
		free(p->uri);
		free(p->slots);
		free(p->free_list);
		free(p);
		return -ENOMEM;
	}
	p->n = (size_t)pool;
	for (size_t i = 0; i < p->n; i++) {
		p->slots[i].pool = p;
		p->free_list[i] = &p->slots[i];
	}
	p->n_free = p->n;
	snprintf(p->app, sizeof p->app, "%s", app);
	/* libpq takes whole seconds and treats values below 2 as 2. */
	snprintf(p->connect_timeout, sizeof p->connect_timeout, "%d",
	         (connect_ms + 999) / 1000);
	/* Unacknowledged data this long means the peer is gone (a cut link
	 * would otherwise hang a write for the kernel's ~15 minutes). */
	snprintf(p->tcp_user_timeout, sizeof p->tcp_user_timeout, "%d",
	         connect_ms > 10000 ? connect_ms : 10000);
	/* A stalled replica must not hold row locks forever: the server
	 * ends a transaction left idle longer than this. */
	int idle_ms = stmt_ms > 10000 ? stmt_ms : 10000;
	snprintf(
	    p->setup_sql, sizeof p->setup_sql,
	    "SET statement_timeout = %d; SET lock_timeout = %d; "
	    "SET idle_in_transaction_session_timeout = %d; "
	    "SET synchronous_commit = on; SET client_min_messages = warning",
	    stmt_ms, lock_ms, idle_ms);
	for (int i = 0; i < 2; i++)
		snprintf(
		    p->local_sql[i], sizeof p->local_sql[i],
		    "SELECT set_config('statement_timeout', '%d', true),"
		    " set_config('lock_timeout', '%d', true),"
		    " set_config('idle_in_transaction_session_timeout',"
		    " '%d', true),"
		    " set_config('synchronous_commit', 'on', true),"
		    " set_config('client_min_messages', 'warning', true)%s",
		    stmt_ms, lock_ms, idle_ms,
		    i ? ", set_config('client_connection_check_interval',"
		        " '1000', true)"
		      : "");
	p->txn_pooling = opt && opt->pg_txn_pooling;
	p->wait_ms = (int64_t)stmt_ms + connect_ms;
	p->deadline_ms = deadline_ms;

	/* Our defaults first and the URI last: libpq lets later keywords
	 * win, so an operator can still override any of them in the URI. */
	size_t k = 0;
	p->kw[k] = "connect_timeout", p->val[k++] = p->connect_timeout;
	p->kw[k] = "keepalives", p->val[k++] = "1";
	p->kw[k] = "keepalives_idle", p->val[k++] = "10";
	p->kw[k] = "keepalives_interval", p->val[k++] = "5";
	p->kw[k] = "keepalives_count", p->val[k++] = "3";
	p->kw[k] = "tcp_user_timeout", p->val[k++] = p->tcp_user_timeout;
	p->kw[k] = "target_session_attrs", p->val[k++] = "read-write";
	p->kw[k] = "application_name", p->val[k++] = p->app;
	p->kw[k] = "dbname", p->val[k++] = p->uri;
	p->kw[k] = NULL, p->val[k] = NULL;

	pthread_mutex_init(&p->mu, NULL);
	clock_cond_init(&p->cv);
	if (parse_hosts(p, uri) < 0) {
		pgp_free(p);
		return -ENOMEM;
	}
	*ret = p;
	return 0;
}

void pgp_free(pgp_t *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		if (p->slots[i].conn)
			PQfinish(p->slots[i].conn);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	for (int i = 0; i < 3; i++)
		free(p->hosts[i]);
	free(p->free_list);
	free(p->slots);
	free(p->uri);
	free(p);
}

int64_t pgp_wait_ms(const pgp_t *p)
{
	return p->wait_ms;
}

int64_t pgp_deadline_hits(const pgp_t *p)
{
	return p->deadline_hits;
}

void pgc_extend(pgc_t *c, int64_t ms)
{
	c->deadline_ms = clock_mono_ms() + ms;
}

/* ---- waiting on the server, against the deadline ---- */

/* Counts c's checkout as out of its deadline, once. */
static void deadline_hit(pgc_t *c)
{
	if (!c->timed_out)
		c->pool->deadline_hits++;
	c->timed_out = true;
}

/*
 * Waits until c's socket has one of events (POLLIN, POLLOUT) or until
 * (monotonic ms; c's deadline, or a connect's share of it) passes: 1 ready, 0
 * deadline, OD_ESTORE when there is no socket to wait on or poll fails.
 */
static int sock_wait(pgc_t *c, short events, int64_t until)
{
	int fd = PQsocket(c->conn);
	if (fd < 0)
		return OD_ESTORE;
	for (;;) {
		int64_t left = until - clock_mono_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = {.fd = fd, .events = events};
		int n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return OD_ESTORE;
	}
}

/*
 * Before anything is sent on c: OD_ESTORE when c is unusable or its
 * deadline has passed already. Nothing reached the server then, so it is a
 * definite "nothing happened", and c is not marked lost for it.
 */
static int may_send(pgc_t *c)
{
	if (!c->conn || c->lost)
		return OD_ESTORE;
	if (clock_mono_ms() >= c->deadline_ms) {
		deadline_hit(c);
		return OD_ESTORE;
	}
	return 0;
}

/*
 * After a PQsend* call that returned sent: writes out what libpq buffered
 * and reads every result, waiting only in sock_wait. Returns the last
 * result (the error, if a statement failed; NULL when the connection broke
 * before any), like PQexec. At the deadline it returns NULL with c lost and
 * timed out: the statement may be running or even committing, and c is
 * mid-protocol, so it can only be closed. pipeline: c is in pipeline mode
 * with its queries sent before one PQpipelineSync; every result up to the
 * Sync's is read, and the first error is returned, else the last query's
 * result.
 */
static PGresult *await_result(pgc_t *c, int sent, bool pipeline)
{
	PGresult *last = NULL;
	int rc;
	if (!sent)
		return NULL;
	for (;;) {
		int f = PQflush(c->conn);
		if (f == 0)
			break;
		if (f < 0)
			return NULL;
		rc = sock_wait(c, POLLOUT | POLLIN, c->deadline_ms);
		if (rc == 0)
			goto expired;
		/* Read what the server says meanwhile (an early error) so
		 * neither side waits on a full buffer. */
		if (rc < 0 || PQconsumeInput(c->conn) == 0)
			return NULL;
	}
	for (;;) {
		while (PQisBusy(c->conn)) {
			rc = sock_wait(c, POLLIN, c->deadline_ms);
			if (rc == 0)
				goto expired;
			if (rc < 0 || PQconsumeInput(c->conn) == 0)
				goto broken;
		}
		PGresult *res = PQgetResult(c->conn);
		if (!res) {
			if (!pipeline)
				return last;
			continue; /* the end of one query's results */
		}
		ExecStatusType st = PQresultStatus(res);
		if (pipeline && st == PGRES_PIPELINE_SYNC) {
			/* The server's ReadyForQuery: the pipeline's implicit
			 * transaction is over, committed unless it failed. */
			PQclear(res);
			return last;
		}
		if (pipeline &&
		    (st == PGRES_PIPELINE_ABORTED ||
		     (last && PQresultStatus(last) == PGRES_FATAL_ERROR))) {
			PQclear(res); /* the first error is the one to map */
			continue;
		}
		PQclear(last);
		last = res;
	}
broken:
	/*
	 * The connection broke before the server said it was done (its
	 * ReadyForQuery). A success result already in hand proves nothing:
	 * with the extended protocol an autocommit statement's CommandComplete
	 * comes before its commit at Sync, so a crash in between must read as
	 * "lost", never as success (PQexec reports it so too). An error result
	 * (a FATAL before the close) is kept for its SQLSTATE.
	 */
	if (PQresultStatus(last) == PGRES_FATAL_ERROR)
		return last;
	PQclear(last);
	return NULL;
expired:
	PQclear(last);
	c->lost = true;
	c->sqlstate[0] = '\0';
	deadline_hit(c);
	return NULL;
}

/* The status check after await_result: 0 with *ret set, or the error. */
static int finish(pgc_t *c, PGresult *res, PGresult **ret)
{
	ExecStatusType status = PQresultStatus(res);
	if (c->timed_out && !res)
		return OD_ESTORE;
	if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
		*ret = res;
		return 0;
	}
	int rc = pgc_error(c, res);
	PQclear(res);
	return rc;
}

static void slot_close(pgc_t *c)
{
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	memset(c->prepared, 0, sizeof c->prepared);
	c->n_prepared = 0;
	c->local_sql = NULL;
}

/*
 * True when an idle connection still works as far as we can tell without a
 * round trip. A backend that was terminated (pg_terminate_backend, server
 * restart, failover) while we were idle has already sent its FATAL message
 * and closed the socket. We never LISTEN, so an idle session has nothing
 * legitimate to say: any readable data means it is going away, and using it
 * would only cost the caller a failed statement.
 */
static bool slot_alive(pgc_t *c)
{
	if (!c->conn || PQstatus(c->conn) != CONNECTION_OK ||
	    PQtransactionStatus(c->conn) != PQTRANS_IDLE)
		return false;
	struct pollfd pfd = {.fd = PQsocket(c->conn), .events = POLLIN};
	if (pfd.fd < 0)
		return false;
	return poll(&pfd, 1, 0) == 0;
}

/* Library modules never log: drop the server's notices. */
static void ignore_notice(void *arg, const char *msg) {}

static void connect_failed(pgp_t *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->failures < 30)
		p->failures++;
	p->next_try_ms =
	    clock_mono_ms() +
	    backoff_delay_ms(&reconnect_backoff, p->failures, clock_rand());
	pthread_mutex_unlock(&p->mu);
}

/* The comma-separated list (of list_len elements) from element k on,
 * then the ones before it; malloc'd, NULL when out of memory. */
static char *list_rotated(const char *list, size_t k)
{
	const char *from = list;
	for (size_t i = 0; i < k; i++)
		from = strchr(from, ',') + 1;
	size_t head = (size_t)(from - list), tail = strlen(from);
	char *out = malloc(head + tail + 1);
	if (!out)
		return NULL;
	memcpy(out, from, tail);
	if (head > 0) {
		out[tail] = ',';
		memcpy(out + tail + 1, list, head - 1);
	}
	out[head + tail] = '\0';
	return out;
}

/*
 * Starts c's connection with the URI's host list beginning at host k, and
 * polls it until connected (0), until passes (1), or it fails (OD_ESTORE).
 * The rotated lists go after the URI: libpq's later keywords win.
 */
static int connect_host(pgp_t *p, pgc_t *c, size_t k, int64_t until)
{
	const char *kw[N_KW + 4], *val[N_KW + 4];
	char *rot[3] = {NULL, NULL, NULL};
	size_t n = 0;
	for (; p->kw[n]; n++)
		kw[n] = p->kw[n], val[n] = p->val[n];
	for (int i = 0; i < 3 && k > 0; i++)
		if (p->hosts[i] && (rot[i] = list_rotated(p->hosts[i], k)))
			kw[n] = host_kw[i], val[n++] = rot[i];
	kw[n] = val[n] = NULL;
	c->conn = PQconnectStartParams(kw, val, 1);
	for (int i = 0; i < 3; i++)
		free(rot[i]);
	if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD)
		return OD_ESTORE;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED)
			return OD_ESTORE;
		int rc = sock_wait(
		    c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, until);
		if (rc <= 0)
			return rc == 0 ? 1 : rc;
		st = PQconnectPoll(c->conn);
	}
	return 0;
}

static int slot_connect(pgp_t *p, pgc_t *c)
{
	pthread_mutex_lock(&p->mu);
	bool wait = clock_mono_ms() < p->next_try_ms;
	pthread_mutex_unlock(&p->mu);
	if (wait)
		return OD_ESTORE; /* backing off: fail fast, the caller retries
		                   */

	/*
	 * libpq's blocking connect bounds each host by connect_timeout; its
	 * polled connect bounds nothing, and a silent host (frozen, packets
	 * dropped) would hold it, and every later connect, forever, never
	 * trying the next host. So each host of the list gets an equal share
	 * of what is left of the deadline, starting at the one that answered
	 * last; a host that refuses or errors is skipped by libpq at once.
	 */
	size_t n = p->n_hosts;
	pthread_mutex_lock(&p->mu);
	size_t first = p->first_host;
	pthread_mutex_unlock(&p->mu);
	int rc = OD_ESTORE;
	for (size_t a = 0; a < n; a++) {
		size_t k = (first + a) % n;
		int64_t now = clock_mono_ms();
		int64_t until = now + (c->deadline_ms - now) / (int64_t)(n - a);
		rc = connect_host(p, c, k, until);
		if (rc == 0) {
			pthread_mutex_lock(&p->mu);
			p->first_host = k;
			pthread_mutex_unlock(&p->mu);
			break;
		}
		slot_close(c);
		if (rc != 1)
			break; /* every host failed: libpq tried them all */
	}
	if (rc == 1)
		deadline_hit(c);
	if (rc != 0)
		goto fail;
	PQsetNoticeProcessor(c->conn, ignore_notice, NULL);
	if (PQsetnonblocking(c->conn, 1) != 0)
		goto fail;
	c->local_sql = NULL;
	if (p->txn_pooling) {
		/* Nothing to set up: a SET now would change whichever server
		 * session the pooler lends us for it, and no later one. */
		c->local_sql = p->local_sql[PQserverVersion(c->conn) >= 140000];
		goto connected;
	}
	char setup[sizeof p->setup_sql + 64];
	/* PostgreSQL 14 and later notice a closed client while a statement
	 * runs, so one abandoned at the deadline stops soon; an older server
	 * or another engine without the setting just does not get it. */
	snprintf(setup, sizeof setup, "%s%s", p->setup_sql,
	         PQserverVersion(c->conn) >= 140000
	             ? "; SET client_connection_check_interval = 1000"
	             : "");
	PGresult *res = await_result(c, PQsendQuery(c->conn, setup), false);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok)
		goto fail;
connected:
	pthread_mutex_lock(&p->mu);
	p->failures = 0;
	p->next_try_ms = 0;
	pthread_mutex_unlock(&p->mu);
	return 0;
fail:
	slot_close(c);
	connect_failed(p);
	return OD_ESTORE;
}

static void push_free(pgp_t *p, pgc_t *c)
{
	/* Live connections on top so they are reused first. */
	if (c->conn) {
		p->free_list[p->n_free++] = c;
	} else {
		memmove(&p->free_list[1], &p->free_list[0],
		        p->n_free * sizeof *p->free_list);
		p->free_list[0] = c;
		p->n_free++;
	}
	pthread_cond_signal(&p->cv);
}

int64_t pgp_resets(const pgp_t *p)
{
	return p->resets;
}

int pgp_get(pgp_t *p, int64_t wait_ms, pgc_t **ret)
{
	int64_t now = clock_mono_ms();
	int64_t deadline = now + p->deadline_ms;
	int64_t until = now + wait_ms < deadline ? now + wait_ms : deadline;
	struct timespec ts = clock_mono_timespec(until);
	pthread_mutex_lock(&p->mu);
	while (p->n_free == 0) {
		if (clock_mono_ms() >= until) {
			pthread_mutex_unlock(&p->mu);
			if (until == deadline)
				p->deadline_hits++;
			return OD_ESTORE;
		}
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	pgc_t *c = p->free_list[--p->n_free];
	pthread_mutex_unlock(&p->mu);

	c->lost = false;
	c->timed_out = false;
	c->deadline_ms = deadline;
	c->sqlstate[0] = '\0';
	if (!slot_alive(c)) {
		slot_close(c);
		int rc = slot_connect(p, c);
		if (rc < 0) {
			pthread_mutex_lock(&p->mu);
			push_free(p, c);
			pthread_mutex_unlock(&p->mu);
			return rc;
		}
	}
	*ret = c;
	return 0;
}

void pgp_put(pgp_t *p, pgc_t *c)
{
	if (!c)
		return;
	if (c->conn && (c->lost || PQstatus(c->conn) != CONNECTION_OK ||
	                PQtransactionStatus(c->conn) != PQTRANS_IDLE)) {
		p->resets++;
		slot_close(c);
	}
	c->lost = false;
	pthread_mutex_lock(&p->mu);
	push_free(p, c);
	pthread_mutex_unlock(&p->mu);
}

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

int pgc_error(pgc_t *c, const PGresult *res)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (st)
		snprintf(c->sqlstate, sizeof c->sqlstate, "%s", st);
	else
		c->sqlstate[0] = '\0';
	if (!c->conn || PQstatus(c->conn) != CONNECTION_OK || !st) {
		c->lost = true;
		return OD_ESTORE;
	}
	/* Connection class, admin/crash shutdown, or a primary that became a
	 * standby (read-only after failover): this session is useless, a new
	 * one (target_session_attrs=read-write) finds the current primary. */
	if (starts(st, "08") || starts(st, "57P") || strcmp(st, "25006") == 0) {
		c->lost = true;
		return OD_ESTORE;
	}
	/* Serialization failure, deadlock, lock timeout, statement timeout,
	 * resource shortages: transient, nothing happened, retry. */
	if (starts(st, "40") || strcmp(st, "55P03") == 0 ||
	    strcmp(st, "57014") == 0 || starts(st, "53") || starts(st, "58"))
		return OD_ESTORE;
	/* Constraint violations, bad SQL, bad data: our bug, not the world's.
	 */
	if (starts(st, "23") || starts(st, "42") || starts(st, "22"))
		return OD_EINTERNAL;
	return OD_ESTORE;
}

/* The slot of st in c's prepared set: where it is, or the empty slot where
 * it would go. The set is at most half full, so an empty slot exists. */
static size_t prepared_slot(const pgc_t *c, const pgp_stmt_t *st)
{
	const size_t cap = sizeof c->prepared / sizeof c->prepared[0];
	/* Descriptors are at least pointer-aligned: skip the zero bits. */
	size_t i = ((uintptr_t)st / sizeof(void *)) & (cap - 1);
	while (c->prepared[i] && c->prepared[i] != st)
		i = (i + 1) & (cap - 1);
	return i;
}

/*
 * pgc_exec under transaction pooling: st is sent unnamed (parsed and
 * planned by the server on every run: that is the cost). Inside a
 * transaction (pgc_sql put its settings after BEGIN) it goes alone; outside
 * one it is pipelined behind the settings, both before one Sync, so they
 * share one implicit transaction and one round trip, and the pooler keeps
 * us on one server session until the Sync's ReadyForQuery.
 */
static int exec_unnamed(pgc_t *c, const pgp_stmt_t *st, const char *const *vals,
                        PGresult **ret)
{
	int rc = may_send(c);
	if (rc < 0)
		return rc;
	if (PQtransactionStatus(c->conn) != PQTRANS_IDLE)
		return finish(c,
		              await_result(c,
		                           PQsendQueryParams(
		                               c->conn, st->sql, st->nparams,
		                               NULL, vals, NULL, NULL, 0),
		                           false),
		              ret);
	if (PQenterPipelineMode(c->conn) != 1) {
		c->lost = true;
		return OD_ESTORE;
	}
	int sent = PQsendQueryParams(c->conn, c->local_sql, 0, NULL, NULL, NULL,
	                             NULL, 0) &&
	           PQsendQueryParams(c->conn, st->sql, st->nparams, NULL, vals,
	                             NULL, NULL, 0) &&
	           PQpipelineSync(c->conn);
	PGresult *res = await_result(c, sent, true);
	/* Only after the Sync's result is the pipeline empty; otherwise c
	 * is mid-protocol and is closed at checkin. */
	if (res && PQexitPipelineMode(c->conn) != 1)
		c->lost = true;
	return finish(c, res, ret);
}

int pgc_exec(pgc_t *c, const pgp_stmt_t *st, const char *const *vals,
             PGresult **ret)
{
	PGresult *res;
	int rc;
	if (c->local_sql)
		return exec_unnamed(c, st, vals, ret);
	size_t slot = prepared_slot(c, st);
	if (!c->prepared[slot]) {
		if (c->n_prepared >= PGP_MAX_STMTS)
			return OD_EINTERNAL;
		if ((rc = may_send(c)) < 0)
			return rc;
		res = await_result(c,
		                   PQsendPrepare(c->conn, st->name, st->sql,
		                                 st->nparams, NULL),
		                   false);
		if ((rc = finish(c, res, &res)) < 0)
			return rc;
		PQclear(res);
		c->prepared[slot] = st;
		c->n_prepared++;
	}
	if ((rc = may_send(c)) < 0)
		return rc;
	res = await_result(c,
	                   PQsendQueryPrepared(c->conn, st->name, st->nparams,
	                                       vals, NULL, NULL, 0),
	                   false);
	return finish(c, res, ret);
}

int pgc_sql(pgc_t *c, const char *sql, PGresult **ret)
{
	int rc = may_send(c);
	if (rc < 0)
		return rc;
	if (!c->local_sql || PQtransactionStatus(c->conn) != PQTRANS_IDLE)
		return finish(
		    c, await_result(c, PQsendQuery(c->conn, sql), false), ret);
	/* Transaction pooling, outside a transaction: the settings go right
	 * after a BEGIN, or ahead of anything else, in the same query string
	 * (a multi-statement query is one implicit transaction). */
	bool begin = strncmp(sql, "BEGIN", 5) == 0;
	size_t n = strlen(sql) + strlen(c->local_sql) + 3;
	char *both = malloc(n);
	if (!both)
		return OD_ESTORE; /* nothing was sent */
	snprintf(both, n, "%s; %s", begin ? sql : c->local_sql,
	         begin ? c->local_sql : sql);
	rc = finish(c, await_result(c, PQsendQuery(c->conn, both), false), ret);
	free(both);
	return rc;
}

int pgc_cmd(pgc_t *c, const char *sql)
{
	PGresult *res;
	int rc = pgc_sql(c, sql, &res);
	if (rc == 0)
		PQclear(res);
	return rc;
}

void pgc_rollback(pgc_t *c)
{
	if (!c->conn || c->lost || PQstatus(c->conn) != CONNECTION_OK)
		return;
	if (PQtransactionStatus(c->conn) == PQTRANS_IDLE)
		return;
	if (pgc_cmd(c, "ROLLBACK") < 0)
		c->lost = true;
}

int pgc_commit(pgc_t *c)
{
	PGresult *res;
	int rc = pgc_sql(c, "COMMIT", &res);
	if (rc < 0)
		/* Lost in flight, or past the deadline with COMMIT sent: it
		 * may have committed. Refused before sending: it did not. */
		return c->lost ? OD_EUNKNOWN : rc;
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
		/* COMMIT of an aborted transaction answers ROLLBACK. */
		rc = OD_ESTORE;
	PQclear(res);
	return rc;
}
