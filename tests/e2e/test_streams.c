/* Event streams: versions, expected_version, GET /api/v1/events/stream/{id}
 * and racing appends. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CREATE "/api/v1/events/create"

/* POSTs an append and returns the status; *version gets stream_version. */
static long append(h_env_t *e, const char *body, int64_t *version)
{
    h_resp_t r = h_post(e, CREATE, "%s", body);
    if (version)
        *version = h_jint(r.json, "stream_version");
    long status = r.status;
    if (status != 201)
        fprintf(stderr, "append %s -> %ld %s\n", body, status, r.body);
    h_resp_free(&r);
    return status;
}

/* Appends get versions 1, 2, 3 whether the stream is named by stream_id or
 * by entity_type + entity_id; the GET lists them in order with the head
 * version, and from_version=N returns versions >= N. */
H_TEST(streams, versions_and_read)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    int64_t v = 0;
    cr_assert_eq(append(e, "{\"event_type\":\"order.created\",\"stream_id\":\"order:1\"}", &v),
                 201);
    cr_assert_eq(v, 1);
    cr_assert_eq(append(e,
                        "{\"event_type\":\"order.paid\",\"entity_type\":\"order\","
                        "\"entity_id\":\"1\"}",
                        &v),
                 201);
    cr_assert_eq(v, 2);
    cr_assert_eq(append(e, "{\"event_type\":\"order.shipped\",\"stream_id\":\"order:1\"}", &v),
                 201);
    cr_assert_eq(v, 3);
    /* Another stream starts at 1 of its own. */
    cr_assert_eq(append(e, "{\"event_type\":\"order.created\",\"stream_id\":\"order:2\"}", &v),
                 201);
    cr_assert_eq(v, 1);

    h_resp_t r = h_get(e, "/api/v1/events/stream/order:1");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "stream_id"), "order:1");
    cr_assert_str_eq(h_jstr(r.json, "entity_type"), "order", "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "entity_id"), "1", "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "stream_type"), "order", "%s", r.body);
    cr_assert_eq(h_jint(r.json, "version"), 3, "%s", r.body);
    json_t *events = h_jget(r.json, "events");
    cr_assert_eq(json_array_size(events), 3, "%s", r.body);
    const char *types[] = {"order.created", "order.paid", "order.shipped"};
    for (int i = 0; i < 3; i++) {
        json_t *ev = json_array_get(events, (size_t)i);
        cr_assert_eq(h_jint(ev, "stream_version"), i + 1, "%s", r.body);
        cr_assert_str_eq(h_jstr(ev, "event_type"), types[i], "%s", r.body);
        cr_assert_str_eq(h_jstr(ev, "stream_id"), "order:1", "%s", r.body);
    }
    h_resp_free(&r);

    r = h_get(e, "/api/v1/events/stream/order:1?from_version=2");
    cr_assert_eq(r.status, 200, "%s", r.body);
    events = h_jget(r.json, "events");
    cr_assert_eq(json_array_size(events), 2, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "events.0.stream_version"), 2, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "events.1.stream_version"), 3, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "version"), 3, "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(
        h_sql_int(e, "SELECT version FROM event.event_streams WHERE stream_id = 'order:1'"), 3);
}

/* A stream nobody wrote answers 200 with no events and version 0. */
H_TEST(streams, unknown_stream_is_empty)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_get(e, "/api/v1/events/stream/ghost:7");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "stream_id"), "ghost:7");
    cr_assert(json_is_array(h_jget(r.json, "events")), "%s", r.body);
    cr_assert_eq(json_array_size(h_jget(r.json, "events")), 0, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "version"), 0, "%s", r.body);
    h_resp_free(&r);
}

/* expected_version: 0 creates a new stream; a wrong version is 409 and
 * writes nothing; the right one appends. */
H_TEST(streams, expected_version)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    int64_t v = 0;
    cr_assert_eq(
        append(e, "{\"event_type\":\"a\",\"stream_id\":\"acct:9\",\"expected_version\":0}", &v),
        201);
    cr_assert_eq(v, 1);
    /* 0 again: the stream exists now. */
    h_resp_t r =
        h_post(e, CREATE, "{\"event_type\":\"b\",\"stream_id\":\"acct:9\",\"expected_version\":0}");
    cr_assert_eq(r.status, 409, "%s", r.body);
    cr_assert(h_jstr(r.json, "detail") != NULL, "%s", r.body);
    h_resp_free(&r);
    r = h_post(e, CREATE, "{\"event_type\":\"b\",\"stream_id\":\"acct:9\",\"expected_version\":5}");
    cr_assert_eq(r.status, 409, "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events WHERE stream_id = 'acct:9'"), 1);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 1);

    cr_assert_eq(
        append(e, "{\"event_type\":\"b\",\"stream_id\":\"acct:9\",\"expected_version\":1}", &v),
        201);
    cr_assert_eq(v, 2);
    /* Batch elements carry their own expected_version: a mismatch anywhere
     * refuses the whole batch. */
    r = h_post(e, "/api/v1/events/batch",
               "[{\"event_type\":\"c\",\"stream_id\":\"acct:9\",\"expected_version\":2},"
               "{\"event_type\":\"d\",\"stream_id\":\"acct:9\",\"expected_version\":2}]");
    cr_assert_eq(r.status, 409, "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events WHERE stream_id = 'acct:9'"), 2);
    r = h_post(e, "/api/v1/events/batch",
               "[{\"event_type\":\"c\",\"stream_id\":\"acct:9\",\"expected_version\":2},"
               "{\"event_type\":\"d\",\"stream_id\":\"acct:9\",\"expected_version\":3}]");
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "events.1.stream_version"), 4, "%s", r.body);
    h_resp_free(&r);
}

/* n appends with the same expected_version fired at once: exactly one 201,
 * every other answer 409, and the stream grew by exactly one. */
static void race(h_env_t *e, const char *stream, int expected, int n)
{
    char body[200];
    snprintf(body, sizeof(body),
             "{\"event_type\":\"race\",\"stream_id\":\"%s\",\"expected_version\":%d}", stream,
             expected);
    const char **bodies = calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++)
        bodies[i] = body;
    h_resp_t *out = calloc((size_t)n, sizeof(h_resp_t));
    h_http_multi(e->svc.port, n, "POST", CREATE, bodies, out, 15000);
    int won = 0, conflict = 0;
    for (int i = 0; i < n; i++) {
        won += out[i].status == 201;
        conflict += out[i].status == 409;
        cr_assert(out[i].status == 201 || out[i].status == 409, "append %d: %ld %s %s", i,
                  out[i].status, out[i].body, out[i].error);
        h_resp_free(&out[i]);
    }
    cr_assert_eq(won, 1, "%d appends won the race on %s", won, stream);
    cr_assert_eq(conflict, n - 1);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events WHERE stream_id = $1", stream),
                 expected + 1);
    cr_assert_eq(
        h_sql_int(e, "SELECT version FROM event.event_streams WHERE stream_id = $1", stream),
        expected + 1);
    free(bodies);
    free(out);
}

/* 20 racing appends on an existing stream. */
H_TEST(streams, racing_appends_existing_stream)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    cr_assert_eq(append(e, "{\"event_type\":\"open\",\"stream_id\":\"cart:1\"}", NULL), 201);
    race(e, "cart:1", 1, 20);
}

/* 20 racing appends that each want to create the stream (expected 0). */
H_TEST(streams, racing_appends_new_stream)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    race(e, "cart:2", 0, 20);
}
