/*
 * api_failures: the dead-letter routes. GET /v1/failures lists failed
 * orders grouped by the fingerprint of their reason (core/failure.h), the
 * largest group first; POST /v1/failures/{fingerprint}/requeue puts every
 * failed order of one group back to pending after the cause was fixed,
 * and answers how many. Both call the store, so both run on the handler
 * pool (the route table marks them). A requeue kicks the workers, so the
 * requeued orders are claimed now rather than at the next poll.
 */
#include "http/api.h"

#include <stdio.h>

#include "core/failure.h"
#include "util/err.h"
#include "util/timefmt.h"

#define FAILURES_LIMIT_MAX 1000
#define FAILURES_LIMIT_DEFAULT 100

static json_t *failure_json(const store_failure_t *f)
{
	char first[TIMEFMT_LEN], last[TIMEFMT_LEN];

	timefmt_rfc3339(f->first_seen, first);
	timefmt_rfc3339(f->last_seen, last);
	return json_pack("{s:s,s:s?,s:I,s:s,s:s}", "fingerprint",
	                 f->fingerprint, "sample_reason", f->sample_reason,
	                 "count", (json_int_t)f->count, "first_seen", first,
	                 "last_seen", last);
}

void api_failures_list(http_req_t *r)
{
	int64_t limit = FAILURES_LIMIT_DEFAULT;
	store_failure_t *fs = NULL;
	size_t n = 0;
	json_t *arr;
	int rc;

	if (api_query_int(r, "limit", 1, FAILURES_LIMIT_MAX, &limit) != 0)
		return;
	rc = store_failures_list(r->srv->deps.store, (size_t)limit, &fs, &n);
	if (rc != 0) {
		api_store_error(r, rc);
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, failure_json(&fs[i]));
	store_failures_free(fs, n);
	api_json(r, 200, json_pack("{s:o}", "failures", arr));
}

void api_failures_requeue(http_req_t *r)
{
	int64_t n = 0;
	int rc;

	if (api_refuse_draining(r))
		return;
	/* Checked here, not left to the store's OD_EINVAL: the answer says
	 * what a fingerprint looks like. */
	if (!r->param_ok || !failure_fingerprint_valid(r->param)) {
		api_error(r, 400, "invalid_request",
		          "fingerprint must be %d characters of [0-9a-f]",
		          FAILURE_FP_LEN);
		return;
	}
	if (api_empty_body(r) != 0)
		return;
	rc = store_failures_requeue(r->srv->deps.store, r->param, &n);
	if (rc != 0) {
		api_store_error(r, rc);
		return;
	}
	if (n > 0 && r->srv->deps.workers != NULL)
		workers_kick(r->srv->deps.workers);
	api_json(r, 200,
	         json_pack("{s:s,s:I}", "fingerprint", r->param, "requeued",
	                   (json_int_t)n));
}
