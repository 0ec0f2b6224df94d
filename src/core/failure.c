/*
 * failure: see failure.h. The fingerprint is a grouping key, not a
 * security boundary: FNV-1a (64 bits) over the normalised text is enough
 * and needs no library.
 */
#include "core/failure.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/order.h"

/* A word is a run of identifier characters (order_ident_char). */
static size_t word_len(const char *s)
{
	size_t n = 0;
	while (s[n] && order_ident_char(s[n]))
		n++;
	return n;
}

static bool has_digit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= '0' && s[i] <= '9')
			return true;
	return false;
}

/* Appends n bytes of s to out[*pos..len-1), cutting at the end. */
static void put(char *out, size_t len, size_t *pos, const char *s, size_t n)
{
	while (n-- > 0 && *pos + 1 < len)
		out[(*pos)++] = *s++;
}

void failure_normalise(const char *reason, char *out, size_t len)
{
	const char *start = reason ? reason : "", *s = start;
	size_t pos = 0;
	while (*s && pos + 1 < len) {
		/* A quote opens quoted text only where a word could start: the
		 * apostrophe of "can't" is part of the text around it, or it
		 * would swallow everything up to the next quote. */
		if ((*s == '\'' || *s == '"') &&
		    (s == start || !order_ident_char(s[-1]))) {
			const char *end = strchr(s + 1, *s);
			if (end) {
				put(out, len, &pos, "'*'", 3);
				s = end + 1;
				continue;
			}
		}
		size_t n = word_len(s);
		if (n == 0) {
			put(out, len, &pos, s, 1);
			s++;
		} else if (has_digit(s, n)) {
			put(out, len, &pos, "#", 1);
			s += n;
		} else {
			put(out, len, &pos, s, n);
			s += n;
		}
	}
	out[pos] = '\0';
}

void failure_fingerprint(const char *reason, char out[FAILURE_FP_LEN + 1])
{
	char norm[1024];
	failure_normalise(reason, norm, sizeof norm);
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const unsigned char *p = (const unsigned char *)norm; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	snprintf(out, FAILURE_FP_LEN + 1, "%016llx", (unsigned long long)h);
}

bool failure_fingerprint_valid(const char *s)
{
	if (!s || strlen(s) != FAILURE_FP_LEN)
		return false;
	for (size_t i = 0; i < FAILURE_FP_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}
