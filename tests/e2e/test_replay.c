/* Replay (republish): by event ids, by stream, by time window with filters,
 * each checked on a NATS subscriber of event.replay.{target_service} (order,
 * Nats-Msg-Id "{replay_id}:{event_id}", the event JSON); the dry run;
 * progress, cancel and the 404/409/422 answers. */
#include "harness.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY "/api/v1/events/replay"
/* A replay worker, and a processor worker for the service's own
 * publications (event.replay.started/completed go out through its outbox). */
#define WITH_REPLAY "workers:\n  replay: 1\n"

/* POSTs a replay that must start (202); returns its replay_id. */
static char *start_replay(h_env_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *start_replay(h_env_t *e, const char *fmt, ...)
{
    char *body = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&body, fmt, ap) < 0)
        body = NULL;
    va_end(ap);
    h_resp_t r = h_http(e->svc.port, "POST", REPLAY, body, strlen(body), NULL, 0);
    cr_assert_eq(r.status, 202, "POST %s %s -> %ld %s", REPLAY, body, r.status, r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "replay_started", "%s", r.body);
    cr_assert(h_jstr(r.json, "replay_id") != NULL, "%s", r.body);
    char *id = strdup(h_jstr(r.json, "replay_id"));
    h_resp_free(&r);
    free(body);
    return id;
}

/* GET the replay's status (200 asserted); caller decrefs. */
static json_t *replay_status(h_env_t *e, const char *id)
{
    return h_get_json(e, REPLAY "/%s", id);
}

static bool finished(const json_t *j)
{
    const char *s = h_jstr(j, "status");
    return s &&
           (strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0);
}

/* Waits for the replay to end; asserts it completed; returns its status. */
static json_t *wait_completed(h_env_t *e, const char *id, int timeout_ms)
{
    json_t *j = NULL;
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        json_decref(j);
        j = replay_status(e, id);
        if (finished(j) || h_now_ms() > deadline)
            break;
        h_pause_ms(20);
    }
    char *text = json_dumps(j, JSON_COMPACT);
    cr_assert_str_eq(h_jstr(j, "status"), "completed", "replay %s: %s", id, text);
    free(text);
    return j;
}

/* Takes n messages from the subscription (up to timeout_ms in all). Returns
 * how many came; *out (caller frees with h_msgs_free) gets them in order. */
static int take(h_nc_t *c, int n, int timeout_ms, h_msg_t **out)
{
    *out = calloc((size_t)n + 1, sizeof(h_msg_t));
    int got = 0;
    int64_t deadline = h_now_ms() + timeout_ms;
    while (got < n) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0 || !h_nc_next(c, (int)left, &(*out)[got]))
            break;
        got++;
    }
    return got;
}

/* No message is waiting on the subscription right now (after a flush of the
 * server by a round trip of the test's own). */
static bool none_waiting(h_nc_t *c)
{
    h_msg_t m;
    if (h_nc_next(c, 200, &m)) {
        fprintf(stderr, "unexpected message on %s: %.200s\n", m.subject, m.data);
        h_msg_clear(&m);
        return false;
    }
    return true;
}

/* Checks one republished message: subject, Nats-Msg-Id, and that its data
 * is the stored event (as GET /events/{id} shows it). */
static void assert_republished(h_env_t *e, const h_msg_t *m, const char *subject,
                               const char *replay_id, const char *event_id)
{
    char want_id[200];
    snprintf(want_id, sizeof(want_id), "%s:%s", replay_id, event_id);
    cr_assert_str_eq(m->subject, subject);
    cr_assert(m->msg_id != NULL, "no Nats-Msg-Id on the message of %s", event_id);
    cr_assert_str_eq(m->msg_id, want_id, "Nats-Msg-Id %s, expected %s", m->msg_id, want_id);
    json_t *got = json_loads(m->data, 0, NULL);
    cr_assert(got != NULL, "the data is not JSON: %.200s", m->data);
    h_resp_t r = h_get(e, "/api/v1/events/%s", event_id);
    cr_assert_eq(r.status, 200);
    static const char *const keys[] = {"event_id",       "event_type", "event_source",
                                       "event_category", "user_id",    "data",
                                       "metadata",       "stream_id",  "stream_version",
                                       "timestamp",      "created_at", "schema_version"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *a = json_object_get(got, keys[i]), *b = json_object_get(r.json, keys[i]);
        char *as = a ? json_dumps(a, JSON_ENCODE_ANY) : NULL;
        char *bs = b ? json_dumps(b, JSON_ENCODE_ANY) : NULL;
        cr_assert(a != NULL && json_equal(a, b), "%s: %s in the message, %s stored", keys[i],
                  as ? as : "(absent)", bs ? bs : "(absent)");
        free(as);
        free(bs);
    }
    h_resp_free(&r);
    json_decref(got);
}

/* The service's own publication with Nats-Msg-Id id (waits); caller decrefs
 * the envelope. */
static json_t *publication(h_env_t *e, const char *subject, const char *kind, const char *rid)
{
    char id[200];
    snprintf(id, sizeof(id), "%s:%s", kind, rid);
    h_msg_t m;
    cr_assert(h_js_wait_msg(e, id, 20000, &m), "no %s on JetStream within 20 s", id);
    cr_assert_str_eq(m.subject, subject);
    json_t *env = json_loads(m.data, 0, NULL);
    cr_assert(env != NULL);
    cr_assert_str_eq(h_jstr(env, "data.replay_id"), rid, "%s", m.data);
    h_msg_clear(&m);
    return env;
}

static int64_t jobs(h_env_t *e)
{
    return h_sql_int(e, "SELECT count(*) FROM event.replay_jobs");
}

/* By event ids: only the named events that exist, in global position order
 * (not the order of the request), each with its id and JSON; the status says
 * completed with the counts and times; event.replay.started and
 * event.replay.completed are published; a cancel now is 409. */
H_TEST(replay, by_event_ids)
{
    h_env_t *e = h_start(1, WITH_REPLAY);
    char *ids[6];
    for (int i = 0; i < 6; i++)
        ids[i] = h_create(e,
                          "{\"event_type\":\"inv.t%d\",\"user_id\":\"u%d\",\"data\":{\"i\":%d},"
                          "\"metadata\":{\"m\":\"x\"}}",
                          i, i % 2, i);
    h_nc_t *sub = h_nc_open(e);
    cr_assert(h_nc_subscribe(sub, "event.replay.billing"));
    char *rid = start_replay(e,
                             "{\"event_ids\":[\"%s\",\"%s\",\"no-such-event\",\"%s\"],"
                             "\"target_service\":\"billing\"}",
                             ids[4], ids[1], ids[3]);
    json_t *st = wait_completed(e, rid, 30000);
    cr_assert_eq(h_jint(st, "total"), 3);
    cr_assert_eq(h_jint(st, "replayed"), 3);
    cr_assert_eq(h_jint(st, "failed"), 0);
    cr_assert_str_eq(h_jstr(st, "mode"), "republish");
    cr_assert_str_eq(h_jstr(st, "target_service"), "billing");
    cr_assert_str_eq(h_jstr(st, "replay_id"), rid);
    cr_assert(h_jstr(st, "created_at") && h_jstr(st, "started_at") && h_jstr(st, "finished_at"),
              "times missing");
    json_decref(st);

    h_msg_t *msgs;
    int n = take(sub, 3, 20000, &msgs);
    cr_assert_eq(n, 3, "%d of 3 messages on event.replay.billing", n);
    const int order[3] = {1, 3, 4};
    for (int i = 0; i < 3; i++)
        assert_republished(e, &msgs[i], "event.replay.billing", rid, ids[order[i]]);
    h_msgs_free(msgs, 3);
    cr_assert(none_waiting(sub), "more than the 3 events were republished");

    json_t *env = publication(e, "event.replay.started", "replay.started", rid);
    json_decref(env);
    env = publication(e, "event.replay.completed", "replay.completed", rid);
    cr_assert_str_eq(h_jstr(env, "data.status"), "completed");
    cr_assert_eq(h_jint(env, "data.replayed"), 3);
    json_decref(env);

    char path[200];
    snprintf(path, sizeof(path), REPLAY "/%s/cancel", rid);
    h_resp_t r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 409, "cancel of a completed replay: %ld %s", r.status, r.body);
    cr_assert(h_jstr(r.json, "detail") != NULL, "%s", r.body);
    h_resp_free(&r);
    st = replay_status(e, rid);
    cr_assert_str_eq(h_jstr(st, "status"), "completed");
    json_decref(st);
    h_nc_close(sub);
    free(rid);
    for (int i = 0; i < 6; i++)
        free(ids[i]);
}

/* By stream: the stream's events in stream_version order, nothing of the
 * streams around it. */
H_TEST(replay, by_stream)
{
    h_env_t *e = h_start(1, WITH_REPLAY);
    char *mine[5];
    int k = 0;
    for (int i = 0; i < 12; i++) {
        if (i % 3 == 1)
            free(h_create(e, "{\"event_type\":\"order.noise\",\"stream_id\":\"order:2\"}"));
        else if (i % 3 == 2)
            free(h_create(e, "{\"event_type\":\"order.loose\"}"));
        else if (k < 5) {
            mine[k] = h_create(e,
                               "{\"event_type\":\"order.step\",\"stream_id\":\"order:1\","
                               "\"data\":{\"k\":%d}}",
                               k);
            k++;
        }
    }
    cr_assert_eq(k, 4);
    mine[4] = h_create(e, "{\"event_type\":\"order.closed\",\"entity_type\":\"order\","
                          "\"entity_id\":\"1\"}");
    h_nc_t *sub = h_nc_open(e);
    cr_assert(h_nc_subscribe(sub, "event.replay.shipping"));
    char *rid = start_replay(e, "{\"stream_id\":\"order:1\",\"target_service\":\"shipping\"}");
    json_t *st = wait_completed(e, rid, 30000);
    cr_assert_eq(h_jint(st, "total"), 5);
    cr_assert_eq(h_jint(st, "replayed"), 5);
    json_decref(st);
    h_msg_t *msgs;
    int n = take(sub, 5, 20000, &msgs);
    cr_assert_eq(n, 5, "%d of 5 messages", n);
    for (int i = 0; i < 5; i++) {
        assert_republished(e, &msgs[i], "event.replay.shipping", rid, mine[i]);
        json_t *ev = json_loads(msgs[i].data, 0, NULL);
        cr_assert_eq(h_jint(ev, "stream_version"), i + 1);
        json_decref(ev);
    }
    h_msgs_free(msgs, 5);
    cr_assert(none_waiting(sub));

    /* An unknown stream replays nothing, and completes. */
    char *empty = start_replay(e, "{\"stream_id\":\"order:404\",\"target_service\":\"shipping\"}");
    st = wait_completed(e, empty, 30000);
    cr_assert_eq(h_jint(st, "total"), 0);
    cr_assert_eq(h_jint(st, "replayed"), 0);
    json_decref(st);
    cr_assert(none_waiting(sub));
    h_nc_close(sub);
    free(rid);
    free(empty);
    for (int i = 0; i < 5; i++)
        free(mine[i]);
}

/* Events at minute i of a morning, created out of timestamp order. */
#define WINDOW_N 10
static const int window_order[WINDOW_N] = {7, 2, 9, 0, 4, 6, 1, 8, 3, 5};

/* By time window (bounds included), with the query filters: the matching
 * events in global position order (creation order here, not timestamp
 * order), as the dry run lists them too. */
H_TEST(replay, by_time_window_with_filters)
{
    h_env_t *e = h_start(1, WITH_REPLAY);
    char *ids[WINDOW_N]; /* by minute */
    for (int k = 0; k < WINDOW_N; k++) {
        int i = window_order[k];
        ids[i] = h_create(e,
                          "{\"event_type\":\"%s\",\"user_id\":\"%s\",\"event_source\":\"%s\","
                          "\"timestamp\":\"2025-03-01T10:%02d:00Z\",\"data\":{\"minute\":%d}}",
                          i % 3 == 0 ? "page.viewed" : "cart.updated", i % 2 ? "u1" : "u2",
                          i < 5 ? "frontend" : "backend", i, i);
    }
    free(h_create(e, "{\"event_type\":\"cart.updated\",\"user_id\":\"u1\","
                     "\"timestamp\":\"2025-03-01T11:00:00Z\"}"));
    h_nc_t *sub = h_nc_open(e);
    cr_assert(h_nc_subscribe(sub, "event.replay.window"));

    /* No filter; user u1 (odd minutes); cart.updated (minute % 3 != 0) from
     * the backend (minutes 5..9). */
    static const char *const filters[] = {
        "",
        ",\"user_id\":\"u1\"",
        ",\"event_type\":\"cart.updated\",\"event_source\":\"backend\"",
    };
    for (size_t c = 0; c < sizeof(filters) / sizeof(filters[0]); c++) {
        /* Window 10:02..10:07 inclusive. */
        bool want[WINDOW_N] = {false};
        int nwant = 0;
        for (int i = 2; i <= 7; i++) {
            bool ok = c == 0 || (c == 1 && i % 2 == 1) || (c == 2 && i % 3 != 0 && i >= 5);
            want[i] = ok;
            nwant += ok;
        }
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"start_time\":\"2025-03-01T10:02:00Z\",\"end_time\":\"2025-03-01T10:07:00Z\""
                 "%s,\"target_service\":\"window\"",
                 filters[c]);
        /* The dry run names the same events in the same order. */
        char dry[600];
        snprintf(dry, sizeof(dry), "%s,\"dry_run\":true}", body);
        h_resp_t r = h_http(e->svc.port, "POST", REPLAY, dry, strlen(dry), NULL, 0);
        cr_assert_eq(r.status, 200, "%s -> %ld %s", dry, r.status, r.body);
        cr_assert_eq(h_jint(r.json, "events_count"), nwant, "%s: %s", dry, r.body);
        json_t *dry_ids = json_incref(h_jget(r.json, "events"));
        h_resp_free(&r);
        cr_assert_eq(json_array_size(dry_ids), (size_t)nwant);

        char *rid = start_replay(e, "%s}", body);
        json_t *st = wait_completed(e, rid, 30000);
        cr_assert_eq(h_jint(st, "total"), nwant, "case %zu", c);
        json_decref(st);
        h_msg_t *msgs;
        int n = take(sub, nwant, 20000, &msgs);
        cr_assert_eq(n, nwant, "case %zu: %d of %d messages", c, n, nwant);
        int at = 0;
        for (int k = 0; k < WINDOW_N; k++) { /* creation order = position order */
            int i = window_order[k];
            if (!want[i])
                continue;
            assert_republished(e, &msgs[at], "event.replay.window", rid, ids[i]);
            cr_assert_str_eq(json_string_value(json_array_get(dry_ids, (size_t)at)), ids[i],
                             "case %zu: the dry run's event %d", c, at);
            at++;
        }
        h_msgs_free(msgs, n);
        cr_assert(none_waiting(sub), "case %zu replayed more than it should", c);
        json_decref(dry_ids);
        free(rid);
    }
    h_nc_close(sub);
    for (int i = 0; i < WINDOW_N; i++)
        free(ids[i]);
}

/* A dry run answers what would be replayed and does nothing else: no job,
 * no message, no publication. */
H_TEST(replay, dry_run_writes_and_publishes_nothing)
{
    h_env_t *e = h_start(1, WITH_REPLAY);
    char *ids[5];
    for (int i = 0; i < 5; i++)
        ids[i] = h_create(e, "{\"event_type\":\"dry.e\",\"stream_id\":\"dry:1\"}");
    h_nc_t *sub = h_nc_open(e);
    cr_assert(h_nc_subscribe(sub, "event.replay.dry"));

    h_resp_t r = h_post(e, REPLAY,
                        "{\"event_ids\":[\"%s\",\"%s\",\"%s\"],\"dry_run\":true,"
                        "\"target_service\":\"dry\"}",
                        ids[3], ids[0], ids[2]);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(h_jget(r.json, "dry_run")), "%s", r.body);
    cr_assert_eq(h_jint(r.json, "events_count"), 3, "%s", r.body);
    json_t *listed = h_jget(r.json, "events");
    cr_assert_eq(json_array_size(listed), 3, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_array_get(listed, 0)), ids[0]);
    cr_assert_str_eq(json_string_value(json_array_get(listed, 1)), ids[2]);
    cr_assert_str_eq(json_string_value(json_array_get(listed, 2)), ids[3]);
    cr_assert(h_jstr(r.json, "replay_id") == NULL, "a dry run has no replay: %s", r.body);
    h_resp_free(&r);
    r = h_post(e, REPLAY, "{\"stream_id\":\"dry:1\",\"dry_run\":true,\"target_service\":\"dry\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "events_count"), 5, "%s", r.body);
    h_resp_free(&r);
    r = h_post(e, REPLAY,
               "{\"start_time\":\"2000-01-01T00:00:00Z\",\"end_time\":\"2100-01-01T00:00:00Z\","
               "\"dry_run\":true,\"mode\":\"reprocess\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "events_count"), 5, "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(jobs(e), 0, "a dry run wrote a replay job");

    /* A real replay after it: the first message on the subject is the real
     * replay's, and the only replay publications are its own. */
    char *rid = start_replay(e, "{\"event_ids\":[\"%s\"],\"target_service\":\"dry\"}", ids[1]);
    json_t *st = wait_completed(e, rid, 30000);
    json_decref(st);
    h_msg_t m;
    cr_assert(h_nc_next(sub, 20000, &m), "the real replay's message did not come");
    cr_assert_str_eq(m.subject, "event.replay.dry");
    cr_assert(m.msg_id && strncmp(m.msg_id, rid, strlen(rid)) == 0,
              "the first message is not the real replay's: %s", m.msg_id);
    h_msg_clear(&m);
    cr_assert(none_waiting(sub));
    json_decref(publication(e, "event.replay.completed", "replay.completed", rid));
    h_msg_t *all = NULL;
    int n = h_js_snapshot(e, &all);
    for (int i = 0; i < n; i++)
        if (strncmp(all[i].subject, "event.replay.", 13) == 0)
            cr_assert(all[i].msg_id && strstr(all[i].msg_id, rid) != NULL,
                      "a publication not of the real replay: %s %s", all[i].subject,
                      all[i].msg_id ? all[i].msg_id : "");
    h_msgs_free(all, n > 0 ? n : 0);
    cr_assert_eq(jobs(e), 1);
    h_nc_close(sub);
    free(rid);
    for (int i = 0; i < 5; i++)
        free(ids[i]);
}

/* Bad requests: 400 for malformed JSON, 422 naming the field for the rest,
 * and nothing written; 404 for an unknown replay (status and cancel). */
H_TEST(replay, validation)
{
    h_env_t *e = h_start(0, NULL);
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{}", NULL},
        {"{\"target_service\":\"x\"}", NULL},
        {"{\"event_ids\":[\"a\"],\"stream_id\":\"s:1\"}", NULL},
        {"{\"stream_id\":\"s:1\",\"start_time\":\"2025-01-01T00:00:00Z\","
         "\"end_time\":\"2025-01-02T00:00:00Z\"}",
         NULL},
        {"{\"event_ids\":[\"a\"],\"start_time\":\"2025-01-01T00:00:00Z\","
         "\"end_time\":\"2025-01-02T00:00:00Z\"}",
         NULL},
        {"{\"start_time\":\"2025-01-02T00:00:00Z\",\"end_time\":\"2025-01-01T00:00:00Z\"}",
         "end_time"},
        {"{\"start_time\":\"2025-01-02T00:00:00Z\"}", "end_time"},
        {"{\"end_time\":\"2025-01-02T00:00:00Z\"}", "start_time"},
        {"{\"start_time\":\"yesterday\",\"end_time\":\"2025-01-02T00:00:00Z\"}", "start_time"},
        {"{\"stream_id\":\"s:1\",\"mode\":\"explode\"}", "mode"},
        {"{\"stream_id\":\"s:1\",\"mode\":\"redeliver\"}", "subscription_id"},
        {"{\"stream_id\":\"s:1\",\"mode\":\"redeliver\",\"subscription_id\":\"nope\"}",
         "subscription_id"},
        {"{\"event_ids\":[]}", "event_ids"},
        {"{\"event_ids\":\"a\"}", "event_ids"},
        {"{\"event_ids\":[\"a\",7]}", "event_ids"},
        {"{\"stream_id\":7}", "stream_id"},
        {"{\"stream_id\":\"s:1\",\"dry_run\":\"yes\"}", "dry_run"},
        {"{\"stream_id\":\"s:1\",\"target_service\":\"\"}", "target_service"},
        {"{\"stream_id\":\"s:1\",\"target_service\":\"started\"}", "target_service"},
        {"{\"stream_id\":\"s:1\",\"target_service\":\"completed\"}", "target_service"},
        {"[]", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        h_resp_t r = h_post(e, REPLAY, "%s", cases[i].body);
        cr_assert_eq(r.status, 422, "%s -> %ld %s", cases[i].body, r.status, r.body);
        const char *detail = h_jstr(r.json, "detail");
        cr_assert(detail != NULL, "%s: no detail string: %s", cases[i].body, r.body);
        if (cases[i].field)
            cr_assert(strstr(detail, cases[i].field) != NULL, "%s: detail \"%s\" does not name %s",
                      cases[i].body, detail, cases[i].field);
        h_resp_free(&r);
    }
    h_resp_t r = h_post(e, REPLAY, "%s", "{\"stream_id\":");
    cr_assert_eq(r.status, 400, "malformed JSON: %ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(jobs(e), 0, "a refused request wrote a job");

    r = h_get(e, REPLAY "/00000000-0000-4000-8000-000000000000");
    cr_assert_eq(r.status, 404, "%s", r.body);
    cr_assert(h_jstr(r.json, "detail") != NULL, "%s", r.body);
    h_resp_free(&r);
    r = h_http(e->svc.port, "POST", REPLAY "/no-such-replay/cancel", NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 404, "%s", r.body);
    h_resp_free(&r);
    r = h_get(e, REPLAY);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_array(h_jget(r.json, "replays")), "%s", r.body);
    cr_assert_eq(json_array_size(h_jget(r.json, "replays")), 0, "%s", r.body);
    h_resp_free(&r);
}

/* With no replay worker a job stays pending (its status says so); cancelled,
 * it is never run, even once a replay worker comes; a second cancel is 409. */
H_TEST(replay, cancel_pending)
{
    h_env_t *e = h_start(1, NULL); /* no replay worker yet */
    char *id = h_create(e, "{\"event_type\":\"c.e\"}");
    char *rid = start_replay(e, "{\"event_ids\":[\"%s\"],\"target_service\":\"late\"}", id);
    json_t *st = replay_status(e, rid);
    cr_assert_str_eq(h_jstr(st, "status"), "pending");
    cr_assert_eq(h_jint(st, "replayed"), 0);
    cr_assert(json_is_null(h_jget(st, "started_at")), "a pending replay has started_at");
    cr_assert(json_is_null(h_jget(st, "finished_at")));
    json_decref(st);

    char path[200];
    snprintf(path, sizeof(path), REPLAY "/%s/cancel", rid);
    h_resp_t r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "cancelled", "%s", r.body);
    cr_assert(h_jstr(r.json, "finished_at") != NULL, "%s", r.body);
    h_resp_free(&r);
    r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 409, "second cancel: %ld %s", r.status, r.body);
    h_resp_free(&r);

    /* Now with a replay worker: a later replay runs, the cancelled one not. */
    cr_assert(h_svc_stop(e, SIGTERM, 20000));
    e->opts.extra_yaml = WITH_REPLAY;
    h_svc_write_config(e);
    h_svc_start(e);
    h_nc_t *sub = h_nc_open(e);
    cr_assert(h_nc_subscribe(sub, "event.replay.late"));
    char *next = start_replay(e, "{\"event_ids\":[\"%s\"],\"target_service\":\"late\"}", id);
    json_decref(wait_completed(e, next, 30000));
    h_msg_t m;
    cr_assert(h_nc_next(sub, 20000, &m));
    cr_assert(m.msg_id && strncmp(m.msg_id, next, strlen(next)) == 0, "message %s", m.msg_id);
    h_msg_clear(&m);
    cr_assert(none_waiting(sub));
    st = replay_status(e, rid);
    cr_assert_str_eq(h_jstr(st, "status"), "cancelled");
    cr_assert(json_is_null(h_jget(st, "started_at")), "the cancelled replay was started");
    json_decref(st);
    h_nc_close(sub);
    free(id);
    free(rid);
    free(next);
}

/* Progress of a long replay (total fixed at once, replayed only growing),
 * then a cancel while it runs: it stops where it was, and stays cancelled;
 * the worker goes on to the next job. The worker is held (SIGSTOP) while the
 * cancel is made so that the replay cannot end first. */
H_TEST(replay, progress_and_cancel_running)
{
    enum { N = 20000 };
    h_env_t *e = h_start(0, "workers:\n  replay: 1\nreplay:\n  page_size: 20\n");
    h_preload_events(e, N);
    char *rid = start_replay(e, "{\"start_time\":\"2024-12-31T00:00:00Z\","
                                "\"end_time\":\"2025-12-31T00:00:00Z\",\"target_service\":\"p\"}");
    int64_t last = -1, total = -1;
    int samples = 0;
    int64_t deadline = h_now_ms() + 60000;
    while (h_now_ms() < deadline && samples < 5) {
        json_t *st = replay_status(e, rid);
        int64_t replayed = h_jint(st, "replayed");
        if (!json_is_null(h_jget(st, "total"))) {
            if (total < 0)
                total = h_jint(st, "total");
            cr_assert_eq(h_jint(st, "total"), total, "the total changed");
        }
        cr_assert(replayed >= last, "replayed went back from %lld to %lld", (long long)last,
                  (long long)replayed);
        cr_assert_str_neq(h_jstr(st, "status"), "completed",
                          "the replay of %d events ended before the test could watch it", N);
        if (replayed > last && replayed > 0) {
            samples++;
            last = replayed;
        }
        json_decref(st);
        h_pause_ms(5);
    }
    cr_assert_eq(samples, 5, "progress seen %d times in 60 s", samples);
    cr_assert_eq(total, N);

    PGresult *res = h_sql(e, "SELECT claim FROM event.replay_jobs WHERE replay_id = $1", rid);
    pid_t worker = h_claim_pid(PQgetvalue(res, 0, 0));
    PQclear(res);
    cr_assert(worker > 0);
    cr_assert_eq(kill(worker, SIGSTOP), 0);
    json_t *st = replay_status(e, rid);
    int64_t at_cancel = h_jint(st, "replayed");
    cr_assert_str_eq(h_jstr(st, "status"), "running");
    cr_assert(at_cancel < N);
    json_decref(st);
    char path[200];
    snprintf(path, sizeof(path), REPLAY "/%s/cancel", rid);
    h_resp_t r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    kill(worker, SIGCONT);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "cancelled", "%s", r.body);
    h_resp_free(&r);
    cr_assert(H_WAIT(20000, h_svc_log_contains(e, "stopped: cancelled", 0)),
              "the worker did not notice the cancel");
    st = replay_status(e, rid);
    cr_assert_str_eq(h_jstr(st, "status"), "cancelled");
    cr_assert_eq(h_jint(st, "replayed"), at_cancel, "progress after the cancel");
    json_decref(st);
    r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 409, "%s", r.body);
    h_resp_free(&r);

    char *next = start_replay(e, "{\"event_ids\":[\"pre-0000001\"],\"target_service\":\"p\"}");
    json_decref(wait_completed(e, next, 30000));
    st = replay_status(e, rid);
    cr_assert_str_eq(h_jstr(st, "status"), "cancelled");
    cr_assert_eq(h_jint(st, "replayed"), at_cancel);
    json_decref(st);
    free(rid);
    free(next);
}

/* With NATS disabled a republish can never happen: the job fails at once,
 * saying why, instead of running (and holding a replay worker) forever. */
H_TEST(replay, republish_without_nats_fails)
{
    h_env_t *e = h_setup(&(h_opts_t){.no_nats = true, .extra_yaml = WITH_REPLAY});
    h_svc_start(e);
    char *id = h_create(e, "{\"event_type\":\"inv.nonats\"}");
    char *rid = start_replay(e, "{\"event_ids\":[\"%s\"],\"target_service\":\"billing\"}", id);
    json_t *j = NULL;
    cr_assert(H_WAIT(30000, (json_decref(j), j = replay_status(e, rid), finished(j))),
              "the replay did not end within 30 s");
    cr_assert_str_eq(h_jstr(j, "status"), "failed");
    cr_assert(strstr(h_jstr(j, "error") ? h_jstr(j, "error") : "", "NATS") != NULL,
              "the error does not name NATS");
    json_decref(j);
    free(rid);
    free(id);
}
