/* GET /api/v1/events/stream/{stream_id}[?from_version=N][&limit=M] */
#include "api-worker/dbreq.h"
#include "api-worker/http.h"
#include "api-worker/routes.h"
#include "common/buf.h"
#include "common/event_row.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_DEFAULT_LIMIT 1000
#define STREAM_MAX_LIMIT 10000

static void on_stream(h2o_req_t *req, const PGresult *res, void *user)
{
    const char *stream_id = user;
    const char *colon = strchr(stream_id, ':');
    size_t tlen = colon ? (size_t)(colon - stream_id) : strlen(stream_id);
    const char *entity_id = colon ? colon + 1 : stream_id;
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "{\"stream_id\":");
    es_buf_json_cstr(&b, stream_id);
    es_buf_puts(&b, ",\"stream_type\":");
    es_buf_json_str(&b, stream_id, tlen);
    es_buf_puts(&b, ",\"entity_type\":");
    es_buf_json_str(&b, stream_id, tlen);
    es_buf_puts(&b, ",\"entity_id\":");
    es_buf_json_cstr(&b, entity_id);
    es_buf_puts(&b, ",\"events\":[");
    int shown = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, 1))
            continue;
        if (shown++ > 0)
            es_buf_putc(&b, ',');
        es_event_row_render(&b, res, i, 1);
    }
    es_buf_printf(&b, "],\"version\":%s}", PQntuples(res) ? PQgetvalue(res, 0, 0) : "0");
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

/* Reads an integer query parameter into *out; answers 422 and returns false
 * when it is present but not an integer within [min, max]. */
static bool query_int(h2o_req_t *req, const char *name, int64_t min, int64_t max, int64_t *out)
{
    char v[32];
    if (!es_http_query(req, name, v, sizeof(v)))
        return true;
    if (!es_parse_int64(v, strlen(v), out) || *out < min || *out > max) {
        es_field_error_t err;
        snprintf(err.field, sizeof(err.field), "%s", name);
        snprintf(err.msg, sizeof(err.msg), "must be an integer between %lld and %lld",
                 (long long)min, (long long)max);
        es_http_invalid(req, &err);
        return false;
    }
    return true;
}

void es_h_stream_get(h2o_req_t *req, const es_route_args_t *args)
{
    int64_t from = 0, limit = STREAM_DEFAULT_LIMIT;
    if (!query_int(req, "from_version", 0, INT32_MAX, &from) ||
        !query_int(req, "limit", 1, STREAM_MAX_LIMIT, &limit))
        return;
    char from_s[24], limit_s[24];
    snprintf(from_s, sizeof(from_s), "%lld", (long long)from);
    snprintf(limit_s, sizeof(limit_s), "%lld", (long long)limit);
    const char *params[4] = {args->v[0], from_s, limit_s, args->user};
    /* One statement: the head version and the events come from one snapshot. */
    es_dbreq_read(req,
                  "SELECT h.v, p.* FROM (SELECT coalesce((SELECT s.version FROM "
                  "event.event_streams s WHERE s.stream_id = $1), 0)) h(v) "
                  "LEFT JOIN LATERAL (SELECT " ES_EVENT_COLUMNS " FROM event.events e "
                  "WHERE e.stream_id = $1 AND e.stream_version >= $2::int "
                  "AND ($4::text IS NULL OR e.user_id = $4::text) "
                  "ORDER BY e.stream_version LIMIT $3::int) p ON true "
                  "ORDER BY p.stream_version NULLS FIRST",
                  4, params, on_stream, es_xstrdup(args->v[0]));
}
