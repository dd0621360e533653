/* GET  /api/v1/events/projections/{entity_type}/{entity_id}[?name=]
 * POST /api/v1/events/projections/{entity_type}/{entity_id}/rebuild[?name=]
 * A projection missing on read is built from its stream (and
 * event.projection.created is queued for publication); the projection
 * processor keeps it current afterwards (schema/003: apply_to_projection). */
#include "api-worker/dbreq.h"
#include "api-worker/http.h"
#include "api-worker/routes.h"
#include "api-worker/worker.h"
#include "common/buf.h"
#include "common/event_row.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_projection(h2o_req_t *req, const PGresult *res, void *user)
{
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 1)) {
        es_http_errorf(req, 404, "Projection not found: %s (its stream has no events)",
                       (const char *)user);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) /* created: its publication is queued */
        (void)es_nats_publish(es_api->nats, ES_WAKE_SUBJECT, "", 0);
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "{\"projection_id\":");
    es_buf_json_cstr(&b, PQgetvalue(res, 0, 1));
    es_buf_puts(&b, ",\"projection_name\":");
    es_buf_json_cstr(&b, PQgetvalue(res, 0, 2));
    es_buf_puts(&b, ",\"entity_type\":");
    es_buf_json_cstr(&b, PQgetvalue(res, 0, 3));
    es_buf_puts(&b, ",\"entity_id\":");
    es_buf_json_cstr(&b, PQgetvalue(res, 0, 4));
    es_buf_printf(&b, ",\"state\":%s,\"version\":%s,\"last_event_id\":",
                  PQgetisnull(res, 0, 5) ? "{}" : PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 6));
    es_buf_json_cstr(&b, PQgetisnull(res, 0, 7) ? NULL : PQgetvalue(res, 0, 7));
    es_buf_puts(&b, ",\"created_at\":");
    es_render_pg_time(&b, res, 0, 8);
    es_buf_puts(&b, ",\"updated_at\":");
    es_render_pg_time(&b, res, 0, 9);
    es_buf_putc(&b, '}');
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

static void build(h2o_req_t *req, const es_route_args_t *args, bool rebuild)
{
    char name[256] = "default";
    if (es_http_query(req, "name", name, sizeof(name)) && (name[0] == '\0' || name[0] == '\x01')) {
        es_field_error_t err;
        snprintf(err.field, sizeof(err.field), "name");
        snprintf(err.msg, sizeof(err.msg), "must be a non-empty projection name");
        es_http_invalid(req, &err);
        return;
    }
    const char *p[4] = {args->v[0], args->v[1], name, rebuild ? "true" : "false"};
    es_dbreq_read(req,
                  "SELECT b.created, (b.projection).projection_id, (b.projection).projection_name, "
                  "(b.projection).entity_type, (b.projection).entity_id, (b.projection).state, "
                  "(b.projection).version, (b.projection).last_event_id, "
                  "(b.projection).created_at, (b.projection).updated_at "
                  "FROM event.build_projection($1, $2, $3, $4::boolean) b",
                  4, p, on_projection, es_xasprintf("%s:%s", args->v[0], args->v[1]));
}

void es_h_projection_get(h2o_req_t *req, const es_route_args_t *args)
{
    build(req, args, false);
}

void es_h_projection_rebuild(h2o_req_t *req, const es_route_args_t *args)
{
    build(req, args, true);
}
