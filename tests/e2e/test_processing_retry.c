/* Processing failures: retries with growing delays up to
 * processing.max_retries, then failed; the admin retry (one event, or by
 * filter) puts failed events back without re-running what succeeded; the
 * statistics and the JetStream publications follow. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* statistics' value at key. */
static int64_t stat(h_env_t *e, const char *key)
{
    h_resp_t r = h_get(e, "/api/v1/events/statistics");
    cr_assert_eq(r.status, 200, "%s", r.body);
    int64_t v = h_jint(r.json, key);
    cr_assert(v != INT64_MIN, "no %s in %s", key, r.body);
    h_resp_free(&r);
    return v;
}

/* Polls every second; a failed run is not retried. */
#define NO_RETRIES "processing:\n  interval_seconds: 1\n  max_retries: 0\n"

/* The service with one API worker and one processor worker, extra_yaml
 * appended to its config. */
static h_env_t *start(const char *extra_yaml)
{
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1, .processors = 1, .extra_yaml = extra_yaml});
    h_svc_start(e);
    return e;
}

/* start(extra_yaml) with one processor, the webhook "down" posting to rcv's
 * /down, which answers 500. */
static h_env_t *start_with_down_hook(h_recv_t *rcv, const char *extra_yaml)
{
    h_recv_rule(rcv, "/down", 500, 0);
    h_env_t *e = start(extra_yaml);
    free(h_add_processor(e,
                         "{\"processor_name\":\"down\",\"processor_type\":\"webhook\","
                         "\"config\":{\"url\":\"http://127.0.0.1:%d/down\"}}",
                         h_recv_port(rcv)));
    return e;
}

#define BACKOFF_BASE_MS 300
#define MAX_RETRIES 3

/* A webhook answering 500: the event is tried 1 + max_retries times, each
 * wait at least the backoff (base * 2^(n-1), -25% jitter), so the waits grow;
 * then it is failed with the error, retry_count = max_retries. A processor
 * that succeeded on the first attempt is not run again. Every run is in
 * processing_results (retry, ..., failed) and on JetStream
 * (event.processed.failed, will_retry true until the last); the processor's
 * error_count and last_error follow, and so do the statistics. */
H_TEST(processing_retry, failing_webhook_backs_off_then_fails)
{
    h_recv_t *rcv = h_recv_start();
    h_recv_rule(rcv, "/fail", 500, 0);
    char yaml[256];
    snprintf(yaml, sizeof(yaml),
             "processing:\n  interval_seconds: 1\n  max_retries: %d\n  backoff_base_ms: %d\n"
             "  backoff_max_ms: 60000\n",
             MAX_RETRIES, BACKOFF_BASE_MS);
    h_env_t *e = start(yaml);
    int port = h_recv_port(rcv);
    free(h_add_processor(e,
                         "{\"processor_name\":\"first\",\"processor_type\":\"webhook\","
                         "\"priority\":10,\"config\":{\"url\":\"http://127.0.0.1:%d/ok\"}}",
                         port));
    char *bad = h_add_processor(e,
                                "{\"processor_name\":\"flaky\",\"processor_type\":\"webhook\","
                                "\"priority\":5,\"config\":{\"url\":\"http://127.0.0.1:%d/fail\"}}",
                                port);
    char *id = h_create(e, "{\"event_type\":\"order.failing\"}");
    cr_assert(H_WAIT(30000, h_event_status_is(e, id, "failed")),
              "the event is not failed after 30 s (%d "
              "attempts seen)",
              h_recv_count(rcv, "/fail"));

    h_recv_req_t *reqs = NULL;
    int n = h_recv_reqs(rcv, &reqs);
    int64_t at[16];
    int attempts = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(reqs[i].path, "/fail") == 0 && attempts < 16)
            at[attempts++] = reqs[i].start_ms;
    h_recv_reqs_free(reqs, n);
    cr_assert_eq(attempts, 1 + MAX_RETRIES, "%d attempts at the failing webhook", attempts);
    cr_assert_eq(h_recv_count(rcv, "/ok"), 1, "the processor that succeeded ran %d times",
                 h_recv_count(rcv, "/ok"));
    int64_t gap[16];
    for (int k = 1; k < attempts; k++) {
        gap[k] = at[k] - at[k - 1];
        int64_t min = (int64_t)BACKOFF_BASE_MS * (1 << (k - 1)) * 3 / 4;
        fprintf(stderr, "failing_webhook: wait before attempt %d: %lld ms (backoff >= %lld)\n",
                k + 1, (long long)gap[k], (long long)min);
        cr_assert(gap[k] >= min - 5,
                  "attempt %d came %lld ms after the previous one; the "
                  "backoff is at least %lld ms",
                  k + 1, (long long)gap[k], (long long)min);
    }
    cr_assert(gap[attempts - 1] > gap[1], "the waits do not grow: %lld ms, then %lld ms",
              (long long)gap[1], (long long)gap[attempts - 1]);

    h_resp_t r = h_get(e, "/api/v1/events/%s", id);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "failed", "%s", r.body);
    cr_assert(h_jstr(r.json, "error_message") && strstr(h_jstr(r.json, "error_message"), "500"),
              "error_message does not say what failed: %s", r.body);
    cr_assert_eq(h_jint(r.json, "retry_count"), MAX_RETRIES, "%s", r.body);
    h_resp_free(&r);

    PGresult *res = h_sql(e,
                          "SELECT status, message, duration_ms FROM event.processing_results "
                          "WHERE event_id = $1 AND processor_name = 'flaky' ORDER BY result_id",
                          id);
    cr_assert_eq(PQntuples(res), 1 + MAX_RETRIES);
    for (int k = 0; k <= MAX_RETRIES; k++) {
        cr_assert_str_eq(PQgetvalue(res, k, 0), k < MAX_RETRIES ? "retry" : "failed", "run %d",
                         k + 1);
        cr_assert_str_eq(PQgetvalue(res, k, 1), "HTTP 500", "run %d", k + 1);
        cr_assert(!PQgetisnull(res, k, 2), "run %d has no duration_ms", k + 1);
    }
    PQclear(res);
    cr_assert_eq(h_processing_results(e, id, "first", "success"), 1);
    cr_assert_eq(h_processing_results(e, id, "first", NULL), 1);
    char runs[16];
    snprintf(runs, sizeof(runs), "%d", 1 + MAX_RETRIES);
    cr_assert_eq(h_sql_int(e,
                           "SELECT count(*) FROM event.event_processors WHERE processor_id = $1 "
                           "AND error_count = $2::int AND last_error = 'HTTP 500'",
                           bad, runs),
                 1, "error_count / last_error of the failing processor did not follow");
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.processing_queue"), 0,
                 "a failed event is still queued");

    cr_assert(
        H_WAIT(20000, h_js_published_count(e, "event.processed.failed", id) == 1 + MAX_RETRIES),
        "%zu event.processed.failed messages for %d runs",
        h_js_published_count(e, "event.processed.failed", id), 1 + MAX_RETRIES);
    json_t *failed = h_js_published(e, "event.processed.failed", id);
    for (int k = 0; k <= MAX_RETRIES; k++) {
        json_t *m = json_array_get(failed, (size_t)k);
        cr_assert_str_eq(h_jstr(m, "processor_name"), "flaky");
        cr_assert_str_eq(h_jstr(m, "error_message"), "HTTP 500");
        cr_assert_eq(json_is_true(h_jget(m, "will_retry")), k < MAX_RETRIES,
                     "message %d: will_retry", k + 1);
    }
    json_decref(failed);
    cr_assert_eq(h_js_published_count(e, "event.processed.success", id), 1);

    cr_assert_eq(stat(e, "failed_events"), 1);
    cr_assert_eq(stat(e, "processed_events"), 0);
    cr_assert_eq(stat(e, "pending_events"), 0);
    free(id);
    free(bad);
    h_stop_all(e, rcv);
}

static h_resp_t retry_one(h_env_t *e, const char *id)
{
    char path[300];
    snprintf(path, sizeof(path), "/api/v1/events/%s/retry", id);
    return h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
}

/* POST /api/v1/events/{id}/retry: 404 for an unknown event, 409 for one that
 * is not failed (pending or processed); for a failed one 200 with the event
 * pending again, then processed: the processor that had failed runs again,
 * the one that had succeeded does not. The statistics follow each step. */
H_TEST(processing_retry, admin_retry_one)
{
    h_recv_t *rcv = h_recv_start();
    h_recv_rule(rcv, "/flaky", 500, 0);
    h_recv_rule(rcv, "/slow", 200, 4000);
    h_env_t *e = start(NO_RETRIES);
    int port = h_recv_port(rcv);
    free(h_add_processor(e,
                         "{\"processor_name\":\"good\",\"processor_type\":\"webhook\","
                         "\"priority\":10,\"filters\":{\"event_types\":[\"job.*\"]},"
                         "\"config\":{\"url\":\"http://127.0.0.1:%d/good\"}}",
                         port));
    free(h_add_processor(e,
                         "{\"processor_name\":\"flaky\",\"processor_type\":\"webhook\","
                         "\"priority\":5,\"filters\":{\"event_types\":[\"job.*\"]},"
                         "\"config\":{\"url\":\"http://127.0.0.1:%d/flaky\"}}",
                         port));
    free(h_add_processor(e,
                         "{\"processor_name\":\"slow\",\"processor_type\":\"webhook\","
                         "\"filters\":{\"event_types\":[\"slow.*\"]},"
                         "\"config\":{\"url\":\"http://127.0.0.1:%d/slow\"}}",
                         port));

    h_resp_t r = retry_one(e, "00000000-0000-4000-8000-000000000000");
    cr_assert_eq(r.status, 404, "unknown event: %ld %s", r.status, r.body);
    h_resp_free(&r);

    char *id = h_create(e, "{\"event_type\":\"job.run\"}");
    cr_assert(H_WAIT(20000, h_event_status_is(e, id, "failed")), "the event did not fail");
    cr_assert_eq(h_recv_count(rcv, "/good"), 1);
    cr_assert_eq(h_recv_count(rcv, "/flaky"), 1, "max_retries 0: one attempt only");
    cr_assert_eq(stat(e, "failed_events"), 1);

    /* Pending (its webhook holds it for 4 s) and processed events are refused. */
    char *busy = h_create(e, "{\"event_type\":\"slow.job\"}");
    r = retry_one(e, busy);
    cr_assert_eq(r.status, 409, "retry of a pending event: %ld %s", r.status, r.body);
    cr_assert(h_jstr(r.json, "detail") != NULL, "%s", r.body);
    h_resp_free(&r);
    cr_assert(H_WAIT(20000, h_event_status_is(e, busy, "processed")));
    r = retry_one(e, busy);
    cr_assert_eq(r.status, 409, "retry of a processed event: %ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_recv_count(rcv, "/slow"), 1, "a refused retry ran the event again");

    h_recv_rule(rcv, "/flaky", 200, 0);
    r = retry_one(e, id);
    cr_assert_eq(r.status, 200, "retry of a failed event: %ld %s", r.status, r.body);
    cr_assert_str_eq(h_jstr(r.json, "event_id"), id, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "pending", "%s", r.body);
    cr_assert(json_is_null(h_jget(r.json, "error_message")), "%s", r.body);
    h_resp_free(&r);
    cr_assert(H_WAIT(20000, h_event_status_is(e, id, "processed")),
              "the retried event was not processed");

    cr_assert_eq(h_recv_count(rcv, "/good"), 1, "the processor that had succeeded ran again");
    cr_assert_eq(h_recv_count(rcv, "/flaky"), 2);
    cr_assert_eq(h_processing_results(e, id, "good", NULL), 1);
    cr_assert_eq(h_processing_results(e, id, "flaky", "failed"), 1);
    cr_assert_eq(h_processing_results(e, id, "flaky", "success"), 1);
    r = h_get(e, "/api/v1/events/%s", id);
    char *names = json_dumps(h_jget(r.json, "processors"), JSON_COMPACT);
    cr_assert_str_eq(names, "[\"good\",\"flaky\"]", "%s", r.body);
    cr_assert(json_is_null(h_jget(r.json, "error_message")), "%s", r.body);
    free(names);
    h_resp_free(&r);
    cr_assert(H_WAIT(20000, h_js_published_count(e, "event.processed.success", id) == 2),
              "%zu event.processed.success for %s (good once, flaky once)",
              h_js_published_count(e, "event.processed.success", id), id);

    cr_assert_eq(stat(e, "failed_events"), 0);
    cr_assert_eq(stat(e, "processed_events"), 2);
    cr_assert_eq(stat(e, "pending_events"), 0);
    r = retry_one(e, id);
    cr_assert_eq(r.status, 409, "retry of the now processed event: %ld %s", r.status, r.body);
    h_resp_free(&r);
    free(id);
    free(busy);
    h_stop_all(e, rcv);
}

/* A JSON array of strings as a set: true when a and b hold the same ones. */
static bool same_ids(const json_t *a, char *const *ids, int n)
{
    if (!json_is_array(a) || json_array_size(a) != (size_t)n)
        return false;
    for (int i = 0; i < n; i++)
        if (!json_is_string(json_array_get(a, (size_t)i)) ||
            strcmp(json_string_value(json_array_get(a, (size_t)i)), ids[i]) != 0)
            return false;
    return true;
}

/* POST /api/v1/events/retry with a filter: only the failed events that match
 * go back (answer {retried, event_ids} in position order) and are processed;
 * `status` in the filter is refused (422); an empty filter takes the rest; a
 * repeat finds nothing. The statistics follow. */
H_TEST(processing_retry, admin_retry_by_filter)
{
    h_recv_t *rcv = h_recv_start();
    h_recv_rule(rcv, "/hook", 500, 0);
    h_env_t *e = start(NO_RETRIES);
    free(h_add_processor(e,
                         "{\"processor_name\":\"hook\",\"processor_type\":\"webhook\","
                         "\"config\":{\"url\":\"http://127.0.0.1:%d/hook\"}}",
                         h_recv_port(rcv)));
    char *bulk[3], *other[2];
    for (int i = 0; i < 3; i++)
        bulk[i] = h_create(e, "{\"event_type\":\"bulk.fail\",\"data\":{\"i\":%d}}", i);
    for (int i = 0; i < 2; i++)
        other[i] = h_create(e, "{\"event_type\":\"other.fail\",\"user_id\":\"u%d\"}", i);
    cr_assert(H_WAIT(30000, h_events_with_status(e, "failed") == 5), "%lld of 5 events failed",
              (long long)h_events_with_status(e, "failed"));
    cr_assert_eq(stat(e, "failed_events"), 5);

    h_resp_t r = h_post(e, "/api/v1/events/retry", "{\"status\":\"failed\"}");
    cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
    cr_assert(h_jstr(r.json, "detail") && strncmp(h_jstr(r.json, "detail"), "status:", 7) == 0,
              "%s", r.body);
    h_resp_free(&r);
    r = h_post(e, "/api/v1/events/retry", "{\"event_source\":\"mainframe\"}");
    cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_events_with_status(e, "failed"), 5, "a refused retry changed events");

    h_recv_rule(rcv, "/hook", 200, 0);
    r = h_post(e, "/api/v1/events/retry", "{\"event_type\":\"bulk.fail\"}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_eq(h_jint(r.json, "retried"), 3, "%s", r.body);
    cr_assert(same_ids(h_jget(r.json, "event_ids"), bulk, 3), "event_ids: %s", r.body);
    h_resp_free(&r);
    for (int i = 0; i < 3; i++)
        cr_assert(H_WAIT(20000, h_event_status_is(e, bulk[i], "processed")),
                  "retried %s not processed", bulk[i]);
    for (int i = 0; i < 2; i++)
        cr_assert(h_event_status_is(e, other[i], "failed"), "%s is not failed any more", other[i]);
    cr_assert_eq(stat(e, "processed_events"), 3);
    cr_assert_eq(stat(e, "failed_events"), 2);

    r = h_post(e, "/api/v1/events/retry", "{}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_eq(h_jint(r.json, "retried"), 2, "%s", r.body);
    cr_assert(same_ids(h_jget(r.json, "event_ids"), other, 2), "event_ids: %s", r.body);
    h_resp_free(&r);
    for (int i = 0; i < 2; i++)
        cr_assert(H_WAIT(20000, h_event_status_is(e, other[i], "processed")));
    r = h_post(e, "/api/v1/events/retry", "{}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_eq(h_jint(r.json, "retried"), 0, "%s", r.body);
    cr_assert(json_is_array(h_jget(r.json, "event_ids")) &&
                  json_array_size(h_jget(r.json, "event_ids")) == 0,
              "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(stat(e, "processed_events"), 5);
    cr_assert_eq(stat(e, "failed_events"), 0);
    cr_assert_eq(h_recv_count(rcv, "/hook"), 10, "each event ran twice: failed, then processed");
    for (int i = 0; i < 3; i++)
        free(bulk[i]);
    for (int i = 0; i < 2; i++)
        free(other[i]);
    h_stop_all(e, rcv);
}

/* Every run recorded in processing_results is published: an event that
 * fails, is retried by the admin and fails again, twice, has three failed
 * runs, and three event.processed.failed messages on JetStream (the reruns
 * are new runs, not repeats of a publication). */
H_TEST(processing_retry, every_run_published_after_admin_retry)
{
    h_recv_t *rcv = h_recv_start();
    h_env_t *e = start_with_down_hook(rcv, NO_RETRIES);
    char *id = h_create(e, "{\"event_type\":\"still.failing\"}");
    cr_assert(H_WAIT(20000, h_event_status_is(e, id, "failed")));
    cr_assert(H_WAIT(20000, h_js_published_count(e, "event.processed.failed", id) == 1));
    for (int run = 2; run <= 3; run++) {
        h_resp_t r = retry_one(e, id);
        cr_assert_eq(r.status, 200, "admin retry %d: %ld %s", run - 1, r.status, r.body);
        h_resp_free(&r);
        cr_assert(H_WAIT(20000, h_processing_results(e, id, "down", "failed") == run &&
                                    h_event_status_is(e, id, "failed")),
                  "the retried event did not fail again (run %d)", run);
    }
    cr_assert_eq(h_recv_count(rcv, "/down"), 3);
    bool all = H_WAIT(20000, h_js_published_count(e, "event.processed.failed", id) == 3);
    cr_assert(all,
              "3 failed runs in processing_results, but %zu event.processed.failed message(s) "
              "on JetStream for event %s",
              h_js_published_count(e, "event.processed.failed", id), id);
    free(id);
    h_stop_all(e, rcv);
}

/* An admin retry gives the event the whole retry policy again: with
 * max_retries 2 it is tried 1 + 2 times before it is failed, as the first
 * time. */
H_TEST(processing_retry, admin_retry_gets_full_retry_budget)
{
    h_recv_t *rcv = h_recv_start();
    h_env_t *e = start_with_down_hook(rcv, "processing:\n  interval_seconds: 1\n  max_retries: 2\n"
                                           "  backoff_base_ms: 100\n");
    char *id = h_create(e, "{\"event_type\":\"budget.check\"}");
    cr_assert(H_WAIT(20000, h_event_status_is(e, id, "failed")));
    cr_assert_eq(h_recv_count(rcv, "/down"), 3, "first time: %d attempts, expected 1 + 2",
                 h_recv_count(rcv, "/down"));
    h_resp_t r = retry_one(e, id);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert(H_WAIT(20000, h_processing_results(e, id, "down", "failed") == 2 &&
                                h_event_status_is(e, id, "failed")),
              "the retried event did not end failed again");
    cr_assert_eq(h_recv_count(rcv, "/down") - 3, 3,
                 "after the admin retry: %d attempts, expected 1 + max_retries (2) = 3",
                 h_recv_count(rcv, "/down") - 3);
    free(id);
    h_stop_all(e, rcv);
}

/* A webhook slower than its config.timeout_ms, and one whose port refuses
 * connections: both runs fail (max_retries 0: failed at once) with an error
 * that says why; the timed-out run lasted about the timeout, not the
 * endpoint's delay. */
H_TEST(processing_retry, webhook_timeout_and_refused)
{
    h_recv_t *rcv = h_recv_start();
    h_recv_rule(rcv, "/sleepy", 200, 5000);
    h_env_t *e = start(NO_RETRIES);
    free(h_add_processor(e,
                         "{\"processor_name\":\"sleepy\",\"processor_type\":\"webhook\","
                         "\"filters\":{\"event_types\":[\"t.slow\"]},"
                         "\"config\":{\"url\":\"http://127.0.0.1:%d/sleepy\",\"timeout_ms\":400}}",
                         h_recv_port(rcv)));
    free(h_add_processor(e,
                         "{\"processor_name\":\"nowhere\",\"processor_type\":\"webhook\","
                         "\"filters\":{\"event_types\":[\"t.refused\"]},"
                         "\"config\":{\"url\":\"http://127.0.0.1:%d/x\"}}",
                         h_free_port()));
    char *slow = h_create(e, "{\"event_type\":\"t.slow\"}");
    char *refused = h_create(e, "{\"event_type\":\"t.refused\"}");
    cr_assert(H_WAIT(20000, h_event_status_is(e, slow, "failed")),
              "the timed-out event is not failed");
    cr_assert(H_WAIT(20000, h_event_status_is(e, refused, "failed")),
              "the refused event is not failed");

    PGresult *res = h_sql(e,
                          "SELECT r.message, r.duration_ms, e.error_message "
                          "FROM event.processing_results r JOIN event.events e USING (event_id) "
                          "WHERE r.event_id = $1 AND r.processor_name = 'sleepy' "
                          "AND r.status = 'failed'",
                          slow);
    cr_assert_eq(PQntuples(res), 1);
    cr_assert(strstr(PQgetvalue(res, 0, 0), "imeout") != NULL, "timeout run: message %s",
              PQgetvalue(res, 0, 0));
    int ms = atoi(PQgetvalue(res, 0, 1));
    /* curl's timer may fire a millisecond or so before our own clock reads 400 */
    cr_assert(ms >= 390 && ms < 5000, "the run timed out at 400 ms but lasted %d ms", ms);
    cr_assert_str_eq(PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 0));
    PQclear(res);
    res = h_sql(e,
                "SELECT r.message, e.error_message FROM event.processing_results r "
                "JOIN event.events e USING (event_id) WHERE r.event_id = $1 "
                "AND r.processor_name = 'nowhere' AND r.status = 'failed'",
                refused);
    cr_assert_eq(PQntuples(res), 1);
    cr_assert(PQgetvalue(res, 0, 0)[0] != '\0', "the refused run has no message");
    cr_assert_str_eq(PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0));
    PQclear(res);
    free(slow);
    free(refused);
    h_stop_all(e, rcv);
}
