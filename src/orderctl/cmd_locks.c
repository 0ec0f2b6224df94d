/*
 * cmd_locks: `lock acquire|renew|release|get NAME`, the named-lock routes.
 * The fence printed by acquire is what renew and release must be given.
 */
#include <stdio.h>
#include <string.h>

#include "orderctl/ctl.h"
#include "orderctl/output.h"

#define PATH_LEN 512
#define TTL_MS_MIN 100 /* API: ttl_ms 100..600000 */
#define TTL_MS_MAX 600000
#define WAIT_MS_MAX 30000 /* API: wait_ms 0..30000 */

enum { OPT_OWNER = CTL_OPT_FIRST_FREE, OPT_TTL, OPT_WAIT, OPT_FENCE };

typedef struct lock_args {
	const char *owner;
	int64_t ttl_ms;  /* -1: not given */
	int64_t wait_ms; /* -1: not given */
	int64_t fence;   /* -1: not given */
} lock_args_t;

static int on_opt(ctl_t *ctl, void *arg, int c, const char *optarg)
{
	lock_args_t *a = arg;
	switch (c) {
	case OPT_OWNER:
		a->owner = optarg;
		return 0;
	case OPT_TTL:
		if (ctl_parse_int(optarg, TTL_MS_MIN, TTL_MS_MAX, &a->ttl_ms) <
		    0)
			return ctl_usage_error(ctl, "--ttl-ms must be %d..%d",
			                       TTL_MS_MIN, TTL_MS_MAX);
		return 0;
	case OPT_WAIT:
		if (ctl_parse_int(optarg, 0, WAIT_MS_MAX, &a->wait_ms) < 0)
			return ctl_usage_error(ctl, "--wait-ms must be 0..%d",
			                       WAIT_MS_MAX);
		return 0;
	case OPT_FENCE:
		if (ctl_parse_int(optarg, 0, INT64_MAX, &a->fence) < 0)
			return ctl_usage_error(ctl, "--fence must be a "
			                            "non-negative integer");
		return 0;
	}
	return ctl_usage_error(ctl, "bad option");
}

/* Checks that exactly the options sub needs were given. */
static int check_args(const ctl_t *ctl, const char *sub, const lock_args_t *a,
                      bool owner, bool ttl, bool fence, bool wait)
{
	if (owner != (a->owner != NULL))
		return ctl_usage_error(ctl, "lock %s %s --owner", sub,
		                       owner ? "needs" : "takes no");
	if (ttl != (a->ttl_ms >= 0))
		return ctl_usage_error(ctl, "lock %s %s --ttl-ms", sub,
		                       ttl ? "needs" : "takes no");
	if (fence != (a->fence >= 0))
		return ctl_usage_error(ctl, "lock %s %s --fence", sub,
		                       fence ? "needs" : "takes no");
	if (!wait && a->wait_ms >= 0)
		return ctl_usage_error(ctl, "lock %s takes no --wait-ms", sub);
	if (a->owner)
		return ctl_check_ident(ctl, "owner", a->owner);
	return 0;
}

int cmd_lock(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    CTL_COMMON_OPTIONS,
	    {"owner", required_argument, NULL, OPT_OWNER},
	    {"ttl-ms", required_argument, NULL, OPT_TTL},
	    {"wait-ms", required_argument, NULL, OPT_WAIT},
	    {"fence", required_argument, NULL, OPT_FENCE},
	    {0}};
	lock_args_t a = {.ttl_ms = -1, .wait_ms = -1, .fence = -1};
	int rc = ctl_getopt(ctl, argc, argv, opts, on_opt, &a);
	if (rc)
		return CTL_EXIT(rc);
	if (argc - optind != 2)
		return ctl_usage_error(ctl, "expected lock acquire|renew|"
		                            "release|get NAME");
	const char *sub = argv[optind], *name = argv[optind + 1];
	if ((rc = ctl_check_ident(ctl, "lock name", name)))
		return rc;

	char path[PATH_LEN], what[PATH_LEN];
	snprintf(what, sizeof what, "lock %s '%s'", sub, name);
	json_t *body = NULL;
	const char *method = "POST";
	long extra_ms = 0;
	if (strcmp(sub, "acquire") == 0) {
		if ((rc = check_args(ctl, sub, &a, true, true, false, true)))
			return rc;
		body = json_pack("{sssI}", "owner", a.owner, "ttl_ms",
		                 (json_int_t)a.ttl_ms);
		if (body && a.wait_ms >= 0) {
			json_object_set_new(body, "wait_ms",
			                    json_integer(a.wait_ms));
			extra_ms = (long)a.wait_ms;
		}
	} else if (strcmp(sub, "renew") == 0) {
		if ((rc = check_args(ctl, sub, &a, true, true, true, false)))
			return rc;
		body = json_pack("{sssIsI}", "owner", a.owner, "fence",
		                 (json_int_t)a.fence, "ttl_ms",
		                 (json_int_t)a.ttl_ms);
	} else if (strcmp(sub, "release") == 0) {
		if ((rc = check_args(ctl, sub, &a, true, false, true, false)))
			return rc;
		body = json_pack("{sssI}", "owner", a.owner, "fence",
		                 (json_int_t)a.fence);
	} else if (strcmp(sub, "get") == 0) {
		if ((rc = check_args(ctl, sub, &a, false, false, false, false)))
			return rc;
		method = "GET";
	} else {
		return ctl_usage_error(ctl, "unknown lock command '%.64s'",
		                       sub);
	}
	if (strcmp(method, "POST") == 0 && !body)
		return EX_OSERR;

	if (strcmp(sub, "get") == 0)
		snprintf(path, sizeof path, "/v1/locks/%s", name);
	else
		snprintf(path, sizeof path, "/v1/locks/%s/%s", name, sub);
	json_t *lock = NULL;
	int ex = ctl_call(ctl, what, method, path, body, extra_ms, &lock);
	json_decref(body);
	if (ex == EX_OK && !ctl->json) {
		if (lock)
			output_lock(lock);
		else
			printf("released %s\n", name);
	}
	json_decref(lock);
	return ex;
}
