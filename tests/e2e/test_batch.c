/* POST /api/v1/events/batch: both input shapes, the answer, all-or-nothing
 * validation and the size limits. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH "/api/v1/events/batch"

/* A body of n events, wrapped as {"events": [...]} or as a bare array. */
static char *batch_body(int n, bool wrapped)
{
    size_t cap = 64 + (size_t)n * 96;
    char *b = malloc(cap);
    size_t len = (size_t)snprintf(b, cap, "%s", wrapped ? "{\"events\":[" : "[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(b + len, cap - len,
                                "%s{\"event_type\":\"batch.item\",\"data\":{\"i\":%d}}",
                                i ? "," : "", i);
    snprintf(b + len, cap - len, "%s", wrapped ? "]}" : "]");
    return b;
}

/* Checks a 201 batch answer: count n, n events in input order, all stored. */
static void assert_created(h_env_t *e, h_resp_t *r, int n)
{
    cr_assert_eq(r->status, 201, "%s", r->body);
    cr_assert_eq(h_jint(r->json, "count"), n, "%s", r->body);
    json_t *events = h_jget(r->json, "events");
    cr_assert(json_is_array(events) && json_array_size(events) == (size_t)n, "%s", r->body);
    char **ids = calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        json_t *ev = json_array_get(events, (size_t)i);
        cr_assert_eq(h_jint(ev, "data.i"), i, "event %d out of order: %s", i, r->body);
        cr_assert_str_eq(h_jstr(ev, "status"), "pending");
        ids[i] = (char *)h_jstr(ev, "event_id");
        cr_assert(ids[i] != NULL);
    }
    cr_assert_eq(h_count_events(e, ids, n), n, "not every event of the batch is stored");
    free(ids);
}

/* {"events": [...]} and a bare array are both accepted: 201 {events, count}. */
H_TEST(batch, wrapped_and_bare_array)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    char *body = batch_body(3, true);
    h_resp_t r = h_http(e->svc.port, "POST", BATCH, body, strlen(body), NULL, 0);
    assert_created(e, &r, 3);
    h_resp_free(&r);
    free(body);

    body = batch_body(4, false);
    r = h_http(e->svc.port, "POST", BATCH, body, strlen(body), NULL, 0);
    assert_created(e, &r, 4);
    h_resp_free(&r);
    free(body);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 7);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), 7);
}

/* One bad element fails the whole batch: 422 naming events[2].event_source,
 * and no row is written. */
H_TEST(batch, one_bad_element_writes_nothing)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_post(e, BATCH,
                        "{\"events\":[{\"event_type\":\"a\"},{\"event_type\":\"b\"},"
                        "{\"event_type\":\"c\",\"event_source\":\"nowhere\"},"
                        "{\"event_type\":\"d\"}]}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    const char *detail = h_jstr(r.json, "detail");
    cr_assert(detail && strstr(detail, "events[2].event_source") != NULL, "detail: %s", r.body);
    h_resp_free(&r);

    /* The same in a bare array, with the bad field elsewhere. */
    r = h_post(e, BATCH, "[{\"event_type\":\"a\"},{\"event_type\":\"\"}]");
    cr_assert_eq(r.status, 422, "%s", r.body);
    detail = h_jstr(r.json, "detail");
    cr_assert(detail && strstr(detail, "events[1].event_type") != NULL, "detail: %s", r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);
}

/* max_batch (100) events pass; 101 is 422; an empty list is 422. */
H_TEST(batch, size_limits)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    char *body = batch_body(101, true);
    h_resp_t r = h_http(e->svc.port, "POST", BATCH, body, strlen(body), NULL, 0);
    cr_assert_eq(r.status, 422, "101 events: %ld %s", r.status, r.body);
    cr_assert(h_jstr(r.json, "detail") && strstr(h_jstr(r.json, "detail"), "events"), "%s", r.body);
    h_resp_free(&r);
    free(body);

    r = h_post(e, BATCH, "{\"events\":[]}");
    cr_assert_eq(r.status, 422, "empty list: %ld %s", r.status, r.body);
    h_resp_free(&r);
    r = h_post(e, BATCH, "[]");
    cr_assert_eq(r.status, 422, "empty array: %ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);

    body = batch_body(100, false);
    r = h_http(e->svc.port, "POST", BATCH, body, strlen(body), NULL, 0);
    assert_created(e, &r, 100);
    h_resp_free(&r);
    free(body);
}

/* service.max_batch is configurable. */
H_TEST(batch, max_batch_from_config)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = "service:\n  max_batch: 5\n"});
    h_svc_start(e);
    char *body = batch_body(6, true);
    h_resp_t r = h_http(e->svc.port, "POST", BATCH, body, strlen(body), NULL, 0);
    cr_assert_eq(r.status, 422, "%s", r.body);
    h_resp_free(&r);
    free(body);
    body = batch_body(5, true);
    r = h_http(e->svc.port, "POST", BATCH, body, strlen(body), NULL, 0);
    assert_created(e, &r, 5);
    h_resp_free(&r);
    free(body);
}
