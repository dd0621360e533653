/* What an SRE runs the service with: /metrics, /openapi.json, the auth modes
 * and Consul registration. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of a metric line "name{labels} value" in a /metrics body. */
static double metric(const char *body, const char *series)
{
    const char *p = body;
    size_t n = strlen(series);
    while ((p = strstr(p, series)) != NULL) {
        if ((p == body || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p += n;
    }
    return -1;
}

/* The pinned metric names are exposed and move with the traffic. */
H_TEST(platform, metrics_exposed_and_counting)
{
    h_opts_t o = {.processors = 1};
    h_env_t *e = h_setup(&o);
    h_svc_start(e);
    h_resp_t m0 = h_get(e, "/metrics");
    cr_assert_eq(m0.status, 200);
    const char *names[] = {"event_service_events_ingested_total{source=\"backend\"}",
                           "event_service_events_processed_total{outcome=\"processed\"}",
                           "event_service_deliveries_total{outcome=\"delivered\"}",
                           "event_service_worker_restarts_total{role=\"api\"}",
                           "event_service_queue_depth{queue=\"processing\"}"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        cr_assert(metric(m0.body, names[i]) >= 0, "missing %s in:\n%s", names[i], m0.body);
    double before = metric(m0.body, names[0]);
    h_resp_free(&m0);

    for (int i = 0; i < 3; i++)
        free(h_create(e, "{\"event_type\":\"metrics.check\"}"));
    /* Counters live in memory shared by every worker: any worker's answer counts all. */
    bool seen = H_WAIT(20000, ({
                           h_resp_t m = h_get(e, "/metrics");
                           double v = metric(m.body, names[0]);
                           double p = metric(m.body, names[1]);
                           h_resp_free(&m);
                           v >= before + 3 && p >= 3;
                       }));
    cr_assert(seen, "ingested and processed counters did not move");
    h_resp_t m = h_get(e, "/metrics");
    cr_assert(strstr(m.body, "event_service_http_request_duration_seconds_bucket{route=\"events."
                             "create\",status=\"201\",le=\"+Inf\"}") != NULL,
              "no latency histogram for events.create:\n%s", m.body);
    h_resp_free(&m);
}

/* The group-commit counters add up: every request and event written is
 * counted once, in some transaction. A client that waits for each answer is
 * written one request per transaction; 100 clients at once share fewer
 * transactions than requests, and every one of them is answered. */
H_TEST(platform, group_commit_counters)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    const char *tx = "event_service_ingest_transactions_total";
    const char *rq = "event_service_ingest_transaction_requests_total";
    const char *ev = "event_service_ingest_transaction_events_total";
    h_resp_t m0 = h_get(e, "/metrics");
    double tx0 = metric(m0.body, tx), rq0 = metric(m0.body, rq), ev0 = metric(m0.body, ev);
    cr_assert(tx0 >= 0 && rq0 >= 0 && ev0 >= 0, "group-commit counters missing:\n%s", m0.body);
    h_resp_free(&m0);

    for (int i = 0; i < 3; i++)
        free(h_create(e, "{\"event_type\":\"group.alone\"}"));
    h_resp_t b = h_post(e, "/api/v1/events/batch",
                        "[{\"event_type\":\"group.b\"},{\"event_type\":\"group.b\"},"
                        "{\"event_type\":\"group.b\"},{\"event_type\":\"group.b\"}]");
    cr_assert_eq(b.status, 201, "%s", b.body);
    h_resp_free(&b);
    h_resp_t m1 = h_get(e, "/metrics");
    cr_assert_eq(metric(m1.body, tx), tx0 + 4);
    cr_assert_eq(metric(m1.body, rq), rq0 + 4);
    cr_assert_eq(metric(m1.body, ev), ev0 + 7);
    h_resp_free(&m1);

    enum { N = 100 };
    char *bodies[N];
    for (int i = 0; i < N; i++) {
        bodies[i] = malloc(64);
        snprintf(bodies[i], 64, "{\"event_type\":\"group.many\",\"data\":{\"i\":%d}}", i);
    }
    h_resp_t *out = calloc(N, sizeof(h_resp_t));
    h_http_multi(e->svc.port, N, "POST", "/api/v1/events/create", (const char *const *)bodies, out,
                 30000);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(out[i].status, 201, "request %d: %ld %s %s", i, out[i].status, out[i].body,
                     out[i].error);
        h_resp_free(&out[i]);
        free(bodies[i]);
    }
    free(out);
    h_resp_t m2 = h_get(e, "/metrics");
    double txs = metric(m2.body, tx) - (tx0 + 4);
    cr_assert_eq(metric(m2.body, rq), rq0 + 4 + N);
    cr_assert_eq(metric(m2.body, ev), ev0 + 7 + N);
    cr_assert(txs >= 1 && txs < N, "%g transactions for %d concurrent requests", txs, N);
    h_resp_free(&m2);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events WHERE event_type = 'group.many'"),
                 N);
}

/* Every operation /openapi.json lists is served by a route (the router's own
 * 404/405 never answers it), and the core routes are listed. */
H_TEST(platform, openapi_matches_the_routes)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t doc = h_get(e, "/openapi.json");
    cr_assert_eq(doc.status, 200);
    cr_assert_not_null(doc.json);
    cr_assert_str_eq(h_jstr(doc.json, "openapi"), "3.0.3");
    json_t *paths = json_object_get(doc.json, "paths");
    const char *must[] = {"/health",
                          "/api/v1/events/create",
                          "/api/v1/events/query",
                          "/api/v1/events/{event_id}",
                          "/api/v1/events/subscriptions",
                          "/api/v1/events/replay",
                          "/webhooks/rudderstack",
                          "/v1/track"};
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        cr_assert_not_null(json_object_get(paths, must[i]), "%s not documented", must[i]);
    const char *path;
    json_t *ops;
    int checked = 0;
    json_object_foreach(paths, path, ops)
    {
        /* Fill path parameters with a placeholder. */
        char real[512];
        size_t o = 0;
        for (const char *p = path; *p && o + 8 < sizeof(real); p++) {
            if (*p == '{') {
                memcpy(real + o, "zzz", 3);
                o += 3;
                p = strchr(p, '}');
            } else {
                real[o++] = *p;
            }
        }
        real[o] = '\0';
        const char *method;
        json_t *op;
        json_object_foreach(ops, method, op)
        {
            char upper[8];
            size_t k;
            for (k = 0; method[k] && k < sizeof(upper) - 1; k++)
                upper[k] = (char)(method[k] - 32);
            upper[k] = '\0';
            if (strcmp(real, "/metrics") == 0)
                continue; /* not JSON */
            h_resp_t r = h_http(e->svc.port, upper, real, NULL, 0, NULL, 0);
            const char *detail = h_jstr(r.json, "detail");
            cr_assert(r.status != 0, "%s %s: no answer", upper, real);
            cr_assert(!(r.status == 405) &&
                          !(r.status == 404 && detail && strcmp(detail, "Not Found") == 0),
                      "%s %s is documented but not served (%ld %s)", upper, real, r.status, r.body);
            h_resp_free(&r);
            checked++;
        }
    }
    cr_assert_gt(checked, 30, "only %d operations documented", checked);
    h_resp_free(&doc);
}

/* auth.mode gateway: identity from the gateway's headers; admin routes need
 * the role; other callers see and write their own events only. */
H_TEST(platform, gateway_auth)
{
    h_opts_t o = {.extra_yaml = "auth:\n  mode: gateway\n"};
    h_env_t *e = h_setup(&o);
    h_svc_start(e);
    h_resp_t r = h_post(e, "/api/v1/events/create", "{\"event_type\":\"a\"}");
    cr_assert_eq(r.status, 401, "no identity: %s", r.body);
    h_resp_free(&r);

    const char *alice[] = {"X-User-Id: alice", NULL};
    const char *bob[] = {"X-User-Id: bob", NULL};
    const char *admin[] = {"X-User-Id: ops", "X-User-Role: viewer, admin", NULL};
    const char *body = "{\"event_type\":\"gw.mine\"}";
    r = h_http(e->svc.port, "POST", "/api/v1/events/create", body, strlen(body), alice, 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "user_id"), "alice", "user_id defaults to the caller");
    char *id = strdup(h_jstr(r.json, "event_id"));
    h_resp_free(&r);
    const char *other = "{\"event_type\":\"gw.other\",\"user_id\":\"bob\"}";
    r = h_http(e->svc.port, "POST", "/api/v1/events/create", other, strlen(other), alice, 0);
    cr_assert_eq(r.status, 403, "writing another user's event: %s", r.body);
    h_resp_free(&r);

    char path[128];
    snprintf(path, sizeof(path), "/api/v1/events/%s", id);
    r = h_http(e->svc.port, "GET", path, NULL, 0, bob, 0);
    cr_assert_eq(r.status, 404, "bob must not see alice's event: %s", r.body);
    h_resp_free(&r);
    r = h_http(e->svc.port, "GET", path, NULL, 0, alice, 0);
    cr_assert_eq(r.status, 200);
    h_resp_free(&r);
    r = h_http(e->svc.port, "POST", "/api/v1/events/query", "{}", 2, bob, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(h_jint(r.json, "total"), 0, "bob's query shows others' events: %s", r.body);
    h_resp_free(&r);

    r = h_http(e->svc.port, "GET", "/api/v1/events/processors", NULL, 0, alice, 0);
    cr_assert_eq(r.status, 403, "%s", r.body);
    h_resp_free(&r);
    r = h_http(e->svc.port, "GET", "/api/v1/events/processors", NULL, 0, admin, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);
    r = h_http(e->svc.port, "POST", "/api/v1/events/query", "{}", 2, admin, 0);
    cr_assert_eq(h_jint(r.json, "total"), 1, "the admin sees every event: %s", r.body);
    h_resp_free(&r);
    r = h_get(e, "/health");
    cr_assert_eq(r.status, 200, "health is public");
    h_resp_free(&r);
    free(id);
}

/* auth.mode gateway: a client-named event belongs to its caller. Two users
 * sending the same Idempotency-Key and body each get their own event; a user
 * repeating another user's event_id with the same content gets 409, not the
 * other user's event; each user's own repeat still answers 200. */
H_TEST(platform, gateway_idempotency_per_user)
{
    h_opts_t o = {.extra_yaml = "auth:\n  mode: gateway\n"};
    h_env_t *e = h_setup(&o);
    h_svc_start(e);
    const char *alice[] = {"X-User-Id: alice", "Idempotency-Key: k-1", NULL};
    const char *bob[] = {"X-User-Id: bob", "Idempotency-Key: k-1", NULL};
    const char *body = "{\"event_type\":\"gw.keyed\"}";
    h_resp_t r = h_http(e->svc.port, "POST", "/api/v1/events/create", body, strlen(body), alice, 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    char *alice_id = strdup(h_jstr(r.json, "event_id"));
    h_resp_free(&r);
    r = h_http(e->svc.port, "POST", "/api/v1/events/create", body, strlen(body), bob, 0);
    cr_assert_eq(r.status, 201, "bob's event under the same key: %s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "user_id"), "bob", "%s", r.body);
    cr_assert_str_neq(h_jstr(r.json, "event_id"), alice_id, "bob was answered alice's event");
    h_resp_free(&r);
    r = h_http(e->svc.port, "POST", "/api/v1/events/create", body, strlen(body), alice, 0);
    cr_assert_eq(r.status, 200, "alice's repeat: %s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "event_id"), alice_id);
    h_resp_free(&r);

    const char *carol[] = {"X-User-Id: carol", NULL};
    const char *dave[] = {"X-User-Id: dave", NULL};
    const char *named = "{\"event_id\":\"named-1\",\"event_type\":\"gw.named\"}";
    r = h_http(e->svc.port, "POST", "/api/v1/events/create", named, strlen(named), carol, 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);
    r = h_http(e->svc.port, "POST", "/api/v1/events/create", named, strlen(named), dave, 0);
    cr_assert_eq(r.status, 409, "dave reusing carol's event_id: %s", r.body);
    cr_assert(strstr(r.body, "carol") == NULL, "carol's event leaked to dave: %s", r.body);
    h_resp_free(&r);
    r = h_http(e->svc.port, "POST", "/api/v1/events/create", named, strlen(named), carol, 0);
    cr_assert_eq(r.status, 200, "carol's repeat: %s", r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 3);
    free(alice_id);
}

/* A tiny Consul agent stand-in: records the paths and bodies of the PUTs. */
static int consul_calls(h_recv_t *c, const char *needle)
{
    h_recv_req_t *reqs = NULL;
    int n = h_recv_reqs(c, &reqs), hits = 0;
    for (int i = 0; i < n; i++)
        if (strstr(reqs[i].path, needle) != NULL)
            hits++;
    h_recv_reqs_free(reqs, n);
    return hits;
}

H_TEST(platform, consul_registration)
{
    h_recv_t *consul = h_recv_start();
    char yaml[256];
    snprintf(yaml, sizeof(yaml), "consul:\n  enabled: true\n  host: 127.0.0.1\n  port: %d\n",
             h_recv_port(consul));
    h_opts_t o = {.extra_yaml = yaml};
    h_env_t *e = h_setup(&o);
    h_svc_start(e);
    cr_assert(H_WAIT(10000, consul_calls(consul, "/v1/agent/service/register") == 1));
    h_recv_req_t *reqs = NULL;
    int n = h_recv_reqs(consul, &reqs);
    cr_assert_geq(n, 1);
    cr_assert_not_null(reqs[0].json, "registration body is JSON");
    cr_assert_str_eq(h_jstr(reqs[0].json, "Name"), "event_service");
    cr_assert_eq(h_jint(reqs[0].json, "Port"), e->svc.port);
    const char *check = h_jstr(reqs[0].json, "Check.HTTP");
    cr_assert(check != NULL && strstr(check, "/health") != NULL, "check: %s", check);
    h_recv_reqs_free(reqs, n);
    cr_assert(h_svc_stop(e, SIGTERM, 20000));
    cr_assert_eq(consul_calls(consul, "/v1/agent/service/deregister/"), 1,
                 "no deregistration on stop");
    h_recv_stop(consul);
}
