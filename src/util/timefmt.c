/*
 * timefmt: RFC 3339 UTC timestamps with milliseconds (see timefmt.h). The
 * input is clamped to years 0000..9999 so the output always has the fixed
 * width of TIMEFMT_LEN, whatever a corrupt row or a bad clock hands us.
 */
#include "util/timefmt.h"

#include <stdio.h>
#include <time.h>

/* 9999-12-31T23:59:59.999Z and 0000-01-01T00:00:00.000Z in ms. */
#define TIMEFMT_MAX_MS 253402300799999LL
#define TIMEFMT_MIN_MS (-62167219200000LL)

void timefmt_rfc3339(int64_t ms, char out[TIMEFMT_LEN])
{
	struct tm tm;
	int64_t sec, msec;
	time_t t;

	if (ms > TIMEFMT_MAX_MS)
		ms = TIMEFMT_MAX_MS;
	if (ms < TIMEFMT_MIN_MS)
		ms = TIMEFMT_MIN_MS;
	/* Floor division, so -1 ms is 1969-12-31T23:59:59.999Z. */
	sec = ms / 1000;
	msec = ms % 1000;
	if (msec < 0) {
		msec += 1000;
		sec--;
	}
	t = (time_t)sec;
	if (!gmtime_r(&t, &tm)) {
		snprintf(out, TIMEFMT_LEN, "1970-01-01T00:00:00.000Z");
		return;
	}
	/* The clamp bounds every field; the modulos tell the compiler so. */
	snprintf(out, TIMEFMT_LEN, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
	         (unsigned)(tm.tm_year + 1900) % 10000u,
	         (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
	         (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
	         (unsigned)tm.tm_sec % 100u, (unsigned)msec % 1000u);
}
