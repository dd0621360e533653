/* Many clients at once. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 200 creates fired at once: 200 answers of 201 with 200 distinct
 * event_ids, and exactly those 200 rows (and queue entries) stored. */
H_TEST(concurrency, two_hundred_creates)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    enum { N = 200 };
    char *bodies[N];
    for (int i = 0; i < N; i++) {
        bodies[i] = malloc(96);
        snprintf(bodies[i], 96, "{\"event_type\":\"burst\",\"data\":{\"i\":%d}}", i);
    }
    h_resp_t *out = calloc(N, sizeof(h_resp_t));
    h_http_multi(e->svc.port, N, "POST", "/api/v1/events/create", (const char *const *)bodies, out,
                 30000);
    char *ids[N];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(out[i].status, 201, "request %d: %ld %s %s", i, out[i].status, out[i].body,
                     out[i].error);
        cr_assert_eq(h_jint(out[i].json, "data.i"), i, "answer %d is another request's: %s", i,
                     out[i].body);
        ids[i] = strdup(h_jstr(out[i].json, "event_id"));
        for (int k = 0; k < i; k++)
            cr_assert_str_neq(ids[k], ids[i], "answers %d and %d share an event_id", k, i);
    }
    cr_assert_eq(h_count_events(e, ids, N), N);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), N);
    cr_assert_eq(h_sql_int(e, "SELECT count(DISTINCT (data->>'i')) FROM event.events"), N);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), N);
    for (int i = 0; i < N; i++) {
        h_resp_free(&out[i]);
        free(bodies[i]);
        free(ids[i]);
    }
    free(out);
}

/* 50 concurrent batches of 10 (with one bad batch among them): the good
 * ones are all stored, the bad one writes nothing. */
H_TEST(concurrency, concurrent_batches)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    enum { N = 50, PER = 10, BAD = 17 };
    char *bodies[N];
    for (int i = 0; i < N; i++) {
        bodies[i] = malloc(PER * 96 + 8);
        size_t len = (size_t)sprintf(bodies[i], "[");
        for (int k = 0; k < PER; k++)
            len += (size_t)sprintf(bodies[i] + len,
                                   "%s{\"event_type\":\"b\",\"event_category\":\"%s\","
                                   "\"data\":{\"b\":%d,\"k\":%d}}",
                                   k ? "," : "", i == BAD && k == 9 ? "bogus" : "task", i, k);
        sprintf(bodies[i] + len, "]");
    }
    h_resp_t *out = calloc(N, sizeof(h_resp_t));
    h_http_multi(e->svc.port, N, "POST", "/api/v1/events/batch", (const char *const *)bodies, out,
                 30000);
    for (int i = 0; i < N; i++) {
        long want = i == BAD ? 422 : 201;
        cr_assert_eq(out[i].status, want, "batch %d: %ld %s %s", i, out[i].status, out[i].body,
                     out[i].error);
        if (want == 201)
            cr_assert_eq(h_jint(out[i].json, "count"), PER);
        h_resp_free(&out[i]);
        free(bodies[i]);
    }
    free(out);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), (N - 1) * PER);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events WHERE data->>'b' = '17'"), 0);
}
