/*
 * notify_body: the bytes of a notification and their signature (see
 * notify_body.h). JSON_SORT_KEYS | JSON_COMPACT makes the body a function
 * of the stored event alone; the signature is libcrypto's HMAC, never
 * hand-rolled.
 */
#include "work/notify_body.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "core/order.h"
#include "util/err.h"
#include "util/timefmt.h"

int notify_body(const store_notification_t *n, char **ret_body, size_t *ret_len)
{
	char id[STORE_NOTIFY_ID_MAX + 1], created[TIMEFMT_LEN];
	store_notify_id(n->seq, id);
	timefmt_rfc3339(n->created_at, created);
	json_t *order = order_to_json(&n->order);
	if (!order)
		return OD_EINTERNAL;
	/* "o" steals order even when json_pack fails. */
	json_t *body =
	    json_pack("{s:s, s:s, s:s, s:o}", "id", id, "type", n->type,
	              "created_at", created, "order", order);
	if (!body)
		return -ENOMEM;
	char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(body);
	if (!text)
		return -ENOMEM;
	*ret_body = text;
	*ret_len = strlen(text);
	return 0;
}

/* Appends "sha256=<hex>" of body under key to out (room checked by the
 * caller: NOTIFY_SIG_MAX holds two). */
static int sign_one(const char *body, size_t len, const char *key, char *out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	if (!HMAC(EVP_sha256(), key, (int)strlen(key),
	          (const unsigned char *)body, len, mac, &mac_len) ||
	    mac_len != 32)
		return OD_EINTERNAL;
	static const char hex[] = "0123456789abcdef";
	memcpy(out, "sha256=", 7);
	for (unsigned int i = 0; i < mac_len; i++) {
		out[7 + 2 * i] = hex[mac[i] >> 4];
		out[8 + 2 * i] = hex[mac[i] & 15];
	}
	out[7 + 2 * mac_len] = '\0';
	return 0;
}

int notify_sign(const char *body, size_t len, const char *secret,
                const char *previous, char buf[NOTIFY_SIG_MAX])
{
	int rc = sign_one(body, len, secret, buf);
	if (rc < 0 || !previous)
		return rc;
	size_t at = strlen(buf);
	buf[at] = ',';
	return sign_one(body, len, previous, buf + at + 1);
}
