/* Dependencies going away and coming back: nats-server and PostgreSQL. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* /health/ready answers 200, the database is ok and the NATS check is (or
 * is not) "ok". One API worker in these tests, so every answer is its own. */
static bool ready_with_nats(h_env_t *e, bool nats_ok)
{
    h_resp_t r = h_get(e, "/health/ready");
    const char *nats = h_jstr(r.json, "checks.nats");
    const char *db = h_jstr(r.json, "checks.database");
    bool ok = r.status == 200 && db && strcmp(db, "ok") == 0 && nats &&
              (strcmp(nats, "ok") == 0) == nats_ok;
    h_resp_free(&r);
    return ok;
}

/* With nats-server down, creates still answer 201 quickly and the service
 * stays ready (NATS reported as not ok); once it is back on the same port,
 * new events are published again. */
H_TEST(outage, nats_down_ingest_continues)
{
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1, .processors = 1});
    h_svc_start(e);
    char *id = h_create(e, "{\"event_type\":\"before.outage\"}");
    cr_assert(h_js_wait_msg(e, id, 15000, NULL), "event %s not published before the outage", id);
    free(id);

    h_nats_stop(&e->nats, SIGKILL);
    cr_assert(H_WAIT(15000, ready_with_nats(e, false)),
              "/health/ready does not report NATS down (or is not 200) within 15 s");
    double slowest = 0;
    for (int i = 0; i < 10; i++) {
        h_resp_t r = h_post(e, "/api/v1/events/create", "{\"event_type\":\"during.outage\"}");
        cr_assert_eq(r.status, 201, "create %d while NATS is down: %ld %s %s", i, r.status, r.body,
                     r.error);
        if (r.seconds > slowest)
            slowest = r.seconds;
        h_resp_free(&r);
    }
    cr_assert(slowest < 2.0, "a create took %.3f s while NATS was down", slowest);
    h_resp_t r = h_get(e, "/health/ready");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "ready", "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events "
                              "WHERE event_type = 'during.outage'"),
                 10);

    h_nats_start(&e->nats);
    cr_assert(H_WAIT(30000, ready_with_nats(e, true)),
              "the NATS check is not ok within 30 s of nats-server's restart");
    id = h_create(e, "{\"event_type\":\"after.outage\"}");
    cr_assert(h_js_wait_msg(e, id, 20000, NULL),
              "event %s, created after NATS came back, was not published within 20 s", id);
    free(id);
}

/* What could not be published during a NATS outage is published when NATS
 * is back (SPEC 7: outbox), once per event. */
H_TEST(outage, nats_down_events_published_later)
{
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1, .processors = 1});
    h_svc_start(e);
    h_nats_stop(&e->nats, SIGKILL);
    cr_assert(H_WAIT(15000, ready_with_nats(e, false)));
    char *ids[5];
    for (int i = 0; i < 5; i++)
        ids[i] = h_create(e, "{\"event_type\":\"during.outage\",\"data\":{\"i\":%d}}", i);
    h_nats_start(&e->nats);
    for (int i = 0; i < 5; i++)
        cr_assert(h_js_wait_msg(e, ids[i], 30000, NULL),
                  "event %s, stored while NATS was down, was never published", ids[i]);
    h_msg_t *all = NULL;
    int n = h_js_snapshot(e, &all);
    for (int i = 0; i < 5; i++) {
        int copies = 0;
        for (int k = 0; k < n; k++)
            copies += all[k].msg_id && strcmp(all[k].msg_id, ids[i]) == 0;
        cr_assert_eq(copies, 1, "event %s was published %d times", ids[i], copies);
        free(ids[i]);
    }
    h_msgs_free(all, n);
}

/* POST create, returning the status; the request's time goes to *seconds. */
static long create_status(h_env_t *e, double *seconds)
{
    h_resp_t r = h_http(e->svc.port, "POST", "/api/v1/events/create",
                        "{\"event_type\":\"pg.outage\"}", 26, NULL, 30000);
    long status = r.status;
    if (seconds)
        *seconds = r.seconds;
    h_resp_free(&r);
    return status;
}

/* PostgreSQL down: creates answer 503 without hanging, /health/ready answers
 * 503 not_ready; once it is back, creates answer 201 again, with no restart
 * of the service. */
H_TEST(outage, postgres_down_and_back)
{
    h_env_t *e = h_setup(&(h_opts_t){.private_pg = true});
    h_svc_start(e);
    cr_assert_eq(create_status(e, NULL), 201);
    pid_t workers[8];
    int nw = h_svc_workers(e, workers, 8);

    h_pg_stop(&e->pg);
    double took = 0;
    cr_assert(H_WAIT(20000, create_status(e, &took) == 503),
              "creates do not answer 503 within 20 s of PostgreSQL stopping");
    for (int i = 0; i < 5; i++) {
        long status = create_status(e, &took);
        cr_assert_eq(status, 503, "create %d with PostgreSQL down: %ld", i, status);
        cr_assert(took < 5.0, "a 503 took %.3f s", took);
    }
    h_resp_t r = h_get(e, "/health/ready");
    cr_assert_eq(r.status, 503, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "not_ready", "%s", r.body);
    const char *db = h_jstr(r.json, "checks.database");
    cr_assert(db && strcmp(db, "ok") != 0, "%s", r.body);
    h_resp_free(&r);
    r = h_get(e, "/health");
    cr_assert_eq(r.status, 200, "liveness must not depend on the database: %s", r.body);
    h_resp_free(&r);

    h_pg_start(&e->pg);
    cr_assert(H_WAIT(30000, create_status(e, NULL) == 201),
              "creates do not succeed within 30 s of PostgreSQL's return");
    cr_assert(H_WAIT(10000, h_svc_ready(e)));
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 2);
    pid_t after[8];
    int na = h_svc_workers(e, after, 8);
    cr_assert_eq(na, nw);
    for (int i = 0; i < nw; i++)
        cr_assert_eq(after[i], workers[i], "worker %d was restarted", (int)workers[i]);
}

/* A service started while PostgreSQL is down waits for it (the master
 * retries) and serves once it is up. */
H_TEST(outage, postgres_down_at_start)
{
    h_env_t *e = h_setup(&(h_opts_t){.private_pg = true});
    h_pg_stop(&e->pg);
    h_svc_spawn(e, NULL);
    cr_assert(H_WAIT(15000, h_file_size(e->svc.log) > 0), "the service logged nothing");
    cr_assert(!h_svc_ready(e));
    h_pg_start(&e->pg);
    cr_assert(H_WAIT(30000, h_svc_ready(e)), "not ready within 30 s of PostgreSQL starting");
    cr_assert(H_WAIT(10000, create_status(e, NULL) == 201), "creates do not succeed");
}
