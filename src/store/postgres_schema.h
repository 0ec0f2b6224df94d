/*
 * postgres_schema: module-private to the postgres store backend. The
 * versioned, append-only schema and its migration at open.
 */
#ifndef ORDERD_STORE_POSTGRES_SCHEMA_H
#define ORDERD_STORE_POSTGRES_SCHEMA_H

#include "store/postgres_pool.h"

/*
 * Applies pending migrations on c (idle, no transaction open), each in its
 * own transaction under pg_advisory_xact_lock. OD_ESCHEMA when the database
 * is newer than this binary; OD_ESTORE on transient failures.
 */
int pgs_migrate(pgc_t *c, int *ret_version);
/*
 * Creates (or replaces, identically) the outbox trigger on orders, in its
 * own transaction under the migrations' advisory lock, so replicas that
 * start together do not race on the catalog. c is idle.
 */
int pgs_outbox_enable(pgc_t *c);

#endif
