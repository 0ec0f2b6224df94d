/*
 * config: every setting of the daemon, defined once in a table in config.c
 * (name, flag, environment variable, type, default, bounds, help). Sources,
 * strongest first: command-line flag, ORDERD_* environment variable,
 * default. --help and docs/config.md are generated from the same table.
 */
#ifndef ORDERD_ORDERD_CONFIG_H
#define ORDERD_ORDERD_CONFIG_H

#include <stdint.h>
#include <stdio.h>

typedef struct config {
	char *listen;    /* host:port */
	char *database;  /* sqlite:PATH | postgres://... */
	int64_t workers; /* processing threads; default: cores */
	int64_t lease_ms;
	int64_t max_attempts;
	char *api_tokens;      /* comma-separated; never logged */
	char *api_tokens_file; /* one token per line */
	char *replica_id;      /* default: hostname-pid */
	int64_t drain_ms;
	char *database_file;       /* line 1 is the database URI */
	int64_t shutdown_delay_ms; /* /readyz 503 only, before the drain */
	char *log_level;
	int64_t http_threads;
	int64_t max_connections;
	int64_t max_streams;
	int64_t http_head_timeout_ms;
	int64_t http_body_timeout_ms;
	int64_t body_max;       /* bytes, single requests */
	int64_t batch_body_max; /* bytes, POST /v1/orders/batch */
	int64_t json_depth;
	int64_t max_items;    /* items per order */
	int64_t max_batch;    /* orders per batch request */
	int64_t submit_queue; /* orders waiting for group commit */
	int64_t commit_batch; /* orders per group-commit transaction */
	int64_t claim_batch;  /* orders per claim */
	int64_t poll_ms;
	int64_t retry_base_ms;
	int64_t retry_max_ms;
	int64_t reap_ms;
	char *confirm_url; /* NULL: no confirm step */
	int64_t confirm_connect_timeout_ms;
	int64_t confirm_timeout_ms;
	int64_t confirm_concurrency;
	int64_t max_waiters;      /* suspended wait_ms / lock waits */
	int64_t handler_queue_ms; /* longest wait for a handler thread */
	int64_t busy_timeout_ms;
	int64_t statement_timeout_ms;
	int64_t store_deadline_ms; /* client-side bound on a store call */
	char *pg_pooler;           /* "none" | "transaction" */
	double alert_error_rate;   /* HighErrorRate threshold */
	int64_t alert_window_s;
	int64_t alert_min_events;     /* formerly alert_min_requests */
	int64_t alert_backlog_s;      /* BacklogTooOld threshold */
	char *alert_webhook_url;      /* Alertmanager v2 alerts URL, or NULL */
	char *notify_url;             /* comma-separated endpoints */
	char *notify_secret;          /* never logged */
	char *notify_secret_file;     /* line 1 secret, line 2 previous */
	char *notify_secret_previous; /* never logged */
	int64_t notify_max_attempts;
	int64_t notify_retention_s;
	int64_t notify_timeout_ms;
	int64_t notify_concurrency;
	int64_t notify_breaker_failures;
	int64_t notify_breaker_cooldown_ms;
	/* Derived at load: the parsed token list (NULL-terminated). */
	char **tokens;
} config_t;

/*
 * Fills *c from defaults, the environment and argv (flags such as
 * --listen=ADDR or --listen ADDR). Returns 0; OD_ECONFIG with a message in
 * err ("ORDERD_LEASE_MS: must be 100..3600000, got \"5\"") on bad input.
 * Sets *ret_exit_now to 1 after printing --help/--version/--config-doc to
 * stdout (the caller exits 0). The caller frees with config_free().
 */
int config_load(config_t *c, int argc, char **argv, int *ret_exit_now,
                char *err, size_t errlen);
void config_free(config_t *c);
/* Writes the settings table as Markdown (docs/config.md). */
void config_print_markdown(FILE *f);

#endif
