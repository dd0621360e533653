/* Processor types that finish at once: "nats" (publish the event JSON to
 * config.subject), "projection" (the projection is updated by
 * event.complete_events() in the transaction that records this run, so it
 * happens exactly once), and "noop" (succeeds; for benchmarks). */
#include "common/log.h"
#include "processor-worker/batch.h"

#include <string.h>

static es_rc_t start_nats(es_job_t *job, const es_proc_t *proc, bool *ok, char **message)
{
    const char *subject = json_string_value(json_object_get(proc->config, "subject"));
    natsConnection *nc = es_nats_conn(job->batch->nats);
    if (subject == NULL || nc == NULL || !es_nats_connected(job->batch->nats)) {
        *ok = false;
        *message = es_xstrdup(subject ? "NATS unavailable" : "config.subject missing");
        return ES_OK;
    }
    const char *body = es_job_event_json(job);
    natsStatus s = natsConnection_Publish(nc, subject, body, (int)strlen(body));
    *ok = s == NATS_OK;
    *message = *ok ? NULL : es_xasprintf("NATS publish failed: %s", natsStatus_GetText(s));
    return ES_OK;
}

static es_rc_t start_projection(es_job_t *job, const es_proc_t *proc, bool *ok, char **message)
{
    *ok = true;
    *message = job->stream_id ? NULL : es_xstrdup("event belongs to no stream; nothing to apply");
    return ES_OK;
}

static es_rc_t start_noop(es_job_t *job, const es_proc_t *proc, bool *ok, char **message)
{
    *ok = true;
    *message = NULL;
    return ES_OK;
}

const es_runner_t es_runner_nats = {"nats", start_nats, true, true};
const es_runner_t es_runner_projection = {"projection", start_projection, true, false};
const es_runner_t es_runner_noop = {"noop", start_noop, true, false};
