#include "api-worker/dbreq.h"

#include "api-worker/http.h"
#include "api-worker/pg.h"
#include "api-worker/routes.h"
#include "api-worker/worker.h"
#include "common/log.h"

#include <stdlib.h>

typedef struct {
    es_async_t async;
    es_dbreq_cb cb;
    void *user;
    void (*free_user)(void *);
} dbreq_t;

static void on_result(void *ctx, const PGresult *res, const char *err)
{
    dbreq_t *d = ctx;
    if (d->async.req != NULL) {
        if (res == NULL) {
            es_async_error(&d->async, 503, "database unavailable");
        } else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            const char *state = es_pg_sqlstate(res);
            es_error("query failed (%s): %s", state, PQresultErrorMessage(res));
            if (state[0] == '5' || (state[0] == '0' && state[1] == '8'))
                es_async_error(&d->async, 503, "database unavailable");
            else
                es_async_error(&d->async, 500, "internal error");
        } else {
            h2o_req_t *req = d->async.req;
            es_async_enter(&d->async);
            es_async_end(&d->async);
            d->cb(req, res, d->user);
        }
    }
    es_async_end(&d->async);
    d->free_user(d->user);
    free(d);
}

void es_dbreq_read_ex(h2o_req_t *req, const char *sql, int nparams, const char *const *params,
                      es_dbreq_cb cb, void *user, void (*free_user)(void *))
{
    es_pgconn_t *c = es_pgpool_reader(es_api->pg);
    if (c == NULL) {
        free_user(user);
        es_http_error(req, 503, "database unavailable");
        return;
    }
    dbreq_t *d = es_xcalloc(1, sizeof(*d));
    d->cb = cb;
    d->user = user;
    d->free_user = free_user;
    es_async_begin(&d->async, req);
    if (es_pg_send(c, sql, nparams, params, on_result, d) != ES_OK) {
        es_async_error(&d->async, 503, "database unavailable");
        free_user(d->user);
        free(d);
    }
}

void es_dbreq_read(h2o_req_t *req, const char *sql, int nparams, const char *const *params,
                   es_dbreq_cb cb, void *user)
{
    es_dbreq_read_ex(req, sql, nparams, params, cb, user, free);
}
