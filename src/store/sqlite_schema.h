/*
 * sqlite_schema: module-private to the SQLite backend. The versioned,
 * append-only schema and its migration at open.
 */
#ifndef ORDERD_STORE_SQLITE_SCHEMA_H
#define ORDERD_STORE_SQLITE_SCHEMA_H

#include "store/sqlite_int.h"

/*
 * Applies the pending migrations on c (the writer, no transaction open),
 * each in its own transaction. OD_ESCHEMA when the file is newer than this
 * binary.
 */
int sqs_migrate(sqb_conn_t *c);

#endif
