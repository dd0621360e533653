/* GET /metrics - Prometheus text format 0.0.4 (common/metrics.c), with the
 * queue depths read from PostgreSQL at scrape time. */
#include "api-worker/http.h"
#include "api-worker/pg.h"
#include "api-worker/routes.h"
#include "api-worker/worker.h"
#include "common/buf.h"
#include "common/event_row.h"
#include "common/metrics.h"

#include <stdlib.h>
#include <string.h>

static const char *const depth_names[] = {"processing", "deliveries", "replays", "outbox"};

static void reply(h2o_req_t *req, const int64_t *depths, int ndepths)
{
    const char *names[ES_METRICS_MAX_ROUTES];
    int n = ES_MIN(es_routes_count, ES_METRICS_MAX_ROUTES);
    for (int i = 0; i < n; i++)
        names[i] = es_routes[i].name;
    es_buf_t b = ES_BUF_INIT;
    es_metrics_render(&b, names, n, depth_names, depths, ndepths);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = b.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_send_inline(req, b.data, b.len);
    es_buf_free(&b);
}

static void on_depths(void *ctx, const PGresult *res, const char *err)
{
    es_async_t *a = ctx;
    h2o_req_t *req = a->req;
    es_async_end(a);
    if (req != NULL) {
        int64_t depths[4] = {-1, -1, -1, -1};
        if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            for (int i = 0; i < 4; i++)
                depths[i] = es_pg_int(res, 0, i);
        reply(req, depths, res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK ? 4 : 0);
    }
    free(a);
}

void es_h_metrics(h2o_req_t *req, const es_route_args_t *args)
{
    es_pgconn_t *c = es_pgpool_reader(es_api->pg);
    if (c == NULL) {
        reply(req, NULL, 0); /* the counters still tell something */
        return;
    }
    es_async_t *a = es_xmalloc(sizeof(*a));
    es_async_begin(a, req);
    if (es_pg_send(c,
                   "SELECT (SELECT count(*) FROM event.processing_queue), "
                   "(SELECT count(*) FROM event.deliveries WHERE status IN ('pending', 'failed')), "
                   "(SELECT count(*) FROM event.replay_jobs WHERE status IN ('pending', 'running')), "
                   "(SELECT count(*) FROM event.outbox)",
                   0, NULL, on_depths, a) != ES_OK) {
        es_async_end(a);
        free(a);
        reply(req, NULL, 0);
    }
}
