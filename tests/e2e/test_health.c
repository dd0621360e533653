/* GET /health and GET /health/ready. */
#include "harness.h"

#include "common/timeutil.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Liveness: 200 with status healthy, the service name, its version and a
 * parseable timestamp close to now. */
H_TEST(health, liveness_fields)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_get(e, "/health");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "healthy", "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "service"), "event_service", "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "version"), ES_VERSION, "%s", r.body);
    const char *ts = h_jstr(r.json, "timestamp");
    cr_assert(ts != NULL, "%s", r.body);
    int64_t us = 0;
    cr_assert(es_time_parse(ts, strlen(ts), &us), "timestamp %s is not ISO 8601", ts);
    int64_t skew = es_time_now_us() - us;
    cr_assert(skew > -60000000 && skew < 60000000, "timestamp %s is not now", ts);
    cr_assert(strstr(r.body, "\"detail\"") == NULL);
    h_resp_free(&r);
}

/* Readiness: 200 {"status":"ready","checks":{"database":"ok","nats":"ok"}}. */
H_TEST(health, readiness_checks_ok)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    /* A few requests, so both API workers are likely asked at least once. */
    for (int i = 0; i < 6; i++) {
        h_resp_t r = h_get(e, "/health/ready");
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert_str_eq(h_jstr(r.json, "status"), "ready", "%s", r.body);
        cr_assert_str_eq(h_jstr(r.json, "checks.database"), "ok", "%s", r.body);
        cr_assert_str_eq(h_jstr(r.json, "checks.nats"), "ok", "%s", r.body);
        h_resp_free(&r);
    }
}

/* An unknown path is a JSON 404, a known path with the wrong method a 405. */
H_TEST(health, unknown_route_and_method)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_get(e, "/no/such/route");
    cr_assert_eq(r.status, 404, "%s", r.body);
    cr_assert(h_jstr(r.json, "detail") != NULL, "%s", r.body);
    h_resp_free(&r);
    r = h_http(e->svc.port, "DELETE", "/health", NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 405, "%s", r.body);
    h_resp_free(&r);
}

/* Once /health/ready has answered 200, creates succeed: fired at once right
 * after the first 200, on fresh connections (so they reach every worker),
 * every one is answered 201, not 503. Ten starts, since the window between
 * a worker answering and all workers being connected is short. */
H_TEST(health, ready_means_creates_succeed)
{
    h_env_t *e = h_setup(NULL);
    enum { N = 20 };
    const char *bodies[N];
    for (int i = 0; i < N; i++)
        bodies[i] = "{\"event_type\":\"early.bird\"}";
    int total = 0;
    for (int round = 0; round < 10; round++) {
        h_svc_spawn(e, NULL);
        cr_assert(H_WAIT(30000, h_svc_ready(e)), "not ready within 30 s");
        h_resp_t out[N];
        h_http_multi(e->svc.port, N, "POST", "/api/v1/events/create", bodies, out, 15000);
        int created = 0;
        long other = 0;
        char detail[256] = "";
        for (int i = 0; i < N; i++) {
            if (out[i].status == 201) {
                created++;
            } else if (other == 0) {
                other = out[i].status;
                snprintf(detail, sizeof(detail), "%s", out[i].body);
            }
            h_resp_free(&out[i]);
        }
        total += created;
        cr_assert_eq(created, N,
                     "start %d: %d of %d creates right after readiness failed; first: %ld %s",
                     round + 1, N - created, N, other, detail);
        cr_assert(h_svc_stop(e, SIGTERM, 20000));
    }
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), total);
}
