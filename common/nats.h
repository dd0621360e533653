/*
 * nats.h - the service's NATS connection: connects in the background and
 * reconnects forever (never blocks a caller while the server is down), keeps
 * the JetStream stream for publications in place after every (re)connect, and
 * publishes without blocking.
 *
 * Callbacks of nats.c run on its own threads; nothing here calls back into
 * the caller's event loop.
 */
#ifndef ES_NATS_H
#define ES_NATS_H

#include "common/config.h"

#include <nats/nats.h>

typedef struct es_nats es_nats_t;

/* Wake-up the API workers publish after each commit (core NATS, no payload):
 * processor workers and the event.stored publisher look for work at once
 * instead of at their next poll. Outside "event.>" so the JetStream stream of
 * publications never stores it. */
#define ES_WAKE_SUBJECT "event_service.wake.processing"
/* The same for webhook deliveries (created by processing, resent by the API). */
#define ES_WAKE_DELIVERY "event_service.wake.delivery"
/* The same for replay jobs (requested through the API). */
#define ES_WAKE_REPLAY "event_service.wake.replay"

/* Starts connecting to cfg->nats.url (returns at once). When nats.enabled is
 * false returns a handle whose publishes all answer ES_AGAIN. name is the
 * client name shown by the server. cfg must outlive the handle. */
es_nats_t *es_nats_open(const es_config_t *cfg, const char *name);

/* True while connected. */
bool es_nats_connected(es_nats_t *n);
/* True once the JetStream stream has been confirmed since the last connect. */
bool es_nats_stream_ready(es_nats_t *n);
/* True when there is nothing to wait for before reporting readiness: NATS
 * disabled, not connected, or connected with the stream confirmed. */
bool es_nats_settled(es_nats_t *n);

/* Every JetStream publication goes through a set: one thread's own context
 * on n's connection, whose acknowledgements are awaited together. A
 * publisher publishes a page, settles the set, and moves its checkpoint (or
 * commits what the page announces) only for what the stream acknowledged;
 * the rest it publishes again later, or records for a resend in the same
 * transaction. NULL when NATS is disabled or its context cannot be made;
 * every publish through a NULL set answers ES_AGAIN. */
typedef struct es_pubset es_pubset_t;
es_pubset_t *es_pubset_open(es_nats_t *n);
/* Publishes to JetStream with Nats-Msg-Id msg_id (the server drops repeats
 * inside the duplicate window). Never blocks: ES_AGAIN when disconnected or
 * when too many publishes await their acknowledgement. */
es_rc_t es_pubset_publish(es_pubset_t *p, const char *subject, const char *data, size_t len,
                          const char *msg_id);
/* A publication the stream did not acknowledge. */
typedef void (*es_pubset_failed_cb)(const char *subject, const char *msg_id, const char *data,
                                    int len, void *closure);
/* Waits up to timeout_ms until every publication of the set since the last
 * settle has its answer, then calls failed() for each that got an error or
 * no answer in time, and forgets them all. Returns how many failed. */
int es_pubset_settle(es_pubset_t *p, int timeout_ms, es_pubset_failed_cb failed, void *closure);
/* Settles (up to timeout_ms, dropping what failed) and frees the set; before
 * es_nats_close. */
void es_pubset_close(es_pubset_t *p, int timeout_ms);

/* Core NATS publish (wake-ups; may be lost). ES_AGAIN when disconnected. */
es_rc_t es_nats_publish(es_nats_t *n, const char *subject, const char *data, size_t len);

/* The underlying handles for blocking users (processor and replay workers);
 * NULL when disabled. */
natsConnection *es_nats_conn(es_nats_t *n);
jsCtx *es_nats_js(es_nats_t *n);

/* Closes the connection (its publication sets closed first). */
void es_nats_close(es_nats_t *n);

#endif
