/* POST /api/v1/events/query: filters (AND), newest first, limit/offset paging
 * with the seed's total/has_more, and an opaque keyset cursor that stays fast
 * at any depth. */
#include "api-worker/dbreq.h"
#include "api-worker/filter.h"
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

void es_h_event_query(h2o_req_t *req, const es_route_args_t *args)
{
    json_t *body = es_http_body_json(req);
    if (body == NULL)
        return;
    es_field_error_t err;
    es_filter_t f;
    es_filter_init(&f);
    page_t *pg = es_xcalloc(1, sizeof(*pg));
    es_buf_t sql = ES_BUF_INIT;
    const char *cursor;
    int64_t limit, cur_ts = 0, cur_pos = 0;

    if (!json_is_object(body)) {
        es_field_error_set(&err, "", "body", "must be a JSON object");
        goto invalid;
    }
    if (es_filter_from_json(&f, body, &err) != ES_OK ||
        !es_json_opt_int(body, "limit", 100, 1, 1000, &limit, &err) ||
        !es_json_opt_int(body, "offset", 0, 0, INT64_MAX, &pg->offset, &err) ||
        !es_json_opt_string(body, "cursor", &cursor, &err))
        goto invalid;
    if (cursor != NULL && !cursor_decode(cursor, &cur_ts, &cur_pos)) {
        es_field_error_set(&err, "", "cursor", "not a valid cursor (use next_cursor as returned)");
        goto invalid;
    }
    pg->limit = (int)limit;
    pg->keyset = cursor != NULL;
    if (args->user != NULL) /* a non-admin caller sees its own events only */
        es_filter_cond(&f, "user_id", "=", "", args->user, false);

    es_buf_puts(&sql, "SELECT t.total, p.* FROM (SELECT ");
    if (f.counter_ok)
        es_buf_printf(&sql, "coalesce(sum(k.n), 0) FROM event.event_counters k WHERE true%s",
                      f.counter.data);
    else
        es_buf_printf(&sql, "count(*) FROM event.events e WHERE true%s", f.where.data);
    es_buf_printf(&sql,
                  ") t(total) LEFT JOIN LATERAL (SELECT " ES_EVENT_COLUMNS
                  " FROM event.events e WHERE true%s",
                  f.where.data);
    if (cursor != NULL) {
        char ts[ES_TIME_BUFLEN], pos[24];
        es_time_format(cur_ts, ts);
        snprintf(pos, sizeof(pos), "%" PRId64, cur_pos);
        int a = es_filter_param(&f, ts);
        int b = es_filter_param(&f, pos);
        es_buf_printf(&sql, " AND (e.timestamp, e.position) < ($%d::timestamptz, $%d::bigint)", a,
                      b);
    }
    es_buf_printf(&sql,
                  " ORDER BY e.timestamp DESC, e.position DESC LIMIT %d OFFSET %lld) p ON true"
                  " ORDER BY p.timestamp DESC NULLS LAST, p.position DESC",
                  pg->limit + 1, pg->keyset ? 0LL : (long long)pg->offset);
    es_dbreq_read(req, sql.data, f.n, (const char *const *)f.params, on_page, pg);
    es_buf_free(&sql);
    es_filter_free(&f);
    json_decref(body);
    return;
invalid:
    free(pg);
    es_filter_free(&f);
    json_decref(body);
    es_http_invalid(req, &err);
}
