/* POST /api/v1/events/{event_id}/retry and POST /api/v1/events/retry (by
 * filter): failed events go back to pending and into the processing queue.
 * Processors that already succeeded for an event are not run again. */
#include "api-worker/dbreq.h"
#include "api-worker/filter.h"
#include "api-worker/http.h"
#include "api-worker/routes.h"
#include "api-worker/worker.h"
#include "common/buf.h"
#include "common/event_row.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_retried_one(h2o_req_t *req, const PGresult *res, void *user)
{
    const char *id = user;
    es_buf_t b = ES_BUF_INIT;
    if (PQntuples(res) == 0) {
        es_buf_printf(&b, "Event not found: %s", id);
        es_http_error(req, 404, b.data);
    } else if (PQgetisnull(res, 0, 1)) {
        es_buf_printf(&b, "status: event %s is %s; only failed events can be retried", id,
                      PQgetvalue(res, 0, 0));
        es_http_error(req, 409, b.data);
    } else {
        (void)es_nats_publish(es_api->nats, ES_WAKE_SUBJECT, "", 0);
        es_event_row_render(&b, res, 0, 1);
        es_http_json(req, 200, b.data, b.len);
    }
    es_buf_free(&b);
}

void es_h_event_retry(h2o_req_t *req, const es_route_args_t *args)
{
    const char *params[1] = {args->v[0]};
    es_dbreq_read(req,
                  "SELECT c.status, " ES_EVENT_COLUMNS " FROM event.events c "
                  "LEFT JOIN event.requeue_failed(ARRAY[$1]) e ON true WHERE c.event_id = $1",
                  1, params, on_retried_one, es_xstrdup(args->v[0]));
}

static void on_retried_many(h2o_req_t *req, const PGresult *res, void *user)
{
    es_buf_t b = ES_BUF_INIT;
    (void)es_nats_publish(es_api->nats, ES_WAKE_SUBJECT, "", 0);
    es_buf_printf(&b, "{\"retried\":%s,\"event_ids\":", PQgetvalue(res, 0, 0));
    es_buf_puts(&b, PQgetisnull(res, 0, 1) ? "[]" : PQgetvalue(res, 0, 1));
    es_buf_putc(&b, '}');
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

void es_h_events_retry(h2o_req_t *req, const es_route_args_t *args)
{
    json_t *body = es_http_body_json(req);
    if (body == NULL)
        return;
    es_field_error_t err;
    es_filter_t f;
    es_filter_init(&f);
    int64_t limit;
    if (!json_is_object(body)) {
        es_field_error_set(&err, "", "body", "must be a JSON object");
        goto invalid;
    }
    if (json_object_get(body, "status") != NULL) {
        es_field_error_set(&err, "", "status", "only failed events are retried; omit status");
        goto invalid;
    }
    if (es_filter_from_json(&f, body, &err) != ES_OK ||
        !es_json_opt_int(body, "limit", 1000, 1, 100000, &limit, &err))
        goto invalid;
    es_buf_t sql = ES_BUF_INIT;
    es_buf_printf(&sql,
                  "SELECT count(*), json_agg(r.event_id ORDER BY r.position) "
                  "FROM event.requeue_failed(ARRAY(SELECT e.event_id FROM event.events e "
                  "WHERE e.status = 'failed'%s ORDER BY e.position LIMIT %lld)) r",
                  f.where.data, (long long)limit);
    es_dbreq_read(req, sql.data, f.n, (const char *const *)f.params, on_retried_many, NULL);
    es_buf_free(&sql);
    es_filter_free(&f);
    json_decref(body);
    return;
invalid:
    es_filter_free(&f);
    json_decref(body);
    es_http_invalid(req, &err);
}
