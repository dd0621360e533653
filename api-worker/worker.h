/*
 * worker.h - the API worker process: one h2o event loop that serves HTTP on
 * the listening socket the master handed over, with its PostgreSQL pool, its
 * group-commit writer and its NATS connection.
 */
#ifndef ES_API_WORKER_H
#define ES_API_WORKER_H

#include "common/config.h"
#include "common/nats.h"

#include <h2o.h>

struct es_pgpool;
struct es_ingest;

typedef struct es_api {
    const es_config_t *cfg;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_evloop_t *loop;
    h2o_socket_t *listener;
    h2o_timeout_t request_timeout; /* deadline of every request waiting on the database */
    h2o_timeout_t second;          /* 1 s housekeeping */
    h2o_timeout_entry_t second_entry;
    struct es_pgpool *pg;
    struct es_ingest *ingest;
    es_nats_t *nats;
    int master_fd;         /* socketpair end: heartbeats out, EOF = the master died */
    bool stopping;         /* graceful stop: no new connections, finish in-flight requests */
    int64_t stop_began_ms; /* when stopping began (monotonic) */
    int inflight;          /* requests waiting for an asynchronous reply */
    int64_t last_compaction_ms;
} es_api_t;

/* The worker's one instance (a worker is a process). */
extern es_api_t *es_api;

/* Runs an API worker until it is told to stop; returns the exit status.
 * listen_fd: the bound, listening socket for this worker. master_fd: this
 * worker's end of the socketpair with the master. */
int es_api_worker_main(const es_config_t *cfg, int listen_fd, int master_fd);

#endif
