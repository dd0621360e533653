/* Backend ingestion: what other services publish on events.backend.> is
 * consumed through the durable JetStream consumer nats.backend_consumer on
 * the stream nats.backend_stream, stored with source backend and the seed's
 * categorisation, once per message, acknowledged after the commit; what can
 * never be an event is terminated (not redelivered); what was published
 * while the service was down is stored once it is back. */
#include "harness.h"

#include "common/ids.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM "event-backend"
#define CONSUMER "event_service_backend"

/* The service with one processor worker (they run the backend consumer),
 * started, and the consumer in place. */
static h_env_t *start(int processors, const char *extra_yaml)
{
    h_env_t *e = h_start(processors, extra_yaml);
    cr_assert(H_WAIT(30000, h_js_consumer(e, STREAM, CONSUMER, NULL)),
              "the durable consumer %s on %s does not exist 30 s after the start", CONSUMER,
              STREAM);
    return e;
}

static int64_t count_where(h_env_t *e, const char *cond, const char *param)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM event.events WHERE %s", cond);
    return h_sql_int(e, sql, param);
}

/* Asserts that the one event of type etype has expr equal to want. */
#define ASSERT_TYPE(e, etype, expr, want)                                                          \
    H_ASSERT_EVENT_TEXT(e, "event_type = $1", etype, expr, want, "")

/* Waits until the consumer has everything up to the stream's last message
 * acknowledged (or terminated) and nothing outstanding. */
static bool consumer_settled(h_env_t *e, uint64_t last_seq, h_consumer_t *out)
{
    h_consumer_t c;
    if (!h_js_consumer(e, STREAM, CONSUMER, &c))
        return false;
    if (out)
        *out = c;
    return c.num_pending == 0 && c.num_ack_pending == 0 && c.ack_floor_stream >= last_seq;
}

static void publish(h_nc_t *nc, const char *subject, const char *data, const char *msg_id)
{
    bool dup = false;
    cr_assert(h_nc_js_publish(nc, subject, data, msg_id, &dup),
              "JetStream did not take the message on %s", subject);
    cr_assert(!dup, "the stream found the message on %s a duplicate", subject);
}

/* {"type":"user.created","data":{"user_id":"u1"}} on events.backend.user.created:
 * stored with source backend, category user_lifecycle, user_id u1, the data,
 * the subject and publisher in metadata; then acknowledged. */
H_TEST(ingest_backend, user_created_stored)
{
    h_env_t *e = start(1, NULL);
    h_nc_t *nc = h_nc_open(e);
    publish(nc, "events.backend.user.created",
            "{\"type\":\"user.created\",\"source\":\"user-service\","
            "\"data\":{\"user_id\":\"u1\",\"email\":\"u1@example.com\"}}",
            NULL);
    cr_assert(H_WAIT(45000, count_where(e, "event_type = $1", "user.created") == 1),
              "the backend event is not stored within 45 s");
    ASSERT_TYPE(e, "user.created", "event_source", "backend");
    ASSERT_TYPE(e, "user.created", "event_category", "user_lifecycle");
    ASSERT_TYPE(e, "user.created", "user_id", "u1");
    ASSERT_TYPE(e, "user.created", "data->>'email'", "u1@example.com");
    ASSERT_TYPE(e, "user.created", "metadata->>'nats_subject'", "events.backend.user.created");
    ASSERT_TYPE(e, "user.created", "metadata->>'publisher'", "user-service");
    h_consumer_t c;
    cr_assert(H_WAIT(45000, consumer_settled(e, 1, &c)),
              "not acknowledged: pending %llu, ack pending %lld, ack floor %llu",
              (unsigned long long)c.num_pending, (long long)c.num_ack_pending,
              (unsigned long long)c.ack_floor_stream);
    cr_assert_eq(c.num_redelivered, 0);
    h_nc_close(nc);
}

/* The seed's categorisation of backend events: user -> user_lifecycle,
 * payment, order, task, device -> device_status, anything else system. The
 * type comes from the payload, else from the subject. */
H_TEST(ingest_backend, categorisation)
{
    h_env_t *e = start(1, NULL);
    h_nc_t *nc = h_nc_open(e);
    static const struct {
        const char *subject, *payload, *type, *category;
    } cases[] = {
        {"events.backend.payment.received",
         "{\"type\":\"payment.received\",\"data\":{\"amount\":5}}", "payment.received", "payment"},
        {"events.backend.order.shipped", "{\"type\":\"order.shipped\",\"data\":{}}",
         "order.shipped", "order"},
        {"events.backend.task.completed", "{\"type\":\"task.completed\"}", "task.completed",
         "task"},
        {"events.backend.device.offline", "{\"type\":\"device.offline\",\"data\":{\"id\":\"d1\"}}",
         "device.offline", "device_status"},
        {"events.backend.cache.flushed", "{\"type\":\"cache.flushed\"}", "cache.flushed", "system"},
        {"events.backend.x", "{\"type\":\"UserDeleted\"}", "UserDeleted", "user_lifecycle"},
        /* no type in the payload: the subject's tail */
        {"events.backend.device.rebooted", "{\"data\":{\"id\":\"d2\"}}", "device.rebooted",
         "device_status"},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++)
        publish(nc, cases[i].subject, cases[i].payload, NULL);
    cr_assert(H_WAIT(45000, count_where(e, "event_source = $1", "backend") == (int64_t)n),
              "%lld of %zu backend events stored within 45 s",
              (long long)count_where(e, "event_source = $1", "backend"), n);
    for (size_t i = 0; i < n; i++)
        ASSERT_TYPE(e, cases[i].type, "event_category", cases[i].category);
    cr_assert(H_WAIT(45000, consumer_settled(e, n, NULL)));
    h_nc_close(nc);
}

/* The same message published twice with the same Nats-Msg-Id: one row. */
H_TEST(ingest_backend, same_msg_id_once)
{
    h_env_t *e = start(1, NULL);
    h_nc_t *nc = h_nc_open(e);
    const char *body = "{\"type\":\"order.created\",\"data\":{\"order_id\":\"o-1\"}}";
    bool dup = false;
    cr_assert(h_nc_js_publish(nc, "events.backend.order.created", body, "order-o-1", &dup));
    cr_assert(h_nc_js_publish(nc, "events.backend.order.created", body, "order-o-1", &dup));
    /* A later, distinct message marks the end of what there is to consume. */
    publish(nc, "events.backend.order.marker", "{\"type\":\"order.marker\"}", NULL);
    cr_assert(H_WAIT(45000, count_where(e, "event_type = $1", "order.marker") == 1));
    cr_assert(H_WAIT(45000, consumer_settled(e, dup ? 2 : 3, NULL)));
    cr_assert_eq(count_where(e, "event_type = $1", "order.created"), 1);
    ASSERT_TYPE(e, "order.created", "metadata->>'nats_message_id'", "msg:order-o-1");
    h_nc_close(nc);
}

/* A redelivery that JetStream's own de-duplication does not catch: the
 * stream (created here, as an operator would, with a 100 ms duplicate
 * window, the least nats-server allows) holds the same Nats-Msg-Id twice;
 * the service stores it once and acknowledges both. */
H_TEST(ingest_backend, redelivered_msg_id_once)
{
    h_env_t *e = h_setup(&(h_opts_t){.processors = 1});
    h_nc_t *nc = h_nc_open(e);
    cr_assert(h_nc_add_stream(nc, STREAM, "events.backend.>", 100),
              "cannot create the stream with a 100 ms duplicate window");
    h_svc_start(e);
    cr_assert(H_WAIT(30000, h_js_consumer(e, STREAM, CONSUMER, NULL)));
    const char *body = "{\"type\":\"payment.settled\",\"data\":{\"payment_id\":\"p-1\"}}";
    bool dup = true;
    cr_assert(h_nc_js_publish(nc, "events.backend.payment.settled", body, "pay-p-1", &dup));
    cr_assert(!dup);
    /* The window is over once a publish is no longer found a duplicate. */
    cr_assert(H_WAIT(10000,
                     h_nc_js_publish(nc, "events.backend.payment.settled", body, "pay-p-1", &dup) &&
                         !dup),
              "the stream keeps finding the second copy a duplicate");
    cr_assert(H_WAIT(45000, count_where(e, "event_type = $1", "payment.settled") >= 1));
    publish(nc, "events.backend.payment.marker", "{\"type\":\"payment.marker\"}", NULL);
    cr_assert(H_WAIT(45000, count_where(e, "event_type = $1", "payment.marker") == 1));
    h_consumer_t c;
    cr_assert(H_WAIT(45000, consumer_settled(e, 0, &c) && c.ack_floor_stream == c.delivered_stream),
              "not everything acknowledged");
    cr_assert_eq(count_where(e, "event_type = $1", "payment.settled"), 1,
                 "the same Nats-Msg-Id was stored twice");
    h_nc_close(nc);
}

/* The same envelope id published twice (no Nats-Msg-Id; a publisher's
 * retry): one row, both messages acknowledged. */
H_TEST(ingest_backend, same_envelope_id_once)
{
    h_env_t *e = start(1, NULL);
    h_nc_t *nc = h_nc_open(e);
    const char *body =
        "{\"id\":\"env-42\",\"type\":\"task.assigned\",\"data\":{\"task_id\":\"t-42\"}}";
    publish(nc, "events.backend.task.assigned", body, NULL);
    publish(nc, "events.backend.task.assigned", body, NULL);
    cr_assert(H_WAIT(45000, consumer_settled(e, 2, NULL)),
              "the two copies are not both acknowledged within 45 s");
    cr_assert_eq(count_where(e, "event_type = $1", "task.assigned"), 1);
    ASSERT_TYPE(e, "task.assigned", "metadata->>'nats_message_id'", "id:env-42");
    /* And once more after the first was stored and acknowledged. */
    publish(nc, "events.backend.task.assigned", body, NULL);
    cr_assert(H_WAIT(45000, consumer_settled(e, 3, NULL)));
    cr_assert_eq(count_where(e, "event_type = $1", "task.assigned"), 1);
    h_nc_close(nc);
}

/* A message whose id is already taken by an event with other content (one a
 * client created through the API under the id the message maps to) can never
 * be stored: it is terminated with a warning naming the conflict, not left
 * for redelivery over and over; the API's event stays as it was, and the
 * next message is stored. */
H_TEST(ingest_backend, id_taken_by_other_content_terminated)
{
    h_env_t *e = start(1, NULL);
    const char *name = "event_service/nats/id:env-taken";
    char taken[ES_UUID_LEN + 1];
    es_uuid_from_name(name, strlen(name), taken);
    char body[256];
    snprintf(body, sizeof(body), "{\"event_id\":\"%s\",\"event_type\":\"api.made\"}", taken);
    h_resp_t r = h_post(e, "/api/v1/events/create", body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);

    h_nc_t *nc = h_nc_open(e);
    publish(nc, "events.backend.order.placed",
            "{\"id\":\"env-taken\",\"type\":\"order.placed\",\"data\":{\"n\":1}}", NULL);
    publish(nc, "events.backend.order.placed",
            "{\"id\":\"env-free\",\"type\":\"order.placed\",\"data\":{\"n\":2}}", NULL);
    h_consumer_t c = {0};
    cr_assert(H_WAIT(45000, consumer_settled(e, 2, &c)),
              "not settled within 45 s: ack pending %lld, ack floor %llu, redelivered %lld",
              (long long)c.num_ack_pending, (unsigned long long)c.ack_floor_stream,
              (long long)c.num_redelivered);
    cr_assert_eq(c.num_redelivered, 0, "the conflicting message was redelivered");
    cr_assert(h_svc_log_contains(e, "already exists with different content; terminated", 0),
              "no warning names the conflict");
    cr_assert_eq(count_where(e, "event_type = $1", "order.placed"), 1);
    H_ASSERT_EVENT_TEXT(e, "event_type = $1", "order.placed", "data->>'n'", "2", "");
    H_ASSERT_EVENT_TEXT(e, "event_id = $1", taken, "event_type", "api.made", "");
    h_nc_close(nc);
}

/* Messages that can never be events (not JSON, JSON that is not an object,
 * a type too long for the column) do not block the next one: it is stored,
 * and the bad ones are terminated, not redelivered over and over. */
H_TEST(ingest_backend, malformed_does_not_block)
{
    h_env_t *e = start(1, NULL);
    h_nc_t *nc = h_nc_open(e);
    long from = h_file_size(e->svc.log);
    publish(nc, "events.backend.garbage", "this is { not json", NULL);
    publish(nc, "events.backend.garbage", "[1,2,3]", NULL);
    char longtype[400];
    int n = snprintf(longtype, sizeof(longtype), "{\"type\":\"");
    memset(longtype + n, 't', 300);
    snprintf(longtype + n + 300, sizeof(longtype) - (size_t)n - 300, "\"}");
    publish(nc, "events.backend.garbage", longtype, NULL);
    publish(nc, "events.backend.user.updated",
            "{\"type\":\"user.updated\",\"data\":{\"user_id\":\"u7\"}}", NULL);
    cr_assert(H_WAIT(45000, count_where(e, "event_type = $1", "user.updated") == 1),
              "the good message after malformed ones is not stored within 45 s");
    h_consumer_t c;
    cr_assert(H_WAIT(45000, consumer_settled(e, 4, &c)),
              "the consumer is not settled: pending %llu, ack pending %lld, ack floor %llu, "
              "redelivered %lld",
              (unsigned long long)c.num_pending, (long long)c.num_ack_pending,
              (unsigned long long)c.ack_floor_stream, (long long)c.num_redelivered);
    cr_assert_eq(c.num_redelivered, 0, "malformed messages were redelivered");
    cr_assert(h_svc_log_contains(e, "not an event", from), "the drop is not logged");
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 1);

    /* Later traffic still flows, and nothing was redelivered meanwhile. */
    publish(nc, "events.backend.user.deleted", "{\"type\":\"user.deleted\"}", NULL);
    cr_assert(H_WAIT(45000, count_where(e, "event_type = $1", "user.deleted") == 1));
    cr_assert(H_WAIT(45000, consumer_settled(e, 5, &c)));
    cr_assert_eq(c.num_redelivered, 0);
    h_nc_close(nc);
}

/* Published while the service is stopped (the stream keeps them): stored
 * after it starts again, each once. The durable consumer outlives the
 * service. */
H_TEST(ingest_backend, published_while_down_stored_after_start)
{
    h_env_t *e = start(1, NULL);
    cr_assert(h_svc_stop(e, SIGTERM, 20000), "the service did not stop");
    cr_assert(h_js_consumer(e, STREAM, CONSUMER, NULL),
              "the durable consumer %s is gone after the service stopped", CONSUMER);
    h_nc_t *nc = h_nc_open(e);
    for (int i = 0; i < 5; i++) {
        char body[200], id[32];
        snprintf(body, sizeof(body), "{\"type\":\"order.paid\",\"data\":{\"order_id\":\"o-%d\"}}",
                 i);
        snprintf(id, sizeof(id), "down-%d", i);
        publish(nc, "events.backend.order.paid", body, id);
    }
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);
    h_svc_start(e);
    cr_assert(H_WAIT(30000, count_where(e, "event_type = $1", "order.paid") == 5),
              "%lld of 5 events published while the service was down are stored 30 s after "
              "its start",
              (long long)count_where(e, "event_type = $1", "order.paid"));
    cr_assert(H_WAIT(45000, consumer_settled(e, 5, NULL)));
    cr_assert_eq(h_sql_int(e, "SELECT count(DISTINCT data->>'order_id') FROM event.events"), 5);
    h_nc_close(nc);
    cr_assert(h_svc_stop(e, SIGTERM, 20000));
    cr_assert(h_js_consumer(e, STREAM, CONSUMER, NULL),
              "the durable consumer is gone after the second stop");
}

/* Two processor workers share the durable consumer: a burst of distinct
 * messages is stored exactly once each. The wait covers the consumer's
 * AckWait (30 s): a delivery that stalls is redelivered, and must still be
 * stored once. */
H_TEST(ingest_backend, shared_consumer_stores_each_once)
{
    h_env_t *e = start(2, NULL);
    h_nc_t *nc = h_nc_open(e);
    for (int i = 0; i < 60; i++) {
        char body[200];
        snprintf(body, sizeof(body), "{\"type\":\"device.heartbeat\",\"data\":{\"seq\":%d}}", i);
        publish(nc, "events.backend.device.heartbeat", body, NULL);
    }
    h_consumer_t c = {0};
    if (!H_WAIT(70000, count_where(e, "event_type = $1", "device.heartbeat") >= 60)) {
        bool known = h_js_consumer(e, STREAM, CONSUMER, &c);
        cr_assert_fail("%lld of 60 stored within 70 s; consumer %s: pending %llu, ack pending "
                       "%lld, delivered up to %llu, ack floor %llu, redelivered %lld",
                       (long long)count_where(e, "event_type = $1", "device.heartbeat"),
                       known ? "known" : "unknown", (unsigned long long)c.num_pending,
                       (long long)c.num_ack_pending, (unsigned long long)c.delivered_stream,
                       (unsigned long long)c.ack_floor_stream, (long long)c.num_redelivered);
    }
    cr_assert(H_WAIT(40000, consumer_settled(e, 60, &c)));
    cr_assert_eq(count_where(e, "event_type = $1", "device.heartbeat"), 60);
    cr_assert_eq(h_sql_int(e, "SELECT count(DISTINCT data->>'seq') FROM event.events"), 60);
    h_nc_close(nc);
}

/* Two processor workers and a publisher that repeats itself: copies of the
 * same envelope ids fetched by both workers at once are stored once, and
 * neither worker's batch is left for redelivery because of the other's
 * copies (everything is acknowledged promptly, nothing redelivered). Bursts
 * of core publishes (not waiting for the stream) give both workers fetches
 * in flight with copies of the same ids; ten rounds, each one settled
 * before the next. */
H_TEST(ingest_backend, concurrent_copies_stored_once)
{
    h_env_t *e = start(2, NULL);
    h_nc_t *nc = h_nc_open(e);
    int published = 0;
    h_consumer_t c = {0};
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 80; i++) {
            char body[200];
            if (i % 2 == 0)
                snprintf(body, sizeof(body),
                         "{\"id\":\"env-rep-%d-%d\",\"type\":\"order.updated\","
                         "\"data\":{\"k\":%d}}",
                         round, i % 8, i % 8);
            else
                snprintf(body, sizeof(body),
                         "{\"id\":\"env-distinct-%d-%d\",\"type\":\"order.noted\","
                         "\"data\":{\"k\":%d}}",
                         round, i, i);
            cr_assert(h_nc_publish(nc, "events.backend.order.any", body, NULL));
            published++;
        }
        /* Settled, or a batch given up for redelivery (then it would take
         * the consumer's AckWait, 30 s, to come back). */
        cr_assert(H_WAIT(30000, consumer_settled(e, (uint64_t)published, &c) ||
                                    h_svc_log_contains(e, "will be redelivered", 0)),
                  "round %d not settled within 30 s: ack pending %lld, ack floor %llu of %d", round,
                  (long long)c.num_ack_pending, (unsigned long long)c.ack_floor_stream, published);
        cr_assert(!h_svc_log_contains(e, "will be redelivered", 0),
                  "round %d: a worker's batch failed on another worker's copy and was left "
                  "for redelivery (ack pending %lld)",
                  round, (long long)c.num_ack_pending);
    }
    cr_assert_eq(count_where(e, "event_type = $1", "order.updated"), 40);
    cr_assert_eq(count_where(e, "event_type = $1", "order.noted"), 400);
    cr_assert_eq(c.num_redelivered, 0, "messages were redelivered");
    /* The races between the copies are expected and retried: not warnings
     * (the service logs at info here, so only a warning would show). */
    cr_assert(!h_svc_log_contains(e, "store backend events failed", 0),
              "a retried race between copies was logged as a warning");
    h_nc_close(nc);
}
