#include "common/event.h"

#include "common/ids.h"
#include "common/timeutil.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S 1000000LL
#define NOW (1735689600LL * S + 123456) /* 2025-01-01T00:00:00.123456Z */

static json_t *parse_json(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    cr_assert_not_null(v, "test JSON does not parse: %s: %s", text, jerr.text);
    return v;
}

/* Initialises ev with NOW and validates text into it with prefix. */
static es_rc_t from(es_event_t *ev, const char *text, const char *prefix, es_field_error_t *err)
{
    json_t *in = parse_json(text);
    es_event_init(ev, NOW);
    memset(err, 0, sizeof(*err));
    es_rc_t rc = es_event_from_json(ev, in, prefix, err);
    json_decref(in);
    return rc;
}

/* text must validate; ev is left for the caller to inspect and clear. */
static void accept(es_event_t *ev, const char *text)
{
    es_field_error_t err;
    es_rc_t rc = from(ev, text, "", &err);
    cr_assert_eq(rc, ES_OK, "%s rejected: %s: %s", text, err.field, err.msg);
}

/* text must fail with exactly field, and a message starting with msg. */
static void reject(const char *text, const char *prefix, const char *field, const char *msg)
{
    es_event_t ev;
    es_field_error_t err;
    es_rc_t rc = from(&ev, text, prefix, &err);
    es_event_clear(&ev);
    cr_assert_eq(rc, ES_INVALID, "%s accepted", text);
    cr_assert_str_eq(err.field, field, "%s: field", text);
    cr_assert(strncmp(err.msg, msg, strlen(msg)) == 0, "%s: message \"%s\", want \"%s...\"", text,
              err.msg, msg);
}

/* A new event's id: a version-7 UUID of the millisecond NOW. */
static bool is_uuid_v7_now(const char *u)
{
    if (strlen(u) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = u[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    char ms[13];
    snprintf(ms, sizeof(ms), "%012llx", (unsigned long long)(NOW / 1000));
    return u[14] == '7' && strchr("89ab", u[19]) != NULL && strncmp(u, ms, 8) == 0 &&
           strncmp(u + 9, ms + 8, 4) == 0;
}

static bool is_empty_object(const json_t *v)
{
    return json_is_object(v) && json_object_size(v) == 0;
}

/* A string of n copies of unit (which is one character, maybe multi-byte). */
static char *repeat(const char *unit, size_t n)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * n] = '\0';
    return s;
}

/* ---- defaults ---------------------------------------------------------- */

Test(event, init_defaults)
{
    es_event_t ev;
    es_event_init(&ev, NOW);
    cr_assert(is_uuid_v7_now(ev.event_id), "%s", ev.event_id);
    cr_assert_not(ev.client_id);
    cr_assert_null(ev.event_type);
    cr_assert_eq(ev.source, ES_SOURCE_BACKEND);
    cr_assert_eq(ev.category, ES_CAT_USER_ACTION);
    cr_assert(is_empty_object(ev.data));
    cr_assert(is_empty_object(ev.metadata));
    cr_assert(is_empty_object(ev.context));
    cr_assert(is_empty_object(ev.properties));
    cr_assert_eq(ev.timestamp_us, NOW);
    cr_assert_eq(ev.created_at_us, NOW);
    cr_assert_eq(ev.expected_version, -1);
    cr_assert_null(ev.stream_id);
    cr_assert_str_eq(ev.request_hash, "");
    es_event_t other;
    es_event_init(&other, NOW);
    cr_assert_str_neq(ev.event_id, other.event_id, "each event gets its own id");
    es_event_clear(&other);
    es_event_clear(&ev);
    cr_assert_null(ev.data);
    es_event_clear(&ev); /* clearing twice is harmless */
}

Test(event, minimal_request_gets_defaults)
{
    es_event_t ev;
    accept(&ev, "{\"event_type\": \"user.created\"}");
    cr_assert_str_eq(ev.event_type, "user.created");
    cr_assert(is_uuid_v7_now(ev.event_id), "%s", ev.event_id);
    cr_assert_not(ev.client_id);
    cr_assert_eq(ev.source, ES_SOURCE_BACKEND);
    cr_assert_eq(ev.category, ES_CAT_USER_ACTION);
    cr_assert_null(ev.user_id);
    cr_assert_null(ev.session_id);
    cr_assert_null(ev.organization_id);
    cr_assert_null(ev.device_id);
    cr_assert_null(ev.correlation_id);
    cr_assert(is_empty_object(ev.data));
    cr_assert(is_empty_object(ev.metadata));
    cr_assert(is_empty_object(ev.context));
    cr_assert(is_empty_object(ev.properties));
    cr_assert_eq(ev.timestamp_us, NOW);
    cr_assert_eq(ev.created_at_us, NOW);
    cr_assert_null(ev.stream_id);
    cr_assert_eq(ev.expected_version, -1);
    cr_assert_str_eq(ev.request_hash, "");
    es_event_clear(&ev);
}

Test(event, nulls_mean_absent)
{
    es_event_t ev;
    accept(&ev, "{\"event_type\": \"x\", \"event_id\": null, \"event_source\": null,"
                " \"event_category\": null, \"user_id\": null, \"session_id\": null,"
                " \"organization_id\": null, \"device_id\": null, \"correlation_id\": null,"
                " \"data\": null, \"metadata\": null, \"context\": null, \"properties\": null,"
                " \"timestamp\": null, \"stream_id\": null, \"entity_type\": null,"
                " \"entity_id\": null, \"expected_version\": null}");
    cr_assert_not(ev.client_id);
    cr_assert(is_uuid_v7_now(ev.event_id));
    cr_assert_eq(ev.source, ES_SOURCE_BACKEND);
    cr_assert_eq(ev.category, ES_CAT_USER_ACTION);
    cr_assert_null(ev.user_id);
    cr_assert_null(ev.correlation_id);
    cr_assert(is_empty_object(ev.data));
    cr_assert(is_empty_object(ev.properties));
    cr_assert_eq(ev.timestamp_us, NOW);
    cr_assert_null(ev.stream_id);
    cr_assert_eq(ev.expected_version, -1);
    es_event_clear(&ev);
}

Test(event, unknown_keys_ignored)
{
    es_event_t ev;
    accept(&ev, "{\"event_type\": \"x\", \"status\": \"processed\", \"bogus\": [1, 2],"
                " \"retry_count\": 9}");
    cr_assert_str_eq(ev.event_type, "x");
    es_event_clear(&ev);
}

/* ---- every field ----------------------------------------------------------- */

Test(event, every_field_accepted)
{
    es_event_t ev;
    accept(&ev, "{\"event_id\": \"client-id-1\", \"event_type\": \"order.placed\","
                " \"event_source\": \"iot_device\", \"event_category\": \"device_status\","
                " \"user_id\": \"u1\", \"session_id\": \"s1\", \"organization_id\": \"o1\","
                " \"device_id\": \"d1\", \"correlation_id\": \"c1\","
                " \"data\": {\"amount\": 12.5, \"items\": [1, 2]},"
                " \"metadata\": {\"m\": true}, \"context\": {\"ip\": \"10.0.0.1\"},"
                " \"properties\": {\"p\": null},"
                " \"timestamp\": \"2025-06-15T12:34:56.5Z\","
                " \"stream_id\": \"order:42\", \"expected_version\": 3}");
    cr_assert_str_eq(ev.event_id, "client-id-1");
    cr_assert(ev.client_id);
    cr_assert_str_eq(ev.event_type, "order.placed");
    cr_assert_eq(ev.source, ES_SOURCE_IOT_DEVICE);
    cr_assert_eq(ev.category, ES_CAT_DEVICE_STATUS);
    cr_assert_str_eq(ev.user_id, "u1");
    cr_assert_str_eq(ev.session_id, "s1");
    cr_assert_str_eq(ev.organization_id, "o1");
    cr_assert_str_eq(ev.device_id, "d1");
    cr_assert_str_eq(ev.correlation_id, "c1");
    json_t *want = parse_json("{\"amount\": 12.5, \"items\": [1, 2]}");
    cr_assert(json_equal(ev.data, want));
    json_decref(want);
    cr_assert(json_is_true(json_object_get(ev.metadata, "m")));
    cr_assert_str_eq(json_string_value(json_object_get(ev.context, "ip")), "10.0.0.1");
    cr_assert(json_is_null(json_object_get(ev.properties, "p")));
    cr_assert_eq(ev.timestamp_us, 1749990896LL * S + 500000);
    cr_assert_eq(ev.created_at_us, NOW, "created_at is the server's time");
    cr_assert_str_eq(ev.stream_id, "order:42");
    cr_assert_eq(ev.expected_version, 3);
    cr_assert_eq(strlen(ev.request_hash), 32);
    es_event_clear(&ev);
}

Test(event, objects_survive_the_input)
{
    /* The event keeps its objects after the request document is gone. */
    json_t *in = parse_json("{\"event_type\": \"x\", \"data\": {\"k\": \"v\"}}");
    es_event_t ev;
    es_field_error_t err;
    es_event_init(&ev, NOW);
    cr_assert_eq(es_event_from_json(&ev, in, "", &err), ES_OK);
    json_decref(in);
    cr_assert_str_eq(json_string_value(json_object_get(ev.data, "k")), "v");
    es_event_clear(&ev);
}

Test(event, every_source_value)
{
    for (int i = 0; i < ES_SOURCE_COUNT; i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"event_type\": \"x\", \"event_source\": \"%s\"}",
                 es_source_names[i]);
        es_event_t ev;
        accept(&ev, text);
        cr_assert_eq((int)ev.source, i, "%s", es_source_names[i]);
        es_event_clear(&ev);
    }
    cr_assert_str_eq(es_source_names[ES_SOURCE_FRONTEND], "frontend");
    cr_assert_str_eq(es_source_names[ES_SOURCE_EXTERNAL_API], "external_api");
    cr_assert_str_eq(es_source_names[ES_SOURCE_SCHEDULED], "scheduled");
}

Test(event, every_category_value)
{
    static const char *const spec[] = {
        "user_action", "page_view",     "form_submit", "click",    "user_lifecycle", "payment",
        "order",       "task",          "system",      "security", "performance",    "error",
        "device",      "device_status", "telemetry",   "command",  "alert"};
    cr_assert_eq(ES_CAT_COUNT, (int)(sizeof(spec) / sizeof(spec[0])));
    for (int i = 0; i < ES_CAT_COUNT; i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"event_type\": \"x\", \"event_category\": \"%s\"}",
                 spec[i]);
        es_event_t ev;
        accept(&ev, text);
        cr_assert_eq((int)ev.category, i, "%s", spec[i]);
        cr_assert_str_eq(es_category_names[ev.category], spec[i]);
        es_event_clear(&ev);
    }
}

Test(event, enum_parse)
{
    cr_assert_eq(es_enum_parse(es_status_names, ES_STATUS_COUNT, "pending"), ES_STATUS_PENDING);
    cr_assert_eq(es_enum_parse(es_status_names, ES_STATUS_COUNT, "archived"), ES_STATUS_ARCHIVED);
    cr_assert_eq(es_enum_parse(es_status_names, ES_STATUS_COUNT, "Archived"), -1);
    cr_assert_eq(es_enum_parse(es_status_names, ES_STATUS_COUNT, ""), -1);
    cr_assert_eq(es_enum_parse(es_source_names, ES_SOURCE_COUNT, "backend "), -1);
}

Test(event, set_str_replaces_and_clears)
{
    char *slot = NULL;
    es_event_set_str(&slot, "a");
    cr_assert_str_eq(slot, "a");
    es_event_set_str(&slot, "bb");
    cr_assert_str_eq(slot, "bb");
    es_event_set_str(&slot, NULL);
    cr_assert_null(slot);
}

Test(event, field_error_joins_prefix_and_field)
{
    es_field_error_t err;
    es_field_error_set(&err, "events[7].", "user_id", "bad %d", 5);
    cr_assert_str_eq(err.field, "events[7].user_id");
    cr_assert_str_eq(err.msg, "bad 5");
}

/* ---- the body itself -------------------------------------------------------- */

Test(event, body_must_be_an_object)
{
    reject("[]", "", "body", "must be a JSON object, not an array");
    reject("\"x\"", "", "body", "must be a JSON object, not a string");
    reject("null", "", "body", "must be a JSON object, not null");
    reject("1", "", "body", "must be a JSON object, not an integer");
    reject("[]", "events[3].", "events[3]", "must be a JSON object, not an array");
    reject("true", "events[0].", "events[0]", "must be a JSON object, not a boolean");
}

/* ---- event_type ------------------------------------------------------------- */

Test(event, event_type_missing_or_empty)
{
    reject("{}", "", "event_type", "field required");
    reject("{\"event_type\": null}", "", "event_type", "field required");
    reject("{\"event_type\": \"\"}", "", "event_type", "must not be empty");
    reject("{}", "events[3].", "events[3].event_type", "field required");
    reject("{\"event_type\": \"\"}", "events[3].", "events[3].event_type", "must not be empty");
}

Test(event, event_type_wrong_types)
{
    reject("{\"event_type\": 1}", "events[3].", "events[3].event_type",
           "must be a string, not an integer");
    reject("{\"event_type\": 1.5}", "", "event_type", "must be a string, not a number");
    reject("{\"event_type\": true}", "", "event_type", "must be a string, not a boolean");
    reject("{\"event_type\": []}", "", "event_type", "must be a string, not an array");
    reject("{\"event_type\": {}}", "", "event_type", "must be a string, not an object");
}

Test(event, event_type_length_limit)
{
    char *t255 = repeat("a", 255), *t256 = repeat("a", 256);
    char text[600];
    snprintf(text, sizeof(text), "{\"event_type\": \"%s\"}", t255);
    es_event_t ev;
    accept(&ev, text);
    cr_assert_str_eq(ev.event_type, t255);
    es_event_clear(&ev);
    snprintf(text, sizeof(text), "{\"event_type\": \"%s\"}", t256);
    reject(text, "events[3].", "events[3].event_type", "must be at most 255 characters");
    free(t255);
    free(t256);
}

Test(event, length_limits_count_characters_not_bytes)
{
    /* varchar(255) and the seed's max_length both count characters: 255
     * two-byte characters fit, 256 do not. */
    char *t255 = repeat("\xc3\xa9", 255), *t256 = repeat("\xc3\xa9", 256);
    char text[1200];
    snprintf(text, sizeof(text), "{\"event_type\": \"%s\"}", t256);
    reject(text, "", "event_type", "must be at most 255 characters");
    snprintf(text, sizeof(text), "{\"event_type\": \"%s\"}", t255);
    es_event_t ev;
    es_field_error_t err;
    es_rc_t rc = from(&ev, text, "", &err);
    es_event_clear(&ev);
    cr_expect_eq(rc, ES_OK, "255 two-byte characters rejected: %s: %s", err.field, err.msg);
    /* The same holds for the other varchar(255) fields. */
    snprintf(text, sizeof(text), "{\"event_type\": \"x\", \"user_id\": \"%s\"}", t255);
    rc = from(&ev, text, "", &err);
    es_event_clear(&ev);
    cr_expect_eq(rc, ES_OK, "255 two-byte characters rejected: %s: %s", err.field, err.msg);
    free(t255);
    free(t256);
}

Test(event, event_type_control_characters)
{
    reject("{\"event_type\": \"a\\nb\"}", "", "event_type", "must be at most 255 characters");
    reject("{\"event_type\": \"a\\u0000b\"}", "", "event_type", "must be at most");
    reject("{\"event_type\": \"\\u007f\"}", "", "event_type", "must be at most");
    reject("{\"event_type\": \"\\t\"}", "events[1].", "events[1].event_type", "must be at most");
    es_event_t ev;
    accept(&ev, "{\"event_type\": \"caf\\u00e9 \\ud83d\\ude00 ok\"}");
    cr_assert_str_eq(ev.event_type, "caf\xc3\xa9 \xf0\x9f\x98\x80 ok");
    es_event_clear(&ev);
}

/* ---- event_id --------------------------------------------------------------- */

Test(event, client_event_id_accepted)
{
    es_event_t ev;
    accept(&ev, "{\"event_type\": \"x\", \"event_id\": \"6f1c1a52-0d4e-4a8b-9a5e-3c2b1d0e9f87\"}");
    cr_assert_str_eq(ev.event_id, "6f1c1a52-0d4e-4a8b-9a5e-3c2b1d0e9f87");
    cr_assert(ev.client_id);
    es_event_clear(&ev);
    accept(&ev, "{\"event_type\": \"x\", \"event_id\": \"order-123\"}");
    cr_assert_str_eq(ev.event_id, "order-123");
    cr_assert(ev.client_id);
    es_event_clear(&ev);

    char *id255 = repeat("i", 255);
    char text[600];
    snprintf(text, sizeof(text), "{\"event_type\": \"x\", \"event_id\": \"%s\"}", id255);
    accept(&ev, text);
    cr_assert_str_eq(ev.event_id, id255);
    es_event_clear(&ev);
    free(id255);
}

Test(event, client_event_id_rejected)
{
    const char *msg = "must be a non-empty string of at most 255 characters";
    reject("{\"event_type\": \"x\", \"event_id\": \"\"}", "events[3].", "events[3].event_id", msg);
    reject("{\"event_type\": \"x\", \"event_id\": 7}", "events[3].", "events[3].event_id", msg);
    reject("{\"event_type\": \"x\", \"event_id\": true}", "", "event_id", msg);
    reject("{\"event_type\": \"x\", \"event_id\": []}", "", "event_id", msg);
    reject("{\"event_type\": \"x\", \"event_id\": {}}", "", "event_id", msg);
    reject("{\"event_type\": \"x\", \"event_id\": \"a\\tb\"}", "", "event_id", msg);
    reject("{\"event_type\": \"x\", \"event_id\": \"a\\u0000b\"}", "", "event_id", msg);
    char *id256 = repeat("i", 256);
    char text[600];
    snprintf(text, sizeof(text), "{\"event_type\": \"x\", \"event_id\": \"%s\"}", id256);
    reject(text, "", "event_id", msg);
    free(id256);
}

/* ---- wrong types, field by field ------------------------------------------- */

typedef struct {
    const char *json; /* the offending member, added to a valid event */
    const char *field;
    const char *msg;
} bad_field_t;

static const bad_field_t bad_fields[] = {
    {"\"event_source\": 1", "event_source", "not a valid value"},
    {"\"event_source\": \"web\"", "event_source", "not a valid value"},
    {"\"event_source\": \"BACKEND\"", "event_source", "not a valid value"},
    {"\"event_source\": \"\"", "event_source", "not a valid value"},
    {"\"event_source\": [\"backend\"]", "event_source", "not a valid value"},
    {"\"event_category\": \"purchase\"", "event_category", "not a valid value"},
    {"\"event_category\": true", "event_category", "not a valid value"},
    {"\"event_category\": {}", "event_category", "not a valid value"},
    {"\"user_id\": 1", "user_id", "must be a string, not an integer"},
    {"\"user_id\": 1.5", "user_id", "must be a string, not a number"},
    {"\"session_id\": true", "session_id", "must be a string, not a boolean"},
    {"\"organization_id\": []", "organization_id", "must be a string, not an array"},
    {"\"device_id\": {}", "device_id", "must be a string, not an object"},
    {"\"correlation_id\": false", "correlation_id", "must be a string, not a boolean"},
    {"\"user_id\": \"a\\u0000b\"", "user_id", "must not contain NUL characters"},
    {"\"data\": \"x\"", "data", "must be an object, not a string"},
    {"\"data\": []", "data", "must be an object, not an array"},
    {"\"metadata\": 1", "metadata", "must be an object, not an integer"},
    {"\"context\": true", "context", "must be an object, not a boolean"},
    {"\"properties\": 2.5", "properties", "must be an object, not a number"},
    {"\"timestamp\": true", "timestamp", "not a valid date-time"},
    {"\"timestamp\": []", "timestamp", "not a valid date-time"},
    {"\"timestamp\": {}", "timestamp", "not a valid date-time"},
    {"\"timestamp\": \"yesterday\"", "timestamp", "not a valid date-time"},
    {"\"stream_id\": 1", "stream_id", "must be a string, not an integer"},
    {"\"stream_id\": {}", "stream_id", "must be a string, not an object"},
    {"\"entity_type\": 1, \"entity_id\": \"1\"", "entity_type", "must be a string"},
    {"\"entity_type\": \"order\", \"entity_id\": 1", "entity_id", "must be a string"},
    {"\"stream_id\": \"s\", \"expected_version\": \"1\"", "expected_version",
     "must be an integer >= 0"},
    {"\"stream_id\": \"s\", \"expected_version\": 1.0", "expected_version",
     "must be an integer >= 0"},
    {"\"stream_id\": \"s\", \"expected_version\": true", "expected_version",
     "must be an integer >= 0"},
    {"\"stream_id\": \"s\", \"expected_version\": []", "expected_version",
     "must be an integer >= 0"},
    {"\"stream_id\": \"s\", \"expected_version\": -1", "expected_version",
     "must be an integer >= 0"},
};

Test(event, wrong_types_name_the_field_with_prefix)
{
    for (size_t i = 0; i < sizeof(bad_fields) / sizeof(bad_fields[0]); i++) {
        const bad_field_t *b = &bad_fields[i];
        char text[256], field[64];
        snprintf(text, sizeof(text), "{\"event_type\": \"x\", %s}", b->json);
        reject(text, "", b->field, b->msg);
        snprintf(field, sizeof(field), "events[3].%s", b->field);
        reject(text, "events[3].", field, b->msg);
    }
}

Test(event, enum_error_lists_the_allowed_values)
{
    es_event_t ev;
    es_field_error_t err;
    cr_assert_eq(from(&ev, "{\"event_type\": \"x\", \"event_source\": \"web\"}", "", &err),
                 ES_INVALID);
    es_event_clear(&ev);
    cr_assert_str_eq(err.msg, "not a valid value (expected one of: frontend, backend, system, "
                              "iot_device, external_api, scheduled)");
    cr_assert_eq(from(&ev, "{\"event_type\": \"x\", \"event_category\": \"nope\"}", "", &err),
                 ES_INVALID);
    es_event_clear(&ev);
    cr_assert(strstr(err.msg, "user_action") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "alert)") != NULL, "all 17 listed: %s", err.msg);
}

Test(event, string_fields_length_limit)
{
    static const char *const keys[] = {"user_id",   "session_id",     "organization_id",
                                       "device_id", "correlation_id", "stream_id"};
    char *v255 = repeat("v", 255), *v256 = repeat("v", 256);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char text[700];
        snprintf(text, sizeof(text), "{\"event_type\": \"x\", \"%s\": \"%s\"}", keys[i], v255);
        es_event_t ev;
        accept(&ev, text);
        es_event_clear(&ev);
        snprintf(text, sizeof(text), "{\"event_type\": \"x\", \"%s\": \"%s\"}", keys[i], v256);
        char field[64];
        snprintf(field, sizeof(field), "events[3].%s", keys[i]);
        reject(text, "events[3].", field, "must be at most 255 characters");
    }
    free(v255);
    free(v256);
}

/* ---- timestamp -------------------------------------------------------------- */

static int64_t timestamp_of(const char *member)
{
    char text[256];
    snprintf(text, sizeof(text), "{\"event_type\": \"x\", \"timestamp\": %s}", member);
    es_event_t ev;
    accept(&ev, text);
    int64_t us = ev.timestamp_us;
    cr_assert_eq(ev.created_at_us, NOW, "a client timestamp leaves created_at alone");
    es_event_clear(&ev);
    return us;
}

Test(event, timestamp_iso_strings)
{
    const int64_t jan1 = 1735689600LL * S;
    cr_assert_eq(timestamp_of("\"2025-01-01T00:00:00Z\""), jan1);
    cr_assert_eq(timestamp_of("\"2025-01-01T00:00:00\""), jan1);
    cr_assert_eq(timestamp_of("\"2025-01-01T02:00:00+02:00\""), jan1);
    cr_assert_eq(timestamp_of("\"2024-12-31T19:00:00-0500\""), jan1);
    cr_assert_eq(timestamp_of("\"2025-01-01T00:00:00.25Z\""), jan1 + 250000);
    cr_assert_eq(timestamp_of("\"2025-01-01T00:00:00.123456789Z\""), jan1 + 123456);
    cr_assert_eq(timestamp_of("\"2025-01-01 00:00:00.5+00\""), jan1 + 500000);
    cr_assert_eq(timestamp_of("\"2025-01-01\""), jan1);
    cr_assert_eq(timestamp_of("\"0001-01-01T00:00:00Z\""), -62135596800LL * S);
    cr_assert_eq(timestamp_of("\"9999-12-31T23:59:59Z\""), 253402300799LL * S);
}

Test(event, timestamp_unix_numbers)
{
    const int64_t jan1 = 1735689600LL * S;
    cr_assert_eq(timestamp_of("1735689600"), jan1);
    cr_assert_eq(timestamp_of("1735689600.5"), jan1 + 500000);
    cr_assert_eq(timestamp_of("1735689600.000001"), jan1 + 1);
    cr_assert_eq(timestamp_of("0"), 0);
    cr_assert_eq(timestamp_of("-1.5"), -1500000);
    cr_assert_eq(timestamp_of("-62135596800"), -62135596800LL * S);
    /* Numbers from 1e11 up are refused (milliseconds sent by mistake). */
    cr_assert_eq(timestamp_of("99999999999"), 99999999999LL * S);
}

Test(event, timestamp_invalid)
{
    static const char *const bad[] = {
        "\"\"",
        "\"now\"",
        "\"2025-13-01T00:00:00Z\"",
        "\"2023-02-29T00:00:00Z\"",
        "\"2025-01-01T25:00:00Z\"",
        "\"2025-01-01T00:00:00Zjunk\"",
        "\"01/01/2025\"",
        "\"1735689600\"",
        "\"9999-12-31T23:59:59-01:00\"", /* past year 9999 in UTC */
        "\"0001-01-01T00:00:00+01:00\"", /* before year 1 in UTC */
        "-62135596801",
        "253402300800",
        "1e11",
        "-1e11",
        "1e300",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "{\"event_type\": \"x\", \"timestamp\": %s}", bad[i]);
        reject(text, "events[3].", "events[3].timestamp", "not a valid date-time");
    }
}

/* ---- streams ---------------------------------------------------------------- */

Test(event, stream_id_given)
{
    es_event_t ev;
    accept(&ev, "{\"event_type\": \"x\", \"stream_id\": \"order:42\"}");
    cr_assert_str_eq(ev.stream_id, "order:42");
    cr_assert_eq(ev.expected_version, -1);
    es_event_clear(&ev);
}

Test(event, stream_from_entity_type_and_id)
{
    es_event_t ev;
    accept(&ev, "{\"event_type\": \"x\", \"entity_type\": \"order\", \"entity_id\": \"42\"}");
    cr_assert_str_eq(ev.stream_id, "order:42");
    es_event_clear(&ev);
    /* Explicit stream_id wins over the pair. */
    accept(&ev, "{\"event_type\": \"x\", \"stream_id\": \"cart:7\", \"entity_type\": \"order\","
                " \"entity_id\": \"42\"}");
    cr_assert_str_eq(ev.stream_id, "cart:7");
    es_event_clear(&ev);
}

Test(event, entity_type_and_id_go_together)
{
    const char *msg = "entity_type and entity_id go together";
    reject("{\"event_type\": \"x\", \"entity_type\": \"order\"}", "events[3].",
           "events[3].entity_id", msg);
    reject("{\"event_type\": \"x\", \"entity_id\": \"42\"}", "events[3].", "events[3].entity_type",
           msg);
    reject("{\"event_type\": \"x\", \"entity_type\": null, \"entity_id\": \"42\"}", "",
           "entity_type", msg);
    reject("{\"event_type\": \"x\", \"stream_id\": \"s\", \"entity_type\": \"order\"}", "",
           "entity_id", msg);
}

Test(event, stream_id_must_be_usable)
{
    reject("{\"event_type\": \"x\", \"stream_id\": \"\"}", "events[3].", "events[3].stream_id",
           "must be a non-empty string");
    reject("{\"event_type\": \"x\", \"stream_id\": \"a\\nb\"}", "", "stream_id",
           "must be a non-empty string");
    reject("{\"event_type\": \"x\", \"entity_type\": \"a\\u0001\", \"entity_id\": \"1\"}", "",
           "stream_id", "must be a non-empty string");
}

Test(event, stream_from_entity_length_limit)
{
    /* "type:" is 5 characters: an id of 250 fills 255 exactly. */
    char *id250 = repeat("k", 250), *id251 = repeat("k", 251);
    char text[600];
    snprintf(text, sizeof(text),
             "{\"event_type\": \"x\", \"entity_type\": \"type\", \"entity_id\": \"%s\"}", id250);
    es_event_t ev;
    accept(&ev, text);
    cr_assert_eq(strlen(ev.stream_id), 255);
    cr_assert_eq(strncmp(ev.stream_id, "type:kkk", 8), 0);
    es_event_clear(&ev);
    snprintf(text, sizeof(text),
             "{\"event_type\": \"x\", \"entity_type\": \"type\", \"entity_id\": \"%s\"}", id251);
    reject(text, "events[3].", "events[3].entity_id",
           "entity_type:entity_id must be at most 255 characters");
    free(id250);
    free(id251);
}

/* ---- expected_version ------------------------------------------------------- */

Test(event, expected_version_with_a_stream)
{
    es_event_t ev;
    accept(&ev, "{\"event_type\": \"x\", \"stream_id\": \"s\", \"expected_version\": 0}");
    cr_assert_eq(ev.expected_version, 0, "0 means the stream must not exist yet");
    es_event_clear(&ev);
    accept(&ev, "{\"event_type\": \"x\", \"entity_type\": \"a\", \"entity_id\": \"b\","
                " \"expected_version\": 17}");
    cr_assert_eq(ev.expected_version, 17);
    cr_assert_str_eq(ev.stream_id, "a:b");
    es_event_clear(&ev);
    accept(&ev, "{\"event_type\": \"x\", \"stream_id\": \"s\", \"expected_version\": 2147483647}");
    cr_assert_eq(ev.expected_version, 2147483647);
    es_event_clear(&ev);
}

Test(event, expected_version_needs_a_stream)
{
    reject("{\"event_type\": \"x\", \"expected_version\": 0}", "events[3].",
           "events[3].expected_version", "requires stream_id");
    reject("{\"event_type\": \"x\", \"stream_id\": null, \"expected_version\": 5}", "",
           "expected_version", "requires stream_id");
}

Test(event, expected_version_range)
{
    reject("{\"event_type\": \"x\", \"stream_id\": \"s\", \"expected_version\": -1}", "",
           "expected_version", "must be an integer >= 0");
    reject("{\"event_type\": \"x\", \"stream_id\": \"s\", \"expected_version\": 2147483648}", "",
           "expected_version", "must be an integer >= 0");
    reject("{\"event_type\": \"x\", \"stream_id\": \"s\", \"expected_version\": 0.5}", "",
           "expected_version", "must be an integer >= 0");
    reject("{\"event_type\": \"x\", \"stream_id\": \"s\", \"expected_version\": 1e3}", "",
           "expected_version", "must be an integer >= 0");
}

/* ---- request_hash ----------------------------------------------------------- */

static void hash_of(const char *text, char out[33])
{
    es_event_t ev;
    accept(&ev, text);
    memcpy(out, ev.request_hash, 33);
    es_event_clear(&ev);
}

static bool is_hex32(const char *s)
{
    if (strlen(s) != 32)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

Test(event, request_hash_only_for_client_ids)
{
    char h[33];
    hash_of("{\"event_type\": \"x\", \"data\": {\"a\": 1}}", h);
    cr_assert_str_eq(h, "");
    hash_of("{\"event_type\": \"x\", \"event_id\": null}", h);
    cr_assert_str_eq(h, "");
    hash_of("{\"event_type\": \"x\", \"event_id\": \"e1\"}", h);
    cr_assert(is_hex32(h), "%s", h);
}

Test(event, request_hash_ignores_key_order_and_spacing)
{
    char a[33], b[33];
    hash_of("{\"event_id\": \"e1\", \"event_type\": \"x\", \"user_id\": \"u\","
            " \"data\": {\"b\": 2, \"a\": {\"y\": [1, 2], \"x\": null}}}",
            a);
    hash_of("{\"data\":{\"a\":{\"x\":null,\"y\":[1,2]},\"b\":2},\"user_id\":\"u\","
            "\"event_type\":\"x\",\"event_id\":\"e1\"}",
            b);
    cr_assert(is_hex32(a));
    cr_assert_str_eq(a, b);
}

Test(event, request_hash_differs_for_different_content)
{
    char base[33], h[33];
    hash_of("{\"event_id\": \"e1\", \"event_type\": \"x\", \"data\": {\"a\": 1}}", base);
    hash_of("{\"event_id\": \"e1\", \"event_type\": \"x\", \"data\": {\"a\": 2}}", h);
    cr_assert_str_neq(base, h, "data value");
    hash_of("{\"event_id\": \"e1\", \"event_type\": \"y\", \"data\": {\"a\": 1}}", h);
    cr_assert_str_neq(base, h, "event_type");
    hash_of("{\"event_id\": \"e2\", \"event_type\": \"x\", \"data\": {\"a\": 1}}", h);
    cr_assert_str_neq(base, h, "event_id");
    hash_of("{\"event_id\": \"e1\", \"event_type\": \"x\", \"data\": {\"a\": [1]}}", h);
    cr_assert_str_neq(base, h, "nested type");
    hash_of("{\"event_id\": \"e1\", \"event_type\": \"x\", \"data\": {\"a\": 1}, \"user_id\":"
            " \"u\"}",
            h);
    cr_assert_str_neq(base, h, "extra field");
    hash_of("{\"event_id\": \"e1\", \"event_type\": \"x\", \"data\": {\"a\": 1}}", h);
    cr_assert_str_eq(base, h, "same content, same hash");
}

Test(event, hash_content_directly)
{
    es_event_t ev;
    es_event_init(&ev, NOW);
    json_t *a = parse_json("{\"k\": [1, {\"z\": 1, \"a\": 2}]}");
    json_t *b = parse_json("{\"k\": [1, {\"a\": 2, \"z\": 1}]}");
    json_t *c = parse_json("{\"k\": [{\"a\": 2, \"z\": 1}, 1]}");
    char ha[33], hb[33];
    es_event_hash_content(&ev, a);
    memcpy(ha, ev.request_hash, 33);
    es_event_hash_content(&ev, b);
    memcpy(hb, ev.request_hash, 33);
    cr_assert(is_hex32(ha));
    cr_assert_str_eq(ha, hb);
    es_event_hash_content(&ev, c);
    cr_assert_str_neq(ha, ev.request_hash, "array order is content");
    json_decref(a);
    json_decref(b);
    json_decref(c);
    es_event_clear(&ev);
}

/* ---- es_event_append_ingest_json ------------------------------------------- */

/* The element es_event_append_ingest_json writes, parsed back (it must be JSON). */
static json_t *es_event_to_ingest_json(es_event_t *ev, int req, int seq)
{
    es_buf_t b = ES_BUF_INIT;
    es_event_append_ingest_json(&b, ev, req, seq);
    json_error_t jerr;
    json_t *o = json_loads(b.data, 0, &jerr);
    cr_assert_not_null(o, "not JSON: %s (%s)", b.data, jerr.text);
    es_buf_free(&b);
    return o;
}

static const char *const base_keys[] = {
    "req",      "seq",        "event_id",        "event_type", "event_source",   "event_category",
    "user_id",  "session_id", "organization_id", "device_id",  "correlation_id", "data",
    "metadata", "context",    "properties",      "timestamp",  "created_at"};

static void assert_has_base_keys(const json_t *o)
{
    for (size_t i = 0; i < sizeof(base_keys) / sizeof(base_keys[0]); i++)
        cr_assert_not_null(json_object_get(o, base_keys[i]), "missing %s", base_keys[i]);
}

static const char *str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    cr_assert(json_is_string(v), "%s is not a string", key);
    return json_string_value(v);
}

Test(event, ingest_json_of_a_full_event)
{
    es_event_t ev;
    accept(&ev, "{\"event_id\": \"e-1\", \"event_type\": \"order.placed\","
                " \"event_source\": \"external_api\", \"event_category\": \"payment\","
                " \"user_id\": \"u1\", \"session_id\": \"s1\", \"organization_id\": \"o1\","
                " \"device_id\": \"d1\", \"correlation_id\": \"c1\","
                " \"data\": {\"amount\": 5}, \"metadata\": {\"m\": 1},"
                " \"context\": {\"c\": 1}, \"properties\": {\"p\": 1},"
                " \"timestamp\": \"2025-06-15T12:34:56.5Z\","
                " \"entity_type\": \"order\", \"entity_id\": \"42\", \"expected_version\": 0}");
    json_t *o = es_event_to_ingest_json(&ev, 4, 9);
    assert_has_base_keys(o);
    cr_assert_eq(json_object_size(o), 20, "17 base keys + stream_id, expected_version, hash");
    cr_assert_eq(json_integer_value(json_object_get(o, "req")), 4);
    cr_assert_eq(json_integer_value(json_object_get(o, "seq")), 9);
    cr_assert_str_eq(str(o, "event_id"), "e-1");
    cr_assert_str_eq(str(o, "event_type"), "order.placed");
    cr_assert_str_eq(str(o, "event_source"), "external_api");
    cr_assert_str_eq(str(o, "event_category"), "payment");
    cr_assert_str_eq(str(o, "user_id"), "u1");
    cr_assert_str_eq(str(o, "session_id"), "s1");
    cr_assert_str_eq(str(o, "organization_id"), "o1");
    cr_assert_str_eq(str(o, "device_id"), "d1");
    cr_assert_str_eq(str(o, "correlation_id"), "c1");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "data"), "amount")), 5);
    cr_assert(json_equal(json_object_get(o, "metadata"), ev.metadata));
    cr_assert(json_equal(json_object_get(o, "context"), ev.context));
    cr_assert(json_equal(json_object_get(o, "properties"), ev.properties));
    cr_assert_str_eq(str(o, "timestamp"), "2025-06-15T12:34:56.500000Z");
    cr_assert_str_eq(str(o, "created_at"), "2025-01-01T00:00:00.123456Z");
    cr_assert_str_eq(str(o, "stream_id"), "order:42");
    cr_assert(json_is_integer(json_object_get(o, "expected_version")));
    cr_assert_eq(json_integer_value(json_object_get(o, "expected_version")), 0);
    cr_assert_str_eq(str(o, "request_hash"), ev.request_hash);
    json_decref(o);
    /* The event still owns its objects after the ingest JSON is gone. */
    cr_assert_eq(json_integer_value(json_object_get(ev.data, "amount")), 5);
    es_event_clear(&ev);
}

Test(event, ingest_json_of_a_minimal_event)
{
    es_event_t ev;
    accept(&ev, "{\"event_type\": \"x\"}");
    json_t *o = es_event_to_ingest_json(&ev, 0, 0);
    assert_has_base_keys(o);
    cr_assert_eq(json_object_size(o), 17, "no stream, no expected_version, no hash");
    cr_assert_null(json_object_get(o, "stream_id"));
    cr_assert_null(json_object_get(o, "expected_version"));
    cr_assert_null(json_object_get(o, "request_hash"));
    cr_assert_str_eq(str(o, "event_id"), ev.event_id);
    cr_assert_str_eq(str(o, "event_source"), "backend");
    cr_assert_str_eq(str(o, "event_category"), "user_action");
    cr_assert(json_is_null(json_object_get(o, "user_id")));
    cr_assert(json_is_null(json_object_get(o, "session_id")));
    cr_assert(json_is_null(json_object_get(o, "organization_id")));
    cr_assert(json_is_null(json_object_get(o, "device_id")));
    cr_assert(json_is_null(json_object_get(o, "correlation_id")));
    cr_assert(is_empty_object(json_object_get(o, "data")));
    cr_assert(is_empty_object(json_object_get(o, "metadata")));
    cr_assert(is_empty_object(json_object_get(o, "context")));
    cr_assert(is_empty_object(json_object_get(o, "properties")));
    cr_assert_str_eq(str(o, "timestamp"), "2025-01-01T00:00:00.123456Z");
    cr_assert_str_eq(str(o, "created_at"), "2025-01-01T00:00:00.123456Z");
    json_decref(o);
    es_event_clear(&ev);
}

Test(event, ingest_json_stream_without_expected_version)
{
    es_event_t ev;
    accept(&ev, "{\"event_type\": \"x\", \"stream_id\": \"s:1\","
                " \"timestamp\": \"2025-01-01T00:00:00Z\"}");
    json_t *o = es_event_to_ingest_json(&ev, 1, 2);
    cr_assert_eq(json_object_size(o), 18);
    cr_assert_str_eq(str(o, "stream_id"), "s:1");
    cr_assert_null(json_object_get(o, "expected_version"), "omitted means no check");
    cr_assert_str_eq(str(o, "timestamp"), "2025-01-01T00:00:00Z", "no fraction when zero");
    json_decref(o);
    es_event_clear(&ev);
}

Test(event, ingest_json_timestamp_before_1970)
{
    es_event_t ev;
    accept(&ev, "{\"event_type\": \"x\", \"timestamp\": -1.5}");
    json_t *o = es_event_to_ingest_json(&ev, 0, 0);
    cr_assert_str_eq(str(o, "timestamp"), "1969-12-31T23:59:58.500000Z");
    json_decref(o);
    es_event_clear(&ev);
}

/* ---- es_json_too_deep -------------------------------------------------------- */

/* depth containers nested inside each other, alternating arrays and objects. */
static json_t *nest(int depth, bool objects)
{
    json_t *v = objects ? json_object() : json_array();
    for (int i = 1; i < depth; i++) {
        json_t *outer = objects ? json_object() : json_array();
        if (objects)
            json_object_set_new(outer, "k", v);
        else
            json_array_append_new(outer, v);
        v = outer;
    }
    return v;
}

Test(event, too_deep_at_the_limit_and_one_past)
{
    for (int objects = 0; objects <= 1; objects++) {
        json_t *at = nest(64, objects), *past = nest(65, objects);
        cr_assert_not(es_json_too_deep(at, 64), "64 levels are allowed (objects=%d)", objects);
        cr_assert(es_json_too_deep(past, 64), "65 levels are too deep (objects=%d)", objects);
        json_decref(at);
        json_decref(past);
    }
}

Test(event, too_deep_small_limits)
{
    json_t *scalar = json_integer(1);
    cr_assert_not(es_json_too_deep(scalar, 0), "a scalar is no container");
    json_decref(scalar);
    json_t *one = json_object();
    cr_assert_not(es_json_too_deep(one, 1));
    cr_assert(es_json_too_deep(one, 0));
    json_decref(one);
    /* Scalars inside the deepest container do not add a level. */
    json_t *v = parse_json("{\"a\": [1, \"s\", null, true, 2.5]}");
    cr_assert_not(es_json_too_deep(v, 2));
    cr_assert(es_json_too_deep(v, 1));
    json_decref(v);
}

Test(event, too_deep_finds_the_deep_branch_anywhere)
{
    json_t *v = parse_json("{\"a\": 1, \"b\": [], \"c\": {\"d\": [[{}]]}, \"e\": \"x\"}");
    cr_assert(es_json_too_deep(v, 4), "c.d[0][0] is at level 5");
    cr_assert_not(es_json_too_deep(v, 5));
    json_decref(v);
    v = parse_json("[1, [2], [3, [4, [5]]]]");
    cr_assert(es_json_too_deep(v, 3));
    cr_assert_not(es_json_too_deep(v, 4));
    json_decref(v);
}
