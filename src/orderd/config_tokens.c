/*
 * config_tokens: the API bearer tokens, from ORDERD_API_TOKENS (a list) and
 * ORDERD_API_TOKENS_FILE (one per line), validated and capped. Fails closed:
 * a setting that is given but yields no token is an error, never "no
 * auth".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orderd/config_int.h"
#include "util/err.h"

#define TOKEN_MAX 256   /* bytes per API token */
#define TOKENS_MAX 1024 /* tokens from the list and the file together */
#define TOKENS_FILE_MAX (1 << 20) /* bytes read from api_tokens_file */

struct tokens {
	char **v;
	size_t n;
};

static bool token_valid(const char *t, size_t n)
{
	if (n < 1 || n > TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (t[i] < 0x21 || t[i] > 0x7e)
			return false;
	return true;
}

/* Trims blanks (space, tab, CR) from both ends of [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t' || **s == '\r')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' ||
	                  (*s)[*n - 1] == '\r'))
		(*n)--;
}

/* Adds one valid token; 0, or OD_ETOOBIG when TOKENS_MAX are there, or
 * -ENOMEM. */
static int tokens_add(struct tokens *t, const char *s, size_t n)
{
	if (t->n >= TOKENS_MAX)
		return OD_ETOOBIG;
	char **nv = realloc(t->v, (t->n + 2) * sizeof *nv);
	if (!nv)
		return -ENOMEM;
	t->v = nv;
	t->v[t->n] = strndup(s, n);
	if (!t->v[t->n])
		return -ENOMEM;
	t->n++;
	t->v[t->n] = NULL;
	return 0;
}

static int tokens_add_fail(int rc, const char *from, char *err, size_t errlen)
{
	if (rc == OD_ETOOBIG)
		return config_fail(err, errlen, "%s: more than %d tokens", from,
		                   TOKENS_MAX);
	return config_fail(err, errlen, "%s: out of memory", from);
}

static int tokens_from_list(struct tokens *t, const char *list,
                            const char *from, char *err, size_t errlen)
{
	size_t entry = 0;
	const char *p = list;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		const char *s = p;
		entry++;
		trim(&s, &n);
		if (n > 0) {
			if (!token_valid(s, n))
				return config_fail(
				    err, errlen,
				    "%s: entry %zu is not a valid token "
				    "(must be 1..%d printable ASCII "
				    "characters without spaces)",
				    from, entry, TOKEN_MAX);
			int rc = tokens_add(t, s, n);
			if (rc)
				return tokens_add_fail(rc, from, err, errlen);
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

static int tokens_from_file(struct tokens *t, const char *path,
                            const char *from, char *err, size_t errlen)
{
	int rc = 0;
	char *buf = NULL;
	FILE *f = fopen(path, "r");
	if (!f)
		return config_fail(err, errlen, "%s: cannot read \"%s\": %s",
		                   from, path, strerror(errno));
	buf = malloc(TOKENS_FILE_MAX + 1);
	if (!buf) {
		rc = config_fail(err, errlen, "%s: out of memory", from);
		goto close_file;
	}
	size_t len = fread(buf, 1, TOKENS_FILE_MAX + 1, f);
	if (ferror(f)) {
		rc = config_fail(err, errlen, "%s: cannot read \"%s\": %s",
		                 from, path, strerror(errno ? errno : EIO));
		goto free_buf;
	}
	if (len > TOKENS_FILE_MAX) {
		rc = config_fail(err, errlen,
		                 "%s: \"%s\" is larger than %d bytes", from,
		                 path, TOKENS_FILE_MAX);
		goto free_buf;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len)) {
		rc = config_fail(err, errlen, "%s: \"%s\" contains a NUL byte",
		                 from, path);
		goto free_buf;
	}
	size_t line = 0;
	const char *p = buf;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		const char *s = p;
		line++;
		trim(&s, &n);
		if (n > 0 && s[0] != '#') {
			if (!token_valid(s, n)) {
				rc = config_fail(
				    err, errlen,
				    "%s: line %zu of \"%s\" is not a "
				    "valid token (must be 1..%d printable "
				    "ASCII characters without spaces)",
				    from, line, path, TOKEN_MAX);
				goto free_buf;
			}
			rc = tokens_add(t, s, n);
			if (rc) {
				rc = tokens_add_fail(rc, from, err, errlen);
				goto free_buf;
			}
		}
		if (!nl)
			break;
		p = nl + 1;
	}
free_buf:
	free(buf);
close_file:
	fclose(f);
	return rc;
}

int config_tokens_load(const char *list, const char *list_from,
                       const char *file, const char *file_from,
                       char ***ret_tokens, char *err, size_t errlen)
{
	struct tokens t = {0};
	int rc = 0;
	if (list && list[0]) {
		rc = tokens_from_list(&t, list, list_from, err, errlen);
		if (rc)
			goto free_tokens;
		if (t.n == 0) {
			/* Fail closed: a non-empty setting that yields no
			 * token must not silently turn authentication off. */
			rc = config_fail(err, errlen,
			                 "%s: no token in the list", list_from);
			goto free_tokens;
		}
	}
	if (file && file[0]) {
		size_t before = t.n;
		rc = tokens_from_file(&t, file, file_from, err, errlen);
		if (rc)
			goto free_tokens;
		if (t.n == before) {
			rc = config_fail(err, errlen, "%s: no token in \"%s\"",
			                 file_from, file);
			goto free_tokens;
		}
	}
	*ret_tokens = t.v;
	return 0;

free_tokens:
	for (size_t i = 0; i < t.n; i++)
		free(t.v[i]);
	free(t.v);
	return rc;
}
