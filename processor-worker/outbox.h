/*
 * outbox.h - the event.stored publisher and the outbox drain, on a thread of
 * their own with their own PostgreSQL and NATS connections.
 *
 * One publisher runs across all workers and instances: the holder of a
 * session advisory lock. It walks event.events by position from the
 * checkpoint in event.outbox_state, only over the committed prefix (see
 * event.position_mark / event.snapshot_settled), publishes each event with
 * its event_id as Nats-Msg-Id, and advances the checkpoint once JetStream has
 * acknowledged them all. While NATS is down nothing moves; when it is back the
 * walk resumes where it stopped: every event is published once (a crash
 * between publishing and saving the checkpoint repeats a few, which the
 * stream's duplicate window absorbs). It also sends the rows of event.outbox
 * (publications made while NATS was down) and deletes them once acknowledged.
 */
#ifndef ES_PROC_OUTBOX_H
#define ES_PROC_OUTBOX_H

#include "common/config.h"

typedef struct es_outbox es_outbox_t;

/* Starts the thread. conninfo is copied. */
es_outbox_t *es_outbox_start(const es_config_t *cfg, const char *conninfo);
/* Something was committed: look now instead of at the next poll. Thread-safe. */
void es_outbox_wake(es_outbox_t *o);
/* Stops and joins the thread, releasing the publisher lock. */
void es_outbox_stop(es_outbox_t *o);

#endif
