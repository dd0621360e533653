/* Webhook deliveries to subscriptions (SPEC 7, 10): Standard Webhooks
 * signatures as a receiver checks them, fan-out to every matching
 * subscription and to no other, NATS-style event_types patterns and the
 * source/category filters, disable/enable, delete, and secret rotation. */
#include "harness.h"
#include "receiver.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUBS "/api/v1/events/subscriptions"
/* Deliveries go to the receiver on 127.0.0.1. */
#define YAML_PRIVATE_OK "delivery:\n  allow_private: true\n"

/* The delivery_id of subscription sub for event ev, or NULL (caller frees). */
static char *delivery_of(h_env_t *e, const char *sub, const char *ev)
{
    PGresult *r = h_sql(e,
                        "SELECT delivery_id FROM event.deliveries WHERE subscription_id = $1 "
                        "AND event_id = $2",
                        sub, ev);
    char *id = PQntuples(r) == 1 ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return id;
}

static int64_t deliveries_of_event(h_env_t *e, const char *ev)
{
    return h_sql_int(e, "SELECT count(*) FROM event.deliveries WHERE event_id = $1", ev);
}

/* The event_id in a webhook's body (the event as GET /events/{id} shows it). */
static const char *event_of(const wr_req_t *q)
{
    return h_jstr(q->json, "event_id");
}

/* "whsec_" + base64 of the bytes of s: the secret whose key is s itself
 * (caller frees). */
static char *key_as_whsec(const char *s)
{
    size_t len = strlen(s);
    char *out = calloc(4 * (len + 2) / 3 + 16, 1);
    memcpy(out, "whsec_", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)s, (int)len);
    return out;
}

/* A POST carrying the Standard Webhooks headers, a JSON body, a webhook-id
 * equal to delivery_id and a webhook-timestamp within 5 s of its arrival. */
static void assert_standard_headers(const wr_req_t *q, const char *delivery_id)
{
    cr_assert_str_eq(q->method, "POST");
    const char *ct = wr_header(q, "content-type");
    cr_assert(ct && strstr(ct, "application/json"), "content-type %s", ct ? ct : "(none)");
    cr_assert(q->json != NULL, "the body is not JSON: %s", q->body);
    const char *id = wr_header(q, "webhook-id");
    cr_assert(id != NULL, "no webhook-id header");
    cr_assert(strchr(id, '.') == NULL, "webhook-id %s contains a '.'", id);
    if (delivery_id)
        cr_assert_str_eq(id, delivery_id, "webhook-id is not the delivery_id");
    const char *ts = wr_header(q, "webhook-timestamp");
    cr_assert(ts != NULL, "no webhook-timestamp header");
    char *end = NULL;
    long long t = strtoll(ts, &end, 10);
    cr_assert(end && *end == '\0' && end != ts, "webhook-timestamp %s is not an integer", ts);
    long long arrived = q->at_unix_ms / 1000;
    cr_assert(t >= arrived - 5 && t <= arrived + 5,
              "webhook-timestamp %lld is not the current unix time (%lld)", t, arrived);
    cr_assert(wr_header(q, "webhook-signature") != NULL, "no webhook-signature header");
}

/* Every delivery is signed with the subscription's secret: a generated one
 * (whsec_, returned once at creation), a client's whsec_ one and a client's
 * plain one; the signature verifies with that secret only; webhook-id is
 * the delivery_id; webhook-timestamp is the current unix time. */
H_TEST(delivery, signatures_verify_with_the_subscription_secret)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    char url[3][128];
    const char *paths[3] = {"/generated", "/client-whsec", "/client-plain"};
    for (int i = 0; i < 3; i++)
        wr_url(rcv, paths[i], url[i], sizeof(url[i]));
    const char *whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const char *plain = "a plain shared secret, used as its bytes";

    json_t *s0 = h_subscribe(e,
                             "{\"subscriber_name\":\"gen\",\"event_types\":[\"sig.test\"],"
                             "\"callback_url\":\"%s\"}",
                             url[0]);
    json_t *s1 = h_subscribe(e,
                             "{\"subscriber_name\":\"whsec\",\"event_types\":[\"sig.test\"],"
                             "\"callback_url\":\"%s\",\"webhook_secret\":\"%s\"}",
                             url[1], whsec);
    json_t *s2 = h_subscribe(e,
                             "{\"subscriber_name\":\"plain\",\"event_types\":[\"sig.test\"],"
                             "\"callback_url\":\"%s\",\"webhook_secret\":\"%s\"}",
                             url[2], plain);
    const char *generated = h_jstr(s0, "webhook_secret");
    cr_assert(generated && strncmp(generated, "whsec_", 6) == 0,
              "no whsec_ secret returned at creation: %s", json_dumps(s0, JSON_COMPACT));
    const char *secrets[3] = {generated, whsec, plain};
    json_t *subs[3] = {s0, s1, s2};
    for (int i = 0; i < 3; i++)
        wr_secret(rcv, paths[i], secrets[i]);

    char *ev = h_create(e, "{\"event_type\":\"sig.test\",\"data\":{\"amount\":12.5,\"note\":"
                           "\"caf\\u00e9 \\\"quoted\\\"\"}}");
    for (int i = 0; i < 3; i++)
        cr_assert(wr_wait_count(rcv, paths[i], 1, 30000), "no delivery to %s within 30 s",
                  paths[i]);

    for (int i = 0; i < 3; i++) {
        const char *sub = h_jstr(subs[i], "subscription_id");
        cr_assert(H_WAIT(10000, h_deliveries_with_status(e, sub, "delivered") == 1),
                  "%s: not delivered", paths[i]);
        char *did = delivery_of(e, sub, ev);
        cr_assert(did != NULL);
        wr_req_t *q = NULL;
        int n = wr_requests(rcv, paths[i], &q);
        cr_assert_eq(n, 1, "%s got %d requests", paths[i], n);
        assert_standard_headers(&q[0], did);
        cr_assert_str_eq(event_of(&q[0]), ev, "%s: the body is not the event: %s", paths[i],
                         q[0].body);
        /* The body is the event as the API shows it once processed. */
        h_resp_t g = h_get(e, "/api/v1/events/%s", ev);
        cr_assert_eq(g.status, 200);
        const char *keys[] = {"event_id", "event_type", "event_source", "event_category", "data",
                              "metadata", "context",    "timestamp",    "created_at"};
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            cr_assert(
                json_equal(json_object_get(q[0].json, keys[k]), json_object_get(g.json, keys[k])),
                "%s: the webhook's %s differs from the event's:\n%s\n%s", paths[i], keys[k],
                q[0].body, g.body);
        h_resp_free(&g);
        cr_assert_eq(wr_signature_count(&q[0]), 1, "%s: webhook-signature %s", paths[i],
                     wr_header(&q[0], "webhook-signature"));
        cr_assert_eq(q[0].sig, WR_SIG_OK, "%s: the signature does not verify with %s (%s)",
                     paths[i], secrets[i], wr_header(&q[0], "webhook-signature"));
        for (int k = 0; k < 3; k++)
            if (k != i)
                cr_assert(!wr_verify(&q[0], secrets[k]), "%s: verifies with another secret",
                          paths[i]);
        cr_assert(!wr_verify(&q[0], "whsec_d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldA=="),
                  "%s: verifies with a wrong secret", paths[i]);
        /* The whsec_ form is the decoded key, not the string's bytes. */
        if (strncmp(secrets[i], "whsec_", 6) == 0) {
            char *as_bytes = key_as_whsec(secrets[i]);
            cr_assert(!wr_verify(&q[0], as_bytes), "%s: signed with the string, not the key",
                      paths[i]);
            free(as_bytes);
        }
        /* The API lists the same delivery_id. */
        h_resp_t l = h_get(e, SUBS "/%s/deliveries", sub);
        cr_assert_eq(l.status, 200, "%s", l.body);
        cr_assert_str_eq(h_jstr(l.json, "deliveries.0.delivery_id"), did, "%s", l.body);
        cr_assert_str_eq(h_jstr(l.json, "deliveries.0.event_id"), ev, "%s", l.body);
        cr_assert_str_eq(h_jstr(l.json, "deliveries.0.status"), "delivered", "%s", l.body);
        h_resp_free(&l);
        wr_reqs_free(q, n);
        free(did);
    }
    /* The plain secret is its own bytes: its whsec_ form signs the same. */
    wr_req_t *q = NULL;
    int n = wr_requests(rcv, paths[2], &q);
    cr_assert_eq(n, 1);
    char *as_whsec = key_as_whsec(plain);
    cr_assert(wr_verify(&q[0], as_whsec), "the plain secret is not used as its bytes");
    free(as_whsec);
    wr_reqs_free(q, n);

    json_decref(s0);
    json_decref(s1);
    json_decref(s2);
    free(ev);
    wr_stop_all(e, rcv);
}

/* One processed event, several subscriptions: a delivery (a row, then one
 * POST) for each subscription that matches by type, source and category,
 * and none for the others. */
H_TEST(delivery, fan_out_to_every_matching_subscription)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    struct {
        const char *path;
        const char *filters;
        bool match;
    } subs[] = {
        {"/exact", "\"event_types\":[\"order.created\"]", true},
        {"/star", "\"event_types\":[\"order.*\"]", true},
        {"/tail", "\"event_types\":[\"order.>\"]", true},
        {"/all", "\"event_types\":[\">\"]", true},
        {"/two-types", "\"event_types\":[\"user.created\",\"order.created\"]", true},
        {"/source", "\"event_types\":[\"order.*\"],\"event_sources\":[\"backend\",\"frontend\"]",
         true},
        {"/category", "\"event_types\":[\"order.*\"],\"event_categories\":[\"order\"]", true},
        {"/other-type", "\"event_types\":[\"user.*\"]", false},
        {"/longer", "\"event_types\":[\"order.created.v2\"]", false},
        {"/shorter", "\"event_types\":[\"order\"]", false},
        {"/other-source", "\"event_types\":[\"order.*\"],\"event_sources\":[\"iot_device\"]",
         false},
        {"/other-category", "\"event_types\":[\"order.*\"],\"event_categories\":[\"payment\"]",
         false},
        {"/disabled", "\"event_types\":[\"order.created\"],\"enabled\":false", false},
    };
    int nsubs = (int)(sizeof(subs) / sizeof(subs[0])), nmatch = 0;
    char *ids[16];
    for (int i = 0; i < nsubs; i++) {
        char url[128];
        json_t *s = h_subscribe(e, "{\"subscriber_name\":\"fan%d\",%s,\"callback_url\":\"%s\"}", i,
                                subs[i].filters, wr_url(rcv, subs[i].path, url, sizeof(url)));
        ids[i] = strdup(h_jstr(s, "subscription_id"));
        json_decref(s);
        nmatch += subs[i].match;
    }
    char *ev = h_create(e, "{\"event_type\":\"order.created\",\"event_source\":\"backend\","
                           "\"event_category\":\"order\"}");
    cr_assert(H_WAIT(30000, h_event_status_is(e, ev, "processed")),
              "event not processed within 30 s");
    cr_assert_eq(deliveries_of_event(e, ev), nmatch,
                 "%lld deliveries for %d matching subscriptions",
                 (long long)deliveries_of_event(e, ev), nmatch);
    for (int i = 0; i < nsubs; i++)
        cr_assert_eq(h_sql_int(e,
                               "SELECT count(*) FROM event.deliveries WHERE subscription_id = "
                               "$1 AND event_id = $2",
                               ids[i], ev),
                     subs[i].match ? 1 : 0, "subscription %s (%s)", subs[i].path, subs[i].filters);
    for (int i = 0; i < nsubs; i++)
        if (subs[i].match)
            cr_assert(wr_wait_count(rcv, subs[i].path, 1, 30000), "nothing arrived at %s",
                      subs[i].path);
    for (int i = 0; i < nsubs; i++)
        cr_assert(H_WAIT(15000, h_deliveries_with_status(e, ids[i], "delivered") ==
                                    (subs[i].match ? 1 : 0)));
    /* Every row is final: nothing else can arrive now. */
    for (int i = 0; i < nsubs; i++)
        cr_assert_eq(wr_count(rcv, subs[i].path), subs[i].match ? 1 : 0, "%s got %d requests",
                     subs[i].path, wr_count(rcv, subs[i].path));
    cr_assert_eq(wr_count(rcv, NULL), nmatch);
    for (int i = 0; i < nsubs; i++)
        free(ids[i]);
    free(ev);
    wr_stop_all(e, rcv);
}

/* event_types patterns follow NATS: `*` is exactly one token, `>` one or
 * more trailing tokens; event_sources and event_categories both must match
 * when given. */
H_TEST(delivery, patterns_and_filters_match_as_nats_does)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    char url[128];
    json_t *su = h_subscribe(e,
                             "{\"subscriber_name\":\"u\",\"event_types\":[\"user.*\"],"
                             "\"callback_url\":\"%s\"}",
                             wr_url(rcv, "/user", url, sizeof(url)));
    json_t *so = h_subscribe(e,
                             "{\"subscriber_name\":\"o\",\"event_types\":[\"order.>\"],"
                             "\"callback_url\":\"%s\"}",
                             wr_url(rcv, "/order", url, sizeof(url)));
    json_t *sf = h_subscribe(e,
                             "{\"subscriber_name\":\"f\",\"event_types\":[\">\"],"
                             "\"event_sources\":[\"frontend\",\"iot_device\"],"
                             "\"event_categories\":[\"click\",\"device_status\"],"
                             "\"callback_url\":\"%s\"}",
                             wr_url(rcv, "/filtered", url, sizeof(url)));
    struct {
        const char *type, *source, *category;
        bool user, order, filtered;
    } evs[] = {
        {"user.created", "backend", "user_lifecycle", true, false, false},
        {"user", "backend", "user_lifecycle", false, false, false},
        {"user.created.v2", "backend", "user_lifecycle", false, false, false},
        {"users.created", "backend", "user_lifecycle", false, false, false},
        {"admin.user.created", "backend", "user_lifecycle", false, false, false},
        {"order.placed", "backend", "order", false, true, false},
        {"order.placed.eu", "backend", "order", false, true, false},
        {"order", "backend", "order", false, false, false},
        {"orders.placed", "backend", "order", false, false, false},
        {"ui.clicked", "frontend", "click", false, false, true},
        {"sensor.state", "iot_device", "device_status", false, false, true},
        {"ui.paid", "frontend", "payment", false, false, false},
        {"api.clicked", "backend", "click", false, false, false},
    };
    int nevs = (int)(sizeof(evs) / sizeof(evs[0]));
    char *ids[16];
    int want_user = 0, want_order = 0, want_filtered = 0;
    for (int i = 0; i < nevs; i++) {
        ids[i] = h_create(e,
                          "{\"event_type\":\"%s\",\"event_source\":\"%s\","
                          "\"event_category\":\"%s\"}",
                          evs[i].type, evs[i].source, evs[i].category);
        want_user += evs[i].user;
        want_order += evs[i].order;
        want_filtered += evs[i].filtered;
    }
    for (int i = 0; i < nevs; i++)
        cr_assert(H_WAIT(30000, h_event_status_is(e, ids[i], "processed")),
                  "event %s not processed", evs[i].type);
    const char *sub_ids[3] = {h_jstr(su, "subscription_id"), h_jstr(so, "subscription_id"),
                              h_jstr(sf, "subscription_id")};
    for (int i = 0; i < nevs; i++) {
        bool want[3] = {evs[i].user, evs[i].order, evs[i].filtered};
        for (int k = 0; k < 3; k++) {
            char *d = delivery_of(e, sub_ids[k], ids[i]);
            cr_assert_eq(d != NULL, want[k], "event %s (%s, %s) and subscription %d: %s",
                         evs[i].type, evs[i].source, evs[i].category, k,
                         d ? "a delivery" : "no delivery");
            free(d);
        }
    }
    cr_assert(wr_wait_count(rcv, "/user", want_user, 30000));
    cr_assert(wr_wait_count(rcv, "/order", want_order, 30000));
    cr_assert(wr_wait_count(rcv, "/filtered", want_filtered, 30000));
    const char *paths[3] = {"/user", "/order", "/filtered"};
    int wants[3] = {want_user, want_order, want_filtered};
    for (int k = 0; k < 3; k++) {
        cr_assert(H_WAIT(15000, h_deliveries_with_status(e, sub_ids[k], "delivered") == wants[k]));
        wr_req_t *q = NULL;
        int n = wr_requests(rcv, paths[k], &q);
        cr_assert_eq(n, wants[k], "%s got %d requests, want %d", paths[k], n, wants[k]);
        for (int j = 0; j < n; j++) {
            const char *type = h_jstr(q[j].json, "event_type");
            bool ok = false;
            for (int i = 0; i < nevs; i++)
                if (strcmp(evs[i].type, type ? type : "") == 0)
                    ok = k == 0 ? evs[i].user : k == 1 ? evs[i].order : evs[i].filtered;
            cr_assert(ok, "%s received %s", paths[k], type ? type : q[j].body);
        }
        wr_reqs_free(q, n);
    }
    for (int i = 0; i < nevs; i++)
        free(ids[i]);
    json_decref(su);
    json_decref(so);
    json_decref(sf);
    wr_stop_all(e, rcv);
}

static int64_t delivery_attempts(h_env_t *e, const char *did)
{
    return h_sql_int(e, "SELECT attempts FROM event.deliveries WHERE delivery_id = $1", did);
}

/* A disabled subscription gets no new deliveries from that moment; the
 * delivery it had waiting is not sent while it is disabled, and is sent once
 * it is enabled again. */
H_TEST(delivery, disable_then_enable)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    char url[128];
    wr_push(rcv, "/d", 1, (wr_answer_t){.status = 500});
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"d\",\"event_types\":[\"de.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":5,"
                            "\"backoff_seconds\":[2]}}",
                            wr_url(rcv, "/d", url, sizeof(url)));
    const char *sid = h_jstr(s, "subscription_id");
    char *e1 = h_create(e, "{\"event_type\":\"de.first\"}");
    cr_assert(wr_wait_count(rcv, "/d", 1, 30000), "first attempt never came");
    cr_assert(H_WAIT(30000, deliveries_of_event(e, e1) == 1));
    char *d1 = delivery_of(e, sid, e1);
    cr_assert(H_WAIT(10000, h_delivery_status_is(e, d1, "failed")), "not failed after the 500");

    char path[256];
    snprintf(path, sizeof(path), SUBS "/%s/disable", sid);
    h_resp_t r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_false(h_jget(r.json, "enabled")), "%s", r.body);
    cr_assert(h_jstr(r.json, "disabled_reason") != NULL, "no disabled_reason: %s", r.body);
    h_resp_free(&r);

    char *e2 = h_create(e, "{\"event_type\":\"de.second\"}");
    cr_assert(H_WAIT(30000, h_event_status_is(e, e2, "processed")));
    cr_assert_eq(deliveries_of_event(e, e2), 0, "a disabled subscription got a new delivery");
    /* Its waiting delivery comes due while disabled and is not sent. */
    cr_assert(H_WAIT(20000, h_sql_int(e,
                                      "SELECT count(*) FROM event.deliveries WHERE delivery_id "
                                      "= $1 AND next_attempt_at < now() - interval '2 seconds'",
                                      d1) == 1),
              "the retry never came due");
    cr_assert_eq(wr_count(rcv, "/d"), 1, "a disabled subscription's delivery was sent");
    cr_assert_eq(delivery_attempts(e, d1), 1);

    snprintf(path, sizeof(path), SUBS "/%s/enable", sid);
    r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(h_jget(r.json, "enabled")), "%s", r.body);
    cr_assert(json_is_null(h_jget(r.json, "disabled_reason")), "%s", r.body);
    h_resp_free(&r);
    cr_assert(wr_wait_count(rcv, "/d", 2, 30000), "the waiting delivery was not sent after enable");
    cr_assert(H_WAIT(10000, h_delivery_status_is(e, d1, "delivered")));
    char *e3 = h_create(e, "{\"event_type\":\"de.third\"}");
    cr_assert(wr_wait_count(rcv, "/d", 3, 30000), "no delivery of a new event after enable");
    cr_assert_eq(deliveries_of_event(e, e2), 0, "the event processed while disabled got one");
    wr_req_t *q = NULL;
    int n = wr_requests(rcv, "/d", &q);
    cr_assert_str_eq(event_of(&q[0]), e1);
    cr_assert_str_eq(event_of(&q[1]), e1);
    cr_assert_str_eq(event_of(&q[2]), e3);
    cr_assert_str_eq(wr_header(&q[0], "webhook-id"), d1);
    cr_assert_str_eq(wr_header(&q[1], "webhook-id"), d1);
    wr_reqs_free(q, n);
    free(e1);
    free(e2);
    free(e3);
    free(d1);
    json_decref(s);
    wr_stop_all(e, rcv);
}

/* DELETE removes the subscription and its deliveries (and their attempts);
 * later events are not delivered to it; another subscription is untouched. */
H_TEST(delivery, delete_removes_subscription_and_deliveries)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    char url[128];
    json_t *sx = h_subscribe(e,
                             "{\"subscriber_name\":\"x\",\"event_types\":[\"del.*\"],"
                             "\"callback_url\":\"%s\"}",
                             wr_url(rcv, "/x", url, sizeof(url)));
    json_t *sy = h_subscribe(e,
                             "{\"subscriber_name\":\"y\",\"event_types\":[\"del.*\"],"
                             "\"callback_url\":\"%s\"}",
                             wr_url(rcv, "/y", url, sizeof(url)));
    const char *x = h_jstr(sx, "subscription_id"), *y = h_jstr(sy, "subscription_id");
    char *a = h_create(e, "{\"event_type\":\"del.a\"}");
    cr_assert(wr_wait_count(rcv, "/x", 1, 30000));
    cr_assert(wr_wait_count(rcv, "/y", 1, 30000));
    cr_assert(H_WAIT(10000, h_deliveries_with_status(e, x, "delivered") == 1 &&
                                h_deliveries_with_status(e, y, "delivered") == 1));
    char *dx = delivery_of(e, x, a);

    char path[256];
    snprintf(path, sizeof(path), SUBS "/%s", x);
    h_resp_t r = h_http(e->svc.port, "DELETE", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);
    r = h_get(e, "%s", path);
    cr_assert_eq(r.status, 404, "GET after DELETE: %ld %s", r.status, r.body);
    cr_assert(h_jstr(r.json, "detail") != NULL, "%s", r.body);
    h_resp_free(&r);
    r = h_get(e, SUBS "/%s/deliveries", x);
    cr_assert_eq(r.status, 404, "deliveries of a deleted subscription: %ld %s", r.status, r.body);
    h_resp_free(&r);
    r = h_get(e, SUBS "/%s/deliveries/%s", x, dx);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(
        h_sql_int(e, "SELECT count(*) FROM event.deliveries WHERE subscription_id = $1", x), 0,
        "its deliveries are still there");
    cr_assert_eq(
        h_sql_int(e, "SELECT count(*) FROM event.delivery_attempts WHERE delivery_id = $1", dx), 0,
        "its attempts are still there");
    r = h_http(e->svc.port, "DELETE", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 404, "second DELETE: %ld %s", r.status, r.body);
    h_resp_free(&r);
    r = h_get(e, SUBS);
    cr_assert_eq(json_array_size(r.json), 1, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "0.subscription_id"), y);
    h_resp_free(&r);

    char *b = h_create(e, "{\"event_type\":\"del.b\"}");
    cr_assert(wr_wait_count(rcv, "/y", 2, 30000), "the other subscription got nothing");
    cr_assert_eq(deliveries_of_event(e, b), 1);
    cr_assert(H_WAIT(10000, h_deliveries_with_status(e, y, "delivered") == 2));
    cr_assert_eq(wr_count(rcv, "/x"), 1, "a deleted subscription got a delivery");
    free(a);
    free(b);
    free(dx);
    json_decref(sx);
    json_decref(sy);
    wr_stop_all(e, rcv);
}

/* The request on path whose body is event ev (a copy; caller frees with
 * wr_reqs_free(q, 1)), or NULL. */
static wr_req_t *request_for(wr_t *rcv, const char *path, const char *ev)
{
    wr_req_t *all = NULL, *one = NULL;
    int n = wr_requests(rcv, path, &all);
    for (int i = 0; i < n; i++)
        if (one == NULL && event_of(&all[i]) && strcmp(event_of(&all[i]), ev) == 0) {
            one = calloc(1, sizeof(*one));
            *one = all[i];
            memset(&all[i], 0, sizeof(all[i]));
        }
    wr_reqs_free(all, n);
    return one;
}

/* POST rotate-secret: the new secret is returned (when generated) and never
 * shown again; while the old one is in its grace period each delivery
 * carries two v1 signatures, one per secret, both valid; once the grace
 * period is over, only the new one signs. */
H_TEST(delivery, rotation_signs_with_both_secrets)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    char url[128], path[256];
    const char *old = "the original secret";
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"rot\",\"event_types\":[\"rot.*\"],"
                            "\"callback_url\":\"%s\",\"webhook_secret\":\"%s\"}",
                            wr_url(rcv, "/r", url, sizeof(url)), old);
    const char *sid = h_jstr(s, "subscription_id");
    cr_assert(h_jget(s, "webhook_secret") == NULL, "a client's secret was echoed");

    char *ev1 = h_create(e, "{\"event_type\":\"rot.one\"}");
    cr_assert(wr_wait_count(rcv, "/r", 1, 30000));
    wr_req_t *q = request_for(rcv, "/r", ev1);
    cr_assert(q != NULL);
    cr_assert_eq(wr_signature_count(q), 1, "%s", wr_header(q, "webhook-signature"));
    cr_assert(wr_verify(q, old));
    wr_reqs_free(q, 1);

    snprintf(path, sizeof(path), SUBS "/%s/rotate-secret", sid);
    h_resp_t r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    const char *fresh_s = h_jstr(r.json, "webhook_secret");
    cr_assert(fresh_s && strncmp(fresh_s, "whsec_", 6) == 0, "no new secret: %s", r.body);
    cr_assert(h_jstr(r.json, "previous_secret_valid_until") != NULL, "%s", r.body);
    char *fresh = strdup(fresh_s);
    h_resp_free(&r);
    r = h_get(e, SUBS "/%s", sid);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, fresh) == NULL && strstr(r.body, old) == NULL &&
                  strstr(r.body, "secret\"") == NULL,
              "GET shows a secret: %s", r.body);
    h_resp_free(&r);

    char *ev2 = h_create(e, "{\"event_type\":\"rot.two\"}");
    cr_assert(wr_wait_count(rcv, "/r", 2, 30000));
    q = request_for(rcv, "/r", ev2);
    cr_assert(q != NULL);
    cr_assert_eq(wr_signature_count(q), 2, "during the grace period: webhook-signature %s",
                 wr_header(q, "webhook-signature"));
    cr_assert(wr_verify(q, fresh), "the new secret does not verify: %s",
              wr_header(q, "webhook-signature"));
    cr_assert(wr_verify(q, old), "the old secret does not verify during its grace period");
    cr_assert(!wr_verify(q, "another secret"));
    wr_reqs_free(q, 1);

    /* A client-chosen secret: not echoed; the generated one becomes the old. */
    r = h_post(e, path, "{\"webhook_secret\":\"chosen by the client\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(h_jget(r.json, "webhook_secret") == NULL, "a client's secret was echoed: %s", r.body);
    h_resp_free(&r);
    char *ev3 = h_create(e, "{\"event_type\":\"rot.three\"}");
    cr_assert(wr_wait_count(rcv, "/r", 3, 30000));
    q = request_for(rcv, "/r", ev3);
    cr_assert(q != NULL);
    cr_assert_eq(wr_signature_count(q), 2, "%s", wr_header(q, "webhook-signature"));
    cr_assert(wr_verify(q, "chosen by the client"));
    cr_assert(wr_verify(q, fresh));
    cr_assert(!wr_verify(q, old), "a secret two rotations old still signs");
    wr_reqs_free(q, 1);

    /* The grace period over: one signature, the current secret's. */
    h_sql(e,
          "UPDATE event.event_subscriptions SET previous_secret_until = now() - "
          "interval '1 second' WHERE subscription_id = $1",
          sid);
    char *ev4 = h_create(e, "{\"event_type\":\"rot.four\"}");
    cr_assert(wr_wait_count(rcv, "/r", 4, 30000));
    q = request_for(rcv, "/r", ev4);
    cr_assert(q != NULL);
    cr_assert_eq(wr_signature_count(q), 1, "after the grace period: %s",
                 wr_header(q, "webhook-signature"));
    cr_assert(wr_verify(q, "chosen by the client"));
    cr_assert(!wr_verify(q, fresh));
    wr_reqs_free(q, 1);

    r = h_http(e->svc.port, "POST", SUBS "/no-such-subscription/rotate-secret", NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    free(fresh);
    free(ev1);
    free(ev2);
    free(ev3);
    free(ev4);
    json_decref(s);
    wr_stop_all(e, rcv);
}
