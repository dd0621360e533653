/*
 * batch.c - claim a batch, run the processors, record the outcome.
 *
 * No transaction is open while processors run: the claim is one statement
 * (event.claim_events pushes the rows one lease ahead), the outcome another
 * (event.complete_events records it only for rows this claim still holds).
 * A worker killed in between loses nothing: the lease runs out and the rows
 * are claimed again, and a run recorded once is never recorded twice.
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
 * then the event (ES_EVENT_COLUMNS order). */
#define CLAIM_COL_EVENT 3

static const es_runner_t *const runners[] = {&es_runner_webhook, &es_runner_nats,
                                             &es_runner_projection, &es_runner_noop};

static const es_runner_t *runner_for(const char *type)
{
    for (size_t i = 0; i < ES_ARRAY_LEN(runners); i++)
        if (strcmp(runners[i]->type, type) == 0)
            return runners[i];
    return NULL;
}

/* Loads the enabled processors, highest priority first. Read per batch, so a
 * toggle takes effect for the next batch on every worker of every instance. */
static int load_processors(es_pworker_t *w, es_batch_t *b)
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
        if (p->runner == NULL || es_filters_parse(filters, "filters.", &p->filters, &err) != ES_OK) {
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
        b->nprocs++;
    }
    PQclear(r);
    return b->nprocs;
}

/* Loads the enabled subscriptions, for the fan-out of processed events. */
static int load_subscriptions(es_pworker_t *w, es_batch_t *b)
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
    job->stream_id = PQgetisnull(r, i, c + ES_COL_STREAM_ID) ? NULL
                                                             : PQgetvalue(r, i, c + ES_COL_STREAM_ID);
    es_buf_t ev = ES_BUF_INIT;
    es_event_row_render(&ev, r, i, c);
    job->event_json = es_buf_take(&ev);
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

static bool will_retry(const es_job_t *job)
{
    return job->attempts <= job->batch->cfg->processing.max_retries;
}

/* Adds the result row of the processor that just ended on job. */
static void record(es_job_t *job, bool ok, const char *message)
{
    es_batch_t *b = job->batch;
    const es_proc_t *p = &b->procs[job->running];
    int64_t ms = (es_time_now_us() - job->run_started_us) / 1000;
    const char *status = ok ? "success" : will_retry(job) ? "retry" : "failed";
    json_t *row = json_pack("{sI ss ss ss ss sI}", "position", (json_int_t)job->position,
                            "event_id", job->event_id, "processor_id", p->id, "processor_name",
                            p->name, "status", status, "duration_ms", (json_int_t)ms);
    json_object_set_new(row, "message", message ? json_string(message) : json_null());
    json_object_set_new(row, "attempt", json_integer(job->attempts));
    json_object_set_new(row, "ord", json_integer((json_int_t)json_array_size(b->results)));
    if (ok && strcmp(p->type, "projection") == 0 && job->stream_id != NULL) {
        const char *name = json_string_value(json_object_get(p->config, "name"));
        json_object_set_new(row, "projection", json_string(name ? name : "default"));
    }
    json_array_append_new(b->results, row);
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

static json_t *outcome_of(const es_config_t *cfg, es_job_t *job)
{
    json_t *o = json_pack("{sI}", "position", (json_int_t)job->position);
    if (job->event_id == NULL) {
        json_object_set_new(o, "outcome", json_string("gone"));
        return o;
    }
    json_object_set_new(o, "event_id", json_string(job->event_id));
    if (!job->failed) {
        json_t *names = json_array();
        for (int i = 0; i < job->nnames; i++)
            json_array_append_new(names, json_string(job->names[i]));
        json_object_set_new(o, "outcome", json_string("processed"));
        json_object_set_new(o, "processors", names);
        return o;
    }
    json_object_set_new(o, "error_message", json_string(job->error));
    if (will_retry(job)) {
        char when[ES_TIME_BUFLEN];
        es_time_format(es_time_now_us() + backoff_ms(cfg, job->attempts) * 1000, when);
        json_object_set_new(o, "outcome", json_string("retry"));
        json_object_set_new(o, "run_at", json_string(when));
        json_object_set_new(o, "retry_count", json_integer(job->attempts));
    } else {
        json_object_set_new(o, "outcome", json_string("failed"));
        json_object_set_new(o, "retry_count", json_integer(job->attempts - 1));
    }
    return o;
}

/* event.processed.success / event.processed.failed for each recorded run.
 * When NATS is down they go to event.outbox and are sent when it is back. */
static void publish_results(es_pworker_t *w, es_batch_t *b, const json_t *held, const char *token)
{
    size_t i;
    json_t *row;
    char now[ES_TIME_BUFLEN];
    es_time_format(es_time_now_us(), now);
    json_array_foreach(b->results, i, row)
    {
        json_int_t pos = json_integer_value(json_object_get(row, "position"));
        bool is_held = false;
        size_t k;
        json_t *h;
        json_array_foreach(held, k, h)
        {
            if (json_integer_value(h) == pos) {
                is_held = true;
                break;
            }
        }
        if (!is_held)
            continue;
        const char *status = json_string_value(json_object_get(row, "status"));
        bool ok = strcmp(status, "success") == 0;
        json_t *data;
        if (ok)
            data = json_pack("{sO sO ss ss sO sn}", "event_id", json_object_get(row, "event_id"),
                             "processor_name", json_object_get(row, "processor_name"), "status",
                             "success", "processed_at", now, "duration_ms",
                             json_object_get(row, "duration_ms"), "result");
        else
            data = json_pack("{sO sO sO ss sI ss sb}", "event_id",
                             json_object_get(row, "event_id"), "processor_name",
                             json_object_get(row, "processor_name"), "error_message",
                             json_object_get(row, "message"), "error_type", "processor_error",
                             "retry_count",
                             (json_int_t)(json_integer_value(json_object_get(row, "attempt")) - 1),
                             "failed_at", now, "will_retry", strcmp(status, "retry") == 0);
        char *data_s = json_dumps(data, JSON_COMPACT);
        json_decref(data);
        es_buf_t env = ES_BUF_INIT;
        const char *subject = ok ? "event.processed.success" : "event.processed.failed";
        es_publish_envelope(&env, subject, data_s, strlen(data_s));
        /* Unique per run: the claim token names this attempt even after an
         * admin retry restarted the attempt count. */
        char *msg_id = es_xasprintf("%s:%s:%s:%s",
                                    json_string_value(json_object_get(row, "event_id")),
                                    json_string_value(json_object_get(row, "processor_name")),
                                    token, status);
        if (es_nats_js_publish(w->nats, subject, env.data, env.len, msg_id) != ES_OK) {
            const char *params[3] = {subject, msg_id, env.data};
            PQclear(es_pworker_query(w, "outbox spill",
                                     "INSERT INTO event.outbox (subject, msg_id, payload) "
                                     "VALUES ($1, $2, $3)",
                                     3, params));
        }
        free(msg_id);
        free(data_s);
        es_buf_free(&env);
    }
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
    for (int i = 0; i < b->nsubs; i++) {
        free(b->subs[i].id);
        es_filters_free(&b->subs[i].filters);
    }
    free(b->subs);
    for (int i = 0; i < b->nprocs; i++) {
        es_proc_t *p = &b->procs[i];
        free(p->id);
        free(p->name);
        free(p->type);
        es_filters_free(&p->filters);
        json_decref(p->config);
    }
    free(b->procs);
    json_decref(b->results);
}

int es_batch_process(es_pworker_t *w)
{
    const es_config_t *cfg = w->cfg;
    char token[96], limit[16], lease[16];
    snprintf(token, sizeof(token), "%s:%lld", w->id, (long long)++w->batches);
    snprintf(limit, sizeof(limit), "%d", cfg->processing.batch_size);
    snprintf(lease, sizeof(lease), "%d", cfg->processing.lease_seconds);
    const char *params[3] = {limit, lease, token};
    PGresult *claim = es_pworker_query(
        w, "claim events", "SELECT * FROM event.claim_events($1::int, $2::int, $3)", 3, params);
    if (claim == NULL)
        return -1;
    int n = PQntuples(claim);
    if (n == 0) {
        PQclear(claim);
        return 0;
    }

    es_batch_t b;
    memset(&b, 0, sizeof(b));
    b.cfg = cfg;
    b.nats = w->nats;
    b.multi = w->multi;
    b.results = json_array();
    int rc = n;
    if (load_processors(w, &b) < 0 || load_subscriptions(w, &b) < 0) {
        rc = -1; /* the lease runs out and the batch is claimed again */
        goto cleanup;
    }
    b.jobs = es_xcalloc((size_t)n, sizeof(es_job_t));
    b.njobs = n;
    for (int i = 0; i < n; i++)
        build_job(&b, &b.jobs[i], claim, i);
    for (int i = 0; i < n; i++)
        if (b.jobs[i].event_id != NULL)
            advance(&b.jobs[i]);
    wait_async(w, &b, token);

    json_t *outcomes = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(outcomes, outcome_of(cfg, &b.jobs[i]));
    /* Deliveries for every subscription that wants a processed event. */
    es_buf_t deliveries = ES_BUF_INIT;
    es_buf_putc(&deliveries, '[');
    bool any_delivery = false;
    for (int i = 0; i < n; i++) {
        es_job_t *j = &b.jobs[i];
        if (j->event_id == NULL || j->failed)
            continue;
        for (int k = 0; k < b.nsubs; k++) {
            if (!es_filters_match(&b.subs[k].filters, j->event_type, j->source, j->category))
                continue;
            es_buf_printf(&deliveries, "%s{\"position\":%lld,\"event_id\":",
                          any_delivery ? "," : "", (long long)j->position);
            es_buf_json_cstr(&deliveries, j->event_id);
            es_buf_puts(&deliveries, ",\"subscription_id\":");
            es_buf_json_cstr(&deliveries, b.subs[k].id);
            es_buf_putc(&deliveries, '}');
            any_delivery = true;
        }
    }
    es_buf_putc(&deliveries, ']');
    char *outcomes_s = json_dumps(outcomes, JSON_COMPACT);
    char *results_s = json_dumps(b.results, JSON_COMPACT);
    json_decref(outcomes);
    const char *cparams[4] = {token, outcomes_s, results_s, deliveries.data};
    PGresult *done = es_pworker_query(
        w, "complete events",
        "SELECT * FROM event.complete_events($1, $2::jsonb, $3::jsonb, $4::jsonb)", 4, cparams);
    free(outcomes_s);
    free(results_s);
    es_buf_free(&deliveries);
    if (done != NULL && any_delivery && w->on_deliveries != NULL)
        w->on_deliveries(w);
    if (done == NULL) {
        rc = -1;
        goto cleanup;
    }
    json_t *held = json_array();
    for (int i = 0; i < PQntuples(done); i++)
        json_array_append_new(held, json_integer(es_pg_int(done, i, 0)));
    if ((int)json_array_size(held) < n)
        es_warn("%d of %d claimed events were taken over by another worker (lease ran out)",
                n - (int)json_array_size(held), n);
    PQclear(done);
    publish_results(w, &b, held, token);
    json_decref(held);
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
    batch_free(&b);
    PQclear(claim);
    return rc;
}
