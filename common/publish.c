#include "common/publish.h"

#include "common/event_row.h"
#include "common/ids.h"
#include "common/timeutil.h"

#include <string.h>

void es_publish_envelope(es_buf_t *b, const char *type, const char *data, size_t len)
{
    char id[ES_UUID_LEN + 1], now[ES_TIME_BUFLEN];
    es_uuid_v4(id);
    es_time_format(es_time_now_us(), now);
    es_buf_printf(b, "{\"id\":\"%s\",\"type\":", id);
    es_buf_json_cstr(b, type);
    es_buf_printf(b, ",\"source\":\"event_service\",\"timestamp\":\"%s\",\"data\":", now);
    es_buf_append(b, data, len);
    es_buf_putc(b, '}');
}

static void put_str_col(es_buf_t *b, const char *key, const PGresult *res, int row, int col)
{
    es_buf_printf(b, "\"%s\":", key);
    if (PQgetisnull(res, row, col))
        es_buf_puts(b, "null");
    else
        es_buf_json_str(b, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}

void es_publish_stored_payload(es_buf_t *b, const PGresult *res, int row, int col0)
{
    es_buf_t data = ES_BUF_INIT;
    es_buf_putc(&data, '{');
    put_str_col(&data, "event_id", res, row, col0 + ES_COL_EVENT_ID);
    es_buf_putc(&data, ',');
    put_str_col(&data, "event_type", res, row, col0 + ES_COL_EVENT_TYPE);
    es_buf_putc(&data, ',');
    put_str_col(&data, "event_source", res, row, col0 + ES_COL_SOURCE);
    es_buf_putc(&data, ',');
    put_str_col(&data, "event_category", res, row, col0 + ES_COL_CATEGORY);
    es_buf_putc(&data, ',');
    put_str_col(&data, "user_id", res, row, col0 + ES_COL_USER_ID);
    es_buf_putc(&data, ',');
    put_str_col(&data, "organization_id", res, row, col0 + ES_COL_ORGANIZATION_ID);
    es_buf_puts(&data, ",\"timestamp\":");
    es_render_pg_time(&data, res, row, col0 + ES_COL_TIMESTAMP);
    es_buf_puts(&data, ",\"stream_id\":");
    if (PQgetisnull(res, row, col0 + ES_COL_STREAM_ID))
        es_buf_puts(&data, "null");
    else
        es_buf_json_cstr(&data, PQgetvalue(res, row, col0 + ES_COL_STREAM_ID));
    es_buf_printf(&data, ",\"position\":%s,\"data\":", PQgetvalue(res, row, col0 + ES_COL_POSITION));
    if (PQgetisnull(res, row, col0 + ES_COL_DATA))
        es_buf_puts(&data, "{}");
    else
        es_buf_append(&data, PQgetvalue(res, row, col0 + ES_COL_DATA),
                      (size_t)PQgetlength(res, row, col0 + ES_COL_DATA));
    es_buf_putc(&data, '}');
    es_publish_envelope(b, "event.stored", data.data, data.len);
    es_buf_free(&data);
}

es_rc_t es_publish_stored(es_pubset_t *p, const PGresult *res, int row, int col0)
{
    es_buf_t b = ES_BUF_INIT;
    es_publish_stored_payload(&b, res, row, col0);
    es_rc_t rc = es_pubset_publish(p, "event.stored", b.data, b.len,
                                   PQgetvalue(res, row, col0 + ES_COL_EVENT_ID));
    es_buf_free(&b);
    return rc;
}
