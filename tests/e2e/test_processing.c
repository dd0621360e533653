/* Processor workers: events flow pending -> processed after a wake-up;
 * filters, priorities and toggles decide which processors run, in which
 * order; each run is recorded and published. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROCESSORS "/api/v1/events/processors"

/* The event's `processors` field as GET /api/v1/events/{id} answers it,
 * rendered compactly (caller frees); asserts 200 and the status. */
static char *processors_field(h_env_t *e, const char *id, const char *status)
{
    h_resp_t r = h_get(e, "/api/v1/events/%s", id);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), status, "%s", r.body);
    json_t *p = h_jget(r.json, "processors");
    cr_assert(json_is_array(p), "no processors array: %s", r.body);
    char *s = json_dumps(p, JSON_COMPACT);
    h_resp_free(&r);
    return s;
}

/* The receiver's requests whose body is the event id, in arrival order
 * (*out freed with h_recv_reqs_free by the caller). */
static int requests_for(h_recv_t *rcv, const char *id, h_recv_req_t **out)
{
    h_recv_req_t *all = NULL;
    int n = h_recv_reqs(rcv, &all);
    h_recv_req_t *mine = calloc((size_t)n + 1, sizeof(*mine));
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *eid = h_jstr(all[i].json, "event_id");
        if (eid && strcmp(eid, id) == 0) {
            mine[k++] = all[i];
            memset(&all[i], 0, sizeof(all[i]));
        }
    }
    h_recv_reqs_free(all, n);
    *out = mine;
    return k;
}

/* With a poll interval of 60 s, an event is processed within 10 s of its
 * creation: the API's commit wakes the processor worker. The run is recorded
 * (status, message, duration), the event carries processed_at and the
 * processor's name, the webhook got the event, the processor's counters
 * moved, and event.stored and event.processed.success are on JetStream. */
H_TEST(processing, processed_after_wakeup)
{
    h_recv_t *rcv = h_recv_start();
    h_recv_rule(rcv, "/hook", 200, 60);
    h_env_t *e = h_setup(&(h_opts_t){
        .api_workers = 1, .processors = 1, .extra_yaml = "processing:\n  interval_seconds: 60\n"});
    h_svc_start(e);
    char *hook = h_add_processor(e,
                                 "{\"processor_name\":\"hook\",\"processor_type\":\"webhook\","
                                 "\"config\":{\"url\":\"http://127.0.0.1:%d/hook\"}}",
                                 h_recv_port(rcv));
    /* The first event also covers a worker still subscribing to wake-ups. */
    char *first = h_create(e, "{\"event_type\":\"warm.up\"}");
    cr_assert(H_WAIT(70000, h_event_status_is(e, first, "processed")), "the first event stays %s",
              h_event_status_is(e, first, "pending") ? "pending" : "unprocessed");
    free(first);

    char *id = NULL;
    for (int i = 0; i < 3; i++) {
        free(id);
        int64_t t0 = h_now_ms();
        id = h_create(
            e, "{\"event_type\":\"order.placed\",\"user_id\":\"u%d\",\"data\":{\"n\":%d}}", i, i);
        cr_assert(H_WAIT(10000, h_event_status_is(e, id, "processed")),
                  "event %d not processed within 10 s of its creation (poll interval 60 s): "
                  "no wake-up",
                  i);
        fprintf(stderr, "processed_after_wakeup: event %d processed %lld ms after its create\n", i,
                (long long)(h_now_ms() - t0));
    }

    h_resp_t r = h_get(e, "/api/v1/events/%s", id);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "processed", "%s", r.body);
    cr_assert(h_jstr(r.json, "processed_at") != NULL, "no processed_at: %s", r.body);
    cr_assert(json_is_null(h_jget(r.json, "error_message")), "%s", r.body);
    char *names = json_dumps(h_jget(r.json, "processors"), JSON_COMPACT);
    cr_assert_str_eq(names, "[\"hook\"]", "%s", r.body);
    free(names);
    h_resp_free(&r);

    h_recv_req_t *reqs = NULL;
    int n = requests_for(rcv, id, &reqs);
    cr_assert_eq(n, 1, "the webhook got %d requests for the event", n);
    cr_assert_str_eq(reqs[0].path, "/hook");
    cr_assert_str_eq(h_jstr(reqs[0].json, "event_type"), "order.placed", "%s", reqs[0].body);
    cr_assert_str_eq(h_jstr(reqs[0].json, "user_id"), "u2", "%s", reqs[0].body);
    cr_assert_eq(h_jint(reqs[0].json, "data.n"), 2, "%s", reqs[0].body);
    h_recv_reqs_free(reqs, n);

    PGresult *res = h_sql(e,
                          "SELECT processor_name, status, message, duration_ms, processed_at "
                          "FROM event.processing_results WHERE event_id = $1",
                          id);
    cr_assert_eq(PQntuples(res), 1);
    cr_assert_str_eq(PQgetvalue(res, 0, 0), "hook");
    cr_assert_str_eq(PQgetvalue(res, 0, 1), "success");
    cr_assert_str_eq(PQgetvalue(res, 0, 2), "HTTP 200");
    cr_assert(!PQgetisnull(res, 0, 3) && atoi(PQgetvalue(res, 0, 3)) >= 60,
              "duration_ms %s, but the webhook took 60 ms to answer", PQgetvalue(res, 0, 3));
    cr_assert(!PQgetisnull(res, 0, 4));
    PQclear(res);
    cr_assert_eq(h_sql_int(e,
                           "SELECT count(*) FROM event.event_processors WHERE processor_id = $1 "
                           "AND error_count = 0 AND last_error IS NULL "
                           "AND last_processed_at IS NOT NULL",
                           hook),
                 1, "the processor's counters did not follow");

    cr_assert(h_js_wait_msg(e, id, 20000, NULL), "no event.stored for %s", id);
    cr_assert(H_WAIT(20000, h_js_published_count(e, "event.processed.success", id) == 1),
              "%zu event.processed.success messages for %s",
              h_js_published_count(e, "event.processed.success", id), id);
    json_t *ok = h_js_published(e, "event.processed.success", id);
    cr_assert_str_eq(h_jstr(ok, "0.processor_name"), "hook");
    cr_assert_str_eq(h_jstr(ok, "0.status"), "success");
    json_decref(ok);
    cr_assert_eq(h_js_published_count(e, "event.processed.failed", id), 0);

    r = h_get(e, "/api/v1/events/statistics");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "processed_events"), 4, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "pending_events"), 0, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "failed_events"), 0, "%s", r.body);
    h_resp_free(&r);
    free(id);
    free(hook);
    h_stop_all(e, rcv);
}

/* Filters (type patterns, sources, categories, singular or plural keys,
 * AND across keys) pick the processors of each event; a disabled processor
 * never runs; an event no processor matches is processed with no results; the
 * event's `processors` lists the matched ones, highest priority first. */
H_TEST(processing, filters_pick_processors)
{
    h_env_t *e = h_setup(&(h_opts_t){
        .api_workers = 1, .processors = 1, .extra_yaml = "processing:\n  interval_seconds: 1\n"});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"users\",\"processor_type\":\"noop\","
                            "\"priority\":40,\"filters\":{\"event_types\":[\"user.*\"]}}"));
    free(h_add_processor(e, "{\"processor_name\":\"front\",\"processor_type\":\"noop\","
                            "\"priority\":30,\"filters\":{\"event_source\":\"frontend\"}}"));
    free(h_add_processor(e, "{\"processor_name\":\"money\",\"processor_type\":\"noop\","
                            "\"priority\":20,"
                            "\"filters\":{\"event_categories\":[\"payment\",\"order\"]}}"));
    free(h_add_processor(e, "{\"processor_name\":\"orders\",\"processor_type\":\"noop\","
                            "\"priority\":10,\"filters\":{\"event_type\":\"order.>\","
                            "\"event_sources\":[\"backend\",\"system\"]}}"));
    free(h_add_processor(e, "{\"processor_name\":\"off\",\"processor_type\":\"noop\","
                            "\"priority\":99,\"enabled\":false}"));

    static const struct {
        const char *event;
        const char *expect;
    } cases[] = {
        {"{\"event_type\":\"user.created\"}", "[\"users\"]"},
        {"{\"event_type\":\"user.created.extra\"}", "[]"},
        {"{\"event_type\":\"order.placed.eu\",\"event_category\":\"order\"}",
         "[\"money\",\"orders\"]"},
        {"{\"event_type\":\"page.viewed\",\"event_source\":\"frontend\","
         "\"event_category\":\"page_view\"}",
         "[\"front\"]"},
        {"{\"event_type\":\"order.placed\",\"event_source\":\"frontend\","
         "\"event_category\":\"order\"}",
         "[\"front\",\"money\"]"},
        {"{\"event_type\":\"user.paid\",\"event_source\":\"system\","
         "\"event_category\":\"payment\"}",
         "[\"users\",\"money\"]"},
        {"{\"event_type\":\"misc\"}", "[]"},
        {"{\"event_type\":\"order\",\"event_category\":\"order\"}", "[\"money\"]"},
        {"{\"event_type\":\"order.shipped\",\"event_source\":\"iot_device\","
         "\"event_category\":\"device\"}",
         "[]"},
    };
    enum { N = sizeof(cases) / sizeof(cases[0]) };
    char *ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = h_create(e, "%s", cases[i].event);
    cr_assert(H_WAIT(30000, h_events_with_status(e, "processed") == N),
              "%lld of %d events processed within 30 s",
              (long long)h_events_with_status(e, "processed"), N);
    for (int i = 0; i < N; i++) {
        char *got = processors_field(e, ids[i], "processed");
        cr_assert_str_eq(got, cases[i].expect, "event %s: processors %s, expected %s",
                         cases[i].event, got, cases[i].expect);
        json_t *want = json_loads(cases[i].expect, 0, NULL);
        cr_assert_eq(h_processing_results(e, ids[i], NULL, NULL), (int64_t)json_array_size(want),
                     "event %s: %lld results for %s", cases[i].event,
                     (long long)h_processing_results(e, ids[i], NULL, NULL), cases[i].expect);
        size_t k;
        json_t *name;
        json_array_foreach(want, k, name)
            cr_assert_eq(h_processing_results(e, ids[i], json_string_value(name), "success"), 1,
                         "event %s: no success of %s", cases[i].event, json_string_value(name));
        json_decref(want);
        free(got);
        free(ids[i]);
    }
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_results "
                              "WHERE processor_name = 'off'"),
                 0, "the disabled processor ran");
}

static const char *const chain[] = {"high", "mid", "low"};

/* Registers three webhook processors of priorities 100, 50 and -5 (named
 * high, mid, low; registered lowest first) posting to rcv, creates n events
 * in one batch request, waits until they are processed, and returns the
 * batch answer (caller h_resp_frees). */
static h_resp_t run_chain(h_env_t *e, h_recv_t *rcv, int n)
{
    static const int prio[] = {100, 50, -5};
    for (int k = 2; k >= 0; k--)
        free(h_add_processor(e,
                             "{\"processor_name\":\"%s\",\"processor_type\":\"webhook\","
                             "\"priority\":%d,\"config\":{\"url\":\"http://127.0.0.1:%d/%s\"}}",
                             chain[k], prio[k], h_recv_port(rcv), chain[k]));
    char body[4096];
    size_t len = (size_t)snprintf(body, sizeof(body), "{\"events\":[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, sizeof(body) - len, "%s{\"event_type\":\"p.e%d\"}",
                                i ? "," : "", i);
    snprintf(body + len, sizeof(body) - len, "]}");
    h_resp_t b = h_post(e, "/api/v1/events/batch", "%s", body);
    cr_assert_eq(b.status, 201, "%s", b.body);
    cr_assert(H_WAIT(30000, h_events_with_status(e, "processed") == n),
              "%lld of %d events processed", (long long)h_events_with_status(e, "processed"), n);
    return b;
}

static const char *nth_id(const h_resp_t *b, int i)
{
    char key[32];
    snprintf(key, sizeof(key), "events.%d.event_id", i);
    const char *id = h_jstr(b->json, key);
    cr_assert(id != NULL, "%s", b->body);
    return id;
}

/* Processors run one after the other, highest priority first: the webhook
 * sees each event's requests in priority order, none before the previous one
 * was answered, and the event's `processors` lists them in that order. */
H_TEST(processing, priority_order)
{
    enum { N = 6 };
    h_recv_t *rcv = h_recv_start();
    for (int k = 0; k < 3; k++) {
        char path[16];
        snprintf(path, sizeof(path), "/%s", chain[k]);
        h_recv_rule(rcv, path, 200, 20);
    }
    h_env_t *e = h_setup(&(h_opts_t){
        .api_workers = 1, .processors = 1, .extra_yaml = "processing:\n  interval_seconds: 1\n"});
    h_svc_start(e);
    h_resp_t b = run_chain(e, rcv, N);
    for (int i = 0; i < N; i++) {
        const char *id = nth_id(&b, i);
        char *names = processors_field(e, id, "processed");
        cr_assert_str_eq(names, "[\"high\",\"mid\",\"low\"]");
        free(names);
        h_recv_req_t *reqs = NULL;
        int n = requests_for(rcv, id, &reqs);
        cr_assert_eq(n, 3, "event %s: %d webhook requests", id, n);
        for (int k = 0; k < 3; k++) {
            char want[16];
            snprintf(want, sizeof(want), "/%s", chain[k]);
            cr_assert_str_eq(reqs[k].path, want, "event %s: request %d went to %s", id, k,
                             reqs[k].path);
            if (k > 0)
                cr_assert(reqs[k].start_ms >= reqs[k - 1].end_ms,
                          "event %s: %s started before %s was answered", id, reqs[k].path,
                          reqs[k - 1].path);
        }
        h_recv_reqs_free(reqs, n);
    }
    h_resp_free(&b);
    h_stop_all(e, rcv);
}

/* processing_results is the record of the runs: an event's rows, read in
 * result_id order, follow the order in which its processors ran (all rows of
 * a batch share one processed_at, so result_id is the only order there is).
 * Several events in one batch, so that their runs interleave. */
H_TEST(processing, results_recorded_in_run_order)
{
    enum { N = 6 };
    h_recv_t *rcv = h_recv_start();
    h_env_t *e = h_setup(&(h_opts_t){
        .api_workers = 1, .processors = 1, .extra_yaml = "processing:\n  interval_seconds: 1\n"});
    h_svc_start(e);
    h_resp_t b = run_chain(e, rcv, N);
    int misordered = 0;
    char first[256] = "";
    for (int i = 0; i < N; i++) {
        const char *id = nth_id(&b, i);
        PGresult *res = h_sql(e,
                              "SELECT string_agg(processor_name, ',' ORDER BY result_id) "
                              "FROM event.processing_results WHERE event_id = $1",
                              id);
        const char *got = PQgetvalue(res, 0, 0);
        if (strcmp(got, "high,mid,low") != 0 && misordered++ == 0)
            snprintf(first, sizeof(first), "event %s: %s", id, got);
        PQclear(res);
    }
    h_resp_free(&b);
    cr_assert_eq(misordered, 0,
                 "%d of %d events have their processing_results out of run order (ran "
                 "high,mid,low); first: %s",
                 misordered, N, first);
    h_stop_all(e, rcv);
}

/* A toggle applies to the next batch: once a processor is disabled, new
 * events are processed without it (the webhook is not called, no result, not
 * in `processors`); enabled again, it runs again. */
H_TEST(processing, toggle_applies_to_next_batch)
{
    h_recv_t *rcv = h_recv_start();
    h_env_t *e = h_setup(&(h_opts_t){
        .api_workers = 1, .processors = 1, .extra_yaml = "processing:\n  interval_seconds: 1\n"});
    h_svc_start(e);
    int port = h_recv_port(rcv);
    char *a = h_add_processor(e,
                              "{\"processor_name\":\"a\",\"processor_type\":\"webhook\","
                              "\"priority\":2,\"config\":{\"url\":\"http://127.0.0.1:%d/a\"}}",
                              port);
    char *bid = h_add_processor(e,
                                "{\"processor_name\":\"b\",\"processor_type\":\"webhook\","
                                "\"priority\":1,\"config\":{\"url\":\"http://127.0.0.1:%d/b\"}}",
                                port);

    char *e1 = h_create(e, "{\"event_type\":\"t.one\"}");
    cr_assert(H_WAIT(20000, h_event_status_is(e, e1, "processed")));
    char *names = processors_field(e, e1, "processed");
    cr_assert_str_eq(names, "[\"a\",\"b\"]");
    free(names);
    cr_assert_eq(h_recv_count(rcv, "/b"), 1);

    char path[256];
    snprintf(path, sizeof(path), PROCESSORS "/%s/toggle?enabled=false", bid);
    h_resp_t r = h_http(e->svc.port, "PUT", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);
    char *e2 = h_create(e, "{\"event_type\":\"t.two\"}");
    cr_assert(H_WAIT(20000, h_event_status_is(e, e2, "processed")));
    names = processors_field(e, e2, "processed");
    cr_assert_str_eq(names, "[\"a\"]", "a disabled processor is listed: %s", names);
    free(names);
    cr_assert_eq(h_processing_results(e, e2, "b", NULL), 0, "the disabled processor has a result");
    cr_assert_eq(h_processing_results(e, e2, "a", "success"), 1);
    cr_assert_eq(h_recv_count(rcv, "/b"), 1, "the disabled processor's webhook was called");
    cr_assert_eq(h_recv_count(rcv, "/a"), 2);

    snprintf(path, sizeof(path), PROCESSORS "/%s/toggle", bid);
    r = h_http(e->svc.port, "PUT", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(h_jget(r.json, "enabled")), "%s", r.body);
    h_resp_free(&r);
    char *e3 = h_create(e, "{\"event_type\":\"t.three\"}");
    cr_assert(H_WAIT(20000, h_event_status_is(e, e3, "processed")));
    names = processors_field(e, e3, "processed");
    cr_assert_str_eq(names, "[\"a\",\"b\"]");
    free(names);
    cr_assert_eq(h_recv_count(rcv, "/b"), 2);
    free(e1);
    free(e2);
    free(e3);
    free(a);
    free(bid);
    h_stop_all(e, rcv);
}
