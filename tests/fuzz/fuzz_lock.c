/*
 * fuzz_lock: libFuzzer target for the named-lock request bodies. Bytes go
 * through jsonx_parse_object (the HTTP body reader) and then
 * lock_body_decode as each of acquire, renew and release, exactly as
 * api_locks.c does. A rejected body leaves the output untouched and says
 * why in printable UTF-8; an accepted one holds only allowed fields within
 * the API's bounds, and encoding the decoded struct back to JSON decodes to
 * the same struct.
 *
 * fuzz-sources: src/http/lock_body.c src/http/fields.c src/core/order.c
 * fuzz-sources: src/util/jsonx.c src/util/timefmt.c src/util/err.c
 * fuzz-sources: src/util/buf.c
 * fuzz-libs: jansson
 * fuzz-max-len: 4096
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/order.h"
#include "http/lock_body.h"
#include "util/err.h"
#include "util/jsonx.h"

static void check_message(const char *msg)
{
	json_t *s = json_string(msg); /* NULL on invalid UTF-8 */

	assert(msg[0] != '\0');
	assert(s != NULL);
	json_decref(s);
	for (const char *p = msg; *p; p++)
		assert((unsigned char)*p >= 0x20 && *p != 0x7f);
}

static json_t *encode(lock_body_kind_t kind, const lock_body_t *b)
{
	json_t *j = json_pack("{s:s}", "owner", b->owner);

	if (j == NULL)
		return NULL;
	if (kind != LOCK_BODY_ACQUIRE)
		json_object_set_new(j, "fence", json_integer(b->fence));
	if (kind != LOCK_BODY_RELEASE)
		json_object_set_new(j, "ttl_ms", json_integer(b->ttl_ms));
	if (kind == LOCK_BODY_ACQUIRE && b->wait_ms != 0)
		json_object_set_new(j, "wait_ms", json_integer(b->wait_ms));
	return j;
}

static void one_kind(lock_body_kind_t kind, const json_t *body)
{
	lock_body_t b, again, sentinel;
	char err[256];
	json_t *j;
	int rc;

	memset(&sentinel, 0xa5, sizeof sentinel);
	b = sentinel;
	err[0] = '\0';
	rc = lock_body_decode(kind, body, &b, err, sizeof err);
	if (rc != 0) {
		assert(rc == OD_EINVAL);
		assert(memcmp(&b, &sentinel, sizeof b) == 0);
		check_message(err);
		return;
	}
	assert(order_ident_valid(b.owner, ID_MAX));
	if (kind == LOCK_BODY_RELEASE)
		assert(b.ttl_ms == 0);
	else
		assert(b.ttl_ms >= LOCK_BODY_TTL_MIN &&
		       b.ttl_ms <= LOCK_BODY_TTL_MAX);
	if (kind == LOCK_BODY_ACQUIRE)
		assert(b.fence == 0 && b.wait_ms >= 0 &&
		       b.wait_ms <= LOCK_BODY_WAIT_MS_MAX);
	else
		assert(b.wait_ms == 0 && b.fence >= 0);

	j = encode(kind, &b);
	if (j == NULL)
		return;
	again = sentinel;
	rc = lock_body_decode(kind, j, &again, err, sizeof err);
	assert(rc == 0);
	assert(memcmp(&again, &b, sizeof b) == 0);
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *obj = NULL;

	if (jsonx_parse_object((const char *)data, size, JSONX_MAX_DEPTH, &obj,
	                       NULL, 0) != 0)
		return 0;
	one_kind(LOCK_BODY_ACQUIRE, obj);
	one_kind(LOCK_BODY_RENEW, obj);
	one_kind(LOCK_BODY_RELEASE, obj);
	json_decref(obj);
	return 0;
}
