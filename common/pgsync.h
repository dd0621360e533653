/*
 * pgsync.h - a blocking PostgreSQL connection for the worker threads that may
 * block (processor and replay workers, never the API's event loop): opened on
 * first use and re-opened after it broke, session in UTC with ISO dates.
 */
#ifndef ES_PGSYNC_H
#define ES_PGSYNC_H

#include "common/es.h"

#include <libpq-fe.h>

typedef struct {
    char *conninfo;
    PGconn *conn;
    char who[48];     /* names the user in log lines */
    bool fresh;       /* the last query (re)connected: session state was lost */
    char sqlstate[6]; /* SQLSTATE of the last failed query ("" when none or not the server's) */
    int64_t plans_ms; /* when the session's cached plans were last discarded */
    /* SQLSTATEs (5 characters each, space separated) the user retries: their
     * failures are logged at debug level, not as warnings. NULL: none. */
    const char *retried_states;
} es_pgsync_t;

/* How often a session's cached plans are discarded (see es_pgsync_query). */
#define ES_PGSYNC_REPLAN_MS 2000

void es_pgsync_init(es_pgsync_t *db, const char *conninfo, const char *who);
void es_pgsync_close(es_pgsync_t *db);

/* Runs sql with text parameters; reconnects first when the connection is
 * broken. Returns the result (TUPLES_OK or COMMAND_OK; caller PQclears), or
 * NULL after logging what failed. */
PGresult *es_pgsync_query(es_pgsync_t *db, const char *what, const char *sql, int nparams,
                          const char *const *params);

/* Ends the open transaction without effect (a failure only matters for the
 * session, which ensure() replaces when broken). */
void es_pgsync_rollback(es_pgsync_t *db);

/* A statement without result rows (BEGIN, COMMIT, ...); false on failure. */
bool es_pgsync_exec(es_pgsync_t *db, const char *what, const char *sql) ES_MUST_CHECK;

#endif
