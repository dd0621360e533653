/* Projections: built from the stream on first read (state[event_type] =
 * data, the last one wins; version = the last stream_version), published as
 * event.projection.created, kept current by a "projection" processor,
 * rebuilt on demand, and untouched by appends refused for their
 * expected_version. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROJ "/api/v1/events/projections"

/* Appends an event of type with data (JSON text) to stream; returns its id. */
static char *append(h_env_t *e, const char *stream, const char *type, const char *data)
{
    return h_create(e, "{\"event_type\":\"%s\",\"stream_id\":\"%s\",\"data\":%s}", type, stream,
                    data);
}

static json_t *parse(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    cr_assert(j != NULL, "bad JSON in the test: %s", text);
    return j;
}

/* GET the projection (name NULL: the default); asserts 200. Caller decrefs. */
static json_t *get_projection(h_env_t *e, const char *type, const char *id, const char *name)
{
    return name ? h_get_json(e, PROJ "/%s/%s?name=%s", type, id, name)
                : h_get_json(e, PROJ "/%s/%s", type, id);
}

static json_t *rebuild(h_env_t *e, const char *type, const char *id)
{
    char path[300];
    snprintf(path, sizeof(path), PROJ "/%s/%s/rebuild", type, id);
    h_resp_t r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "POST %s -> %ld %s", path, r.status, r.body);
    json_t *j = json_incref(r.json);
    h_resp_free(&r);
    return j;
}

static void assert_state(const json_t *proj, const json_t *want)
{
    char *got_s = json_dumps(h_jget(proj, "state"), JSON_SORT_KEYS | JSON_COMPACT);
    char *want_s = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
    cr_assert(json_equal(h_jget(proj, "state"), (json_t *)want), "state %.600s\nexpected %.600s",
              got_s, want_s);
    free(got_s);
    free(want_s);
}

/* Messages now in the JetStream stream on subject. */
static int count_subject(h_env_t *e, const char *subject)
{
    h_msg_t *msgs = NULL;
    int n = h_js_snapshot(e, &msgs), count = 0;
    for (int i = 0; i < n; i++)
        count += strcmp(msgs[i].subject, subject) == 0;
    h_msgs_free(msgs, n > 0 ? n : 0);
    return count;
}

/* The projection's version in the table, -1 when there is none. */
static int64_t table_version(h_env_t *e, const char *type, const char *id, const char *name)
{
    return h_sql_int(e,
                     "SELECT coalesce((SELECT version FROM event.event_projections WHERE "
                     "entity_type = $1 AND entity_id = $2 AND projection_name = $3), -1)",
                     type, id, name);
}

static int64_t stream_version(h_env_t *e, const char *stream)
{
    return h_sql_int(e,
                     "SELECT coalesce((SELECT version FROM event.event_streams WHERE "
                     "stream_id = $1), 0)",
                     stream);
}

/* A sequence of events, then the first read: state holds the latest data of
 * each event type, version and last_event_id are the stream's last; the
 * creation is published once; a second read returns the same projection; a
 * named projection is a separate one; an unknown entity is 404. */
H_TEST(projection, built_on_first_read)
{
    h_env_t *e = h_setup(&(h_opts_t){.processors = 1}); /* the publisher runs there */
    h_svc_start(e);
    char *ids[4];
    ids[0] = append(e, "user:42", "user.created", "{\"name\":\"Ann\",\"plan\":\"free\"}");
    ids[1] = append(e, "user:42", "user.renamed", "{\"name\":\"Bea\"}");
    free(append(e, "user:43", "user.created", "{\"name\":\"Other\"}"));
    free(h_create(e, "{\"event_type\":\"user.renamed\",\"data\":{\"name\":\"no stream\"}}"));
    ids[2] = append(e, "user:42", "user.email_set", "{\"email\":\"b@example.com\"}");
    ids[3] = append(e, "user:42", "user.renamed", "{\"name\":\"Cid\",\"why\":[1,2]}");

    json_t *p = get_projection(e, "user", "42", NULL);
    json_t *want = parse("{\"user.created\":{\"name\":\"Ann\",\"plan\":\"free\"},"
                         "\"user.renamed\":{\"name\":\"Cid\",\"why\":[1,2]},"
                         "\"user.email_set\":{\"email\":\"b@example.com\"}}");
    assert_state(p, want);
    cr_assert_eq(h_jint(p, "version"), 4);
    cr_assert_str_eq(h_jstr(p, "last_event_id"), ids[3]);
    cr_assert_str_eq(h_jstr(p, "projection_name"), "default");
    cr_assert_str_eq(h_jstr(p, "entity_type"), "user");
    cr_assert_str_eq(h_jstr(p, "entity_id"), "42");
    cr_assert(h_jstr(p, "projection_id") != NULL && h_jstr(p, "created_at") != NULL &&
              h_jstr(p, "updated_at") != NULL);
    char *pid = strdup(h_jstr(p, "projection_id"));

    char msg_id[300];
    snprintf(msg_id, sizeof(msg_id), "projection.created:%s", pid);
    h_msg_t m;
    cr_assert(h_js_wait_msg(e, msg_id, 20000, &m), "no %s on JetStream within 20 s", msg_id);
    cr_assert_str_eq(m.subject, "event.projection.created");
    json_t *env = parse(m.data);
    cr_assert_str_eq(h_jstr(env, "data.projection_id"), pid, "%s", m.data);
    cr_assert_str_eq(h_jstr(env, "data.entity_type"), "user", "%s", m.data);
    cr_assert_str_eq(h_jstr(env, "data.entity_id"), "42", "%s", m.data);
    cr_assert_eq(h_jint(env, "data.version"), 4, "%s", m.data);
    json_decref(env);
    h_msg_clear(&m);

    /* Read again: the same projection, nothing new created or published. */
    json_t *again = get_projection(e, "user", "42", NULL);
    cr_assert_str_eq(h_jstr(again, "projection_id"), pid);
    cr_assert_eq(h_jint(again, "version"), 4);
    assert_state(again, want);
    json_decref(again);

    /* A named projection of the same entity is one of its own. */
    json_t *audit = get_projection(e, "user", "42", "audit");
    cr_assert_str_eq(h_jstr(audit, "projection_name"), "audit");
    cr_assert_str_neq(h_jstr(audit, "projection_id"), pid);
    cr_assert_eq(h_jint(audit, "version"), 4);
    assert_state(audit, want);
    snprintf(msg_id, sizeof(msg_id), "projection.created:%s", h_jstr(audit, "projection_id"));
    cr_assert(h_js_wait_msg(e, msg_id, 20000, NULL), "no %s on JetStream within 20 s", msg_id);
    json_decref(audit);
    /* The outbox publishes in order: by the time the second creation is in
     * the stream, a repeat of the first would be too. */
    cr_assert_eq(count_subject(e, "event.projection.created"), 2,
                 "event.projection.created published %d times for two projections",
                 count_subject(e, "event.projection.created"));
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.event_projections"), 2);

    /* Another entity's stream is its own. */
    json_t *other = get_projection(e, "user", "43", NULL);
    cr_assert_eq(h_jint(other, "version"), 1);
    json_t *created = json_object_get(h_jget(other, "state"), "user.created");
    cr_assert_str_eq(json_string_value(json_object_get(created, "name")), "Other");
    json_decref(other);

    /* No stream, no projection: 404, and no row. */
    h_resp_t r = h_get(e, PROJ "/user/999");
    cr_assert_eq(r.status, 404, "%s", r.body);
    cr_assert(h_jstr(r.json, "detail") != NULL, "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.event_projections WHERE entity_id = "
                              "'999'"),
                 0);
    r = h_get(e, PROJ "/user/42?name=");
    cr_assert_eq(r.status, 422, "an empty name: %ld %s", r.status, r.body);
    h_resp_free(&r);

    json_decref(want);
    json_decref(p);
    free(pid);
    for (int i = 0; i < 4; i++)
        free(ids[i]);
}

/* Without a projection processor a projection stays as it was built; the
 * rebuild recomputes it from the stream (also over a damaged row), keeps its
 * id and announces nothing; an entity without events is 404. */
H_TEST(projection, rebuild)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    free(append(e, "acct:7", "acct.opened", "{\"owner\":\"ann\"}"));
    free(append(e, "acct:7", "acct.credited", "{\"amount\":10}"));
    json_t *p = get_projection(e, "acct", "7", NULL);
    cr_assert_eq(h_jint(p, "version"), 2);
    char *pid = strdup(h_jstr(p, "projection_id"));
    json_decref(p);

    free(append(e, "acct:7", "acct.credited", "{\"amount\":25}"));
    char *last = append(e, "acct:7", "acct.frozen", "{\"by\":\"ops\"}");
    p = get_projection(e, "acct", "7", NULL);
    cr_assert_eq(h_jint(p, "version"), 2, "no projection processor: the read does not move it");
    json_decref(p);

    json_t *want = parse("{\"acct.opened\":{\"owner\":\"ann\"},\"acct.credited\":{\"amount\":25},"
                         "\"acct.frozen\":{\"by\":\"ops\"}}");
    p = rebuild(e, "acct", "7");
    cr_assert_eq(h_jint(p, "version"), 4);
    cr_assert_str_eq(h_jstr(p, "last_event_id"), last);
    cr_assert_str_eq(h_jstr(p, "projection_id"), pid, "the rebuild replaced the projection's id");
    assert_state(p, want);
    json_decref(p);
    p = get_projection(e, "acct", "7", NULL);
    cr_assert_eq(h_jint(p, "version"), 4);
    assert_state(p, want);
    json_decref(p);

    /* A damaged row is put right. */
    h_sql(e, "UPDATE event.event_projections SET state = '{\"junk\":true}', version = 99, "
             "last_event_id = 'nope' WHERE entity_id = '7'");
    p = rebuild(e, "acct", "7");
    cr_assert_eq(h_jint(p, "version"), 4);
    cr_assert_str_eq(h_jstr(p, "last_event_id"), last);
    assert_state(p, want);
    json_decref(p);

    /* Rebuilding a projection that does not exist yet creates it. */
    char path[200];
    snprintf(path, sizeof(path), PROJ "/acct/7/rebuild?name=fresh");
    h_resp_t r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "projection_name"), "fresh");
    cr_assert_eq(h_jint(r.json, "version"), 4);
    h_resp_free(&r);

    r = h_http(e->svc.port, "POST", PROJ "/acct/404/rebuild", NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 404, "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.event_projections"), 2);
    json_decref(want);
    free(pid);
    free(last);
}

/* The projection processor keeps a projection current as events are
 * processed, including one it never saw read (it creates it); a projection
 * of another name is left alone. */
H_TEST(projection, processor_keeps_it_current)
{
    /* One claim loop: events are processed one batch after the other (the
     * concurrent case is concurrent_processing_matches_the_stream). */
    h_env_t *e =
        h_setup(&(h_opts_t){.processors = 1, .extra_yaml = "processing:\n  concurrency: 1\n"});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"proj\",\"processor_type\":\"projection\","
                            "\"config\":{\"name\":\"default\"}}"));
    free(append(e, "cart:1", "cart.opened", "{\"n\":1}"));
    free(append(e, "cart:1", "cart.item_added", "{\"sku\":\"a\"}"));
    json_t *p = get_projection(e, "cart", "1", NULL);
    json_decref(p);
    json_t *other = get_projection(e, "cart", "1", "other");
    int64_t other_version = h_jint(other, "version");
    json_decref(other);

    free(append(e, "cart:1", "cart.item_added", "{\"sku\":\"b\"}"));
    free(append(e, "cart:1", "cart.coupon", "{\"code\":\"X\"}"));
    char *last = append(e, "cart:1", "cart.item_added", "{\"sku\":\"c\"}");
    free(append(e, "cart:2", "cart.opened", "{\"n\":2}"));
    cr_assert(H_WAIT(30000, table_version(e, "cart", "1", "default") == 5),
              "the projection is at version %lld, not 5, 30 s after the appends",
              (long long)table_version(e, "cart", "1", "default"));
    p = get_projection(e, "cart", "1", NULL);
    json_t *want = parse("{\"cart.opened\":{\"n\":1},\"cart.item_added\":{\"sku\":\"c\"},"
                         "\"cart.coupon\":{\"code\":\"X\"}}");
    assert_state(p, want);
    cr_assert_str_eq(h_jstr(p, "last_event_id"), last);
    json_decref(p);
    /* cart:2 was never read: the processor made its projection. */
    cr_assert(H_WAIT(30000, table_version(e, "cart", "2", "default") == 1));
    cr_assert_eq(table_version(e, "cart", "1", "other"), other_version,
                 "a projection of another name moved");
    json_decref(want);
    free(last);
}

/* A projection processor added to a stream that already has events: the
 * projection it makes when the next event comes holds the whole stream, as a
 * read would have built it, and its creation is announced. */
H_TEST(projection, processor_on_a_stream_with_history)
{
    h_env_t *e =
        h_setup(&(h_opts_t){.processors = 1, .extra_yaml = "processing:\n  concurrency: 1\n"});
    h_svc_start(e);
    char *first = append(e, "dev:9", "dev.registered", "{\"model\":\"x1\"}");
    free(append(e, "dev:9", "dev.configured", "{\"mode\":\"eco\"}"));
    cr_assert(H_WAIT(30000, h_sql_int(e, "SELECT count(*) FROM event.events WHERE status = "
                                         "'processed'") == 2),
              "the first events were not processed");
    free(h_add_processor(e, "{\"processor_name\":\"proj\",\"processor_type\":\"projection\","
                            "\"config\":{\"name\":\"default\"}}"));
    char *last = append(e, "dev:9", "dev.reading", "{\"t\":21}");
    cr_assert(H_WAIT(30000, table_version(e, "dev", "9", "default") == 3),
              "no projection at version 3 30 s after the append (version %lld)",
              (long long)table_version(e, "dev", "9", "default"));
    json_t *p = get_projection(e, "dev", "9", NULL);
    json_t *want = parse("{\"dev.registered\":{\"model\":\"x1\"},\"dev.configured\":"
                         "{\"mode\":\"eco\"},\"dev.reading\":{\"t\":21}}");
    cr_assert_str_eq(h_jstr(p, "last_event_id"), last);
    char msg_id[300];
    snprintf(msg_id, sizeof(msg_id), "projection.created:%s", h_jstr(p, "projection_id"));
    bool announced = h_js_wait_msg(e, msg_id, 15000, NULL);
    fprintf(stderr, "processor_on_a_stream_with_history: creation %s\n",
            announced ? "announced" : "NOT announced");
    assert_state(p, want);
    cr_assert(announced, "the projection the processor created was not announced (%s)", msg_id);
    json_decref(p);
    json_decref(want);
    free(first);
    free(last);
}

/* Appends refused for their expected_version never reach the projection;
 * of racing appends with the same expected_version, only the winner's data
 * is in it. */
H_TEST(projection, expected_version_conflicts)
{
    h_env_t *e = h_setup(&(h_opts_t){.processors = 1});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"proj\",\"processor_type\":\"projection\","
                            "\"config\":{\"name\":\"default\"}}"));
    free(h_create(e, "{\"event_type\":\"doc.created\",\"stream_id\":\"doc:1\","
                     "\"expected_version\":0,\"data\":{\"title\":\"a\"}}"));
    h_resp_t r = h_post(e, "/api/v1/events/create",
                        "{\"event_type\":\"doc.conflict\",\"stream_id\":\"doc:1\","
                        "\"expected_version\":0,\"data\":{\"bad\":1}}");
    cr_assert_eq(r.status, 409, "%s", r.body);
    h_resp_free(&r);
    r = h_post(e, "/api/v1/events/create",
               "{\"event_type\":\"doc.conflict\",\"stream_id\":\"doc:1\","
               "\"expected_version\":3,\"data\":{\"bad\":2}}");
    cr_assert_eq(r.status, 409, "%s", r.body);
    h_resp_free(&r);
    free(h_create(e, "{\"event_type\":\"doc.edited\",\"stream_id\":\"doc:1\","
                     "\"expected_version\":1,\"data\":{\"title\":\"b\"}}"));

    enum { RACERS = 12 };
    char *bodies[RACERS];
    h_resp_t out[RACERS];
    for (int i = 0; i < RACERS; i++)
        if (asprintf(&bodies[i],
                     "{\"event_type\":\"doc.edited\",\"stream_id\":\"doc:1\","
                     "\"expected_version\":2,\"data\":{\"title\":\"race %d\"}}",
                     i) < 0)
            cr_assert_fail("asprintf");
    h_http_multi(e->svc.port, RACERS, "POST", "/api/v1/events/create", (const char *const *)bodies,
                 out, 15000);
    int winner = -1, won = 0;
    for (int i = 0; i < RACERS; i++) {
        cr_assert(out[i].status == 201 || out[i].status == 409, "racer %d: %ld %s", i,
                  out[i].status, out[i].body);
        if (out[i].status == 201) {
            winner = i;
            won++;
        }
    }
    cr_assert_eq(won, 1, "%d racers won", won);
    char *win_id = strdup(h_jstr(out[winner].json, "event_id"));
    for (int i = 0; i < RACERS; i++) {
        h_resp_free(&out[i]);
        free(bodies[i]);
    }

    cr_assert(H_WAIT(30000, table_version(e, "doc", "1", "default") == 3),
              "the projection is at version %lld, not 3",
              (long long)table_version(e, "doc", "1", "default"));
    json_t *p = get_projection(e, "doc", "1", NULL);
    char want_s[200];
    snprintf(want_s, sizeof(want_s),
             "{\"doc.created\":{\"title\":\"a\"},\"doc.edited\":{\"title\":\"race %d\"}}", winner);
    json_t *want = parse(want_s);
    assert_state(p, want);
    cr_assert_str_eq(h_jstr(p, "last_event_id"), win_id);
    json_decref(p);
    p = rebuild(e, "doc", "1");
    assert_state(p, want);
    cr_assert_eq(h_jint(p, "version"), 3);
    json_decref(p);
    json_decref(want);
    free(win_id);
}

/* Creates n events on stream (types "step.<i>", data {"i": i}, so that every
 * event leaves its own key in the state) in batches of 100. */
static void append_steps(h_env_t *e, const char *stream, int from, int n)
{
    for (int done = 0; done < n;) {
        int k = n - done < 100 ? n - done : 100;
        size_t cap = 64 + (size_t)k * 120;
        char *body = malloc(cap);
        size_t len = (size_t)snprintf(body, cap, "{\"events\":[");
        for (int i = 0; i < k; i++) {
            int s = from + done + i;
            len += (size_t)snprintf(body + len, cap - len,
                                    "%s{\"event_type\":\"step.%d\",\"stream_id\":\"%s\","
                                    "\"data\":{\"i\":%d}}",
                                    i ? "," : "", s, stream, s);
        }
        snprintf(body + len, cap - len, "]}");
        h_resp_t r =
            h_http(e->svc.port, "POST", "/api/v1/events/batch", body, strlen(body), NULL, 30000);
        cr_assert_eq(r.status, 201, "batch: %ld %s", r.status, r.body);
        h_resp_free(&r);
        free(body);
        done += k;
    }
}

/* The state the stream's steps from..from+n-1 leave. */
static json_t *steps_state(int from, int n)
{
    json_t *want = json_object();
    for (int i = from; i < from + n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "step.%d", i);
        json_object_set_new(want, key, json_pack("{si}", "i", i));
    }
    return want;
}

/* Keys of want missing from the projection's state, for the message. */
static void missing_keys(const json_t *proj, const json_t *want, char *out, size_t cap)
{
    const char *key;
    json_t *v;
    size_t len = 0;
    int n = 0;
    out[0] = '\0';
    json_object_foreach((json_t *)want, key, v)
    {
        if (json_object_get(h_jget(proj, "state"), key) != NULL)
            continue;
        n++;
        if (len + 40 < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s%s", n > 1 ? " " : "", key);
    }
    if (len + 20 < cap)
        snprintf(out + len, cap - len, " (%d missing)", n);
}

/* kill -9 of the processor worker while a batch of the stream's events waits
 * on a slow webhook processor: once the lease runs out the batch runs again,
 * and the projection ends exactly where the stream is: its version is the
 * stream's, and its state holds every event once (the rebuild agrees). */
H_TEST(projection, processor_worker_killed_mid_batch)
{
    enum { N = 300, BATCH = 10 };
    h_recv_t *rcv = h_recv_start();
    h_recv_rule(rcv, "/slow", 200, 4000);
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1,
                                     .processors = 1,
                                     .extra_yaml = "processing:\n  interval_seconds: 1\n"
                                                   "  batch_size: 10\n  lease_seconds: 3\n"
                                                   "  concurrency: 1\n"});
    e->expect_worker_deaths = true;
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"proj\",\"processor_type\":\"projection\","
                            "\"priority\":10,\"config\":{\"name\":\"default\"}}"));
    free(h_add_processor(e,
                         "{\"processor_name\":\"slow\",\"processor_type\":\"webhook\","
                         "\"priority\":5,\"config\":{\"url\":\"http://127.0.0.1:%d/slow\"}}",
                         h_recv_port(rcv)));
    append_steps(e, "job:1", 0, N);
    cr_assert(H_WAIT(30000, h_recv_in_flight(rcv) >= 1),
              "no batch reached the slow webhook within 30 s");
    PGresult *res = h_sql(e, "SELECT claim, count(*) FROM event.processing_queue WHERE claim IS "
                             "NOT NULL AND run_at > now() GROUP BY claim LIMIT 1");
    cr_assert_eq(PQntuples(res), 1, "no claim is held while the webhook has a request in flight");
    pid_t victim = h_claim_pid(PQgetvalue(res, 0, 0));
    int claimed = atoi(PQgetvalue(res, 0, 1));
    PQclear(res);
    cr_assert(h_svc_is_worker(e, victim), "claim holder %d is not a worker of the master",
              (int)victim);
    cr_assert_eq(kill(victim, SIGKILL), 0);
    fprintf(stderr, "processor_worker_killed_mid_batch: killed %d holding %d events\n", (int)victim,
            claimed);
    h_recv_rule(rcv, "/slow", 200, 0); /* the rest goes quickly */

    cr_assert(H_WAIT(120000, h_sql_int(e, "SELECT count(*) FROM event.events WHERE status = "
                                          "'processed'") == N),
              "%lld of %d events processed within 120 s of the kill",
              (long long)h_sql_int(e, "SELECT count(*) FROM event.events WHERE status = "
                                      "'processed'"),
              N);
    cr_assert(h_svc_log_contains(e, "was killed by signal 9", 0), "the master did not log it");
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_results WHERE "
                              "processor_name = 'proj' AND status = 'success'"),
                 N, "the projection processor did not succeed exactly once per event");

    json_t *want = steps_state(0, N);
    json_t *p = get_projection(e, "job", "1", NULL);
    char missing[400];
    missing_keys(p, want, missing, sizeof(missing));
    cr_assert_eq(h_jint(p, "version"), stream_version(e, "job:1"),
                 "projection version %lld, stream version %lld", (long long)h_jint(p, "version"),
                 (long long)stream_version(e, "job:1"));
    cr_assert(json_equal(h_jget(p, "state"), want),
              "the projection kept by the processor lacks events of the stream: %s", missing);
    json_t *b = rebuild(e, "job", "1");
    cr_assert(json_equal(h_jget(b, "state"), want), "the rebuild lacks events");
    json_decref(b);
    json_decref(p);
    json_decref(want);
    h_recv_stop(rcv);
}

/* Two processor workers of two claim loops each, every event of four
 * streams: each projection ends at its stream's version with every event in
 * its state, as the rebuild has it. */
H_TEST(projection, concurrent_processing_matches_the_stream)
{
    enum { STREAMS = 4, PER = 250 };
    h_env_t *e = h_setup(&(h_opts_t){.processors = 2,
                                     .extra_yaml = "processing:\n  batch_size: 20\n"
                                                   "  concurrency: 2\n"});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"proj\",\"processor_type\":\"projection\","
                            "\"config\":{\"name\":\"default\"}}"));
    for (int round = 0; round < 5; round++)
        for (int s = 0; s < STREAMS; s++) {
            char stream[32];
            snprintf(stream, sizeof(stream), "lot:%d", s);
            append_steps(e, stream, round * (PER / 5), PER / 5);
        }
    cr_assert(H_WAIT(120000, h_sql_int(e, "SELECT count(*) FROM event.events WHERE status = "
                                          "'processed'") == STREAMS * PER),
              "not every event was processed within 120 s");
    json_t *want = steps_state(0, PER);
    for (int s = 0; s < STREAMS; s++) {
        char id[16], stream[32], missing[400];
        snprintf(id, sizeof(id), "%d", s);
        snprintf(stream, sizeof(stream), "lot:%d", s);
        json_t *p = get_projection(e, "lot", id, NULL);
        missing_keys(p, want, missing, sizeof(missing));
        cr_assert_eq(h_jint(p, "version"), stream_version(e, stream), "%s: version %lld", stream,
                     (long long)h_jint(p, "version"));
        cr_assert(json_equal(h_jget(p, "state"), want), "%s lacks events: %s", stream, missing);
        json_decref(p);
    }
    json_decref(want);
}
