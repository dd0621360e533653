#include "master/master.h"

#include "common/log.h"
#include "common/migrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

es_rc_t es_master_migrate(const es_config_t *cfg, int wait_seconds, char *err, size_t errlen)
{
    char *conninfo = es_config_conninfo(cfg);
    PGconn *conn = NULL;
    es_rc_t rc = ES_ERR;
    for (int waited = 0;; waited++) {
        conn = PQconnectdb(conninfo);
        if (PQstatus(conn) == CONNECTION_OK)
            break;
        if (waited >= wait_seconds) {
            snprintf(err, errlen, "cannot connect to the database: %s", PQerrorMessage(conn));
            goto cleanup;
        }
        if (waited == 0)
            es_warn("database not reachable yet (%s); retrying for up to %d s",
                    PQerrorMessage(conn), wait_seconds);
        PQfinish(conn);
        conn = NULL;
        sleep(1);
    }
    int applied = 0;
    rc = es_migrate(conn, &applied, err, errlen);
    if (rc == ES_OK)
        es_info("schema up to date (%d migration%s applied now)", applied, applied == 1 ? "" : "s");
cleanup:
    PQfinish(conn);
    free(conninfo);
    return rc;
}
