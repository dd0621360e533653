/* Processor workers under faults: a worker killed mid-batch, two workers on
 * one queue with slow processors, and NATS going away and coming back. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Creates n events of type (one batch request) and returns their ids. */
static char **create_batch(h_env_t *e, const char *type, int n)
{
    size_t cap = 64 + (size_t)n * 80;
    char *body = malloc(cap);
    size_t len = (size_t)snprintf(body, cap, "{\"events\":[");
    for (int i = 0; i < n; i++)
        len +=
            (size_t)snprintf(body + len, cap - len, "%s{\"event_type\":\"%s\",\"data\":{\"i\":%d}}",
                             i ? "," : "", type, i);
    snprintf(body + len, cap - len, "]}");
    h_resp_t r =
        h_http(e->svc.port, "POST", "/api/v1/events/batch", body, strlen(body), NULL, 30000);
    cr_assert_eq(r.status, 201, "batch of %d: %ld %s", n, r.status, r.body);
    char **ids = calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "events.%d.event_id", i);
        cr_assert(h_jstr(r.json, key) != NULL, "%s", r.body);
        ids[i] = strdup(h_jstr(r.json, key));
    }
    h_resp_free(&r);
    free(body);
    return ids;
}

static void free_ids(char **ids, int n)
{
    for (int i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

/* kill -9 of the processor worker while its batch waits on a slow webhook:
 * the master starts a new one, the lease runs out, and every event ends
 * processed with exactly one success result per processor (the killed run
 * recorded nothing; the webhook may see an event twice). */
H_TEST(processing_faults, worker_killed_mid_batch)
{
    enum { N = 40 };
    h_recv_t *rcv = h_recv_start();
    h_recv_rule(rcv, "/slow", 200, 2000);
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1,
                                     .processors = 1,
                                     .extra_yaml = "processing:\n  interval_seconds: 1\n"
                                                   "  batch_size: 10\n  lease_seconds: 3\n"});
    e->expect_worker_deaths = true;
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"stamp\",\"processor_type\":\"noop\","
                            "\"priority\":10}"));
    free(h_add_processor(e,
                         "{\"processor_name\":\"slow\",\"processor_type\":\"webhook\","
                         "\"priority\":5,\"config\":{\"url\":\"http://127.0.0.1:%d/slow\"}}",
                         h_recv_port(rcv)));
    char **ids = create_batch(e, "bulk.work", N);

    cr_assert(H_WAIT(30000, h_recv_in_flight(rcv) >= 5),
              "the first batch did not reach the webhook within 30 s");
    PGresult *res = h_sql(e, "SELECT claim FROM event.processing_queue "
                             "WHERE claim IS NOT NULL AND run_at > now() LIMIT 1");
    cr_assert_eq(PQntuples(res), 1, "no claim is held while the webhook has requests in flight");
    pid_t victim = h_claim_pid(PQgetvalue(res, 0, 0));
    PQclear(res);
    cr_assert(h_svc_is_worker(e, victim), "claim holder %d is not a worker of the master",
              (int)victim);
    int killed_in_flight = h_recv_in_flight(rcv);
    cr_assert_eq(kill(victim, SIGKILL), 0);
    fprintf(stderr, "worker_killed_mid_batch: killed %d with %d requests in flight\n", (int)victim,
            killed_in_flight);

    cr_assert(H_WAIT(60000, h_events_with_status(e, "processed") == N),
              "%lld of %d events processed within 60 s of the kill",
              (long long)h_events_with_status(e, "processed"), N);
    cr_assert(h_svc_log_contains(e, "was killed by signal 9", 0), "the master did not log it");
    for (int i = 0; i < N; i++) {
        cr_assert_eq(h_processing_results(e, ids[i], "stamp", "success"), 1,
                     "event %s: %lld stamp successes", ids[i],
                     (long long)h_processing_results(e, ids[i], "stamp", "success"));
        cr_assert_eq(h_processing_results(e, ids[i], "slow", "success"), 1,
                     "event %s: %lld slow successes", ids[i],
                     (long long)h_processing_results(e, ids[i], "slow", "success"));
        cr_assert_eq(h_processing_results(e, ids[i], NULL, NULL), 2, "event %s has other results",
                     ids[i]);
    }
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), 0);

    h_recv_req_t *reqs = NULL;
    int n = h_recv_reqs(rcv, &reqs);
    int twice = 0;
    for (int i = 0; i < N; i++) {
        int seen = 0;
        for (int k = 0; k < n; k++) {
            const char *eid = h_jstr(reqs[k].json, "event_id");
            seen += eid && strcmp(eid, ids[i]) == 0;
        }
        cr_assert(seen >= 1, "event %s never reached the webhook", ids[i]);
        twice += seen > 1;
    }
    h_recv_reqs_free(reqs, n);
    fprintf(stderr, "worker_killed_mid_batch: %d events reached the webhook twice\n", twice);
    cr_assert(twice >= 1, "no event was run again: the kill did not hit a batch in flight");
    free_ids(ids, N);
    h_stop_all(e, rcv);
}

/* Two processor workers, a webhook slower than the lease (so the lease must
 * be renewed while it runs): both workers claim batches, no event is ever
 * being run by both at once (checked at the webhook), and each event gets
 * exactly one success. */
H_TEST(processing_faults, two_workers_never_overlap)
{
    enum { N = 16 };
    h_recv_t *rcv = h_recv_start();
    h_recv_rule(rcv, "/slow", 200, 4000);
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1,
                                     .processors = 2,
                                     .extra_yaml = "processing:\n  interval_seconds: 1\n"
                                                   "  batch_size: 4\n  lease_seconds: 3\n"});
    h_svc_start(e);
    free(h_add_processor(e,
                         "{\"processor_name\":\"slow\",\"processor_type\":\"webhook\","
                         "\"config\":{\"url\":\"http://127.0.0.1:%d/slow\",\"timeout_ms\":20000}}",
                         h_recv_port(rcv)));
    char **ids = create_batch(e, "shared.work", N);

    pid_t owners[8];
    int nowners = 0;
    int64_t deadline = h_now_ms() + 90000;
    while (h_events_with_status(e, "processed") < N && h_now_ms() < deadline) {
        PGresult *res = h_sql(e, "SELECT claim, count(*) FROM event.processing_queue "
                                 "WHERE claim IS NOT NULL AND run_at > now() GROUP BY claim");
        for (int i = 0; i < PQntuples(res); i++) {
            cr_assert(atoi(PQgetvalue(res, i, 1)) <= 4, "claim %s holds %s events (batch_size 4)",
                      PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
            pid_t owner = h_claim_pid(PQgetvalue(res, i, 0));
            bool known = false;
            for (int k = 0; k < nowners; k++)
                known = known || owners[k] == owner;
            if (!known && nowners < 8)
                owners[nowners++] = owner;
        }
        PQclear(res);
        h_pause_ms(20);
    }
    cr_assert_eq(h_events_with_status(e, "processed"), N, "%lld of %d events processed within 90 s",
                 (long long)h_events_with_status(e, "processed"), N);
    cr_assert(nowners >= 2, "only %d worker process(es) were seen holding claims", nowners);

    h_recv_req_t *reqs = NULL;
    int n = h_recv_reqs(rcv, &reqs);
    int overlaps = 0, repeats = 0;
    char first[256] = "";
    for (int a = 0; a < n; a++) {
        for (int b = a + 1; b < n; b++) {
            const char *ea = h_jstr(reqs[a].json, "event_id");
            const char *eb = h_jstr(reqs[b].json, "event_id");
            if (!ea || !eb || strcmp(ea, eb) != 0)
                continue;
            repeats++;
            int64_t end_a = reqs[a].end_ms ? reqs[a].end_ms : INT64_MAX;
            int64_t end_b = reqs[b].end_ms ? reqs[b].end_ms : INT64_MAX;
            if (reqs[a].start_ms < end_b && reqs[b].start_ms < end_a) {
                if (overlaps++ == 0)
                    snprintf(first, sizeof(first), "event %s: runs at %lld-%lld and %lld-%lld ms",
                             ea, (long long)reqs[a].start_ms, (long long)end_a,
                             (long long)reqs[b].start_ms, (long long)end_b);
            }
        }
    }
    h_recv_reqs_free(reqs, n);
    fprintf(stderr,
            "two_workers_never_overlap: %d requests for %d events, %d repeated, "
            "claims seen from %d worker processes\n",
            n, N, repeats, nowners);
    cr_assert_eq(overlaps, 0, "%d times an event ran in two places at once; first: %s", overlaps,
                 first);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(h_processing_results(e, ids[i], "slow", "success"), 1,
                     "event %s: %lld successes", ids[i],
                     (long long)h_processing_results(e, ids[i], "slow", "success"));
        cr_assert_eq(h_processing_results(e, ids[i], NULL, NULL), 1, "event %s has other results",
                     ids[i]);
    }
    free_ids(ids, N);
    h_stop_all(e, rcv);
}

/* /health/ready answers 200 and its NATS check is (or is not) "ok". */
static bool ready_with_nats(h_env_t *e, bool nats_ok)
{
    h_resp_t r = h_get(e, "/health/ready");
    const char *nats = h_jstr(r.json, "checks.nats");
    bool ok = r.status == 200 && nats && (strcmp(nats, "ok") == 0) == nats_ok;
    h_resp_free(&r);
    return ok;
}

/* nats-server down: no wake-ups, yet events are processed by polling
 * (processing.interval_seconds 0.5), their outcome publications wait in
 * event.outbox; once NATS is back, the missed event.stored messages and the
 * event.processed.success messages appear on JetStream, once each. */
H_TEST(processing_faults, nats_down_processing_polls)
{
    enum { N = 5 };
    h_env_t *e = h_setup(&(h_opts_t){
        .api_workers = 1, .processors = 1, .extra_yaml = "processing:\n  interval_seconds: 0.5\n"});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"audit\",\"processor_type\":\"noop\"}"));
    char *before = h_create(e, "{\"event_type\":\"before.outage\"}");
    cr_assert(H_WAIT(20000, h_event_status_is(e, before, "processed")));
    cr_assert(h_js_wait_msg(e, before, 20000, NULL));
    free(before);

    h_nats_stop(&e->nats, SIGKILL);
    cr_assert(H_WAIT(15000, ready_with_nats(e, false)),
              "/health/ready does not report NATS down within 15 s");
    char *ids[N];
    int64_t t0 = h_now_ms();
    for (int i = 0; i < N; i++)
        ids[i] = h_create(e, "{\"event_type\":\"during.outage\",\"data\":{\"i\":%d}}", i);
    for (int i = 0; i < N; i++)
        cr_assert(H_WAIT(20000, h_event_status_is(e, ids[i], "processed")),
                  "event %s not processed within 20 s while NATS is down", ids[i]);
    fprintf(stderr, "nats_down_processing_polls: %d events processed %lld ms after their creates\n",
            N, (long long)(h_now_ms() - t0));
    cr_assert_eq(e->nats.pid, 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(h_processing_results(e, ids[i], "audit", "success"), 1);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.outbox "
                              "WHERE subject = 'event.processed.success'"),
                 N, "the outcomes of the outage are not held in event.outbox");

    h_nats_start(&e->nats);
    for (int i = 0; i < N; i++) {
        cr_assert(h_js_wait_msg(e, ids[i], 30000, NULL),
                  "event.stored for %s never published after NATS came back", ids[i]);
        cr_assert(H_WAIT(30000, h_js_published_count(e, "event.processed.success", ids[i]) == 1),
                  "event.processed.success for %s: %zu messages", ids[i],
                  h_js_published_count(e, "event.processed.success", ids[i]));
    }
    cr_assert(H_WAIT(20000, h_sql_int(e, "SELECT count(*) FROM event.outbox") == 0),
              "event.outbox is not drained");
    h_msg_t *all = NULL;
    int n = h_js_snapshot(e, &all);
    for (int i = 0; i < N; i++) {
        int copies = 0;
        for (int k = 0; k < n; k++)
            copies += all[k].msg_id && strcmp(all[k].msg_id, ids[i]) == 0;
        cr_assert_eq(copies, 1, "event.stored for %s published %d times", ids[i], copies);
        free(ids[i]);
    }
    h_msgs_free(all, n > 0 ? n : 0);
}

/* SIGTERM while a batch waits on a slow webhook: the worker finishes the
 * batch and records it before it exits (the lease is long, so nothing but
 * that could complete the events), and the master exits 0 in time. */
H_TEST(processing_faults, graceful_stop_finishes_batch)
{
    enum { N = 5 };
    h_recv_t *rcv = h_recv_start();
    h_recv_rule(rcv, "/slow", 200, 2000);
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1,
                                     .processors = 1,
                                     .shutdown_timeout = 15,
                                     .extra_yaml = "processing:\n  interval_seconds: 1\n"
                                                   "  lease_seconds: 300\n"});
    h_svc_start(e);
    free(h_add_processor(e,
                         "{\"processor_name\":\"slow\",\"processor_type\":\"webhook\","
                         "\"config\":{\"url\":\"http://127.0.0.1:%d/slow\"}}",
                         h_recv_port(rcv)));
    char **ids = create_batch(e, "stop.work", N);
    cr_assert(H_WAIT(30000, h_recv_in_flight(rcv) == N), "the batch did not reach the webhook");
    int64_t t0 = h_now_ms();
    cr_assert(h_svc_stop(e, SIGTERM, 15000), "the master did not exit within 15 s of SIGTERM");
    cr_assert(WIFEXITED(e->svc.exit_status) && WEXITSTATUS(e->svc.exit_status) == 0,
              "the master ended with status 0x%x", e->svc.exit_status);
    fprintf(stderr, "graceful_stop_finishes_batch: the master exited %lld ms after SIGTERM\n",
            (long long)(h_now_ms() - t0));
    for (int i = 0; i < N; i++) {
        cr_assert(h_event_status_is(e, ids[i], "processed"), "event %s was left unprocessed",
                  ids[i]);
        cr_assert_eq(h_processing_results(e, ids[i], "slow", "success"), 1);
    }
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), 0);
    free_ids(ids, N);
    h_recv_stop(rcv);
}

/* A worker stalled (SIGSTOP) mid-batch loses its claim when the lease runs
 * out; the other worker processes the events; when the stalled worker
 * resumes and completes its batch, nothing of it is recorded or published:
 * each event keeps exactly one success and one event.processed.success. */
H_TEST(processing_faults, stalled_worker_loses_its_claim)
{
    enum { N = 4 };
    h_recv_t *rcv = h_recv_start();
    h_recv_rule(rcv, "/slow", 200, 1000);
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1,
                                     .processors = 2,
                                     .extra_yaml = "service:\n  heartbeat_timeout_seconds: 300\n"
                                                   "processing:\n  interval_seconds: 1\n"
                                                   "  batch_size: 4\n  lease_seconds: 2\n"});
    h_svc_start(e);
    free(h_add_processor(e,
                         "{\"processor_name\":\"slow\",\"processor_type\":\"webhook\","
                         "\"config\":{\"url\":\"http://127.0.0.1:%d/slow\",\"timeout_ms\":60000}}",
                         h_recv_port(rcv)));
    char **ids = create_batch(e, "stall.work", N);
    cr_assert(H_WAIT(30000, h_recv_in_flight(rcv) == N), "the batch did not reach the webhook");
    PGresult *res = h_sql(e, "SELECT claim FROM event.processing_queue "
                             "WHERE claim IS NOT NULL AND run_at > now() LIMIT 1");
    cr_assert_eq(PQntuples(res), 1, "no claim is held while the webhook has requests in flight");
    pid_t stalled = h_claim_pid(PQgetvalue(res, 0, 0));
    PQclear(res);
    cr_assert(stalled > 0);
    cr_assert_eq(kill(stalled, SIGSTOP), 0);

    bool done = H_WAIT(60000, h_events_with_status(e, "processed") == N);
    long off = h_file_size(e->svc.log);
    kill(stalled, SIGCONT);
    cr_assert(done, "%lld of %d events processed by the other worker within 60 s",
              (long long)h_events_with_status(e, "processed"), N);
    cr_assert(H_WAIT(30000, h_svc_log_contains(e, "taken over by another worker", off)),
              "the resumed worker did not report its lost claim");
    for (int i = 0; i < N; i++) {
        cr_assert_eq(h_processing_results(e, ids[i], "slow", "success"), 1,
                     "event %s: %lld successes", ids[i],
                     (long long)h_processing_results(e, ids[i], "slow", "success"));
        cr_assert_eq(h_processing_results(e, ids[i], NULL, NULL), 1, "event %s has other results",
                     ids[i]);
        cr_assert(H_WAIT(20000, h_js_published_count(e, "event.processed.success", ids[i]) >= 1));
        cr_assert_eq(h_js_published_count(e, "event.processed.success", ids[i]), 1,
                     "event %s: a lost claim's run was published", ids[i]);
    }
    cr_assert_eq(h_recv_count(rcv, "/slow"), 2 * N, "each event ran once per worker");
    free_ids(ids, N);
    h_stop_all(e, rcv);
}

/* Lines of the service log from byte offset `from` that come from a
 * processor worker and contain needle. */
static int processor_log_lines(h_env_t *e, const char *needle, long from)
{
    FILE *f = fopen(e->svc.log, "r");
    if (f == NULL)
        return 0;
    fseek(f, from, SEEK_SET);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, "processor[") != NULL && strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* Creates an event and asserts it is processed within 10 s: with a poll
 * interval of 60 s only a wake-up does that. */
static void processed_by_wakeup(h_env_t *e, const char *when)
{
    char *id = h_create(e, "{\"event_type\":\"wake.check\"}");
    int64_t t0 = h_now_ms();
    cr_assert(H_WAIT(10000, h_event_status_is(e, id, "processed")),
              "%s: event not processed within 10 s (poll interval 60 s): no wake-up", when);
    fprintf(stderr, "wakeups_follow_nats: %s: processed in %lld ms\n", when,
            (long long)(h_now_ms() - t0));
    free(id);
}

/* Wake-ups work when NATS only becomes reachable after the service started,
 * and again after nats-server restarts (the processor worker subscribes, and
 * subscribes again, by itself). Poll interval 60 s, so only a wake-up can
 * process an event within the test's 10 s. A processor worker holds several
 * NATS connections (its log says so for each); the test waits for all of
 * them, as a wake-up sent before the subscribing one is back is lost by
 * design (the poll is the fallback). */
H_TEST(processing_faults, wakeups_follow_nats)
{
    h_env_t *e = h_setup(&(h_opts_t){
        .api_workers = 1, .processors = 1, .extra_yaml = "processing:\n  interval_seconds: 60\n"});
    h_nats_stop(&e->nats, SIGTERM);
    h_svc_spawn(e, NULL);
    cr_assert(H_WAIT(30000, h_svc_ready(e)), "not ready within 30 s with NATS down");
    cr_assert(H_WAIT(30000, processor_log_lines(e, "processor worker running", 0) == 1));
    free(h_add_processor(e, "{\"processor_name\":\"audit\",\"processor_type\":\"noop\"}"));
    int handles = processor_log_lines(e, "not reachable yet", 0);
    cr_assert(handles >= 1, "the processor worker did not report NATS unreachable");

    long off = h_file_size(e->svc.log);
    h_nats_start(&e->nats);
    cr_assert(H_WAIT(30000, ready_with_nats(e, true) && h_js_stream_exists(e) &&
                                processor_log_lines(e, "NATS connected", off) >= handles),
              "the service did not connect to NATS within 30 s of its start");
    processed_by_wakeup(e, "NATS started after the service");
    handles = processor_log_lines(e, "NATS connected", off);

    off = h_file_size(e->svc.log);
    h_nats_stop(&e->nats, SIGKILL);
    cr_assert(H_WAIT(15000, ready_with_nats(e, false) &&
                                processor_log_lines(e, "NATS disconnected", off) >= handles));
    off = h_file_size(e->svc.log);
    h_nats_start(&e->nats);
    cr_assert(H_WAIT(30000, ready_with_nats(e, true) &&
                                processor_log_lines(e, "NATS connected", off) >= handles),
              "the processor worker's %d NATS connections were not all back within 30 s", handles);
    processed_by_wakeup(e, "after nats-server restarted");
}

/* A service with one processor worker and a noop processor "stamp" whose
 * first run has reached the stream. */
static h_env_t *stamp_service(void)
{
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1,
                                     .processors = 1,
                                     .extra_yaml = "processing:\n  interval_seconds: 1\n"});
    h_svc_start(e);
    free(h_add_processor(e, "{\"processor_name\":\"stamp\",\"processor_type\":\"noop\"}"));
    char *warm = h_create(e, "{\"event_type\":\"warm.up\",\"data\":{}}");
    cr_assert(H_WAIT(20000, h_js_published_count(e, "event.processed.success", warm) == 1),
              "the first run was not published");
    free(warm);
    return e;
}

/* The stream goes away while NATS stays up, so the stream acknowledges no
 * event.processed.success: the publication of a run recorded meanwhile is
 * written to event.outbox in the run's own transaction (it is there when the
 * event shows processed), and reaches the stream once nats-server is back
 * with it. Nothing recorded goes unpublished. */
H_TEST(processing_faults, unacknowledged_publication_kept_in_outbox)
{
    h_env_t *e = stamp_service();

    cr_assert(h_js_delete_stream(e), "the stream could not be deleted");
    char *id = h_create(e, "{\"event_type\":\"after.delete\",\"data\":{}}");
    cr_assert(H_WAIT(20000, h_event_status_is(e, id, "processed")), "not processed in 20 s");
    char like[128];
    snprintf(like, sizeof(like), "%s:stamp:%%:success", id);
    PGresult *r = h_sql(e, "SELECT subject FROM event.outbox WHERE msg_id LIKE $1", like);
    cr_assert_eq(PQntuples(r), 1, "outbox rows for the run: %d", PQntuples(r));
    cr_assert_str_eq(PQgetvalue(r, 0, 0), "event.processed.success");
    PQclear(r);

    h_nats_stop(&e->nats, SIGTERM);
    h_nats_start(&e->nats);
    cr_assert(H_WAIT(30000, h_js_published_count(e, "event.processed.success", id) == 1),
              "the run's publication did not reach the stream within 30 s of NATS coming back");
    cr_assert(H_WAIT(10000, h_sql_int(e, "SELECT count(*) FROM event.outbox") == 0),
              "the outbox was not emptied");
    free(id);
    h_stop_all(e, NULL);
}

/* nats-server freezes (SIGSTOP) while connected: a run's publication gets no
 * answer, so after waiting for it the completion writes it to event.outbox
 * with the run. When the server thaws, the original publication and the
 * outbox's resend carry the same Nats-Msg-Id: the stream keeps one. */
H_TEST(processing_faults, unanswered_publication_kept_in_outbox_once_in_stream)
{
    h_env_t *e = stamp_service();

    cr_assert_eq(kill(e->nats.pid, SIGSTOP), 0);
    char *id = h_create(e, "{\"event_type\":\"while.frozen\",\"data\":{}}");
    bool processed = H_WAIT(20000, h_event_status_is(e, id, "processed"));
    char like[128];
    snprintf(like, sizeof(like), "%s:stamp:%%:success", id);
    int64_t spilled = h_sql_int(e, "SELECT count(*) FROM event.outbox WHERE msg_id LIKE $1", like);
    cr_assert_eq(kill(e->nats.pid, SIGCONT), 0);
    cr_assert(processed, "not processed in 20 s while NATS was frozen");
    cr_assert_eq(spilled, 1, "outbox rows for the run: %lld", (long long)spilled);

    cr_assert(H_WAIT(30000, h_sql_int(e, "SELECT count(*) FROM event.outbox") == 0),
              "the outbox was not emptied within 30 s of NATS thawing");
    cr_assert(H_WAIT(10000, h_js_published_count(e, "event.processed.success", id) >= 1),
              "the run's publication never reached the stream");
    cr_assert_eq(h_js_published_count(e, "event.processed.success", id), 1,
                 "the stream kept the run's publication %zu times",
                 h_js_published_count(e, "event.processed.success", id));
    free(id);
    h_stop_all(e, NULL);
}
