/*
 * cmd_stock: `stock set SKU N`, `stock get SKU` and `stock list`, over the
 * products routes.
 */
#include <stdio.h>
#include <string.h>

#include "core/order.h"
#include "orderctl/ctl.h"
#include "orderctl/output.h"

#define PATH_LEN 512
#define LIST_LIMIT_MAX 1000

enum { OPT_LIMIT = CTL_OPT_FIRST_FREE, OPT_CURSOR, OPT_ALL };

typedef struct stock_args {
	const char *cursor;
	int64_t limit;
	bool all;
} stock_args_t;

static int on_opt(ctl_t *ctl, void *arg, int c, const char *optarg)
{
	stock_args_t *a = arg;
	switch (c) {
	case OPT_CURSOR:
		a->cursor = optarg;
		return 0;
	case OPT_ALL:
		a->all = true;
		return 0;
	case OPT_LIMIT:
		if (ctl_parse_int(optarg, 1, LIST_LIMIT_MAX, &a->limit) < 0)
			return ctl_usage_error(ctl, "--limit must be 1..%d",
					       LIST_LIMIT_MAX);
		return 0;
	}
	return ctl_usage_error(ctl, "bad option");
}

static void show_products(const json_t *products, bool first)
{
	out_product_table(products, first);
}

static int show_product(const ctl_t *ctl, int ex, json_t *p)
{
	if (ex == EX_OK && !ctl->json) {
		json_t *one = json_array();
		if (one && json_array_append(one, p) == 0)
			out_product_table(one, true);
		json_decref(one);
	}
	json_decref(p);
	return ex;
}

int cmd_stock(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {CTL_COMMON_OPTIONS,
		{"limit", required_argument, NULL, OPT_LIMIT},
		{"cursor", required_argument, NULL, OPT_CURSOR},
		{"all", no_argument, NULL, OPT_ALL}, {0}};
	stock_args_t a = {.limit = 100};
	int rc = ctl_getopt(ctl, argc, argv, opts, on_opt, &a);
	if (rc)
		return CTL_EXIT(rc);
	int npos = argc - optind;
	char **pos = argv + optind;
	if (npos < 1)
		return ctl_usage_error(ctl, "expected set, get or list");
	const char *sub = pos[0];
	char path[PATH_LEN], what[PATH_LEN];
	json_t *p = NULL;

	if (strcmp(sub, "list") == 0) {
		if (npos != 1)
			return ctl_usage_error(ctl, "stock list takes no "
					       "arguments");
		snprintf(path, sizeof path, "/v1/products?limit=%lld",
			 (long long)a.limit);
		return ctl_pages(ctl, "stock list", path, "products", a.cursor,
				 a.all, show_products);
	}
	if (strcmp(sub, "get") == 0) {
		if (npos != 2)
			return ctl_usage_error(ctl, "expected stock get SKU");
		if ((rc = ctl_check_ident(ctl, "sku", pos[1])))
			return rc;
		snprintf(path, sizeof path, "/v1/products/%s", pos[1]);
		snprintf(what, sizeof what, "stock get '%s'", pos[1]);
		int ex = ctl_call(ctl, what, "GET", path, NULL, 0, &p);
		return show_product(ctl, ex, p);
	}
	if (strcmp(sub, "set") == 0) {
		int64_t n;
		if (npos != 3)
			return ctl_usage_error(ctl, "expected stock set SKU N");
		if ((rc = ctl_check_ident(ctl, "sku", pos[1])))
			return rc;
		if (ctl_parse_int(pos[2], 0, PRODUCT_STOCK_MAX, &n) < 0)
			return ctl_usage_error(ctl, "stock must be 0..%lld",
					       PRODUCT_STOCK_MAX);
		json_t *body = json_pack("{sI}", "stock", (json_int_t)n);
		if (!body)
			return EX_OSERR;
		snprintf(path, sizeof path, "/v1/products/%s", pos[1]);
		snprintf(what, sizeof what, "stock set '%s'", pos[1]);
		int ex = ctl_call(ctl, what, "PUT", path, body, 0, &p);
		json_decref(body);
		return show_product(ctl, ex, p);
	}
	return ctl_usage_error(ctl, "unknown stock command '%.64s'", sub);
}
