/* GET /api/v1/events/statistics[?user_id=] - read from event.event_counters
 * (see schema/002_ingest.sql), never a scan of the events table. */
#include "api-worker/dbreq.h"
#include "api-worker/http.h"
#include "api-worker/routes.h"

static void on_stats(h2o_req_t *req, const PGresult *res, void *user)
{
    es_http_json(req, 200, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

void es_h_statistics(h2o_req_t *req, const es_route_args_t *args)
{
    char user_id[256];
    bool by_user = es_http_query(req, "user_id", user_id, sizeof(user_id)) && user_id[0] != '\0';
    const char *params[1] = {args->user ? args->user : by_user ? user_id : NULL};
    es_dbreq_read(req, "SELECT event.statistics($1)::text", 1, params, on_stats, NULL);
}
