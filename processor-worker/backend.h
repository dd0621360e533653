/*
 * backend.h - ingestion of the events other services publish on NATS
 * (nats.backend_subject, "events.backend.>"). They are kept by a JetStream
 * stream (nats.backend_stream, created if missing) while no one consumes
 * them, and read through one durable pull consumer (nats.backend_consumer),
 * created explicitly and never deleted, shared by every processor worker of
 * every instance. Each fetched batch is stored in one transaction through
 * event.ingest() and acknowledged only after the commit; a message that
 * cannot be an event is logged and terminated (never redelivered); the
 * message id (Nats-Msg-Id, else the envelope's id, else the stream sequence)
 * names the event, so a redelivery writes nothing.
 */
#ifndef ES_PROC_BACKEND_H
#define ES_PROC_BACKEND_H

#include "common/config.h"
#include "common/event.h"

#include <jansson.h>

typedef struct es_backend es_backend_t;

/* Starts the consumer thread (nothing when NATS or backend_enabled is off). */
es_backend_t *es_backend_start(const es_config_t *cfg, const char *conninfo);
void es_backend_stop(es_backend_t *b);

/* Maps one backend message (subject, JSON payload) onto ev (es_event_init-ed):
 * event_type = payload "type" (or "event_type"), else the subject after the
 * prefix of subject_pattern; category per the seed (user -> user_lifecycle,
 * payment, order, task, device -> device_status, else system); user_id =
 * data.user_id; data = payload "data" (or the payload itself). id names the
 * event (message id). ES_INVALID with err when it cannot be an event. */
es_rc_t es_backend_to_event(es_event_t *ev, const char *subject, const char *subject_pattern,
                            const json_t *payload, const char *id,
                            es_field_error_t *err) ES_MUST_CHECK;

#endif
