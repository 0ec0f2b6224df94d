/* failpoint: see failpoint.h. A tiny fixed table written once at start-up. */
#include "util/failpoint.h"

#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/err.h"

#define FP_MAX 8
#define FP_NAME 32

static struct {
	char name[FP_NAME];
	double value;
} fps[FP_MAX];
static int n_fps;

int failpoint_init(const char *spec)
{
	n_fps = 0;
	if (!spec || !*spec)
		return 0;
	const char *p = spec;
	while (*p) {
		const char *eq = strchr(p, '=');
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		if (!eq || eq > end || eq == p || eq - p >= FP_NAME ||
		    n_fps == FP_MAX)
			goto invalid;
		char num[32];
		size_t len = (size_t)(end - eq - 1);
		if (len == 0 || len >= sizeof num)
			goto invalid;
		memcpy(num, eq + 1, len);
		num[len] = '\0';
		char *stop;
		double v = strtod(num, &stop);
		if (*stop != '\0' || v < 0)
			goto invalid;
		memcpy(fps[n_fps].name, p, (size_t)(eq - p));
		fps[n_fps].name[eq - p] = '\0';
		fps[n_fps].value = v;
		n_fps++;
		p = *end ? end + 1 : end;
	}
	return 0;
invalid:
	n_fps = 0; /* all or nothing */
	return OD_EINVAL;
}

double failpoint_value(const char *name, double dflt)
{
	for (int i = 0; i < n_fps; i++)
		if (strcmp(fps[i].name, name) == 0)
			return fps[i].value;
	return dflt;
}

bool failpoint_hit(const char *name)
{
	double p = failpoint_value(name, 0);
	if (p <= 0)
		return false;
	return (double)(clock_rand() >> 11) * 0x1.0p-53 < p;
}
