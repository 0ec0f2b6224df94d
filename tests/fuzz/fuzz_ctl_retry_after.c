/*
 * fuzz_ctl_retry_after: libFuzzer target for orderctl's one hand-written
 * decoder of server bytes, the Retry-After header reader
 * (client_retry_after in src/orderctl/client.c; the bodies go to jansson).
 * The input is one raw header line exactly as libcurl hands it to the
 * header callback: not NUL-terminated, so reading past it is an ASan
 * finding. The result is -1 or 0..CLIENT_MAX_RETRY_AFTER, and a delay is
 * only ever read from a line that is a Retry-After header with digits
 * after the colon and blanks.
 *
 * fuzz-sources: src/orderctl/client.c src/util/buf.c src/util/err.c
 * fuzz-libs: libcurl
 * fuzz-max-len: 256
 */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "orderctl/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size ? size : 1); /* exactly size bytes */
	int secs;
	size_t i = 12;

	if (!line)
		return 0;
	memcpy(line, data, size);
	secs = client_retry_after(line, size);
	assert(secs >= -1 && secs <= CLIENT_MAX_RETRY_AFTER);
	if (secs >= 0) {
		assert(size > 12 && strncasecmp(line, "retry-after:", 12) == 0);
		while (i < size && (line[i] == ' ' || line[i] == '\t'))
			i++;
		assert(i < size && isdigit((unsigned char)line[i]));
		/* Small values are read exactly. */
		if (i + 1 == size || !isdigit((unsigned char)line[i + 1]))
			assert(secs == line[i] - '0');
	}
	free(line);
	return 0;
}
