/* common/rudder.c: RudderStack / Segment messages mapped onto events. */
#include "common/rudder.h"

#include "common/timeutil.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S 1000000LL
#define RECEIVED (1735689600LL * S + 500000) /* 2025-01-01T00:00:00.5Z */

static json_t *parse_json(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    cr_assert_not_null(v, "test JSON does not parse: %s: %s", text, jerr.text);
    return v;
}

/* Maps text (with type_hint) into ev; returns the result, err filled. */
static es_rc_t map(es_event_t *ev, const char *text, const char *hint, const char *prefix,
                   es_field_error_t *err)
{
    json_t *msg = parse_json(text);
    es_event_init(ev, RECEIVED + 7);
    memset(err, 0, sizeof(*err));
    es_rc_t rc = es_rudder_to_event(ev, msg, hint, ES_SOURCE_FRONTEND, RECEIVED, prefix, err);
    json_decref(msg);
    return rc;
}

static void map_ok(es_event_t *ev, const char *text, const char *hint)
{
    es_field_error_t err;
    es_rc_t rc = map(ev, text, hint, "", &err);
    cr_assert_eq(rc, ES_OK, "%s refused: %s: %s", text, err.field, err.msg);
}

static void map_refused(const char *text, const char *hint, const char *prefix, const char *field)
{
    es_event_t ev;
    es_field_error_t err;
    es_rc_t rc = map(&ev, text, hint, prefix, &err);
    es_event_clear(&ev);
    cr_assert_eq(rc, ES_INVALID, "%s accepted", text);
    cr_assert_str_eq(err.field, field, "%s: field (message \"%s\")", text, err.msg);
    cr_assert(err.msg[0] != '\0', "%s: no message", text);
}

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

Test(rudder, category_branches)
{
    cr_assert_eq(es_rudder_category("page", NULL), ES_CAT_PAGE_VIEW);
    cr_assert_eq(es_rudder_category("page", "Form Click"), ES_CAT_PAGE_VIEW,
                 "page wins whatever the name");
    cr_assert_eq(es_rudder_category("track", "Signup Form Submitted"), ES_CAT_FORM_SUBMIT);
    cr_assert_eq(es_rudder_category("track", "form"), ES_CAT_FORM_SUBMIT);
    cr_assert_eq(es_rudder_category("track", "Button Click"), ES_CAT_CLICK);
    cr_assert_eq(es_rudder_category("track", "doubleclick"), ES_CAT_CLICK);
    cr_assert_eq(es_rudder_category("track", "Form clicked"), ES_CAT_FORM_SUBMIT,
                 "\"form\" is tested before \"click\"");
    cr_assert_eq(es_rudder_category("track", "Order Completed"), ES_CAT_USER_ACTION);
    cr_assert_eq(es_rudder_category("track", NULL), ES_CAT_USER_ACTION);
    cr_assert_eq(es_rudder_category("track", ""), ES_CAT_USER_ACTION);
    cr_assert_eq(es_rudder_category("identify", NULL), ES_CAT_USER_ACTION);
    cr_assert_eq(es_rudder_category("identify", "form click"), ES_CAT_USER_ACTION,
                 "only track looks at the name");
    cr_assert_eq(es_rudder_category("screen", "Home"), ES_CAT_USER_ACTION);
    cr_assert_eq(es_rudder_category("group", NULL), ES_CAT_USER_ACTION);
    cr_assert_eq(es_rudder_category("alias", NULL), ES_CAT_USER_ACTION);
    cr_assert_eq(es_rudder_category(NULL, NULL), ES_CAT_USER_ACTION);
}

Test(rudder, category_ignores_case)
{
    cr_assert_eq(es_rudder_category("PAGE", NULL), ES_CAT_PAGE_VIEW);
    cr_assert_eq(es_rudder_category("Track", "FORM SENT"), ES_CAT_FORM_SUBMIT);
    cr_assert_eq(es_rudder_category("TRACK", "CLICKED"), ES_CAT_CLICK);
}

/* A full track message: every field where the mapping puts it. */
Test(rudder, track_message_mapped)
{
    es_event_t ev;
    map_ok(&ev,
           "{\"type\":\"track\",\"event\":\"Product Clicked\",\"userId\":\"u-1\","
           "\"anonymousId\":\"a-1\",\"messageId\":\"m-1\",\"channel\":\"web\","
           "\"rudderId\":\"r-1\",\"request_ip\":\"203.0.113.1\","
           "\"sentAt\":\"2025-01-01T00:00:10Z\",\"timestamp\":\"2025-01-01T00:00:00Z\","
           "\"integrations\":{\"All\":true},\"properties\":{\"sku\":\"A\",\"n\":2},"
           "\"context\":{\"ip\":\"198.51.100.1\",\"library\":{\"name\":\"js\"}}}",
           NULL);
    cr_assert_str_eq(ev.event_type, "Product Clicked");
    cr_assert_eq(ev.category, ES_CAT_CLICK);
    cr_assert_eq(ev.source, ES_SOURCE_FRONTEND);
    cr_assert_str_eq(ev.user_id, "u-1");
    cr_assert_str_eq(jstr(ev.data, "type"), "track");
    cr_assert_str_eq(jstr(json_object_get(ev.data, "properties"), "sku"), "A");
    cr_assert_str_eq(jstr(ev.context, "ip"), "198.51.100.1");
    cr_assert_str_eq(jstr(json_object_get(ev.context, "library"), "name"), "js");
    cr_assert_str_eq(jstr(ev.metadata, "messageId"), "m-1");
    cr_assert_str_eq(jstr(ev.metadata, "anonymousId"), "a-1");
    cr_assert_str_eq(jstr(ev.metadata, "userId"), "u-1");
    cr_assert_str_eq(jstr(ev.metadata, "sentAt"), "2025-01-01T00:00:10Z");
    cr_assert_str_eq(jstr(ev.metadata, "timestamp"), "2025-01-01T00:00:00Z");
    cr_assert_str_eq(jstr(ev.metadata, "channel"), "web");
    cr_assert_str_eq(jstr(ev.metadata, "rudderId"), "r-1");
    cr_assert_str_eq(jstr(ev.metadata, "request_ip"), "203.0.113.1");
    cr_assert_str_eq(jstr(ev.metadata, "original_type"), "track");
    cr_assert(json_is_true(json_object_get(json_object_get(ev.metadata, "integrations"), "All")));
    const char *recv = jstr(ev.metadata, "receivedAt");
    int64_t us = 0;
    cr_assert(recv && es_time_parse(recv, strlen(recv), &us) && us == RECEIVED, "receivedAt %s",
              recv ? recv : "(none)");
    /* timestamp = receivedAt - (sentAt - timestamp) */
    cr_assert_eq(ev.timestamp_us, RECEIVED - 10 * S);
    cr_assert(ev.client_id, "a messageId names the event");
    es_event_clear(&ev);
}

/* event_type: the track event, else the page/screen name, else the type. */
Test(rudder, event_type_choice)
{
    static const struct {
        const char *msg, *event_type;
        es_category_t cat;
    } cases[] = {
        {"{\"type\":\"page\",\"name\":\"Pricing\",\"userId\":\"u\"}", "Pricing", ES_CAT_PAGE_VIEW},
        {"{\"type\":\"page\",\"userId\":\"u\"}", "page", ES_CAT_PAGE_VIEW},
        {"{\"type\":\"screen\",\"name\":\"Home\",\"userId\":\"u\"}", "Home", ES_CAT_USER_ACTION},
        {"{\"type\":\"identify\",\"userId\":\"u\"}", "identify", ES_CAT_USER_ACTION},
        {"{\"type\":\"group\",\"groupId\":\"g\",\"userId\":\"u\"}", "group", ES_CAT_USER_ACTION},
        {"{\"type\":\"alias\",\"previousId\":\"p\",\"userId\":\"u\"}", "alias", ES_CAT_USER_ACTION},
        {"{\"type\":\"track\",\"event\":\"\",\"name\":\"N\",\"userId\":\"u\"}", "N",
         ES_CAT_USER_ACTION},
        {"{\"type\":\"track\",\"userId\":\"u\"}", "track", ES_CAT_USER_ACTION},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        es_event_t ev;
        map_ok(&ev, cases[i].msg, NULL);
        cr_assert_str_eq(ev.event_type, cases[i].event_type, "%s", cases[i].msg);
        cr_assert_eq(ev.category, cases[i].cat, "%s", cases[i].msg);
        es_event_clear(&ev);
    }
}

/* data keeps traits, name, groupId, previousId when present, and always
 * properties (an empty object when absent) and the type. */
Test(rudder, data_fields)
{
    es_event_t ev;
    map_ok(&ev,
           "{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"plan\":\"pro\"},"
           "\"groupId\":\"g-1\",\"previousId\":\"p-1\",\"name\":\"Nm\"}",
           NULL);
    json_t *props = json_object_get(ev.data, "properties");
    cr_assert(json_is_object(props) && json_object_size(props) == 0);
    cr_assert_str_eq(jstr(json_object_get(ev.data, "traits"), "plan"), "pro");
    cr_assert_str_eq(jstr(ev.data, "groupId"), "g-1");
    cr_assert_str_eq(jstr(ev.data, "previousId"), "p-1");
    cr_assert_str_eq(jstr(ev.data, "name"), "Nm");
    cr_assert_str_eq(jstr(ev.data, "type"), "identify");
    es_event_clear(&ev);

    map_ok(&ev, "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"properties\":[1]}", NULL);
    props = json_object_get(ev.data, "properties");
    cr_assert(json_is_object(props), "properties that are not an object become {}");
    cr_assert_null(json_object_get(ev.data, "traits"));
    es_event_clear(&ev);
}

/* user_id: userId, else anonymousId; numbers are accepted as strings; an
 * empty string is absent. */
Test(rudder, user_id_choice)
{
    static const struct {
        const char *msg, *user_id;
    } cases[] = {
        {"{\"type\":\"track\",\"userId\":\"u\",\"anonymousId\":\"a\"}", "u"},
        {"{\"type\":\"track\",\"anonymousId\":\"a\"}", "a"},
        {"{\"type\":\"track\",\"userId\":\"\",\"anonymousId\":\"a\"}", "a"},
        {"{\"type\":\"track\",\"userId\":null,\"anonymousId\":\"a\"}", "a"},
        {"{\"type\":\"track\",\"userId\":42}", "42"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        es_event_t ev;
        map_ok(&ev, cases[i].msg, NULL);
        cr_assert_str_eq(ev.user_id, cases[i].user_id, "%s", cases[i].msg);
        es_event_clear(&ev);
    }
}

/* The type the endpoint implies (/v1/page) serves when the message has
 * none; the message's own type wins. */
Test(rudder, type_hint)
{
    es_event_t ev;
    map_ok(&ev, "{\"name\":\"Home\",\"userId\":\"u\"}", "page");
    cr_assert_eq(ev.category, ES_CAT_PAGE_VIEW);
    cr_assert_str_eq(jstr(ev.metadata, "original_type"), "page");
    es_event_clear(&ev);
    map_ok(&ev, "{\"type\":\"track\",\"event\":\"Form Sent\",\"userId\":\"u\"}", "page");
    cr_assert_eq(ev.category, ES_CAT_FORM_SUBMIT);
    cr_assert_str_eq(jstr(ev.metadata, "original_type"), "track");
    es_event_clear(&ev);
}

/* The client clock corrected by its skew; originalTimestamp when there is
 * no timestamp; the client's time as is without sentAt; receipt time
 * without either. */
Test(rudder, timestamps)
{
    es_event_t ev;
    map_ok(&ev,
           "{\"type\":\"track\",\"userId\":\"u\",\"timestamp\":\"2020-01-01T00:00:00Z\","
           "\"sentAt\":\"2020-01-01T00:01:00Z\"}",
           NULL);
    cr_assert_eq(ev.timestamp_us, RECEIVED - 60 * S);
    es_event_clear(&ev);
    map_ok(&ev,
           "{\"type\":\"track\",\"userId\":\"u\",\"originalTimestamp\":\"2030-01-01T00:00:00Z\","
           "\"sentAt\":\"2030-01-01T00:00:02.5Z\"}",
           NULL);
    cr_assert_eq(ev.timestamp_us, RECEIVED - 2500000);
    es_event_clear(&ev);
    map_ok(&ev, "{\"type\":\"track\",\"userId\":\"u\",\"timestamp\":\"2021-02-03T04:05:06Z\"}",
           NULL);
    cr_assert_eq(ev.timestamp_us, 1612325106LL * S);
    es_event_clear(&ev);
    map_ok(&ev, "{\"type\":\"track\",\"userId\":\"u\",\"sentAt\":\"2021-02-03T04:05:06Z\"}", NULL);
    cr_assert_eq(ev.timestamp_us, RECEIVED);
    es_event_clear(&ev);
    map_ok(&ev, "{\"type\":\"track\",\"userId\":\"u\",\"timestamp\":\"not a time\"}", NULL);
    cr_assert_eq(ev.timestamp_us, RECEIVED, "an unreadable timestamp falls back to the receipt");
    es_event_clear(&ev);
    /* a receivedAt given by RudderStack is kept in metadata */
    map_ok(&ev, "{\"type\":\"track\",\"userId\":\"u\",\"receivedAt\":\"2024-01-01T00:00:00Z\"}",
           NULL);
    cr_assert_str_eq(jstr(ev.metadata, "receivedAt"), "2024-01-01T00:00:00Z");
    es_event_clear(&ev);
}

/* The messageId names the event: the same id (whatever else a retry
 * changed) maps to the same event_id and fingerprint; another id to another
 * event; no messageId to a random id that is not client-identified. */
Test(rudder, message_id_names_the_event)
{
    es_event_t a, b, c, d;
    map_ok(&a,
           "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":\"m-7\","
           "\"sentAt\":\"2025-01-01T00:00:00Z\"}",
           NULL);
    map_ok(&b,
           "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":\"m-7\","
           "\"sentAt\":\"2025-01-01T00:09:00Z\",\"receivedAt\":\"2025-01-01T00:09:01Z\"}",
           NULL);
    map_ok(&c, "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":\"m-8\"}", NULL);
    map_ok(&d, "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\"}", NULL);
    cr_assert(a.client_id && b.client_id && c.client_id);
    cr_assert_str_eq(a.event_id, b.event_id);
    cr_assert_str_eq(a.request_hash, b.request_hash);
    cr_assert(a.request_hash[0] != '\0');
    cr_assert_str_neq(a.event_id, c.event_id);
    cr_assert_eq(strlen(a.event_id), 36, "a UUID: %s", a.event_id);
    cr_assert(!d.client_id, "no messageId: nothing to be idempotent on");
    es_event_clear(&a);
    es_event_clear(&b);
    es_event_clear(&c);
    es_event_clear(&d);
}

/* What cannot be an event: not an object, no type at all, neither userId
 * nor anonymousId, an event name too long; the field is named under the
 * prefix. */
Test(rudder, refused_messages)
{
    map_refused("[1,2]", NULL, "", "message");
    map_refused("\"track\"", NULL, "batch[3].", "batch[3].message");
    map_refused("{\"event\":\"E\",\"userId\":\"u\"}", NULL, "", "type");
    map_refused("{\"type\":\"\",\"event\":\"E\",\"userId\":\"u\"}", NULL, "", "type");
    map_refused("{\"type\":7,\"event\":\"E\",\"userId\":\"u\"}", "track", "", "type");
    map_refused("{\"type\":\"track\",\"event\":\"E\"}", NULL, "", "userId");
    map_refused("{\"type\":\"track\",\"userId\":\"\",\"anonymousId\":\"\"}", NULL, "batch[0].",
                "batch[0].userId");
    map_refused("{\"type\":\"track\",\"userId\":true}", NULL, "", "userId");
    char msg[600];
    int n = snprintf(msg, sizeof(msg), "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"");
    memset(msg + n, 'e', 300);
    snprintf(msg + n + 300, sizeof(msg) - (size_t)n - 300, "\"}");
    map_refused(msg, NULL, "", "event");
    n = snprintf(msg, sizeof(msg), "{\"type\":\"page\",\"userId\":\"u\",\"name\":\"");
    memset(msg + n, 'p', 300);
    snprintf(msg + n + 300, sizeof(msg) - (size_t)n - 300, "\"}");
    map_refused(msg, NULL, "", "name");
}

/* An event name of 100 characters is within the 255-character column even
 * when each character takes three bytes in UTF-8. */
Test(rudder, long_multibyte_event_name_fits)
{
    char msg[600];
    int n = snprintf(msg, sizeof(msg), "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"");
    for (int i = 0; i < 100; i++)
        n += snprintf(msg + n, sizeof(msg) - (size_t)n, "\xe6\x97\xa5"); /* U+65E5 */
    snprintf(msg + n, sizeof(msg) - (size_t)n, "\"}");
    es_event_t ev;
    es_field_error_t err;
    es_rc_t rc = map(&ev, msg, NULL, "", &err);
    cr_expect_eq(rc, ES_OK, "a 100-character (300-byte) event name refused: %s: %s", err.field,
                 err.msg);
    es_event_clear(&ev);
}

/* userId and anonymousId land in user_id, a 255-character column: a longer
 * one is refused here, naming the field, rather than by the database. */
Test(rudder, overlong_user_id_refused)
{
    char msg[700];
    int n = snprintf(msg, sizeof(msg), "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"");
    memset(msg + n, 'u', 300);
    snprintf(msg + n + 300, sizeof(msg) - (size_t)n - 300, "\"}");
    es_event_t ev;
    es_field_error_t err;
    es_rc_t rc = map(&ev, msg, NULL, "", &err);
    es_event_clear(&ev);
    cr_expect_eq(rc, ES_INVALID, "a 300-character userId accepted");
    if (rc == ES_INVALID)
        cr_expect_str_eq(err.field, "userId");
    n = snprintf(msg, sizeof(msg), "{\"type\":\"track\",\"event\":\"E\",\"anonymousId\":\"");
    memset(msg + n, 'a', 300);
    snprintf(msg + n + 300, sizeof(msg) - (size_t)n - 300, "\"}");
    rc = map(&ev, msg, NULL, "", &err);
    es_event_clear(&ev);
    cr_expect_eq(rc, ES_INVALID, "a 300-character anonymousId accepted");
    if (rc == ES_INVALID)
        cr_expect_str_eq(err.field, "anonymousId");
}
