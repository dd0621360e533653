/* Deliveries of a subscription:
 *   GET  /api/v1/events/subscriptions/{id}/deliveries[?status=&limit=&cursor=]
 *   GET  /api/v1/events/subscriptions/{id}/deliveries/{delivery_id}  (with attempts)
 *   POST /api/v1/events/subscriptions/{id}/deliveries/{delivery_id}/resend
 *   POST /api/v1/events/subscriptions/{id}/recover  {"since": time}
 */
#include "api-worker/dbreq.h"
#include "api-worker/filter.h"
#include "api-worker/http.h"
#include "api-worker/routes.h"
#include "api-worker/worker.h"
#include "common/b64.h"
#include "common/buf.h"
#include "common/event_row.h"
#include "common/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Over event.deliveries d. */
#define DELIVERY_COLUMNS                                                                           \
    "d.delivery_id, d.subscription_id, d.event_id, d.status, d.attempts, d.next_attempt_at, "      \
    "d.last_status_code, d.last_error, d.created_at, d.updated_at, d.delivered_at"
#define DELIVERY_NCOLS 11

static void render_delivery(es_buf_t *b, const PGresult *r, int row, int c)
{
    bool waiting = strcmp(PQgetvalue(r, row, c + 3), "pending") == 0 ||
                   strcmp(PQgetvalue(r, row, c + 3), "failed") == 0;
    es_buf_puts(b, "{\"delivery_id\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c + 0));
    es_buf_puts(b, ",\"subscription_id\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c + 1));
    es_buf_puts(b, ",\"event_id\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c + 2));
    es_buf_puts(b, ",\"status\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c + 3));
    es_buf_printf(b, ",\"attempts\":%s,\"next_attempt_at\":", PQgetvalue(r, row, c + 4));
    if (waiting)
        es_render_pg_time(b, r, row, c + 5);
    else
        es_buf_puts(b, "null");
    es_buf_printf(b, ",\"last_status_code\":%s,\"last_error\":",
                  PQgetisnull(r, row, c + 6) ? "null" : PQgetvalue(r, row, c + 6));
    es_buf_json_cstr(b, PQgetisnull(r, row, c + 7) ? NULL : PQgetvalue(r, row, c + 7));
    es_buf_puts(b, ",\"created_at\":");
    es_render_pg_time(b, r, row, c + 8);
    es_buf_puts(b, ",\"updated_at\":");
    es_render_pg_time(b, r, row, c + 9);
    es_buf_puts(b, ",\"delivered_at\":");
    es_render_pg_time(b, r, row, c + 10);
    es_buf_putc(b, '}');
}

static void reply_missing(h2o_req_t *req, const char *what, const char *id)
{
    es_http_errorf(req, 404, "%s not found: %s", what, id);
}

typedef struct {
    char *subscription_id;
    int limit;
} page_t;

static void page_free(void *p)
{
    page_t *pg = p;
    free(pg->subscription_id);
    free(pg);
}

/* Rows: (subscription exists) then the deliveries from column 1; a lone row
 * with NULL delivery columns when the page is empty. */
static void on_page(h2o_req_t *req, const PGresult *res, void *user)
{
    page_t *pg = user;
    int n = PQntuples(res);
    if (n == 0) {
        reply_missing(req, "Subscription", pg->subscription_id);
        return;
    }
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "{\"deliveries\":[");
    int shown = 0;
    for (int i = 0; i < n && shown < pg->limit; i++) {
        if (PQgetisnull(res, i, 1))
            continue;
        if (shown++ > 0)
            es_buf_putc(&b, ',');
        render_delivery(&b, res, i, 1);
    }
    es_buf_puts(&b, "],\"next_cursor\":");
    if (n > pg->limit && !PQgetisnull(res, pg->limit, 1)) {
        int last = pg->limit - 1;
        int64_t ts = 0;
        if (!es_pg_time_us(res, last, 1 + 8, &ts))
            ts = 0;
        char *raw = es_xasprintf("%lld:%s", (long long)ts, PQgetvalue(res, last, 1));
        char *cursor = es_b64_encode((const unsigned char *)raw, strlen(raw), true);
        es_buf_json_cstr(&b, cursor);
        free(cursor);
        free(raw);
    } else {
        es_buf_puts(&b, "null");
    }
    es_buf_putc(&b, '}');
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

void es_h_deliveries_list(h2o_req_t *req, const es_route_args_t *args)
{
    char status[32] = "", limit_s[16] = "", cursor[256] = "";
    es_field_error_t err;
    bool has_status = es_http_query(req, "status", status, sizeof(status));
    if (has_status && strcmp(status, "pending") != 0 && strcmp(status, "delivered") != 0 &&
        strcmp(status, "failed") != 0 && strcmp(status, "dead") != 0) {
        es_field_error_set(&err, "", "status", "must be pending, delivered, failed or dead");
        es_http_invalid(req, &err);
        return;
    }
    int64_t limit = 100;
    if (es_http_query(req, "limit", limit_s, sizeof(limit_s)) &&
        (!es_parse_int64(limit_s, strlen(limit_s), &limit) || limit < 1 || limit > 1000)) {
        snprintf(err.field, sizeof(err.field), "limit");
        snprintf(err.msg, sizeof(err.msg), "must be an integer from 1 to 1000");
        es_http_invalid(req, &err);
        return;
    }
    char cur_ts[ES_TIME_BUFLEN] = "", *cur_id = NULL;
    if (es_http_query(req, "cursor", cursor, sizeof(cursor)) && cursor[0] != '\0') {
        size_t len = 0;
        unsigned char *raw = es_b64_decode(cursor, strlen(cursor), &len);
        char *colon = raw ? memchr(raw, ':', len) : NULL;
        int64_t ts = 0;
        if (colon == NULL || !es_parse_int64((char *)raw, (size_t)(colon - (char *)raw), &ts)) {
            free(raw);
            snprintf(err.field, sizeof(err.field), "cursor");
            snprintf(err.msg, sizeof(err.msg), "not a valid cursor (use next_cursor as returned)");
            es_http_invalid(req, &err);
            return;
        }
        es_time_format(ts, cur_ts);
        cur_id = es_xstrndup(colon + 1, len - (size_t)(colon + 1 - (char *)raw));
        free(raw);
    }
    page_t *pg = es_xcalloc(1, sizeof(*pg));
    pg->subscription_id = es_xstrdup(args->v[0]);
    pg->limit = (int)limit;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", pg->limit + 1);
    const char *params[5] = {args->v[0], has_status ? status : NULL, lim, cur_id ? cur_ts : NULL,
                             cur_id};
    /* Keyset paging, newest first, on deliveries_by_subscription. */
    es_dbreq_read_ex(
        req,
        "SELECT 1, p.* FROM event.event_subscriptions s LEFT JOIN LATERAL (SELECT " DELIVERY_COLUMNS
        " FROM event.deliveries d WHERE d.subscription_id = $1 "
        "AND ($2::text IS NULL OR d.status = $2) AND ($4::timestamptz IS NULL OR "
        "(d.created_at, d.delivery_id) < ($4::timestamptz, $5)) "
        "ORDER BY d.created_at DESC, d.delivery_id DESC LIMIT $3::int) p ON true "
        "WHERE s.subscription_id = $1 ORDER BY p.created_at DESC, p.delivery_id DESC",
        5, params, on_page, pg, page_free);
    free(cur_id);
}

static void on_delivery(h2o_req_t *req, const PGresult *res, void *user)
{
    if (PQntuples(res) == 0) {
        reply_missing(req, "Delivery", user);
        return;
    }
    es_buf_t b = ES_BUF_INIT;
    render_delivery(&b, res, 0, 0);
    b.len--; /* reopen the object for the attempts */
    es_buf_puts(&b, ",\"attempt_log\":");
    es_buf_puts(&b,
                PQgetisnull(res, 0, DELIVERY_NCOLS) ? "[]" : PQgetvalue(res, 0, DELIVERY_NCOLS));
    es_buf_putc(&b, '}');
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

void es_h_deliveries_get(h2o_req_t *req, const es_route_args_t *args)
{
    const char *params[2] = {args->v[0], args->v[1]};
    es_dbreq_read(req,
                  "SELECT " DELIVERY_COLUMNS ", (SELECT json_agg(json_build_object('attempt', "
                  "a.attempt, 'attempted_at', to_char(a.attempted_at AT TIME ZONE 'UTC', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'status_code', a.status_code, "
                  "'latency_ms', a.latency_ms, 'error', a.error, 'response', a.response, "
                  "'trigger', a.trigger) ORDER BY a.attempt_id) FROM event.delivery_attempts a "
                  "WHERE a.delivery_id = d.delivery_id) FROM event.deliveries d "
                  "WHERE d.subscription_id = $1 AND d.delivery_id = $2",
                  2, params, on_delivery, es_xstrdup(args->v[1]));
}

static void on_resent(h2o_req_t *req, const PGresult *res, void *user)
{
    if (PQntuples(res) == 0) {
        reply_missing(req, "Delivery", user);
        return;
    }
    (void)es_nats_publish(es_api->nats, ES_WAKE_DELIVERY, "", 0);
    es_buf_t b = ES_BUF_INIT;
    render_delivery(&b, res, 0, 0);
    es_http_json(req, 202, b.data, b.len);
    es_buf_free(&b);
}

void es_h_deliveries_resend(h2o_req_t *req, const es_route_args_t *args)
{
    const char *params[2] = {args->v[0], args->v[1]};
    es_dbreq_read(req,
                  "SELECT " DELIVERY_COLUMNS " FROM event.resend_deliveries($1, ARRAY[$2], NULL) d",
                  2, params, on_resent, es_xstrdup(args->v[1]));
}

static void on_recovered(h2o_req_t *req, const PGresult *res, void *user)
{
    if (PQgetisnull(res, 0, 0)) {
        reply_missing(req, "Subscription", user);
        return;
    }
    (void)es_nats_publish(es_api->nats, ES_WAKE_DELIVERY, "", 0);
    es_buf_t b = ES_BUF_INIT;
    es_buf_printf(&b, "{\"recovered\":%s,\"delivery_ids\":%s}", PQgetvalue(res, 0, 1),
                  PQgetisnull(res, 0, 2) ? "[]" : PQgetvalue(res, 0, 2));
    es_http_json(req, 202, b.data, b.len);
    es_buf_free(&b);
}

void es_h_subscriptions_recover(h2o_req_t *req, const es_route_args_t *args)
{
    json_t *body = es_http_body_json(req);
    if (body == NULL)
        return;
    es_field_error_t err;
    int64_t since = 0;
    bool has_since = false;
    if (!json_is_object(body)) {
        es_field_error_set(&err, "", "body", "must be a JSON object");
    } else if (es_json_opt_time(body, "since", &since, &has_since, &err) && !has_since) {
        es_field_error_set(&err, "", "since", "field required (an ISO 8601 time)");
    }
    json_decref(body);
    if (!has_since) {
        es_http_invalid(req, &err);
        return;
    }
    char ts[ES_TIME_BUFLEN];
    es_time_format(since, ts);
    const char *params[2] = {args->v[0], ts};
    es_dbreq_read(req,
                  "SELECT (SELECT 1 FROM event.event_subscriptions WHERE subscription_id = $1), "
                  "count(r.*), json_agg(r.delivery_id) FROM event.resend_deliveries($1, NULL, "
                  "$2::timestamptz) r",
                  2, params, on_recovered, es_xstrdup(args->v[0]));
}
