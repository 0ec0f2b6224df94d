/*
 * ctl: what the orderctl commands share: the run's settings, the exit codes
 * (sysexits.h), the common options every command accepts, and the helpers
 * each command uses to parse its arguments and talk to the server.
 * main.c owns the command table and the usage text.
 */
#ifndef ORDERCTL_CTL_H
#define ORDERCTL_CTL_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sysexits.h>

#include "orderctl/client.h"

/* Exit code of `verify` when the store holds violations (EX_* are >= 64). */
#define CTL_EXIT_VIOLATIONS 1

typedef struct ctl_command ctl_command_t;

typedef struct ctl {
	const char *url;          /* ORDERD_URL / --url */
	const char *token;        /* ORDERD_TOKEN / --token; never printed */
	bool json;                /* --json: print the server's bodies */
	long timeout_s;           /* --timeout: per request */
	const ctl_command_t *cmd; /* the command being run, for its usage */
	client_t *client;         /* created on first use by ctl_request */
} ctl_t;

struct ctl_command {
	const char *name;
	int (*run)(ctl_t *ctl, int argc, char **argv);
	const char *synopsis; /* lines after "usage: orderctl " */
	const char *help;     /* what it does, and its own options */
};

/* Long-option values of the common options (beyond any char). */
enum {
	CTL_OPT_URL = 0x100,
	CTL_OPT_TOKEN,
	CTL_OPT_JSON,
	CTL_OPT_TIMEOUT,
	CTL_OPT_HELP,
	CTL_OPT_FIRST_FREE /* commands number their own options from here */
};

#define CTL_COMMON_OPTIONS                                                     \
	{"url", required_argument, NULL, CTL_OPT_URL},                         \
	    {"token", required_argument, NULL, CTL_OPT_TOKEN},                 \
	    {"json", no_argument, NULL, CTL_OPT_JSON},                         \
	    {"timeout", required_argument, NULL, CTL_OPT_TIMEOUT},             \
	{                                                                      \
		"help", no_argument, NULL, CTL_OPT_HELP                        \
	}

/*
 * Handles option c (a value returned by getopt_long) when it is one of the
 * common options. Returns 0 when handled, CTL_DONE for --help (the usage
 * was printed: exit 0), or EX_USAGE (a message was printed).
 */
int ctl_common_option(ctl_t *ctl, int c, const char *arg);

/*
 * Runs getopt_long over argv (argv[0] is the command name) with opts, which
 * must include CTL_COMMON_OPTIONS; on_opt (may be NULL) gets the command's
 * own options and returns 0 or an exit code. Afterwards the positional
 * arguments are argv[optind..argc). Returns 0 to go on, CTL_DONE after
 * --help (exit 0), or an exit code.
 */
#define CTL_DONE (-1)
typedef int (*ctl_option_fn)(ctl_t *ctl, void *arg, int c, const char *optarg);
int ctl_getopt(ctl_t *ctl, int argc, char **argv, const struct option *opts,
               ctl_option_fn on_opt, void *arg);
/* The exit status for a ctl_getopt result other than 0. */
#define CTL_EXIT(rc) ((rc) == CTL_DONE ? EX_OK : (rc))

/* Prints "orderctl: CMD: <msg>" and the command's usage to stderr;
 * returns EX_USAGE. */
int ctl_usage_error(const ctl_t *ctl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parses s as an integer in [min, max]; 0 or -EINVAL. */
int ctl_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret);
/* Checks an identifier argument (order id, sku, lock name, owner); prints
 * the usage error and returns EX_USAGE when it is not valid, else 0. */
int ctl_check_ident(const ctl_t *ctl, const char *what, const char *s);

/*
 * Sends one request (see client_request) and, when the server answered
 * 2xx, parses a non-empty body into *ret_json (new reference, the caller
 * decrefs; NULL for an empty body). Returns 0 on 2xx, else the exit code
 * after printing "orderctl: <what>: <message> (<code>)" to stderr.
 * With --json, a 2xx body is printed to stdout as is before returning.
 */
int ctl_call(ctl_t *ctl, const char *what, const char *method, const char *path,
             const json_t *body, long extra_timeout_ms, json_t **ret_json);

/*
 * Pages through a list route from cursor (NULL: the start): path already
 * holds its query ("...?limit=N");
 * each page's array under key goes to show (first true for the first page)
 * unless --json printed the page. With all, follows next_cursor to the end;
 * otherwise a further page is announced on stderr. Returns the exit code.
 */
typedef void (*ctl_page_fn)(const json_t *items, bool first);
int ctl_pages(ctl_t *ctl, const char *what, const char *path, const char *key,
              const char *cursor, bool all, ctl_page_fn show);

/* The paging options of the list commands, numbered after the common ones:
 * a command that takes them numbers its own options from CTL_OPT_PAGE_FREE. */
enum {
	CTL_OPT_LIMIT = CTL_OPT_FIRST_FREE,
	CTL_OPT_CURSOR,
	CTL_OPT_ALL,
	CTL_OPT_PAGE_FREE
};
#define CTL_PAGE_OPTIONS                                                       \
	{"limit", required_argument, NULL, CTL_OPT_LIMIT},                     \
	    {"cursor", required_argument, NULL, CTL_OPT_CURSOR},               \
	{                                                                      \
		"all", no_argument, NULL, CTL_OPT_ALL                          \
	}
#define CTL_PAGE_LIMIT_DEFAULT 100 /* API: limit 1..1000, default 100 */
#define CTL_PAGE_LIMIT_MAX 1000

typedef struct ctl_page_args {
	const char *cursor; /* --cursor; NULL: from the start */
	int64_t limit;      /* --limit; CTL_PAGE_LIMIT_DEFAULT when not given */
	bool all;           /* --all */
} ctl_page_args_t;
#define CTL_PAGE_ARGS_INIT                                                     \
	{                                                                      \
		.limit = CTL_PAGE_LIMIT_DEFAULT                                \
	}

/* A ctl_option_fn for the paging options; arg is a ctl_page_args_t. Any
 * other option is a usage error. */
int ctl_page_option(ctl_t *ctl, void *arg, int c, const char *optarg);

/* The client, created on first use. NULL after printing an error. */
client_t *ctl_client(ctl_t *ctl);

/* The commands (cmd_*.c). Each returns the process exit code. */
int cmd_submit(ctl_t *ctl, int argc, char **argv);
int cmd_get(ctl_t *ctl, int argc, char **argv);
int cmd_list(ctl_t *ctl, int argc, char **argv);
int cmd_requeue(ctl_t *ctl, int argc, char **argv);
int cmd_cancel(ctl_t *ctl, int argc, char **argv);
int cmd_stock(ctl_t *ctl, int argc, char **argv);
int cmd_lock(ctl_t *ctl, int argc, char **argv);
int cmd_failures(ctl_t *ctl, int argc, char **argv);
int cmd_stats(ctl_t *ctl, int argc, char **argv);
int cmd_alerts(ctl_t *ctl, int argc, char **argv);
int cmd_verify(ctl_t *ctl, int argc, char **argv);

#endif
