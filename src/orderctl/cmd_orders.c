/*
 * cmd_orders: the order commands other than submit: get (optionally
 * waiting for a terminal status), list (paging), requeue and cancel.
 */
#include <stdio.h>
#include <string.h>

#include "orderctl/ctl.h"
#include "orderctl/output.h"

#define WAIT_MS_MAX 30000 /* API: wait_ms 0..30000 */
#define PATH_LEN 512

enum { OPT_WAIT = CTL_OPT_PAGE_FREE, OPT_STATUS };

/* Shows one order from a successful call, unless --json printed it. */
static int show_order(const ctl_t *ctl, int ex, json_t *order)
{
	if (ex == EX_OK && !ctl->json)
		output_order(order);
	json_decref(order);
	return ex;
}

static int on_get_opt(ctl_t *ctl, void *arg, int c, const char *optarg)
{
	int64_t *wait_ms = arg;
	if (c != OPT_WAIT)
		return ctl_usage_error(ctl, "bad option");
	if (!optarg) {
		*wait_ms = WAIT_MS_MAX;
		return 0;
	}
	if (ctl_parse_int(optarg, 0, WAIT_MS_MAX, wait_ms) < 0)
		return ctl_usage_error(ctl, "--wait must be 0..%d ms",
		                       WAIT_MS_MAX);
	return 0;
}

int cmd_get(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    CTL_COMMON_OPTIONS,
	    {"wait", optional_argument, NULL, OPT_WAIT},
	    {0}};
	int64_t wait_ms = -1;
	int rc = ctl_getopt(ctl, argc, argv, opts, on_get_opt, &wait_ms);
	if (rc)
		return CTL_EXIT(rc);
	if (argc - optind != 1)
		return ctl_usage_error(ctl, "expected one order ID");
	const char *id = argv[optind];
	if ((rc = ctl_check_ident(ctl, "order id", id)))
		return rc;

	char path[PATH_LEN], what[PATH_LEN];
	if (wait_ms >= 0)
		snprintf(path, sizeof path, "/v1/orders/%s?wait_ms=%lld", id,
		         (long long)wait_ms);
	else
		snprintf(path, sizeof path, "/v1/orders/%s", id);
	snprintf(what, sizeof what, "get '%s'", id);
	json_t *order = NULL;
	int ex = ctl_call(ctl, what, "GET", path, NULL,
	                  wait_ms > 0 ? (long)wait_ms : 0, &order);
	return show_order(ctl, ex, order);
}

typedef struct list_args {
	const char *status;
	ctl_page_args_t page;
} list_args_t;

static int on_list_opt(ctl_t *ctl, void *arg, int c, const char *optarg)
{
	list_args_t *a = arg;
	if (c == OPT_STATUS) {
		a->status = optarg;
		return 0;
	}
	return ctl_page_option(ctl, &a->page, c, optarg);
}

int cmd_list(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    CTL_COMMON_OPTIONS,
	    {"status", required_argument, NULL, OPT_STATUS},
	    CTL_PAGE_OPTIONS,
	    {0}};
	list_args_t a = {.page = CTL_PAGE_ARGS_INIT};
	int rc = ctl_getopt(ctl, argc, argv, opts, on_list_opt, &a);
	if (rc)
		return CTL_EXIT(rc);
	if (argc - optind != 0)
		return ctl_usage_error(ctl, "unexpected argument '%.64s'",
		                       argv[optind]);
	/* Statuses are plain lowercase words; anything else is a typo that
	 * need not travel to the server (and need no escaping). */
	if (a.status && (strspn(a.status, "abcdefghijklmnopqrstuvwxyz") !=
	                     strlen(a.status) ||
	                 strlen(a.status) > 16 || !*a.status))
		return ctl_usage_error(ctl, "invalid --status '%.64s'",
		                       a.status);
	char path[PATH_LEN];
	snprintf(path, sizeof path, "/v1/orders?limit=%lld%s%s",
	         (long long)a.page.limit, a.status ? "&status=" : "",
	         a.status ? a.status : "");
	return ctl_pages(ctl, "list", path, "orders", a.page.cursor, a.page.all,
	                 output_order_table);
}

/* requeue and cancel: POST /v1/orders/ID/<action>. */
static int order_action(ctl_t *ctl, int argc, char **argv, const char *action)
{
	static const struct option opts[] = {CTL_COMMON_OPTIONS, {0}};
	int rc = ctl_getopt(ctl, argc, argv, opts, NULL, NULL);
	if (rc)
		return CTL_EXIT(rc);
	if (argc - optind != 1)
		return ctl_usage_error(ctl, "expected one order ID");
	const char *id = argv[optind];
	if ((rc = ctl_check_ident(ctl, "order id", id)))
		return rc;
	char path[PATH_LEN], what[PATH_LEN];
	snprintf(path, sizeof path, "/v1/orders/%s/%s", id, action);
	snprintf(what, sizeof what, "%s '%s'", action, id);
	json_t *order = NULL;
	int ex = ctl_call(ctl, what, "POST", path, NULL, 0, &order);
	return show_order(ctl, ex, order);
}

int cmd_requeue(ctl_t *ctl, int argc, char **argv)
{
	return order_action(ctl, argc, argv, "requeue");
}

int cmd_cancel(ctl_t *ctl, int argc, char **argv)
{
	return order_action(ctl, argc, argv, "cancel");
}
