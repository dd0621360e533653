#include "api-worker/routes.h"

#include "api-worker/auth.h"
#include "api-worker/http.h"

#include <stdio.h>
#include <string.h>

/* Order matters only between a literal segment and "{...}" at the same place:
 * literals are listed first ("/statistics" before "/{event_id}"). */
const es_route_t es_routes[] = {
    {"GET", "/health", es_h_health, "health", ES_PUBLIC},
    {"GET", "/health/ready", es_h_ready, "ready", ES_PUBLIC},
    {"GET", "/metrics", es_h_metrics, "metrics", ES_PUBLIC},
    {"GET", "/openapi.json", es_h_openapi, "openapi", ES_PUBLIC},
    {"POST", "/api/v1/events/create", es_h_event_create, "events.create", ES_USER},
    {"GET", "/api/v1/events/frontend/health", es_h_frontend_health, "frontend.health", ES_PUBLIC},
    {"POST", "/api/v1/events/frontend", es_h_frontend_event, "frontend.create", ES_PUBLIC},
    {"POST", "/api/v1/events/frontend/batch", es_h_frontend_batch, "frontend.batch", ES_PUBLIC},
    {"POST", "/webhooks/rudderstack", es_h_rudderstack_webhook, "rudderstack.webhook", ES_PUBLIC},
    {"POST", "/v1/track", es_h_tracking, "tracking.track", ES_PUBLIC},
    {"POST", "/v1/page", es_h_tracking, "tracking.page", ES_PUBLIC},
    {"POST", "/v1/identify", es_h_tracking, "tracking.identify", ES_PUBLIC},
    {"POST", "/v1/screen", es_h_tracking, "tracking.screen", ES_PUBLIC},
    {"POST", "/v1/group", es_h_tracking, "tracking.group", ES_PUBLIC},
    {"POST", "/v1/alias", es_h_tracking, "tracking.alias", ES_PUBLIC},
    {"POST", "/v1/batch", es_h_tracking, "tracking.batch", ES_PUBLIC},
    {"POST", "/api/v1/events/batch", es_h_event_batch, "events.batch", ES_USER},
    {"POST", "/api/v1/events/query", es_h_event_query, "events.query", ES_USER},
    {"GET", "/api/v1/events/statistics", es_h_statistics, "events.statistics", ES_USER},
    {"GET", "/api/v1/events/stream/{stream_id}", es_h_stream_get, "streams.get", ES_USER},
    {"GET", "/api/v1/events/processors", es_h_processors_list, "processors.list", ES_ADMIN},
    {"POST", "/api/v1/events/processors", es_h_processors_create, "processors.create", ES_ADMIN},
    {"PUT", "/api/v1/events/processors/{processor_id}/toggle", es_h_processors_toggle,
     "processors.toggle", ES_ADMIN},
    {"POST", "/api/v1/events/retry", es_h_events_retry, "events.retry", ES_ADMIN},
    {"POST", "/api/v1/events/replay", es_h_replay_create, "replay.create", ES_ADMIN},
    {"GET", "/api/v1/events/replay", es_h_replay_list, "replay.list", ES_ADMIN},
    {"GET", "/api/v1/events/replay/{replay_id}", es_h_replay_get, "replay.get", ES_ADMIN},
    {"POST", "/api/v1/events/replay/{replay_id}/cancel", es_h_replay_cancel, "replay.cancel", ES_ADMIN},
    {"GET", "/api/v1/events/projections/{entity_type}/{entity_id}", es_h_projection_get,
     "projections.get", ES_USER},
    {"POST", "/api/v1/events/projections/{entity_type}/{entity_id}/rebuild",
     es_h_projection_rebuild, "projections.rebuild", ES_ADMIN},
    {"GET", "/api/v1/events/subscriptions", es_h_subscriptions_list, "subscriptions.list", ES_ADMIN},
    {"POST", "/api/v1/events/subscriptions", es_h_subscriptions_create, "subscriptions.create", ES_ADMIN},
    {"GET", "/api/v1/events/subscriptions/{id}", es_h_subscriptions_get, "subscriptions.get", ES_ADMIN},
    {"DELETE", "/api/v1/events/subscriptions/{id}", es_h_subscriptions_delete,
     "subscriptions.delete", ES_ADMIN},
    {"POST", "/api/v1/events/subscriptions/{id}/enable", es_h_subscriptions_enable,
     "subscriptions.enable", ES_ADMIN},
    {"POST", "/api/v1/events/subscriptions/{id}/disable", es_h_subscriptions_disable,
     "subscriptions.disable", ES_ADMIN},
    {"POST", "/api/v1/events/subscriptions/{id}/rotate-secret", es_h_subscriptions_rotate,
     "subscriptions.rotate_secret", ES_ADMIN},
    {"POST", "/api/v1/events/subscriptions/{id}/recover", es_h_subscriptions_recover,
     "subscriptions.recover", ES_ADMIN},
    {"GET", "/api/v1/events/subscriptions/{id}/deliveries", es_h_deliveries_list,
     "deliveries.list", ES_ADMIN},
    {"GET", "/api/v1/events/subscriptions/{id}/deliveries/{delivery_id}", es_h_deliveries_get,
     "deliveries.get", ES_ADMIN},
    {"POST", "/api/v1/events/subscriptions/{id}/deliveries/{delivery_id}/resend",
     es_h_deliveries_resend, "deliveries.resend", ES_ADMIN},
    {"POST", "/api/v1/events/{event_id}/retry", es_h_event_retry, "events.retry_one", ES_ADMIN},
    {"GET", "/api/v1/events/{event_id}", es_h_event_get, "events.get", ES_USER},
};
const int es_routes_count = (int)(sizeof(es_routes) / sizeof(es_routes[0]));

h2o_req_t *es_current_req;
int es_current_route = -1;

/* Matches path (len bytes, no query) against pattern; fills args (decoded
 * copies in req's pool). */
static bool match(h2o_req_t *req, const char *pattern, const char *path, size_t len,
                  es_route_args_t *args)
{
    const char *p = pattern, *s = path, *end = path + len;
    args->n = 0;
    while (*p && s < end) {
        if (*p != '/' || *s != '/')
            return false;
        p++;
        s++;
        const char *pseg_end = strchr(p, '/');
        size_t plen = pseg_end ? (size_t)(pseg_end - p) : strlen(p);
        const char *sseg_end = memchr(s, '/', (size_t)(end - s));
        size_t slen = sseg_end ? (size_t)(sseg_end - s) : (size_t)(end - s);
        if (plen > 0 && p[0] == '{') {
            if (slen == 0 || args->n >= ES_ROUTE_MAX_ARGS)
                return false;
            char *out = h2o_mem_alloc_pool(&req->pool, slen + 1);
            if (!es_http_unescape_ex(s, slen, out, slen + 1, false))
                return false;
            args->v[args->n++] = out;
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return false;
        }
        p += plen;
        s += slen;
    }
    /* A single trailing slash is tolerated. */
    if (*p == '\0' && s + 1 == end && *s == '/')
        s++;
    return *p == '\0' && s == end;
}

int es_route_index(h2o_req_t *req)
{
    size_t len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    for (int i = 0; i < es_routes_count; i++) {
        es_route_args_t args;
        if (h2o_memis(req->method.base, req->method.len, es_routes[i].method,
                      strlen(es_routes[i].method)) &&
            match(req, es_routes[i].pattern, req->path.base, len, &args))
            return i;
    }
    return -1;
}

void es_route_dispatch(h2o_req_t *req)
{
    size_t len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    bool path_known = false;
    char allow[64] = "";
    for (int i = 0; i < es_routes_count; i++) {
        es_route_args_t args;
        if (!match(req, es_routes[i].pattern, req->path.base, len, &args))
            continue;
        if (h2o_memis(req->method.base, req->method.len, es_routes[i].method,
                      strlen(es_routes[i].method))) {
            es_current_req = req;
            es_current_route = i;
            if (es_auth_check(req, es_routes[i].access, &args))
                es_routes[i].fn(req, &args);
            es_current_req = NULL;
            return;
        }
        if (!path_known || strstr(allow, es_routes[i].method) == NULL) {
            size_t used = strlen(allow);
            snprintf(allow + used, sizeof(allow) - used, "%s%s", used ? ", " : "",
                     es_routes[i].method);
        }
        path_known = true;
    }
    if (path_known) {
        h2o_iovec_t v = h2o_strdup(&req->pool, allow, strlen(allow));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, v.base, v.len);
        es_http_error(req, 405, "Method Not Allowed");
        return;
    }
    es_http_error(req, 404, "Not Found");
}
