/* Unit tests for obs/log: captured stderr holds one JSON object per line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>

#include "obs/log.h"
#include "util/err.h"
#include "util/timefmt.h"

#define CAPTURE_MAX (1 << 20)

static int saved_stderr = -1;
static FILE *capture;

/* Points fd 2 at a temporary file until capture_end(). */
static void capture_begin(void)
{
	capture = tmpfile();
	assert_non_null(capture);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
}

/* Restores stderr and returns what was written (caller frees). */
static char *capture_end(void)
{
	assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
	close(saved_stderr);
	char *buf = malloc(CAPTURE_MAX + 1);
	assert_non_null(buf);
	rewind(capture);
	size_t n = fread(buf, 1, CAPTURE_MAX, capture);
	buf[n] = '\0';
	fclose(capture);
	return buf;
}

/* Splits out into lines, each parsed as a JSON object; returns the count. */
static size_t parse_lines(char *out, json_t **objs, size_t max)
{
	size_t n = 0;
	assert_true(out[0] == '\0' || out[strlen(out) - 1] == '\n');
	for (char *line = out; *line;) {
		char *nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		assert_true(n < max);
		json_error_t e;
		objs[n] = json_loads(line, JSON_REJECT_DUPLICATES, &e);
		if (!objs[n])
			fail_msg("not JSON: %s (%s)", line, e.text);
		assert_true(json_is_object(objs[n]));
		n++;
		line = nl + 1;
	}
	return n;
}

static void free_objs(json_t **objs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(objs[i]);
}

static const char *str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	assert_non_null(v);
	assert_true(json_is_string(v));
	return json_string_value(v);
}

static int setup(void **state)
{
	log_set_level(LOG_INFO);
	log_set_replica(NULL);
	return 0;
}

static void test_fields(void **state)
{
	log_set_replica("r-1");
	capture_begin();
	log_info("order failed", "order_id", "o-1", "error", "boom", NULL);
	char *out = capture_end();
	/* Fixed fields come first, in this order. */
	assert_memory_equal(out, "{\"ts\":\"", 7);
	json_t *objs[4];
	assert_int_equal(parse_lines(out, objs, 4), 1);
	const char *ts = str(objs[0], "ts");
	assert_int_equal(strlen(ts), TIMEFMT_LEN - 1);
	assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' &&
	            ts[23] == 'Z');
	assert_string_equal(str(objs[0], "level"), "info");
	assert_string_equal(str(objs[0], "msg"), "order failed");
	assert_string_equal(str(objs[0], "replica"), "r-1");
	assert_string_equal(str(objs[0], "order_id"), "o-1");
	assert_string_equal(str(objs[0], "error"), "boom");
	assert_int_equal(json_object_size(objs[0]), 6);
	free_objs(objs, 1);
	free(out);
}

static void test_levels(void **state)
{
	log_level_t l = LOG_DEBUG;
	assert_int_equal(log_level_parse("warn", &l), 0);
	assert_int_equal(l, LOG_WARN);
	assert_int_equal(log_level_parse("loud", &l), OD_EINVAL);
	assert_int_equal(log_level_parse(NULL, &l), OD_EINVAL);
	assert_int_equal(l, LOG_WARN);

	log_set_level(LOG_WARN);
	assert_false(log_enabled(LOG_INFO));
	assert_true(log_enabled(LOG_ERROR));
	capture_begin();
	log_debug("d", NULL);
	log_info("i", NULL);
	log_warn("w", NULL);
	log_error("e", NULL);
	char *out = capture_end();
	json_t *objs[8];
	assert_int_equal(parse_lines(out, objs, 8), 2);
	assert_string_equal(str(objs[0], "level"), "warn");
	assert_string_equal(str(objs[0], "msg"), "w");
	assert_string_equal(str(objs[1], "level"), "error");
	assert_null(json_object_get(objs[1], "replica"));
	free_objs(objs, 2);
	free(out);

	log_set_level(LOG_DEBUG);
	capture_begin();
	log_debug("d", NULL);
	out = capture_end();
	assert_int_equal(parse_lines(out, objs, 8), 1);
	assert_string_equal(str(objs[0], "level"), "debug");
	free_objs(objs, 1);
	free(out);
}

static void test_escaping_and_nulls(void **state)
{
	capture_begin();
	log_info("quote \" backslash \\ newline \n tab \t end", "k", NULL,
	         "bad_utf8",
	         "a\xff\xfe"
	         "b",
	         "ctl", "\x01", NULL);
	log_info(NULL, "msg", "cannot overwrite", NULL);
	char *out = capture_end();
	json_t *objs[4];
	assert_int_equal(parse_lines(out, objs, 4), 2);
	assert_string_equal(str(objs[0], "msg"),
	                    "quote \" backslash \\ newline \n tab \t end");
	assert_true(json_is_null(json_object_get(objs[0], "k")));
	assert_string_equal(str(objs[0], "bad_utf8"), "a??b");
	assert_string_equal(str(objs[0], "ctl"), "\x01");
	assert_true(json_is_null(json_object_get(objs[1], "msg")));
	free_objs(objs, 2);
	free(out);
}

static void test_long_value_is_bounded(void **state)
{
	size_t n = 100000;
	char *big = malloc(n + 1);
	assert_non_null(big);
	memset(big, 'x', n);
	big[n] = '\0';
	capture_begin();
	log_info("big", "v", big, NULL);
	char *out = capture_end();
	json_t *objs[2];
	assert_int_equal(parse_lines(out, objs, 2), 1);
	size_t len = strlen(str(objs[0], "v"));
	assert_true(len > 0 && len <= 4096);
	free_objs(objs, 1);
	free(out);
	free(big);
}

#define THREADS 4
#define LINES 500

static void *logger(void *p)
{
	for (int i = 0; i < LINES; i++)
		log_info("concurrent line with some padding to make it longer",
		         "thread", (const char *)p, NULL);
	return NULL;
}

static void test_concurrent_lines_whole(void **state)
{
	static const char *names[THREADS] = {"a", "b", "c", "d"};
	capture_begin();
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(
		    pthread_create(&t[i], NULL, logger, (void *)names[i]), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	char *out = capture_end();
	static json_t *objs[THREADS * LINES];
	assert_int_equal(parse_lines(out, objs, THREADS * LINES),
	                 THREADS * LINES);
	free_objs(objs, THREADS * LINES);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_fields, setup),
	    cmocka_unit_test_setup(test_levels, setup),
	    cmocka_unit_test_setup(test_escaping_and_nulls, setup),
	    cmocka_unit_test_setup(test_long_value_is_bounded, setup),
	    cmocka_unit_test_setup(test_concurrent_lines_whole, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
