/*
 * cmd_failures: the dead letters. `failures` shows the groups of failed
 * orders (GET /v1/failures) as a table, the largest group first;
 * `failures requeue FP` puts every failed order of group FP back to
 * pending (POST /v1/failures/FP/requeue) and prints how many.
 */
#include <stdio.h>
#include <string.h>

#include "core/failure.h"
#include "orderctl/ctl.h"
#include "orderctl/output.h"

#define PATH_LEN 512
#define FAILURES_LIMIT_MAX 1000 /* API: limit 1..1000, default 100 */

enum { OPT_LIMIT = CTL_OPT_FIRST_FREE };

static int on_opt(ctl_t *ctl, void *arg, int c, const char *optarg)
{
	int64_t *limit = arg;
	if (c != OPT_LIMIT)
		return ctl_usage_error(ctl, "bad option");
	if (ctl_parse_int(optarg, 1, FAILURES_LIMIT_MAX, limit) < 0)
		return ctl_usage_error(ctl, "--limit must be 1..%d",
		                       FAILURES_LIMIT_MAX);
	return 0;
}

static void show_failures(const json_t *j)
{
	size_t i;
	const json_t *f;
	char c[5][OUT_CELL_LEN];
	printf("%-16s %8s %-24s %-24s %s\n", "FINGERPRINT", "COUNT",
	       "FIRST_SEEN", "LAST_SEEN", "SAMPLE_REASON");
	json_array_foreach(json_object_get(j, "failures"), i, f)
	{
		/* The reason can be long: printed whole, last. */
		const json_t *reason = json_object_get(f, "sample_reason");
		printf("%-16s %8s %-24s %-24s %s\n",
		       output_cell(f, "fingerprint", c[0]),
		       output_cell(f, "count", c[1]),
		       output_cell(f, "first_seen", c[2]),
		       output_cell(f, "last_seen", c[3]),
		       json_is_string(reason) ? json_string_value(reason)
		                              : "-");
	}
}

static int requeue(ctl_t *ctl, const char *fp)
{
	if (!failure_fingerprint_valid(fp))
		return ctl_usage_error(
		    ctl,
		    "invalid fingerprint '%.80s': must be %d "
		    "characters from [0-9a-f]",
		    fp, FAILURE_FP_LEN);
	char path[PATH_LEN], what[PATH_LEN];
	snprintf(path, sizeof path, "/v1/failures/%s/requeue", fp);
	snprintf(what, sizeof what, "failures requeue '%s'", fp);
	json_t *j = NULL;
	int ex = ctl_call(ctl, what, "POST", path, NULL, 0, &j);
	if (ex == EX_OK && !ctl->json) {
		json_t *n = json_object_get(j, "requeued");
		printf("requeued %lld failed orders of %s\n",
		       json_is_integer(n) ? (long long)json_integer_value(n)
		                          : 0LL,
		       fp);
	}
	json_decref(j);
	return ex;
}

int cmd_failures(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    CTL_COMMON_OPTIONS,
	    {"limit", required_argument, NULL, OPT_LIMIT},
	    {0}};
	int64_t limit = 100;
	int rc = ctl_getopt(ctl, argc, argv, opts, on_opt, &limit);
	if (rc)
		return CTL_EXIT(rc);
	int npos = argc - optind;
	char **pos = argv + optind;
	if (npos >= 1 && strcmp(pos[0], "requeue") == 0) {
		if (npos != 2)
			return ctl_usage_error(ctl,
			                       "expected failures requeue FP");
		return requeue(ctl, pos[1]);
	}
	if (npos != 0)
		return ctl_usage_error(ctl, "unknown failures command '%.64s'",
		                       pos[0]);
	char path[PATH_LEN];
	snprintf(path, sizeof path, "/v1/failures?limit=%lld",
	         (long long)limit);
	json_t *j = NULL;
	int ex = ctl_call(ctl, "failures", "GET", path, NULL, 0, &j);
	if (ex == EX_OK && !ctl->json && j)
		show_failures(j);
	json_decref(j);
	return ex;
}
