/* Refused input on POST /api/v1/events/create: every refusal has the right
 * status, names the field, and writes nothing. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CREATE "/api/v1/events/create"

/* POSTs body and asserts the status and, for a 422, that detail names field. */
static void expect_refused(h_env_t *e, const char *body, long status, const char *field)
{
    h_resp_t r = h_http(e->svc.port, "POST", CREATE, body, strlen(body), NULL, 0);
    cr_assert_eq(r.status, status, "%s -> %ld %s (expected %ld)", body, r.status, r.body, status);
    const char *detail = h_jstr(r.json, "detail");
    cr_assert(detail != NULL, "%s -> no string detail: %s", body, r.body);
    if (field != NULL)
        cr_assert(strstr(detail, field) != NULL, "%s -> detail does not name %s: %s", body, field,
                  detail);
    h_resp_free(&r);
}

/* Malformed JSON is 400. */
H_TEST(validation, malformed_json_400)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    expect_refused(e, "{\"event_type\": ", 400, NULL);
    expect_refused(e, "{event_type: 'x'}", 400, NULL);
    expect_refused(e, "{\"event_type\":\"x\"} trailing", 400, NULL);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);
}

/* Wrong types, unknown enum values, empty or missing event_type: 422 naming
 * the field. */
H_TEST(validation, field_errors_422)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    expect_refused(e, "{\"event_type\":5}", 422, "event_type");
    expect_refused(e, "{\"event_type\":\"\"}", 422, "event_type");
    expect_refused(e, "{\"data\":{}}", 422, "event_type");
    expect_refused(e, "{}", 422, "event_type");
    expect_refused(e, "{\"event_type\":\"x\",\"data\":\"x\"}", 422, "data");
    expect_refused(e, "{\"event_type\":\"x\",\"metadata\":[1]}", 422, "metadata");
    expect_refused(e, "{\"event_type\":\"x\",\"user_id\":7}", 422, "user_id");
    expect_refused(e, "{\"event_type\":\"x\",\"event_source\":\"mars\"}", 422, "event_source");
    expect_refused(e, "{\"event_type\":\"x\",\"event_category\":\"nope\"}", 422, "event_category");
    expect_refused(e, "{\"event_type\":\"x\",\"event_source\":1}", 422, "event_source");
    expect_refused(e, "{\"event_type\":\"x\",\"timestamp\":\"yesterday\"}", 422, "timestamp");
    expect_refused(e, "[{\"event_type\":\"x\"}]", 422, "body");
    expect_refused(e, "\"just a string\"", 422, "body");
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);
}

/* A 422 also lists the field in errors[].loc. */
H_TEST(validation, errors_loc)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_post(e, CREATE, "{\"event_type\":\"x\",\"user_id\":7}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    json_t *loc = h_jget(r.json, "errors.0.loc");
    cr_assert(json_is_array(loc), "%s", r.body);
    json_t *last = json_array_get(loc, json_array_size(loc) - 1);
    cr_assert(json_is_string(last) && strcmp(json_string_value(last), "user_id") == 0, "%s",
              r.body);
    h_resp_free(&r);
}

/* A body over 1 MiB is 413, whether just over or far over the limit. */
H_TEST(validation, body_over_limit_413)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    size_t sizes[] = {1048576 + 100, 6 * 1048576};
    for (int k = 0; k < 2; k++) {
        size_t n = sizes[k];
        char *body = malloc(n + 1);
        int head = snprintf(body, n + 1, "{\"event_type\":\"big\",\"data\":{\"s\":\"");
        memset(body + head, 'a', n - (size_t)head - 3);
        memcpy(body + n - 3, "\"}}", 4);
        h_resp_t r = h_http(e->svc.port, "POST", CREATE, body, n, NULL, 30000);
        cr_assert_eq(r.status, 413, "%zu bytes -> %ld %s %s", n, r.status, r.body, r.error);
        h_resp_free(&r);
        free(body);
    }
    /* Just under the limit is accepted. */
    size_t n = 1048576 - 64;
    char *body = malloc(n + 1);
    int head = snprintf(body, n + 1, "{\"event_type\":\"big\",\"data\":{\"s\":\"");
    memset(body + head, 'a', n - (size_t)head - 3);
    memcpy(body + n - 3, "\"}}", 4);
    h_resp_t r = h_http(e->svc.port, "POST", CREATE, body, n, NULL, 30000);
    cr_assert_eq(r.status, 201, "%zu bytes -> %ld %.200s", n, r.status, r.body);
    h_resp_free(&r);
    free(body);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 1);
}

/* A body of `depth` nested containers: the top-level object is level 1. */
static char *nested_body(int depth)
{
    size_t cap = 64 + (size_t)depth * 8;
    char *b = malloc(cap);
    size_t len = (size_t)snprintf(b, cap, "{\"event_type\":\"deep\",\"data\":");
    for (int i = 2; i <= depth; i++)
        len += (size_t)snprintf(b + len, cap - len, "%s", i == depth ? "{}" : "{\"a\":");
    for (int i = 2; i < depth; i++)
        b[len++] = '}';
    snprintf(b + len, cap - len, "}");
    return b;
}

/* JSON nesting: 64 levels pass, 65 levels are 422; nothing deeper is stored. */
H_TEST(validation, nesting_depth_limit)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    char *deep = nested_body(65);
    h_resp_t r = h_http(e->svc.port, "POST", CREATE, deep, strlen(deep), NULL, 0);
    cr_assert_eq(r.status, 422, "65 levels -> %ld %s", r.status, r.body);
    h_resp_free(&r);
    free(deep);
    deep = nested_body(500);
    r = h_http(e->svc.port, "POST", CREATE, deep, strlen(deep), NULL, 0);
    cr_assert_eq(r.status, 422, "500 levels -> %ld %s", r.status, r.body);
    h_resp_free(&r);
    free(deep);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);

    deep = nested_body(64);
    r = h_http(e->svc.port, "POST", CREATE, deep, strlen(deep), NULL, 0);
    cr_assert_eq(r.status, 201, "64 levels -> %ld %s", r.status, r.body);
    h_resp_free(&r);
    free(deep);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 1);
}

/* An empty body is refused (422 naming the body), not a crash or a 500. */
H_TEST(validation, empty_body)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_http(e->svc.port, "POST", CREATE, NULL, 0, NULL, 0);
    cr_assert(r.status == 400 || r.status == 422, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);
}
