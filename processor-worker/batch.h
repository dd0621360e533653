/*
 * batch.h - one claimed batch of events and the processors that run on it.
 */
#ifndef ES_PROC_BATCH_H
#define ES_PROC_BATCH_H

#include "common/buf.h"
#include "common/filters.h"
#include "common/nats.h"

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>

typedef struct es_batch es_batch_t;
typedef struct es_job es_job_t;
typedef struct es_runner es_runner_t;
typedef struct es_routing es_routing_t;

/* An enabled subscription, as loaded for this batch (fan-out). */
typedef struct {
    char *id;
    es_filters_t filters;
} es_sub_t;

/* An enabled processor, as loaded for this batch. */
typedef struct {
    char *id;
    char *name;
    char *type;
    es_filters_t filters;
    json_t *config;
    const es_runner_t *runner;
} es_proc_t;

/* One claimed event and its progress through its processors. */
struct es_job {
    es_batch_t *batch;
    int64_t position;
    int attempts;
    const char *event_id; /* NULL: the event is gone (queue row only) */
    const char *event_type, *source, *category, *stream_id;
    char *event_json;        /* the event as the API renders it: es_job_event_json() */
    const PGresult *row_res; /* the claim result and row it is rendered from */
    int row;
    int *chain; /* indices into batch->procs still to run, in priority order */
    int nchain;
    int next;     /* next index into chain */
    char **names; /* every matched processor name (for events.processors) */
    int nnames;
    bool failed;
    char *error;
    int64_t run_started_us;
    int running; /* index into batch->procs of the processor in progress, -1 none */
};

/* How a processor type runs. start() either finishes at once (returns ES_OK
 * with *ok and *message set; message may be NULL, else heap) or starts
 * asynchronous work (returns ES_AGAIN) and later calls es_job_finished. */
struct es_runner {
    const char *type;
    es_rc_t (*start)(es_job_t *job, const es_proc_t *proc, bool *ok, char **message);
    /* start() always finishes at once, without waiting on a remote host: a
     * batch whose processors all do may run inside its claim's transaction
     * (schema/006). */
    bool immediate;
    /* start() sends the event (es_job_event_json): its claim must return the
     * whole row (event.claim_events p_full). */
    bool sends_event;
};

/* The event as the API renders it (the payload processors send out), rendered
 * on first use: a batch that only runs noop or projection processors never
 * renders it, and may have claimed its rows without the columns it needs. */
const char *es_job_event_json(es_job_t *job);

/* One processor run of the batch, in the order the runs ended. */
typedef struct {
    int64_t position;
    const char *event_id; /* the claim's */
    const es_proc_t *proc;
    const char *status;     /* "success", "retry" or "failed" */
    char *message;          /* NULL or heap */
    int64_t duration_ms;
    int attempt;
    const char *projection; /* the projection to apply the event to, or NULL */
} es_run_t;

struct es_batch {
    const es_config_t *cfg;
    es_nats_t *nats;
    CURLM *multi; /* owned by the worker; shared by every batch */
    es_proc_t *procs;
    int nprocs;
    es_sub_t *subs;
    int nsubs;
    es_job_t *jobs;
    int njobs;
    int pending_async;
    es_run_t *runs; /* rows for event.complete_events(), in run order */
    int nruns, runs_cap;
};

/* Records the end of job's running processor and starts the next one. */
void es_job_finished(es_job_t *job, bool ok, char *message);

extern const es_runner_t es_runner_webhook;
extern const es_runner_t es_runner_nats;
extern const es_runner_t es_runner_projection;
extern const es_runner_t es_runner_noop;

/* Completes webhook transfers that are done (call after curl_multi_perform). */
void es_webhook_collect(es_batch_t *b);

#endif
