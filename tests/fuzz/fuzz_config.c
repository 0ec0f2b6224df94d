/*
 * fuzz_config: libFuzzer target for the daemon's command line and its
 * settings table (config.c, config_checks.c, config_notify.c,
 * config_tokens.c). The input is argv[1..], split at NUL bytes (at most 32
 * arguments), with an empty environment. config_load must return 0 or
 * OD_ECONFIG with a message, never leak, and never echo the value of a
 * secret setting (--api-tokens, --notify-secret, --notify-secret-previous)
 * in its message unless another argument holds the same text. Arguments naming
 * a file are dropped: a fuzzer must not open whatever path it invents (a FIFO
 * would hang it); fuzz_config_files covers the files' contents.
 *
 * fuzz-sources: src/orderd/config.c src/orderd/config_tokens.c
 * fuzz-sources: src/orderd/config_notify.c src/orderd/config_checks.c
 * fuzz-sources: src/core/order.c src/obs/log.c src/util/err.c
 * fuzz-sources: src/util/timefmt.c src/util/jsonx.c src/util/buf.c
 * fuzz-sources: src/util/clock.c
 * fuzz-libs: jansson
 * fuzz-max-len: 2048
 */
#include <assert.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orderd/config.h"
#include "util/err.h"

#define MAX_ARGS 32

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* --help and --config-doc print; the settings come from argv only. */
	if (!freopen("/dev/null", "w", stdout) ||
	    !freopen("/dev/null", "r", stdin))
		abort();
	clearenv();
	return 0;
}

/* The secret value an argument sets ("--notify-secret=X" gives X), or
 * NULL. */
static const char *secret_of(const char *a)
{
	static const char *const flags[] = {"--api-tokens=", "--notify-secret=",
	                                    "--notify-secret-previous=", NULL};
	for (const char *const *f = flags; *f; f++)
		if (strncmp(a, *f, strlen(*f)) == 0)
			return a + strlen(*f);
	return NULL;
}

/* Secrets checked for: 8+ letters and digits, so a match in the message
 * cannot be made of the message's own quotes and blanks around other
 * text. */
static bool distinctive(const char *v)
{
	size_t n = 0;
	for (; v[n]; n++)
		if (!isalnum((unsigned char)v[n]))
			return false;
	return n >= 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[MAX_ARGS + 2] = {"orderd"};
	char err[512];
	int argc = 1, exit_now = -1, rc;
	config_t c;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (char *p = buf; p <= buf + size && argc <= MAX_ARGS;
	     p += strlen(p) + 1) {
		if (strstr(p, "file"))
			goto out;
		argv[argc++] = p;
	}
	argv[argc] = NULL;
	err[0] = '\0';
	rc = config_load(&c, argc, argv, &exit_now, err, sizeof err);
	if (rc != 0) {
		assert(rc == OD_ECONFIG);
		assert(err[0] != '\0');
		for (int i = 1; i < argc; i++) {
			const char *v = secret_of(argv[i]);
			if (!v || !distinctive(v) || !strstr(err, v))
				continue;
			/* Shown only if another argument holds it too. */
			bool elsewhere = false;
			for (int k = 1; k < argc; k++)
				elsewhere =
				    elsewhere || (k != i && strstr(argv[k], v));
			assert(elsewhere);
		}
		goto out;
	}
	assert(exit_now == 0 || exit_now == 1);
	config_free(&c);
out:
	free(buf);
	return 0;
}
