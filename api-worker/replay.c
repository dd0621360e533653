/* Replay:
 *   POST /api/v1/events/replay                 dry run (200) or a job (202)
 *   GET  /api/v1/events/replay                 recent runs and the schedules
 *   GET  /api/v1/events/replay/{replay_id}     progress
 *   POST /api/v1/events/replay/{replay_id}/cancel
 * Replay workers run the jobs (replay-worker/). */
#include "api-worker/dbreq.h"
#include "api-worker/filter.h"
#include "api-worker/http.h"
#include "api-worker/routes.h"
#include "api-worker/worker.h"
#include "common/buf.h"
#include "common/event_row.h"
#include "common/ids.h"
#include "common/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DRY_RUN_IDS 1000

#define JOB_COLUMNS                                                                                \
    "j.replay_id, j.status, j.mode, j.target_service, j.subscription_id, j.total, j.replayed, "    \
    "j.failed, j.created_at, j.started_at, j.finished_at, j.error, j.schedule_name, j.fire_time, " \
    "j.selector"

static void render_job(es_buf_t *b, const PGresult *r, int row, int c)
{
    es_buf_puts(b, "{\"replay_id\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c));
    es_buf_puts(b, ",\"status\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c + 1));
    es_buf_puts(b, ",\"mode\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c + 2));
    es_buf_puts(b, ",\"target_service\":");
    es_buf_json_cstr(b, PQgetisnull(r, row, c + 3) ? NULL : PQgetvalue(r, row, c + 3));
    es_buf_puts(b, ",\"subscription_id\":");
    es_buf_json_cstr(b, PQgetisnull(r, row, c + 4) ? NULL : PQgetvalue(r, row, c + 4));
    es_buf_printf(b, ",\"total\":%s,\"replayed\":%s,\"failed\":%s,\"created_at\":",
                  PQgetisnull(r, row, c + 5) ? "null" : PQgetvalue(r, row, c + 5),
                  PQgetvalue(r, row, c + 6), PQgetvalue(r, row, c + 7));
    es_render_pg_time(b, r, row, c + 8);
    es_buf_puts(b, ",\"started_at\":");
    es_render_pg_time(b, r, row, c + 9);
    es_buf_puts(b, ",\"finished_at\":");
    es_render_pg_time(b, r, row, c + 10);
    es_buf_puts(b, ",\"error\":");
    es_buf_json_cstr(b, PQgetisnull(r, row, c + 11) ? NULL : PQgetvalue(r, row, c + 11));
    es_buf_puts(b, ",\"schedule\":");
    es_buf_json_cstr(b, PQgetisnull(r, row, c + 12) ? NULL : PQgetvalue(r, row, c + 12));
    es_buf_puts(b, ",\"fire_time\":");
    es_render_pg_time(b, r, row, c + 13);
    es_buf_printf(b, ",\"selector\":%s}", PQgetvalue(r, row, c + 14));
}

static void on_dry_run(h2o_req_t *req, const PGresult *res, void *user)
{
    long long count = es_pg_int(res, 0, 0);
    es_buf_t b = ES_BUF_INIT;
    es_buf_printf(&b, "{\"dry_run\":true,\"events_count\":%lld,\"events\":%s,\"truncated\":%s}",
                  count, PQgetisnull(res, 0, 1) ? "[]" : PQgetvalue(res, 0, 1),
                  count > DRY_RUN_IDS ? "true" : "false");
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

static void on_started(h2o_req_t *req, const PGresult *res, void *user)
{
    if (PQntuples(res) == 0) {
        es_http_error(req, 422, "subscription_id: no such subscription");
        return;
    }
    (void)es_nats_publish(es_api->nats, ES_WAKE_REPLAY, "", 0);
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "{\"status\":\"replay_started\",\"message\":\"Event replay has been "
                    "initiated\",\"dry_run\":false,\"replay_id\":");
    es_buf_json_cstr(&b, PQgetvalue(res, 0, 0));
    es_buf_puts(&b, ",\"mode\":");
    es_buf_json_cstr(&b, PQgetvalue(res, 0, 2));
    es_buf_puts(&b, ",\"target_service\":");
    es_buf_json_cstr(&b, PQgetisnull(res, 0, 3) ? NULL : PQgetvalue(res, 0, 3));
    es_buf_puts(&b, ",\"status_url\":");
    char *url = es_xasprintf("/api/v1/events/replay/%s", PQgetvalue(res, 0, 0));
    es_buf_json_cstr(&b, url);
    free(url);
    es_buf_putc(&b, '}');
    es_http_json(req, 202, b.data, b.len);
    es_buf_free(&b);
}

/* The selector of a request: exactly one of event_ids, stream_id, or
 * start_time + end_time (with the query filters). Heap JSON text or NULL
 * (err set). */
static char *selector_of(const json_t *body, es_field_error_t *err)
{
    const json_t *ids = json_object_get(body, "event_ids");
    const char *stream;
    int64_t start = 0, end = 0;
    bool has_start, has_end;
    if (ids != NULL && json_is_null(ids))
        ids = NULL;
    if (!es_json_opt_string(body, "stream_id", &stream, err) ||
        !es_json_opt_time(body, "start_time", &start, &has_start, err) ||
        !es_json_opt_time(body, "end_time", &end, &has_end, err))
        return NULL;
    int given = (ids != NULL) + (stream != NULL) + (has_start || has_end);
    if (given != 1) {
        es_field_error_set(err, "", given ? "event_ids" : "body",
                           given
                               ? "give only one of event_ids, stream_id, or start_time and end_time"
                               : "event_ids, stream_id, or start_time and end_time is required");
        return NULL;
    }
    json_t *sel = json_object();
    if (ids != NULL) {
        size_t i;
        const json_t *v;
        if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 100000) {
            es_field_error_set(err, "", "event_ids", "must be a non-empty array of event ids");
            json_decref(sel);
            return NULL;
        }
        json_array_foreach(ids, i, v)
        {
            if (!json_is_string(v)) {
                char field[48];
                snprintf(field, sizeof(field), "event_ids[%zu]", i);
                es_field_error_set(err, "", field, "must be a string");
                json_decref(sel);
                return NULL;
            }
        }
        json_object_set(sel, "event_ids", (json_t *)ids);
    } else if (stream != NULL) {
        json_object_set_new(sel, "stream_id", json_string(stream));
    } else {
        if (!has_start || !has_end) {
            es_field_error_set(err, "", has_start ? "end_time" : "start_time",
                               "start_time and end_time go together");
            json_decref(sel);
            return NULL;
        }
        if (end < start) {
            es_field_error_set(err, "", "end_time", "must not be before start_time");
            json_decref(sel);
            return NULL;
        }
        /* The query filters apply to a time window. */
        es_filter_t f;
        es_filter_init(&f);
        if (es_filter_from_json(&f, body, err) != ES_OK) {
            es_filter_free(&f);
            json_decref(sel);
            return NULL;
        }
        es_filter_free(&f);
        char ts[ES_TIME_BUFLEN];
        es_time_format(start, ts);
        json_object_set_new(sel, "start_time", json_string(ts));
        es_time_format(end, ts);
        json_object_set_new(sel, "end_time", json_string(ts));
        json_t *filters = json_object();
        static const char *const keys[] = {"user_id", "event_type", "event_source",
                                           "event_category", "status"};
        for (size_t i = 0; i < ES_ARRAY_LEN(keys); i++) {
            const json_t *v = json_object_get(body, keys[i]);
            if (json_is_string(v))
                json_object_set(filters, keys[i], (json_t *)v);
        }
        json_object_set_new(sel, "filters", filters);
    }
    char *text = json_dumps(sel, JSON_COMPACT);
    json_decref(sel);
    return text;
}

void es_h_replay_create(h2o_req_t *req, const es_route_args_t *args)
{
    json_t *body = es_http_body_json(req);
    if (body == NULL)
        return;
    es_field_error_t err;
    char *selector = NULL;
    const char *mode, *target, *subscription;
    const json_t *dry = json_is_object(body) ? json_object_get(body, "dry_run") : NULL;
    if (!json_is_object(body)) {
        es_field_error_set(&err, "", "body", "must be a JSON object");
        goto invalid;
    }
    if (!es_json_opt_string(body, "mode", &mode, &err) ||
        !es_json_opt_string(body, "target_service", &target, &err) ||
        !es_json_opt_string(body, "subscription_id", &subscription, &err))
        goto invalid;
    if (dry != NULL && !json_is_null(dry) && !json_is_boolean(dry)) {
        es_field_error_set(&err, "", "dry_run", "must be true or false");
        goto invalid;
    }
    if (mode == NULL)
        mode = "republish";
    if (strcmp(mode, "republish") != 0 && strcmp(mode, "reprocess") != 0 &&
        strcmp(mode, "redeliver") != 0) {
        es_field_error_set(&err, "", "mode", "must be republish, reprocess or redeliver");
        goto invalid;
    }
    if (strcmp(mode, "redeliver") == 0 && subscription == NULL) {
        es_field_error_set(&err, "", "subscription_id", "required to redeliver");
        goto invalid;
    }
    if (target != NULL && (target[0] == '\0' || strlen(target) > ES_FIELD_MAX)) {
        es_field_error_set(&err, "", "target_service", "must be 1 to 255 characters");
        goto invalid;
    }
    if (target != NULL && (strcmp(target, "started") == 0 || strcmp(target, "completed") == 0)) {
        /* event.replay.started/completed announce jobs; replayed events never go there. */
        es_field_error_set(&err, "", "target_service",
                           "\"started\" and \"completed\" are reserved (event.replay.started, "
                           "event.replay.completed)");
        goto invalid;
    }
    selector = selector_of(body, &err);
    if (selector == NULL)
        goto invalid;
    if (json_is_true(dry)) {
        /* Counts and names what would be replayed; writes and publishes nothing. */
        const char *p[1] = {selector};
        es_dbreq_read(
            req,
            "SELECT (SELECT count(*) FROM event.replay_select($1::jsonb, 0, "
            "9223372036854775807, 2147483647)), (SELECT json_agg(x.event_id ORDER BY "
            "x.n) FROM (SELECT e.event_id, row_number() OVER () n FROM "
            "event.replay_select($1::jsonb, 0, 9223372036854775807, " ES_STR(DRY_RUN_IDS) ") e) x)",
            1, p, on_dry_run, NULL);
    } else {
        char id[ES_UUID_LEN + 1];
        es_uuid_v4(id);
        const char *p[5] = {id, mode, target, subscription, selector};
        es_dbreq_read(
            req,
            "INSERT INTO event.replay_jobs AS j (replay_id, mode, target_service, "
            "subscription_id, selector) SELECT $1::text, $2::text, $3::text, $4::text, "
            "$5::jsonb WHERE $2::text <> 'redeliver' OR EXISTS (SELECT 1 FROM "
            "event.event_subscriptions WHERE subscription_id = $4::text) RETURNING " JOB_COLUMNS,
            5, p, on_started, NULL);
    }
    free(selector);
    json_decref(body);
    return;
invalid:
    free(selector);
    json_decref(body);
    es_http_invalid(req, &err);
}

static void on_job(h2o_req_t *req, const PGresult *res, void *user)
{
    if (PQntuples(res) == 0) {
        es_http_errorf(req, 404, "Replay not found: %s", (const char *)user);
        return;
    }
    es_buf_t b = ES_BUF_INIT;
    render_job(&b, res, 0, 0);
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

void es_h_replay_get(h2o_req_t *req, const es_route_args_t *args)
{
    const char *p[1] = {args->v[0]};
    es_dbreq_read(req, "SELECT " JOB_COLUMNS " FROM event.replay_jobs j WHERE j.replay_id = $1", 1,
                  p, on_job, es_xstrdup(args->v[0]));
}

static void on_cancel(h2o_req_t *req, const PGresult *res, void *user)
{
    if (PQntuples(res) == 0) {
        es_http_errorf(req, 404, "Replay not found: %s", (const char *)user);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        es_http_errorf(req, 409, "status: replay %s is already %s", (const char *)user,
                       PQgetvalue(res, 0, 1 + 1));
        return;
    }
    es_buf_t b = ES_BUF_INIT;
    render_job(&b, res, 0, 1);
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

void es_h_replay_cancel(h2o_req_t *req, const es_route_args_t *args)
{
    const char *p[1] = {args->v[0]};
    /* (cancelled now?, the job as it is after) */
    es_dbreq_read(req,
                  "WITH u AS (UPDATE event.replay_jobs SET status = 'cancelled', finished_at = "
                  "now(), claim = NULL WHERE replay_id = $1 AND status IN ('pending', 'running') "
                  "RETURNING *) SELECT EXISTS (SELECT 1 FROM u), " JOB_COLUMNS
                  " FROM (SELECT * FROM u UNION ALL SELECT * FROM event.replay_jobs WHERE "
                  "replay_id = $1 AND NOT EXISTS (SELECT 1 FROM u)) j",
                  1, p, on_cancel, es_xstrdup(args->v[0]));
}

static void on_list(h2o_req_t *req, const PGresult *res, void *user)
{
    const es_config_t *cfg = es_api->cfg;
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "{\"replays\":");
    es_render_rows(&b, res, render_job);
    es_buf_puts(&b, ",\"schedules\":[");
    int64_t now = es_time_now_us() / 1000000;
    for (size_t i = 0; i < cfg->replay.nschedules; i++) {
        const es_schedule_t *s = &cfg->replay.schedules[i];
        char next[ES_TIME_BUFLEN] = "";
        int64_t t = es_cron_next(&s->cron, now);
        if (t > 0)
            es_time_format(t * 1000000, next);
        es_buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
        es_buf_json_cstr(&b, s->name);
        es_buf_puts(&b, ",\"cron\":");
        es_buf_json_cstr(&b, s->cron_expr);
        es_buf_puts(&b, ",\"mode\":");
        es_buf_json_cstr(&b, s->mode);
        es_buf_puts(&b, ",\"target_service\":");
        es_buf_json_cstr(&b, s->target_service);
        es_buf_puts(&b, ",\"next_fire_at\":");
        es_buf_json_cstr(&b, t > 0 ? next : NULL);
        es_buf_putc(&b, '}');
    }
    es_buf_puts(&b, "]}");
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

void es_h_replay_list(h2o_req_t *req, const es_route_args_t *args)
{
    es_dbreq_read(req,
                  "SELECT " JOB_COLUMNS " FROM event.replay_jobs j ORDER BY j.created_at DESC "
                  "LIMIT 100",
                  0, NULL, on_list, NULL);
}
