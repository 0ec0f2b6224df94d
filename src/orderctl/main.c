/*
 * orderctl: the command-line client and operator tool of orderd. This file
 * owns the command table, the usage text, the common options and the
 * dispatch; each command lives in a cmd_*.c file and returns the process
 * exit code (sysexits.h, listed in docs/orderctl.md).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orderctl/ctl.h"

#define DEFAULT_URL "http://127.0.0.1:8080"
#define DEFAULT_TIMEOUT_S 30
#define MAX_TIMEOUT_S 86400

static const ctl_command_t commands[] = {
    {"submit", cmd_submit, "submit [FILE|-]",
     "Submits orders from FILE or stdin: one JSON order object, a JSON array\n"
     "of orders, or JSON lines (one order per line). Prints one line per\n"
     "order (with --json, the server's result objects as JSON lines) and a\n"
     "summary on stderr. Exit 65 when any order was invalid or conflicted."},
    {"get", cmd_get, "get ID [--wait[=MS]]",
     "Shows an order. --wait waits up to MS ms (default 30000) for it to\n"
     "reach a terminal status."},
    {"list", cmd_list, "list [--status S] [--limit N] [--cursor C] [--all]",
     "Lists orders, oldest first. --all follows next_cursor to the end\n"
     "(with --json, one line per page)."},
    {"requeue", cmd_requeue, "requeue ID",
     "Puts a failed order back to pending with attempts reset."},
    {"cancel", cmd_cancel, "cancel ID", "Cancels a pending order."},
    {"stock", cmd_stock,
     "stock set SKU N\nstock get SKU\n"
     "stock list [--limit N] [--cursor C] [--all]",
     "Sets, shows or lists product stock levels."},
    {"lock", cmd_lock,
     "lock acquire NAME --owner O --ttl-ms T [--wait-ms W]\n"
     "lock renew NAME --owner O --fence F --ttl-ms T\n"
     "lock release NAME --owner O --fence F\n"
     "lock get NAME",
     "Named locks (leases with fencing tokens)."},
    {"failures", cmd_failures, "failures [--limit N]\nfailures requeue FP",
     "Dead letters: lists the groups of failed orders (fingerprint, count,\n"
     "first and last seen, a sample reason), the largest first; `requeue`\n"
     "puts every failed order of group FP back to pending and prints how\n"
     "many."},
    {"stats", cmd_stats, "stats", "Shows the server's summary."},
    {"alerts", cmd_alerts, "alerts", "Shows the alert states."},
    {"verify", cmd_verify, "verify [--database URI]",
     "Audits the store directly (not over HTTP) for G3-G5: conservation of\n"
     "stock, no negative stock, reservations matching completed orders.\n"
     "URI is sqlite:PATH or a postgres:// URI (default $ORDERD_DATABASE).\n"
     "Prints each violation; exit 0 when clean, 1 when any violation."},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* Prints a command's synopsis lines, the first after first, the others
 * after more. */
static void print_synopsis(FILE *f, const char *first, const char *more,
                           const char *syn)
{
	for (const char *prefix = first; *syn; prefix = more) {
		size_t n = strcspn(syn, "\n");
		fprintf(f, "%s%.*s\n", prefix, (int)n, syn);
		syn += n + (syn[n] == '\n');
	}
}

static void usage(FILE *f)
{
	fputs("usage: orderctl [--url URL] [--token TOKEN] [--json] "
	      "[--timeout SECONDS] COMMAND [ARGS]\n\ncommands:\n",
	      f);
	for (size_t i = 0; i < N_COMMANDS; i++)
		print_synopsis(f, "  orderctl ", "  orderctl ",
		               commands[i].synopsis);
	fputs("\nenvironment: ORDERD_URL (default " DEFAULT_URL "), "
	      "ORDERD_TOKEN (bearer token),\nORDERD_DATABASE (for verify). "
	      "`orderctl COMMAND --help` describes a command.\n"
	      "exit codes: 0 ok, 1 verify found violations, 64 usage, 65 data "
	      "error,\n66 not found, 69 unavailable, 70 server error, 75 "
	      "try again, 77 not allowed.\n",
	      f);
}

/* Prints the usage and help of the current command to stdout. */
static void ctl_command_help(const ctl_t *ctl)
{
	print_synopsis(stdout, "usage: orderctl ", "       orderctl ",
	               ctl->cmd->synopsis);
	printf("\n%s\n\ncommon options: --url URL, --token TOKEN, --json, "
	       "--timeout SECONDS\n",
	       ctl->cmd->help);
}

int ctl_usage_error(const ctl_t *ctl, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "orderctl: %s: ", ctl->cmd ? ctl->cmd->name : "usage");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (ctl->cmd)
		print_synopsis(stderr, "usage: orderctl ", "       orderctl ",
		               ctl->cmd->synopsis);
	else
		usage(stderr);
	return EX_USAGE;
}

int ctl_common_option(ctl_t *ctl, int c, const char *arg)
{
	int64_t v;
	switch (c) {
	case CTL_OPT_URL:
		ctl->url = arg;
		return 0;
	case CTL_OPT_TOKEN:
		ctl->token = arg;
		return 0;
	case CTL_OPT_JSON:
		ctl->json = true;
		return 0;
	case CTL_OPT_TIMEOUT:
		if (ctl_parse_int(arg, 1, MAX_TIMEOUT_S, &v) < 0)
			return ctl_usage_error(ctl,
			                       "--timeout must be 1..%d "
			                       "seconds",
			                       MAX_TIMEOUT_S);
		ctl->timeout_s = (long)v;
		return 0;
	case CTL_OPT_HELP:
		if (ctl->cmd)
			ctl_command_help(ctl);
		else
			usage(stdout);
		return CTL_DONE;
	}
	/* getopt_long already said what was wrong ('?' or ':'). */
	return ctl_usage_error(ctl, "bad option");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {CTL_COMMON_OPTIONS, {0}};
	ctl_t ctl = {
	    .url = getenv("ORDERD_URL"),
	    .token = getenv("ORDERD_TOKEN"),
	    .timeout_s = DEFAULT_TIMEOUT_S,
	};
	if (!ctl.url || !*ctl.url)
		ctl.url = DEFAULT_URL;
	if (ctl.token && !*ctl.token)
		ctl.token = NULL;

	/* Common options may come before the command ('+': stop at the
	 * command name) and after it (each command accepts them too). */
	int c;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		int rc = ctl_common_option(&ctl, c, optarg);
		if (rc)
			return CTL_EXIT(rc);
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *name = argv[optind];
	if (strcmp(name, "help") == 0) {
		usage(stdout);
		return EX_OK;
	}
	int first = optind;
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(name, commands[i].name))
			continue;
		ctl.cmd = &commands[i];
		optind = 0; /* glibc: start the command's own getopt afresh */
		int ex = commands[i].run(&ctl, argc - first, argv + first);
		client_free(ctl.client);
		if (fflush(stdout) != 0 && ex == EX_OK) {
			perror("orderctl: writing output");
			ex = EX_IOERR;
		}
		return ex;
	}
	fprintf(stderr, "orderctl: unknown command '%.64s'\n", name);
	usage(stderr);
	return EX_USAGE;
}
