/*
 * pworker.h - state of a processor worker process shared by its modules.
 */
#ifndef ES_PROC_PWORKER_H
#define ES_PROC_PWORKER_H

#include "common/config.h"
#include "common/nats.h"
#include "common/pgsync.h"

#include <curl/curl.h>
#include <libpq-fe.h>
#include <signal.h>

typedef struct es_pworker {
    const es_config_t *cfg;
    es_pgsync_t db; /* this claim loop's connection */
    es_nats_t *nats;
    es_pubset_t *pub; /* this claim loop's publications (event.processed.*) */
    CURLM *multi;
    int master_fd;
    int64_t last_beat_ms;
    uint64_t wake_seen;         /* the last wake-up generation this loop saw */
    int64_t batches;            /* counter for claim tokens */
    char id[48];                /* "host:pid": shows in claim tokens */
    struct es_routing *routing; /* processors and subscriptions (batch.c) */
    /* Called after a batch created webhook deliveries (wakes the senders). */
    void (*on_deliveries)(struct es_pworker *w);
} es_pworker_t;

/* Set by SIGTERM/SIGINT or the master's death. */
extern volatile sig_atomic_t es_pworker_stop;

/* Sends a heartbeat to the master when one is due (only the handle that owns
 * master_fd; claim loops have -1); notices the master's death. */
void es_pworker_heartbeat(es_pworker_t *w);

/* Runs sql on w->db (es_pgsync_query). */
PGresult *es_pworker_query(es_pworker_t *w, const char *what, const char *sql, int nparams,
                           const char *const *params);

/* Claims, runs and completes one batch. Returns the number of events
 * claimed (0: nothing due), or -1 when the database failed. */
int es_batch_process(es_pworker_t *w);

/* Frees what es_batch_process keeps between batches. */
void es_batch_cleanup(es_pworker_t *w);

#endif
