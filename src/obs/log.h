/*
 * log: structured JSON-lines logging to stderr, the second allowed global.
 * One line per event: {"ts":"...","level":"info","msg":"...", fields...}.
 * Fields are given as key/value string pairs ending with NULL:
 *
 *     log_info("order failed", "order_id", id, "error", err_str(rc), NULL);
 *
 * Each line is written whole under one lock (however many write(2) calls
 * it takes), so threads never interleave.
 * Never pass a token or a password as a field.
 */
#ifndef ORDERD_OBS_LOG_H
#define ORDERD_OBS_LOG_H

typedef enum log_level {
	LOG_DEBUG = 0,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
} log_level_t;

/* Parses "debug", "info", "warn", "error"; 0 or OD_EINVAL. */
int log_level_parse(const char *name, log_level_t *ret);
void log_set_level(log_level_t level);
/* Adds "replica":id to every line (copied; NULL to stop). */
void log_set_replica(const char *id);
int log_enabled(log_level_t level);

void log_msg(log_level_t level, const char *msg, ...) __attribute__((sentinel));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
