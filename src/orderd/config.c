/*
 * config: the daemon's settings (see config.h). The static table settings[]
 * below is the single definition of every setting: its field, flag,
 * environment variable, type, default, bounds and help. Loading, --help and
 * docs/config.md (config_print_markdown) all walk this table, so a setting
 * cannot exist in one place and be missing from another.
 *
 * Loading runs in passes: argv is parsed first (so an unknown flag is
 * reported before anything else and --help works with a broken
 * environment), then every setting takes its flag value, else its
 * environment value, else its default, and is checked against its bounds;
 * then cross-field rules; then the API tokens are collected
 * (config_tokens.c). Error messages name the source (the flag or the
 * variable) and never show a token.
 */
#include "orderd/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/order.h"
#include "obs/log.h"
#include "orderd/config_int.h"
#include "util/err.h"

#define SHOW_MAX 64 /* bytes of a bad value echoed in a message */

typedef enum setting_type {
	SET_STR,
	SET_INT,
	SET_DBL,
} setting_type_t;

typedef enum setting_default {
	DEF_VALUE,   /* the literal in dflt (or none when NULL) */
	DEF_CORES,   /* number of online cores */
	DEF_REPLICA, /* "<hostname>-<pid>" */
} setting_default_t;

/* Extra checks for string settings: NULL when v is fine, else the rule. */
typedef const char *(*setting_check_fn)(const char *v);

typedef struct setting {
	const char *name; /* the config_t field */
	size_t off;       /* offsetof(config_t, field) */
	const char *flag; /* without the leading "--" */
	const char *env;
	setting_type_t type;
	setting_default_t def;
	const char *dflt;       /* textual default, parsed like any input */
	int64_t min, max;       /* SET_INT bounds; SET_STR length bounds */
	double dmin, dmax;      /* SET_DBL bounds */
	setting_check_fn check; /* SET_STR only; may be NULL */
	bool secret;            /* never echo the value */
	const char *bounds_doc; /* SET_STR: the rule as the docs show it */
	const char *help;
} setting_t;

static void config_print_help(FILE *f);

#define OFF(field) offsetof(config_t, field)
#define STR(field, flag, env, dflt, lo, hi, check, secret, bdoc, help)         \
	{                                                                      \
#field, OFF(field), flag, env, SET_STR, DEF_VALUE, dflt, lo,   \
		    hi, 0, 0, check, secret, bdoc, help                        \
	}
#define INT(field, flag, env, dflt, lo, hi, help)                              \
	{                                                                      \
#field, OFF(field), flag, env, SET_INT, DEF_VALUE, dflt, lo,   \
		    hi, 0, 0, NULL, false, NULL, help                          \
	}

static const setting_t settings[] = {
    STR(listen, "listen", "ORDERD_LISTEN", "127.0.0.1:8080", 1, 255,
        config_check_listen, false, "`host:port`",
        "address:port to serve HTTP on"),
    STR(database, "database", "ORDERD_DATABASE", "sqlite:orderd.db", 1, 4096,
        config_check_database, false,
        "`sqlite:PATH`, `postgres://...`, `postgresql://...`",
        "the store: `sqlite:PATH` (embedded) or a PostgreSQL URI (libpq "
        "syntax, several hosts allowed)"),
    STR(database_file, "database-file", "ORDERD_DATABASE_FILE", NULL, 0, 4096,
        NULL, false, "a readable file",
        "file whose first line (trailing blanks trimmed, at most 4096 "
        "bytes) is the `database` value, e.g. a mounted Secret; an error "
        "together with an explicit `database`"),
    {"workers", OFF(workers), "workers", "ORDERD_WORKERS", SET_INT, DEF_CORES,
     NULL, 1, 256, 0, 0, NULL, false, NULL, "order processing threads"},
    INT(lease_ms, "lease-ms", "ORDERD_LEASE_MS", "10000", 100, 3600000,
        "lease on a claimed order, in milliseconds"),
    INT(max_attempts, "max-attempts", "ORDERD_MAX_ATTEMPTS", "8", 1, 1000,
        "processing attempts before an order is `failed`"),
    STR(api_tokens, "api-tokens", "ORDERD_API_TOKENS", NULL, 0, 65536, NULL,
        true, "tokens: 1..256 printable ASCII, no spaces",
        "comma-separated bearer tokens; when any token is configured "
        "every `/v1/...` route requires one"),
    STR(api_tokens_file, "api-tokens-file", "ORDERD_API_TOKENS_FILE", NULL, 0,
        4096, NULL, false, "a readable file",
        "file with one bearer token per line (blank lines and `#` "
        "comments ignored); merged with `api_tokens`"),
    {"replica_id", OFF(replica_id), "replica-id", "ORDERD_REPLICA_ID", SET_STR,
     DEF_REPLICA, NULL, 1, ID_MAX, 0, 0, config_check_replica, false,
     "1..64 of `[A-Za-z0-9._:-]`",
     "this replica's name in leases, logs and metrics"},
    INT(drain_ms, "drain-ms", "ORDERD_DRAIN_MS", "20000", 0, 600000,
        "how long SIGTERM waits for in-flight work, in milliseconds"),
    INT(shutdown_delay_ms, "shutdown-delay-ms", "ORDERD_SHUTDOWN_DELAY_MS", "0",
        0, 600000,
        "on SIGTERM, `/readyz` answers 503 at once but everything else "
        "serves normally this long (so a load balancer takes the replica "
        "out first), then the drain starts; a second SIGTERM or SIGINT "
        "ends the delay early. In milliseconds"),
    STR(log_level, "log-level", "ORDERD_LOG_LEVEL", "info", 1, 16,
        config_check_log_level, false, "`debug`, `info`, `warn`, `error`",
        "lowest level that is logged"),
    INT(http_threads, "http-threads", "ORDERD_HTTP_THREADS", "4", 1, 64,
        "HTTP server threads, and as many for the handlers that call the "
        "store"),
    INT(max_connections, "max-connections", "ORDERD_MAX_CONNECTIONS", "1024",
        16, 65536,
        "concurrent HTTP connections; past 15/16 of it each new connection "
        "evicts the oldest one that has not sent a complete request"),
    INT(max_streams, "max-streams", "ORDERD_MAX_STREAMS", "64", 1, 1024,
        "concurrent GET /v1/events streams (each also counts as a "
        "connection); past it a stream is answered 503 with Retry-After"),
    INT(http_head_timeout_ms, "http-head-timeout-ms",
        "ORDERD_HTTP_HEAD_TIMEOUT_MS", "10000", 100, 600000,
        "a request head must be complete this long after its connection "
        "was accepted or its previous answer sent (so also the keep-alive "
        "idle timeout), however slowly its bytes arrive; else the "
        "connection is closed"),
    INT(http_body_timeout_ms, "http-body-timeout-ms",
        "ORDERD_HTTP_BODY_TIMEOUT_MS", "30000", 100, 3600000,
        "a request body must be complete this long after its head; else "
        "the connection is closed"),
    INT(body_max, "body-max", "ORDERD_BODY_MAX", "65536", 1024, 16777216,
        "request body limit in bytes (batch requests excepted)"),
    INT(batch_body_max, "batch-body-max", "ORDERD_BATCH_BODY_MAX", "4194304",
        1024, 268435456,
        "request body limit in bytes for `POST /v1/orders/batch`"),
    INT(json_depth, "json-depth", "ORDERD_JSON_DEPTH", "32", 1, 128,
        "JSON nesting depth limit"),
    INT(max_items, "max-items", "ORDERD_MAX_ITEMS", "100", 1, 1000,
        "items per order"),
    INT(max_batch, "max-batch", "ORDERD_MAX_BATCH", "1000", 1, 10000,
        "orders per batch request"),
    INT(submit_queue, "submit-queue", "ORDERD_SUBMIT_QUEUE", "20000", 1,
        1000000, "orders waiting for group commit before submits are shed"),
    INT(commit_batch, "commit-batch", "ORDERD_COMMIT_BATCH", "2000", 1, 100000,
        "orders per group-commit transaction"),
    INT(claim_batch, "claim-batch", "ORDERD_CLAIM_BATCH", "256", 1, 1000,
        "orders claimed per store round trip"),
    INT(poll_ms, "poll-ms", "ORDERD_POLL_MS", "100", 1, 10000,
        "idle workers poll for work this often, in milliseconds"),
    INT(retry_base_ms, "retry-base-ms", "ORDERD_RETRY_BASE_MS", "200", 1,
        3600000, "first retry backoff in milliseconds (full jitter)"),
    INT(retry_max_ms, "retry-max-ms", "ORDERD_RETRY_MAX_MS", "60000", 1,
        86400000,
        "longest retry backoff in milliseconds; also the most of a "
        "confirm service's `Retry-After` that is honoured"),
    STR(confirm_url, "confirm-url", "ORDERD_CONFIRM_URL", NULL, 0, 4096,
        config_check_http_url, false, "`http://...` or `https://...`",
        "the confirm step: after reserving an order's stock, POST it here "
        "and complete (2xx), reject as `declined` (other 4xx but 408 and "
        "429) or retry (anything else); unset: orders complete as soon as "
        "their stock is reserved"),
    INT(confirm_connect_timeout_ms, "confirm-connect-timeout-ms",
        "ORDERD_CONFIRM_CONNECT_TIMEOUT_MS", "2000", 1, 600000,
        "connect timeout of a confirm call, in milliseconds"),
    INT(confirm_timeout_ms, "confirm-timeout-ms", "ORDERD_CONFIRM_TIMEOUT_MS",
        "5000", 1, 600000,
        "a confirm call that takes longer is abandoned and retried, in "
        "milliseconds"),
    INT(confirm_concurrency, "confirm-concurrency",
        "ORDERD_CONFIRM_CONCURRENCY", "64", 1, 4096,
        "confirm calls in flight at once; workers claim no more orders "
        "than can be confirmed"),
    INT(reap_ms, "reap-ms", "ORDERD_REAP_MS", "1000", 10, 60000,
        "expired leases are reaped this often, in milliseconds"),
    INT(max_waiters, "max-waiters", "ORDERD_MAX_WAITERS", "4096", 1, 1000000,
        "requests suspended in `wait_ms` or lock waits"),
    INT(handler_queue_ms, "handler-queue-ms", "ORDERD_HANDLER_QUEUE_MS", "5000",
        10, 600000,
        "a request that waits longer than this for a handler thread (the "
        "store is slow) is answered `503` with `Retry-After`, without "
        "touching the store"),
    /* No 0: the store reads 0 as "use its own default", which would make
     * a setting documented here mean something else. */
    INT(busy_timeout_ms, "busy-timeout-ms", "ORDERD_BUSY_TIMEOUT_MS", "5000", 1,
        600000,
        "how long a statement waits for a lock, in milliseconds: "
        "SQLite's busy timeout, PostgreSQL's `lock_timeout`"),
    INT(statement_timeout_ms, "statement-timeout-ms",
        "ORDERD_STATEMENT_TIMEOUT_MS", "10000", 1, 3600000,
        "PostgreSQL `statement_timeout` in milliseconds (also bounds an idle "
        "transaction, at least 10 s); unused with SQLite"),
    /* No 0 either: a store call without a deadline is what this setting
     * exists to rule out. */
    INT(store_deadline_ms, "store-deadline-ms", "ORDERD_STORE_DEADLINE_MS",
        "7000", 100, 600000,
        "client-side deadline of every PostgreSQL store call, in "
        "milliseconds: waiting for a pooled connection, reconnecting and "
        "every round trip end by then even when the server does not answer "
        "(frozen, a stalled disk, a path that drops packets); the request "
        "is answered `503` with `Retry-After` and a submission is answered "
        "within it. Keep it above the slowest statement you expect and above "
        "`busy_timeout_ms` (a lock wait should end as a lock timeout, not "
        "a reset connection); unused with SQLite"),
    STR(pg_pooler, "pg-pooler", "ORDERD_PG_POOLER", "none", 1, 16,
        config_check_pg_pooler, false, "`none`, `transaction`",
        "`transaction` when the PostgreSQL URI names a transaction-pooling "
        "proxy (PgBouncer `pool_mode = transaction`): statements are sent "
        "unnamed instead of prepared once per connection, and every "
        "transaction sets its own timeouts instead of each session once "
        "(docs/postgres.md, \"Behind PgBouncer\"); `none` for a direct "
        "connection or session pooling; unused with SQLite"),
    {"alert_error_rate", OFF(alert_error_rate), "alert-error-rate",
     "ORDERD_ALERT_ERROR_RATE", SET_DBL, DEF_VALUE, "0.05", 0, 0, 0, 1, NULL,
     false, NULL,
     "error rate (failed events / all events in the window: 5xx answers, "
     "failed processing attempts, confirm failures) above which "
     "`HighErrorRate` fires"},
    INT(alert_window_s, "alert-window-s", "ORDERD_ALERT_WINDOW_S", "60", 1,
        3600,
        "error-rate window in seconds; `HighErrorRate` resolves after the "
        "rate stayed at or below the threshold for this long"),
    {"alert_min_events", OFF(alert_min_events), "alert-min-events",
     "ORDERD_ALERT_MIN_EVENTS", SET_INT, DEF_VALUE, "20", 1, 1000000000, 0, 0,
     NULL, false, NULL,
     "events in the window before `HighErrorRate` may fire (deprecated "
     "aliases, still read: `--alert-min-requests`, "
     "`ORDERD_ALERT_MIN_REQUESTS`)"},
    INT(alert_backlog_s, "alert-backlog-s", "ORDERD_ALERT_BACKLOG_S", "300", 1,
        86400,
        "`BacklogTooOld` fires while the oldest pending order is older than "
        "this, in seconds"),
    STR(alert_webhook_url, "alert-webhook-url", "ORDERD_ALERT_WEBHOOK_URL",
        NULL, 0, 2048, config_check_http_url, false,
        "`http://...` or `https://...`",
        "Alertmanager v2 alerts endpoint that every alert state change is "
        "POSTed to, e.g. `http://alertmanager:9093/api/v2/alerts` (resent "
        "every 30 s while firing); unset: only logs, `/v1/alerts` and "
        "metrics"),
    STR(notify_url, "notify-url", "ORDERD_NOTIFY_URL", NULL, 0, 8192,
        config_notify_url_check, false,
        "1..8 comma-separated `http://` or `https://` URLs",
        "endpoints every terminal order event is POSTed to (signed, at "
        "least once); none: no notifications and no outbox writes"),
    STR(notify_secret, "notify-secret", "ORDERD_NOTIFY_SECRET", NULL, 0, 4096,
        NULL, true, "16..4096 bytes",
        "HMAC-SHA256 key of the `Orderd-Signature` header; required with "
        "`notify_url` (or `notify_secret_file`)"),
    STR(notify_secret_file, "notify-secret-file", "ORDERD_NOTIFY_SECRET_FILE",
        NULL, 0, 4096, NULL, false, "a readable file",
        "file with the signing secret on its first line and, during a "
        "rotation, the previous one on its second"),
    STR(notify_secret_previous, "notify-secret-previous",
        "ORDERD_NOTIFY_SECRET_PREVIOUS", NULL, 0, 4096, NULL, true,
        "16..4096 bytes",
        "during a key rotation: the old secret; deliveries carry a "
        "signature with each"),
    INT(notify_max_attempts, "notify-max-attempts",
        "ORDERD_NOTIFY_MAX_ATTEMPTS", "12", 1, 1000,
        "counted delivery attempts before a notification is `dead` (sends "
        "skipped or probing while an endpoint's circuit is open do not "
        "count)"),
    INT(notify_retention_s, "notify-retention-s", "ORDERD_NOTIFY_RETENTION_S",
        "604800", 1, 315360000,
        "delivered notifications are deleted this many seconds after "
        "delivery (pending and dead ones never)"),
    INT(notify_timeout_ms, "notify-timeout-ms", "ORDERD_NOTIFY_TIMEOUT_MS",
        "10000", 100, 600000,
        "total time for one notification request, in milliseconds"),
    INT(notify_concurrency, "notify-concurrency", "ORDERD_NOTIFY_CONCURRENCY",
        "16", 1, 1024, "notification requests in flight per replica"),
    INT(notify_breaker_failures, "notify-breaker-failures",
        "ORDERD_NOTIFY_BREAKER_FAILURES", "5", 1, 1000,
        "consecutive failures that open an endpoint's circuit"),
    INT(notify_breaker_cooldown_ms, "notify-breaker-cooldown-ms",
        "ORDERD_NOTIFY_BREAKER_COOLDOWN_MS", "10000", 10, 3600000,
        "how long an open circuit sends nothing before one probe, in "
        "milliseconds"),
};

#define N_SETTINGS (sizeof settings / sizeof settings[0])

/*
 * Renamed settings: the old flag and variable are still read, with a
 * warning, and the new names win over them. The help text of the setting
 * names its aliases (so docs/config.md shows them).
 */
static const struct alias {
	const char *field; /* the setting's config_t field */
	const char *old_flag, *old_env;
} aliases[] = {
    {"alert_min_events", "alert-min-requests", "ORDERD_ALERT_MIN_REQUESTS"},
};

static const struct alias *alias_of(const char *field)
{
	for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
		if (strcmp(aliases[i].field, field) == 0)
			return &aliases[i];
	return NULL;
}

int config_fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return OD_ECONFIG;
}

/* The name a message uses for where s's value came from. */
static void source_name(const setting_t *s, int from_flag, char *buf,
                        size_t len)
{
	if (from_flag)
		snprintf(buf, len, "--%s", s->flag);
	else
		snprintf(buf, len, "%s", s->env);
}

static int64_t default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > 256)
		n = 256;
	return n;
}

/* "<hostname>-<pid>", with characters outside identifiers replaced. */
static void default_replica(char *buf, size_t len)
{
	char host[256];
	if (gethostname(host, sizeof host) != 0 || !host[0])
		snprintf(host, sizeof host, "orderd");
	host[sizeof host - 1] = '\0';
	for (char *p = host; *p; p++)
		if (!order_ident_char(*p))
			*p = '-';
	char pid[24];
	snprintf(pid, sizeof pid, "-%ld", (long)getpid());
	/* Cut the host name so that the whole id stays an identifier.
	 */
	size_t plen = strlen(pid);
	size_t hlen = strlen(host);
	if (hlen > ID_MAX - plen)
		hlen = ID_MAX - plen;
	assert(len > ID_MAX);
	memcpy(buf, host, hlen);
	memcpy(buf + hlen, pid, plen + 1);
}

/* Parses a whole decimal integer; no spaces, no trailing junk. */
static bool parse_int(const char *v, int64_t *ret, bool *ret_range)
{
	if (!(isdigit((unsigned char)v[0]) ||
	      ((v[0] == '-' || v[0] == '+') && isdigit((unsigned char)v[1]))))
		return false;
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (*end)
		return false;
	*ret_range = errno == ERANGE;
	*ret = n;
	return true;
}

static bool parse_dbl(const char *v, double *ret)
{
	if (!v[0] || isspace((unsigned char)v[0]))
		return false;
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (*end || errno == ERANGE || !isfinite(d))
		return false;
	*ret = d;
	return true;
}

/* Checks v against s and stores it in c; from names the source. */
static int setting_apply(config_t *c, const setting_t *s, const char *v,
                         const char *from, char *err, size_t errlen)
{
	void *field = (char *)c + s->off;
	char shown[SHOW_MAX + 8];
	if (s->secret)
		snprintf(shown, sizeof shown, "(value not shown)");
	else
		snprintf(shown, sizeof shown, "\"%.*s%s\"", SHOW_MAX, v,
		         strlen(v) > SHOW_MAX ? "..." : "");

	switch (s->type) {
	case SET_INT: {
		int64_t n;
		bool range = false;
		if (!parse_int(v, &n, &range))
			return config_fail(
			    err, errlen,
			    "%s: must be an integer %lld..%lld, got %s", from,
			    (long long)s->min, (long long)s->max, shown);
		if (range || n < s->min || n > s->max)
			return config_fail(
			    err, errlen, "%s: must be %lld..%lld, got %s", from,
			    (long long)s->min, (long long)s->max, shown);
		*(int64_t *)field = n;
		return 0;
	}
	case SET_DBL: {
		double d;
		if (!parse_dbl(v, &d))
			return config_fail(
			    err, errlen, "%s: must be a number %g..%g, got %s",
			    from, s->dmin, s->dmax, shown);
		if (d < s->dmin || d > s->dmax)
			return config_fail(err, errlen,
			                   "%s: must be %g..%g, got %s", from,
			                   s->dmin, s->dmax, shown);
		*(double *)field = d;
		return 0;
	}
	case SET_STR: {
		size_t len = strlen(v);
		if ((int64_t)len < s->min || (int64_t)len > s->max)
			return config_fail(
			    err, errlen,
			    "%s: must be %lld..%lld characters, got %s", from,
			    (long long)s->min, (long long)s->max, shown);
		const char *why = s->check ? s->check(v) : NULL;
		if (why)
			return config_fail(err, errlen, "%s: %s, got %s", from,
			                   why, shown);
		char *copy = strdup(v);
		if (!copy)
			return config_fail(err, errlen, "%s: out of memory",
			                   from);
		char **slot = field;
		free(*slot);
		*slot = copy;
		return 0;
	}
	}
	return config_fail(err, errlen, "%s: unknown setting type", from);
}

static bool flag_is(const char *flag, const char *name, size_t len)
{
	return strlen(flag) == len && memcmp(flag, name, len) == 0;
}

static const setting_t *setting_by_field(const char *name);

/* The setting of flag name[len]; *ret_old says it was a deprecated one. */
static const setting_t *setting_by_flag(const char *name, size_t len,
                                        bool *ret_old)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (flag_is(settings[i].flag, name, len)) {
			*ret_old = false;
			return &settings[i];
		}
	}
	for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
		if (flag_is(aliases[i].old_flag, name, len)) {
			*ret_old = true;
			return setting_by_field(aliases[i].field);
		}
	}
	return NULL;
}

static const setting_t *setting_by_field(const char *name)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

/* A growing, capped, NULL-terminated token list. */
static int load_tokens(config_t *c, const bool *from_flag, char *err,
                       size_t errlen)
{
	char list_from[64] = "", file_from[64] = "";
	const setting_t *ls = setting_by_field("api_tokens");
	const setting_t *fs = setting_by_field("api_tokens_file");
	source_name(ls, from_flag[ls - settings], list_from, sizeof list_from);
	source_name(fs, from_flag[fs - settings], file_from, sizeof file_from);
	/* NULL when no token is configured: no auth. */
	return config_tokens_load(c->api_tokens, list_from, c->api_tokens_file,
	                          file_from, &c->tokens, err, errlen);
}

static int cross_check(const config_t *c, const bool *from_flag, char *err,
                       size_t errlen)
{
	static const struct {
		const char *lo, *hi;
	} rules[] = {
	    {"retry_base_ms", "retry_max_ms"},
	    {"body_max", "batch_body_max"},
	};
	for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
		const setting_t *lo = setting_by_field(rules[i].lo);
		const setting_t *hi = setting_by_field(rules[i].hi);
		int64_t a = *(const int64_t *)((const char *)c + lo->off);
		int64_t b = *(const int64_t *)((const char *)c + hi->off);
		if (a <= b)
			continue;
		char ln[64], hn[64];
		source_name(lo, from_flag[lo - settings], ln, sizeof ln);
		source_name(hi, from_flag[hi - settings], hn, sizeof hn);
		return config_fail(err, errlen,
		                   "%s (%lld) must be <= %s (%lld)", ln,
		                   (long long)a, hn, (long long)b);
	}
	return 0;
}

typedef enum action {
	ACT_NONE,
	ACT_HELP,
	ACT_VERSION,
	ACT_CONFIG_DOC,
} action_t;

/* Collects flag values (the last occurrence wins; a current name over a
 * deprecated one) and the first action. flag_old[i] says the value came
 * from the deprecated flag. */
static int parse_argv(int argc, char **argv, const char **flag_val,
                      bool *flag_old, action_t *ret_action, char *err,
                      size_t errlen)
{
	action_t action = ACT_NONE;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		action_t act = ACT_NONE;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			act = ACT_HELP;
		else if (strcmp(a, "--version") == 0)
			act = ACT_VERSION;
		else if (strcmp(a, "--config-doc") == 0)
			act = ACT_CONFIG_DOC;
		if (act != ACT_NONE) {
			if (action == ACT_NONE)
				action = act;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || !a[2])
			return config_fail(
			    err, errlen,
			    "unexpected argument \"%.*s\" (see --help)",
			    SHOW_MAX, a);
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		bool old = false;
		const setting_t *s = setting_by_flag(name, len, &old);
		if (!s)
			return config_fail(
			    err, errlen, "unknown flag \"--%.*s\" (see --help)",
			    (int)(len > SHOW_MAX ? SHOW_MAX : len), name);
		const char *v;
		if (eq) {
			v = eq + 1;
		} else {
			/* "--lease-ms --api-tokens=T" is a forgotten value, not
			 * the value "--api-tokens=T": taking it would echo the
			 * token in the bounds message (found by fuzz_config).
			 * A value starting with "--" needs the = form. */
			if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)
				return config_fail(
				    err, errlen, "--%s: missing value",
				    old ? alias_of(s->name)->old_flag
				        : s->flag);
			v = argv[++i];
		}
		size_t k = (size_t)(s - settings);
		if (old && flag_val[k] && !flag_old[k])
			continue; /* the current name wins */
		flag_val[k] = v;
		flag_old[k] = old;
	}
	*ret_action = action;
	return 0;
}

int config_load(config_t *c, int argc, char **argv, int *ret_exit_now,
                char *err, size_t errlen)
{
	const char *flag_val[N_SETTINGS] = {0};
	bool flag_old[N_SETTINGS] = {0};
	bool from_flag[N_SETTINGS] = {0};
	action_t action = ACT_NONE;
	int rc;

	memset(c, 0, sizeof *c);
	if (err && errlen > 0)
		err[0] = '\0';
	rc = parse_argv(argc, argv, flag_val, flag_old, &action, err, errlen);
	if (rc)
		return rc;
	switch (action) {
	case ACT_HELP:
		config_print_help(stdout);
		*ret_exit_now = 1;
		return 0;
	case ACT_VERSION:
		printf("orderd %s\n", ORDERD_VERSION);
		*ret_exit_now = 1;
		return 0;
	case ACT_CONFIG_DOC:
		config_print_markdown(stdout);
		*ret_exit_now = 1;
		return 0;
	case ACT_NONE:
		break;
	}

	for (size_t i = 0; i < N_SETTINGS; i++) {
		const setting_t *s = &settings[i];
		const char *v = flag_val[i];
		const struct alias *al = alias_of(s->name);
		bool deprecated = flag_old[i];
		char from[64];
		char dflt[128];
		from_flag[i] = v != NULL;
		if (v) {
			snprintf(from, sizeof from, "--%s",
			         deprecated ? al->old_flag : s->flag);
		} else if ((v = getenv(s->env)) != NULL) {
			snprintf(from, sizeof from, "%s", s->env);
		} else if (al && (v = getenv(al->old_env)) != NULL) {
			snprintf(from, sizeof from, "%s", al->old_env);
			deprecated = true;
		} else {
			snprintf(from, sizeof from, "default of %s", s->env);
			switch (s->def) {
			case DEF_VALUE:
				v = s->dflt;
				break;
			case DEF_CORES:
				snprintf(dflt, sizeof dflt, "%lld",
				         (long long)default_workers());
				v = dflt;
				break;
			case DEF_REPLICA:
				default_replica(dflt, sizeof dflt);
				v = dflt;
				break;
			}
			if (!v)
				continue; /* no default: stays NULL */
		}
		rc = setting_apply(c, s, v, from, err, errlen);
		if (rc)
			goto fail_load;
		if (deprecated) {
			char use[64];
			if (from[0] == '-')
				snprintf(use, sizeof use, "--%s", s->flag);
			else
				snprintf(use, sizeof use, "%s", s->env);
			log_warn("setting name is deprecated", "setting", from,
			         "use", use, NULL);
		}
	}
	rc = cross_check(c, from_flag, err, errlen);
	if (rc)
		goto fail_load;
	const setting_t *db = setting_by_field("database");
	rc = config_database_file_load(
	    c, getenv(db->env) || from_flag[db - settings], err, errlen);
	if (rc)
		goto fail_load;
	rc = load_tokens(c, from_flag, err, errlen);
	if (rc)
		goto fail_load;
	rc = config_notify_load(c, err, errlen);
	if (rc)
		goto fail_load;
	*ret_exit_now = 0;
	return 0;

fail_load:
	config_free(c);
	return rc;
}

void config_free(config_t *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (settings[i].type != SET_STR)
			continue;
		char **slot = (char **)((char *)c + settings[i].off);
		free(*slot);
	}
	if (c->tokens) {
		for (char **t = c->tokens; *t; t++) {
			/* Tokens are secrets: wipe before freeing. */
			explicit_bzero(*t, strlen(*t));
			free(*t);
		}
		free(c->tokens);
	}
	memset(c, 0, sizeof *c);
}

/* The default as docs and --help show it (buf holds computed text). */
static const char *default_doc(const setting_t *s, bool markdown, char *buf,
                               size_t len)
{
	switch (s->def) {
	case DEF_CORES:
		return "number of online cores";
	case DEF_REPLICA:
		return markdown ? "`<hostname>-<pid>`" : "<hostname>-<pid>";
	case DEF_VALUE:
		break;
	}
	if (!s->dflt)
		return "none";
	snprintf(buf, len, markdown ? "`%s`" : "%s", s->dflt);
	return buf;
}

static const char *bounds_doc(const setting_t *s, char *buf, size_t len)
{
	switch (s->type) {
	case SET_INT:
		snprintf(buf, len, "%lld..%lld", (long long)s->min,
		         (long long)s->max);
		return buf;
	case SET_DBL:
		snprintf(buf, len, "%g..%g", s->dmin, s->dmax);
		return buf;
	case SET_STR:
		break;
	}
	return s->bounds_doc ? s->bounds_doc : "";
}

void config_print_markdown(FILE *f)
{
	fputs("# Configuration\n"
	      "\n"
	      "<!-- Generated by `orderd --config-doc` from the settings "
	      "table "
	      "in\n"
	      "src/orderd/config.c; tests/unit/test_config.c fails when "
	      "this "
	      "file is stale. -->\n"
	      "\n"
	      "Every setting of `orderd` has a command-line flag and an "
	      "environment\n"
	      "variable. A flag wins over the environment, the "
	      "environment "
	      "over the\n"
	      "default. Flags take `--name=value` or `--name value` (a "
	      "value that\n"
	      "starts with `--` needs the first form). Bounds are\n"
	      "inclusive. A malformed or out-of-range value, or an "
	      "unknown "
	      "flag, stops\n"
	      "the daemon with a message naming the flag or variable, "
	      "and "
	      "exit code 78.\n"
	      "Also: `retry_base_ms` <= `retry_max_ms`, and `body_max` "
	      "<= "
	      "`batch_body_max`.\n"
	      "`notify_url` needs a secret (`notify_secret` or "
	      "`notify_secret_file`,\n"
	      "never both; a secret is never shown in a message); see\n"
	      "[notifications.md](notifications.md).\n"
	      "`--help`, `--version` and `--config-doc` print and exit.\n"
	      "\n"
	      "| flag | env | default | bounds | meaning |\n"
	      "|---|---|---|---|---|\n",
	      f);
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const setting_t *s = &settings[i];
		char dbuf[160], bbuf[64];
		fprintf(f, "| `--%s` | `%s` | %s | %s | %s |\n", s->flag,
		        s->env, default_doc(s, true, dbuf, sizeof dbuf),
		        bounds_doc(s, bbuf, sizeof bbuf), s->help);
	}
}

static void config_print_help(FILE *f)
{
	fputs("usage: orderd [--flag=value | --flag value]...\n"
	      "\n"
	      "Each flag also reads its environment variable; a flag "
	      "wins.\n"
	      "\n",
	      f);
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const setting_t *s = &settings[i];
		char dbuf[160], bbuf[64];
		const char *b = bounds_doc(s, bbuf, sizeof bbuf);
		fprintf(f, "  --%s (%s)\n      %s\n      default: %s%s%s\n",
		        s->flag, s->env, s->help,
		        default_doc(s, false, dbuf, sizeof dbuf),
		        b[0] ? "; bounds: " : "", b);
	}
	fputs("  --help         print this help and exit\n"
	      "  --version      print the version and exit\n"
	      "  --config-doc   print the settings as Markdown and "
	      "exit\n",
	      f);
}
