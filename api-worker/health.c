/* GET /health (liveness) and GET /health/ready (database and NATS checks). */
#include "api-worker/pg.h"
#include "api-worker/http.h"
#include "api-worker/routes.h"
#include "api-worker/worker.h"
#include "common/buf.h"
#include "common/timeutil.h"

#include <stdlib.h>
#include <string.h>

void es_h_health(h2o_req_t *req, const es_route_args_t *args)
{
    char now[ES_TIME_BUFLEN];
    es_time_format(es_time_now_us(), now);
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "{\"status\":\"healthy\",\"service\":");
    es_buf_json_cstr(&b, es_api->cfg->service.name);
    es_buf_printf(&b, ",\"version\":\"%s\",\"timestamp\":\"%s\"}", ES_VERSION, now);
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

static const char *nats_check(void)
{
    if (!es_api->cfg->nats.enabled)
        return "disabled";
    if (!es_nats_connected(es_api->nats))
        return "unavailable: not connected";
    if (!es_nats_stream_ready(es_api->nats))
        return "degraded: JetStream stream not ready";
    return "ok";
}

static void reply_ready(h2o_req_t *req, const char *database)
{
    bool ok = strcmp(database, "ok") == 0;
    es_buf_t b = ES_BUF_INIT;
    es_buf_printf(&b, "{\"status\":\"%s\",\"checks\":{\"database\":", ok ? "ready" : "not_ready");
    es_buf_json_cstr(&b, database);
    es_buf_puts(&b, ",\"nats\":");
    es_buf_json_cstr(&b, nats_check());
    es_buf_puts(&b, "}}");
    es_http_json(req, ok ? 200 : 503, b.data, b.len);
    es_buf_free(&b);
}

static void on_ping(void *ctx, const PGresult *res, const char *err)
{
    es_async_t *a = ctx;
    h2o_req_t *req = a->req;
    es_async_enter(a);
    es_async_end(a);
    if (req != NULL)
        reply_ready(req, res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK
                             ? "ok"
                             : "unavailable: the database did not answer");
    free(a);
}

void es_h_ready(h2o_req_t *req, const es_route_args_t *args)
{
    es_pgconn_t *c = es_pgpool_reader(es_api->pg);
    if (!es_pgconn_ready(es_pgpool_writer(es_api->pg))) {
        reply_ready(req, "unavailable: no database connection for writes");
        return;
    }
    if (c == NULL) {
        reply_ready(req, "unavailable: no database connection");
        return;
    }
    es_async_t *a = es_xmalloc(sizeof(*a));
    es_async_begin(a, req);
    if (es_pg_send(c, "SELECT 1", 0, NULL, on_ping, a) != ES_OK) {
        es_async_end(a);
        free(a);
        reply_ready(req, "unavailable: no database connection");
    }
}
