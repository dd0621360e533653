/* Idempotency-Key on POST /api/v1/events/create and /batch: a repeat with
 * the same body answers 200 with the stored event(s) and writes nothing;
 * the same key with another body is 409. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static h_resp_t post_key(h_env_t *e, const char *path, const char *key, const char *body)
{
    char hdr[512];
    snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", key);
    const char *hdrs[] = {hdr, NULL};
    return h_http(e->svc.port, "POST", path, body, strlen(body), hdrs, 0);
}

H_TEST(ingest_idempotency, create_same_key)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    const char *body = "{\"event_type\":\"order.placed\",\"user_id\":\"u-1\",\"data\":{\"n\":1}}";
    h_resp_t r1 = post_key(e, "/api/v1/events/create", "key-create-1", body);
    cr_assert_eq(r1.status, 201, "%s", r1.body);
    const char *id = h_jstr(r1.json, "event_id");
    cr_assert(id != NULL, "%s", r1.body);

    h_resp_t r2 = post_key(e, "/api/v1/events/create", "key-create-1", body);
    cr_assert_eq(r2.status, 200, "the repeat: %ld %s", r2.status, r2.body);
    cr_assert_str_eq(h_jstr(r2.json, "event_id"), id, "%s", r2.body);
    cr_assert_str_eq(h_jstr(r2.json, "event_type"), "order.placed", "%s", r2.body);
    cr_assert_eq(h_jint(r2.json, "data.n"), 1, "%s", r2.body);

    h_resp_t r3 =
        post_key(e, "/api/v1/events/create", "key-create-1",
                 "{\"event_type\":\"order.placed\",\"user_id\":\"u-1\",\"data\":{\"n\":2}}");
    cr_assert_eq(r3.status, 409, "same key, other body: %ld %s", r3.status, r3.body);
    cr_assert(h_jstr(r3.json, "detail") != NULL, "%s", r3.body);

    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 1);
    cr_assert_eq(h_sql_int(e,
                           "SELECT count(*) FROM event.events WHERE event_id = $1 AND "
                           "data->>'n' = '1'",
                           id),
                 1, "the stored event changed");
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), 1);

    /* Another key, same body: a new event. */
    h_resp_t r4 = post_key(e, "/api/v1/events/create", "key-create-2", body);
    cr_assert_eq(r4.status, 201, "%s", r4.body);
    cr_assert_str_neq(h_jstr(r4.json, "event_id"), id);
    /* No key: a new event every time. */
    h_resp_t r5 = h_post(e, "/api/v1/events/create", "%s", body);
    cr_assert_eq(r5.status, 201, "%s", r5.body);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 3);
    h_resp_free(&r1);
    h_resp_free(&r2);
    h_resp_free(&r3);
    h_resp_free(&r4);
    h_resp_free(&r5);
}

H_TEST(ingest_idempotency, batch_same_key)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    const char *body = "{\"events\":[{\"event_type\":\"a.one\"},{\"event_type\":\"a.two\"}]}";
    h_resp_t r1 = post_key(e, "/api/v1/events/batch", "key-batch-1", body);
    cr_assert_eq(r1.status, 201, "%s", r1.body);
    const char *a = h_jstr(r1.json, "events.0.event_id"), *b = h_jstr(r1.json, "events.1.event_id");
    cr_assert(a && b && strcmp(a, b) != 0, "%s", r1.body);

    h_resp_t r2 = post_key(e, "/api/v1/events/batch", "key-batch-1", body);
    cr_assert_eq(r2.status, 200, "the repeat: %ld %s", r2.status, r2.body);
    cr_assert_str_eq(h_jstr(r2.json, "events.0.event_id"), a, "%s", r2.body);
    cr_assert_str_eq(h_jstr(r2.json, "events.1.event_id"), b, "%s", r2.body);
    cr_assert_eq(h_jint(r2.json, "count"), 2, "%s", r2.body);

    h_resp_t r3 =
        post_key(e, "/api/v1/events/batch", "key-batch-1",
                 "{\"events\":[{\"event_type\":\"a.one\"},{\"event_type\":\"a.three\"}]}");
    cr_assert_eq(r3.status, 409, "same key, other body: %ld %s", r3.status, r3.body);

    /* The bare-array form of the same batch is the same request. */
    h_resp_t r4 = post_key(e, "/api/v1/events/batch", "key-batch-1",
                           "[{\"event_type\":\"a.one\"},{\"event_type\":\"a.two\"}]");
    cr_assert_eq(r4.status, 200, "bare array: %ld %s", r4.status, r4.body);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 2);
    h_resp_free(&r1);
    h_resp_free(&r2);
    h_resp_free(&r3);
    h_resp_free(&r4);
}

/* An unusable key (over 255 characters, or empty) is 422 naming the
 * header; nothing is stored. */
H_TEST(ingest_idempotency, invalid_key_422)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    char longkey[400];
    memset(longkey, 'k', 300);
    longkey[300] = '\0';
    h_resp_t r = post_key(e, "/api/v1/events/create", longkey, "{\"event_type\":\"x\"}");
    cr_assert_eq(r.status, 422, "a 300-character key: %ld %s", r.status, r.body);
    const char *d = h_jstr(r.json, "detail");
    cr_assert(d && strstr(d, "Idempotency-Key"), "%s", r.body);
    h_resp_free(&r);
    /* "Name;" is how curl sends a header with an empty value. */
    const char *empty[] = {"Idempotency-Key;", NULL};
    r = h_http(e->svc.port, "POST", "/api/v1/events/create", "{\"event_type\":\"x\"}", 18, empty,
               0);
    cr_assert_eq(r.status, 422, "an empty key: %ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);
}
