/* POST /api/v1/events/create, POST /api/v1/events/batch, GET /api/v1/events/{id} */
#include "api-worker/dbreq.h"
#include "api-worker/http.h"
#include "api-worker/ingest.h"
#include "api-worker/routes.h"
#include "api-worker/worker.h"
#include "common/buf.h"
#include "common/event_row.h"
#include "common/ids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string.h>

/* W3C trace context: "00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>". */
static bool traceparent_valid(const char *v, size_t len)
{
    if (len != 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (i == 2 || i == 35 || i == 52)
            continue;
        char c = v[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

/* A valid traceparent header is kept in the event's context, and its trace id
 * is the correlation_id unless the client gave one. */
static void apply_traceparent(h2o_req_t *req, es_event_t *ev)
{
    size_t len;
    const char *v = es_http_header(req, "traceparent", &len);
    if (v == NULL || !traceparent_valid(v, len))
        return;
    if (json_object_get(ev->context, "traceparent") == NULL) {
        if (json_object_size(ev->context) > 0 && ev->context->refcount > 1) {
            json_t *copy = json_deep_copy(ev->context); /* never modify the request body */
            json_decref(ev->context);
            ev->context = copy;
        }
        json_object_set_new(ev->context, "traceparent", json_stringn(v, len));
    }
    if (ev->correlation_id == NULL) {
        char trace_id[33];
        memcpy(trace_id, v + 3, 32);
        trace_id[32] = '\0';
        es_event_set_str(&ev->correlation_id, trace_id);
    }
}

/* Idempotency-Key: an event without its own event_id gets one derived from
 * the key (and its index in a batch), and counts as client-identified: a
 * repeat with the same content answers the stored event, other content 409.
 * Returns false (after answering 422) when the header is unusable. */
static bool apply_idempotency_key(h2o_req_t *req, const es_route_args_t *args, es_event_t *ev,
                                  int index, const json_t *content)
{
    size_t len;
    const char *key = es_http_header(req, "idempotency-key", &len);
    if (key == NULL || ev->client_id)
        return true;
    bool ok = len > 0 && len <= ES_FIELD_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)key[i] >= 0x20 && key[i] != 0x7f;
    if (!ok) {
        es_http_error(req, 422, "Idempotency-Key: must be 1 to 255 printable characters");
        return false;
    }
    /* A caller's keys are its own: two users' same key names two events. */
    char *name = args->user == NULL
                     ? es_xasprintf("event_service/idempotency-key/%.*s/%d", (int)len, key, index)
                     : es_xasprintf("event_service/idempotency-key/%s/%.*s/%d", args->user,
                                    (int)len, key, index);
    es_uuid_from_name(name, strlen(name), ev->event_id);
    free(name);
    ev->client_id = true;
    es_event_hash_content(ev, content);
    return true;
}

/* A caller without the admin role writes only events of its own user:
 * user_id defaults to it, and another user id is refused (false, answered).
 * Its client-identified events are fingerprinted as its own. */
static bool own_user(h2o_req_t *req, const es_route_args_t *args, es_event_t *ev, int index,
                     bool batch)
{
    if (args->user == NULL)
        return true;
    if (ev->user_id == NULL || strcmp(ev->user_id, args->user) == 0) {
        if (ev->user_id == NULL)
            es_event_set_str(&ev->user_id, args->user);
        if (ev->client_id)
            es_event_hash_bind(ev, args->user);
        return true;
    }
    char msg[160];
    if (batch)
        snprintf(msg, sizeof(msg), "events[%d].user_id: you may only write your own events", index);
    else
        snprintf(msg, sizeof(msg), "user_id: you may only write your own events");
    es_http_error(req, 403, msg);
    return false;
}

static void on_created(es_ingest_req_t *r, int status, const char *detail)
{
    if (status != 200 && status != 201) {
        es_async_error(&r->async, status, detail);
        return;
    }
    es_buf_t b = ES_BUF_INIT;
    es_ingest_render_event(r, 0, &b);
    es_async_json(&r->async, status, b.data, b.len);
    es_buf_free(&b);
}

void es_h_event_create(h2o_req_t *req, const es_route_args_t *args)
{
    json_t *body = es_http_body_json(req);
    if (body == NULL)
        return;
    es_ingest_req_t *r = es_ingest_req_new(req, 1);
    es_field_error_t err;
    if (es_event_from_json(&r->events[0], body, "", &err) != ES_OK) {
        es_ingest_req_free(r);
        json_decref(body);
        es_http_invalid(req, &err);
        return;
    }
    if (!apply_idempotency_key(req, args, &r->events[0], 0, body) ||
        !own_user(req, args, &r->events[0], 0, false)) {
        es_ingest_req_free(r);
        json_decref(body);
        return;
    }
    apply_traceparent(req, &r->events[0]);
    json_decref(body);
    r->done = on_created;
    es_ingest_submit(es_api->ingest, r);
}

static void on_batch_created(es_ingest_req_t *r, int status, const char *detail)
{
    if (status != 200 && status != 201) {
        es_async_error(&r->async, status, detail);
        return;
    }
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "{\"events\":[");
    for (int i = 0; i < r->nevents; i++) {
        if (i > 0)
            es_buf_putc(&b, ',');
        es_ingest_render_event(r, i, &b);
    }
    es_buf_printf(&b, "],\"count\":%d}", r->nevents);
    es_async_json(&r->async, status, b.data, b.len);
    es_buf_free(&b);
}

void es_h_event_batch(h2o_req_t *req, const es_route_args_t *args)
{
    json_t *body = es_http_body_json(req);
    if (body == NULL)
        return;
    es_field_error_t err;
    json_t *list = json_is_array(body) ? body : json_object_get(body, "events");
    int max = es_api->cfg->service.max_batch;
    if (!json_is_array(list)) {
        es_field_error_set(&err, "", "events",
                           list == NULL ? "field required" : "must be an array of events");
        goto invalid;
    }
    if (json_array_size(list) == 0) {
        es_field_error_set(&err, "", "events", "must contain at least one event");
        goto invalid;
    }
    if (json_array_size(list) > (size_t)max) {
        es_field_error_set(&err, "", "events", "at most %d events per batch, got %zu", max,
                           json_array_size(list));
        goto invalid;
    }
    es_ingest_req_t *r = es_ingest_req_new(req, (int)json_array_size(list));
    for (int i = 0; i < r->nevents; i++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "events[%d].", i);
        if (es_event_from_json(&r->events[i], json_array_get(list, (size_t)i), prefix, &err) !=
            ES_OK) {
            es_ingest_req_free(r);
            goto invalid;
        }
        if (!apply_idempotency_key(req, args, &r->events[i], i, json_array_get(list, (size_t)i)) ||
            !own_user(req, args, &r->events[i], i, true)) {
            es_ingest_req_free(r);
            json_decref(body);
            return;
        }
        apply_traceparent(req, &r->events[i]);
    }
    json_decref(body);
    r->done = on_batch_created;
    es_ingest_submit(es_api->ingest, r);
    return;
invalid:
    json_decref(body);
    es_http_invalid(req, &err);
}

static void on_event_row(h2o_req_t *req, const PGresult *res, void *user)
{
    if (PQntuples(res) == 0) {
        es_http_errorf(req, 404, "Event not found: %s", (const char *)user);
        return;
    }
    es_buf_t b = ES_BUF_INIT;
    es_event_row_render(&b, res, 0, 0);
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

void es_h_event_get(h2o_req_t *req, const es_route_args_t *args)
{
    /* Another user's event does not exist for a non-admin caller. */
    const char *params[2] = {args->v[0], args->user};
    es_dbreq_read(req,
                  "SELECT " ES_EVENT_COLUMNS " FROM event.events e WHERE e.event_id = $1 "
                  "AND ($2::text IS NULL OR e.user_id = $2::text)",
                  2, params, on_event_row, es_xstrdup(args->v[0]));
}
