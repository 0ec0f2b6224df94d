/*
 * store_verify: the audit's catalogue of invariants (store_verify), one
 * list for every backend. A backend runs its query for each check in one
 * snapshot and hands back every offending row in the shape below; this
 * file turns each row into the one-line description, so the words are the
 * same whichever backend found the violation.
 */
#include <stdio.h>

#include "store/store_backend.h"
#include "util/err.h"

/* How each check's row reads; columns are t[0..2] and n[0..2]. */
static void describe(int check, const store_check_row_t *r, char *line,
                     size_t len)
{
	const char *t0 = r->text[0] ? r->text[0] : "(null)";
	const char *t1 = r->text[1] ? r->text[1] : "(null)";
	const char *t2 = r->text[2] ? r->text[2] : "(null)";
	long long n0 = (long long)r->num[0], n1 = (long long)r->num[1],
	          n2 = (long long)r->num[2];
	switch ((store_check_t)check) {
	case CHECK_NEGATIVE_STOCK:
		snprintf(line, len, "product '%s': negative stock %lld", t0,
		         n0);
		return;
	case CHECK_NOT_CONSERVED:
		snprintf(line, len,
		         "product '%s': stock %lld != adjustments %lld -"
		         " reserved %lld",
		         t0, n0, n1, n2);
		return;
	case CHECK_RESERVED_NOT_COMPLETED:
		snprintf(line, len,
		         "order '%s': reservation of sku '%s' but order status"
		         " is %s",
		         t0, t1, t2);
		return;
	case CHECK_RESERVED_NO_ORDER:
		snprintf(
		    line, len,
		    "order '%s': reservation of sku '%s' but no such order", t0,
		    t1);
		return;
	case CHECK_ITEM_NOT_RESERVED:
		snprintf(line, len,
		         "order '%s': completed or held but item sku '%s' qty "
		         "%lld has"
		         " no matching reservation",
		         t0, t1, n0);
		return;
	case CHECK_RESERVATION_NOT_ITEM:
		snprintf(line, len,
		         "order '%s': reservation of sku '%s' qty %lld matches"
		         " no item",
		         t0, t1, n0);
		return;
	case CHECK_FINAL_TWICE:
		snprintf(line, len,
		         "order '%s': reached a final outcome %lld times"
		         " (complete %lld, reject %lld)",
		         t0, n0, n1, n2);
		return;
	case CHECK_COMPLETED_UNLOGGED:
		snprintf(line, len,
		         "order '%s': status completed but no complete event",
		         t0);
		return;
	case CHECK_ORPHAN_RESERVATION:
		snprintf(line, len,
		         "order '%s': reservation of sku '%s' which is no"
		         " product",
		         t0, t1);
		return;
	case CHECK_COUNT_:
		break;
	}
	snprintf(line, len, "check %d: unknown", check);
}

typedef struct audit {
	store_violation_fn fn;
	void *arg;
	size_t violations;
} audit_t;

static void on_row(void *arg, int check, const store_check_row_t *row)
{
	audit_t *a = arg;
	a->violations++;
	if (!a->fn)
		return;
	char line[512];
	describe(check, row, line, sizeof line);
	a->fn(a->arg, line);
}

int store_verify_audit(const store_backend_t *be, void *b,
                       store_violation_fn fn, void *arg, size_t *ret_violations)
{
	audit_t a = {.fn = fn, .arg = arg};
	int rc = be->verify(b, on_row, &a);
	if (rc < 0)
		return rc;
	if (ret_violations)
		*ret_violations = a.violations;
	return 0;
}
