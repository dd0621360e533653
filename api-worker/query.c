/* POST /api/v1/events/query: filters (AND), newest first, limit/offset paging
 * with the seed's total/has_more, and an opaque keyset cursor that stays fast
 * at any depth. */
#include "api-worker/dbreq.h"
#include "api-worker/http.h"
#include "api-worker/routes.h"
#include "common/b64.h"
#include "common/buf.h"
#include "common/event.h"
#include "common/event_row.h"
#include "common/timeutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARAMS 16

/* A WHERE clause under construction, with its text parameters. */
typedef struct {
    es_buf_t where;   /* over event.events e */
    es_buf_t counter; /* the same filter over event.event_counters k, when expressible */
    bool counter_ok;
    char *params[MAX_PARAMS];
    int n;
} filter_t;

static int add_param(filter_t *f, const char *v)
{
    f->params[f->n] = es_xstrdup(v);
    return ++f->n;
}

static void add_cond(filter_t *f, const char *column, const char *op, const char *cast,
                     const char *value, bool in_counters)
{
    int i = add_param(f, value);
    es_buf_printf(&f->where, " AND e.%s %s $%d%s", column, op, i, cast);
    if (in_counters)
        es_buf_printf(&f->counter, " AND k.%s %s $%d%s", column, op, i, cast);
    else
        f->counter_ok = false;
}

static void filter_free(filter_t *f)
{
    es_buf_free(&f->where);
    es_buf_free(&f->counter);
    for (int i = 0; i < f->n; i++)
        free(f->params[i]);
}

typedef struct {
    int limit;
    int64_t offset;
    bool keyset;
} page_t;

static char *cursor_encode(int64_t ts_us, int64_t position)
{
    char raw[64];
    int n = snprintf(raw, sizeof(raw), "%" PRId64 ":%" PRId64, ts_us, position);
    return es_b64_encode((const unsigned char *)raw, (size_t)n, true);
}

static bool cursor_decode(const char *s, int64_t *ts_us, int64_t *position)
{
    size_t len = 0;
    unsigned char *raw = es_b64_decode(s, strlen(s), &len);
    if (raw == NULL)
        return false;
    bool ok = false;
    char *colon = memchr(raw, ':', len);
    if (colon != NULL)
        ok = es_parse_int64((char *)raw, (size_t)(colon - (char *)raw), ts_us) &&
             es_parse_int64(colon + 1, len - (size_t)(colon + 1 - (char *)raw), position);
    free(raw);
    return ok;
}

static void on_page(h2o_req_t *req, const PGresult *res, void *user)
{
    page_t *pg = user;
    int nrows = PQntuples(res);
    long long total = nrows > 0 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    int shown = 0;
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "{\"events\":[");
    for (int i = 0; i < nrows && shown < pg->limit; i++) {
        if (PQgetisnull(res, i, 1))
            continue; /* the count-only row of an empty page */
        if (shown++ > 0)
            es_buf_putc(&b, ',');
        es_event_row_render(&b, res, i, 1);
    }
    bool more_rows = nrows > pg->limit && !PQgetisnull(res, pg->limit, 1);
    char *next = NULL;
    if (more_rows) {
        int last = pg->limit - 1;
        int64_t ts = 0, pos = 0;
        if (es_pg_time_us(res, last, 1 + ES_COL_TIMESTAMP, &ts) &&
            es_parse_int64(PQgetvalue(res, last, 1 + ES_COL_POSITION),
                           (size_t)PQgetlength(res, last, 1 + ES_COL_POSITION), &pos))
            next = cursor_encode(ts, pos);
    }
    bool has_more = pg->keyset ? more_rows : pg->offset + pg->limit < total;
    es_buf_printf(&b, "],\"total\":%lld,\"limit\":%d,\"offset\":%lld,\"has_more\":%s,", total,
                  pg->limit, (long long)pg->offset, has_more ? "true" : "false");
    es_buf_puts(&b, "\"next_cursor\":");
    es_buf_json_cstr(&b, next);
    es_buf_putc(&b, '}');
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
    free(next);
}

/* Reads an optional string filter; false (with err) if it is not a string. */
static bool str_field(const json_t *body, const char *key, const char **out,
                      es_field_error_t *err)
{
    const json_t *v = json_object_get(body, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        es_field_error_set(err, "", key, "must be a string");
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool enum_field(const json_t *body, const char *key, const char *const *names, int count,
                       const char **out, es_field_error_t *err)
{
    if (!str_field(body, key, out, err))
        return false;
    if (*out != NULL && es_enum_parse(names, count, *out) < 0) {
        es_field_error_set(err, "", key, "not a valid value");
        return false;
    }
    return true;
}

static bool time_field(const json_t *body, const char *key, int64_t *us, bool *present,
                       es_field_error_t *err)
{
    const char *s = NULL;
    *present = false;
    if (!str_field(body, key, &s, err))
        return false;
    if (s == NULL)
        return true;
    if (!es_time_parse(s, strlen(s), us)) {
        es_field_error_set(err, "", key, "not a valid date-time (expected ISO 8601)");
        return false;
    }
    *present = true;
    return true;
}

static bool int_field(const json_t *body, const char *key, int64_t def, int64_t min, int64_t max,
                      int64_t *out, es_field_error_t *err)
{
    const json_t *v = json_object_get(body, key);
    *out = def;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_integer(v)) {
        es_field_error_set(err, "", key, "must be an integer");
        return false;
    }
    *out = json_integer_value(v);
    if (*out < min || *out > max) {
        if (max == INT64_MAX)
            es_field_error_set(err, "", key, "must be >= %lld", (long long)min);
        else
            es_field_error_set(err, "", key, "must be between %lld and %lld", (long long)min,
                               (long long)max);
        return false;
    }
    return true;
}

void es_h_event_query(h2o_req_t *req, const es_route_args_t *args)
{
    json_t *body = es_http_body_json(req);
    if (body == NULL)
        return;
    es_field_error_t err;
    filter_t f = {ES_BUF_INIT, ES_BUF_INIT, true, {NULL}, 0};
    page_t *pg = es_xcalloc(1, sizeof(*pg));
    es_buf_t sql = ES_BUF_INIT;
    const char *user_id, *event_type, *source, *category, *status, *correlation_id, *cursor;
    int64_t limit, start_us = 0, end_us = 0, cur_ts = 0, cur_pos = 0;
    bool has_start, has_end;

    if (!json_is_object(body)) {
        es_field_error_set(&err, "", "body", "must be a JSON object");
        goto invalid;
    }
    if (!str_field(body, "user_id", &user_id, &err) ||
        !str_field(body, "event_type", &event_type, &err) ||
        !enum_field(body, "event_source", es_source_names, ES_SOURCE_COUNT, &source, &err) ||
        !enum_field(body, "event_category", es_category_names, ES_CAT_COUNT, &category, &err) ||
        !enum_field(body, "status", es_status_names, ES_STATUS_COUNT, &status, &err) ||
        !str_field(body, "correlation_id", &correlation_id, &err) ||
        !time_field(body, "start_time", &start_us, &has_start, &err) ||
        !time_field(body, "end_time", &end_us, &has_end, &err) ||
        !int_field(body, "limit", 100, 1, 1000, &limit, &err) ||
        !int_field(body, "offset", 0, 0, INT64_MAX, &pg->offset, &err) ||
        !str_field(body, "cursor", &cursor, &err))
        goto invalid;
    if (has_start && has_end && end_us < start_us) {
        es_field_error_set(&err, "", "end_time", "must not be before start_time");
        goto invalid;
    }
    if (cursor != NULL && !cursor_decode(cursor, &cur_ts, &cur_pos)) {
        es_field_error_set(&err, "", "cursor", "not a valid cursor (use next_cursor as returned)");
        goto invalid;
    }
    pg->limit = (int)limit;
    pg->keyset = cursor != NULL;

    if (user_id)
        add_cond(&f, "user_id", "=", "", user_id, false);
    if (event_type)
        add_cond(&f, "event_type", "=", "", event_type, true);
    if (source)
        add_cond(&f, "event_source", "=", "", source, true);
    if (category)
        add_cond(&f, "event_category", "=", "", category, true);
    if (status)
        add_cond(&f, "status", "=", "", status, true);
    if (correlation_id)
        add_cond(&f, "correlation_id", "=", "", correlation_id, false);
    char ts[ES_TIME_BUFLEN];
    if (has_start) {
        es_time_format(start_us, ts);
        add_cond(&f, "timestamp", ">=", "::timestamptz", ts, false);
    }
    if (has_end) {
        es_time_format(end_us, ts);
        add_cond(&f, "timestamp", "<=", "::timestamptz", ts, false);
    }

    es_buf_puts(&sql, "SELECT t.total, p.* FROM (SELECT ");
    if (f.counter_ok)
        es_buf_printf(&sql, "coalesce(sum(k.n), 0) FROM event.event_counters k WHERE true%s",
                      f.counter.data ? f.counter.data : "");
    else
        es_buf_printf(&sql, "count(*) FROM event.events e WHERE true%s",
                      f.where.data ? f.where.data : "");
    es_buf_printf(&sql, ") t(total) LEFT JOIN LATERAL (SELECT " ES_EVENT_COLUMNS
                        " FROM event.events e WHERE true%s",
                  f.where.data ? f.where.data : "");
    if (cursor != NULL) {
        es_time_format(cur_ts, ts);
        int a = add_param(&f, ts);
        char pos[24];
        snprintf(pos, sizeof(pos), "%" PRId64, cur_pos);
        int b = add_param(&f, pos);
        es_buf_printf(&sql, " AND (e.timestamp, e.position) < ($%d::timestamptz, $%d::bigint)", a,
                      b);
    }
    es_buf_printf(&sql,
                  " ORDER BY e.timestamp DESC, e.position DESC LIMIT %d OFFSET %lld) p ON true"
                  " ORDER BY p.timestamp DESC NULLS LAST, p.position DESC",
                  pg->limit + 1, pg->keyset ? 0LL : (long long)pg->offset);
    es_dbreq_read(req, sql.data, f.n, (const char *const *)f.params, on_page, pg);
    es_buf_free(&sql);
    filter_free(&f);
    json_decref(body);
    return;
invalid:
    free(pg);
    filter_free(&f);
    json_decref(body);
    es_http_invalid(req, &err);
}
