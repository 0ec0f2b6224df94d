/* postgres: placeholder until the PostgreSQL backend lands (issue 3). */
#include "store/store_backend.h"
#include "util/err.h"

static int pg_open(const char *uri, const store_options_t *opt, void **ret)
{
	return OD_ECONFIG;
}

const store_backend_t store_postgres_backend = {
	.name = "postgres",
	.open = pg_open,
};
