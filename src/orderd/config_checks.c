/*
 * config_checks: the value rules of the string settings (config.c's table
 * names them): each returns NULL for a valid value, else the rule as the
 * error message says it.
 */
#include <string.h>

#include "core/order.h"
#include "obs/log.h"
#include "orderd/config_int.h"

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
