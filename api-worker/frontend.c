/* Public frontend collection:
 *   GET  /api/v1/events/frontend/health
 *   POST /api/v1/events/frontend        {event_type, category, page_url, user_id, session_id, data, metadata}
 *   POST /api/v1/events/frontend/batch  {"events": [...]} or a bare array
 * Stored with source "frontend" through the group-committed write, answered
 * after the commit, then published on events.frontend.{category}.{event_type}.
 * The client's address, User-Agent and Referer are taken by the server
 * (context.client) and cannot be supplied by the client. */
#include "api-worker/client.h"
#include "api-worker/http.h"
#include "api-worker/ingest.h"
#include "api-worker/routes.h"
#include "api-worker/worker.h"
#include "common/buf.h"
#include "common/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void es_h_frontend_health(h2o_req_t *req, const es_route_args_t *args)
{
    char now[ES_TIME_BUFLEN];
    es_time_format(es_time_now_us(), now);
    es_buf_t b = ES_BUF_INIT;
    es_buf_printf(&b,
                  "{\"status\":\"healthy\",\"service\":\"event_service\",\"component\":"
                  "\"frontend_collection\",\"database\":\"%s\",\"timestamp\":\"%s\"}",
                  es_pgconn_ready(es_pgpool_writer(es_api->pg)) ? "ok" : "unavailable", now);
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

/* A NATS subject token from user input: letters, digits, '-' and '_' only
 * (no dots, spaces or wildcards), at most 64 characters, never empty. */
static void subject_token(es_buf_t *b, const char *s)
{
    size_t n = 0;
    for (; *s && n < 64; s++, n++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        es_buf_putc(b, ok ? c : '_');
    }
    if (n == 0)
        es_buf_puts(b, "unknown");
}

/* Fills ev from one frontend event object. */
static es_rc_t frontend_event(h2o_req_t *req, es_event_t *ev, const json_t *in, const char *prefix,
                              es_field_error_t *err)
{
    if (!json_is_object(in)) {
        es_field_error_set(err, prefix, "event", "must be a JSON object");
        return ES_INVALID;
    }
    /* The shared validation does event_type, user_id, session_id, data,
     * metadata, timestamp; fields foreign to a frontend event are dropped. */
    json_t *copy = json_copy((json_t *)in);
    static const char *const server_side[] = {"event_source", "event_category", "context",
                                              "stream_id",    "entity_type",    "entity_id",
                                              "expected_version", "organization_id",
                                              "device_id",    "properties"};
    for (size_t i = 0; i < ES_ARRAY_LEN(server_side); i++)
        json_object_del(copy, server_side[i]);
    es_rc_t rc = es_event_from_json(ev, copy, prefix, err);
    json_decref(copy);
    if (rc != ES_OK)
        return rc;
    ev->source = ES_SOURCE_FRONTEND;
    const json_t *cat = json_object_get(in, "category");
    const json_t *page = json_object_get(in, "page_url");
    if (cat != NULL && !json_is_null(cat) && !json_is_string(cat)) {
        es_field_error_set(err, prefix, "category", "must be a string");
        return ES_INVALID;
    }
    if (page != NULL && !json_is_null(page) && !json_is_string(page)) {
        es_field_error_set(err, prefix, "page_url", "must be a string");
        return ES_INVALID;
    }
    if (ev->metadata->refcount > 1) { /* never modify the request document */
        json_t *m = json_copy(ev->metadata);
        json_decref(ev->metadata);
        ev->metadata = m;
    }
    ev->category = ES_CAT_USER_ACTION;
    if (json_is_string(cat)) {
        int c = es_enum_parse(es_category_names, ES_CAT_COUNT, json_string_value(cat));
        if (c >= 0)
            ev->category = (es_category_t)c;
        json_object_set(ev->metadata, "frontend_category", (json_t *)cat);
    }
    if (json_is_string(page))
        json_object_set(ev->metadata, "page_url", (json_t *)page);

    char ip[ES_IP_LEN];
    es_client_ip(req, ip, sizeof(ip));
    json_t *client = json_object();
    json_object_set_new(client, "ip", json_string(ip));
    static const char *const headers[][2] = {{"user-agent", "user_agent"}, {"referer", "referer"}};
    for (size_t i = 0; i < ES_ARRAY_LEN(headers); i++) {
        size_t len;
        const char *v = es_http_header(req, headers[i][0], &len);
        json_object_set_new(client, headers[i][1], v ? es_json_lossy_string(v, len) : json_null());
    }
    if (ev->context->refcount > 1) {
        json_t *c = json_copy(ev->context);
        json_decref(ev->context);
        ev->context = c;
    }
    json_object_set_new(ev->context, "client", client);
    return ES_OK;
}

static void publish(es_ingest_req_t *r)
{
    for (int i = 0; i < r->nevents; i++) {
        es_event_t *ev = &r->events[i];
        const json_t *fc = json_object_get(ev->metadata, "frontend_category");
        es_buf_t subject = ES_BUF_INIT;
        es_buf_puts(&subject, "events.frontend.");
        subject_token(&subject, json_is_string(fc) ? json_string_value(fc)
                                                   : es_category_names[ev->category]);
        es_buf_putc(&subject, '.');
        subject_token(&subject, ev->event_type);
        es_buf_t body = ES_BUF_INIT;
        es_ingest_render_event(r, i, &body);
        (void)es_nats_publish(es_api->nats, subject.data, body.data, body.len);
        es_buf_free(&subject);
        es_buf_free(&body);
    }
}

static void on_stored(es_ingest_req_t *r, int status, const char *detail)
{
    if (status != 200 && status != 201) {
        es_async_error(&r->async, status, detail);
        return;
    }
    if (status == 201)
        publish(r);
    es_buf_t b = ES_BUF_INIT;
    bool batch = r->user != NULL;
    if (batch) {
        es_buf_puts(&b, "{\"status\":\"accepted\",\"event_ids\":[");
        for (int i = 0; i < r->nevents; i++) {
            es_buf_puts(&b, i ? "," : "");
            es_buf_json_cstr(&b, r->events[i].event_id);
        }
        es_buf_printf(&b, "],\"count\":%d,\"message\":\"%d events stored\"}", r->nevents,
                      r->nevents);
    } else {
        es_buf_puts(&b, "{\"status\":\"accepted\",\"event_id\":");
        es_buf_json_cstr(&b, r->events[0].event_id);
        es_buf_puts(&b, ",\"message\":\"Event stored and published\"}");
    }
    es_async_json(&r->async, 200, b.data, b.len);
    es_buf_free(&b);
}

/* The rate limit, then the body within frontend.max_body_bytes; NULL when
 * the request was answered. */
static json_t *admit(h2o_req_t *req)
{
    char ip[ES_IP_LEN];
    int64_t retry_after = 0;
    es_client_ip(req, ip, sizeof(ip));
    if (!es_rate_allow(ip, &retry_after)) {
        char v[24];
        int n = snprintf(v, sizeof(v), "%lld", (long long)retry_after);
        h2o_iovec_t value = h2o_strdup(&req->pool, v, (size_t)n);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, value.base,
                       value.len);
        es_http_error(req, 429, "rate limit exceeded for this client; retry later");
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    if (es_http_body_raw(req, (size_t)es_api->cfg->frontend.max_body_bytes, false, &text, &len) !=
        ES_OK)
        return NULL;
    json_t *doc = es_http_parse_json(req, text, len);
    free(text);
    return doc;
}

void es_h_frontend_event(h2o_req_t *req, const es_route_args_t *args)
{
    json_t *body = admit(req);
    if (body == NULL)
        return;
    es_ingest_req_t *r = es_ingest_req_new(req, 1);
    es_field_error_t err;
    if (frontend_event(req, &r->events[0], body, "", &err) != ES_OK) {
        es_ingest_req_free(r);
        json_decref(body);
        es_http_invalid(req, &err);
        return;
    }
    json_decref(body);
    r->done = on_stored;
    es_ingest_submit(es_api->ingest, r);
}

void es_h_frontend_batch(h2o_req_t *req, const es_route_args_t *args)
{
    json_t *body = admit(req);
    if (body == NULL)
        return;
    es_field_error_t err;
    json_t *list = json_is_array(body) ? body : json_object_get(body, "events");
    int max = es_api->cfg->frontend.max_batch;
    es_ingest_req_t *r = NULL;
    if (!json_is_array(list) || json_array_size(list) == 0) {
        es_field_error_set(&err, "", "events", "must be a non-empty array of events");
        goto invalid;
    }
    if (json_array_size(list) > (size_t)max) {
        es_field_error_set(&err, "", "events", "at most %d events per batch, got %zu", max,
                           json_array_size(list));
        goto invalid;
    }
    r = es_ingest_req_new(req, (int)json_array_size(list));
    for (int i = 0; i < r->nevents; i++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "events[%d].", i);
        if (frontend_event(req, &r->events[i], json_array_get(list, (size_t)i), prefix, &err) !=
            ES_OK)
            goto invalid;
    }
    json_decref(body);
    r->user = r; /* marks a batch answer */
    r->done = on_stored;
    es_ingest_submit(es_api->ingest, r);
    return;
invalid:
    es_ingest_req_free(r);
    json_decref(body);
    es_http_invalid(req, &err);
}
