/*
 * worker.h - what every worker process (API, processor, replay) does the
 * same way towards the master: dying with it, its signals, and the heartbeat
 * over the socketpair the master keeps to each worker.
 */
#ifndef ES_WORKER_H
#define ES_WORKER_H

#include "common/es.h"

/* SIGTERM when the master dies; on_stop on SIGTERM and SIGINT; SIGPIPE and
 * SIGHUP ignored (the master alone reloads). */
void es_worker_signals(void (*on_stop)(int));

/* Writes one heartbeat byte to master_fd (a full buffer only means the
 * master is slow to read). */
void es_worker_beat(int master_fd);

/* Reads what the master sent without blocking; true when the master is gone
 * (end of file or an error), after logging it. */
bool es_worker_master_gone(int master_fd);

/* For workers that block: at most once a second, beats and checks that the
 * master is still there. False once it is gone. */
bool es_worker_heartbeat(int master_fd, int64_t *last_beat_ms);

#endif
