/* POST /api/v1/events/create, GET /api/v1/events/{id}, the event.stored
 * publication and client-supplied event_ids. */
#include "harness.h"

#include "common/timeutil.h"

#include <pthread.h>
#include <string.h>

static bool is_empty_object(const json_t *v)
{
    return json_is_object(v) && json_object_size(v) == 0;
}

static bool is_time(const char *s)
{
    int64_t us;
    return s != NULL && es_time_parse(s, strlen(s), &us);
}

/* A minimal event gets 201 and the seed's defaults, is stored with a row in
 * the processing queue, and reads back identically by id. */
H_TEST(create, defaults_stored_and_readable)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_post(e, "/api/v1/events/create", "{\"event_type\":\"user.created\"}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *ev = r.json;
    const char *id = h_jstr(ev, "event_id");
    cr_assert(h_is_uuid(id), "event_id %s is not a UUID", id ? id : "(none)");
    cr_assert_str_eq(h_jstr(ev, "event_type"), "user.created");
    cr_assert_str_eq(h_jstr(ev, "event_source"), "backend", "%s", r.body);
    cr_assert_str_eq(h_jstr(ev, "event_category"), "user_action", "%s", r.body);
    cr_assert_str_eq(h_jstr(ev, "status"), "pending", "%s", r.body);
    cr_assert(is_empty_object(h_jget(ev, "data")), "%s", r.body);
    cr_assert(is_empty_object(h_jget(ev, "metadata")), "%s", r.body);
    cr_assert(is_empty_object(h_jget(ev, "context")), "%s", r.body);
    cr_assert(is_empty_object(h_jget(ev, "properties")), "%s", r.body);
    cr_assert(json_is_null(h_jget(ev, "user_id")), "%s", r.body);
    cr_assert(json_is_null(h_jget(ev, "processed_at")), "%s", r.body);
    cr_assert_eq(h_jint(ev, "retry_count"), 0, "%s", r.body);
    cr_assert_str_eq(h_jstr(ev, "schema_version"), "1.0.0", "%s", r.body);
    cr_assert(is_time(h_jstr(ev, "timestamp")), "%s", r.body);
    cr_assert(is_time(h_jstr(ev, "created_at")), "%s", r.body);
    cr_assert(json_is_null(h_jget(ev, "stream_id")), "%s", r.body);

    cr_assert_eq(h_sql_int(e,
                           "SELECT count(*) FROM event.events WHERE event_id = $1 AND "
                           "event_type = 'user.created' AND status = 'pending'",
                           id),
                 1);
    cr_assert_eq(
        h_sql_int(e, "SELECT count(*) FROM event.processing_queue WHERE event_id = $1", id), 1);

    h_resp_t g = h_get(e, "/api/v1/events/%s", id);
    cr_assert_eq(g.status, 200, "%s", g.body);
    cr_assert(json_equal(g.json, ev), "GET differs from the create answer:\n%s\n%s", g.body,
              r.body);
    h_resp_free(&g);
    h_resp_free(&r);
}

/* Every field the client sends comes back as sent, and is what is stored. */
H_TEST(create, all_fields_round_trip)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_post(e, "/api/v1/events/create",
                        "{\"event_type\":\"button.clicked\",\"event_source\":\"frontend\","
                        "\"event_category\":\"click\",\"user_id\":\"u-1\",\"session_id\":\"s-1\","
                        "\"organization_id\":\"o-1\",\"device_id\":\"d-1\","
                        "\"correlation_id\":\"c-1\",\"data\":{\"button\":\"buy\",\"n\":3},"
                        "\"metadata\":{\"m\":true},\"context\":{\"page\":\"/cart\"},"
                        "\"properties\":{\"p\":[1,2]},\"timestamp\":\"2025-06-01T12:00:00Z\"}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *ev = r.json;
    cr_assert_str_eq(h_jstr(ev, "event_source"), "frontend");
    cr_assert_str_eq(h_jstr(ev, "event_category"), "click");
    cr_assert_str_eq(h_jstr(ev, "user_id"), "u-1");
    cr_assert_str_eq(h_jstr(ev, "session_id"), "s-1");
    cr_assert_str_eq(h_jstr(ev, "organization_id"), "o-1");
    cr_assert_str_eq(h_jstr(ev, "device_id"), "d-1");
    cr_assert_str_eq(h_jstr(ev, "correlation_id"), "c-1");
    cr_assert_str_eq(h_jstr(ev, "data.button"), "buy");
    cr_assert_eq(h_jint(ev, "data.n"), 3);
    cr_assert(json_is_true(h_jget(ev, "metadata.m")), "%s", r.body);
    cr_assert_str_eq(h_jstr(ev, "context.page"), "/cart");
    cr_assert_eq(h_jint(ev, "properties.p.1"), 2);
    int64_t us = 0;
    const char *ts = h_jstr(ev, "timestamp");
    cr_assert(ts && es_time_parse(ts, strlen(ts), &us), "%s", r.body);
    cr_assert_eq(us, 1748779200LL * 1000000, "timestamp %s", ts);
    const char *id = h_jstr(ev, "event_id");
    cr_assert_eq(h_sql_int(e,
                           "SELECT count(*) FROM event.events WHERE event_id = $1 AND "
                           "user_id = 'u-1' AND data->>'button' = 'buy' AND "
                           "timestamp = '2025-06-01T12:00:00Z' AND event_source = 'frontend'",
                           id),
                 1);
    h_resp_free(&r);
}

/* An id that does not exist: 404 with detail "Event not found: <id>". */
H_TEST(create, unknown_id_is_404)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    const char *id = "7d3c1f0e-0000-4000-8000-000000000000";
    h_resp_t r = h_get(e, "/api/v1/events/%s", id);
    cr_assert_eq(r.status, 404, "%s", r.body);
    char want[128];
    snprintf(want, sizeof(want), "Event not found: %s", id);
    cr_assert_str_eq(h_jstr(r.json, "detail"), want, "%s", r.body);
    h_resp_free(&r);
}

/* A stored event is published once on JetStream as event.stored, with
 * Nats-Msg-Id = event_id and the event_id in the message's data. */
H_TEST(create, event_stored_published)
{
    h_env_t *e = h_setup(&(h_opts_t){.processors = 1});
    h_svc_start(e);
    char *id = h_create(e, "{\"event_type\":\"order.placed\",\"user_id\":\"u-9\"}");
    h_msg_t m;
    cr_assert(h_js_wait_msg(e, id, 10000, &m), "no message with Nats-Msg-Id %s within 10 s", id);
    cr_assert_str_eq(m.subject, "event.stored");
    json_t *doc = json_loads(m.data, 0, NULL);
    cr_assert(doc != NULL, "message data is not JSON: %s", m.data);
    cr_assert_str_eq(h_jstr(doc, "type"), "event.stored", "%s", m.data);
    cr_assert_str_eq(h_jstr(doc, "data.event_id"), id, "%s", m.data);
    cr_assert_str_eq(h_jstr(doc, "data.event_type"), "order.placed", "%s", m.data);
    cr_assert_str_eq(h_jstr(doc, "data.user_id"), "u-9", "%s", m.data);
    json_decref(doc);
    h_msg_clear(&m);

    h_msg_t *all = NULL;
    int n = h_js_snapshot(e, &all);
    int same = 0;
    for (int i = 0; i < n; i++)
        same += all[i].msg_id && strcmp(all[i].msg_id, id) == 0;
    cr_assert_eq(same, 1, "%d messages carry Nats-Msg-Id %s", same, id);
    h_msgs_free(all, n);
    free(id);
}

/* A client-supplied event_id is idempotent: the same content again answers
 * 200 with the stored event (key order does not matter) and writes nothing;
 * different content under that id is 409 and changes nothing. */
H_TEST(create, client_event_id_idempotent)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    const char *body = "{\"event_id\":\"client-42\",\"event_type\":\"x.y\",\"data\":{\"a\":1}}";
    h_resp_t first = h_post(e, "/api/v1/events/create", "%s", body);
    cr_assert_eq(first.status, 201, "%s", first.body);
    cr_assert_str_eq(h_jstr(first.json, "event_id"), "client-42");

    h_resp_t again = h_post(e, "/api/v1/events/create", "%s", body);
    cr_assert_eq(again.status, 200, "repeat answered %ld %s", again.status, again.body);
    cr_assert(json_equal(again.json, first.json), "repeat answer differs:\n%s\n%s", again.body,
              first.body);
    h_resp_t reordered = h_post(e, "/api/v1/events/create",
                                "{\"data\":{\"a\":1},\"event_type\":\"x.y\","
                                "\"event_id\":\"client-42\"}");
    cr_assert_eq(reordered.status, 200, "%s", reordered.body);

    h_resp_t other =
        h_post(e, "/api/v1/events/create",
               "{\"event_id\":\"client-42\",\"event_type\":\"x.y\",\"data\":{\"a\":2}}");
    cr_assert_eq(other.status, 409, "different content answered %ld %s", other.status, other.body);
    cr_assert(h_jstr(other.json, "detail") != NULL, "%s", other.body);

    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 1);
    cr_assert_eq(h_sql_int(e, "SELECT (data->>'a')::int FROM event.events "
                              "WHERE event_id = 'client-42'"),
                 1);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), 1);
    h_resp_free(&first);
    h_resp_free(&again);
    h_resp_free(&reordered);
    h_resp_free(&other);
}

typedef struct {
    h_env_t *e;
    h_resp_t out[20];
} burst_t;

static void *send_burst(void *arg)
{
    burst_t *b = arg;
    const char *bodies[20];
    for (int i = 0; i < 20; i++)
        bodies[i] = "{\"event_id\":\"dup-1\",\"event_type\":\"x.dup\"}";
    h_http_multi(b->e->svc.port, 20, "POST", "/api/v1/events/create", bodies, b->out, 30000);
    return NULL;
}

/* Backends of the service waiting on a row lock. */
static int64_t lock_waiters(h_env_t *e)
{
    return h_sql_int(e, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock'");
}

/* The same client event_id sent by many clients at once is stored once: one
 * 201, every other answer 200, one row. To make both API workers write it at
 * the same moment, a transaction of the test holds the id (an uncommitted row)
 * until both workers wait on it, then rolls back. */
H_TEST(create, client_event_id_concurrent_repeats)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    PGconn *holder = PQconnectdb(e->dburl);
    cr_assert(PQstatus(holder) == CONNECTION_OK, "%s", PQerrorMessage(holder));
    PGresult *res = PQexec(holder, "BEGIN; INSERT INTO event.events (event_id, event_type, "
                                   "event_source, event_category) VALUES ('dup-1', 'x.dup', "
                                   "'backend', 'user_action')");
    cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    burst_t b = {.e = e};
    pthread_t th;
    pthread_create(&th, NULL, send_burst, &b);
    bool both = H_WAIT(15000, lock_waiters(e) >= 2);
    PQclear(PQexec(holder, "ROLLBACK"));
    PQfinish(holder);
    pthread_join(th, NULL);
    cr_assert(both, "the two API workers did not both wait on the event_id");
    int created = 0, repeated = 0;
    for (int i = 0; i < 20; i++) {
        created += b.out[i].status == 201;
        repeated += b.out[i].status == 200;
        cr_assert(b.out[i].status == 200 || b.out[i].status == 201, "answer %d: %ld %s %s", i,
                  b.out[i].status, b.out[i].body, b.out[i].error);
        h_resp_free(&b.out[i]);
    }
    cr_assert_eq(created, 1, "%d answers were 201", created);
    cr_assert_eq(repeated, 19);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 1);
}

/* SPEC 10: an Idempotency-Key header makes a create idempotent like a
 * client event_id: the same key and content again answer 200 with the
 * stored event and write nothing; the same key with other content is 409. */
H_TEST(create, idempotency_key_header)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    const char *hdr[] = {"Idempotency-Key: order-77-attempt", NULL};
    const char *body = "{\"event_type\":\"order.placed\",\"data\":{\"order\":77}}";
    h_resp_t first =
        h_http(e->svc.port, "POST", "/api/v1/events/create", body, strlen(body), hdr, 0);
    cr_assert_eq(first.status, 201, "%s", first.body);
    h_resp_t again =
        h_http(e->svc.port, "POST", "/api/v1/events/create", body, strlen(body), hdr, 0);
    cr_assert_eq(again.status, 200, "a repeat with the same Idempotency-Key answered %ld %s",
                 again.status, again.body);
    cr_assert_str_eq(h_jstr(again.json, "event_id"), h_jstr(first.json, "event_id"));
    const char *other = "{\"event_type\":\"order.placed\",\"data\":{\"order\":78}}";
    h_resp_t conflict =
        h_http(e->svc.port, "POST", "/api/v1/events/create", other, strlen(other), hdr, 0);
    cr_assert_eq(conflict.status, 409, "other content under the same key answered %ld %s",
                 conflict.status, conflict.body);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 1);
    h_resp_free(&first);
    h_resp_free(&again);
    h_resp_free(&conflict);
}

/* A W3C traceparent header is kept in the event's context, and its trace id
 * becomes the correlation_id when the client gave none. */
H_TEST(create, traceparent_kept)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    char hdr_line[128];
    snprintf(hdr_line, sizeof(hdr_line), "traceparent: %s", tp);
    const char *hdr[] = {hdr_line, NULL};
    const char *body = "{\"event_type\":\"traced\",\"context\":{\"page\":\"/\"}}";
    h_resp_t r = h_http(e->svc.port, "POST", "/api/v1/events/create", body, strlen(body), hdr, 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "context.traceparent"), tp, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "context.page"), "/", "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "correlation_id"), "4bf92f3577b34da6a3ce929d0e0e4736", "%s",
                     r.body);
    h_resp_free(&r);
    body = "{\"event_type\":\"traced\",\"correlation_id\":\"mine\"}";
    r = h_http(e->svc.port, "POST", "/api/v1/events/create", body, strlen(body), hdr, 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "correlation_id"), "mine", "%s", r.body);
    h_resp_free(&r);
}

/* What the common write path sends PostgreSQL arrives unchanged: times before
 * and after 2000-01-01 to the microsecond, text and JSON beyond ASCII, NULL
 * and present optional fields side by side in one group, in every column. */
H_TEST(create, stored_exactly_as_sent)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    enum { N = 40 };
    char *bodies[N];
    for (int i = 0; i < N; i++) {
        bodies[i] = malloc(512);
        snprintf(bodies[i], 512,
                 "{\"event_type\":\"exact.\\u00e9%d\",\"event_source\":\"iot_device\","
                 "\"event_category\":\"telemetry\",%s\"session_id\":\"s-%d\","
                 "\"organization_id\":%s,\"correlation_id\":\"c\\u2013%d\","
                 "\"timestamp\":\"%s\",\"data\":{\"i\":%d,\"s\":\"caf\\u00e9 \\ud83d\\ude00\","
                 "\"a\":[1,2.5,null,true,{\"k\":\"\\\"q\\\"\"}]},\"metadata\":{\"m\":%d},"
                 "\"context\":{\"c\":\"x\"},\"properties\":{\"p\":[]}}",
                 i, i % 2 ? "\"user_id\":\"u-1\"," : "", i, i % 3 ? "\"org\"" : "null", i,
                 i % 2 ? "1999-12-31T23:59:59.123456Z" : "2024-02-29T12:00:00.000001Z", i, i);
    }
    h_resp_t *out = calloc(N, sizeof(h_resp_t));
    h_http_multi(e->svc.port, N, "POST", "/api/v1/events/create", (const char *const *)bodies, out,
                 30000);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(out[i].status, 201, "request %d: %ld %s", i, out[i].status, out[i].body);
        const char *id = h_jstr(out[i].json, "event_id");
        h_resp_t g = h_get(e, "/api/v1/events/%s", id);
        cr_assert_eq(g.status, 200, "%s", g.body);
        cr_assert(json_equal(g.json, out[i].json), "stored differs from the answer:\n%s\n%s",
                  g.body, out[i].body);
        h_resp_free(&g);
        char want[64];
        snprintf(want, sizeof(want), "exact.\xc3\xa9%d", i);
        cr_assert_str_eq(h_jstr(out[i].json, "event_type"), want);
        cr_assert_str_eq(h_jstr(out[i].json, "data.s"), "caf\xc3\xa9 \xf0\x9f\x98\x80");
        char num[12];
        snprintf(num, sizeof(num), "%d", i);
        cr_assert_eq(
            h_sql_int(e,
                      "SELECT count(*) FROM event.events WHERE event_id = $1 AND "
                      "timestamp = $2::timestamptz AND event_source = 'iot_device' AND "
                      "event_category = 'telemetry' AND (user_id IS NULL) = $3::bool AND "
                      "session_id = 's-' || ($4::int) AND (organization_id IS NULL) = "
                      "$5::bool AND device_id IS NULL AND correlation_id = "
                      "'c' || chr(8211) || $4 AND data = jsonb_build_object('i', "
                      "$4::int, 's', 'caf' || chr(233) || ' ' || chr(128512), 'a', "
                      "'[1, 2.5, null, true, {\"k\": \"\\\"q\\\"\"}]'::jsonb) AND "
                      "metadata = jsonb_build_object('m', $4::int) AND context = "
                      "'{\"c\": \"x\"}' AND properties = '{\"p\": []}' AND "
                      "created_at = updated_at",
                      id, i % 2 ? "1999-12-31T23:59:59.123456Z" : "2024-02-29T12:00:00.000001Z",
                      i % 2 ? "false" : "true", num, i % 3 ? "false" : "true"),
            1, "row %d (%s) not stored as sent", i, id);
        h_resp_free(&out[i]);
        free(bodies[i]);
    }
    free(out);
}
