/* RudderStack and the Segment/RudderStack HTTP tracking API:
 *   POST /webhooks/rudderstack       what a RudderStack webhook destination sends
 *                                    (one message, {"batch": [...]}, or an array)
 *   POST /v1/track|page|identify|screen|group|alias|batch
 *                                    the tracking API the official SDKs call
 * Both map messages with es_rudder_to_event (common/rudder.c) and store them
 * through the group-committed write; a repeated messageId is answered as a
 * success and writes nothing. */
#include "api-worker/client.h"
#include "api-worker/http.h"
#include "api-worker/ingest.h"
#include "api-worker/routes.h"
#include "api-worker/worker.h"
#include "common/b64.h"
#include "common/buf.h"
#include "common/ids.h"
#include "common/rudder.h"
#include "common/timeutil.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Constant-time equality of two byte strings (length is not secret). */
static bool same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
}

/* X-Signature: the shared secret itself, or "sha256=<hex HMAC-SHA256 of the
 * raw body>", both compared in constant time. */
static bool signature_ok(h2o_req_t *req, const char *secret, const char *body, size_t len)
{
    size_t slen;
    const char *sig = es_http_header(req, "x-signature", &slen);
    if (sig == NULL)
        return false;
    if (slen > 7 && strncasecmp(sig, "sha256=", 7) == 0) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac,
                 &maclen) == NULL)
            return false;
        char hex[2 * EVP_MAX_MD_SIZE + 1], given[2 * EVP_MAX_MD_SIZE + 1];
        es_hex(mac, maclen, hex);
        size_t glen = ES_MIN(slen - 7, sizeof(given) - 1);
        for (size_t i = 0; i < glen; i++) {
            char c = sig[7 + i];
            given[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
        }
        return same_bytes(given, glen, hex, strlen(hex));
    }
    return same_bytes(sig, slen, secret, strlen(secret));
}

typedef enum { STYLE_WEBHOOK, STYLE_TRACKING } style_t;

static void on_stored(es_ingest_req_t *r, int status, const char *detail)
{
    style_t style = (style_t)(intptr_t)r->user;
    if (status != 200 && status != 201) {
        es_async_error(&r->async, status, detail);
        return;
    }
    es_buf_t b = ES_BUF_INIT;
    if (style == STYLE_TRACKING) {
        es_buf_puts(&b, "{\"success\":true}"); /* what the analytics SDKs expect */
    } else if (r->nevents == 1) {
        es_buf_puts(&b, "{\"status\":\"accepted\",\"event_id\":");
        es_buf_json_cstr(&b, r->events[0].event_id);
        es_buf_putc(&b, '}');
    } else {
        es_buf_puts(&b, "{\"status\":\"accepted\",\"event_ids\":[");
        for (int i = 0; i < r->nevents; i++) {
            es_buf_puts(&b, i ? "," : "");
            es_buf_json_cstr(&b, r->events[i].event_id);
        }
        es_buf_printf(&b, "],\"count\":%d}", r->nevents);
    }
    es_async_json(&r->async, 200, b.data, b.len);
    es_buf_free(&b);
}

/* Server-side context the client did not give: its address and User-Agent. */
static void fill_client_context(h2o_req_t *req, es_event_t *ev)
{
    if (ev->context->refcount > 1) {
        json_t *c = json_copy(ev->context);
        json_decref(ev->context);
        ev->context = c;
    }
    if (json_object_get(ev->context, "ip") == NULL) {
        char ip[ES_IP_LEN];
        es_client_ip(req, ip, sizeof(ip));
        json_object_set_new(ev->context, "ip", json_string(ip));
    }
    size_t len;
    const char *ua = es_http_header(req, "user-agent", &len);
    if (ua != NULL && json_object_get(ev->context, "userAgent") == NULL)
        json_object_set_new(ev->context, "userAgent", es_json_lossy_string(ua, len));
}

/* Maps messages (n of them, from list) and submits them as one request. */
static void submit(h2o_req_t *req, json_t *const *msgs, int n, bool batch, const char *type_hint,
                   es_source_t source, style_t style)
{
    int64_t received = es_time_now_us();
    es_ingest_req_t *r = es_ingest_req_new(req, n);
    es_field_error_t err;
    for (int i = 0; i < n; i++) {
        char prefix[32] = "";
        if (batch)
            snprintf(prefix, sizeof(prefix), "batch[%d].", i);
        if (es_rudder_to_event(&r->events[i], msgs[i], type_hint, source, received, prefix, &err) !=
            ES_OK) {
            es_ingest_req_free(r);
            if (style == STYLE_TRACKING) {
                char detail[512];
                snprintf(detail, sizeof(detail), "%s: %s", err.field, err.msg);
                es_http_error(req, 400, detail); /* Segment's status for bad input */
            } else {
                es_http_invalid(req, &err);
            }
            return;
        }
        if (style == STYLE_TRACKING)
            fill_client_context(req, &r->events[i]);
    }
    r->user = (void *)(intptr_t)style;
    r->done = on_stored;
    es_ingest_submit(es_api->ingest, r);
}

void es_h_rudderstack_webhook(h2o_req_t *req, const es_route_args_t *args)
{
    char *text = NULL;
    size_t len = 0;
    if (es_http_body_raw(req, (size_t)es_api->cfg->service.body_limit_bytes, true, &text, &len) !=
        ES_OK)
        return;
    const char *secret = es_api->cfg->rudderstack.webhook_secret;
    if (secret[0] != '\0' && !signature_ok(req, secret, text, len)) {
        free(text);
        es_http_error(req, 401, "Invalid signature");
        return;
    }
    json_t *body = es_http_parse_json(req, text, len);
    free(text);
    if (body == NULL)
        return;
    json_t *list = json_is_array(body) ? body : json_object_get(body, "batch");
    if (list != NULL && !json_is_array(list)) {
        es_field_error_t err;
        es_field_error_set(&err, "", "batch", "must be an array of messages");
        es_http_invalid(req, &err);
    } else if (list != NULL) {
        size_t n = json_array_size(list);
        if (n == 0 || n > (size_t)es_api->cfg->service.max_batch) {
            es_field_error_t err;
            es_field_error_set(&err, "", "batch", "must hold 1 to %d messages",
                               es_api->cfg->service.max_batch);
            es_http_invalid(req, &err);
        } else {
            json_t **msgs = es_xcalloc(n, sizeof(json_t *));
            for (size_t i = 0; i < n; i++)
                msgs[i] = json_array_get(list, i);
            submit(req, msgs, (int)n, true, NULL, ES_SOURCE_FRONTEND, STYLE_WEBHOOK);
            free(msgs);
        }
    } else {
        submit(req, &body, 1, false, NULL, ES_SOURCE_FRONTEND, STYLE_WEBHOOK);
    }
    json_decref(body);
}

/* The write key of a tracking call: the HTTP Basic user (empty password
 * accepted), else "writeKey" in the body. */
static bool write_key_ok(h2o_req_t *req, const json_t *body)
{
    const es_strlist_t *keys = &es_api->cfg->tracking.write_keys;
    char key[512] = "";
    size_t len;
    const char *auth = es_http_header(req, "authorization", &len);
    if (auth != NULL && len > 6 && strncasecmp(auth, "Basic ", 6) == 0) {
        size_t dlen = 0;
        unsigned char *dec = es_b64_decode(auth + 6, len - 6, &dlen);
        if (dec != NULL) {
            char *colon = memchr(dec, ':', dlen);
            size_t ulen = colon ? (size_t)(colon - (char *)dec) : dlen;
            if (ulen < sizeof(key)) {
                memcpy(key, dec, ulen);
                key[ulen] = '\0';
            }
            free(dec);
        }
    }
    const json_t *wk = json_object_get(body, "writeKey");
    if (key[0] == '\0' && json_is_string(wk))
        es_strlcpy(key, json_string_value(wk), sizeof(key));
    bool ok = false;
    for (size_t i = 0; i < keys->len; i++)
        ok |= key[0] != '\0' && same_bytes(key, strlen(key), keys->items[i], strlen(keys->items[i]));
    return ok;
}

/* The type a /v1/<type> path implies. */
static const char *path_type(h2o_req_t *req)
{
    static const char *const types[] = {"track", "page", "identify", "screen", "group", "alias"};
    size_t n = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    for (size_t i = 0; i < ES_ARRAY_LEN(types); i++) {
        size_t tl = strlen(types[i]);
        if (n >= tl + 4 && memcmp(req->path.base + 4, types[i], tl) == 0)
            return types[i];
    }
    return NULL;
}

void es_h_tracking(h2o_req_t *req, const es_route_args_t *args)
{
    const es_config_t *cfg = es_api->cfg;
    const char *type = path_type(req);
    size_t max = (size_t)(type ? cfg->tracking.max_event_bytes : cfg->tracking.max_batch_bytes);
    char *text = NULL;
    size_t len = 0;
    if (es_http_body_raw(req, max, true, &text, &len) != ES_OK)
        return;
    json_t *body = len > 0 ? json_loadb(text, len, 0, NULL) : NULL;
    free(text);
    if (!json_is_object(body)) {
        json_decref(body);
        es_http_error(req, 400, "body: expected a JSON object");
        return;
    }
    if (es_json_too_deep(body, cfg->service.json_max_depth)) { /* 400 here, as every refusal */
        char msg[128];
        snprintf(msg, sizeof(msg), "body: JSON nesting deeper than %d levels",
                 cfg->service.json_max_depth);
        json_decref(body);
        es_http_error(req, 400, msg);
        return;
    }
    if (!write_key_ok(req, body)) {
        json_decref(body);
        es_http_error(req, 401, cfg->tracking.write_keys.len == 0
                                    ? "no write keys are configured (tracking.write_keys)"
                                    : "invalid or missing write key");
        return;
    }
    if (type != NULL) {
        submit(req, &body, 1, false, type, ES_SOURCE_EXTERNAL_API, STYLE_TRACKING);
        json_decref(body);
        return;
    }
    /* /v1/batch: the top-level context and integrations apply to every message. */
    json_t *list = json_object_get(body, "batch");
    size_t n = json_array_size(list);
    if (!json_is_array(list) || n == 0 || n > 10000) {
        json_decref(body);
        es_http_error(req, 400, "batch: must be a non-empty array of messages");
        return;
    }
    json_t **msgs = es_xcalloc(n, sizeof(json_t *));
    const json_t *ctx = json_object_get(body, "context");
    const json_t *integ = json_object_get(body, "integrations");
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(list, i);
        char *one = json_dumps(m, JSON_COMPACT | JSON_ENCODE_ANY);
        size_t size = one ? strlen(one) : 0;
        free(one);
        if (size > (size_t)cfg->tracking.max_event_bytes) {
            char detail[160];
            snprintf(detail, sizeof(detail), "batch[%zu]: message exceeds %d bytes", i,
                     cfg->tracking.max_event_bytes);
            for (size_t k = 0; k < i; k++)
                json_decref(msgs[k]);
            free(msgs);
            json_decref(body);
            es_http_error(req, 413, detail);
            return;
        }
        msgs[i] = json_is_object(m) ? json_copy(m) : json_incref(m);
        if (json_is_object(m)) {
            if (json_is_object(ctx)) {
                json_t *merged = json_copy((json_t *)ctx);
                json_t *own = json_object_get(msgs[i], "context");
                if (json_is_object(own))
                    json_object_update(merged, own);
                json_object_set_new(msgs[i], "context", merged);
            }
            if (json_is_object(integ) && json_object_get(msgs[i], "integrations") == NULL)
                json_object_set(msgs[i], "integrations", (json_t *)integ);
        }
    }
    submit(req, msgs, (int)n, true, NULL, ES_SOURCE_EXTERNAL_API, STYLE_TRACKING);
    for (size_t i = 0; i < n; i++)
        json_decref(msgs[i]);
    free(msgs);
    json_decref(body);
}
