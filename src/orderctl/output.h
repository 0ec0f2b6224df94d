/*
 * output: how orderctl shows things. Human-readable blocks and tables for
 * orders, products, locks and generic JSON; the raw body for --json; error
 * lines "orderctl: <what failed>: <server message> (<code>)" on stderr; and
 * the one mapping from HTTP statuses and transport errors to exit codes.
 */
#ifndef ORDERCTL_OUTPUT_H
#define ORDERCTL_OUTPUT_H

#include <jansson.h>
#include <stdbool.h>

#include "util/buf.h"
#include "orderctl/client.h"

/* Exit code for a non-2xx HTTP status (sysexits.h, see docs/orderctl.md). */
int output_exit_for_status(long status);

/* Prints the server's error for resp to stderr; returns its exit code. */
int output_http_error(const char *what, const client_response_t *resp);
/* Prints a transport error to stderr; returns its exit code. */
int output_transport_error(const char *what, int rc, const char *errbuf);

/* Prints body as one line (trailing whitespace trimmed) to stdout. */
void output_raw(const buf_t *body);

/* The value of key in obj as text for a table cell: strings as they are,
 * numbers printed, null/missing as "-". Returns a pointer into obj or into
 * cell (CELL_LEN bytes). */
#define OUT_CELL_LEN 64
const char *output_cell(const json_t *obj, const char *key,
                        char cell[OUT_CELL_LEN]);

/* An order as an aligned block of "field  value" lines. */
void output_order(const json_t *order);
/* Orders or products as table rows, after a header line when header. */
void output_order_table(const json_t *orders, bool header);
void output_product_table(const json_t *products, bool header);
void output_lock(const json_t *lock);
/* Any JSON value as "path  value" lines (objects flattened with '.',
 * arrays with [i]); for answers whose shape is open, such as stats. */
void output_flat(const json_t *j);

#endif
