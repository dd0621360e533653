#include "common/event_row.h"

#include "common/timeutil.h"

#include <stdlib.h>
#include <string.h>

typedef enum { R_STR, R_RAW, R_TIME, R_NUM, R_LIST } render_t;

static const struct {
    const char *name;
    render_t how;
} cols[ES_EVENT_NCOLS] = {
    {"event_id", R_STR},        {"event_type", R_STR},
    {"event_source", R_STR},    {"event_category", R_STR},
    {"user_id", R_STR},         {"session_id", R_STR},
    {"organization_id", R_STR}, {"device_id", R_STR},
    {"correlation_id", R_STR},  {"data", R_RAW},
    {"metadata", R_RAW},        {"context", R_RAW},
    {"properties", R_RAW},      {"status", R_STR},
    {"processed_at", R_TIME},   {"processors", R_LIST},
    {"error_message", R_STR},   {"retry_count", R_NUM},
    {"timestamp", R_TIME},      {"created_at", R_TIME},
    {"updated_at", R_TIME},     {"version", R_STR},
    {"schema_version", R_STR},  {"stream_id", R_STR},
    {"stream_version", R_NUM},  {"position", R_NUM},
};

int64_t es_pg_int(const PGresult *res, int row, int col)
{
    int64_t v = 0;
    if (PQgetisnull(res, row, col) ||
        !es_parse_int64(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col), &v))
        return 0;
    return v;
}

bool es_pg_time_us(const PGresult *res, int row, int col, int64_t *us)
{
    if (PQgetisnull(res, row, col))
        return false;
    const char *v = PQgetvalue(res, row, col);
    return es_time_parse(v, (size_t)PQgetlength(res, row, col), us);
}

void es_render_rows(es_buf_t *b, const PGresult *res, es_row_render_fn render)
{
    es_buf_putc(b, '[');
    for (int i = 0; i < PQntuples(res); i++) {
        if (i > 0)
            es_buf_putc(b, ',');
        render(b, res, i, 0);
    }
    es_buf_putc(b, ']');
}

void es_render_pg_time(es_buf_t *b, const PGresult *res, int row, int col)
{
    int64_t us;
    if (!es_pg_time_us(res, row, col, &us)) {
        es_buf_puts(b, "null");
        return;
    }
    char t[ES_TIME_BUFLEN];
    size_t n = es_time_format(us, t);
    es_buf_putc(b, '"');
    es_buf_append(b, t, n);
    es_buf_putc(b, '"');
}

void es_event_row_render(es_buf_t *b, const PGresult *res, int row, int col0)
{
    es_buf_putc(b, '{');
    for (int i = 0; i < ES_EVENT_NCOLS; i++) {
        int c = col0 + i;
        if (i > 0)
            es_buf_putc(b, ',');
        es_buf_putc(b, '"');
        es_buf_puts(b, cols[i].name);
        es_buf_puts(b, "\":");
        bool null = PQgetisnull(res, row, c);
        const char *v = PQgetvalue(res, row, c);
        size_t len = (size_t)PQgetlength(res, row, c);
        switch (cols[i].how) {
        case R_STR:
            if (null)
                es_buf_puts(b, "null");
            else
                es_buf_json_str(b, v, len);
            break;
        case R_RAW:
            if (null)
                es_buf_puts(b, "{}");
            else
                es_buf_append(b, v, len);
            break;
        case R_LIST:
            if (null)
                es_buf_puts(b, "[]");
            else
                es_buf_append(b, v, len);
            break;
        case R_NUM:
            if (null)
                es_buf_puts(b, "null");
            else
                es_buf_append(b, v, len);
            break;
        case R_TIME:
            es_render_pg_time(b, res, row, c);
            break;
        }
    }
    es_buf_putc(b, '}');
}

static void put_time(es_buf_t *b, int64_t us)
{
    char t[ES_TIME_BUFLEN];
    size_t n = es_time_format(us, t);
    es_buf_putc(b, '"');
    es_buf_append(b, t, n);
    es_buf_putc(b, '"');
}

void es_event_render_new(es_buf_t *b, es_event_t *ev, int64_t position)
{
    es_event_freeze(ev);
    es_buf_puts(b, "{\"event_id\":");
    es_buf_json_cstr(b, ev->event_id);
    es_buf_json_key(b, "event_type");
    es_buf_json_cstr(b, ev->event_type);
    es_buf_json_key(b, "event_source");
    es_buf_json_cstr(b, es_source_names[ev->source]);
    es_buf_json_key(b, "event_category");
    es_buf_json_cstr(b, es_category_names[ev->category]);
    es_buf_json_key(b, "user_id");
    es_buf_json_cstr(b, ev->user_id);
    es_buf_json_key(b, "session_id");
    es_buf_json_cstr(b, ev->session_id);
    es_buf_json_key(b, "organization_id");
    es_buf_json_cstr(b, ev->organization_id);
    es_buf_json_key(b, "device_id");
    es_buf_json_cstr(b, ev->device_id);
    es_buf_json_key(b, "correlation_id");
    es_buf_json_cstr(b, ev->correlation_id);
    es_buf_json_key(b, "data");
    es_buf_puts(b, ev->text[0]);
    es_buf_json_key(b, "metadata");
    es_buf_puts(b, ev->text[1]);
    es_buf_json_key(b, "context");
    es_buf_puts(b, ev->text[2]);
    es_buf_json_key(b, "properties");
    es_buf_puts(b, ev->text[3]);
    es_buf_puts(b, ",\"status\":\"pending\",\"processed_at\":null,\"processors\":[],"
                   "\"error_message\":null,\"retry_count\":0");
    es_buf_json_key(b, "timestamp");
    put_time(b, ev->timestamp_us);
    es_buf_json_key(b, "created_at");
    put_time(b, ev->created_at_us);
    es_buf_json_key(b, "updated_at");
    put_time(b, ev->created_at_us);
    es_buf_puts(b, ",\"version\":\"1.0.0\",\"schema_version\":\"1.0.0\","
                   "\"stream_id\":null,\"stream_version\":null");
    es_buf_printf(b, ",\"position\":%lld}", (long long)position);
}
