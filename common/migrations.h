/*
 * migrations.h - the schema/NNN_*.sql files, embedded in the executable at
 * build time (cmake/embed_schema.cmake), and the code that applies them.
 */
#ifndef ES_MIGRATIONS_H
#define ES_MIGRATIONS_H

#include "common/es.h"

#include <libpq-fe.h>

typedef struct {
    const char *name; /* "001_events.sql" */
    const char *sql;
} es_migration_t;

extern const es_migration_t es_migrations[];
extern const int es_migrations_count;

/* Applies every migration not yet recorded in event.schema_migrations, in
 * name order, each in its own transaction, while holding a session advisory
 * lock so that concurrent masters (several hosts) apply each exactly once.
 * Blocking; for the master and `event-service migrate` only. *applied gets
 * the number applied by this call. On failure writes the reason into err. */
es_rc_t es_migrate(PGconn *conn, int *applied, char *err, size_t errlen) ES_MUST_CHECK;

#endif
