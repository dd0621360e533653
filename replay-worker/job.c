/*
 * job.c - one replay job, page by page.
 *
 * Bounds are fixed when the job first runs: a stream replay stops at the
 * stream's version then (stream versions commit in order: appends hold the
 * head row); any other replay stops at the global position mark taken over a
 * settled snapshot (see event.position_mark), so no event a still-open
 * transaction may add below it is ever skipped. Each page's effect and the
 * checkpoint move together: in one transaction for reprocess and redeliver;
 * for republish the page is published (message id "{replay_id}:{event_id}",
 * so JetStream drops a repeat) before the checkpoint moves, and a crash in
 * between publishes that page again without a duplicate in the stream.
 */
#include "common/buf.h"
#include "common/event_row.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "replay-worker/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { SEL_IDS, SEL_STREAM, SEL_WINDOW } sel_t;

typedef struct {
    char *id;
    char *mode;
    char *target;
    char *subscription;
    char *selector;
    sel_t kind;
    int64_t checkpoint;
    int64_t upper;
    bool has_upper;
    char token[96];
} job_t;

/* Seconds before a republish job whose page NATS refused is taken again. */
#define REPUBLISH_RETRY_S 2

/* A page: $1 selector, $2 checkpoint, $3 upper bound, $4 page size
 * (event.replay_select, schema/005). */
#define PAGE_SQL                                                                                   \
    "SELECT " ES_EVENT_COLUMNS " FROM event.replay_select($1::jsonb, $2::bigint, $3::bigint, "    \
    "$4::int) e"

char *es_replay_subject(const char *target)
{
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "event.replay.");
    const char *t = target && target[0] ? target : "all";
    for (size_t n = 0; *t && n < 128; t++, n++) {
        char c = *t;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        es_buf_putc(&b, ok ? c : '_');
    }
    return es_buf_take(&b);
}

static void job_free(job_t *j)
{
    free(j->id);
    free(j->mode);
    free(j->target);
    free(j->subscription);
    free(j->selector);
}

static bool finish(es_rworker_t *w, job_t *j, const char *status, const char *error)
{
    const char *params[4] = {j->id, j->token, status, error};
    PGresult *r = es_pgsync_query(&w->db, "finish replay",
                                  "SELECT event.finish_replay($1, $2, $3, $4)", 4, params);
    bool ok = r != NULL && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (ok) {
        es_info("replay %s %s%s%s", j->id, status, error ? ": " : "", error ? error : "");
        (void)es_nats_publish(w->nats, ES_WAKE_SUBJECT, "", 0); /* the publication */
    }
    return ok;
}

/* Fixes the job's upper bound and total the first time it runs. */
static bool set_bounds(es_rworker_t *w, job_t *j)
{
    char upper[24];
    PGresult *r;
    if (j->kind == SEL_STREAM) {
        const char *p[1] = {j->selector};
        r = es_pgsync_query(&w->db, "replay bounds",
                            "SELECT coalesce((SELECT version FROM event.event_streams WHERE "
                            "stream_id = $1::jsonb ->> 'stream_id'), 0)",
                            1, p);
        if (r == NULL)
            return false;
        j->upper = es_pg_int(r, 0, 0);
        PQclear(r);
    } else {
        r = es_pgsync_query(&w->db, "replay mark", "SELECT event.position_mark()", 0, NULL);
        if (r == NULL)
            return false;
        j->upper = es_pg_int(r, 0, 0);
        PQclear(r);
        r = es_pgsync_query(&w->db, "replay snapshot", "SELECT pg_current_snapshot()::text", 0,
                            NULL);
        if (r == NULL)
            return false;
        char *snap = es_xstrdup(PQgetvalue(r, 0, 0));
        PQclear(r);
        bool settled = false;
        for (int i = 0; i < 15000 && !settled && es_rworker_alive(w); i++) {
            const char *p[1] = {snap};
            r = es_pgsync_query(&w->db, "replay settle", "SELECT event.snapshot_settled($1)", 1,
                                p);
            settled = r != NULL && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
            PQclear(r);
            if (!settled)
                usleep(2000);
        }
        free(snap);
        if (!settled)
            return false;
    }
    snprintf(upper, sizeof(upper), "%lld", (long long)j->upper);
    const char *cp[3] = {j->selector, upper, "2147483647"};
    r = es_pgsync_query(&w->db, "replay total",
                        "SELECT count(*) FROM event.replay_select($1::jsonb, 0, $2::bigint, $3::int)",
                        3, cp);
    if (r == NULL)
        return false;
    char total[24];
    snprintf(total, sizeof(total), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    const char *up[4] = {j->id, j->token, upper, total};
    r = es_pgsync_query(&w->db, "replay bounds",
                        "UPDATE event.replay_jobs SET upper_position = $3::bigint, total = "
                        "$4::bigint WHERE replay_id = $1 AND claim = $2 RETURNING 1",
                        4, up);
    bool ok = r != NULL && PQntuples(r) == 1;
    PQclear(r);
    j->has_upper = ok;
    return ok;
}

/* Moves the checkpoint over a page and renews the lease; false when the job
 * is no longer ours (cancelled, or the lease was lost). */
static bool advance(es_rworker_t *w, job_t *j, int64_t last, int n)
{
    char last_s[24], n_s[16], lease[16];
    snprintf(last_s, sizeof(last_s), "%lld", (long long)last);
    snprintf(n_s, sizeof(n_s), "%d", n);
    snprintf(lease, sizeof(lease), "%d", w->cfg->replay.lease_seconds);
    const char *p[5] = {j->id, j->token, last_s, n_s, lease};
    PGresult *r = es_pgsync_query(&w->db, "replay checkpoint",
                                  "UPDATE event.replay_jobs SET checkpoint = $3::bigint, replayed "
                                  "= replayed + $4::int, run_at = now() + make_interval(secs => "
                                  "$5::int) WHERE replay_id = $1 AND claim = $2 AND status = "
                                  "'running' RETURNING 1",
                                  5, p);
    bool ok = r != NULL && PQntuples(r) == 1;
    PQclear(r);
    if (ok)
        j->checkpoint = last;
    return ok;
}

/* Republishes a page on NATS; true once JetStream acknowledged all of it. */
static bool republish(es_rworker_t *w, job_t *j, const PGresult *page)
{
    char *subject = es_replay_subject(j->target);
    bool ok = true;
    for (int i = 0; i < PQntuples(page) && ok; i++) {
        es_buf_t body = ES_BUF_INIT;
        es_event_row_render(&body, page, i, 0);
        char *msg_id = es_xasprintf("%s:%s", j->id, PQgetvalue(page, i, ES_COL_EVENT_ID));
        ok = es_pubset_publish(w->pub, subject, body.data, body.len, msg_id) == ES_OK;
        free(msg_id);
        es_buf_free(&body);
    }
    free(subject);
    return es_pubset_settle(w->pub, 10000, NULL, NULL) == 0 && ok;
}

/* Reprocess or redeliver a page, with the checkpoint, in one transaction. */
static int apply_in_db(es_rworker_t *w, job_t *j, const PGresult *page, int64_t last)
{
    es_buf_t list = ES_BUF_INIT;
    bool reprocess = strcmp(j->mode, "reprocess") == 0;
    es_buf_putc(&list, '{');
    for (int i = 0; i < PQntuples(page); i++) {
        if (i > 0)
            es_buf_putc(&list, ',');
        es_buf_json_cstr(&list, PQgetvalue(page, i, reprocess ? ES_COL_POSITION : ES_COL_EVENT_ID));
    }
    es_buf_putc(&list, '}');
    int rc = -1;
    if (!es_pgsync_exec(&w->db, "replay page", "BEGIN"))
        goto cleanup;
    const char *p[2] = {reprocess ? list.data : j->subscription, list.data};
    PGresult *r = reprocess ? es_pgsync_query(&w->db, "reprocess page",
                                              "SELECT event.requeue_events($1::bigint[])", 1, p)
                            : es_pgsync_query(&w->db, "redeliver page",
                                              "SELECT event.redeliver_events($1, $2::text[])", 2, p);
    if (r == NULL) {
        es_pgsync_rollback(&w->db);
        goto cleanup;
    }
    PQclear(r);
    if (!advance(w, j, last, PQntuples(page))) {
        es_pgsync_rollback(&w->db);
        rc = 0;
        goto cleanup;
    }
    rc = es_pgsync_exec(&w->db, "replay page", "COMMIT") ? 1 : -1;
    (void)es_nats_publish(w->nats, reprocess ? ES_WAKE_SUBJECT : ES_WAKE_DELIVERY, "", 0);
cleanup:
    es_buf_free(&list);
    return rc;
}

/* Gives a job back: any worker may take it again after delay_s seconds (0
 * on a graceful stop; later while NATS refuses a page, so that the job does
 * not hold a worker, and its cancel is seen, meanwhile). */
static void release(es_rworker_t *w, job_t *j, int delay_s)
{
    char delay[16];
    snprintf(delay, sizeof(delay), "%d", delay_s);
    const char *p[3] = {j->id, j->token, delay};
    PQclear(es_pgsync_query(&w->db, "release replay",
                            "UPDATE event.replay_jobs SET run_at = now() + make_interval(secs => "
                            "$3::int), claim = NULL WHERE replay_id = $1 AND claim = $2",
                            3, p));
}

static void run(es_rworker_t *w, job_t *j)
{
    const es_config_t *cfg = w->cfg;
    if (!j->has_upper && !set_bounds(w, j)) {
        es_warn("replay %s: cannot fix its bounds yet; retrying later", j->id);
        return; /* the lease runs out and the job is claimed again */
    }
    if (strcmp(j->mode, "redeliver") == 0) {
        const char *p[1] = {j->subscription};
        PGresult *r = es_pgsync_query(&w->db, "replay subscription",
                                      "SELECT 1 FROM event.event_subscriptions WHERE "
                                      "subscription_id = $1",
                                      1, p);
        bool exists = r != NULL && PQntuples(r) == 1;
        PQclear(r);
        if (r != NULL && !exists) {
            (void)finish(w, j, "failed", "subscription not found");
            return;
        }
    }
    char page_size[16], upper[24];
    snprintf(page_size, sizeof(page_size), "%d", cfg->replay.page_size);
    snprintf(upper, sizeof(upper), "%lld", (long long)j->upper);
    while (es_rworker_alive(w)) {
        char ckpt[24];
        snprintf(ckpt, sizeof(ckpt), "%lld", (long long)j->checkpoint);
        const char *p[4] = {j->selector, ckpt, upper, page_size};
        PGresult *page = es_pgsync_query(&w->db, "replay page", PAGE_SQL, 4, p);
        if (page == NULL)
            return; /* database trouble: the lease runs out, someone resumes */
        int n = PQntuples(page);
        if (n == 0) {
            PQclear(page);
            (void)finish(w, j, "completed", NULL);
            return;
        }
        int64_t last = es_pg_int(page, n - 1,
                                 j->kind == SEL_STREAM ? ES_COL_STREAM_VERSION : ES_COL_POSITION);
        int rc;
        if (strcmp(j->mode, "republish") == 0) {
            if (!republish(w, j, page)) {
                PQclear(page);
                if (!cfg->nats.enabled) {
                    (void)finish(w, j, "failed", "republish needs NATS, and nats.enabled is false");
                    return;
                }
                es_warn("replay %s: NATS did not take the page after position %lld; resuming "
                        "in %d s",
                        j->id, (long long)j->checkpoint, REPUBLISH_RETRY_S);
                release(w, j, REPUBLISH_RETRY_S);
                return;
            }
            rc = advance(w, j, last, n) ? 1 : 0;
        } else {
            rc = apply_in_db(w, j, page, last);
        }
        PQclear(page);
        if (rc == 0) {
            es_info("replay %s stopped: cancelled (or taken over)", j->id);
            return;
        }
        if (rc < 0)
            return;
    }
    release(w, j, 0);
}

bool es_replay_run_one(es_rworker_t *w)
{
    job_t j;
    memset(&j, 0, sizeof(j));
    snprintf(j.token, sizeof(j.token), "%s:r%lld", w->id, (long long)++w->claims);
    char lease[16];
    snprintf(lease, sizeof(lease), "%d", w->cfg->replay.lease_seconds);
    const char *p[2] = {j.token, lease};
    PGresult *r = es_pgsync_query(&w->db, "claim replay",
                                  "SELECT replay_id, mode, target_service, subscription_id, "
                                  "selector::text, checkpoint, upper_position, "
                                  "selector ? 'event_ids', selector ? 'stream_id' "
                                  "FROM event.claim_replay($1, $2::int)",
                                  2, p);
    if (r == NULL || PQntuples(r) == 0) {
        PQclear(r);
        return false;
    }
    j.id = es_xstrdup(PQgetvalue(r, 0, 0));
    j.mode = es_xstrdup(PQgetvalue(r, 0, 1));
    j.target = PQgetisnull(r, 0, 2) ? NULL : es_xstrdup(PQgetvalue(r, 0, 2));
    j.subscription = PQgetisnull(r, 0, 3) ? NULL : es_xstrdup(PQgetvalue(r, 0, 3));
    j.selector = es_xstrdup(PQgetvalue(r, 0, 4));
    j.checkpoint = es_pg_int(r, 0, 5);
    j.has_upper = !PQgetisnull(r, 0, 6);
    j.upper = es_pg_int(r, 0, 6);
    j.kind = strcmp(PQgetvalue(r, 0, 7), "t") == 0   ? SEL_IDS
             : strcmp(PQgetvalue(r, 0, 8), "t") == 0 ? SEL_STREAM
                                                     : SEL_WINDOW;
    PQclear(r);
    es_info("replay %s running (%s, from checkpoint %lld)", j.id, j.mode,
            (long long)j.checkpoint);
    run(w, &j);
    job_free(&j);
    return true;
}
