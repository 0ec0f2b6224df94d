/*
 * log: structured JSON lines on stderr (see log.h). jansson builds and
 * encodes each line, so quoting and escaping are always right; values that
 * are not valid UTF-8 are repaired first (jansson rejects them) and long
 * values are truncated, so a line stays bounded. The level is an atomic so
 * log_enabled() is cheap; the replica id and the write itself sit under
 * log_lock so that a line that needs several write(2) calls (partial write,
 * EINTR) is still never interleaved with another thread's line.
 */
#include "obs/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "util/clock.h"
#include "util/err.h"
#include "util/timefmt.h"

#define REPLICA_MAX 128
#define VALUE_MAX 4096 /* bytes per field value; longer ones are cut */
#define FIELDS_MAX 32  /* key/value pairs per line */

static _Atomic int cur_level = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char replica[REPLICA_MAX]; /* log_lock; "" = unset */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *name, log_level_t *ret)
{
	if (!name)
		return OD_EINVAL;
	for (int i = LOG_DEBUG; i <= LOG_ERROR; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*ret = (log_level_t)i;
			return 0;
		}
	}
	return OD_EINVAL;
}

void log_set_level(log_level_t level)
{
	atomic_store(&cur_level, (int)level);
}

void log_set_replica(const char *id)
{
	pthread_mutex_lock(&log_lock);
	if (id)
		snprintf(replica, sizeof replica, "%s", id);
	else
		replica[0] = '\0';
	pthread_mutex_unlock(&log_lock);
}

int log_enabled(log_level_t level)
{
	return (int)level >= atomic_load(&cur_level);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Reject overlong forms, surrogates and values past U+10FFFF. */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * A JSON string for s: invalid UTF-8 bytes become '?', NUL never occurs
 * (C strings) and the value is cut at VALUE_MAX bytes on a character
 * boundary. NULL gives JSON null. Returns a new reference or NULL.
 */
static json_t *log_value(const char *s)
{
	if (!s)
		return json_null();
	size_t n = strlen(s);
	if (n <= VALUE_MAX) {
		json_t *j = json_stringn(s, n);
		if (j)
			return j;
	}
	char buf[VALUE_MAX];
	size_t out = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (n > 0) {
		size_t len = utf8_seq(p, n);
		size_t take = len ? len : 1;
		if (out + take > sizeof buf)
			break;
		if (len)
			memcpy(buf + out, p, len);
		else
			buf[out] = '?';
		out += take;
		p += take;
		n -= take;
	}
	return json_stringn(buf, out);
}

/* Writes all of buf, retrying partial writes and EINTR; gives up on error
 * since there is nowhere left to report a failure to log. */
static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void emit(const char *line, size_t len)
{
	pthread_mutex_lock(&log_lock);
	write_all(STDERR_FILENO, line, len);
	pthread_mutex_unlock(&log_lock);
}

/* Adds key unless already present: the fixed fields cannot be overwritten. */
static void set_field(json_t *obj, const char *key, json_t *val)
{
	if (!val)
		return;
	if (json_object_get(obj, key) || json_object_set_new(obj, key, val))
		json_decref(val);
}

void log_msg(log_level_t level, const char *msg, ...)
{
	if (!log_enabled(level))
		return;
	if ((int)level < LOG_DEBUG || (int)level > LOG_ERROR)
		level = LOG_ERROR;

	char ts[TIMEFMT_LEN];
	timefmt_rfc3339(clock_wall_ms(), ts);
	char rep[REPLICA_MAX];
	pthread_mutex_lock(&log_lock);
	memcpy(rep, replica, sizeof rep);
	pthread_mutex_unlock(&log_lock);

	json_t *obj = json_object();
	if (!obj)
		goto fallback;
	set_field(obj, "ts", json_string(ts));
	set_field(obj, "level", json_string(level_names[level]));
	set_field(obj, "msg", log_value(msg));
	if (rep[0])
		set_field(obj, "replica", log_value(rep));

	va_list ap;
	va_start(ap, msg);
	for (int i = 0; i < FIELDS_MAX; i++) {
		const char *key = va_arg(ap, const char *);
		if (!key)
			break;
		const char *val = va_arg(ap, const char *);
		/* Keys are literals in our code, but stay safe regardless. */
		json_t *k = log_value(key);
		if (k && json_is_string(k))
			set_field(obj, json_string_value(k), log_value(val));
		json_decref(k);
	}
	va_end(ap);

	char *line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (!line)
		goto fallback;
	size_t len = strlen(line);
	/* json_dumps leaves no room for the newline; one realloc adds it so
	 * the line still goes out in a single write(2). */
	char *nl = realloc(line, len + 2);
	if (!nl) {
		free(line);
		goto fallback;
	}
	nl[len] = '\n';
	nl[len + 1] = '\0';
	emit(nl, len + 1);
	free(nl);
	return;

fallback:;
	/* Out of memory: still say something, as a valid JSON line. */
	static const char oom[] = "{\"level\":\"error\",\"msg\":\"log line "
	                          "dropped: out of memory\"}\n";
	emit(oom, sizeof oom - 1);
}
