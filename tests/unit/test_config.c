/*
 * Unit tests for orderd/config: defaults, precedence (flag > env >
 * default), both flag syntaxes, every bound, tokens, and that
 * docs/config.md is the generated table. Run with ORDERD_UPDATE_DOCS=1 to
 * rewrite docs/config.md from the table instead of checking it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "orderd/config.h"
#include "util/err.h"

/* Every variable config.c reads, so a test starts from a clean slate. */
static const char *const all_env[] = {
    "ORDERD_LISTEN",
    "ORDERD_DATABASE",
    "ORDERD_WORKERS",
    "ORDERD_LEASE_MS",
    "ORDERD_MAX_ATTEMPTS",
    "ORDERD_API_TOKENS",
    "ORDERD_API_TOKENS_FILE",
    "ORDERD_REPLICA_ID",
    "ORDERD_DRAIN_MS",
    "ORDERD_LOG_LEVEL",
    "ORDERD_HTTP_THREADS",
    "ORDERD_MAX_CONNECTIONS",
    "ORDERD_BODY_MAX",
    "ORDERD_BATCH_BODY_MAX",
    "ORDERD_JSON_DEPTH",
    "ORDERD_MAX_ITEMS",
    "ORDERD_MAX_BATCH",
    "ORDERD_SUBMIT_QUEUE",
    "ORDERD_COMMIT_BATCH",
    "ORDERD_CLAIM_BATCH",
    "ORDERD_POLL_MS",
    "ORDERD_RETRY_BASE_MS",
    "ORDERD_RETRY_MAX_MS",
    "ORDERD_CONFIRM_URL",
    "ORDERD_CONFIRM_CONNECT_TIMEOUT_MS",
    "ORDERD_CONFIRM_TIMEOUT_MS",
    "ORDERD_CONFIRM_CONCURRENCY",
    "ORDERD_REAP_MS",
    "ORDERD_MAX_WAITERS",
    "ORDERD_HANDLER_QUEUE_MS",
    "ORDERD_BUSY_TIMEOUT_MS",
    "ORDERD_STATEMENT_TIMEOUT_MS",
    "ORDERD_ALERT_ERROR_RATE",
    "ORDERD_ALERT_WINDOW_S",
    "ORDERD_ALERT_MIN_EVENTS",
    "ORDERD_ALERT_MIN_REQUESTS",
    "ORDERD_ALERT_BACKLOG_S",
    "ORDERD_ALERT_WEBHOOK_URL",
    NULL,
};

static int clear_env(void **state)
{
	for (size_t i = 0; all_env[i]; i++)
		unsetenv(all_env[i]);
	return 0;
}

static char err[512];

/* Loads with argv = {"orderd", args..., NULL}; returns config_load's rc. */
static int load(config_t *c, int *exit_now, ...)
{
	char *argv[32] = {"orderd"};
	int argc = 1;
	va_list ap;
	va_start(ap, exit_now);
	for (char *a; (a = va_arg(ap, char *)) != NULL;) {
		assert_true(argc < 31);
		argv[argc++] = a;
	}
	va_end(ap);
	argv[argc] = NULL;
	*exit_now = -1;
	err[0] = '\0';
	return config_load(c, argc, argv, exit_now, err, sizeof err);
}

static void test_defaults(void **state)
{
	config_t c;
	int exit_now;
	assert_int_equal(load(&c, &exit_now, NULL), 0);
	assert_int_equal(exit_now, 0);
	assert_string_equal(c.listen, "127.0.0.1:8080");
	assert_string_equal(c.database, "sqlite:orderd.db");
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	assert_int_equal(c.workers, cores < 1 ? 1 : cores > 256 ? 256 : cores);
	assert_int_equal(c.lease_ms, 10000);
	assert_int_equal(c.max_attempts, 8);
	assert_null(c.api_tokens);
	assert_null(c.api_tokens_file);
	assert_int_equal(c.drain_ms, 20000);
	assert_string_equal(c.log_level, "info");
	assert_int_equal(c.http_threads, 4);
	assert_int_equal(c.max_connections, 1024);
	assert_int_equal(c.body_max, 65536);
	assert_int_equal(c.batch_body_max, 4194304);
	assert_int_equal(c.json_depth, 32);
	assert_int_equal(c.max_items, 100);
	assert_int_equal(c.max_batch, 1000);
	assert_int_equal(c.submit_queue, 20000);
	assert_int_equal(c.commit_batch, 2000);
	assert_int_equal(c.claim_batch, 256);
	assert_int_equal(c.poll_ms, 100);
	assert_int_equal(c.retry_base_ms, 200);
	assert_int_equal(c.retry_max_ms, 60000);
	assert_null(c.confirm_url);
	assert_int_equal(c.confirm_connect_timeout_ms, 2000);
	assert_int_equal(c.confirm_timeout_ms, 5000);
	assert_int_equal(c.confirm_concurrency, 64);
	assert_int_equal(c.reap_ms, 1000);
	assert_int_equal(c.max_waiters, 4096);
	assert_int_equal(c.busy_timeout_ms, 5000);
	assert_int_equal(c.statement_timeout_ms, 10000);
	assert_true(c.alert_error_rate == 0.05);
	assert_int_equal(c.alert_window_s, 60);
	assert_int_equal(c.alert_min_events, 20);
	assert_int_equal(c.alert_backlog_s, 300);
	assert_null(c.alert_webhook_url);
	assert_null(c.tokens);

	/* replica_id: "<sanitised hostname>-<pid>", a valid identifier. */
	char suffix[32];
	snprintf(suffix, sizeof suffix, "-%ld", (long)getpid());
	size_t len = strlen(c.replica_id);
	assert_true(len >= 1 && len <= 64);
	assert_true(len > strlen(suffix));
	assert_string_equal(c.replica_id + len - strlen(suffix), suffix);
	for (const char *p = c.replica_id; *p; p++)
		assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz"
		                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                       "0123456789._:-",
		                       *p));
	config_free(&c);
	config_free(&c); /* zeroed: a second free is harmless */
}

static void test_precedence_and_syntax(void **state)
{
	config_t c;
	int exit_now;
	setenv("ORDERD_LEASE_MS", "2000", 1);
	setenv("ORDERD_LISTEN", "127.0.0.1:9001", 1);
	setenv("ORDERD_ALERT_ERROR_RATE", "0.5", 1);
	setenv("ORDERD_REPLICA_ID", "replica-a", 1);
	assert_int_equal(load(&c, &exit_now, NULL), 0);
	assert_int_equal(c.lease_ms, 2000);
	assert_string_equal(c.listen, "127.0.0.1:9001");
	assert_true(c.alert_error_rate == 0.5);
	assert_string_equal(c.replica_id, "replica-a");
	config_free(&c);

	/* --name=value and --name value both override the environment. */
	assert_int_equal(load(&c, &exit_now, "--lease-ms=3000", "--listen",
	                      "127.0.0.1:9002", "--alert-error-rate", "0",
	                      "--log-level=debug", "--database",
	                      "postgres://u@h1,h2/db", NULL),
	                 0);
	assert_int_equal(c.lease_ms, 3000);
	assert_string_equal(c.listen, "127.0.0.1:9002");
	assert_true(c.alert_error_rate == 0);
	assert_string_equal(c.log_level, "debug");
	assert_string_equal(c.database, "postgres://u@h1,h2/db");
	assert_string_equal(c.replica_id, "replica-a");
	config_free(&c);

	/* The last occurrence of a flag wins. */
	assert_int_equal(
	    load(&c, &exit_now, "--workers=3", "--workers", "5", NULL), 0);
	assert_int_equal(c.workers, 5);
	config_free(&c);
}

/* Every integer setting's bounds, checked from both sources. */
static const struct {
	char flag[24], env[32];
	long long min, max;
} int_bounds[] = {
    {"workers", "ORDERD_WORKERS", 1, 256},
    {"lease-ms", "ORDERD_LEASE_MS", 100, 3600000},
    {"max-attempts", "ORDERD_MAX_ATTEMPTS", 1, 1000},
    {"drain-ms", "ORDERD_DRAIN_MS", 0, 600000},
    {"http-threads", "ORDERD_HTTP_THREADS", 1, 64},
    {"max-connections", "ORDERD_MAX_CONNECTIONS", 16, 65536},
    {"body-max", "ORDERD_BODY_MAX", 1024, 16777216},
    {"batch-body-max", "ORDERD_BATCH_BODY_MAX", 1024, 268435456},
    {"json-depth", "ORDERD_JSON_DEPTH", 1, 128},
    {"max-items", "ORDERD_MAX_ITEMS", 1, 1000},
    {"max-batch", "ORDERD_MAX_BATCH", 1, 10000},
    {"submit-queue", "ORDERD_SUBMIT_QUEUE", 1, 1000000},
    {"commit-batch", "ORDERD_COMMIT_BATCH", 1, 100000},
    {"claim-batch", "ORDERD_CLAIM_BATCH", 1, 1000},
    {"poll-ms", "ORDERD_POLL_MS", 1, 10000},
    {"retry-base-ms", "ORDERD_RETRY_BASE_MS", 1, 3600000},
    {"retry-max-ms", "ORDERD_RETRY_MAX_MS", 1, 86400000},
    {"reap-ms", "ORDERD_REAP_MS", 10, 60000},
    {"max-waiters", "ORDERD_MAX_WAITERS", 1, 1000000},
    {"busy-timeout-ms", "ORDERD_BUSY_TIMEOUT_MS", 1, 600000},
    {"statement-timeout-ms", "ORDERD_STATEMENT_TIMEOUT_MS", 1, 3600000},
    {"alert-window-s", "ORDERD_ALERT_WINDOW_S", 1, 3600},
    {"alert-min-events", "ORDERD_ALERT_MIN_EVENTS", 1, 1000000000},
    {"alert-backlog-s", "ORDERD_ALERT_BACKLOG_S", 1, 86400},
};

static void expect_error(const char *want, ...)
{
	char *argv[8] = {"orderd"};
	int argc = 1;
	va_list ap;
	va_start(ap, want);
	for (char *a; (a = va_arg(ap, char *)) != NULL;)
		argv[argc++] = a;
	va_end(ap);
	config_t c;
	int exit_now = -1;
	err[0] = '\0';
	assert_int_equal(
	    config_load(&c, argc, argv, &exit_now, err, sizeof err),
	    OD_ECONFIG);
	assert_int_equal(exit_now, -1);
	assert_string_equal(err, want);
	config_free(&c);
}

/*
 * ORDERD_ALERT_MIN_REQUESTS was renamed ORDERD_ALERT_MIN_EVENTS: the old
 * flag and variable still work, the new names win over them wherever
 * they appear, and errors name the source actually used.
 */
static void test_deprecated_alias(void **state)
{
	config_t c;
	int exit_now;
	setenv("ORDERD_ALERT_MIN_REQUESTS", "7", 1);
	assert_int_equal(load(&c, &exit_now, NULL), 0);
	assert_int_equal(c.alert_min_events, 7);
	config_free(&c);
	setenv("ORDERD_ALERT_MIN_EVENTS", "8", 1);
	assert_int_equal(load(&c, &exit_now, NULL), 0);
	assert_int_equal(c.alert_min_events, 8);
	config_free(&c);
	assert_int_equal(load(&c, &exit_now, "--alert-min-requests=9", NULL),
	                 0);
	assert_int_equal(c.alert_min_events, 9); /* a flag beats the env */
	config_free(&c);
	assert_int_equal(load(&c, &exit_now, "--alert-min-events=10",
	                      "--alert-min-requests", "11", NULL),
	                 0);
	assert_int_equal(c.alert_min_events, 10);
	config_free(&c);
	unsetenv("ORDERD_ALERT_MIN_EVENTS");
	setenv("ORDERD_ALERT_MIN_REQUESTS", "0", 1);
	expect_error("ORDERD_ALERT_MIN_REQUESTS: must be 1..1000000000, got "
	             "\"0\"",
	             NULL);
	unsetenv("ORDERD_ALERT_MIN_REQUESTS");
	expect_error("--alert-min-requests: must be 1..1000000000, got \"0\"",
	             "--alert-min-requests=0", NULL);
	expect_error("--alert-min-requests: missing value",
	             "--alert-min-requests", NULL);
}

static void test_int_bounds(void **state)
{
	for (size_t i = 0; i < sizeof int_bounds / sizeof int_bounds[0]; i++) {
		char arg[96], val[32], want[256];
		const char *flag = int_bounds[i].flag;
		const char *env = int_bounds[i].env;
		long long lo = int_bounds[i].min, hi = int_bounds[i].max;

		/* Both bounds are accepted. */
		for (int k = 0; k < 2; k++) {
			config_t c;
			int exit_now;
			long long v = k ? hi : lo;
			snprintf(arg, sizeof arg, "--%.23s=%lld", flag, v);
			/* A baseline that keeps the cross-checks satisfied at
			 * every extreme; arg comes last, so it wins. */
			int rc =
			    load(&c, &exit_now, "--retry-base-ms=1",
			         "--retry-max-ms=86400000", "--body-max=1024",
			         "--batch-body-max=268435456", arg, NULL);
			if (rc)
				fail_msg("%s: %s", arg, err);
			config_free(&c);
		}

		snprintf(val, sizeof val, "%lld", lo - 1);
		snprintf(want, sizeof want,
		         "%.31s: must be %lld..%lld, got \"%s\"", env, lo, hi,
		         val);
		setenv(env, val, 1);
		expect_error(want, NULL);
		unsetenv(env);

		snprintf(arg, sizeof arg, "--%.23s=%lld", flag, hi + 1);
		snprintf(want, sizeof want,
		         "--%.23s: must be %lld..%lld, got \"%lld\"", flag, lo,
		         hi, hi + 1);
		expect_error(want, arg, NULL);

		/* Not a number at all. */
		setenv(env, "abc", 1);
		snprintf(want, sizeof want,
		         "%.31s: must be an integer %lld..%lld, got \"abc\"",
		         env, lo, hi);
		expect_error(want, NULL);
		unsetenv(env);
	}
}

static void test_other_bad_values(void **state)
{
	expect_error("--workers: must be an integer 1..256, got \"\"",
	             "--workers=", NULL);
	expect_error("--workers: must be an integer 1..256, got \" 4\"",
	             "--workers", " 4", NULL);
	expect_error("--workers: must be an integer 1..256, got \"4x\"",
	             "--workers=4x", NULL);
	expect_error("--workers: must be 1..256, got "
	             "\"99999999999999999999999\"",
	             "--workers=99999999999999999999999", NULL);
	expect_error("--alert-error-rate: must be 0..1, got \"1.5\"",
	             "--alert-error-rate=1.5", NULL);
	expect_error("--alert-error-rate: must be a number 0..1, got \"nan\"",
	             "--alert-error-rate=nan", NULL);
	setenv("ORDERD_ALERT_ERROR_RATE", "-0.1", 1);
	expect_error("ORDERD_ALERT_ERROR_RATE: must be 0..1, got \"-0.1\"",
	             NULL);
	unsetenv("ORDERD_ALERT_ERROR_RATE");
	setenv("ORDERD_LOG_LEVEL", "loud", 1);
	expect_error("ORDERD_LOG_LEVEL: must be one of debug, info, warn, "
	             "error, got \"loud\"",
	             NULL);
	unsetenv("ORDERD_LOG_LEVEL");
	expect_error("--replica-id: must be 1..64 characters from "
	             "[A-Za-z0-9._:-], got \"a b\"",
	             "--replica-id=a b", NULL);
	expect_error("--replica-id: must be 1..64 characters, got \"\"",
	             "--replica-id=", NULL);
	expect_error("--listen: must be host:port with port 0..65535, got "
	             "\"localhost\"",
	             "--listen=localhost", NULL);
	expect_error("--database: must be sqlite:PATH, postgres://... or "
	             "postgresql://..., got \"mysql://x\"",
	             "--database=mysql://x", NULL);
	expect_error("unknown flag \"--bogus\" (see --help)", "--bogus=1",
	             NULL);
	expect_error("unknown flag \"--lease_ms\" (see --help)", "--lease_ms",
	             "5", NULL);
	expect_error("unexpected argument \"serve\" (see --help)", "serve",
	             NULL);
	expect_error("--listen: missing value", "--listen", NULL);
	expect_error("--alert-webhook-url: must be an http:// or https:// "
	             "URL, got \"alertmanager:9093\"",
	             "--alert-webhook-url=alertmanager:9093", NULL);
	/* Cross-field rules name both sources. */
	setenv("ORDERD_RETRY_MAX_MS", "50", 1);
	expect_error("ORDERD_RETRY_BASE_MS (200) must be <= "
	             "ORDERD_RETRY_MAX_MS (50)",
	             NULL);
	unsetenv("ORDERD_RETRY_MAX_MS");
	expect_error("--body-max (70000) must be <= --batch-body-max (65536)",
	             "--body-max=70000", "--batch-body-max=65536", NULL);
}

static void test_help_version_doc(void **state)
{
	FILE *out = tmpfile();
	assert_non_null(out);
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	assert_true(dup2(fileno(out), STDOUT_FILENO) >= 0);
	config_t c;
	int e1, e2, e3;
	/* A broken environment does not stop --help. */
	setenv("ORDERD_LEASE_MS", "1", 1);
	int r1 = load(&c, &e1, "--version", NULL);
	int r2 = load(&c, &e2, "--help", NULL);
	int r3 = load(&c, &e3, "--config-doc", NULL);
	unsetenv("ORDERD_LEASE_MS");
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);
	assert_int_equal(r1, 0);
	assert_int_equal(r2, 0);
	assert_int_equal(r3, 0);
	assert_int_equal(e1, 1);
	assert_int_equal(e2, 1);
	assert_int_equal(e3, 1);
	char buf[16384];
	rewind(out);
	size_t n = fread(buf, 1, sizeof buf - 1, out);
	buf[n] = '\0';
	fclose(out);
	assert_memory_equal(buf, "orderd " ORDERD_VERSION "\n",
	                    strlen("orderd " ORDERD_VERSION "\n"));
	assert_non_null(strstr(buf, "  --lease-ms (ORDERD_LEASE_MS)\n"));
	assert_non_null(strstr(buf, "| `--lease-ms` | `ORDERD_LEASE_MS` | "
	                            "`10000` | 100..3600000 |"));
}

static char *write_file(const char *text)
{
	static char path[] = "/tmp/orderd-test-tokens-XXXXXX";
	memcpy(path + strlen(path) - 6, "XXXXXX", 6);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t len = strlen(text);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_tokens(void **state)
{
	config_t c;
	int exit_now;
	setenv("ORDERD_API_TOKENS", " alpha , beta,,gamma ,", 1);
	assert_int_equal(load(&c, &exit_now, NULL), 0);
	assert_non_null(c.tokens);
	assert_string_equal(c.tokens[0], "alpha");
	assert_string_equal(c.tokens[1], "beta");
	assert_string_equal(c.tokens[2], "gamma");
	assert_null(c.tokens[3]);
	config_free(&c);

	/* The list and the file merge, list first. */
	char *path = write_file("# ops tokens\n\n  tok-1  \r\ntok_2\n#x\n");
	setenv("ORDERD_API_TOKENS_FILE", path, 1);
	assert_int_equal(load(&c, &exit_now, "--api-tokens=zeta", NULL), 0);
	assert_string_equal(c.tokens[0], "zeta");
	assert_string_equal(c.tokens[1], "tok-1");
	assert_string_equal(c.tokens[2], "tok_2");
	assert_null(c.tokens[3]);
	config_free(&c);
	unlink(path);
	unsetenv("ORDERD_API_TOKENS_FILE");

	/* An empty variable means no tokens (no auth). */
	setenv("ORDERD_API_TOKENS", "", 1);
	assert_int_equal(load(&c, &exit_now, NULL), 0);
	assert_null(c.tokens);
	config_free(&c);

	/* Bad tokens are errors that never show the token. */
	setenv("ORDERD_API_TOKENS", "good,sec ret", 1);
	expect_error("ORDERD_API_TOKENS: entry 2 is not a valid token (must "
	             "be 1..256 printable ASCII characters without spaces)",
	             NULL);
	char long_tok[300];
	memset(long_tok, 'k', 257);
	long_tok[257] = '\0';
	setenv("ORDERD_API_TOKENS", long_tok, 1);
	assert_int_equal(load(&c, &exit_now, NULL), OD_ECONFIG);
	assert_null(strstr(err, "kkkk"));
	long_tok[256] = '\0';
	setenv("ORDERD_API_TOKENS", long_tok, 1);
	assert_int_equal(load(&c, &exit_now, NULL), 0);
	assert_int_equal(strlen(c.tokens[0]), 256);
	config_free(&c);
	expect_error("--api-tokens: entry 1 is not a valid token (must be "
	             "1..256 printable ASCII characters without spaces)",
	             "--api-tokens=s\xc3\xa9same", NULL);
	expect_error("--api-tokens: no token in the list", "--api-tokens= , ",
	             NULL);
	/* A value too long for its bounds is not echoed either. */
	char *huge = malloc(70000);
	assert_non_null(huge);
	memset(huge, 'h', 69999);
	huge[69999] = '\0';
	setenv("ORDERD_API_TOKENS", huge, 1);
	free(huge);
	expect_error("ORDERD_API_TOKENS: must be 0..65536 characters, got "
	             "(value not shown)",
	             NULL);
	unsetenv("ORDERD_API_TOKENS");

	path = write_file("ok\nbad token\n");
	char want[256];
	snprintf(want, sizeof want,
	         "--api-tokens-file: line 2 of \"%s\" is not a valid token "
	         "(must be 1..256 printable ASCII characters without spaces)",
	         path);
	char arg[128];
	snprintf(arg, sizeof arg, "--api-tokens-file=%s", path);
	expect_error(want, arg, NULL);
	unlink(path);

	path = write_file("# only comments\n\n");
	snprintf(want, sizeof want,
	         "ORDERD_API_TOKENS_FILE: no token in \"%s\"", path);
	setenv("ORDERD_API_TOKENS_FILE", path, 1);
	expect_error(want, NULL);
	unlink(path);

	setenv("ORDERD_API_TOKENS_FILE", "/nonexistent/tokens", 1);
	expect_error("ORDERD_API_TOKENS_FILE: cannot read "
	             "\"/nonexistent/tokens\": No such file or directory",
	             NULL);
	unsetenv("ORDERD_API_TOKENS_FILE");

	/* The token cap is its own error, not "out of memory": 1024 tokens
	 * load, one more is refused. */
	char *many = malloc(1025 * 8);
	assert_non_null(many);
	size_t off = 0;
	for (int i = 0; i < 1025; i++)
		off += (size_t)snprintf(many + off, 1025 * 8 - off, "%st%04d",
		                        i ? "," : "", i);
	setenv("ORDERD_API_TOKENS", many, 1);
	expect_error("ORDERD_API_TOKENS: more than 1024 tokens", NULL);
	many[off - 6] = '\0'; /* drop the last ",t1024" */
	setenv("ORDERD_API_TOKENS", many, 1);
	free(many);
	assert_int_equal(load(&c, &exit_now, NULL), 0);
	assert_string_equal(c.tokens[1023], "t1023");
	assert_null(c.tokens[1024]);
	config_free(&c);
	unsetenv("ORDERD_API_TOKENS");
}

static void test_flag_value_is_not_a_flag(void **state)
{
	config_t c;
	int exit_now;
	(void)state;
	/* Found by fuzz_config: the flag without a value took the next
	 * argument as its value and the bounds message echoed it, token
	 * and all. */
	expect_error("--lease-ms: missing value", "--lease-ms",
	             "--api-tokens=prod-token-1", NULL);
	assert_null(strstr(err, "prod-token"));
	expect_error("--lease-ms: missing value", "--lease-ms",
	             "--notify-secret=0123456789abcdef", NULL);
	/* The = form still takes any value. */
	assert_int_equal(load(&c, &exit_now, "--api-tokens=--tok", NULL), 0);
	assert_string_equal(c.tokens[0], "--tok");
	config_free(&c);
	assert_int_equal(load(&c, &exit_now, "--lease-ms", "200", NULL), 0);
	assert_int_equal(c.lease_ms, 200);
	config_free(&c);
}

/* The secret file, written with len bytes of text (NULs included). */
static char *write_secret_file(const char *text, size_t len)
{
	static char path[] = "/tmp/orderd-test-secret-XXXXXX";
	memcpy(path + strlen(path) - 6, "XXXXXX", 6);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_notify_secret_file(void **state)
{
	static const char good[] =
	    "a-secret-of-16-bytes!\r\nthe-previous-one-16\n";
	/* Found by fuzz_config_files: the NUL ended the text, so line 2 (the
	 * previous secret) was dropped without a word and line 1 cut short. */
	static const char nul[] = "abcdefghijklmnopq\0r\nthe-previous-one-16\n";
	config_t c;
	int exit_now;
	char arg[128], want[256];
	(void)state;

	char *path = write_secret_file(good, sizeof good - 1);
	snprintf(arg, sizeof arg, "--notify-secret-file=%s", path);
	assert_int_equal(load(&c, &exit_now, arg, NULL), 0);
	assert_string_equal(c.notify_secret, "a-secret-of-16-bytes!");
	assert_string_equal(c.notify_secret_previous, "the-previous-one-16");
	config_free(&c);
	unlink(path);

	path = write_secret_file(nul, sizeof nul - 1);
	snprintf(arg, sizeof arg, "--notify-secret-file=%s", path);
	snprintf(want, sizeof want,
	         "ORDERD_NOTIFY_SECRET_FILE: \"%s\" contains a NUL byte", path);
	expect_error(want, arg, NULL);
	unlink(path);
}

/* docs/config.md, found from this file's path: <src>/tests/unit/x.c. */
static void docs_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s", __FILE__);
	for (int i = 0; i < 3; i++) {
		char *slash = strrchr(buf, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(buf, len, ".");
	}
	size_t n = strlen(buf);
	snprintf(buf + n, len - n, "/docs/config.md");
}

static void test_docs_up_to_date(void **state)
{
	char *want = NULL;
	size_t want_len = 0;
	FILE *mem = open_memstream(&want, &want_len);
	assert_non_null(mem);
	config_print_markdown(mem);
	fclose(mem);

	char path[4096];
	docs_path(path, sizeof path);
	const char *update = getenv("ORDERD_UPDATE_DOCS");
	if (update && strcmp(update, "1") == 0) {
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		assert_int_equal(fwrite(want, 1, want_len, f), want_len);
		assert_int_equal(fclose(f), 0);
	}

	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot read %s", path);
	char *got = malloc(want_len + 2);
	assert_non_null(got);
	size_t got_len = fread(got, 1, want_len + 1, f);
	fclose(f);
	if (got_len != want_len || memcmp(got, want, want_len) != 0)
		fail_msg("%s is stale: regenerate it with "
		         "ORDERD_UPDATE_DOCS=1 test_config (or orderd "
		         "--config-doc)",
		         path);
	free(got);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_defaults, clear_env),
	    cmocka_unit_test_setup(test_precedence_and_syntax, clear_env),
	    cmocka_unit_test_setup(test_deprecated_alias, clear_env),
	    cmocka_unit_test_setup(test_int_bounds, clear_env),
	    cmocka_unit_test_setup(test_other_bad_values, clear_env),
	    cmocka_unit_test_setup(test_help_version_doc, clear_env),
	    cmocka_unit_test_setup(test_tokens, clear_env),
	    cmocka_unit_test_setup(test_notify_secret_file, clear_env),
	    cmocka_unit_test_setup(test_flag_value_is_not_a_flag, clear_env),
	    cmocka_unit_test_setup(test_docs_up_to_date, clear_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
