/*
 * batch.c - claim a batch, run the processors, record the outcome.
 *
 * No transaction is open while processors run: the claim is one statement
 * (event.claim_events pushes the rows one lease ahead), the outcome another
 * (event.complete_events records it only for rows this claim still holds).
 * A worker killed in between loses nothing: the lease runs out and the rows
 * are claimed again, and a run recorded once is never recorded twice.
 *
 * When every enabled processor finishes at once (es_runner_t.immediate) and
 * no subscription wants deliveries, the claim holds its rows instead
 * (schema/006): claim, runs and outcome happen in one transaction, with no
 * processor waiting on a remote host.
 *
 * Each outcome's event.processed.* publications are acknowledged by the
 * stream, or written to event.outbox, before the transaction that records it
 * commits (publish_results).
 */
#include "common/event_row.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/publish.h"
#include "common/timeutil.h"
#include "processor-worker/batch.h"
#include "processor-worker/pworker.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Columns of event.claim_events(): queue_position, attempts, done_processors,
 * routing_version, then the event (ES_EVENT_COLUMNS order). */
#define CLAIM_COL_VERSION 3
#define CLAIM_COL_EVENT 4

/* The enabled processors and subscriptions, cached by each claim loop and
 * loaded again only when event.routing_version (schema 003) moved. */
struct es_routing {
    int64_t version;
    es_proc_t *procs;
    int nprocs;
    es_sub_t *subs;
    int nsubs;
    bool immediate;   /* every processor finishes at once */
    bool sends_event; /* some processor sends the event: claims return whole rows */
    /* Batches hold their rows (schema/006): every processor finishes at once
     * and no subscription wants deliveries. A batch that fans out records its
     * deliveries in chunks, each committed as soon as it is written, so the
     * first go out while the rest are written; a hold would keep them all to
     * its one commit. */
    bool holds;
};

static const es_runner_t *const runners[] = {&es_runner_webhook, &es_runner_nats,
                                             &es_runner_projection, &es_runner_noop};

static const es_runner_t *runner_for(const char *type)
{
    for (size_t i = 0; i < ES_ARRAY_LEN(runners); i++)
        if (strcmp(runners[i]->type, type) == 0)
            return runners[i];
    return NULL;
}

/* Loads the enabled processors, highest priority first. A change takes effect
 * from the next batch on every worker of every instance (routing_version). */
static int load_processors(es_pworker_t *w, es_routing_t *b)
{
    PGresult *r = es_pworker_query(w, "load processors",
                                   "SELECT processor_id, processor_name, processor_type, "
                                   "filters::text, config::text FROM event.event_processors "
                                   "WHERE enabled ORDER BY priority DESC, processor_name",
                                   0, NULL);
    if (r == NULL)
        return -1;
    int n = PQntuples(r);
    b->procs = es_xcalloc((size_t)ES_MAX(n, 1), sizeof(es_proc_t));
    for (int i = 0; i < n; i++) {
        es_proc_t *p = &b->procs[b->nprocs];
        p->runner = runner_for(PQgetvalue(r, i, 2));
        json_t *filters = json_loads(PQgetvalue(r, i, 3), 0, NULL);
        es_field_error_t err;
        if (p->runner == NULL ||
            es_filters_parse(filters, "filters.", &p->filters, &err) != ES_OK) {
            es_warn("processor %s skipped: unknown type or bad filters", PQgetvalue(r, i, 1));
            json_decref(filters);
            continue;
        }
        json_decref(filters);
        p->id = es_xstrdup(PQgetvalue(r, i, 0));
        p->name = es_xstrdup(PQgetvalue(r, i, 1));
        p->type = es_xstrdup(PQgetvalue(r, i, 2));
        p->config = json_loads(PQgetvalue(r, i, 4), 0, NULL);
        if (!json_is_object(p->config)) {
            json_decref(p->config);
            p->config = json_object();
        }
        b->immediate = b->immediate && p->runner->immediate;
        b->sends_event = b->sends_event || p->runner->sends_event;
        b->nprocs++;
    }
    PQclear(r);
    return b->nprocs;
}

/* Loads the enabled subscriptions, for the fan-out of processed events. */
static int load_subscriptions(es_pworker_t *w, es_routing_t *b)
{
    PGresult *r = es_pworker_query(
        w, "load subscriptions",
        "SELECT subscription_id, json_build_object('event_types', event_types, 'event_sources', "
        "event_sources, 'event_categories', event_categories)::text "
        "FROM event.event_subscriptions WHERE enabled",
        0, NULL);
    if (r == NULL)
        return -1;
    int n = PQntuples(r);
    b->subs = es_xcalloc((size_t)ES_MAX(n, 1), sizeof(es_sub_t));
    for (int i = 0; i < n; i++) {
        json_t *f = json_loads(PQgetvalue(r, i, 1), 0, NULL);
        es_field_error_t err;
        es_sub_t *sub = &b->subs[b->nsubs];
        if (es_filters_parse(f, "", &sub->filters, &err) == ES_OK) {
            sub->id = es_xstrdup(PQgetvalue(r, i, 0));
            b->nsubs++;
        }
        json_decref(f);
    }
    PQclear(r);
    return b->nsubs;
}

static bool name_in(const json_t *names, const char *name)
{
    size_t i;
    const json_t *v;
    json_array_foreach(names, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
            return true;
    }
    return false;
}

/* Fills job from claim row i: which processors match, minus those that
 * already succeeded in an earlier attempt. */
static void build_job(es_batch_t *b, es_job_t *job, const PGresult *r, int i)
{
    const int c = CLAIM_COL_EVENT;
    job->batch = b;
    job->running = -1;
    job->position = es_pg_int(r, i, 0);
    job->attempts = (int)es_pg_int(r, i, 1);
    if (PQgetisnull(r, i, c + ES_COL_EVENT_ID))
        return;
    job->event_id = PQgetvalue(r, i, c + ES_COL_EVENT_ID);
    job->event_type = PQgetvalue(r, i, c + ES_COL_EVENT_TYPE);
    job->source = PQgetvalue(r, i, c + ES_COL_SOURCE);
    job->category = PQgetvalue(r, i, c + ES_COL_CATEGORY);
    job->stream_id =
        PQgetisnull(r, i, c + ES_COL_STREAM_ID) ? NULL : PQgetvalue(r, i, c + ES_COL_STREAM_ID);
    job->row_res = r;
    job->row = i;
    json_t *done = PQgetisnull(r, i, 2) ? NULL : json_loads(PQgetvalue(r, i, 2), 0, NULL);
    job->chain = es_xcalloc((size_t)ES_MAX(b->nprocs, 1), sizeof(int));
    job->names = es_xcalloc((size_t)ES_MAX(b->nprocs, 1), sizeof(char *));
    for (int p = 0; p < b->nprocs; p++) {
        if (!es_filters_match(&b->procs[p].filters, job->event_type, job->source, job->category))
            continue;
        job->names[job->nnames++] = b->procs[p].name;
        if (done == NULL || !name_in(done, b->procs[p].name))
            job->chain[job->nchain++] = p;
    }
    json_decref(done);
}

const char *es_job_event_json(es_job_t *job)
{
    if (job->event_json == NULL) {
        es_buf_t ev = ES_BUF_INIT;
        es_event_row_render(&ev, job->row_res, job->row, CLAIM_COL_EVENT);
        job->event_json = es_buf_take(&ev);
    }
    return job->event_json;
}

static bool will_retry(const es_job_t *job)
{
    return job->attempts <= job->batch->cfg->processing.max_retries;
}

/* Adds the result row of the processor that just ended on job. */
static void record(es_job_t *job, bool ok, const char *message)
{
    es_batch_t *b = job->batch;
    const es_proc_t *p = &b->procs[job->running];
    if (b->nruns == b->runs_cap) {
        b->runs_cap = b->runs_cap ? 2 * b->runs_cap : 64;
        b->runs = es_xrealloc(b->runs, (size_t)b->runs_cap * sizeof(es_run_t));
    }
    es_run_t *run = &b->runs[b->nruns++];
    run->position = job->position;
    run->event_id = job->event_id;
    run->proc = p;
    run->status = ok ? "success" : will_retry(job) ? "retry" : "failed";
    run->message = message ? es_xstrdup(message) : NULL;
    run->duration_ms = (es_time_now_us() - job->run_started_us) / 1000;
    run->attempt = job->attempts;
    run->projection = NULL;
    if (ok && strcmp(p->type, "projection") == 0 && job->stream_id != NULL) {
        const char *name = json_string_value(json_object_get(p->config, "name"));
        run->projection = name ? name : "default";
    }
    job->running = -1;
}

/* Starts job's next processors until one runs asynchronously, one fails, or
 * the chain ends. */
static void advance(es_job_t *job)
{
    while (!job->failed && job->next < job->nchain) {
        int p = job->chain[job->next++];
        const es_proc_t *proc = &job->batch->procs[p];
        job->running = p;
        job->run_started_us = es_time_now_us();
        bool ok = false;
        char *message = NULL;
        if (proc->runner->start(job, proc, &ok, &message) == ES_AGAIN)
            return;
        record(job, ok, message);
        if (!ok) {
            job->failed = true;
            job->error = message ? message : es_xstrdup("processor failed");
        } else {
            free(message);
        }
    }
}

void es_job_finished(es_job_t *job, bool ok, char *message)
{
    record(job, ok, message);
    if (!ok) {
        job->failed = true;
        job->error = message ? message : es_xstrdup("processor failed");
    } else {
        free(message);
    }
    advance(job);
}

/* Waits for the asynchronous runs of the batch, renewing the lease and
 * heartbeating while they take time. */
static void wait_async(es_pworker_t *w, es_batch_t *b, const char *token)
{
    int64_t last_renew = es_time_mono_ms();
    int64_t renew_every = (int64_t)w->cfg->processing.lease_seconds * 1000 / 3;
    while (b->pending_async > 0) {
        int running = 0;
        curl_multi_perform(w->multi, &running);
        es_webhook_collect(b);
        if (b->pending_async == 0)
            break;
        curl_multi_poll(w->multi, NULL, 0, 200, NULL);
        es_pworker_heartbeat(w);
        if (es_time_mono_ms() - last_renew > renew_every) {
            last_renew = es_time_mono_ms();
            char lease[16];
            snprintf(lease, sizeof(lease), "%d", w->cfg->processing.lease_seconds);
            const char *params[2] = {token, lease};
            PQclear(es_pworker_query(w, "renew lease", "SELECT event.renew_claim($1, $2::int)", 2,
                                     params));
        }
    }
}

static int64_t backoff_ms(const es_config_t *cfg, int attempt)
{
    double base = cfg->processing.backoff_base_ms;
    double d = base;
    for (int i = 1; i < attempt && d < cfg->processing.backoff_max_ms; i++)
        d *= 2;
    if (d > cfg->processing.backoff_max_ms)
        d = cfg->processing.backoff_max_ms;
    unsigned char r;
    es_random_bytes(&r, 1);
    return (int64_t)(d * (0.75 + 0.5 * r / 255.0)); /* +-25% jitter */
}

/* Appends job's entry of event.complete_events()'s p_outcomes to o. */
static void put_outcome(es_buf_t *o, const es_config_t *cfg, es_job_t *job)
{
    es_buf_printf(o, "{\"position\":%lld,", (long long)job->position);
    if (job->event_id == NULL) {
        es_buf_puts(o, "\"outcome\":\"gone\"}");
        return;
    }
    es_buf_puts(o, "\"event_id\":");
    es_buf_json_cstr(o, job->event_id);
    if (!job->failed) {
        es_buf_puts(o, ",\"outcome\":\"processed\",\"processors\":[");
        for (int i = 0; i < job->nnames; i++) {
            if (i > 0)
                es_buf_putc(o, ',');
            es_buf_json_cstr(o, job->names[i]);
        }
        es_buf_puts(o, "]}");
        return;
    }
    es_buf_puts(o, ",\"error_message\":");
    es_buf_json_cstr(o, job->error);
    if (will_retry(job)) {
        char when[ES_TIME_BUFLEN];
        es_time_format(es_time_now_us() + backoff_ms(cfg, job->attempts) * 1000, when);
        es_buf_printf(o, ",\"outcome\":\"retry\",\"run_at\":\"%s\",\"retry_count\":%d}", when,
                      job->attempts);
    } else {
        es_buf_printf(o, ",\"outcome\":\"failed\",\"retry_count\":%d}", job->attempts - 1);
    }
}

/* Appends run (the ord-th of its batch) as an entry of p_results to r. */
static void put_run(es_buf_t *r, const es_run_t *run, int ord)
{
    es_buf_printf(r, "{\"position\":%lld,\"event_id\":", (long long)run->position);
    es_buf_json_cstr(r, run->event_id);
    es_buf_puts(r, ",\"processor_id\":");
    es_buf_json_cstr(r, run->proc->id);
    es_buf_puts(r, ",\"processor_name\":");
    es_buf_json_cstr(r, run->proc->name);
    es_buf_printf(r, ",\"status\":\"%s\",\"duration_ms\":%lld,\"message\":", run->status,
                  (long long)run->duration_ms);
    if (run->message != NULL)
        es_buf_json_cstr(r, run->message);
    else
        es_buf_puts(r, "null");
    es_buf_printf(r, ",\"attempt\":%d,\"ord\":%d", run->attempt, ord);
    if (run->projection != NULL) {
        es_buf_puts(r, ",\"projection\":");
        es_buf_json_cstr(r, run->projection);
    }
    es_buf_putc(r, '}');
}

/* A completion transaction creates at most about this many deliveries: a
 * batch with a large fan-out (many events times many subscriptions) is
 * recorded in several shorter transactions, so its first deliveries can go
 * out early and no long transaction holds back the vacuum of hot tables. */
#define FANOUT_CHUNK 2000

/* The subscriptions that want job's event (processed events only). */
static bool wants(const es_sub_t *sub, const es_job_t *j)
{
    return j->event_id != NULL && !j->failed &&
           es_filters_match(&sub->filters, j->event_type, j->source, j->category);
}

/* The end (exclusive) of the chunk of jobs that starts at i0; *ndlv set to
 * the deliveries it creates. */
static int chunk_end(const es_batch_t *b, int i0, int *ndlv)
{
    int i = i0;
    *ndlv = 0;
    while (i < b->njobs && (i == i0 || *ndlv < FANOUT_CHUNK)) {
        for (int k = 0; k < b->nsubs; k++)
            *ndlv += wants(&b->subs[k], &b->jobs[i]);
        i++;
    }
    return i;
}

/* How long a completion waits for the stream's acknowledgements before it
 * writes the unanswered publications to the outbox. */
#define PUBLISH_SETTLE_MS 2000

/* Whether w's connection is in a healthy open transaction: still the one a
 * held claim began (a broken connection is replaced only by the next query). */
static bool in_transaction(es_pworker_t *w)
{
    return w->db.conn != NULL && PQtransactionStatus(w->db.conn) == PQTRANS_INTRANS;
}

/* Positions a completion recorded (ascending within a batch). */
typedef struct {
    int64_t *v;
    int n;
} es_held_t;

/* Commits the open transaction; false (and nothing committed) when it is
 * not a healthy open one or the commit failed. */
static bool commit(es_pworker_t *w, const char *what)
{
    return in_transaction(w) && es_pgsync_exec(&w->db, what, "COMMIT");
}

/* Records jobs [i0, i1) in one event.complete_events call; appends the
 * positions the claim still held to held. token NULL: the rows are held by
 * this connection's open transaction. False when the call failed. */
static bool complete_chunk(es_pworker_t *w, es_batch_t *b, const char *token, int i0, int i1,
                           es_held_t *held)
{
    es_buf_t outcomes = ES_BUF_INIT, deliveries = ES_BUF_INIT, results = ES_BUF_INIT;
    es_buf_putc(&outcomes, '[');
    es_buf_putc(&deliveries, '[');
    bool first = true;
    for (int i = i0; i < i1; i++) {
        es_job_t *j = &b->jobs[i];
        if (i > i0)
            es_buf_putc(&outcomes, ',');
        put_outcome(&outcomes, b->cfg, j);
        for (int k = 0; k < b->nsubs; k++) {
            if (!wants(&b->subs[k], j))
                continue;
            es_buf_printf(&deliveries, "%s{\"position\":%lld,\"event_id\":", first ? "" : ",",
                          (long long)j->position);
            es_buf_json_cstr(&deliveries, j->event_id);
            es_buf_puts(&deliveries, ",\"subscription_id\":");
            es_buf_json_cstr(&deliveries, b->subs[k].id);
            es_buf_putc(&deliveries, '}');
            first = false;
        }
    }
    es_buf_putc(&outcomes, ']');
    es_buf_putc(&deliveries, ']');
    /* The result rows of these jobs (positions ascend with the job index). */
    es_buf_putc(&results, '[');
    first = true;
    for (int r = 0; r < b->nruns; r++) {
        const es_run_t *run = &b->runs[r];
        if (run->position < b->jobs[i0].position || run->position > b->jobs[i1 - 1].position)
            continue;
        if (!first)
            es_buf_putc(&results, ',');
        put_run(&results, run, r);
        first = false;
    }
    es_buf_putc(&results, ']');
    const char *params[4] = {token, outcomes.data, results.data, deliveries.data};
    PGresult *done = NULL;
    if (token != NULL || in_transaction(w))
        done = es_pworker_query(
            w, "complete events",
            "SELECT * FROM event.complete_events($1, $2::jsonb, $3::jsonb, $4::jsonb)", 4, params);
    es_buf_free(&outcomes);
    es_buf_free(&results);
    es_buf_free(&deliveries);
    if (done == NULL)
        return false;
    int n = PQntuples(done);
    held->v = es_xrealloc(held->v, (size_t)(held->n + n) * sizeof(int64_t));
    for (int i = 0; i < n; i++)
        held->v[held->n++] = es_pg_int(done, i, 0);
    PQclear(done);
    return true;
}

/* Whether pos is in held (ascending positions). */
static bool is_held(const es_held_t *held, int64_t pos)
{
    int lo = 0, hi = held->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (held->v[mid] == pos)
            return true;
        if (held->v[mid] < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Writes a publication to event.outbox, in the open transaction. */
static bool spill(es_pworker_t *w, const char *subject, const char *msg_id, const char *data,
                  size_t len)
{
    char *payload = es_xmalloc(len + 1);
    memcpy(payload, data, len);
    payload[len] = '\0';
    const char *params[3] = {subject, msg_id, payload};
    PGresult *r = es_pworker_query(w, "outbox spill",
                                   "INSERT INTO event.outbox (subject, msg_id, payload) "
                                   "VALUES ($1, $2, $3)",
                                   3, params);
    free(payload);
    PQclear(r);
    return r != NULL;
}

typedef struct {
    es_pworker_t *w;
    bool ok;
} spill_ctx_t;

static void spill_unacked(const char *subject, const char *msg_id, const char *data, int len,
                          void *closure)
{
    spill_ctx_t *c = closure;
    if (c->ok && (msg_id == NULL || !spill(c->w, subject, msg_id, data, (size_t)len)))
        c->ok = false;
}

/* event.processed.success / event.processed.failed are published before the
 * commit that records their runs, and settled (settle_results) before it:
 * the stream acknowledged each, or it is written to event.outbox in that
 * same transaction and sent when NATS is back. So a recorded run is always
 * published (a run whose commit then fails may be published and run again).
 *
 * Publishes the runs of the positions in only (NULL: every run of the
 * batch). A publication refused at once goes to the outbox now. False when
 * the outbox could not be written: the transaction must not commit. */
static bool publish_results(es_pworker_t *w, es_batch_t *b, const es_held_t *only,
                            const char *token)
{
    bool ok = true;
    char now[ES_TIME_BUFLEN];
    es_time_format(es_time_now_us(), now);
    es_buf_t data = ES_BUF_INIT, env = ES_BUF_INIT, msg_id = ES_BUF_INIT;
    for (int r = 0; r < b->nruns; r++) {
        const es_run_t *run = &b->runs[r];
        if (only != NULL && !is_held(only, run->position))
            continue;
        bool success = strcmp(run->status, "success") == 0;
        es_buf_reset(&data);
        es_buf_puts(&data, "{\"event_id\":");
        es_buf_json_cstr(&data, run->event_id);
        es_buf_puts(&data, ",\"processor_name\":");
        es_buf_json_cstr(&data, run->proc->name);
        if (success) {
            es_buf_printf(&data,
                          ",\"status\":\"success\",\"processed_at\":\"%s\",\"duration_ms\":%lld,"
                          "\"result\":null}",
                          now, (long long)run->duration_ms);
        } else {
            es_buf_puts(&data, ",\"error_message\":");
            if (run->message != NULL)
                es_buf_json_cstr(&data, run->message);
            else
                es_buf_puts(&data, "null");
            es_buf_printf(&data,
                          ",\"error_type\":\"processor_error\",\"retry_count\":%d,"
                          "\"failed_at\":\"%s\",\"will_retry\":%s}",
                          run->attempt - 1, now,
                          strcmp(run->status, "retry") == 0 ? "true" : "false");
        }
        const char *subject = success ? "event.processed.success" : "event.processed.failed";
        es_buf_reset(&env);
        es_publish_envelope(&env, subject, data.data, data.len);
        /* Unique per run: the claim token names this attempt even after an
         * admin retry restarted the attempt count. */
        es_buf_reset(&msg_id);
        es_buf_puts(&msg_id, run->event_id);
        es_buf_putc(&msg_id, ':');
        es_buf_puts(&msg_id, run->proc->name);
        es_buf_putc(&msg_id, ':');
        es_buf_puts(&msg_id, token);
        es_buf_putc(&msg_id, ':');
        es_buf_puts(&msg_id, run->status);
        if (es_pubset_publish(w->pub, subject, env.data, env.len, msg_id.data) != ES_OK &&
            !spill(w, subject, msg_id.data, env.data, env.len)) {
            ok = false;
            break;
        }
    }
    es_buf_free(&data);
    es_buf_free(&env);
    es_buf_free(&msg_id);
    return ok;
}

/* Waits for the answers to what publish_results sent and writes what the
 * stream did not acknowledge to the outbox (see there). */
static bool settle_results(es_pworker_t *w)
{
    spill_ctx_t c = {w, true};
    es_pubset_settle(w->pub, PUBLISH_SETTLE_MS, spill_unacked, &c);
    return c.ok;
}

/* After a rollback: the answers to what was published are awaited and
 * forgotten (the runs were not recorded and will run again), so none is
 * written to the outbox of a later transaction. */
static void drop_results(es_pworker_t *w)
{
    es_pubset_settle(w->pub, PUBLISH_SETTLE_MS, NULL, NULL);
}

static void batch_free(es_batch_t *b)
{
    for (int i = 0; i < b->njobs; i++) {
        es_job_t *j = &b->jobs[i];
        free(j->event_json);
        free(j->chain);
        free(j->names);
        free(j->error);
    }
    free(b->jobs);
    for (int r = 0; r < b->nruns; r++)
        free(b->runs[r].message);
    free(b->runs);
}

static void routing_free(es_routing_t *rt)
{
    if (rt == NULL)
        return;
    for (int i = 0; i < rt->nsubs; i++) {
        free(rt->subs[i].id);
        es_filters_free(&rt->subs[i].filters);
    }
    free(rt->subs);
    for (int i = 0; i < rt->nprocs; i++) {
        es_proc_t *p = &rt->procs[i];
        free(p->id);
        free(p->name);
        free(p->type);
        es_filters_free(&p->filters);
        json_decref(p->config);
    }
    free(rt->procs);
    free(rt);
}

void es_batch_cleanup(es_pworker_t *w)
{
    routing_free(w->routing);
    w->routing = NULL;
}

/* The routing of the version the claim saw: the cached one, or loaded now. */
static es_routing_t *routing(es_pworker_t *w, int64_t version)
{
    if (w->routing != NULL && w->routing->version == version)
        return w->routing;
    es_batch_cleanup(w);
    es_routing_t *rt = es_xcalloc(1, sizeof(*rt));
    rt->version = version;
    rt->immediate = true;
    if (load_processors(w, rt) < 0 || load_subscriptions(w, rt) < 0) {
        routing_free(rt);
        return NULL;
    }
    rt->holds = rt->immediate && rt->nsubs == 0;
    w->routing = rt;
    return rt;
}

int es_batch_process(es_pworker_t *w)
{
    const es_config_t *cfg = w->cfg;
    char token[96], limit[16], lease[16];
    snprintf(token, sizeof(token), "%s:%lld", w->id, (long long)++w->batches);
    snprintf(limit, sizeof(limit), "%d", cfg->processing.batch_size);
    snprintf(lease, sizeof(lease), "%d", cfg->processing.lease_seconds);
    /* Hold the rows when the routing last seen allows it (es_routing.holds),
     * and then leave out the event's columns unless a processor sends it. */
    bool hold = w->routing != NULL && w->routing->holds;
    bool full = !hold || w->routing->sends_event;
    if (hold && !es_pgsync_exec(&w->db, "begin a held claim", "BEGIN"))
        return -1;
    const char *params[4] = {limit, hold ? NULL : lease, token, full ? "true" : "false"};
    PGresult *claim = es_pworker_query(
        w, "claim events", "SELECT * FROM event.claim_events($1::int, $2::int, $3, $4::boolean)",
        4, params);
    if (claim == NULL) {
        if (hold)
            es_pgsync_rollback(&w->db);
        return -1;
    }
    int n = PQntuples(claim);
    if (n == 0) {
        PQclear(claim);
        if (hold)
            es_pgsync_rollback(&w->db); /* nothing was changed */
        return 0;
    }

    es_batch_t b;
    memset(&b, 0, sizeof(b));
    b.cfg = cfg;
    b.nats = w->nats;
    b.multi = w->multi;
    es_held_t held = {NULL, 0};
    int rc = n;
    es_routing_t *rt = routing(w, es_pg_int(claim, 0, CLAIM_COL_VERSION));
    if (rt == NULL) {
        rc = -1; /* the lease runs out (or the hold ends) and the batch is claimed again */
        goto cleanup;
    }
    if (hold && (!rt->holds || (rt->sends_event && !full)))
        goto cleanup; /* the routing changed: given back untouched, claimed again at once */
    b.procs = rt->procs;
    b.nprocs = rt->nprocs;
    b.subs = rt->subs;
    b.nsubs = rt->nsubs;
    b.jobs = es_xcalloc((size_t)n, sizeof(es_job_t));
    b.njobs = n;
    for (int i = 0; i < n; i++)
        build_job(&b, &b.jobs[i], claim, i);
    for (int i = 0; i < n; i++)
        if (b.jobs[i].event_id != NULL)
            advance(&b.jobs[i]);
    wait_async(w, &b, token);

    /* Recorded in chunks (positions in claim order), each one transaction
     * with its publications, or all in the held claim's transaction. A hold
     * keeps every row it claimed, so its runs are published first and their
     * answers come in while PostgreSQL records them. */
    bool published = !hold || publish_results(w, &b, NULL, token);
    for (int i0 = 0, i1; published && i0 < n; i0 = i1) {
        int ndlv = 0;
        i1 = chunk_end(&b, i0, &ndlv);
        int h0 = held.n;
        /* A leased chunk is its own transaction, with its publications; with
         * no run to publish, the completion's statement is that transaction. */
        bool own_tx = !hold && b.nruns > 0;
        if (own_tx && !es_pgsync_exec(&w->db, "begin a completion", "BEGIN")) {
            rc = -1;
            break;
        }
        if (!complete_chunk(w, &b, hold ? NULL : token, i0, i1, &held)) {
            rc = -1;
            break;
        }
        if (hold)
            continue;
        es_held_t chunk = {held.v + h0, held.n - h0};
        if (own_tx && (!publish_results(w, &b, &chunk, token) || !settle_results(w) ||
                       !commit(w, "commit a completion"))) {
            es_pgsync_rollback(&w->db);
            drop_results(w);
            held.n = h0; /* this chunk was not recorded */
            rc = -1;
            break;
        }
        if (ndlv > 0 && w->on_deliveries != NULL)
            w->on_deliveries(w);
    }
    if (rc < 0 || !published ||
        (hold && (!settle_results(w) || !commit(w, "commit a held claim")))) {
        es_pgsync_rollback(&w->db);
        drop_results(w);
        if (hold)
            held.n = 0; /* nothing was recorded */
        rc = -1;
    }
    hold = false;
    if (held.n < n && rc >= 0)
        es_warn("%d of %d claimed events were taken over by another worker (lease ran out)",
                n - held.n, n);
    if (rc < 0)
        goto cleanup; /* the rest: the lease runs out and they are claimed again */
    int counts[ES_OUT_COUNT] = {0};
    for (int i = 0; i < n; i++) {
        es_job_t *j = &b.jobs[i];
        if (j->event_id != NULL)
            counts[!j->failed ? ES_OUT_PROCESSED : will_retry(j) ? ES_OUT_RETRY : ES_OUT_FAILED]++;
    }
    for (int k = 0; k < ES_OUT_COUNT; k++)
        if (counts[k])
            es_metrics_processed((es_proc_outcome_t)k, counts[k]);
cleanup:
    if (hold)
        es_pgsync_rollback(&w->db);
    free(held.v);
    batch_free(&b);
    PQclear(claim);
    return rc;
}
