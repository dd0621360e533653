#include "common/pgsync.h"

#include "common/log.h"
#include "common/timeutil.h"

#include <stdlib.h>
#include <string.h>

void es_pgsync_init(es_pgsync_t *db, const char *conninfo, const char *who)
{
    db->conninfo = es_xstrdup(conninfo);
    db->conn = NULL;
    db->fresh = false;
    db->sqlstate[0] = '\0';
    db->plans_ms = 0;
    db->retried_states = NULL;
    es_strlcpy(db->who, who, sizeof(db->who));
}

void es_pgsync_close(es_pgsync_t *db)
{
    if (db->conn != NULL)
        PQfinish(db->conn);
    db->conn = NULL;
    ES_FREE(&db->conninfo);
}

static bool ensure(es_pgsync_t *db, const char *what)
{
    db->fresh = false;
    if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
        return true;
    if (db->conn != NULL)
        PQfinish(db->conn);
    db->conn = PQconnectdb(db->conninfo);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        es_debug("%s: %s: database unavailable: %s", db->who, what, PQerrorMessage(db->conn));
        return false;
    }
    /* jit off: our statements are short, and PostgreSQL compiles a plan
     * afresh at every execution, which took 12 % of its CPU in the
     * processing benchmark for batches whose estimated cost crossed
     * jit_above_cost. */
    PQclear(PQexec(db->conn, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET jit = off"));
    db->fresh = true;
    return true;
}

PGresult *es_pgsync_query(es_pgsync_t *db, const char *what, const char *sql, int nparams,
                          const char *const *params)
{
    db->sqlstate[0] = '\0';
    if (!ensure(db, what))
        return NULL;
    /* Plans cached by the functions we call were made for the tables as they
     * were then; on a new database that is small, and a plan to scan a small
     * table whole stays cached while it grows. Re-plan now and then. */
    int64_t now = es_time_mono_ms();
    if (now - db->plans_ms > ES_PGSYNC_REPLAN_MS && PQtransactionStatus(db->conn) == PQTRANS_IDLE) {
        db->plans_ms = now;
        PQclear(PQexec(db->conn, "DISCARD PLANS"));
    }
    PGresult *r = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        es_strlcpy(db->sqlstate, state ? state : "", sizeof(db->sqlstate));
        if (db->retried_states != NULL && db->sqlstate[0] != '\0' &&
            strstr(db->retried_states, db->sqlstate) != NULL)
            es_debug("%s: %s failed (retried): %s", db->who, what, PQresultErrorMessage(r));
        else
            es_warn("%s: %s failed: %s", db->who, what, PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

bool es_pgsync_exec(es_pgsync_t *db, const char *what, const char *sql)
{
    PGresult *r = es_pgsync_query(db, what, sql, 0, NULL);
    PQclear(r);
    return r != NULL;
}

void es_pgsync_rollback(es_pgsync_t *db)
{
    if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK &&
        PQtransactionStatus(db->conn) != PQTRANS_IDLE)
        PQclear(PQexec(db->conn, "ROLLBACK"));
}
