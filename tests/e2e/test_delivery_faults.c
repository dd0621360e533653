/* Deliveries under adverse conditions: a callback host name that resolves
 * to an internal address (refused at delivery time unless
 * delivery.allow_private), a processor worker killed while deliveries are
 * in flight (each still arrives, repeats with the same webhook-id), and the
 * event.subscription.created publication, also across a NATS outage. */
#include "harness.h"
#include "receiver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SUBS "/api/v1/events/subscriptions"

/* This machine's host name when every address it resolves to is on the
 * loopback network (so a receiver on 127.0.0.1 is reached through it);
 * false otherwise. */
static bool loopback_hostname(char *out, size_t cap)
{
    char name[256] = "";
    if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0' ||
        strcmp(name, "localhost") == 0)
        return false;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(name, NULL, &hints, &res) != 0 || res == NULL)
        return false;
    bool all_loopback = true;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            uint32_t v = ntohl(((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr);
            all_loopback = all_loopback && (v >> 24) == 127;
        } else if (a->ai_family == AF_INET6) {
            all_loopback = all_loopback &&
                           IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr);
        }
    }
    freeaddrinfo(res);
    snprintf(out, cap, "%s", name);
    return all_loopback;
}

/* delivery.allow_private off: a subscription whose host name resolves to
 * 127.0.0.1 is accepted (creation only refuses literal addresses), but the
 * delivery is refused after DNS: the attempt says why, nothing reaches the
 * receiver. With allow_private on (restart), the same delivery resent and a
 * new event are delivered. */
H_TEST(delivery_faults, ssrf_hostname_resolving_to_loopback)
{
    char host[256];
    if (!loopback_hostname(host, sizeof(host)))
        cr_skip_test("this machine's host name (%s) does not resolve to loopback addresses only; "
                     "no name to test the refusal after DNS with",
                     host);
    h_env_t *e = h_setup(&(h_opts_t){.processors = 1});
    h_svc_start(e);
    wr_t *rcv = wr_start();
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"ssrf\",\"event_types\":[\"ssrf.*\"],"
                            "\"callback_url\":\"http://%s:%d/ssrf\",\"retry_policy\":"
                            "{\"max_retries\":0}}",
                            host, wr_port(rcv));
    const char *sid = h_jstr(s, "subscription_id");
    const char *secret = h_jstr(s, "webhook_secret");
    char *ev = h_create(e, "{\"event_type\":\"ssrf.probe\"}");
    cr_assert(H_WAIT(30000, h_deliveries_with_status(e, sid, "dead") +
                                    h_deliveries_with_status(e, sid, "delivered") ==
                                1),
              "the delivery to %s (loopback) did not end within 30 s", host);
    cr_assert_eq(h_deliveries_with_status(e, sid, "dead"), 1,
                 "a delivery to %s (resolving to loopback) was not refused (%d requests reached "
                 "the receiver)",
                 host, wr_count(rcv, NULL));
    PGresult *pr =
        h_sql(e, "SELECT delivery_id FROM event.deliveries WHERE subscription_id = $1", sid);
    char *did = strdup(PQgetvalue(pr, 0, 0));
    PQclear(pr);
    h_resp_t r = h_get(e, SUBS "/%s/deliveries/%s", sid, did);
    cr_assert_eq(r.status, 200, "%s", r.body);
    const char *err = h_jstr(r.json, "attempt_log.0.error");
    cr_assert(err && strstr(err, "internal address"),
              "the attempt's error does not say the target is internal: %s", r.body);
    cr_assert(json_is_null(h_jget(r.json, "attempt_log.0.status_code")), "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(wr_count(rcv, NULL), 0, "a refused delivery reached the receiver");

    /* allow_private on: the same subscription works. */
    cr_assert(h_svc_stop(e, SIGTERM, 20000));
    e->opts.extra_yaml = "delivery:\n  allow_private: true\n";
    h_svc_write_config(e);
    h_svc_start(e);
    char path[256];
    snprintf(path, sizeof(path), SUBS "/%s/deliveries/%s/resend", sid, did);
    r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert(wr_wait_count(rcv, "/ssrf", 1, 30000), "not delivered with allow_private on");
    char *ev2 = h_create(e, "{\"event_type\":\"ssrf.allowed\"}");
    cr_assert(wr_wait_count(rcv, "/ssrf", 2, 30000), "a new event not delivered");
    cr_assert(H_WAIT(15000, h_deliveries_with_status(e, sid, "delivered") == 2));
    wr_req_t *q = NULL;
    int n = wr_requests(rcv, "/ssrf", &q);
    cr_assert_str_eq(wr_header(&q[0], "webhook-id"), did);
    cr_assert_str_eq(h_jstr(q[0].json, "event_id"), ev);
    cr_assert(wr_verify(&q[0], secret));
    cr_assert_str_eq(h_jstr(q[1].json, "event_id"), ev2);
    const char *h = wr_header(&q[0], "host");
    cr_assert(h && strncmp(h, host, strlen(host)) == 0, "Host: %s", h ? h : "(none)");
    wr_reqs_free(q, n);
    free(did);
    free(ev);
    free(ev2);
    json_decref(s);
    wr_stop_all(e, rcv);
}

/* Deliveries in flight per worker (claim token "host:pid:dN"): the pid of
 * the worker holding the most, or 0. */
static pid_t busiest_sender(h_env_t *e, int64_t *held)
{
    PGresult *r = h_sql(e, "SELECT claim, count(*) FROM event.deliveries WHERE claim IS NOT NULL "
                           "AND status IN ('pending', 'failed') GROUP BY claim "
                           "ORDER BY 2 DESC LIMIT 1");
    pid_t pid = 0;
    *held = 0;
    if (PQntuples(r) == 1) {
        const char *claim = PQgetvalue(r, 0, 0);
        const char *colon = strchr(claim, ':');
        pid = colon ? (pid_t)strtol(colon + 1, NULL, 10) : 0;
        *held = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    return pid;
}

typedef struct {
    int in_flight;
} in_flight_arg_t;

static bool enough_in_flight(const wr_req_t *reqs, int n, void *arg)
{
    in_flight_arg_t *a = arg;
    int k = 0;
    for (int i = 0; i < n; i++)
        k += reqs[i].answered_ms == 0;
    return k >= a->in_flight;
}

/* kill -9 of the processor worker that holds deliveries in flight to a
 * slow endpoint (2 s): every delivery still arrives at least once and ends
 * delivered; the repeats carry the same webhook-id (the delivery_id), so
 * the receiver can deduplicate. */
H_TEST(delivery_faults, processor_killed_while_delivering)
{
    enum { N = 30 };
    h_env_t *e = h_setup(&(h_opts_t){.processors = 2,
                                     .extra_yaml = "delivery:\n  allow_private: true\n"
                                                   "  timeout_ms: 5000\n  lease_seconds: 10\n"});
    e->expect_worker_deaths = true;
    h_svc_start(e);
    wr_t *rcv = wr_start();
    wr_default(rcv, "/slow", (wr_answer_t){.delay_ms = 2000});
    char url[128];
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"slow\",\"event_types\":[\"kill.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":5,"
                            "\"backoff_seconds\":[1]}}",
                            wr_url(rcv, "/slow", url, sizeof(url)));
    const char *sid = h_jstr(s, "subscription_id");
    char body[8192] = "{\"events\":[";
    for (int i = 0; i < N; i++)
        snprintf(body + strlen(body), sizeof(body) - strlen(body), "%s{\"event_type\":\"kill.%d\"}",
                 i ? "," : "", i);
    strcat(body, "]}");
    h_resp_t r = h_post(e, "/api/v1/events/batch", "%s", body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);

    in_flight_arg_t want = {5};
    cr_assert(wr_wait_for(rcv, 30000, enough_in_flight, &want),
              "fewer than 5 deliveries in flight within 30 s");
    int64_t held = 0;
    pid_t victim = 0;
    cr_assert(H_WAIT(10000, (victim = busiest_sender(e, &held)) > 0), "no claimed deliveries");
    cr_assert(h_svc_is_worker(e, victim), "claim holder %d is not a worker of the service",
              (int)victim);
    int before = wr_count(rcv, "/slow");
    fprintf(stderr,
            "processor_killed_while_delivering: killing %d, which holds %lld deliveries; "
            "%d requests so far\n",
            (int)victim, (long long)held, before);
    cr_assert_eq(kill(victim, SIGKILL), 0);

    cr_assert(H_WAIT(90000, h_deliveries_with_status(e, sid, "delivered") == N),
              "%lld of %d deliveries delivered within 90 s of the kill",
              (long long)h_deliveries_with_status(e, sid, "delivered"), N);
    cr_assert(h_svc_log_contains(e, "was killed by signal 9", 0),
              "the master did not see the kill");

    PGresult *pr = h_sql(e,
                         "SELECT event_id, delivery_id, attempts FROM event.deliveries WHERE "
                         "subscription_id = $1",
                         sid);
    cr_assert_eq(PQntuples(pr), N);
    wr_req_t *q = NULL;
    int n = wr_requests(rcv, "/slow", &q);
    int repeated = 0, retried_in_db = 0;
    for (int i = 0; i < PQntuples(pr); i++) {
        const char *ev = PQgetvalue(pr, i, 0), *did = PQgetvalue(pr, i, 1);
        retried_in_db += atoi(PQgetvalue(pr, i, 2)) > 1;
        int arrivals = 0;
        for (int k = 0; k < n; k++) {
            const char *qev = h_jstr(q[k].json, "event_id");
            if (qev == NULL || strcmp(qev, ev) != 0)
                continue;
            arrivals++;
            cr_assert_str_eq(wr_header(&q[k], "webhook-id"), did,
                             "event %s arrived with webhook-id %s, its delivery is %s", ev,
                             wr_header(&q[k], "webhook-id"), did);
        }
        cr_assert(arrivals >= 1, "event %s never arrived", ev);
        repeated += arrivals > 1;
    }
    fprintf(stderr,
            "processor_killed_while_delivering: %d requests for %d deliveries; %d arrived more "
            "than once; %d attempted more than once\n",
            n, N, repeated, retried_in_db);
    cr_assert(repeated >= 1,
              "no delivery arrived twice: the killed worker had nothing in flight, so the test "
              "proved nothing");
    for (int k = 0; k < n; k++) {
        bool known = false;
        for (int i = 0; i < PQntuples(pr) && !known; i++)
            known = strcmp(wr_header(&q[k], "webhook-id"), PQgetvalue(pr, i, 1)) == 0;
        cr_assert(known, "request %d carries an unknown webhook-id %s", k,
                  wr_header(&q[k], "webhook-id"));
    }
    wr_reqs_free(q, n);
    PQclear(pr);
    json_decref(s);
    wr_stop_all(e, rcv);
}

/* How many messages in the stream carry msg_id. */
static int copies_of(h_env_t *e, const char *msg_id)
{
    h_msg_t *all = NULL;
    int n = h_js_snapshot(e, &all), copies = 0;
    for (int i = 0; i < n; i++)
        copies += all[i].msg_id && strcmp(all[i].msg_id, msg_id) == 0;
    h_msgs_free(all, n > 0 ? n : 0);
    return copies;
}

/* Checks the event.subscription.created message of subscription sid. */
static void assert_created_message(h_env_t *e, const char *sid, const char *name,
                                   const char *secret, int timeout_ms)
{
    char msg_id[300];
    snprintf(msg_id, sizeof(msg_id), "subscription.created:%s", sid);
    h_msg_t m;
    memset(&m, 0, sizeof(m));
    cr_assert(h_js_wait_msg(e, msg_id, timeout_ms, &m),
              "no event.subscription.created for %s within %d ms", sid, timeout_ms);
    cr_assert_str_eq(m.subject, "event.subscription.created");
    json_t *env = json_loads(m.data, 0, NULL);
    cr_assert(env != NULL, "not JSON: %s", m.data);
    cr_assert_str_eq(h_jstr(env, "type"), "event.subscription.created", "%s", m.data);
    cr_assert_str_eq(h_jstr(env, "data.subscription_id"), sid, "%s", m.data);
    cr_assert_str_eq(h_jstr(env, "data.subscriber_name"), name, "%s", m.data);
    cr_assert(h_jget(env, "data.event_types") != NULL, "%s", m.data);
    cr_assert(strstr(m.data, "secret") == NULL, "the publication carries a secret field: %s",
              m.data);
    if (secret)
        cr_assert(strstr(m.data, secret + (strncmp(secret, "whsec_", 6) == 0 ? 6 : 0)) == NULL,
                  "the publication carries the secret: %s", m.data);
    json_decref(env);
    h_msg_clear(&m);
    cr_assert_eq(copies_of(e, msg_id), 1, "published %d times", copies_of(e, msg_id));
}

/* event.subscription.created is published on JetStream once per
 * subscription, without its secret; one created while nats-server is down
 * is published once it is back. */
H_TEST(delivery_faults, subscription_created_published_also_after_nats_outage)
{
    h_env_t *e = h_setup(&(h_opts_t){.processors = 1});
    h_svc_start(e);
    json_t *a = h_subscribe(e, "{\"subscriber_name\":\"pub-a\",\"event_types\":[\"a.*\"],"
                               "\"callback_url\":\"https://a.example.com/hook\"}");
    assert_created_message(e, h_jstr(a, "subscription_id"), "pub-a", h_jstr(a, "webhook_secret"),
                           20000);

    h_nats_stop(&e->nats, SIGKILL);
    const char *body_b = "{\"subscriber_name\":\"pub-b\",\"event_types\":[\"b.*\"],"
                         "\"callback_url\":\"https://b.example.com/hook\","
                         "\"webhook_secret\":\"b-secret-value\"}";
    h_resp_t r = h_http(e->svc.port, "POST", SUBS, body_b, strlen(body_b), NULL, 10000);
    cr_assert_eq(r.status, 201, "create while NATS is down: %ld %s %s", r.status, r.body, r.error);
    cr_assert(r.seconds < 5.0, "the create took %.3f s while NATS was down", r.seconds);
    char *b = strdup(h_jstr(r.json, "subscription_id"));
    h_resp_free(&r);
    h_nats_start(&e->nats);
    assert_created_message(e, b, "pub-b", "b-secret-value", 45000);
    char msg_id[300];
    snprintf(msg_id, sizeof(msg_id), "subscription.created:%s", h_jstr(a, "subscription_id"));
    cr_assert_eq(copies_of(e, msg_id), 1, "the first publication was repeated");
    free(b);
    json_decref(a);
}
