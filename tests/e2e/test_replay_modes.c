/* Replay modes other than republish: reprocess (the events go through the
 * processors again, even those that already succeeded) and redeliver (the
 * events are delivered to one subscription again, or for the first time). */
#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY "/api/v1/events/replay"

static char *post_id(h_env_t *e, const char *path, long want, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* POSTs the body (printf format) to path, asserts the status and returns the
 * string at key of the answer. */
static char *post_id(h_env_t *e, const char *path, long want, const char *key, const char *fmt, ...)
{
    char *body = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&body, fmt, ap) < 0)
        body = NULL;
    va_end(ap);
    h_resp_t r = h_http(e->svc.port, "POST", path, body, strlen(body), NULL, 0);
    cr_assert_eq(r.status, want, "POST %s %s -> %ld %s", path, body, r.status, r.body);
    cr_assert(h_jstr(r.json, key) != NULL, "no %s in %s", key, r.body);
    char *v = strdup(h_jstr(r.json, key));
    h_resp_free(&r);
    free(body);
    return v;
}

static const char *replay_state(h_env_t *e, const char *id, char *out, size_t cap)
{
    h_resp_t r = h_get(e, REPLAY "/%s", id);
    cr_assert_eq(r.status, 200, "%s", r.body);
    snprintf(out, cap, "%s", h_jstr(r.json, "status") ? h_jstr(r.json, "status") : "?");
    h_resp_free(&r);
    return out;
}

/* Waits for the replay to complete (asserted); returns its total. */
static int64_t wait_completed(h_env_t *e, const char *id)
{
    char st[32];
    cr_assert(H_WAIT(30000, strcmp(replay_state(e, id, st, sizeof(st)), "completed") == 0 ||
                                strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0),
              "replay %s still %s after 30 s", id, st);
    h_resp_t r = h_get(e, REPLAY "/%s", id);
    cr_assert_str_eq(h_jstr(r.json, "status"), "completed", "%s", r.body);
    cr_assert_eq(h_jint(r.json, "replayed"), h_jint(r.json, "total"), "%s", r.body);
    int64_t total = h_jint(r.json, "total");
    h_resp_free(&r);
    return total;
}

/* Reprocess: the named events go back through the processors (a processor
 * that succeeded runs again) and end processed; the others are untouched;
 * nothing is republished. */
H_TEST(replay_modes, reprocess)
{
    h_env_t *e = h_setup(&(h_opts_t){.processors = 1, .extra_yaml = "workers:\n  replay: 1\n"});
    h_svc_start(e);
    free(post_id(e, "/api/v1/events/processors", 201, "processor_id",
                 "{\"processor_name\":\"stamp\",\"processor_type\":\"noop\"}"));
    char *ids[5];
    for (int i = 0; i < 5; i++)
        ids[i] =
            h_create(e, "{\"event_type\":\"re.e\",\"stream_id\":\"re:1\",\"data\":{\"i\":%d}}", i);
    for (int i = 0; i < 5; i++)
        cr_assert(H_WAIT(30000, h_event_status_is(e, ids[i], "processed") &&
                                    h_processing_results(e, ids[i], "stamp", "success") == 1),
                  "event %d was not processed once", i);
    int64_t stored_before = h_sql_int(e, "SELECT count(*) FROM event.events");

    char *rid = post_id(e, REPLAY, 202, "replay_id",
                        "{\"event_ids\":[\"%s\",\"%s\",\"%s\"],\"mode\":\"reprocess\"}", ids[3],
                        ids[0], ids[1]);
    cr_assert_eq(wait_completed(e, rid), 3);
    const int again[3] = {0, 1, 3};
    for (int k = 0; k < 3; k++)
        cr_assert(H_WAIT(30000, h_processing_results(e, ids[again[k]], "stamp", "success") == 2 &&
                                    h_event_status_is(e, ids[again[k]], "processed")),
                  "event %d: %lld successes of stamp after the reprocess", again[k],
                  (long long)h_processing_results(e, ids[again[k]], "stamp", "success"));
    cr_assert_eq(h_processing_results(e, ids[2], "stamp", "success"), 1,
                 "an event not named was reprocessed");
    cr_assert_eq(h_processing_results(e, ids[4], "stamp", "success"), 1,
                 "an event not named was reprocessed");

    /* By stream: all five once more. */
    char *rid2 =
        post_id(e, REPLAY, 202, "replay_id", "{\"stream_id\":\"re:1\",\"mode\":\"reprocess\"}");
    cr_assert_eq(wait_completed(e, rid2), 5);
    for (int i = 0; i < 5; i++) {
        int64_t want = (i == 0 || i == 1 || i == 3) ? 3 : 2;
        cr_assert(H_WAIT(30000, h_processing_results(e, ids[i], "stamp", "success") == want &&
                                    h_event_status_is(e, ids[i], "processed")),
                  "event %d: %lld successes, expected %lld", i,
                  (long long)h_processing_results(e, ids[i], "stamp", "success"), (long long)want);
    }
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), 0);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), stored_before,
                 "reprocessing stored events");
    /* Statistics still count each event once, as processed. */
    h_resp_t r = h_get(e, "/api/v1/events/statistics");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "total_events"), 5, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "processed_events"), 5, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "pending_events"), 0, "%s", r.body);
    h_resp_free(&r);
    h_msg_t *msgs = NULL;
    int n = h_js_snapshot(e, &msgs);
    for (int i = 0; i < n; i++)
        cr_assert(strncmp(msgs[i].subject, "event.replay.", 13) != 0 ||
                      strcmp(msgs[i].subject, "event.replay.started") == 0 ||
                      strcmp(msgs[i].subject, "event.replay.completed") == 0,
                  "a reprocess republished on %s", msgs[i].subject);
    h_msgs_free(msgs, n > 0 ? n : 0);
    free(rid);
    free(rid2);
    for (int i = 0; i < 5; i++)
        free(ids[i]);
}

/* The receiver's requests for event id. */
static int received(h_recv_t *rcv, const char *id)
{
    h_recv_req_t *reqs = NULL;
    int n = h_recv_reqs(rcv, &reqs), count = 0;
    for (int i = 0; i < n; i++) {
        const char *eid = h_jstr(reqs[i].json, "event_id");
        count += eid && strcmp(eid, id) == 0 && reqs[i].status == 200;
    }
    h_recv_reqs_free(reqs, n);
    return count;
}

/* Redeliver to a subscription: events stored before it existed get their
 * first delivery, events delivered already one more; all end delivered. */
H_TEST(replay_modes, redeliver)
{
    h_recv_t *rcv = h_recv_start();
    h_env_t *e = h_setup(&(h_opts_t){.processors = 1,
                                     .extra_yaml = "workers:\n  replay: 1\n"
                                                   "delivery:\n  allow_private: true\n"});
    h_svc_start(e);
    char *ids[5];
    for (int i = 0; i < 3; i++)
        ids[i] = h_create(e, "{\"event_type\":\"inv.created\",\"data\":{\"i\":%d}}", i);
    for (int i = 0; i < 3; i++)
        cr_assert(H_WAIT(30000, h_event_status_is(e, ids[i], "processed")));
    char *sub = post_id(e, "/api/v1/events/subscriptions", 201, "subscription_id",
                        "{\"subscriber_name\":\"books\",\"event_types\":[\"inv.*\"],"
                        "\"callback_url\":\"http://127.0.0.1:%d/hook\"}",
                        h_recv_port(rcv));
    for (int i = 3; i < 5; i++)
        ids[i] = h_create(e, "{\"event_type\":\"inv.created\",\"data\":{\"i\":%d}}", i);
    for (int i = 3; i < 5; i++)
        cr_assert(H_WAIT(30000, received(rcv, ids[i]) == 1), "event %d not delivered once", i);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(received(rcv, ids[i]), 0,
                     "event %d, older than the subscription, was "
                     "delivered",
                     i);

    char *rid = post_id(e, REPLAY, 202, "replay_id",
                        "{\"event_ids\":[\"%s\",\"%s\",\"%s\",\"%s\",\"%s\"],\"mode\":"
                        "\"redeliver\",\"subscription_id\":\"%s\"}",
                        ids[0], ids[1], ids[2], ids[3], ids[4], sub);
    cr_assert_eq(wait_completed(e, rid), 5);
    for (int i = 0; i < 5; i++)
        cr_assert(H_WAIT(30000, received(rcv, ids[i]) == (i < 3 ? 1 : 2)),
                  "event %d received %d times, expected %d", i, received(rcv, ids[i]),
                  i < 3 ? 1 : 2);
    cr_assert(H_WAIT(30000, h_sql_int(e,
                                      "SELECT count(*) FROM event.deliveries WHERE "
                                      "subscription_id = $1 AND status = 'delivered'",
                                      sub) == 5),
              "not every delivery of the subscription ended delivered");
    cr_assert_eq(
        h_sql_int(e, "SELECT count(*) FROM event.deliveries WHERE subscription_id = $1", sub), 5,
        "one delivery row per event and subscription");
    free(rid);
    free(sub);
    for (int i = 0; i < 5; i++)
        free(ids[i]);
    h_recv_stop(rcv);
}
