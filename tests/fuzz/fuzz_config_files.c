/*
 * fuzz_config_files: libFuzzer target for the daemon's two secret files,
 * ORDERD_API_TOKENS_FILE (config_tokens.c, one token per line, '#'
 * comments) and ORDERD_NOTIFY_SECRET_FILE (config_notify.c, line 1 the
 * secret, line 2 the previous one). The input is the file's bytes, in a
 * memfd read through /proc/self/fd. Invariants: the tokens are exactly the
 * file's trimmed non-empty non-comment lines, in order, each 1..256 bytes
 * of printable ASCII, or the load fails with a message; the secrets are
 * exactly the file's first two lines and pass the secret rule, or the load
 * fails; no message shows a secret.
 *
 * fuzz-sources: src/orderd/config.c src/orderd/config_tokens.c
 * fuzz-sources: src/orderd/config_notify.c src/orderd/config_checks.c
 * fuzz-sources: src/core/order.c src/obs/log.c src/util/err.c
 * fuzz-sources: src/util/timefmt.c src/util/jsonx.c src/util/buf.c
 * fuzz-sources: src/util/clock.c
 * fuzz-libs: jansson
 * fuzz-max-len: 4096
 */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "orderd/config.h"
#include "orderd/config_int.h"
#include "util/err.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fd = memfd_create("fuzz_config_files", MFD_CLOEXEC);
	assert(fd >= 0);
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	return 0;
}

/* The next line of data without its LF, trimmed as config_tokens.c trims
 * (space, tab, CR), into out (cut to outlen - 1 bytes: a long comment line
 * is still a comment) and its whole length into *ret_len; false past the
 * last line. */
static bool line_at(const uint8_t *data, size_t size, size_t *pos, char *out,
                    size_t outlen, size_t *ret_len)
{
	size_t s = *pos, e;
	if (s >= size)
		return false;
	for (e = s; e < size && data[e] != '\n'; e++)
		;
	*pos = e + 1;
	while (s < e && (data[s] == ' ' || data[s] == '\t' || data[s] == '\r'))
		s++;
	while (e > s && (data[e - 1] == ' ' || data[e - 1] == '\t' ||
	                 data[e - 1] == '\r'))
		e--;
	*ret_len = e - s;
	if (e - s > outlen - 1)
		e = s + outlen - 1;
	memcpy(out, data + s, e - s);
	out[e - s] = '\0';
	return true;
}

static void check_message(const char *err)
{
	assert(err[0] != '\0');
	for (const char *p = err; *p; p++)
		assert((unsigned char)*p >= 0x20 && *p != 0x7f);
}

static void check_tokens(const uint8_t *data, size_t size)
{
	char **tokens = NULL, err[512], want[300];
	size_t pos = 0, n = 0, len;
	int rc;

	err[0] = '\0';
	rc = config_tokens_load(NULL, "list", path, "file", &tokens, err,
	                        sizeof err);
	if (rc != 0) {
		assert(rc == OD_ECONFIG);
		check_message(err);
		return;
	}
	assert(memchr(data, '\0', size) == NULL);
	while (line_at(data, size, &pos, want, sizeof want, &len)) {
		if (len == 0 || want[0] == '#')
			continue;
		assert(tokens[n] != NULL && len <= 256);
		assert(strcmp(tokens[n], want) == 0);
		for (const char *p = tokens[n]; *p; p++)
			assert(*p >= 0x21 && *p <= 0x7e);
		n++;
	}
	assert(n >= 1 && tokens[n] == NULL);
	for (size_t i = 0; i < n; i++)
		free(tokens[i]);
	free(tokens);
}

/* The file's line k (0-based) up to CR or LF, as config_notify.c reads it;
 * NULL when missing or empty. Returns malloc'd text; *ret_nul says whether
 * the line's bytes hold a NUL (which would cut the C string short). */
static char *raw_line(const uint8_t *data, size_t size, int k, bool *ret_nul)
{
	size_t s = 0, e;
	for (int i = 0; i < k; i++) {
		while (s < size && data[s] != '\n')
			s++;
		if (s >= size)
			return NULL;
		s++;
	}
	for (e = s; e < size && data[e] != '\n' && data[e] != '\r'; e++)
		;
	*ret_nul = memchr(data + s, '\0', e - s) != NULL;
	return e > s ? strndup((const char *)data + s, e - s) : NULL;
}

static void check_secrets(const uint8_t *data, size_t size)
{
	config_t c;
	char err[512];
	int rc;

	memset(&c, 0, sizeof c);
	c.notify_secret_file = strdup(path);
	if (!c.notify_secret_file)
		return;
	err[0] = '\0';
	rc = config_notify_load(&c, err, sizeof err);
	bool nul1 = false, nul2 = false;
	char *l1 = raw_line(data, size, 0, &nul1);
	char *l2 = raw_line(data, size, 1, &nul2);
	if (rc != 0) {
		assert(rc == OD_ECONFIG);
		check_message(err);
		/* Messages never show a secret. */
		assert(!l1 || strlen(l1) < 8 || !strstr(err, l1));
		assert(!l2 || strlen(l2) < 8 || !strstr(err, l2));
	} else {
		/* What was read is what the file holds, byte for byte. */
		assert(l1 && !nul1 && c.notify_secret &&
		       strcmp(l1, c.notify_secret) == 0);
		assert(!nul2);
		if (l2)
			assert(c.notify_secret_previous &&
			       strcmp(l2, c.notify_secret_previous) == 0);
		else
			assert(c.notify_secret_previous == NULL);
	}
	free(l1);
	free(l2);
	free(c.notify_secret);
	free(c.notify_secret_previous);
	free(c.notify_secret_file);
	free(c.notify_url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		return 0;
	check_tokens(data, size);
	check_secrets(data, size);
	return 0;
}
