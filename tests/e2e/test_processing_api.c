/* The processors API: registration and its validation, the list, and
 * PUT /api/v1/events/processors/{id}/toggle in its three forms. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROCESSORS "/api/v1/events/processors"

static h_resp_t put(h_env_t *e, const char *path, const char *body)
{
    return h_http(e->svc.port, "PUT", path, body, body ? strlen(body) : 0, NULL, 0);
}

/* POSTs a registration that must be refused with 422 whose detail starts
 * with "<field>: ". */
static void expect_422(h_env_t *e, const char *body, const char *field)
{
    h_resp_t r = h_post(e, PROCESSORS, "%s", body);
    cr_assert_eq(r.status, 422, "POST %s -> %ld %s (expected 422 naming %s)", body, r.status,
                 r.body, field);
    const char *detail = h_jstr(r.json, "detail");
    size_t n = strlen(field);
    cr_assert(detail && strncmp(detail, field, n) == 0 && detail[n] == ':',
              "POST %s: detail does not name %s: %s", body, field, r.body);
    h_resp_free(&r);
}

static int64_t processor_rows(h_env_t *e)
{
    return h_sql_int(e, "SELECT count(*) FROM event.event_processors");
}

/* Every malformed registration answers 422 naming the field, a repeated
 * processor_name 409 naming processor_name, malformed JSON 400; none of them
 * writes a row. */
H_TEST(processing_api, registration_validation)
{
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1});
    h_svc_start(e);

    h_resp_t r =
        h_post(e, PROCESSORS, "{\"processor_name\":\"audit\",\"processor_type\":\"noop\"}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);

    expect_422(e, "{\"processor_name\":\"x\",\"processor_type\":\"teleport\"}", "processor_type");
    expect_422(e, "{\"processor_name\":\"x\"}", "processor_type");
    expect_422(e, "{\"processor_type\":\"noop\"}", "processor_name");
    expect_422(e, "{\"processor_name\":\"\",\"processor_type\":\"noop\"}", "processor_name");
    expect_422(e, "{\"processor_name\":7,\"processor_type\":\"noop\"}", "processor_name");
    expect_422(e, "{\"processor_name\":\"x\",\"processor_type\":\"webhook\"}", "config.url");
    expect_422(e, "{\"processor_name\":\"x\",\"processor_type\":\"webhook\",\"config\":{}}",
               "config.url");
    expect_422(e,
               "{\"processor_name\":\"x\",\"processor_type\":\"webhook\","
               "\"config\":{\"url\":\"ftp://127.0.0.1/x\"}}",
               "config.url");
    expect_422(e,
               "{\"processor_name\":\"x\",\"processor_type\":\"webhook\","
               "\"config\":{\"url\":\"http://127.0.0.1:1/x\",\"timeout_ms\":0}}",
               "config.timeout_ms");
    expect_422(e, "{\"processor_name\":\"x\",\"processor_type\":\"nats\",\"config\":{}}",
               "config.subject");
    expect_422(e, "{\"processor_name\":\"x\",\"processor_type\":\"noop\",\"config\":[1]}",
               "config");
    expect_422(e, "{\"processor_name\":\"x\",\"processor_type\":\"noop\",\"priority\":\"high\"}",
               "priority");
    expect_422(e, "{\"processor_name\":\"x\",\"processor_type\":\"noop\",\"enabled\":\"yes\"}",
               "enabled");
    expect_422(e, "{\"processor_name\":\"x\",\"processor_type\":\"noop\",\"filters\":\"user.*\"}",
               "filters");
    expect_422(e,
               "{\"processor_name\":\"x\",\"processor_type\":\"noop\","
               "\"filters\":{\"event_source\":\"mainframe\"}}",
               "filters.event_source");
    expect_422(e,
               "{\"processor_name\":\"x\",\"processor_type\":\"noop\","
               "\"filters\":{\"event_categories\":[\"payment\",\"gossip\"]}}",
               "filters.event_categories[1]");
    expect_422(e,
               "{\"processor_name\":\"x\",\"processor_type\":\"noop\","
               "\"filters\":{\"event_types\":[\"user..created\"]}}",
               "filters.event_types[0]");
    expect_422(e,
               "{\"processor_name\":\"x\",\"processor_type\":\"noop\","
               "\"filters\":{\"event_types\":[\"user.>.x\"]}}",
               "filters.event_types[0]");
    expect_422(e,
               "{\"processor_name\":\"x\",\"processor_type\":\"noop\","
               "\"filters\":{\"event_type\":17}}",
               "filters.event_type");
    expect_422(e, "[1,2]", "body");

    r = h_post(e, PROCESSORS, "{\"processor_name\":\"audit\",\"processor_type\":\"noop\"}");
    cr_assert_eq(r.status, 409, "a second processor named audit: %ld %s", r.status, r.body);
    const char *detail = h_jstr(r.json, "detail");
    cr_assert(detail && strstr(detail, "processor_name") != NULL, "%s", r.body);
    h_resp_free(&r);

    r = h_post(e, PROCESSORS, "{\"processor_name\":");
    cr_assert_eq(r.status, 400, "malformed JSON: %ld %s", r.status, r.body);
    h_resp_free(&r);

    cr_assert_eq(processor_rows(e), 1, "a refused registration wrote a row");
}

/* A registration answers 201 with the processor as stored (defaults filled
 * in, a client processor_id kept); GET lists every processor, highest
 * priority first. */
H_TEST(processing_api, register_and_list)
{
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1});
    h_svc_start(e);

    h_resp_t r = h_get(e, PROCESSORS);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_array(r.json) && json_array_size(r.json) == 0, "%s", r.body);
    h_resp_free(&r);

    r = h_post(e, PROCESSORS,
               "{\"processor_name\":\"hook\",\"processor_type\":\"webhook\",\"priority\":5,"
               "\"filters\":{\"event_types\":[\"user.*\"],\"event_source\":\"frontend\"},"
               "\"config\":{\"url\":\"http://127.0.0.1:9/in\",\"timeout_ms\":1500}}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    const char *hook_id = h_jstr(r.json, "processor_id");
    cr_assert(hook_id && hook_id[0], "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "processor_name"), "hook");
    cr_assert_str_eq(h_jstr(r.json, "processor_type"), "webhook");
    cr_assert(json_is_true(h_jget(r.json, "enabled")), "enabled defaults to true: %s", r.body);
    cr_assert_eq(h_jint(r.json, "priority"), 5, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "filters.event_types.0"), "user.*", "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "filters.event_source"), "frontend", "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "config.url"), "http://127.0.0.1:9/in", "%s", r.body);
    cr_assert_eq(h_jint(r.json, "config.timeout_ms"), 1500, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "error_count"), 0, "%s", r.body);
    cr_assert(json_is_null(h_jget(r.json, "last_error")), "%s", r.body);
    cr_assert(json_is_null(h_jget(r.json, "last_processed_at")), "%s", r.body);
    cr_assert(h_jstr(r.json, "created_at") != NULL, "%s", r.body);
    char *hook = strdup(hook_id);
    h_resp_free(&r);

    r = h_post(e, PROCESSORS,
               "{\"processor_id\":\"proc-audit\",\"processor_name\":\"audit\","
               "\"processor_type\":\"noop\",\"priority\":50,\"enabled\":false}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "processor_id"), "proc-audit", "%s", r.body);
    cr_assert(json_is_false(h_jget(r.json, "enabled")), "%s", r.body);
    cr_assert_eq(json_object_size(h_jget(r.json, "filters")), 0, "%s", r.body);
    h_resp_free(&r);

    r = h_post(e, PROCESSORS,
               "{\"processor_name\":\"bus\",\"processor_type\":\"nats\",\"priority\":-3,"
               "\"config\":{\"subject\":\"audit.events\"}}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);

    r = h_post(e, PROCESSORS,
               "{\"processor_id\":\"proc-audit\",\"processor_name\":\"other\","
               "\"processor_type\":\"noop\"}");
    cr_assert_eq(r.status, 409, "a repeated processor_id: %ld %s", r.status, r.body);
    h_resp_free(&r);

    r = h_get(e, PROCESSORS);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_array_size(r.json), 3, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "0.processor_name"), "audit", "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "1.processor_name"), "hook", "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "2.processor_name"), "bus", "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "1.processor_id"), hook, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "2.config.subject"), "audit.events", "%s", r.body);
    cr_assert_eq(h_jint(r.json, "2.priority"), -3, "%s", r.body);
    h_resp_free(&r);
    free(hook);
}

/* The enabled flag as the database and GET hold it. */
static bool enabled_in_list(h_env_t *e, const char *id)
{
    h_resp_t r = h_get(e, PROCESSORS);
    cr_assert_eq(r.status, 200, "%s", r.body);
    bool found = false, enabled = false;
    size_t i;
    json_t *p;
    json_array_foreach(r.json, i, p)
    {
        if (strcmp(h_jstr(p, "processor_id"), id) == 0) {
            found = true;
            enabled = json_is_true(h_jget(p, "enabled"));
        }
    }
    h_resp_free(&r);
    cr_assert(found, "processor %s is not listed", id);
    return enabled;
}

/* Toggles processor id with query (or NULL) and body (or NULL), asserts 200
 * with the processor, and returns its enabled flag as answered (which must be
 * what GET lists afterwards). */
static bool toggle(h_env_t *e, const char *id, const char *query, const char *body)
{
    char path[256];
    snprintf(path, sizeof(path), PROCESSORS "/%s/toggle%s%s", id, query ? "?" : "",
             query ? query : "");
    h_resp_t r = put(e, path, body);
    cr_assert_eq(r.status, 200, "PUT %s %s -> %ld %s", path, body ? body : "", r.status, r.body);
    cr_assert_str_eq(h_jstr(r.json, "processor_id"), id, "%s", r.body);
    json_t *v = h_jget(r.json, "enabled");
    cr_assert(json_is_boolean(v), "%s", r.body);
    bool enabled = json_is_true(v);
    h_resp_free(&r);
    cr_assert_eq(enabled_in_list(e, id), enabled, "GET disagrees with the toggle answer");
    return enabled;
}

/* ?enabled= sets, a body {"enabled": bool} sets, neither flips; setting the
 * value it already has keeps it; bad values answer 422 naming enabled; an
 * unknown id answers 404. */
H_TEST(processing_api, toggle)
{
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_id\":\"p1\",\"processor_name\":\"one\","
                            "\"processor_type\":\"noop\"}"));

    cr_assert_eq(toggle(e, "p1", "enabled=false", NULL), false);
    cr_assert_eq(toggle(e, "p1", "enabled=false", NULL), false, "enabled=false must not flip");
    cr_assert_eq(toggle(e, "p1", "enabled=true", NULL), true);
    cr_assert_eq(toggle(e, "p1", NULL, "{\"enabled\":false}"), false);
    cr_assert_eq(toggle(e, "p1", NULL, "{\"enabled\":false}"), false, "body false must not flip");
    cr_assert_eq(toggle(e, "p1", NULL, "{\"enabled\":true}"), true);
    cr_assert_eq(toggle(e, "p1", NULL, NULL), false, "a toggle without a value flips");
    cr_assert_eq(toggle(e, "p1", NULL, NULL), true, "a toggle without a value flips");
    cr_assert_eq(toggle(e, "p1", NULL, "{}"), false, "an empty object flips");

    h_resp_t r = put(e, PROCESSORS "/p1/toggle?enabled=maybe", NULL);
    cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
    cr_assert(h_jstr(r.json, "detail") && strncmp(h_jstr(r.json, "detail"), "enabled:", 8) == 0,
              "%s", r.body);
    h_resp_free(&r);
    r = put(e, PROCESSORS "/p1/toggle", "{\"enabled\":\"yes\"}");
    cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
    cr_assert(h_jstr(r.json, "detail") && strncmp(h_jstr(r.json, "detail"), "enabled:", 8) == 0,
              "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(enabled_in_list(e, "p1"), false, "a refused toggle changed the processor");

    r = put(e, PROCESSORS "/no-such-processor/toggle", NULL);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    cr_assert(h_jstr(r.json, "detail") && strstr(h_jstr(r.json, "detail"), "no-such-processor"),
              "%s", r.body);
    h_resp_free(&r);
    r = put(e, PROCESSORS "/no-such-processor/toggle?enabled=true", NULL);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(processor_rows(e), 1);
}

/* A registration whose processor_id is taken answers 409 naming
 * processor_id (the name it carries is new, so naming processor_name, or
 * saying that name exists, misleads). */
H_TEST(processing_api, duplicate_id_conflict_names_processor_id)
{
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_id\":\"p1\",\"processor_name\":\"one\","
                            "\"processor_type\":\"noop\"}"));
    h_resp_t r =
        h_post(e, PROCESSORS,
               "{\"processor_id\":\"p1\",\"processor_name\":\"two\",\"processor_type\":\"noop\"}");
    cr_assert_eq(r.status, 409, "%ld %s", r.status, r.body);
    const char *detail = h_jstr(r.json, "detail");
    cr_assert(detail && strncmp(detail, "processor_id:", 13) == 0,
              "the conflict is on processor_id, the detail says: %s", r.body);
    h_resp_free(&r);
    cr_assert_eq(processor_rows(e), 1);
}

/* A filters object with a key the service does not know (a typo of
 * event_types) is refused with 422 naming it: accepted, it would be ignored
 * and the processor would run for every event. */
H_TEST(processing_api, unknown_filter_key_refused)
{
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1});
    h_svc_start(e);
    expect_422(e,
               "{\"processor_name\":\"x\",\"processor_type\":\"noop\","
               "\"filters\":{\"event_typ\":[\"user.*\"]}}",
               "filters.event_typ");
    cr_assert_eq(processor_rows(e), 0);
}
