/*
 * jsonx: strict request-body parsing on top of jansson (see jsonx.h).
 *
 * The depth scan is hand-written because jansson's own nesting cap is a
 * compile-time constant (JSON_PARSER_MAX_DEPTH, 2048) that cannot be set per
 * call, and the API's limit is 32, checked before the recursive parser runs.
 * The same pass rejects NUL bytes and invalid UTF-8 with a position, which
 * jansson would report less clearly.
 */
#include "util/jsonx.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

/*
 * Length of the well-formed UTF-8 sequence at p (at most n bytes available),
 * or 0 when the bytes there are not one. Rejects overlong forms, surrogates
 * and code points above U+10FFFF, as RFC 3629 requires.
 */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	uint32_t min, cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		min = 0x80;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		min = 0x800;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		min = 0x10000;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void jsonx_sanitize_text(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t n = strlen(s);
	size_t i = 0;

	while (i < n) {
		size_t l = utf8_seq_len(p + i, n - i);
		if (l == 0 || (l == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
			p[i] = '?';
			i++;
			continue;
		}
		i += l;
	}
}

static void seterr(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
	jsonx_sanitize_text(errbuf);
}

/*
 * One pass over the raw bytes: NUL and UTF-8 checks everywhere, and the
 * nesting depth of [ and { outside strings. Position is reported as line and
 * column (in characters, 1-based) like jansson does.
 */
static int scan(const unsigned char *p, size_t len, int max_depth, char *errbuf,
                size_t errlen)
{
	bool in_string = false, escaped = false, nonspace = false;
	int depth = 0;
	size_t line = 1, col = 0;

	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		col++;
		if (c == '\0') {
			seterr(errbuf, errlen,
			       "invalid JSON: NUL byte at line %zu column %zu",
			       line, col);
			return OD_EINVAL;
		}
		size_t l = utf8_seq_len(p + i, len - i);
		if (l == 0) {
			seterr(errbuf, errlen,
			       "invalid JSON: invalid UTF-8 byte 0x%02x at "
			       "line %zu column %zu",
			       c, line, col);
			return OD_EINVAL;
		}
		i += l;
		if (l > 1) {
			/* Multi-byte characters never affect structure. */
			escaped = false;
			nonspace = true;
			continue;
		}
		if (c == '\n') {
			line++;
			col = 0;
		}
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			nonspace = true;
		if (in_string) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max_depth) {
				seterr(errbuf, errlen,
				       "JSON nesting deeper than %d",
				       max_depth);
				return OD_EINVAL;
			}
		} else if (c == ']' || c == '}') {
			/* Unbalanced closers are jansson's to report. */
			if (depth > 0)
				depth--;
		}
	}
	if (!nonspace) {
		seterr(errbuf, errlen, "invalid JSON: body is empty");
		return OD_EINVAL;
	}
	return 0;
}

int jsonx_parse_object(const char *buf, size_t len, int max_depth,
                       json_t **ret_obj, char *errbuf, size_t errlen)
{
	json_error_t jerr;
	json_t *j;
	int rc;

	if (!buf)
		len = 0;
	rc = scan((const unsigned char *)(buf ? buf : ""), len, max_depth,
	          errbuf, errlen);
	if (rc < 0)
		return rc;

	/*
	 * No JSON_ALLOW_NUL: "\u0000" in a string is an error. JSON_DECODE_ANY
	 * so that a scalar body parses and meets the one clear "must be a JSON
	 * object" message below instead of jansson's "'[' or '{' expected".
	 */
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	               &jerr);
	if (!j) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		/* jansson's wording names its own flag; say what is wrong. */
		if (json_error_code(&jerr) == json_error_null_character ||
		    json_error_code(&jerr) == json_error_null_byte_in_key)
			seterr(errbuf, errlen,
			       "invalid JSON: strings must not contain NUL "
			       "(\\u0000) at line %d column %d",
			       jerr.line, jerr.column);
		else
			seterr(errbuf, errlen,
			       "invalid JSON: %s at line %d column %d",
			       jerr.text, jerr.line, jerr.column);
		return OD_EINVAL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		seterr(errbuf, errlen, "body must be a JSON object");
		return OD_EINVAL;
	}
	*ret_obj = j;
	return 0;
}
