/*
 * config_int: what the daemon's settings files share (config.c, the table
 * and its loading; config_checks.c, the value rules; config_tokens.c, the
 * API tokens; config_notify.c, the notification settings). Nothing outside
 * src/orderd/ includes this header.
 */
#ifndef ORDERD_ORDERD_CONFIG_INT_H
#define ORDERD_ORDERD_CONFIG_INT_H

#include <stddef.h>

/* Formats a message into err[errlen] (when given) and returns OD_ECONFIG. */
int config_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The API tokens of list (comma-separated) and the file named by file, in
 * that order; list_from and file_from name where each setting came from in
 * messages. *ret_tokens is a NULL-terminated malloc'd array, or NULL when
 * neither setting is given (no auth).
 */
int config_tokens_load(const char *list, const char *list_from,
                       const char *file, const char *file_from,
                       char ***ret_tokens, char *err, size_t errlen);

/* The value rules of string settings (config_checks.c): NULL when v is
 * valid, else the rule. */
const char *config_check_listen(const char *v);
const char *config_check_database(const char *v);
const char *config_check_replica(const char *v);
const char *config_check_log_level(const char *v);
const char *config_check_pg_pooler(const char *v);
/* An http:// or https:// URL; empty counts as unset. */
const char *config_check_http_url(const char *v);

/* Reads up to 16 KiB of path into a malloc'd string of *ret_len bytes
 * (NUL-terminated; it may hold NUL bytes of its own): 0, -errno, or
 * OD_ETOOBIG when the file is larger (config_notify.c). */
int config_read_small_file(const char *path, char **ret, size_t *ret_len);

struct config;
/*
 * ORDERD_DATABASE_FILE (config_checks.c): when set, its first line
 * (trailing blanks trimmed) replaces c->database, checked like the
 * setting; explicit says ORDERD_DATABASE or --database was given, which
 * is then an error. Messages never show the URI (it may hold a password).
 */
int config_database_file_load(struct config *c, int explicit, char *err,
                              size_t errlen);
/*
 * The notification settings' cross rules (config_notify.c): the URL list,
 * the secrets from the environment or the secret file (which fills
 * notify_secret and notify_secret_previous), and "a URL needs a secret".
 */
int config_notify_load(struct config *c, char *err, size_t errlen);
/* NULL when v is a valid ORDERD_NOTIFY_URL list, else the rule. */
const char *config_notify_url_check(const char *v);

#endif
