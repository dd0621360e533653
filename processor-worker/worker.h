/*
 * worker.h - the processor worker process: claims pending events from
 * event.processing_queue in batches (FOR UPDATE SKIP LOCKED, under a lease),
 * runs the matching processors, records the outcome in one transaction, and
 * publishes what happened. One thread processes; another (outbox.c) publishes
 * event.stored in position order when this worker holds the publisher lock.
 * Woken over NATS the moment API workers commit; polls as a fallback.
 */
#ifndef ES_PROC_WORKER_H
#define ES_PROC_WORKER_H

#include "common/config.h"

/* Runs a processor worker until SIGTERM or the master's death; returns the exit status. */
int es_processor_worker_main(const es_config_t *cfg, int master_fd);

#endif
