/*
 * ingest.h - the group-commit writer: every way an event comes in over HTTP
 * ends here. Requests that arrive while a write is in flight are queued, and
 * all queued requests go to PostgreSQL together in one event.ingest() call
 * (one transaction, one round trip, one fsync) once the previous write has
 * returned and the clients it answered have sent again, or group_wait_ms
 * has passed: clients that send as soon as they are answered are then
 * written all together, not in two halves that take turns. A client whose
 * request was the last one's only request is written at once, so a lone
 * client never waits; under load the groups grow by themselves. A request
 * is answered only after the commit.
 */
#ifndef ES_API_INGEST_H
#define ES_API_INGEST_H

#include "api-worker/http.h"
#include "api-worker/pg.h"
#include "common/buf.h"
#include "common/event.h"
#include "common/nats.h"

typedef struct es_ingest es_ingest_t;
typedef struct es_ingest_req es_ingest_req_t;

/* Outcome of one request, on the loop thread. status: 201 created, 200 all
 * events existed already (idempotent repeat), 409 conflict (detail says why),
 * 422 rejected value, 503 database unavailable, 500 internal error. On 200 and
 * 201, es_ingest_render_event() renders each stored event (during the call). */
typedef void (*es_ingest_done_cb)(es_ingest_req_t *r, int status, const char *detail);

struct es_ingest_req {
    es_async_t async; /* the HTTP request waiting for the answer */
    es_event_t *events;
    int nevents;
    es_ingest_done_cb done;
    void *user; /* the handler's own context; not touched here */
    /* private */
    struct es_ingest_req *next;
    bool check;
    int req_index;
    int solo_tries; /* times written alone after a conflict with a concurrent transaction */
    /* valid while done() runs, on success: where each event's stored form is */
    const PGresult *out_res; /* full rows (columns from 3), or NULL ... */
    const int *out_rows;
    const int64_t *out_positions; /* ... positions of events stored as sent */
};

/* A request of nevents events, each es_event_init-ed with now, waiting on req
 * (es_async_begin is done here). */
es_ingest_req_t *es_ingest_req_new(h2o_req_t *req, int nevents);
/* Appends the stored form of r->events[i] (EventResponse); from done() on
 * status 200 or 201 only. */
void es_ingest_render_event(es_ingest_req_t *r, int i, es_buf_t *b);

/* Frees r and its events (ends the wait if still open). */
void es_ingest_req_free(es_ingest_req_t *r);

/* wait_ms: how long a group may wait for the clients of the previous one
 * (database.group_wait_ms); 0 = a group goes as soon as the last returns. */
es_ingest_t *es_ingest_create(h2o_loop_t *loop, es_pgpool_t *pg, es_nats_t *nats, int wait_ms);
void es_ingest_destroy(es_ingest_t *in);

/* Queues r (ownership passes to the writer). r->done is called exactly once,
 * after which r is freed. When the database is down it is called at once
 * with 503. */
void es_ingest_submit(es_ingest_t *in, es_ingest_req_t *r);

/* Requests queued or being written. */
int es_ingest_pending(const es_ingest_t *in);

#endif
