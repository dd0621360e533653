/*
 * routes.h - the route table: every path the API serves, its method and its
 * handler, in one place (routes.c).
 */
#ifndef ES_API_ROUTES_H
#define ES_API_ROUTES_H

#include <h2o.h>

#define ES_ROUTE_MAX_ARGS 4

/* Path segments captured by "{name}" in a pattern, percent-decoded, in order,
 * and who is calling. */
typedef struct {
    const char *v[ES_ROUTE_MAX_ARGS];
    int n;
    /* auth (api-worker/auth.c): NULL for an administrator (or auth.mode none);
     * else the caller's user id, and the handler keeps it to its own events. */
    const char *user;
} es_route_args_t;

/* Who may call a route (auth.mode gateway or jwt; none lets everyone in). */
typedef enum {
    ES_PUBLIC, /* anyone: health, metrics, public collection, webhooks, tracking API */
    ES_USER,   /* an identified caller, limited to its own events unless admin */
    ES_ADMIN,  /* processors, subscriptions, deliveries, replay, retries */
} es_access_t;

/* A handler answers req, now or later (es_async_t). */
typedef void (*es_handler_fn)(h2o_req_t *req, const es_route_args_t *args);

typedef struct {
    const char *method;  /* "GET", "POST", "PUT", "DELETE" */
    const char *pattern; /* "/api/v1/events/stream/{stream_id}" */
    es_handler_fn fn;
    const char *name;    /* route label for logs and metrics */
    es_access_t access;
} es_route_t;

extern const es_route_t es_routes[];
extern const int es_routes_count;

/* Index in es_routes of the route serving req's path and method, or -1. */
int es_route_index(h2o_req_t *req);

/* The request being handled on this loop right now and its route (set while
 * a handler or a completion of its runs), so the answer is counted against
 * the right route without matching the path again. */
extern h2o_req_t *es_current_req;
extern int es_current_route;

/* Finds the route for req and runs it; answers 404 or 405 itself. */
void es_route_dispatch(h2o_req_t *req);

/* Handlers (one file per resource). */
void es_h_health(h2o_req_t *req, const es_route_args_t *args);
void es_h_metrics(h2o_req_t *req, const es_route_args_t *args);
void es_h_openapi(h2o_req_t *req, const es_route_args_t *args);
void es_h_ready(h2o_req_t *req, const es_route_args_t *args);
void es_h_event_create(h2o_req_t *req, const es_route_args_t *args);
void es_h_frontend_health(h2o_req_t *req, const es_route_args_t *args);
void es_h_frontend_event(h2o_req_t *req, const es_route_args_t *args);
void es_h_frontend_batch(h2o_req_t *req, const es_route_args_t *args);
void es_h_rudderstack_webhook(h2o_req_t *req, const es_route_args_t *args);
void es_h_tracking(h2o_req_t *req, const es_route_args_t *args);
void es_h_event_batch(h2o_req_t *req, const es_route_args_t *args);
void es_h_event_get(h2o_req_t *req, const es_route_args_t *args);
void es_h_event_query(h2o_req_t *req, const es_route_args_t *args);
void es_h_statistics(h2o_req_t *req, const es_route_args_t *args);
void es_h_stream_get(h2o_req_t *req, const es_route_args_t *args);
void es_h_processors_list(h2o_req_t *req, const es_route_args_t *args);
void es_h_processors_create(h2o_req_t *req, const es_route_args_t *args);
void es_h_processors_toggle(h2o_req_t *req, const es_route_args_t *args);
void es_h_event_retry(h2o_req_t *req, const es_route_args_t *args);
void es_h_events_retry(h2o_req_t *req, const es_route_args_t *args);
void es_h_replay_create(h2o_req_t *req, const es_route_args_t *args);
void es_h_replay_list(h2o_req_t *req, const es_route_args_t *args);
void es_h_replay_get(h2o_req_t *req, const es_route_args_t *args);
void es_h_replay_cancel(h2o_req_t *req, const es_route_args_t *args);
void es_h_projection_get(h2o_req_t *req, const es_route_args_t *args);
void es_h_projection_rebuild(h2o_req_t *req, const es_route_args_t *args);
void es_h_subscriptions_list(h2o_req_t *req, const es_route_args_t *args);
void es_h_subscriptions_create(h2o_req_t *req, const es_route_args_t *args);
void es_h_subscriptions_get(h2o_req_t *req, const es_route_args_t *args);
void es_h_subscriptions_delete(h2o_req_t *req, const es_route_args_t *args);
void es_h_subscriptions_enable(h2o_req_t *req, const es_route_args_t *args);
void es_h_subscriptions_disable(h2o_req_t *req, const es_route_args_t *args);
void es_h_subscriptions_rotate(h2o_req_t *req, const es_route_args_t *args);
void es_h_subscriptions_recover(h2o_req_t *req, const es_route_args_t *args);
void es_h_deliveries_list(h2o_req_t *req, const es_route_args_t *args);
void es_h_deliveries_get(h2o_req_t *req, const es_route_args_t *args);
void es_h_deliveries_resend(h2o_req_t *req, const es_route_args_t *args);

#endif
