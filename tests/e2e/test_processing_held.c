/* Held claims (schema/006): when every enabled processor finishes at once, a
 * claim loop claims, runs and records a batch in one transaction instead of
 * leasing its rows; a processor that waits on a remote host brings the lease
 * back. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One claim loop, so which batches hold their rows is known: the first batch
 * of a worker leases (its routing is not known yet), the ones after it hold. */
static const char *one_loop_yaml = "processing:\n  interval_seconds: 1\n  concurrency: 1\n"
                                   "  max_retries: 2\n  backoff_base_ms: 50\n"
                                   "  backoff_max_ms: 200\n";

/* Creates an event of type and waits until its status is want. */
static char *create_until(h_env_t *e, const char *type, const char *want)
{
    char *id = h_create(e, "{\"event_type\":\"%s\",\"data\":{}}", type);
    cr_assert(H_WAIT(20000, h_event_status_is(e, id, want)), "event %s of type %s not %s in 20 s",
              id, type, want);
    return id;
}

/* From now on, every update of a queue row is recorded in
 * public.queue_updates (position, claim), by a row trigger. */
static void record_queue_updates(h_env_t *e)
{
    PQclear(h_sql(e, "CREATE TABLE public.queue_updates (position bigint, claim text)"));
    PQclear(h_sql(e, "CREATE FUNCTION public.count_update() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN INSERT INTO public.queue_updates VALUES (NEW.position, NEW.claim); "
                     "RETURN NEW; END $$"));
    PQclear(h_sql(e, "CREATE TRIGGER count_update BEFORE UPDATE ON event.processing_queue "
                     "FOR EACH ROW EXECUTE FUNCTION public.count_update()"));
}

/* Only noop processors: the batches after the first update no queue row (the
 * lease's UPDATE is what a hold saves; a row trigger counts updates), and
 * every event is processed once. */
H_TEST(processing_held, noop_batches_lease_nothing)
{
    enum { N = 30 };
    h_env_t *e =
        h_setup(&(h_opts_t){.api_workers = 1, .processors = 1, .extra_yaml = one_loop_yaml});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"stamp\",\"processor_type\":\"noop\"}"));
    free(create_until(e, "warm.up", "processed")); /* this batch leased; routing now known */
    record_queue_updates(e);
    char *ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = h_create(e, "{\"event_type\":\"held.work\",\"data\":{\"i\":%d}}", i);
    cr_assert(H_WAIT(30000, h_events_with_status(e, "processed") == N + 1),
              "%lld of %d events processed in 30 s",
              (long long)h_events_with_status(e, "processed") - 1, N);
    int64_t updates = h_sql_int(e, "SELECT count(*) FROM public.queue_updates");
    cr_assert_eq(updates, 0, "%lld queue rows were updated (leased) by noop-only batches",
                 (long long)updates);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(h_processing_results(e, ids[i], "stamp", "success"), 1,
                     "event %s: %lld stamp successes", ids[i],
                     (long long)h_processing_results(e, ids[i], "stamp", "success"));
        cr_assert_eq(h_processing_results(e, ids[i], NULL, NULL), 1);
        free(ids[i]);
    }
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), 0);
    h_stop_all(e, NULL);
}

/* With a subscription that wants the events, batches lease their rows
 * (each claimed row is updated once), so the fan-out is committed chunk by
 * chunk as before, and every event gets its delivery. */
H_TEST(processing_held, fanning_out_batches_lease)
{
    enum { N = 20 };
    h_recv_t *rcv = h_recv_start();
    char yaml[512];
    snprintf(yaml, sizeof(yaml), "%sdelivery:\n  allow_private: true\n", one_loop_yaml);
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1, .processors = 1, .extra_yaml = yaml});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"stamp\",\"processor_type\":\"noop\"}"));
    json_decref(h_subscribe(e,
                            "{\"subscriber_name\":\"fan\",\"event_types\":[\"fan.work\"],"
                            "\"callback_url\":\"http://127.0.0.1:%d/fan\"}",
                            h_recv_port(rcv)));
    free(create_until(e, "warm.up", "processed")); /* the routing is known */
    record_queue_updates(e);
    for (int i = 0; i < N; i++)
        free(h_create(e, "{\"event_type\":\"fan.work\",\"data\":{\"i\":%d}}", i));
    cr_assert(H_WAIT(30000, h_events_with_status(e, "processed") == N + 1),
              "%lld of %d events processed in 30 s",
              (long long)h_events_with_status(e, "processed") - 1, N);
    int64_t leased = h_sql_int(e, "SELECT count(DISTINCT position) FROM public.queue_updates "
                                  "WHERE claim IS NOT NULL");
    cr_assert_eq(leased, N, "%lld of %d claimed rows were leased", (long long)leased, N);
    cr_assert(H_WAIT(30000, h_sql_int(e, "SELECT count(*) FROM event.deliveries "
                                         "WHERE status = 'delivered'") == N),
              "%lld of %d deliveries delivered in 30 s",
              (long long)h_sql_int(e, "SELECT count(*) FROM event.deliveries "
                                      "WHERE status = 'delivered'"),
              N);
    h_stop_all(e, rcv);
}

/* A nats processor while NATS is off fails at once: in held batches each
 * failure still counts as an attempt, so the event gets its retries and then
 * fails, as with a lease. */
H_TEST(processing_held, failures_count_attempts)
{
    h_env_t *e = h_setup(&(h_opts_t){
        .api_workers = 1, .processors = 1, .no_nats = true, .extra_yaml = one_loop_yaml});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"bus\",\"processor_type\":\"nats\","
                            "\"filters\":{\"event_types\":[\"audit.*\"]},"
                            "\"config\":{\"subject\":\"audit.events\"}}"));
    free(create_until(e, "warm.up", "processed")); /* no processor matches; routing now known */
    char *id = create_until(e, "audit.login", "failed");
    H_ASSERT_EVENT_TEXT(e, "event_id = $1", id, "retry_count::text", "2", "");
    H_ASSERT_EVENT_TEXT(e, "event_id = $1", id, "error_message", "NATS unavailable", "");
    cr_assert_eq(h_processing_results(e, id, "bus", "retry"), 2, "retries: %lld",
                 (long long)h_processing_results(e, id, "bus", "retry"));
    cr_assert_eq(h_processing_results(e, id, "bus", "failed"), 1, "failures: %lld",
                 (long long)h_processing_results(e, id, "bus", "failed"));
    cr_assert_eq(h_processing_results(e, id, NULL, NULL), 3);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), 0);
    free(id);
    h_stop_all(e, NULL);
}

/* The worker's routing held its batches (noop only); then a slow webhook
 * processor is added. The next batch is given back untouched and claimed
 * under a lease, and no transaction stays open while the webhook runs. */
H_TEST(processing_held, webhook_processor_brings_the_lease_back)
{
    enum { N = 5 };
    h_recv_t *rcv = h_recv_start();
    h_recv_rule(rcv, "/slow", 200, 1500);
    h_env_t *e =
        h_setup(&(h_opts_t){.api_workers = 1, .processors = 1, .extra_yaml = one_loop_yaml});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"stamp\",\"processor_type\":\"noop\","
                            "\"priority\":10}"));
    free(create_until(e, "warm.up", "processed"));
    free(create_until(e, "warm.up", "processed")); /* a held batch: the routing is cached */
    free(h_add_processor(e,
                         "{\"processor_name\":\"slow\",\"processor_type\":\"webhook\","
                         "\"priority\":5,\"config\":{\"url\":\"http://127.0.0.1:%d/slow\"}}",
                         h_recv_port(rcv)));
    char *ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = h_create(e, "{\"event_type\":\"slow.work\",\"data\":{\"i\":%d}}", i);
    cr_assert(H_WAIT(20000, h_recv_in_flight(rcv) >= 1), "no request reached the webhook in 20 s");
    cr_assert_gt(h_sql_int(e, "SELECT count(*) FROM event.processing_queue "
                              "WHERE claim IS NOT NULL AND run_at > now()"),
                 0, "the batch at the webhook holds no lease");
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                              "current_database() AND state LIKE 'idle in transaction%%'"),
                 0, "a transaction is open while the webhook runs");
    cr_assert(H_WAIT(30000, h_events_with_status(e, "processed") == N + 2),
              "%lld of %d events processed in 30 s",
              (long long)h_events_with_status(e, "processed") - 2, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(h_processing_results(e, ids[i], "stamp", "success"), 1, "event %s", ids[i]);
        cr_assert_eq(h_processing_results(e, ids[i], "slow", "success"), 1, "event %s", ids[i]);
        cr_assert_eq(h_processing_results(e, ids[i], NULL, NULL), 2, "event %s", ids[i]);
        free(ids[i]);
    }
    cr_assert(!h_svc_log_contains(e, "taken over", 0), "a claim was taken over");
    h_stop_all(e, rcv);
}

/* event.complete_events without a token records only rows its own
 * transaction holds: called in a transaction that holds nothing, it refuses
 * and changes nothing; after a hold in the same transaction, it records. */
H_TEST(processing_held, tokenless_completion_needs_the_hold)
{
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1, .processors = 0});
    h_svc_start(e);
    char *id = h_create(e, "{\"event_type\":\"manual.work\",\"data\":{}}");
    PQclear(h_sql(
        e, "CREATE FUNCTION public.try_complete(p_hold boolean) RETURNS text "
           "LANGUAGE plpgsql AS $$ DECLARE v_pos bigint; v_id text; BEGIN "
           "SELECT q.position, q.event_id INTO v_pos, v_id FROM event.processing_queue q; "
           "IF p_hold THEN PERFORM * FROM event.claim_events(10, NULL, 't'); END IF; "
           "PERFORM * FROM event.complete_events(NULL, jsonb_build_array(jsonb_build_object("
           "'position', v_pos, 'event_id', v_id, 'outcome', 'processed', 'processors', "
           "'[]'::jsonb)), '[]', '[]'); RETURN 'recorded'; "
           "EXCEPTION WHEN others THEN RETURN SQLERRM; END $$"));
    char *got = h_sql_text(e, "SELECT public.try_complete(false)", NULL);
    cr_assert(got != NULL && strstr(got, "without a claim token") != NULL,
              "a completion holding nothing answered %s", got ? got : "NULL");
    free(got);
    cr_assert(h_event_status_is(e, id, "pending"), "the refused completion changed the event");
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), 1);

    got = h_sql_text(e, "SELECT public.try_complete(true)", NULL);
    cr_assert(got != NULL && strcmp(got, "recorded") == 0, "after a hold: %s",
              got ? got : "NULL");
    free(got);
    cr_assert(h_event_status_is(e, id, "processed"));
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), 0);
    free(id);
    h_stop_all(e, NULL);
}

/* The worker's batches held their rows without the event's columns (noop
 * only); then a nats processor, which sends the event, is added. The next
 * batch is given back and claimed whole: the message carries the event as
 * the API renders it. */
H_TEST(processing_held, nats_processor_gets_the_whole_event)
{
    h_env_t *e =
        h_setup(&(h_opts_t){.api_workers = 1, .processors = 1, .extra_yaml = one_loop_yaml});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"stamp\",\"processor_type\":\"noop\"}"));
    free(create_until(e, "warm.up", "processed"));
    free(create_until(e, "warm.up", "processed")); /* a held batch without the columns */
    h_nc_t *nc = h_nc_open(e);
    cr_assert(h_nc_subscribe(nc, "audit.events"));
    free(h_add_processor(e, "{\"processor_name\":\"bus\",\"processor_type\":\"nats\","
                            "\"config\":{\"subject\":\"audit.events\"}}"));
    char *id = h_create(e, "{\"event_type\":\"audit.login\",\"user_id\":\"u-7\","
                           "\"data\":{\"ip\":\"10.1.2.3\"},\"metadata\":{\"k\":\"v\"}}");
    h_msg_t m;
    cr_assert(h_nc_next(nc, 20000, &m), "no message on audit.events in 20 s");
    json_t *ev = json_loads(m.data, 0, NULL);
    cr_assert(ev != NULL, "not JSON: %s", m.data);
    cr_assert_str_eq(json_string_value(json_object_get(ev, "event_id")), id, "%s", m.data);
    cr_assert_str_eq(json_string_value(json_object_get(ev, "user_id")), "u-7", "%s", m.data);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ev, "data"), "ip")),
                     "10.1.2.3", "%s", m.data);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ev, "metadata"), "k")), "v",
                     "%s", m.data);
    cr_assert(json_is_string(json_object_get(ev, "timestamp")), "%s", m.data);
    cr_assert(json_is_integer(json_object_get(ev, "position")), "%s", m.data);
    json_decref(ev);
    h_msg_clear(&m);
    cr_assert(H_WAIT(20000, h_event_status_is(e, id, "processed")));
    cr_assert_eq(h_processing_results(e, id, "bus", "success"), 1);
    free(id);
    h_nc_close(nc);
    h_stop_all(e, NULL);
}

/* kill -9 while a held batch is in the middle of its completion (which waits
 * on the processor's row, locked by the test): the batch's transaction dies
 * with its worker and records nothing; the restarted worker processes every
 * event once, and every run reaches the stream at least once. */
H_TEST(processing_held, workers_killed_mid_hold)
{
    enum { N = 40 };
    h_env_t *e =
        h_setup(&(h_opts_t){.api_workers = 1, .processors = 1, .extra_yaml = one_loop_yaml});
    e->expect_worker_deaths = true;
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"stamp\",\"processor_type\":\"noop\"}"));
    free(create_until(e, "warm.up", "processed")); /* the routing is known: batches hold */

    PGconn *locker = PQconnectdb(e->dburl);
    cr_assert(PQstatus(locker) == CONNECTION_OK, "%s", PQerrorMessage(locker));
    PGresult *res = PQexec(locker, "BEGIN; SELECT 1 FROM event.event_processors FOR UPDATE");
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    char *ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = h_create(e, "{\"event_type\":\"held.work\",\"data\":{\"i\":%d}}", i);
    const char *stuck = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%complete_events%'";
    cr_assert(H_WAIT(20000, h_sql_int(e, stuck) == 1),
              "no completion came to wait on the locked processor row in 20 s");
    pid_t pids[8];
    int n = h_svc_workers(e, pids, 8);
    cr_assert_gt(n, 0);
    for (int i = 0; i < n; i++)
        cr_assert_eq(kill(pids[i], SIGKILL), 0);
    for (int i = 0; i < n; i++)
        cr_assert(H_WAIT(10000, !h_process_alive(pids[i])), "worker %d still alive", (int)pids[i]);
    res = PQexec(locker, "ROLLBACK");
    PQclear(res);
    PQfinish(locker);

    cr_assert(H_WAIT(60000, h_events_with_status(e, "processed") == N + 1),
              "%lld of %d events processed within 60 s of the kill",
              (long long)h_events_with_status(e, "processed") - 1, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(h_processing_results(e, ids[i], NULL, NULL), 1, "event %s: %lld results",
                     ids[i], (long long)h_processing_results(e, ids[i], NULL, NULL));
        cr_assert(H_WAIT(20000, h_js_published_count(e, "event.processed.success", ids[i]) >= 1),
                  "event %s: its run never reached the stream", ids[i]);
        free(ids[i]);
    }
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), 0);
    h_stop_all(e, NULL);
}
