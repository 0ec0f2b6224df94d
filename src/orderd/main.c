/*
 * orderd: the daemon's entry point. Loads the configuration, wires the
 * modules together (store -> batcher -> workers -> HTTP server), then waits
 * for SIGTERM/SIGINT, reports not ready for ORDERD_SHUTDOWN_DELAY_MS while
 * still serving, and drains: report not ready, refuse new work, commit
 * and answer what is queued, finish or hand back every claimed order, exit 0
 * within the drain timeout.
 *
 * With ORDERD_NOTIFY_URL it enables the outbox and starts the
 * notification dispatcher (work/notifier.h), drained after the workers.
 *
 * Exit codes (sysexits): 0 clean stop, 78 bad configuration, 69 the store
 * or the listen address is unavailable at start, 70 internal error.
 */
#include <curl/curl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "http/server.h"
#include "obs/alerts.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "orderd/config.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/failpoint.h"
#include "work/alertmanager.h"
#include "work/batcher.h"
#include "work/notifier.h"
#include "work/workers.h"

/*
 * The drain's hard stop. Every step of a drain is bounded by store
 * timeouts, but those add up; ORDERD_DRAIN_MS is a promise to the
 * orchestrator. Past it the process exits at once, without freeing what
 * other threads may still use. Nothing is lost: whatever is still claimed
 * goes back to pending when its lease expires.
 */
static void *drain_watchdog(void *arg)
{
	int64_t deadline = *(const int64_t *)arg;
	int64_t left = deadline - clock_mono_ms();
	if (left > 0)
		clock_sleep_ms(left);
	log_error("drain deadline reached with work in flight; exiting, the "
	          "leases return what is still claimed",
	          NULL);
	_exit(0);
	return NULL;
}

static void on_commit(void *arg, size_t created)
{
	workers_kick(arg);
}

static void register_build_info(void)
{
	metrics_set(
	    metrics_child1(metrics_family(METRIC_GAUGE, "orderd_build_info",
	                                  "Build information; always 1.",
	                                  (const char *[]){"version", NULL},
	                                  NULL, 0),
	                   ORDERD_VERSION),
	    1);
}

/* Descriptors beyond the connections: store, log, pipes, epoll, curl. */
#define FD_RESERVE 256

/*
 * glibc hands freed memory back to the kernel as soon as 128 KiB are free
 * at the top of an arena (and serves 128 KiB and larger blocks with mmap),
 * so steady load paid for the same pages again and again: a batch of
 * requests grows SQLite's page cache and the request buffers, the frees
 * trim it, the next batch faults it all back in (65,000 minor faults per
 * 10,000 batch-submitted orders on SQLite, bench/README.md). Keep up to
 * 64 MiB free per arena and mmap only blocks of 8 MiB and up: steady state
 * reuses its memory, peak RSS is unchanged. An operator's own
 * GLIBC_TUNABLES malloc settings win.
 */
static void keep_freed_memory(void)
{
	const char *t = getenv("GLIBC_TUNABLES");
	if (t && strstr(t, "glibc.malloc."))
		return;
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_MMAP_THRESHOLD, 8 << 20);
}

/*
 * Every connection is a descriptor, and a soft limit below
 * max_connections (1024 is the usual default) makes accept fail with
 * EMFILE before the connection limit, where the server's eviction works,
 * is ever reached. Nothing here uses select(), so raise it to the hard
 * limit; warn when even that is too low.
 */
static void raise_fd_limit(int64_t max_connections)
{
	rlim_t need = (rlim_t)max_connections + FD_RESERVE;
	struct rlimit rl;
	char have[24], want[24];

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = {.rlim_cur = rl.rlim_max,
		                    .rlim_max = rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &up) != 0 && need > rl.rlim_cur) {
			up.rlim_cur = need; /* a hard limit above nr_open */
			if (setrlimit(RLIMIT_NOFILE, &up) != 0)
				up.rlim_cur = rl.rlim_cur;
		}
		rl.rlim_cur = up.rlim_cur;
	}
	if (rl.rlim_cur < need) {
		snprintf(have, sizeof have, "%llu",
		         (unsigned long long)rl.rlim_cur);
		snprintf(want, sizeof want, "%llu", (unsigned long long)need);
		log_warn(
		    "open file limit too low for max_connections: raise "
		    "the hard limit (LimitNOFILE) or lower max_connections",
		    "limit", have, "needed", want, NULL);
	}
}

/* Blocks the stop signals in every thread (threads inherit the mask), so
 * main can take them synchronously with sigwait(). */
static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/*
 * ORDERD_SHUTDOWN_DELAY_MS: /readyz says 503 while everything else serves
 * normally, so a load balancer (a Service's endpoints, HAProxy's health
 * check) stops routing here before the drain refuses anything. Returns
 * early on a second stop signal: an operator's Ctrl-C means now.
 */
static void shutdown_delay(http_server_t *http, const sigset_t *stop_signals,
                           int64_t delay_ms)
{
	if (delay_ms <= 0)
		return;
	char ms[24];
	snprintf(ms, sizeof ms, "%lld", (long long)delay_ms);
	http_server_set_unready(http);
	log_info("shutdown delay: not ready, still serving", "delay_ms", ms,
	         NULL);
	int64_t end = clock_mono_ms() + delay_ms;
	for (;;) {
		int64_t left = end - clock_mono_ms();
		if (left <= 0)
			return;
		struct timespec ts = {.tv_sec = left / 1000,
		                      .tv_nsec = (left % 1000) * 1000000L};
		int sig = sigtimedwait(stop_signals, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			log_info("second stop signal: shutdown delay cut short",
			         "signal", sig == SIGINT ? "SIGINT" : "SIGTERM",
			         NULL);
			return;
		}
		/* EAGAIN: the delay is over (re-checked above); EINTR: again.
		 */
	}
}

int main(int argc, char **argv)
{
	config_t cfg;
	char err[512];
	int exit_now = 0;
	if (config_load(&cfg, argc, argv, &exit_now, err, sizeof err) < 0) {
		fprintf(stderr, "orderd: %s\n", err);
		return EX_CONFIG;
	}
	if (exit_now) {
		config_free(&cfg);
		return 0;
	}
	log_level_t level = LOG_INFO;
	log_level_parse(cfg.log_level, &level);
	log_set_level(level);
	log_set_replica(cfg.replica_id);
	if (failpoint_init(getenv("ORDERD_FAILPOINTS")) < 0) {
		fprintf(stderr,
		        "orderd: ORDERD_FAILPOINTS: malformed, expected "
		        "name=value[,name=value]\n");
		config_free(&cfg);
		return EX_CONFIG;
	}
	if (getenv("ORDERD_FAILPOINTS") && *getenv("ORDERD_FAILPOINTS"))
		log_warn("fault injection enabled", "failpoints",
		         getenv("ORDERD_FAILPOINTS"), NULL);

	keep_freed_memory();
	/* Before any thread starts: libcurl's global set-up is not
	 * thread-safe. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialise libcurl", NULL);
		config_free(&cfg);
		return EX_SOFTWARE;
	}
	sigset_t stop_signals;
	block_signals(&stop_signals);
	raise_fd_limit(cfg.max_connections);
	register_build_info();

	int status = EX_UNAVAILABLE;
	store_t *store = NULL;
	alerts_t *alerts = NULL;
	alertmanager_t *alert_sender = NULL;
	batcher_t *batcher = NULL;
	workers_t *workers = NULL;
	notifier_t *notifier = NULL;
	http_server_t *http = NULL;

	store_options_t sopt = {
	    .replica_id = cfg.replica_id,
	    .busy_timeout_ms = (int)cfg.busy_timeout_ms,
	    .statement_timeout_ms = (int)cfg.statement_timeout_ms,
	    .connect_timeout_ms = 5000,
	    .deadline_ms = (int)cfg.store_deadline_ms,
	    .pg_txn_pooling = strcmp(cfg.pg_pooler, "transaction") == 0,
	    /* PostgreSQL: the pool size, one connection for every thread
	     * that may hold one at once: the workers, the HTTP handler pool
	     * (as many threads as the server; the server and waiter threads
	     * never call the store), the committer, the reaper, the confirm
	     * step, the notification dispatcher and the alert sender, plus
	     * two spare (capped at 256). SQLite: the read connections (at
	     * most 64); every write goes through the one writer connection. */
	    .readers = (int)(cfg.workers + cfg.http_threads + 7),
	};
	int rc = store_open(cfg.database, &sopt, &store);
	if (rc < 0) {
		log_error("cannot open the store", "database_backend",
		          strncmp(cfg.database, "sqlite:", 7) == 0 ? "sqlite"
		                                                   : "postgres",
		          "error", err_str(rc), NULL);
		if (rc == OD_ECONFIG || rc == OD_ESCHEMA)
			status = EX_CONFIG;
		goto out;
	}
	alerts_options_t aopt = {
	    .error_rate = cfg.alert_error_rate,
	    .window_s = (int)cfg.alert_window_s,
	    .min_events = cfg.alert_min_events,
	    .backlog_s = cfg.alert_backlog_s,
	};
	rc = alerts_new(&aopt, &alerts);
	if (rc < 0)
		goto internal;

	workers_options_t wopt = {
	    .replica_id = cfg.replica_id,
	    .threads = (int)cfg.workers,
	    .claim_batch = (size_t)cfg.claim_batch,
	    .lease_ms = cfg.lease_ms,
	    .max_attempts = (int)cfg.max_attempts,
	    .poll_ms = cfg.poll_ms,
	    .retry_base_ms = cfg.retry_base_ms,
	    .retry_max_ms = cfg.retry_max_ms,
	    .reap_ms = cfg.reap_ms,
	    .alerts = alerts,
	};
	confirm_options_t copt = {
	    .url = cfg.confirm_url,
	    .connect_timeout_ms = cfg.confirm_connect_timeout_ms,
	    .timeout_ms = cfg.confirm_timeout_ms,
	    .concurrency = (size_t)cfg.confirm_concurrency,
	    .lease_ms = cfg.lease_ms,
	    .max_attempts = (int)cfg.max_attempts,
	    .retry_base_ms = cfg.retry_base_ms,
	    .retry_max_ms = cfg.retry_max_ms,
	    .alerts = alerts,
	};
	if (cfg.confirm_url)
		wopt.confirm = &copt;
	if (cfg.notify_url) {
		/* Before any worker runs: the outbox trigger lives in the
		 * database, and from now on every replica's terminal
		 * transitions write events (G9), this one's first. */
		rc = store_outbox_enable(store);
		if (rc < 0) {
			log_error("cannot enable the notification outbox",
			          "error", err_str(rc), NULL);
			goto out;
		}
	}
	rc = workers_new(store, &wopt, &workers);
	if (rc < 0)
		goto internal;
	if (cfg.notify_url) {
		notifier_options_t nopt = {
		    .replica_id = cfg.replica_id,
		    .urls = cfg.notify_url,
		    .secret = cfg.notify_secret,
		    .secret_previous = cfg.notify_secret_previous,
		    .max_attempts = (int)cfg.notify_max_attempts,
		    .timeout_ms = cfg.notify_timeout_ms,
		    .concurrency = (int)cfg.notify_concurrency,
		    .retry_base_ms = cfg.retry_base_ms,
		    .retry_max_ms = cfg.retry_max_ms,
		    .retention_ms = cfg.notify_retention_s * 1000,
		    .poll_ms = cfg.poll_ms,
		    .breaker_failures = (int)cfg.notify_breaker_failures,
		    .breaker_cooldown_ms = cfg.notify_breaker_cooldown_ms,
		};
		rc = notifier_new(store, &nopt, &notifier);
		if (rc < 0)
			goto internal;
	}
	batcher_options_t bopt = {
	    .max_batch = (size_t)cfg.commit_batch,
	    .max_queued = (size_t)cfg.submit_queue,
	};
	rc = batcher_new(store, &bopt, on_commit, workers, &batcher);
	if (rc < 0)
		goto internal;

	http_options_t hopt = {
	    .listen = cfg.listen,
	    .tokens = (const char *const *)cfg.tokens,
	    .replica_id = cfg.replica_id,
	    .threads = (int)cfg.http_threads,
	    .max_connections = (unsigned)cfg.max_connections,
	    .max_streams = (int)cfg.max_streams,
	    .head_timeout_ms = cfg.http_head_timeout_ms,
	    .body_timeout_ms = cfg.http_body_timeout_ms,
	    .body_max = (size_t)cfg.body_max,
	    .batch_body_max = (size_t)cfg.batch_body_max,
	    .json_depth = (int)cfg.json_depth,
	    .max_items = (size_t)cfg.max_items,
	    .max_batch = (size_t)cfg.max_batch,
	    .max_waiters = (size_t)cfg.max_waiters,
	    .handler_queue_ms = cfg.handler_queue_ms,
	    .replica_window_ms = workers_replica_window_ms(cfg.reap_ms),
	    /* SQLite is a local file: no deadline (docs/design.md). */
	    .submit_deadline_ms =
	        strcmp(store_backend_name(store), "postgres") == 0
	            ? cfg.store_deadline_ms
	            : 0,
	};
	http_deps_t deps = {
	    .store = store,
	    .batcher = batcher,
	    .alerts = alerts,
	    .workers = workers,
	    .notifier = notifier,
	};
	rc = http_server_new(&hopt, &deps, &http);
	if (rc < 0) {
		log_error("cannot serve HTTP", "listen", cfg.listen, "error",
		          err_str(rc), NULL);
		goto out;
	}
	/* After the server: its address is known to be good for
	 * generatorURL. The sender polls the backlog and evaluates the
	 * alerts even without a webhook. */
	alertmanager_options_t mopt = {
	    .url = cfg.alert_webhook_url,
	    .replica_id = cfg.replica_id,
	    .listen = cfg.listen,
	    .backlog_s = cfg.alert_backlog_s,
	};
	rc = alertmanager_new(&mopt, alerts, store, &alert_sender);
	if (rc < 0)
		goto internal;
	char nworkers[24];
	snprintf(nworkers, sizeof nworkers, "%lld", (long long)cfg.workers);
	log_info("orderd started", "version", ORDERD_VERSION, "listen",
	         cfg.listen, "backend", store_backend_name(store), "workers",
	         nworkers, "confirm_url",
	         cfg.confirm_url ? cfg.confirm_url : "", NULL);

	int sig = 0;
	sigwait(&stop_signals, &sig);
	shutdown_delay(http, &stop_signals, cfg.shutdown_delay_ms);
	static int64_t deadline;
	deadline = clock_mono_ms() + cfg.drain_ms;
	log_info("draining", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM",
	         NULL);
	pthread_t watchdog;
	if (pthread_create(&watchdog, NULL, drain_watchdog, &deadline) == 0)
		pthread_detach(watchdog);

	/* Order matters: refuse new work first, then commit and answer what
	 * was already accepted, then finish or hand back claimed orders while
	 * the server still answers reads and /readyz (503), then stop HTTP. */
	http_server_set_draining(http);
	batcher_stop(batcher);
	/* Leave a margin of the drain time for handing back and shutdown. */
	int64_t margin = cfg.drain_ms / 10 < 1000 ? cfg.drain_ms / 10 : 1000;
	size_t back = workers_drain(workers, deadline - margin);
	/* After the workers: their last transitions wrote events too. */
	size_t nback_notes = notifier_drain(notifier, deadline - margin);
	char nback[24], nnotes[24];
	snprintf(nback, sizeof nback, "%zu", back);
	snprintf(nnotes, sizeof nnotes, "%zu", nback_notes);
	log_info("drained", "handed_back", nback, "notifications_handed_back",
	         nnotes, NULL);
	status = 0;
	goto out;

internal:
	log_error("start-up failed", "error", err_str(rc), NULL);
	status = EX_SOFTWARE;
out:
	/* The server first: its threads may still call into the rest. */
	http_server_free(http);
	batcher_free(batcher);
	workers_free(workers);
	notifier_free(notifier);
	alertmanager_free(alert_sender);
	alerts_free(alerts);
	store_free(store);
	config_free(&cfg);
	metrics_reset();
	curl_global_cleanup();
	if (status == 0)
		log_info("stopped", NULL);
	return status;
}
