/*
 * worker.h - the replay worker process: claims replay jobs (FOR UPDATE SKIP
 * LOCKED, under a lease) and works through them page by page from their
 * checkpoint (job.c), and fires the configured schedules exactly once per due
 * time across every instance (schedule.c). Woken over NATS when a replay is
 * requested; polls as a fallback.
 */
#ifndef ES_REPLAY_WORKER_H
#define ES_REPLAY_WORKER_H

#include "common/config.h"
#include "common/nats.h"
#include "common/pgsync.h"

typedef struct {
    const es_config_t *cfg;
    es_pgsync_t db;
    es_nats_t *nats;
    es_pubset_t *pub; /* republished pages */
    int master_fd;
    int64_t last_beat_ms;
    int64_t claims;
    char id[48];
} es_rworker_t;

/* Runs a replay worker until SIGTERM or the master's death. */
int es_replay_worker_main(const es_config_t *cfg, int master_fd);

/* Heartbeat to the master when due; false once the worker should stop. */
bool es_rworker_alive(es_rworker_t *w);

/* Claims one due job and runs it to its end (or until it is cancelled, the
 * lease is lost, or the worker stops). Returns true when a job was claimed. */
bool es_replay_run_one(es_rworker_t *w);

/* Creates the jobs of the schedules that came due (once per due time, in any
 * number of instances). */
void es_replay_fire_schedules(es_rworker_t *w);

/* The replay subject of a target: "event.replay." + target reduced to NATS
 * token characters. Caller frees. */
char *es_replay_subject(const char *target_service);

#endif
