/* timefmt: RFC 3339 UTC timestamps with milliseconds, as the API prints them.
 */
#ifndef ORDERD_UTIL_TIMEFMT_H
#define ORDERD_UTIL_TIMEFMT_H

#include <stdint.h>

#define TIMEFMT_LEN 25 /* "2026-11-25T13:45:07.123Z" plus NUL */

/* Formats ms since the Unix epoch into out (TIMEFMT_LEN bytes). */
void timefmt_rfc3339(int64_t ms, char out[TIMEFMT_LEN]);

#endif
