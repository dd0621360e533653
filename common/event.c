#include "common/event.h"

#include "common/ids.h"
#include "common/timeutil.h"

#include <math.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const es_source_names[ES_SOURCE_COUNT] = {"frontend",   "backend",      "system",
                                                      "iot_device", "external_api", "scheduled"};

const char *const es_category_names[ES_CAT_COUNT] = {
    "user_action", "page_view",     "form_submit", "click",    "user_lifecycle", "payment",
    "order",       "task",          "system",      "security", "performance",    "error",
    "device",      "device_status", "telemetry",   "command",  "alert"};

const char *const es_status_names[ES_STATUS_COUNT] = {"pending", "processing", "processed",
                                                      "failed", "archived"};

int es_enum_parse(const char *const *names, int count, const char *s)
{
    for (int i = 0; i < count; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

void es_field_error_set(es_field_error_t *err, const char *prefix, const char *field,
                        const char *fmt, ...)
{
    snprintf(err->field, sizeof(err->field), "%s%s", prefix, field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

void es_event_init(es_event_t *ev, int64_t now_us)
{
    memset(ev, 0, sizeof(*ev));
    es_uuid_v7(now_us, ev->event_id);
    ev->source = ES_SOURCE_BACKEND;
    ev->category = ES_CAT_USER_ACTION;
    ev->data = json_object();
    ev->metadata = json_object();
    ev->context = json_object();
    ev->properties = json_object();
    ev->timestamp_us = now_us;
    ev->created_at_us = now_us;
    ev->expected_version = -1;
}

void es_event_set_str(char **slot, const char *s)
{
    free(*slot);
    *slot = s ? es_xstrdup(s) : NULL;
}

void es_event_clear(es_event_t *ev)
{
    ES_FREE(&ev->event_type);
    ES_FREE(&ev->user_id);
    ES_FREE(&ev->session_id);
    ES_FREE(&ev->organization_id);
    ES_FREE(&ev->device_id);
    ES_FREE(&ev->correlation_id);
    ES_FREE(&ev->stream_id);
    for (int i = 0; i < 4; i++)
        ES_FREE(&ev->text[i]);
    json_decref(ev->data);
    json_decref(ev->metadata);
    json_decref(ev->context);
    json_decref(ev->properties);
    ev->data = ev->metadata = ev->context = ev->properties = NULL;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

/* Characters (code points) of UTF-8 text: varchar(n) limits count these. */
size_t es_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

/* True when s has a control character (they have no place in ids and names). */
static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* An optional string field: absent or null leaves *slot alone. */
static es_rc_t opt_string(const json_t *in, const char *key, const char *prefix, char **slot,
                          es_field_error_t *err)
{
    const json_t *v = json_object_get(in, key);
    if (v == NULL || json_is_null(v))
        return ES_OK;
    if (!json_is_string(v)) {
        es_field_error_set(err, prefix, key, "must be a string, not %s", json_type_name(v));
        return ES_INVALID;
    }
    if (es_utf8_chars(json_string_value(v)) > ES_FIELD_MAX) {
        es_field_error_set(err, prefix, key, "must be at most %d characters", ES_FIELD_MAX);
        return ES_INVALID;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        es_field_error_set(err, prefix, key, "must not contain NUL characters");
        return ES_INVALID;
    }
    es_event_set_str(slot, json_string_value(v));
    return ES_OK;
}

/* An optional object field: absent or null keeps the default {}. */
static es_rc_t opt_object(const json_t *in, const char *key, const char *prefix, json_t **slot,
                          es_field_error_t *err)
{
    json_t *v = json_object_get(in, key);
    if (v == NULL || json_is_null(v))
        return ES_OK;
    if (!json_is_object(v)) {
        es_field_error_set(err, prefix, key, "must be an object, not %s", json_type_name(v));
        return ES_INVALID;
    }
    json_decref(*slot);
    *slot = json_incref(v);
    return ES_OK;
}

static es_rc_t opt_enum(const json_t *in, const char *key, const char *prefix,
                        const char *const *names, int count, int *slot, es_field_error_t *err)
{
    const json_t *v = json_object_get(in, key);
    if (v == NULL || json_is_null(v))
        return ES_OK;
    int idx = json_is_string(v) ? es_enum_parse(names, count, json_string_value(v)) : -1;
    if (idx < 0) {
        char allowed[512] = "";
        size_t pos = 0;
        for (int i = 0; i < count && pos < sizeof(allowed); i++)
            pos += (size_t)snprintf(allowed + pos, sizeof(allowed) - pos, "%s%s", i ? ", " : "",
                                    names[i]);
        es_field_error_set(err, prefix, key, "not a valid value (expected one of: %s)", allowed);
        return ES_INVALID;
    }
    *slot = idx;
    return ES_OK;
}

es_rc_t es_event_from_json(es_event_t *ev, const json_t *in, const char *prefix,
                           es_field_error_t *err)
{
    if (!json_is_object(in)) {
        es_field_error_set(err, prefix, prefix[0] ? "" : "body", "must be a JSON object, not %s",
                           json_type_name(in));
        if (prefix[0]) /* "events[2]." -> "events[2]" */
            err->field[strlen(err->field) - 1] = '\0';
        return ES_INVALID;
    }

    const json_t *v = json_object_get(in, "event_type");
    if (v == NULL || json_is_null(v)) {
        es_field_error_set(err, prefix, "event_type", "field required");
        return ES_INVALID;
    }
    if (!json_is_string(v)) {
        es_field_error_set(err, prefix, "event_type", "must be a string, not %s",
                           json_type_name(v));
        return ES_INVALID;
    }
    if (json_string_length(v) == 0) {
        es_field_error_set(err, prefix, "event_type", "must not be empty");
        return ES_INVALID;
    }
    if (es_utf8_chars(json_string_value(v)) > ES_FIELD_MAX || has_control(json_string_value(v)) ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        es_field_error_set(err, prefix, "event_type",
                           "must be at most %d characters without control characters",
                           ES_FIELD_MAX);
        return ES_INVALID;
    }
    es_event_set_str(&ev->event_type, json_string_value(v));

    v = json_object_get(in, "event_id");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            es_utf8_chars(json_string_value(v)) > ES_FIELD_MAX ||
            has_control(json_string_value(v)) ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            es_field_error_set(err, prefix, "event_id",
                               "must be a non-empty string of at most %d characters", ES_FIELD_MAX);
            return ES_INVALID;
        }
        es_strlcpy(ev->event_id, json_string_value(v), sizeof(ev->event_id));
        ev->client_id = true;
    }

    int idx = (int)ev->source;
    if (opt_enum(in, "event_source", prefix, es_source_names, ES_SOURCE_COUNT, &idx, err) != ES_OK)
        return ES_INVALID;
    ev->source = (es_source_t)idx;
    idx = (int)ev->category;
    if (opt_enum(in, "event_category", prefix, es_category_names, ES_CAT_COUNT, &idx, err) != ES_OK)
        return ES_INVALID;
    ev->category = (es_category_t)idx;

    if (opt_string(in, "user_id", prefix, &ev->user_id, err) != ES_OK ||
        opt_string(in, "session_id", prefix, &ev->session_id, err) != ES_OK ||
        opt_string(in, "organization_id", prefix, &ev->organization_id, err) != ES_OK ||
        opt_string(in, "device_id", prefix, &ev->device_id, err) != ES_OK ||
        opt_string(in, "correlation_id", prefix, &ev->correlation_id, err) != ES_OK)
        return ES_INVALID;
    if (opt_object(in, "data", prefix, &ev->data, err) != ES_OK ||
        opt_object(in, "metadata", prefix, &ev->metadata, err) != ES_OK ||
        opt_object(in, "context", prefix, &ev->context, err) != ES_OK ||
        opt_object(in, "properties", prefix, &ev->properties, err) != ES_OK)
        return ES_INVALID;

    v = json_object_get(in, "timestamp");
    if (v != NULL && !json_is_null(v)) {
        int64_t us = 0;
        bool ok = false;
        if (json_is_string(v)) {
            ok = es_time_parse(json_string_value(v), json_string_length(v), &us);
        } else if (json_is_number(v)) { /* Unix seconds, as pydantic accepts */
            double secs = json_number_value(v);
            ok = isfinite(secs) && fabs(secs) < 1e11;
            us = (int64_t)llround(secs * 1e6);
        }
        if (!ok || us < -62135596800LL * 1000000 || us > 253402300799LL * 1000000) {
            es_field_error_set(err, prefix, "timestamp",
                               "not a valid date-time (expected ISO 8601, e.g. "
                               "2025-12-30T12:00:00Z)");
            return ES_INVALID;
        }
        ev->timestamp_us = us;
    }

    /* Event sourcing: stream_id, or entity_type + entity_id spelling it. */
    char *entity_type = NULL, *entity_id = NULL;
    es_rc_t rc = ES_INVALID;
    if (opt_string(in, "stream_id", prefix, &ev->stream_id, err) != ES_OK ||
        opt_string(in, "entity_type", prefix, &entity_type, err) != ES_OK ||
        opt_string(in, "entity_id", prefix, &entity_id, err) != ES_OK)
        goto cleanup;
    if ((entity_type == NULL) != (entity_id == NULL)) {
        es_field_error_set(err, prefix, entity_type ? "entity_id" : "entity_type",
                           "entity_type and entity_id go together");
        goto cleanup;
    }
    if (ev->stream_id == NULL && entity_type != NULL) {
        char *sid = es_xasprintf("%s:%s", entity_type, entity_id);
        if (es_utf8_chars(sid) > ES_FIELD_MAX) {
            free(sid);
            es_field_error_set(err, prefix, "entity_id",
                               "entity_type:entity_id must be at most %d characters", ES_FIELD_MAX);
            goto cleanup;
        }
        ev->stream_id = sid;
    }
    if (ev->stream_id != NULL && (ev->stream_id[0] == '\0' || has_control(ev->stream_id))) {
        es_field_error_set(err, prefix, "stream_id", "must be a non-empty string");
        goto cleanup;
    }
    v = json_object_get(in, "expected_version");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            es_field_error_set(err, prefix, "expected_version", "must be an integer >= 0");
            goto cleanup;
        }
        if (ev->stream_id == NULL) {
            es_field_error_set(err, prefix, "expected_version",
                               "requires stream_id (or entity_type and entity_id)");
            goto cleanup;
        }
        ev->expected_version = json_integer_value(v);
    }
    if (ev->client_id)
        es_event_hash_content(ev, in);
    rc = ES_OK;
cleanup:
    free(entity_type);
    free(entity_id);
    return rc;
}

void es_event_hash_content(es_event_t *ev, const json_t *content)
{
    char *canon = json_dumps(content, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)canon, strlen(canon), md);
    es_hex(md, 16, ev->request_hash);
    free(canon);
}

void es_event_hash_bind(es_event_t *ev, const char *who)
{
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, ev->request_hash);
    es_buf_putc(&b, '\0'); /* a separator no hex digit is */
    es_buf_puts(&b, who);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)b.data, b.len, md);
    es_hex(md, 16, ev->request_hash);
    es_buf_free(&b);
}

void es_event_freeze(es_event_t *ev)
{
    json_t *objs[4] = {ev->data, ev->metadata, ev->context, ev->properties};
    for (int i = 0; i < 4; i++)
        if (ev->text[i] == NULL)
            ev->text[i] = json_dumps(objs[i], JSON_COMPACT);
}

static void put_field(es_buf_t *b, const char *key, const char *value)
{
    es_buf_json_key(b, key);
    es_buf_json_cstr(b, value);
}

void es_event_append_ingest_json(es_buf_t *b, es_event_t *ev, int req, int seq)
{
    static const char *const obj_keys[4] = {"data", "metadata", "context", "properties"};
    char ts[ES_TIME_BUFLEN], created[ES_TIME_BUFLEN];
    es_event_freeze(ev);
    es_time_format(ev->timestamp_us, ts);
    es_time_format(ev->created_at_us, created);
    es_buf_printf(b, "{\"req\":%d,\"seq\":%d", req, seq);
    put_field(b, "event_id", ev->event_id);
    put_field(b, "event_type", ev->event_type);
    put_field(b, "event_source", es_source_names[ev->source]);
    put_field(b, "event_category", es_category_names[ev->category]);
    put_field(b, "user_id", ev->user_id);
    put_field(b, "session_id", ev->session_id);
    put_field(b, "organization_id", ev->organization_id);
    put_field(b, "device_id", ev->device_id);
    put_field(b, "correlation_id", ev->correlation_id);
    for (int i = 0; i < 4; i++) {
        es_buf_json_key(b, obj_keys[i]);
        es_buf_puts(b, ev->text[i]);
    }
    put_field(b, "timestamp", ts);
    put_field(b, "created_at", created);
    if (ev->stream_id != NULL) {
        put_field(b, "stream_id", ev->stream_id);
        if (ev->expected_version >= 0)
            es_buf_printf(b, ",\"expected_version\":%lld", (long long)ev->expected_version);
    }
    if (ev->request_hash[0] != '\0')
        put_field(b, "request_hash", ev->request_hash);
    es_buf_putc(b, '}');
}

static bool too_deep(const json_t *v, int depth, int max_depth)
{
    if (!json_is_object(v) && !json_is_array(v))
        return false;
    if (depth > max_depth)
        return true;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (too_deep(json_array_get(v, i), depth + 1, max_depth))
                return true;
        return false;
    }
    const char *k;
    json_t *child;
    json_object_foreach((json_t *)v, k, child)
    {
        if (too_deep(child, depth + 1, max_depth))
            return true;
    }
    return false;
}

bool es_json_too_deep(const json_t *v, int max_depth)
{
    return too_deep(v, 1, max_depth);
}

json_t *es_json_lossy_string(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n); /* valid UTF-8 without NUL: as is */
    if (v != NULL && strlen(json_string_value(v)) == n)
        return v;
    json_decref(v);
    es_buf_t b = ES_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0')
            es_buf_append(&b, "\xef\xbf\xbd", 3);
        else
            es_buf_putc(&b, s[i]);
    es_buf_t lit = ES_BUF_INIT;
    es_buf_json_str(&lit, b.data ? b.data : "", b.len);
    v = json_loads(lit.data, JSON_DECODE_ANY, NULL);
    es_buf_free(&b);
    es_buf_free(&lit);
    return v ? v : json_string("");
}
