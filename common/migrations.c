#include "common/migrations.h"

#include "common/ids.h"
#include "common/log.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

/* Key of the advisory lock that serialises migrations across instances. */
#define MIGRATION_LOCK_KEY 0x45564e54 /* "EVNT" */

static bool exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

static void checksum(const char *sql, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)sql, strlen(sql), md);
    es_hex(md, sizeof(md), out);
}

es_rc_t es_migrate(PGconn *conn, int *applied, char *err, size_t errlen)
{
    es_rc_t rc = ES_ERR;
    bool locked = false;
    char sql[256];
    *applied = 0;

    snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%d)", MIGRATION_LOCK_KEY);
    if (!exec_ok(conn, sql, err, errlen))
        goto cleanup;
    locked = true;
    if (!exec_ok(conn,
                 "SET client_min_messages = warning;"
                 "CREATE SCHEMA IF NOT EXISTS event;"
                 "CREATE TABLE IF NOT EXISTS event.schema_migrations ("
                 " name text PRIMARY KEY, checksum text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 err, errlen))
        goto cleanup;

    for (int i = 0; i < es_migrations_count; i++) {
        const es_migration_t *m = &es_migrations[i];
        char sum[65];
        checksum(m->sql, sum);
        const char *params[2] = {m->name, sum};
        PGresult *r = PQexecParams(conn,
                                   "SELECT checksum FROM event.schema_migrations WHERE name = $1",
                                   1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(err, errlen, "%s", PQresultErrorMessage(r));
            PQclear(r);
            goto cleanup;
        }
        if (PQntuples(r) == 1) {
            if (strcmp(PQgetvalue(r, 0, 0), sum) != 0)
                es_warn("migration %s was edited after it was applied (checksum differs); "
                        "not re-applied",
                        m->name);
            PQclear(r);
            continue;
        }
        PQclear(r);

        es_info("applying migration %s", m->name);
        if (!exec_ok(conn, "BEGIN", err, errlen))
            goto cleanup;
        if (!exec_ok(conn, m->sql, err, errlen)) {
            char reason[512];
            snprintf(reason, sizeof(reason), "%s", err);
            snprintf(err, errlen, "migration %s failed: %s", m->name, reason);
            PQclear(PQexec(conn, "ROLLBACK"));
            goto cleanup;
        }
        r = PQexecParams(conn, "INSERT INTO event.schema_migrations (name, checksum) VALUES ($1, $2)",
                         2, NULL, params, NULL, NULL, 0);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        if (!ok || !exec_ok(conn, "COMMIT", err, errlen)) {
            PQclear(PQexec(conn, "ROLLBACK"));
            goto cleanup;
        }
        (*applied)++;
    }
    rc = ES_OK;
cleanup:
    if (locked) {
        char ignored[8];
        snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%d)", MIGRATION_LOCK_KEY);
        (void)exec_ok(conn, sql, ignored, sizeof(ignored));
    }
    return rc;
}
