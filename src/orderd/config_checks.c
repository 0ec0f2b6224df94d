/*
 * config_checks: the value rules of the string settings (config.c's table
 * names them): each returns NULL for a valid value, else the rule as the
 * error message says it. Also the database URI from ORDERD_DATABASE_FILE,
 * checked by the same rule.
 */
#include <stdlib.h>
#include <string.h>

#include "core/order.h"
#include "obs/log.h"
#include "orderd/config.h"
#include "orderd/config_int.h"
#include "util/err.h"

const char *config_check_listen(const char *v)
{
	static const char rule[] = "must be host:port with port 0..65535";
	const char *colon = strrchr(v, ':');
	if (!colon || !colon[1] || strlen(colon + 1) > 5)
		return rule;
	long port = 0;
	for (const char *p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return rule;
		port = port * 10 + (*p - '0');
	}
	return port <= 65535 ? NULL : rule;
}

const char *config_check_database(const char *v)
{
	if (strncmp(v, "sqlite:", 7) == 0 && v[7])
		return NULL;
	if (strncmp(v, "postgres://", 11) == 0 ||
	    strncmp(v, "postgresql://", 13) == 0)
		return NULL;
	return "must be sqlite:PATH, postgres://... or postgresql://...";
}

const char *config_check_replica(const char *v)
{
	if (!order_ident_valid(v, ID_MAX))
		return "must be 1..64 characters from [A-Za-z0-9._:-]";
	return NULL;
}

const char *config_check_http_url(const char *v)
{
	if (!v[0])
		return NULL; /* empty: unset */
	if ((strncmp(v, "http://", 7) == 0 && v[7]) ||
	    (strncmp(v, "https://", 8) == 0 && v[8]))
		return NULL;
	return "must be an http:// or https:// URL";
}

const char *config_check_pg_pooler(const char *v)
{
	if (strcmp(v, "none") == 0 || strcmp(v, "transaction") == 0)
		return NULL;
	return "must be none or transaction";
}

const char *config_check_log_level(const char *v)
{
	log_level_t l;
	if (log_level_parse(v, &l) != 0)
		return "must be one of debug, info, warn, error";
	return NULL;
}

#define DATABASE_MAX 4096 /* bytes, as the database setting allows */

int config_database_file_load(struct config *c, int explicit, char *err,
                              size_t errlen)
{
	static const char from[] = "ORDERD_DATABASE_FILE";
	if (!c->database_file || !c->database_file[0])
		return 0;
	if (explicit)
		return config_fail(
		    err, errlen,
		    "%s: give the database either in the file or "
		    "in ORDERD_DATABASE (--database), not both",
		    from);
	char *text = NULL;
	size_t len = 0;
	int rc = config_read_small_file(c->database_file, &text, &len);
	if (rc == OD_ETOOBIG)
		return config_fail(err, errlen,
		                   "%s: \"%.200s\" is larger than 16384 bytes",
		                   from, c->database_file);
	if (rc < 0)
		return config_fail(err, errlen,
		                   "%s: cannot read \"%.200s\": %s", from,
		                   c->database_file, err_str(rc));
	size_t n = strcspn(text, "\r\n");
	while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
		n--;
	const char *why = NULL;
	if (memchr(text, '\0', len))
		why = "contains a NUL byte";
	else if (n == 0)
		why = "has no database URI on its first line";
	else if (n > DATABASE_MAX)
		why = "has a first line longer than 4096 bytes";
	char *uri = why ? NULL : strndup(text, n);
	if (!why && !uri)
		why = "out of memory";
	/* The URI may carry a password: wipe the file's bytes. */
	explicit_bzero(text, len);
	free(text);
	if (!why && config_check_database(uri))
		why = "has a first line that is not sqlite:PATH, "
		      "postgres://... or postgresql://... (not shown)";
	if (why) {
		if (uri) {
			explicit_bzero(uri, strlen(uri));
			free(uri);
		}
		return config_fail(err, errlen, "%s: \"%.200s\" %s", from,
		                   c->database_file, why);
	}
	free(c->database);
	c->database = uri;
	return 0;
}
