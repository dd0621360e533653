/*
 * publish.h - the service's own NATS publications (subject = type), in the
 * seed's envelope: {"id", "type", "source": "event_service", "timestamp",
 * "data"}.
 */
#ifndef ES_PUBLISH_H
#define ES_PUBLISH_H

#include "common/buf.h"
#include "common/nats.h"

#include <libpq-fe.h>

/* Appends the envelope of an event.stored publication for the event row at
 * (res, row, col0) laid out as ES_EVENT_COLUMNS. data carries the seed's
 * EventCreatedEvent fields. */
void es_publish_stored_payload(es_buf_t *b, const PGresult *res, int row, int col0);

/* Publishes event.stored for that row through p, message id = event_id.
 * Never blocks; ES_AGAIN when NATS is down (the outbox catches up later). */
es_rc_t es_publish_stored(es_pubset_t *p, const PGresult *res, int row, int col0);

/* Appends an envelope of type with the JSON object text data. */
void es_publish_envelope(es_buf_t *b, const char *type, const char *data, size_t len);

#endif
