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

static int show_product(const ctl_t *ctl, int ex, json_t *p)
{
	if (ex == EX_OK && !ctl->json) {
		json_t *one = json_array();
		if (one && json_array_append(one, p) == 0)
			output_product_table(one, true);
		json_decref(one);
	}
	json_decref(p);
	return ex;
}

int cmd_stock(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    CTL_COMMON_OPTIONS, CTL_PAGE_OPTIONS, {0}};
	ctl_page_args_t a = CTL_PAGE_ARGS_INIT;
	int rc = ctl_getopt(ctl, argc, argv, opts, ctl_page_option, &a);
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
		                 a.all, output_product_table);
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
