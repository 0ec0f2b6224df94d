/*
 * cmd_verify: `verify --database URI` opens the store itself (not over
 * HTTP, so it audits what is stored, whatever the daemons believe) and runs
 * store_verify() for G3-G5. Each violation is one line on stdout, then a
 * summary. Exit 0 when clean, CTL_EXIT_VIOLATIONS (1) when anything is
 * wrong, 64/66/69/74 when the store cannot be opened.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orderctl/ctl.h"
#include "store/store.h"
#include "util/err.h"

enum { OPT_DATABASE = CTL_OPT_FIRST_FREE };

static int on_opt(ctl_t *ctl, void *arg, int c, const char *optarg)
{
	if (c != OPT_DATABASE)
		return ctl_usage_error(ctl, "bad option");
	*(const char **)arg = optarg;
	return 0;
}

static void on_violation(void *arg, const char *what)
{
	const ctl_t *ctl = arg;
	if (!ctl->json) {
		printf("%s\n", what);
		return;
	}
	json_t *j = json_pack("{ss}", "violation", what);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	printf("%s\n", text ? text : "{\"violation\":\"?\"}");
	free(text);
	json_decref(j);
}

/* Exit code for a store error while opening or auditing. */
static int store_exit(int rc)
{
	switch (rc) {
	case OD_ECONFIG:
		return EX_USAGE;
	case -ENOENT:
		return EX_NOINPUT;
	case -ENOMEM:
		return EX_OSERR;
	}
	if (rc < 0 && rc > -4096)
		return EX_IOERR; /* a system error: permissions, disk */
	return EX_UNAVAILABLE;   /* store unavailable, schema too new, ... */
}

int cmd_verify(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    CTL_COMMON_OPTIONS,
	    {"database", required_argument, NULL, OPT_DATABASE},
	    {0}};
	const char *uri = getenv("ORDERD_DATABASE");
	int rc = ctl_getopt(ctl, argc, argv, opts, on_opt, &uri);
	if (rc)
		return CTL_EXIT(rc);
	if (argc - optind != 0)
		return ctl_usage_error(ctl, "unexpected argument '%.64s'",
		                       argv[optind]);
	if (!uri || !*uri)
		return ctl_usage_error(ctl, "no store: give --database URI or "
		                            "set ORDERD_DATABASE");
	/* Opening a SQLite path creates an empty database, which would then
	 * verify as clean: a mistyped path must fail instead. */
	if (strncmp(uri, "sqlite:", 7) == 0 && access(uri + 7, F_OK) != 0) {
		fprintf(stderr, "orderctl: verify: cannot open '%s': %s\n",
		        uri + 7, strerror(errno));
		return EX_NOINPUT;
	}

	store_options_t opt = {
	    .replica_id = "orderctl-verify",
	    .busy_timeout_ms = (int)(ctl->timeout_s * 1000),
	    .statement_timeout_ms = (int)(ctl->timeout_s * 1000),
	    .connect_timeout_ms = (int)(ctl->timeout_s * 1000),
	    /* The audit reads every order: as long as the operator lets it. */
	    .deadline_ms = (int)(ctl->timeout_s * 1000),
	    .readers = 1,
	};
	/* The daemon's setting, read from the same variable: a URI that names
	 * a transaction-pooling PgBouncer needs it here too. */
	const char *pooler = getenv("ORDERD_PG_POOLER");
	if (pooler && *pooler && strcmp(pooler, "none") != 0 &&
	    strcmp(pooler, "transaction") != 0)
		return ctl_usage_error(ctl, "ORDERD_PG_POOLER: must be none or "
		                            "transaction");
	opt.pg_txn_pooling = pooler && strcmp(pooler, "transaction") == 0;
	const char *backend = strncmp(uri, "sqlite:", 7) == 0 ? "sqlite"
	                      : strncmp(uri, "postgres://", 11) == 0 ||
	                              strncmp(uri, "postgresql://", 13) == 0
	                          ? "postgres"
	                          : NULL;
	if (!backend)
		return ctl_usage_error(ctl,
		                       "unknown store URI: want sqlite:PATH "
		                       "or postgres://...");
	store_t *s = NULL;
	rc = store_open(uri, &opt, &s);
	if (rc < 0) {
		/* The URI may hold a password: name the backend, not the URI.
		 */
		fprintf(stderr,
		        "orderctl: verify: cannot open the %s store: %s\n",
		        backend, err_str(rc));
		return store_exit(rc);
	}
	size_t n = 0;
	rc = store_verify(s, on_violation, ctl, &n);
	store_free(s);
	if (rc < 0) {
		fprintf(stderr, "orderctl: verify: audit failed: %s\n",
		        err_str(rc));
		return store_exit(rc);
	}
	if (ctl->json)
		printf("{\"violations\":%zu}\n", n);
	else if (n)
		printf("verify: %zu violation%s\n", n, n == 1 ? "" : "s");
	else
		printf("verify: ok \u2014 G3-G5 hold\n");
	return n ? CTL_EXIT_VIOLATIONS : EX_OK;
}
