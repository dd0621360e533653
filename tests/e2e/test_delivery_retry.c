/* Delivery failures (SPEC 7, 10): retries per retry_policy with growing,
 * jittered delays, then dead; every attempt in the attempt_log with its
 * status code and latency; Retry-After honoured between the scheduled delay
 * and twice it; 410 Gone kills the delivery and disables the subscription;
 * the subscription's counters; timeouts; response bodies kept truncated to
 * delivery.max_response_bytes. */
#include "harness.h"
#include "receiver.h"

#include "common/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUBS "/api/v1/events/subscriptions"
#define YAML_PRIVATE_OK "delivery:\n  allow_private: true\n"

/* The only delivery of subscription sub (waits up to 30 s for it; caller
 * frees). */
static char *only_delivery(h_env_t *e, const char *sub)
{
    cr_assert(H_WAIT(30000, h_sql_int(e,
                                      "SELECT count(*) FROM event.deliveries WHERE "
                                      "subscription_id = $1",
                                      sub) == 1),
              "subscription %s has no delivery within 30 s", sub);
    PGresult *r =
        h_sql(e, "SELECT delivery_id FROM event.deliveries WHERE subscription_id = $1", sub);
    char *id = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return id;
}

/* GET …/deliveries/{did} (asserts 200; caller decrefs). */
static json_t *get_delivery(h_env_t *e, const char *sub, const char *did)
{
    return h_get_json(e, SUBS "/%s/deliveries/%s", sub, did);
}

/* GET the subscription (asserts 200; caller decrefs). */
static json_t *get_subscription(h_env_t *e, const char *sub)
{
    return h_get_json(e, SUBS "/%s", sub);
}

/* The attempt_log entries are attempts 1..n in order, with the given status
 * codes (0: none), a latency, and trigger `trigger`. */
static void assert_attempt_log(const json_t *d, int n, const int *codes, const char *trigger)
{
    const json_t *log = json_object_get(d, "attempt_log");
    cr_assert(json_is_array(log), "no attempt_log: %s", h_jdump(d));
    cr_assert_eq(json_array_size(log), (size_t)n, "%zu attempts logged, want %d: %s",
                 json_array_size(log), n, h_jdump(d));
    for (int i = 0; i < n; i++) {
        const json_t *a = json_array_get(log, (size_t)i);
        cr_assert_eq(h_jint(a, "attempt"), i + 1, "entry %d: %s", i, h_jdump(a));
        if (codes[i] > 0)
            cr_assert_eq(h_jint(a, "status_code"), codes[i], "entry %d: %s", i, h_jdump(a));
        else
            cr_assert(json_is_null(json_object_get(a, "status_code")), "entry %d: %s", i,
                      h_jdump(a));
        int64_t latency = h_jint(a, "latency_ms");
        cr_assert(latency >= 0 && latency < 60000, "entry %d: latency_ms: %s", i, h_jdump(a));
        cr_assert(h_jstr(a, "attempted_at") != NULL, "entry %d: %s", i, h_jdump(a));
        if (trigger)
            cr_assert_str_eq(h_jstr(a, "trigger"), trigger, "entry %d: %s", i, h_jdump(a));
    }
}

/* Seconds between consecutive requests of q. */
static double gap_s(const wr_req_t *q, int i)
{
    return (double)(q[i + 1].at_ms - q[i].at_ms) / 1000.0;
}

/* An endpoint that always answers 500, with {"max_retries":2,
 * "backoff_seconds":[1,4]}: 3 attempts, the gaps about 1 s and 4 s (jitter
 * +-20%), same webhook-id each time and a fresh timestamp, then the delivery
 * is dead, with every attempt logged and no fourth. */
H_TEST(delivery_retry, failing_endpoint_retried_then_dead)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    wr_default(rcv, "/fail", (wr_answer_t){.status = 500, .body = "{\"error\":\"boom\"}"});
    char url[128];
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"fail\",\"event_types\":[\"retry.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":2,"
                            "\"backoff_seconds\":[1,4]}}",
                            wr_url(rcv, "/fail", url, sizeof(url)));
    const char *sid = h_jstr(s, "subscription_id");
    const char *secret = h_jstr(s, "webhook_secret");
    char *ev = h_create(e, "{\"event_type\":\"retry.fail\"}");
    char *did = only_delivery(e, sid);
    cr_assert(wr_wait_count(rcv, "/fail", 3, 30000), "%d attempts arrived within 30 s",
              wr_count(rcv, "/fail"));
    cr_assert(H_WAIT(15000, h_delivery_status_is(e, did, "dead")),
              "the delivery is not dead after 3 attempts");
    cr_assert_eq(wr_count(rcv, "/fail"), 3, "a dead delivery was attempted again");

    wr_req_t *q = NULL;
    int n = wr_requests(rcv, "/fail", &q);
    double g1 = gap_s(q, 0), g2 = gap_s(q, 1);
    fprintf(stderr, "failing_endpoint_retried_then_dead: gaps %.3f s, %.3f s\n", g1, g2);
    cr_assert(g1 >= 0.8 - 0.05 && g1 <= 1.2 + 1.5, "first retry after %.3f s, want 1 s +-20%%", g1);
    cr_assert(g2 >= 3.2 - 0.05 && g2 <= 4.8 + 1.5, "second retry after %.3f s, want 4 s +-20%%",
              g2);
    cr_assert(g2 > g1, "the delays do not grow: %.3f then %.3f s", g1, g2);
    long long prev_ts = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(wr_header(&q[i], "webhook-id"), did, "attempt %d", i + 1);
        cr_assert_str_eq(h_jstr(q[i].json, "event_id"), ev);
        cr_assert(wr_verify(&q[i], secret), "attempt %d is not signed with the secret", i + 1);
        long long ts = atoll(wr_header(&q[i], "webhook-timestamp"));
        cr_assert(ts >= q[i].at_unix_ms / 1000 - 5 && ts <= q[i].at_unix_ms / 1000 + 5,
                  "attempt %d: webhook-timestamp %lld is not the attempt's time", i + 1, ts);
        cr_assert(ts >= prev_ts, "timestamps go back");
        prev_ts = ts;
    }
    cr_assert(atoll(wr_header(&q[2], "webhook-timestamp")) >
                  atoll(wr_header(&q[0], "webhook-timestamp")),
              "webhook-timestamp is not renewed on a retry");
    wr_reqs_free(q, n);

    json_t *d = get_delivery(e, sid, did);
    cr_assert_str_eq(h_jstr(d, "status"), "dead", "%s", h_jdump(d));
    cr_assert_eq(h_jint(d, "attempts"), 3, "%s", h_jdump(d));
    cr_assert_eq(h_jint(d, "last_status_code"), 500, "%s", h_jdump(d));
    cr_assert(h_jstr(d, "last_error") && strstr(h_jstr(d, "last_error"), "500"), "%s", h_jdump(d));
    cr_assert(json_is_null(json_object_get(d, "next_attempt_at")), "%s", h_jdump(d));
    cr_assert(json_is_null(json_object_get(d, "delivered_at")), "%s", h_jdump(d));
    assert_attempt_log(d, 3, (int[]){500, 500, 500}, "scheduled");
    const json_t *log = json_object_get(d, "attempt_log");
    for (size_t i = 0; i < 3; i++) {
        const char *resp = h_jstr(json_array_get(log, i), "response");
        cr_assert(resp && strcmp(resp, "{\"error\":\"boom\"}") == 0, "response kept: %s",
                  h_jdump(json_array_get(log, i)));
    }
    json_decref(d);

    json_t *sub = get_subscription(e, sid);
    cr_assert_eq(h_jint(sub, "stats.dead"), 1, "%s", h_jdump(sub));
    cr_assert_eq(h_jint(sub, "stats.delivered"), 0, "%s", h_jdump(sub));
    cr_assert_eq(h_jint(sub, "stats.failing"), 0, "%s", h_jdump(sub));
    cr_assert(json_is_null(h_jget(sub, "stats.last_success_at")), "%s", h_jdump(sub));
    cr_assert(json_is_true(json_object_get(sub, "enabled")), "disabled after one dead delivery");
    json_decref(sub);
    json_decref(s);
    free(ev);
    free(did);
    wr_stop_all(e, rcv);
}

/* An endpoint that fails twice, then answers 200: delivered on the third
 * attempt; the log shows 500, 503, 200 with latencies; the counters follow. */
H_TEST(delivery_retry, fails_twice_then_delivered)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    wr_push(rcv, "/flaky", 1, (wr_answer_t){.status = 500});
    wr_push(rcv, "/flaky", 1, (wr_answer_t){.status = 503, .delay_ms = 300});
    char url[128];
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"flaky\",\"event_types\":[\"retry.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":3,"
                            "\"backoff_seconds\":[1]}}",
                            wr_url(rcv, "/flaky", url, sizeof(url)));
    const char *sid = h_jstr(s, "subscription_id");
    wr_secret(rcv, "/flaky", h_jstr(s, "webhook_secret"));
    char *ev = h_create(e, "{\"event_type\":\"retry.flaky\"}");
    char *did = only_delivery(e, sid);
    cr_assert(wr_wait_count(rcv, "/flaky", 3, 30000), "%d attempts within 30 s",
              wr_count(rcv, "/flaky"));
    cr_assert(H_WAIT(15000, h_delivery_status_is(e, did, "delivered")),
              "not delivered on the third attempt");
    wr_req_t *q = NULL;
    int n = wr_requests(rcv, "/flaky", &q);
    cr_assert_eq(n, 3);
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(wr_header(&q[i], "webhook-id"), did, "attempt %d", i + 1);
        cr_assert_eq(q[i].sig, WR_SIG_OK, "attempt %d: signature does not verify", i + 1);
    }
    cr_assert_eq(q[0].status, 500);
    cr_assert_eq(q[1].status, 503);
    cr_assert_eq(q[2].status, 200);
    wr_reqs_free(q, n);

    json_t *d = get_delivery(e, sid, did);
    cr_assert_str_eq(h_jstr(d, "status"), "delivered", "%s", h_jdump(d));
    cr_assert_eq(h_jint(d, "attempts"), 3, "%s", h_jdump(d));
    cr_assert_eq(h_jint(d, "last_status_code"), 200, "%s", h_jdump(d));
    cr_assert(json_is_null(json_object_get(d, "last_error")), "%s", h_jdump(d));
    cr_assert(h_jstr(d, "delivered_at") != NULL, "%s", h_jdump(d));
    assert_attempt_log(d, 3, (int[]){500, 503, 200}, "scheduled");
    int64_t slow = h_jint(json_array_get(json_object_get(d, "attempt_log"), 1), "latency_ms");
    cr_assert(slow >= 250, "the 300 ms answer was logged with latency %lld ms", (long long)slow);
    json_decref(d);

    json_t *sub = get_subscription(e, sid);
    cr_assert_eq(h_jint(sub, "stats.delivered"), 1, "%s", h_jdump(sub));
    cr_assert_eq(h_jint(sub, "stats.dead"), 0, "%s", h_jdump(sub));
    cr_assert_eq(h_jint(sub, "stats.failing"), 0, "%s", h_jdump(sub));
    cr_assert(h_jstr(sub, "stats.last_success_at") != NULL, "%s", h_jdump(sub));
    cr_assert(json_is_null(h_jget(sub, "stats.failing_since")), "%s", h_jdump(sub));
    json_decref(sub);
    json_decref(s);
    free(ev);
    free(did);
    wr_stop_all(e, rcv);
}

/* For each event on path: the gap between its first and second request. */
static int retry_gaps(wr_t *rcv, const char *path, double *gaps, int max)
{
    wr_req_t *q = NULL;
    int n = wr_requests(rcv, path, &q), k = 0;
    for (int i = 0; i < n && k < max; i++) {
        const char *id = wr_header(&q[i], "webhook-id");
        bool first = true;
        for (int j = 0; j < i; j++)
            first = first && strcmp(wr_header(&q[j], "webhook-id"), id) != 0;
        if (!first)
            continue;
        for (int j = i + 1; j < n; j++)
            if (strcmp(wr_header(&q[j], "webhook-id"), id) == 0) {
                gaps[k++] = (double)(q[j].at_ms - q[i].at_ms) / 1000.0;
                break;
            }
    }
    wr_reqs_free(q, n);
    return k;
}

/* Microseconds of an ISO 8601 time in v at path (fails the test if absent). */
static int64_t time_at(const json_t *v, const char *path)
{
    const char *s = h_jstr(v, path);
    int64_t us = 0;
    cr_assert(s && es_time_parse(s, strlen(s), &us), "%s is not a time in %s", path, h_jdump(v));
    return us;
}

/* Retry-After is honoured, bounded by the scheduled delay (20 s here) and
 * twice it: what the service schedules after the answer (the delivery's
 * next_attempt_at, read through the API, minus its attempt's time) is
 * - "Retry-After: 30": 30 s or more, 40 s (+20% jitter) at most;
 * - "Retry-After: 3600": capped at 40 s (+-20%);
 * - "Retry-After: 5": the scheduled 20 s (+-20%) still applies;
 * - an HTTP-date 34 s ahead: about 34 s, no sooner.
 * Several deliveries each, so that a random jitter cannot hide a retry
 * scheduled before the time the endpoint asked for. (When a retry really
 * comes is retries_come_when_due's business.) */
H_TEST(delivery_retry, retry_after_honoured_within_bounds)
{
    enum { N = 8, CASES = 4 };
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    char date[64];
    time_t when = time(NULL) + 34;
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    const struct {
        const char *path, *retry_after;
        int status;
        double min_s, max_s; /* bounds of the scheduled delay */
    } cases[CASES] = {
        {"/ra30", "30", 429, 30.0, 40.0 * 1.2},
        {"/ra3600", "3600", 503, 40.0 * 0.8, 40.0 * 1.2},
        {"/ra5", "5", 429, 20.0 * 0.8, 20.0 * 1.2},
        {"/ra-date", date, 429, -1 /* per attempt, below */, 40.0 * 1.2},
    };
    char *sids[CASES];
    for (int i = 0; i < CASES; i++) {
        wr_default(rcv, cases[i].path,
                   (wr_answer_t){.status = cases[i].status, .retry_after = cases[i].retry_after});
        char url[128];
        json_t *s = h_subscribe(e,
                                "{\"subscriber_name\":\"%s\",\"event_types\":[\"ra.*\"],"
                                "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":1,"
                                "\"backoff_seconds\":[20]}}",
                                cases[i].path + 1, wr_url(rcv, cases[i].path, url, sizeof(url)));
        sids[i] = strdup(h_jstr(s, "subscription_id"));
        json_decref(s);
    }
    char body[4096] = "{\"events\":[";
    for (int i = 0; i < N; i++)
        snprintf(body + strlen(body), sizeof(body) - strlen(body), "%s{\"event_type\":\"ra.%d\"}",
                 i ? "," : "", i);
    strcat(body, "]}");
    h_resp_t r = h_post(e, "/api/v1/events/batch", "%s", body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);
    for (int i = 0; i < CASES; i++)
        cr_assert(H_WAIT(30000, h_deliveries_with_status(e, sids[i], "failed") == N),
                  "%s: %lld of %d deliveries failed and waiting", cases[i].path,
                  (long long)h_deliveries_with_status(e, sids[i], "failed"), N);

    int early[CASES] = {0}, late[CASES] = {0};
    double lo[CASES], hi[CASES], floor_s[CASES];
    for (int i = 0; i < CASES; i++) {
        PGresult *ids = h_sql(e,
                              "SELECT delivery_id FROM event.deliveries WHERE "
                              "subscription_id = $1",
                              sids[i]);
        lo[i] = 1e9;
        hi[i] = 0;
        fprintf(stderr, "retry_after_honoured_within_bounds %s (Retry-After: %s): scheduled",
                cases[i].path, cases[i].retry_after);
        for (int k = 0; k < PQntuples(ids); k++) {
            json_t *d = get_delivery(e, sids[i], PQgetvalue(ids, k, 0));
            cr_assert_eq(json_array_size(json_object_get(d, "attempt_log")), 1, "%s", h_jdump(d));
            cr_assert_eq(h_jint(d, "attempt_log.0.status_code"), cases[i].status, "%s", h_jdump(d));
            double scheduled =
                (double)(time_at(d, "next_attempt_at") - time_at(d, "attempt_log.0.attempted_at")) /
                1e6;
            fprintf(stderr, " %.3f", scheduled);
            double min_s = cases[i].min_s;
            if (min_s < 0) { /* the date: what was left of it at the answer, whole seconds */
                double left = (double)when - (double)time_at(d, "attempt_log.0.attempted_at") / 1e6;
                min_s = left >= 20.0 ? (left < 40.0 ? left : 40.0) - 1.0 : 20.0 * 0.8;
            }
            floor_s[i] = min_s;
            early[i] += scheduled < min_s - 0.5;
            late[i] += scheduled > cases[i].max_s + 0.5;
            lo[i] = scheduled < lo[i] ? scheduled : lo[i];
            hi[i] = scheduled > hi[i] ? scheduled : hi[i];
            json_decref(d);
        }
        fputc('\n', stderr);
        PQclear(ids);
        cr_assert_eq(wr_count(rcv, cases[i].path), N, "%s: a retry came early", cases[i].path);
    }
    for (int i = 0; i < CASES; i++) {
        cr_assert_eq(early[i], 0,
                     "Retry-After: %s (scheduled delay 20 s): %d of %d retries scheduled before "
                     "%.1f s after the answer (the soonest after %.3f s)",
                     cases[i].retry_after, early[i], N, floor_s[i], lo[i]);
        cr_assert_eq(late[i], 0,
                     "Retry-After: %s (scheduled delay 20 s): %d of %d retries scheduled after "
                     "%.1f s (the latest after %.3f s)",
                     cases[i].retry_after, late[i], N, cases[i].max_s, hi[i]);
    }
    for (int i = 0; i < CASES; i++)
        free(sids[i]);
    wr_stop_all(e, rcv);
}

/* Retries come when they are due: deliveries failing once with a 1 s
 * backoff are each retried 0.8 to 1.2 s later (+-20% jitter), give or take
 * 0.3 s of scheduling. The first attempts are spread out, so that each retry
 * comes due at a moment of its own. */
H_TEST(delivery_retry, retries_come_when_due)
{
    enum { N = 12 };
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    wr_push(rcv, "/once", N, (wr_answer_t){.status = 500});
    char url[128];
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"once\",\"event_types\":[\"due.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":1,"
                            "\"backoff_seconds\":[1]}}",
                            wr_url(rcv, "/once", url, sizeof(url)));
    for (int i = 0; i < N; i++) {
        free(h_create(e, "{\"event_type\":\"due.%d\"}", i));
        cr_assert(wr_wait_count(rcv, "/once", i + 1, 30000), "event %d was not delivered", i);
    }
    cr_assert(wr_wait_count(rcv, "/once", 2 * N, 60000), "%d of %d retries within 60 s",
              wr_count(rcv, "/once") - N, N);
    double gaps[N];
    int k = retry_gaps(rcv, "/once", gaps, N);
    cr_assert_eq(k, N);
    int late = 0;
    double worst = 0;
    fprintf(stderr, "retries_come_when_due:");
    for (int i = 0; i < N; i++) {
        fprintf(stderr, " %.3f", gaps[i]);
        cr_assert(gaps[i] >= 0.8 - 0.05, "retry %d came after %.3f s, before its time", i, gaps[i]);
        late += gaps[i] > 1.2 + 0.3;
        worst = gaps[i] > worst ? gaps[i] : worst;
    }
    fputc('\n', stderr);
    cr_assert_eq(late, 0,
                 "%d of %d retries scheduled 1 s (+-20%%) later came more than 0.3 s late "
                 "(the latest after %.3f s)",
                 late, N, worst);
    json_decref(s);
    wr_stop_all(e, rcv);
}

/* 410 Gone: the delivery is dead at once (retries left or not), the
 * subscription is disabled and says why; later events get no delivery;
 * enabling it clears the reason. */
H_TEST(delivery_retry, gone_410_kills_delivery_and_disables_subscription)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    wr_default(rcv, "/gone", (wr_answer_t){.status = 410});
    char url[128];
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"gone\",\"event_types\":[\"gone.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":5,"
                            "\"backoff_seconds\":[1]}}",
                            wr_url(rcv, "/gone", url, sizeof(url)));
    const char *sid = h_jstr(s, "subscription_id");
    char *ev = h_create(e, "{\"event_type\":\"gone.one\"}");
    char *did = only_delivery(e, sid);
    cr_assert(wr_wait_count(rcv, "/gone", 1, 30000));
    cr_assert(H_WAIT(15000, h_delivery_status_is(e, did, "dead")),
              "a 410 did not kill the delivery");
    json_t *d = get_delivery(e, sid, did);
    cr_assert_eq(h_jint(d, "attempts"), 1, "%s", h_jdump(d));
    assert_attempt_log(d, 1, (int[]){410}, "scheduled");
    json_decref(d);
    json_t *sub = get_subscription(e, sid);
    cr_assert(json_is_false(json_object_get(sub, "enabled")), "not disabled after 410: %s",
              h_jdump(sub));
    const char *reason = h_jstr(sub, "disabled_reason");
    cr_assert(reason && strstr(reason, "410"), "disabled_reason does not say why: %s",
              h_jdump(sub));
    cr_assert_eq(h_jint(sub, "stats.dead"), 1, "%s", h_jdump(sub));
    json_decref(sub);

    char *ev2 = h_create(e, "{\"event_type\":\"gone.two\"}");
    cr_assert(H_WAIT(30000, h_event_status_is(e, ev2, "processed")));
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.deliveries WHERE event_id = $1", ev2), 0,
                 "a subscription disabled by a 410 got a new delivery");
    cr_assert_eq(wr_count(rcv, "/gone"), 1);

    char path[256];
    snprintf(path, sizeof(path), SUBS "/%s/enable", sid);
    h_resp_t r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(h_jget(r.json, "enabled")), "%s", r.body);
    cr_assert(json_is_null(h_jget(r.json, "disabled_reason")), "%s", r.body);
    h_resp_free(&r);
    json_decref(s);
    free(ev);
    free(ev2);
    free(did);
    wr_stop_all(e, rcv);
}

/* The subscription's stats: delivered and dead counters, failing (waiting
 * for a retry), pending, last_success_at and failing_since. */
H_TEST(delivery_retry, subscription_stats)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    wr_default(rcv, "/failing", (wr_answer_t){.status = 500});
    wr_default(rcv, "/dead", (wr_answer_t){.status = 500});
    char url[128];
    json_t *ok = h_subscribe(e,
                             "{\"subscriber_name\":\"ok\",\"event_types\":[\"st.*\"],"
                             "\"callback_url\":\"%s\"}",
                             wr_url(rcv, "/ok", url, sizeof(url)));
    json_t *failing = h_subscribe(e,
                                  "{\"subscriber_name\":\"failing\",\"event_types\":[\"st.*\"],"
                                  "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":5,"
                                  "\"backoff_seconds\":[3600]}}",
                                  wr_url(rcv, "/failing", url, sizeof(url)));
    json_t *dead = h_subscribe(e,
                               "{\"subscriber_name\":\"dead\",\"event_types\":[\"st.*\"],"
                               "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":0}}",
                               wr_url(rcv, "/dead", url, sizeof(url)));
    json_t *fresh = get_subscription(e, h_jstr(ok, "subscription_id"));
    cr_assert_eq(h_jint(fresh, "stats.delivered"), 0, "%s", h_jdump(fresh));
    cr_assert_eq(h_jint(fresh, "stats.dead"), 0, "%s", h_jdump(fresh));
    cr_assert_eq(h_jint(fresh, "stats.failing"), 0, "%s", h_jdump(fresh));
    cr_assert(json_is_null(h_jget(fresh, "stats.last_success_at")), "%s", h_jdump(fresh));
    json_decref(fresh);

    for (int i = 0; i < 3; i++)
        free(h_create(e, "{\"event_type\":\"st.%d\"}", i));
    const char *oid = h_jstr(ok, "subscription_id"), *fid = h_jstr(failing, "subscription_id"),
               *did = h_jstr(dead, "subscription_id");
    cr_assert(H_WAIT(30000, h_deliveries_with_status(e, oid, "delivered") == 3));
    cr_assert(H_WAIT(30000, h_deliveries_with_status(e, fid, "failed") == 3));
    cr_assert(H_WAIT(30000, h_deliveries_with_status(e, did, "dead") == 3));

    json_t *a = get_subscription(e, oid);
    cr_assert_eq(h_jint(a, "stats.delivered"), 3, "%s", h_jdump(a));
    cr_assert_eq(h_jint(a, "stats.dead"), 0, "%s", h_jdump(a));
    cr_assert_eq(h_jint(a, "stats.failing"), 0, "%s", h_jdump(a));
    cr_assert_eq(h_jint(a, "stats.pending"), 0, "%s", h_jdump(a));
    cr_assert(h_jstr(a, "stats.last_success_at") != NULL, "%s", h_jdump(a));
    cr_assert(json_is_null(h_jget(a, "stats.failing_since")), "%s", h_jdump(a));
    json_t *b = get_subscription(e, fid);
    cr_assert_eq(h_jint(b, "stats.delivered"), 0, "%s", h_jdump(b));
    cr_assert_eq(h_jint(b, "stats.dead"), 0, "%s", h_jdump(b));
    cr_assert_eq(h_jint(b, "stats.failing"), 3, "%s", h_jdump(b));
    cr_assert(json_is_null(h_jget(b, "stats.last_success_at")), "%s", h_jdump(b));
    cr_assert(h_jstr(b, "stats.failing_since") != NULL, "%s", h_jdump(b));
    json_t *c = get_subscription(e, did);
    cr_assert_eq(h_jint(c, "stats.delivered"), 0, "%s", h_jdump(c));
    cr_assert_eq(h_jint(c, "stats.dead"), 3, "%s", h_jdump(c));
    cr_assert_eq(h_jint(c, "stats.failing"), 0, "%s", h_jdump(c));
    /* The list shows the same stats. */
    h_resp_t l = h_get(e, SUBS);
    cr_assert_eq(l.status, 200);
    for (size_t i = 0; i < json_array_size(l.json); i++) {
        const json_t *item = json_array_get(l.json, i);
        const json_t *want = strcmp(h_jstr(item, "subscription_id"), oid) == 0   ? a
                             : strcmp(h_jstr(item, "subscription_id"), fid) == 0 ? b
                                                                                 : c;
        cr_assert(json_equal(json_object_get(item, "stats"), json_object_get(want, "stats")),
                  "list %s vs GET %s", h_jdump(json_object_get(item, "stats")),
                  h_jdump(json_object_get(want, "stats")));
    }
    h_resp_free(&l);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(ok);
    json_decref(failing);
    json_decref(dead);
    wr_stop_all(e, rcv);
}

/* An endpoint slower than delivery.timeout_ms: the attempt fails as a
 * timeout (no status code, latency about the timeout) and is retried. */
H_TEST(delivery_retry, timeout_is_a_failed_attempt)
{
    h_env_t *e = h_start(1, "delivery:\n  allow_private: true\n  timeout_ms: 1000\n"
                            "  lease_seconds: 7\n");
    wr_t *rcv = wr_start();
    wr_push(rcv, "/slow", 1, (wr_answer_t){.delay_ms = 5000});
    char url[128];
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"slow\",\"event_types\":[\"slow.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":1,"
                            "\"backoff_seconds\":[1]}}",
                            wr_url(rcv, "/slow", url, sizeof(url)));
    const char *sid = h_jstr(s, "subscription_id");
    free(h_create(e, "{\"event_type\":\"slow.one\"}"));
    char *did = only_delivery(e, sid);
    cr_assert(H_WAIT(30000, h_delivery_status_is(e, did, "delivered")),
              "not delivered after the timeout");
    json_t *d = get_delivery(e, sid, did);
    assert_attempt_log(d, 2, (int[]){0, 200}, NULL);
    const json_t *first = json_array_get(json_object_get(d, "attempt_log"), 0);
    const char *err = h_jstr(first, "error");
    cr_assert(err && (strcasestr(err, "timeout") || strcasestr(err, "timed out")),
              "the first attempt's error does not say timeout: %s", h_jdump(first));
    int64_t latency = h_jint(first, "latency_ms");
    cr_assert(latency >= 900 && latency < 4000, "a 1000 ms timeout took %lld ms",
              (long long)latency);
    json_decref(d);
    cr_assert_eq(wr_count(rcv, "/slow"), 2);
    json_decref(s);
    free(did);
    wr_stop_all(e, rcv);
}

/* True when stored is the first `len` bytes of a generated body. */
static bool is_generated_prefix(const char *stored, size_t len)
{
    if (strlen(stored) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (stored[i] != wr_body_byte(i))
            return false;
    return true;
}

/* Response bodies are stored truncated to delivery.max_response_bytes (a
 * 200 with a large body is still delivered; a 500 with one still failed);
 * small bodies are stored whole. */
H_TEST(delivery_retry, response_bodies_truncated)
{
    h_env_t *e = h_start(1, "delivery:\n  allow_private: true\n  max_response_bytes: 1000\n");
    wr_t *rcv = wr_start();
    wr_default(rcv, "/big-ok", (wr_answer_t){.body_bytes = 200000});
    wr_default(rcv, "/big-fail", (wr_answer_t){.status = 500, .body_bytes = 50000});
    wr_default(rcv, "/small", (wr_answer_t){.body = "{\"received\":true}"});
    wr_default(rcv, "/exact", (wr_answer_t){.body_bytes = 1000});
    const char *paths[4] = {"/big-ok", "/big-fail", "/small", "/exact"};
    char *sids[4];
    for (int i = 0; i < 4; i++) {
        char url[128];
        json_t *s = h_subscribe(e,
                                "{\"subscriber_name\":\"%s\",\"event_types\":[\"big.*\"],"
                                "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":0}}",
                                paths[i] + 1, wr_url(rcv, paths[i], url, sizeof(url)));
        sids[i] = strdup(h_jstr(s, "subscription_id"));
        json_decref(s);
    }
    free(h_create(e, "{\"event_type\":\"big.one\"}"));
    const char *final[4] = {"delivered", "dead", "delivered", "delivered"};
    int codes[4] = {200, 500, 200, 200};
    for (int i = 0; i < 4; i++) {
        char *did = only_delivery(e, sids[i]);
        cr_assert(H_WAIT(30000, h_delivery_status_is(e, did, final[i])), "%s: not %s", paths[i],
                  final[i]);
        json_t *d = get_delivery(e, sids[i], did);
        assert_attempt_log(d, 1, &codes[i], NULL);
        const char *resp = h_jstr(json_array_get(json_object_get(d, "attempt_log"), 0), "response");
        cr_assert(resp != NULL, "%s: no response stored: %s", paths[i], h_jdump(d));
        if (i == 2)
            cr_assert_str_eq(resp, "{\"received\":true}");
        else
            cr_assert(is_generated_prefix(resp, 1000),
                      "%s: stored %zu bytes, want the first 1000 bytes of the body", paths[i],
                      strlen(resp));
        json_decref(d);
        free(did);
    }
    for (int i = 0; i < 4; i++)
        free(sids[i]);
    wr_stop_all(e, rcv);
}

/* A redirect is a failure and is not followed (Standard Webhooks: 3xx is a
 * failure): the attempt is logged with its 302, the target of the Location
 * gets nothing. */
H_TEST(delivery_retry, redirect_is_a_failure_not_followed)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    char url[128], location[200];
    snprintf(location, sizeof(location), "Location: %s",
             wr_url(rcv, "/elsewhere", url, sizeof(url)));
    wr_default(rcv, "/moved", (wr_answer_t){.status = 302, .header = location});
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"moved\",\"event_types\":[\"mv.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":0}}",
                            wr_url(rcv, "/moved", url, sizeof(url)));
    const char *sid = h_jstr(s, "subscription_id");
    free(h_create(e, "{\"event_type\":\"mv.one\"}"));
    char *did = only_delivery(e, sid);
    cr_assert(H_WAIT(30000, h_delivery_status_is(e, did, "dead") ||
                                h_delivery_status_is(e, did, "delivered")));
    cr_assert(h_delivery_status_is(e, did, "dead"), "a 302 counted as delivered");
    json_t *d = get_delivery(e, sid, did);
    assert_attempt_log(d, 1, (int[]){302}, "scheduled");
    json_decref(d);
    cr_assert_eq(wr_count(rcv, "/elsewhere"), 0, "the redirect was followed");
    cr_assert_eq(wr_count(rcv, "/moved"), 1);
    json_decref(s);
    free(did);
    wr_stop_all(e, rcv);
}

/* Without a retry_policy the configured delivery.retry_schedule_seconds
 * applies (one retry per entry); a policy whose backoff_seconds is shorter
 * than max_retries repeats its last delay. */
H_TEST(delivery_retry, default_policy_and_short_backoff_list)
{
    h_env_t *e = h_start(1, "delivery:\n  allow_private: true\n"
                            "  retry_schedule_seconds: [1, 1]\n");
    wr_t *rcv = wr_start();
    wr_default(rcv, "/default", (wr_answer_t){.status = 500});
    wr_default(rcv, "/repeat", (wr_answer_t){.status = 500});
    char url[128];
    json_t *a = h_subscribe(e,
                            "{\"subscriber_name\":\"default\",\"event_types\":[\"dp.*\"],"
                            "\"callback_url\":\"%s\"}",
                            wr_url(rcv, "/default", url, sizeof(url)));
    json_t *b = h_subscribe(e,
                            "{\"subscriber_name\":\"repeat\",\"event_types\":[\"dp.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":3,"
                            "\"backoff_seconds\":[1]}}",
                            wr_url(rcv, "/repeat", url, sizeof(url)));
    free(h_create(e, "{\"event_type\":\"dp.one\"}"));
    char *da = only_delivery(e, h_jstr(a, "subscription_id"));
    char *db = only_delivery(e, h_jstr(b, "subscription_id"));
    cr_assert(H_WAIT(60000, h_delivery_status_is(e, da, "dead")),
              "the configured schedule never ended");
    cr_assert(H_WAIT(60000, h_delivery_status_is(e, db, "dead")),
              "the repeated backoff never ended");
    cr_assert_eq(wr_count(rcv, "/default"), 3,
                 "retry_schedule_seconds [1, 1]: %d attempts, want 3 (1 + one per entry)",
                 wr_count(rcv, "/default"));
    cr_assert_eq(wr_count(rcv, "/repeat"), 4, "max_retries 3: %d attempts, want 4",
                 wr_count(rcv, "/repeat"));
    wr_req_t *q = NULL;
    int n = wr_requests(rcv, "/repeat", &q);
    for (int i = 0; i + 1 < n; i++)
        cr_assert(gap_s(q, i) >= 0.8 - 0.05 && gap_s(q, i) <= 1.2 + 1.5,
                  "retry %d after %.3f s, want the last backoff (1 s) again", i + 1, gap_s(q, i));
    wr_reqs_free(q, n);
    free(da);
    free(db);
    json_decref(a);
    json_decref(b);
    wr_stop_all(e, rcv);
}

/* An endpoint that keeps failing for longer than
 * delivery.disable_after_hours gets its subscription disabled, with a
 * reason; its delivery waits (it is not lost) and goes out once the
 * subscription is enabled and the endpoint works again. */
H_TEST(delivery_retry, disabled_after_failing_too_long)
{
    h_env_t *e = h_start(1, "delivery:\n  allow_private: true\n  disable_after_hours: 1\n");
    wr_t *rcv = wr_start();
    wr_default(rcv, "/down", (wr_answer_t){.status = 503});
    char url[128], path[256];
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"down\",\"event_types\":[\"down.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":10,"
                            "\"backoff_seconds\":[1]}}",
                            wr_url(rcv, "/down", url, sizeof(url)));
    const char *sid = h_jstr(s, "subscription_id");
    free(h_create(e, "{\"event_type\":\"down.one\"}"));
    char *did = only_delivery(e, sid);
    cr_assert(wr_wait_count(rcv, "/down", 1, 30000));
    cr_assert(H_WAIT(15000, h_sql_int(e,
                                      "SELECT count(*) FROM event.event_subscriptions WHERE "
                                      "subscription_id = $1 AND failing_since IS NOT NULL",
                                      sid) == 1),
              "failing_since not set after a failure");
    json_t *sub = get_subscription(e, sid);
    cr_assert(json_is_true(json_object_get(sub, "enabled")), "disabled after one failure: %s",
              h_jdump(sub));
    json_decref(sub);
    /* As if it had been failing for two hours. */
    h_sql(e,
          "UPDATE event.event_subscriptions SET failing_since = now() - interval '2 hours' "
          "WHERE subscription_id = $1",
          sid);
    int before = wr_count(rcv, "/down");
    cr_assert(wr_wait_count(rcv, "/down", before + 1, 30000), "no further attempt");
    cr_assert(H_WAIT(15000, h_sql_int(e,
                                      "SELECT count(*) FROM event.event_subscriptions WHERE "
                                      "subscription_id = $1 AND NOT enabled",
                                      sid) == 1),
              "not disabled after failing for longer than disable_after_hours");
    sub = get_subscription(e, sid);
    const char *reason = h_jstr(sub, "disabled_reason");
    cr_assert(reason && strstr(reason, "failing"), "disabled_reason: %s", h_jdump(sub));
    json_decref(sub);
    cr_assert(h_delivery_status_is(e, did, "failed"), "the waiting delivery was not kept");

    wr_default(rcv, "/down", (wr_answer_t){.status = 200});
    snprintf(path, sizeof(path), SUBS "/%s/enable", sid);
    h_resp_t r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);
    cr_assert(H_WAIT(30000, h_delivery_status_is(e, did, "delivered")),
              "not delivered after enable");
    sub = get_subscription(e, sid);
    cr_assert(json_is_null(h_jget(sub, "stats.failing_since")), "%s", h_jdump(sub));
    cr_assert(h_jstr(sub, "stats.last_success_at") != NULL, "%s", h_jdump(sub));
    json_decref(sub);
    json_decref(s);
    free(did);
    wr_stop_all(e, rcv);
}
