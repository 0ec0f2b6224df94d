/*
 * config_notify: the cross rules of the notification settings. The URL
 * list is checked entry by entry (config_notify_url_check, the table's
 * check); the secrets come from ORDERD_NOTIFY_SECRET and
 * ORDERD_NOTIFY_SECRET_PREVIOUS or from ORDERD_NOTIFY_SECRET_FILE (line 1
 * the secret, line 2 the previous one), never both; and a URL without a
 * secret is a configuration error: unsigned notifications would let
 * anyone who can reach a receiver forge them. Messages never show a
 * secret.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orderd/config.h"
#include "orderd/config_int.h"
#include "util/err.h"

#define NOTIFY_URLS_MAX 8   /* endpoints (work/notifier.h agrees) */
#define NOTIFY_URL_LEN 1024 /* bytes per endpoint */
#define SECRET_MIN 16       /* bytes: a guessable key signs nothing */
#define SECRET_MAX 4096
#define SECRET_FILE_MAX 16384 /* bytes read from the secret file */

const char *config_notify_url_check(const char *v)
{
	static const char rule[] =
	    "must be 1..8 comma-separated http:// or https:// URLs of at most "
	    "1024 bytes, without spaces or duplicates";
	const char *p = v;
	const char *seen[NOTIFY_URLS_MAX];
	size_t seen_len[NOTIFY_URLS_MAX];
	size_t n = 0;
	if (!*v)
		return NULL; /* empty: none */
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (n == NOTIFY_URLS_MAX || len > NOTIFY_URL_LEN)
			return rule;
		bool http = len > 7 && strncmp(p, "http://", 7) == 0;
		bool https = len > 8 && strncmp(p, "https://", 8) == 0;
		if (!http && !https)
			return rule;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)p[i] <= 0x20 ||
			    (unsigned char)p[i] >= 0x7f)
				return rule;
		for (size_t i = 0; i < n; i++)
			if (seen_len[i] == len && memcmp(seen[i], p, len) == 0)
				return rule;
		seen[n] = p;
		seen_len[n++] = len;
		if (!end)
			return NULL;
		p = end + 1;
	}
}

int config_read_small_file(const char *path, char **ret, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char *buf = malloc(SECRET_FILE_MAX + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + len, SECRET_FILE_MAX - len);
		if (r < 0) {
			int e = errno;
			close(fd);
			free(buf);
			return -e;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len == SECRET_FILE_MAX) {
			close(fd);
			free(buf);
			return OD_ETOOBIG;
		}
	}
	close(fd);
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* Line k (0-based) of text without its CR/LF into a malloc'd *ret, or
 * NULL when the file has no such non-empty line. */
static int line_of(const char *text, int k, char **ret)
{
	const char *p = text;
	for (int i = 0; i < k && p; i++) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	*ret = NULL;
	if (!p || !*p)
		return 0;
	size_t len = strcspn(p, "\r\n");
	if (len == 0)
		return 0;
	*ret = strndup(p, len);
	return *ret ? 0 : -ENOMEM;
}

static int secret_check(const char *s, const char *from, char *err,
                        size_t errlen)
{
	size_t len = strlen(s);
	if (len < SECRET_MIN || len > SECRET_MAX)
		return config_fail(err, errlen,
		                   "%s: must be %d..%d bytes (the value is not "
		                   "shown)",
		                   from, SECRET_MIN, SECRET_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return config_fail(
			    err, errlen,
			    "%s: must not contain control "
			    "characters (the value is not shown)",
			    from);
	return 0;
}

/* An empty string is the same as unset. */
static void empty_is_unset(char **v)
{
	if (*v && !**v) {
		free(*v);
		*v = NULL;
	}
}

int config_notify_load(struct config *c, char *err, size_t errlen)
{
	empty_is_unset(&c->notify_url);
	empty_is_unset(&c->notify_secret);
	empty_is_unset(&c->notify_secret_file);
	empty_is_unset(&c->notify_secret_previous);
	if (c->notify_secret_file) {
		if (c->notify_secret || c->notify_secret_previous)
			return config_fail(err, errlen,
			                   "ORDERD_NOTIFY_SECRET_FILE: give "
			                   "the secrets either "
			                   "in the file or in "
			                   "ORDERD_NOTIFY_SECRET[_PREVIOUS], "
			                   "not both");
		char *text = NULL;
		size_t len = 0;
		int rc =
		    config_read_small_file(c->notify_secret_file, &text, &len);
		if (rc < 0)
			return config_fail(err, errlen,
			                   "ORDERD_NOTIFY_SECRET_FILE: cannot "
			                   "read \"%.200s\": %s",
			                   c->notify_secret_file, err_str(rc));
		/* A NUL would end the text early: the secret cut short and
		 * the previous one dropped, silently (found by
		 * fuzz_config_files). The token file refuses it too. */
		bool nul = memchr(text, '\0', len) != NULL;
		if (!nul)
			rc = line_of(text, 0, &c->notify_secret);
		if (!nul && rc == 0)
			rc = line_of(text, 1, &c->notify_secret_previous);
		/* The file's bytes are a secret: wipe them all before free. */
		explicit_bzero(text, len);
		free(text);
		if (nul)
			return config_fail(
			    err, errlen,
			    "ORDERD_NOTIFY_SECRET_FILE: \"%.200s\" "
			    "contains a NUL byte",
			    c->notify_secret_file);
		if (rc < 0)
			return config_fail(err, errlen,
			                   "ORDERD_NOTIFY_SECRET_FILE: out of "
			                   "memory");
		if (!c->notify_secret)
			return config_fail(
			    err, errlen,
			    "ORDERD_NOTIFY_SECRET_FILE: \"%.200s\" "
			    "has no secret on its first line",
			    c->notify_secret_file);
	}
	const char *from = c->notify_secret_file ? "ORDERD_NOTIFY_SECRET_FILE"
	                                         : "ORDERD_NOTIFY_SECRET";
	int rc;
	if (c->notify_secret &&
	    (rc = secret_check(c->notify_secret, from, err, errlen)) < 0)
		return rc;
	if (c->notify_secret_previous &&
	    (rc = secret_check(c->notify_secret_previous,
	                       c->notify_secret_file
	                           ? "ORDERD_NOTIFY_SECRET_FILE (line 2)"
	                           : "ORDERD_NOTIFY_SECRET_PREVIOUS",
	                       err, errlen)) < 0)
		return rc;
	if (c->notify_secret_previous && !c->notify_secret)
		return config_fail(
		    err, errlen,
		    "ORDERD_NOTIFY_SECRET_PREVIOUS: given without "
		    "ORDERD_NOTIFY_SECRET");
	if (c->notify_url && !c->notify_secret)
		return config_fail(
		    err, errlen,
		    "ORDERD_NOTIFY_URL: needs "
		    "ORDERD_NOTIFY_SECRET or "
		    "ORDERD_NOTIFY_SECRET_FILE (notifications are "
		    "always signed)");
	return 0;
}
