/* GET|POST /api/v1/events/processors, PUT /api/v1/events/processors/{id}/toggle */
#include "api-worker/dbreq.h"
#include "api-worker/filter.h"
#include "api-worker/http.h"
#include "api-worker/routes.h"
#include "common/buf.h"
#include "common/event_row.h"
#include "common/filters.h"
#include "common/ids.h"
#include "common/proctypes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROCESSOR_COLUMNS                                                                          \
    "p.processor_id, p.processor_name, p.processor_type, p.enabled, p.priority, p.filters, "       \
    "p.config, p.error_count, p.last_error, p.last_processed_at, p.created_at, p.updated_at"

static void render_processor(es_buf_t *b, const PGresult *r, int row, int c)
{
    es_buf_puts(b, "{\"processor_id\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c + 0));
    es_buf_puts(b, ",\"processor_name\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c + 1));
    es_buf_puts(b, ",\"processor_type\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c + 2));
    es_buf_printf(b, ",\"enabled\":%s,\"priority\":%s,\"filters\":%s,\"config\":%s",
                  strcmp(PQgetvalue(r, row, c + 3), "t") == 0 ? "true" : "false",
                  PQgetvalue(r, row, c + 4),
                  PQgetisnull(r, row, c + 5) ? "{}" : PQgetvalue(r, row, c + 5),
                  PQgetisnull(r, row, c + 6) ? "{}" : PQgetvalue(r, row, c + 6));
    es_buf_printf(b, ",\"error_count\":%s,\"last_error\":",
                  PQgetisnull(r, row, c + 7) ? "0" : PQgetvalue(r, row, c + 7));
    es_buf_json_cstr(b, PQgetisnull(r, row, c + 8) ? NULL : PQgetvalue(r, row, c + 8));
    es_buf_puts(b, ",\"last_processed_at\":");
    es_render_pg_time(b, r, row, c + 9);
    es_buf_puts(b, ",\"created_at\":");
    es_render_pg_time(b, r, row, c + 10);
    es_buf_puts(b, ",\"updated_at\":");
    es_render_pg_time(b, r, row, c + 11);
    es_buf_putc(b, '}');
}

static void on_list(h2o_req_t *req, const PGresult *res, void *user)
{
    es_buf_t b = ES_BUF_INIT;
    es_render_rows(&b, res, render_processor);
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

void es_h_processors_list(h2o_req_t *req, const es_route_args_t *args)
{
    es_dbreq_read(req,
                  "SELECT " PROCESSOR_COLUMNS " FROM event.event_processors p "
                  "ORDER BY p.priority DESC, p.processor_name",
                  0, NULL, on_list, NULL);
}

/* Rows: (id taken before?, the inserted processor or NULLs). */
static void on_created(h2o_req_t *req, const PGresult *res, void *user)
{
    if (PQgetisnull(res, 0, 1)) {
        es_buf_t b = ES_BUF_INIT;
        if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
            es_buf_printf(&b, "processor_id: a processor with this id already exists");
        else
            es_buf_printf(&b, "processor_name: a processor named %s already exists",
                          (const char *)user);
        es_http_error(req, 409, b.data);
        es_buf_free(&b);
        return;
    }
    es_buf_t b = ES_BUF_INIT;
    render_processor(&b, res, 0, 1);
    es_http_json(req, 201, b.data, b.len);
    es_buf_free(&b);
}

/* Validates a registration; on success fills the six statement parameters. */
static es_rc_t validate(const json_t *body, char **params, es_field_error_t *err)
{
    const char *name, *type, *id;
    if (!json_is_object(body)) {
        es_field_error_set(err, "", "body", "must be a JSON object");
        return ES_INVALID;
    }
    if (!es_json_opt_string(body, "processor_name", &name, err) ||
        !es_json_opt_string(body, "processor_type", &type, err) ||
        !es_json_opt_string(body, "processor_id", &id, err))
        return ES_INVALID;
    if (name == NULL || name[0] == '\0' || strlen(name) > ES_FIELD_MAX) {
        es_field_error_set(err, "", "processor_name",
                           name ? "must be 1 to 255 characters" : "field required");
        return ES_INVALID;
    }
    if (type == NULL) {
        es_field_error_set(err, "", "processor_type", "field required");
        return ES_INVALID;
    }
    const es_proctype_t *pt = es_proctype_find(type);
    if (pt == NULL) {
        es_field_error_set(err, "", "processor_type", "unknown type %s (known: %s)", type,
                           es_proctype_list());
        return ES_INVALID;
    }
    if (id != NULL && (id[0] == '\0' || strlen(id) > ES_FIELD_MAX)) {
        es_field_error_set(err, "", "processor_id", "must be 1 to 255 characters");
        return ES_INVALID;
    }
    const json_t *enabled = json_object_get(body, "enabled");
    if (enabled != NULL && !json_is_null(enabled) && !json_is_boolean(enabled)) {
        es_field_error_set(err, "", "enabled", "must be true or false");
        return ES_INVALID;
    }
    int64_t priority;
    if (!es_json_opt_int(body, "priority", 0, INT32_MIN, INT32_MAX, &priority, err))
        return ES_INVALID;
    const json_t *filters = json_object_get(body, "filters");
    es_filters_t parsed;
    if (es_filters_parse(filters, "filters.", &parsed, err) != ES_OK)
        return ES_INVALID;
    es_filters_free(&parsed);
    const json_t *config = json_object_get(body, "config");
    json_t *empty = json_object();
    if (config != NULL && !json_is_null(config) && !json_is_object(config)) {
        es_field_error_set(err, "", "config", "must be an object");
        json_decref(empty);
        return ES_INVALID;
    }
    const json_t *cfg = (config && json_is_object(config)) ? config : empty;
    es_rc_t rc = pt->validate(cfg, err);
    if (rc == ES_OK) {
        char uuid[ES_UUID_LEN + 1];
        es_uuid_v4(uuid);
        params[0] = es_xstrdup(id ? id : uuid);
        params[1] = es_xstrdup(name);
        params[2] = es_xstrdup(type);
        params[3] = es_xstrdup(enabled == NULL || !json_is_false(enabled) ? "true" : "false");
        params[4] = es_xasprintf("%lld", (long long)priority);
        params[5] = json_dumps(json_is_object(filters) ? filters : empty, JSON_COMPACT);
        params[6] = json_dumps(cfg, JSON_COMPACT);
    }
    json_decref(empty);
    return rc;
}

void es_h_processors_create(h2o_req_t *req, const es_route_args_t *args)
{
    json_t *body = es_http_body_json(req);
    if (body == NULL)
        return;
    char *params[7] = {NULL};
    es_field_error_t err;
    if (validate(body, params, &err) != ES_OK) {
        json_decref(body);
        es_http_invalid(req, &err);
        return;
    }
    /* A repeated name or id inserts nothing and answers 409 naming which. */
    es_dbreq_read(req,
                  "WITH ins AS (INSERT INTO event.event_processors AS p (processor_id, "
                  "processor_name, processor_type, enabled, priority, filters, config) "
                  "VALUES ($1, $2, $3, $4::boolean, $5::int, $6::jsonb, $7::jsonb) "
                  "ON CONFLICT DO NOTHING RETURNING *) "
                  "SELECT EXISTS (SELECT 1 FROM event.event_processors WHERE processor_id = "
                  "$1), " PROCESSOR_COLUMNS " FROM (SELECT 1) one LEFT JOIN ins p ON true",
                  7, (const char *const *)params, on_created, es_xstrdup(params[1]));
    for (int i = 0; i < 7; i++)
        free(params[i]);
    json_decref(body);
}

static void on_toggled(h2o_req_t *req, const PGresult *res, void *user)
{
    if (PQntuples(res) == 0) {
        es_http_errorf(req, 404, "Processor not found: %s", (const char *)user);
        return;
    }
    es_buf_t b = ES_BUF_INIT;
    render_processor(&b, res, 0, 0);
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

void es_h_processors_toggle(h2o_req_t *req, const es_route_args_t *args)
{
    const char *enabled = NULL; /* NULL: flip */
    char q[16];
    if (es_http_query(req, "enabled", q, sizeof(q))) {
        if (strcmp(q, "true") == 0 || strcmp(q, "false") == 0) {
            enabled = strcmp(q, "true") == 0 ? "true" : "false";
        } else {
            es_field_error_t err;
            snprintf(err.field, sizeof(err.field), "enabled");
            snprintf(err.msg, sizeof(err.msg), "must be true or false");
            es_http_invalid(req, &err);
            return;
        }
    } else if (req->entity.base != NULL && req->entity.len > 0) {
        json_t *body = es_http_body_json(req);
        if (body == NULL)
            return;
        const json_t *v = json_is_object(body) ? json_object_get(body, "enabled") : NULL;
        if (v != NULL && !json_is_null(v)) {
            if (!json_is_boolean(v)) {
                json_decref(body);
                es_field_error_t err;
                es_field_error_set(&err, "", "enabled", "must be true or false");
                es_http_invalid(req, &err);
                return;
            }
            enabled = json_is_true(v) ? "true" : "false";
        }
        json_decref(body);
    }
    const char *params[2] = {args->v[0], enabled};
    es_dbreq_read(
        req,
        "UPDATE event.event_processors p SET enabled = coalesce($2::boolean, NOT "
        "p.enabled), updated_at = now() WHERE p.processor_id = $1 RETURNING " PROCESSOR_COLUMNS,
        2, params, on_toggled, es_xstrdup(args->v[0]));
}
