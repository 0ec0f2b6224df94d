/*
 * cmd_ops: the operations views, `stats` (GET /v1/stats, whose shape is
 * open, so it is shown flattened) and `alerts` (GET /v1/alerts, a table).
 */
#include <stdio.h>

#include "orderctl/ctl.h"
#include "orderctl/output.h"

/* A command without arguments that GETs path; show prints the answer. */
static int view(ctl_t *ctl, int argc, char **argv, const char *path,
                void (*show)(const json_t *j))
{
	static const struct option opts[] = {CTL_COMMON_OPTIONS, {0}};
	int rc = ctl_getopt(ctl, argc, argv, opts, NULL, NULL);
	if (rc)
		return CTL_EXIT(rc);
	if (argc - optind != 0)
		return ctl_usage_error(ctl, "unexpected argument '%.64s'",
		                       argv[optind]);
	json_t *j = NULL;
	int ex = ctl_call(ctl, ctl->cmd->name, "GET", path, NULL, 0, &j);
	if (ex == EX_OK && !ctl->json && j)
		show(j);
	json_decref(j);
	return ex;
}

static void show_alerts(const json_t *j)
{
	size_t i;
	const json_t *a;
	char c[5][OUT_CELL_LEN];
	printf("%-32s %-9s %12s %12s %s\n", "NAME", "STATE", "VALUE",
	       "THRESHOLD", "SINCE");
	json_array_foreach(json_object_get(j, "alerts"), i, a) printf(
	    "%-32s %-9s %12s %12s %s\n", output_cell(a, "name", c[0]),
	    output_cell(a, "state", c[1]), output_cell(a, "value", c[2]),
	    output_cell(a, "threshold", c[3]), output_cell(a, "since", c[4]));
}

int cmd_stats(ctl_t *ctl, int argc, char **argv)
{
	return view(ctl, argc, argv, "/v1/stats", output_flat);
}

int cmd_alerts(ctl_t *ctl, int argc, char **argv)
{
	return view(ctl, argc, argv, "/v1/alerts", show_alerts);
}
