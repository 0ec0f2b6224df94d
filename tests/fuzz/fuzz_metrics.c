/*
 * fuzz_metrics: libFuzzer target for the Prometheus text exposition
 * (obs/metrics.c): label value escaping and number formatting. The input
 * is two label values (split at the first NUL) and, from its last eight
 * bytes, a gauge value. The rendered text must be well-formed exposition
 * format 0.0.4: every sample on one line, each label value a quoted string
 * whose unescaping (\\, \" and \n, the only escapes the format has) gives
 * back the value exactly, valid UTF-8 whenever the values are, and the
 * sample value reads back to the gauge's double.
 *
 * fuzz-sources: src/obs/metrics.c src/util/buf.c src/util/err.c
 * fuzz-libs: jansson
 * fuzz-max-len: 1024
 */
#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "obs/metrics.h"

static bool utf8_valid(const char *s)
{
	json_t *j = json_string(s); /* jansson validates UTF-8 */
	bool ok = j != NULL;
	json_decref(j);
	return ok;
}

/* Reads a quoted label value at *p (after the opening quote) into out,
 * undoing the escapes; leaves *p after the closing quote. */
static void unescape(const char **p, char *out)
{
	const char *s = *p;
	size_t n = 0;
	for (; *s != '"'; s++) {
		assert(*s != '\0' && *s != '\n'); /* unterminated or split */
		if (*s == '\\') {
			s++;
			assert(*s == '\\' || *s == '"' || *s == 'n');
			out[n++] = *s == 'n' ? '\n' : *s;
		} else {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
	*p = s + 1;
}

static const char *expect(const char *p, const char *lit)
{
	assert(strncmp(p, lit, strlen(lit)) == 0);
	return p + strlen(lit);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const labels[] = {"a", "b", NULL};
	char *v1 = malloc(size + 1), *v2, *text = NULL, *got = NULL, *end;
	const char *p;
	double g = 0;
	size_t n1;

	if (!v1)
		return 0;
	memcpy(v1, data, size);
	v1[size] = '\0';
	n1 = strlen(v1);
	v2 = n1 < size ? v1 + n1 + 1 : v1 + size;
	if (size >= sizeof g)
		memcpy(&g, data + size - sizeof g, sizeof g);

	metric_family_t *f =
	    metrics_family(METRIC_GAUGE, "fz", "help", labels, NULL, 0);
	if (!f)
		goto out;
	metrics_set(metrics_child2(f, v1, v2), g);
	text = metrics_render();
	got = malloc(size + 1);
	if (!text || !got)
		goto out;
	if (utf8_valid(v1) && utf8_valid(v2))
		assert(utf8_valid(text));

	p = expect(text, "# HELP fz help\n# TYPE fz gauge\n");
	p = expect(p, "fz{a=\"");
	unescape(&p, got);
	assert(strcmp(got, v1) == 0);
	p = expect(p, ",b=\"");
	unescape(&p, got);
	assert(strcmp(got, v2) == 0);
	p = expect(p, "} ");
	if (isnan(g)) {
		p = expect(p, "NaN");
	} else if (isinf(g)) {
		p = expect(p, g > 0 ? "+Inf" : "-Inf");
	} else {
		double back = strtod(p, &end);
		assert(end != p && back == g);
		p = end;
	}
	p = expect(p, "\n");
	assert(*p == '\0');
out:
	free(got);
	free(text);
	metrics_reset();
	free(v1);
	return 0;
}
