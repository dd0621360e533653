/* Subscriptions: GET|POST /api/v1/events/subscriptions, GET|DELETE …/{id},
 * POST …/{id}/enable, …/{id}/disable, …/{id}/rotate-secret. The secret is
 * stored and never returned, except once when the service generated it. */
#include "api-worker/dbreq.h"
#include "api-worker/filter.h"
#include "api-worker/http.h"
#include "api-worker/routes.h"
#include "api-worker/worker.h"
#include "common/buf.h"
#include "common/event_row.h"
#include "common/ids.h"
#include "common/pattern.h"
#include "common/webhook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Columns rendered by render_subscription, over event.event_subscriptions s. */
#define SUBSCRIPTION_COLUMNS                                                                       \
    "s.subscription_id, s.subscriber_name, s.subscriber_type, to_json(s.event_types), "            \
    "to_json(s.event_sources), to_json(s.event_categories), s.callback_url, s.enabled, "           \
    "s.retry_policy, s.created_at, s.updated_at, s.disabled_reason, s.delivered_count, "           \
    "s.dead_count, s.last_success_at, s.failing_since, "                                           \
    "(SELECT count(*) FROM event.deliveries d WHERE d.subscription_id = s.subscription_id "        \
    "AND d.status = 'failed'), "                                                                   \
    "(SELECT count(*) FROM event.deliveries d WHERE d.subscription_id = s.subscription_id "        \
    "AND d.status = 'pending')"
#define SUBSCRIPTION_NCOLS 18

static void put_raw_or(es_buf_t *b, const PGresult *r, int row, int col, const char *dflt)
{
    es_buf_puts(b, PQgetisnull(r, row, col) ? dflt : PQgetvalue(r, row, col));
}

static void render_subscription(es_buf_t *b, const PGresult *r, int row, int c)
{
    es_buf_puts(b, "{\"subscription_id\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c + 0));
    es_buf_puts(b, ",\"subscriber_name\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c + 1));
    es_buf_puts(b, ",\"subscriber_type\":");
    es_buf_json_cstr(b, PQgetvalue(r, row, c + 2));
    es_buf_puts(b, ",\"event_types\":");
    put_raw_or(b, r, row, c + 3, "[]");
    es_buf_puts(b, ",\"event_sources\":");
    put_raw_or(b, r, row, c + 4, "[]");
    es_buf_puts(b, ",\"event_categories\":");
    put_raw_or(b, r, row, c + 5, "[]");
    es_buf_puts(b, ",\"callback_url\":");
    es_buf_json_cstr(b, PQgetisnull(r, row, c + 6) ? NULL : PQgetvalue(r, row, c + 6));
    es_buf_printf(b, ",\"enabled\":%s,\"retry_policy\":",
                  strcmp(PQgetvalue(r, row, c + 7), "t") == 0 ? "true" : "false");
    put_raw_or(b, r, row, c + 8, "{}");
    es_buf_puts(b, ",\"created_at\":");
    es_render_pg_time(b, r, row, c + 9);
    es_buf_puts(b, ",\"updated_at\":");
    es_render_pg_time(b, r, row, c + 10);
    es_buf_puts(b, ",\"disabled_reason\":");
    es_buf_json_cstr(b, PQgetisnull(r, row, c + 11) ? NULL : PQgetvalue(r, row, c + 11));
    es_buf_printf(b, ",\"stats\":{\"delivered\":%s,\"dead\":%s,\"failing\":%s,\"pending\":%s,",
                  PQgetvalue(r, row, c + 12), PQgetvalue(r, row, c + 13),
                  PQgetvalue(r, row, c + 16), PQgetvalue(r, row, c + 17));
    es_buf_puts(b, "\"last_success_at\":");
    es_render_pg_time(b, r, row, c + 14);
    es_buf_puts(b, ",\"failing_since\":");
    es_render_pg_time(b, r, row, c + 15);
    es_buf_puts(b, "}}");
}

static void reply_not_found(h2o_req_t *req, const char *id)
{
    es_http_errorf(req, 404, "Subscription not found: %s", id);
}

static void on_list(h2o_req_t *req, const PGresult *res, void *user)
{
    es_buf_t b = ES_BUF_INIT;
    es_render_rows(&b, res, render_subscription);
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

void es_h_subscriptions_list(h2o_req_t *req, const es_route_args_t *args)
{
    es_dbreq_read(req,
                  "SELECT " SUBSCRIPTION_COLUMNS " FROM event.event_subscriptions s "
                  "ORDER BY s.created_at, s.subscription_id",
                  0, NULL, on_list, NULL);
}

static void on_one(h2o_req_t *req, const PGresult *res, void *user)
{
    if (PQntuples(res) == 0) {
        reply_not_found(req, user);
        return;
    }
    es_buf_t b = ES_BUF_INIT;
    render_subscription(&b, res, 0, 0);
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

void es_h_subscriptions_get(h2o_req_t *req, const es_route_args_t *args)
{
    const char *params[1] = {args->v[0]};
    es_dbreq_read(req,
                  "SELECT " SUBSCRIPTION_COLUMNS " FROM event.event_subscriptions s "
                  "WHERE s.subscription_id = $1",
                  1, params, on_one, es_xstrdup(args->v[0]));
}

static void on_deleted(h2o_req_t *req, const PGresult *res, void *user)
{
    if (PQntuples(res) == 0) {
        reply_not_found(req, user);
        return;
    }
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "{\"deleted\":true,\"subscription_id\":");
    es_buf_json_cstr(&b, user);
    es_buf_putc(&b, '}');
    es_http_json(req, 200, b.data, b.len);
    es_buf_free(&b);
}

void es_h_subscriptions_delete(h2o_req_t *req, const es_route_args_t *args)
{
    const char *params[1] = {args->v[0]};
    es_dbreq_read(req,
                  "DELETE FROM event.event_subscriptions WHERE subscription_id = $1 "
                  "RETURNING subscription_id",
                  1, params, on_deleted, es_xstrdup(args->v[0]));
}

static void set_enabled(h2o_req_t *req, const char *id, bool enabled)
{
    const char *params[2] = {id, enabled ? "true" : "false"};
    es_dbreq_read(req,
                  "WITH u AS (UPDATE event.event_subscriptions SET enabled = $2::boolean, "
                  "disabled_reason = CASE WHEN $2::boolean THEN NULL ELSE 'disabled through the "
                  "API' END, failing_since = CASE WHEN $2::boolean THEN NULL ELSE failing_since "
                  "END, updated_at = now() WHERE subscription_id = $1 RETURNING *) "
                  "SELECT " SUBSCRIPTION_COLUMNS " FROM u s",
                  2, params, on_one, es_xstrdup(id));
    if (enabled) /* deliveries that waited for it are due */
        (void)es_nats_publish(es_api->nats, ES_WAKE_DELIVERY, "", 0);
}

void es_h_subscriptions_enable(h2o_req_t *req, const es_route_args_t *args)
{
    set_enabled(req, args->v[0], true);
}

void es_h_subscriptions_disable(h2o_req_t *req, const es_route_args_t *args)
{
    set_enabled(req, args->v[0], false);
}

/* Reads an optional array of strings, each checked by ok(); fills out (a
 * PostgreSQL array literal, caller frees) or leaves it NULL when absent. */
static bool string_array(const json_t *body, const char *key, bool required,
                         bool (*ok)(const char *), char **out, es_field_error_t *err)
{
    const json_t *v = json_object_get(body, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required)
            es_field_error_set(err, "", key, "field required (a non-empty array)");
        return !required;
    }
    if (!json_is_array(v) || (required && json_array_size(v) == 0)) {
        es_field_error_set(err, "", key,
                           required ? "must be a non-empty array of strings"
                                    : "must be an array of strings");
        return false;
    }
    es_buf_t lit = ES_BUF_INIT;
    es_buf_putc(&lit, '{');
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item) || !ok(json_string_value(item))) {
            char field[64];
            snprintf(field, sizeof(field), "%s[%zu]", key, i);
            es_field_error_set(err, "", field, "not a valid value");
            es_buf_free(&lit);
            return false;
        }
        if (i > 0)
            es_buf_putc(&lit, ',');
        es_buf_json_cstr(&lit,
                         json_string_value(item)); /* "..." with \ escapes: valid array syntax */
    }
    es_buf_putc(&lit, '}');
    *out = es_buf_take(&lit);
    return true;
}

static bool type_ok(const char *s)
{
    return es_pattern_valid(s) && strlen(s) <= ES_FIELD_MAX;
}

static bool source_ok(const char *s)
{
    return es_enum_parse(es_source_names, ES_SOURCE_COUNT, s) >= 0;
}

static bool category_ok(const char *s)
{
    return es_enum_parse(es_category_names, ES_CAT_COUNT, s) >= 0;
}

/* retry_policy: {max_retries: 0..100, backoff_seconds: [0..1 year, ...]}. */
static bool retry_policy_ok(const json_t *p, es_field_error_t *err)
{
    if (p == NULL || json_is_null(p))
        return true;
    if (!json_is_object(p)) {
        es_field_error_set(err, "", "retry_policy", "must be an object");
        return false;
    }
    const json_t *mr = json_object_get(p, "max_retries");
    if (mr != NULL &&
        (!json_is_integer(mr) || json_integer_value(mr) < 0 || json_integer_value(mr) > 100)) {
        es_field_error_set(err, "retry_policy.", "max_retries", "must be an integer from 0 to 100");
        return false;
    }
    const json_t *bs = json_object_get(p, "backoff_seconds");
    if (bs != NULL) {
        size_t i;
        const json_t *v;
        if (!json_is_array(bs) || json_array_size(bs) == 0 || json_array_size(bs) > 100) {
            es_field_error_set(err, "retry_policy.", "backoff_seconds",
                               "must be a non-empty array of at most 100 numbers");
            return false;
        }
        json_array_foreach(bs, i, v)
        {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 31536000) {
                es_field_error_set(err, "retry_policy.", "backoff_seconds",
                                   "entries must be numbers of seconds from 0 to 31536000");
                return false;
            }
        }
    }
    return true;
}

typedef struct {
    char *secret; /* generated: shown once in the answer; NULL when the client chose it */
    char *name;
} created_t;

static void on_created(h2o_req_t *req, const PGresult *res, void *user)
{
    created_t *c = user;
    if (PQntuples(res) == 0) {
        es_http_errorf(req, 409, "subscriber_name: a subscription named %s already exists",
                       c->name);
    } else {
        es_buf_t b = ES_BUF_INIT;
        render_subscription(&b, res, 0, 0);
        if (c->secret != NULL) { /* once, at creation */
            b.len--;             /* reopen the object */
            es_buf_puts(&b, ",\"webhook_secret\":");
            es_buf_json_cstr(&b, c->secret);
            es_buf_putc(&b, '}');
        }
        (void)es_nats_publish(es_api->nats, ES_WAKE_SUBJECT, "", 0); /* the publication */
        es_http_json(req, 201, b.data, b.len);
        es_buf_free(&b);
    }
}

static void created_free(void *p)
{
    created_t *c = p;
    free(c->secret);
    free(c->name);
    free(c);
}

void es_h_subscriptions_create(h2o_req_t *req, const es_route_args_t *args)
{
    json_t *body = es_http_body_json(req);
    if (body == NULL)
        return;
    es_field_error_t err;
    char *types = NULL, *sources = NULL, *categories = NULL, *policy = NULL;
    const char *name, *type, *url, *secret, *id;
    created_t *c = NULL;
    if (!json_is_object(body)) {
        es_field_error_set(&err, "", "body", "must be a JSON object");
        goto invalid;
    }
    if (!es_json_opt_string(body, "subscriber_name", &name, &err) ||
        !es_json_opt_string(body, "subscriber_type", &type, &err) ||
        !es_json_opt_string(body, "callback_url", &url, &err) ||
        !es_json_opt_string(body, "webhook_secret", &secret, &err) ||
        !es_json_opt_string(body, "subscription_id", &id, &err))
        goto invalid;
    if (name == NULL || name[0] == '\0' || strlen(name) > ES_FIELD_MAX) {
        es_field_error_set(&err, "", "subscriber_name",
                           name ? "must be 1 to 255 characters" : "field required");
        goto invalid;
    }
    if (type != NULL && (type[0] == '\0' || strlen(type) > 100)) {
        es_field_error_set(&err, "", "subscriber_type", "must be 1 to 100 characters");
        goto invalid;
    }
    if (id != NULL && (id[0] == '\0' || strlen(id) > ES_FIELD_MAX)) {
        es_field_error_set(&err, "", "subscription_id", "must be 1 to 255 characters");
        goto invalid;
    }
    if (!string_array(body, "event_types", true, type_ok, &types, &err) ||
        !string_array(body, "event_sources", false, source_ok, &sources, &err) ||
        !string_array(body, "event_categories", false, category_ok, &categories, &err))
        goto invalid;
    char why[160];
    if (url == NULL) {
        es_field_error_set(&err, "", "callback_url", "field required");
        goto invalid;
    }
    if (!es_webhook_url_ok(url, es_api->cfg->delivery.allow_private, why, sizeof(why))) {
        es_field_error_set(&err, "", "callback_url", "%s", why);
        goto invalid;
    }
    if (secret != NULL && (secret[0] == '\0' || strlen(secret) > 1024)) {
        es_field_error_set(&err, "", "webhook_secret", "must be 1 to 1024 characters");
        goto invalid;
    }
    const json_t *enabled = json_object_get(body, "enabled");
    if (enabled != NULL && !json_is_null(enabled) && !json_is_boolean(enabled)) {
        es_field_error_set(&err, "", "enabled", "must be true or false");
        goto invalid;
    }
    const json_t *rp = json_object_get(body, "retry_policy");
    if (!retry_policy_ok(rp, &err))
        goto invalid;
    policy = json_is_object(rp) ? json_dumps(rp, JSON_COMPACT) : es_xstrdup("{}");

    c = es_xcalloc(1, sizeof(*c));
    c->name = es_xstrdup(name);
    if (secret == NULL)
        c->secret = es_webhook_new_secret();
    char uuid[ES_UUID_LEN + 1];
    es_uuid_v4(uuid);
    const char *params[10] = {id ? id : uuid,
                              name,
                              type ? type : "service",
                              types,
                              sources,
                              categories,
                              url,
                              secret ? secret : c->secret,
                              enabled == NULL || !json_is_false(enabled) ? "true" : "false",
                              policy};
    /* The event.subscription.created publication is queued in the same
     * statement: it goes out even if NATS is down right now. */
    es_dbreq_read_ex(
        req,
        "WITH ins AS (INSERT INTO event.event_subscriptions AS s (subscription_id, "
        "subscriber_name, subscriber_type, event_types, event_sources, "
        "event_categories, callback_url, webhook_secret, enabled, retry_policy) "
        "VALUES ($1, $2, $3, $4::text[], $5::text[], $6::text[], $7, $8, $9::boolean, "
        "$10::jsonb) ON CONFLICT DO NOTHING RETURNING *), "
        "pub AS (SELECT event.publish_later('event.subscription.created', "
        "'subscription.created:' || i.subscription_id, jsonb_build_object("
        "'subscription_id', i.subscription_id, 'subscriber_name', i.subscriber_name, "
        "'subscriber_type', i.subscriber_type, 'event_types', to_jsonb(i.event_types), "
        "'event_sources', to_jsonb(i.event_sources), 'event_categories', "
        "to_jsonb(i.event_categories), 'callback_url', i.callback_url, 'enabled', "
        "i.enabled, 'created_at', i.created_at)) FROM ins i) "
        "SELECT " SUBSCRIPTION_COLUMNS " FROM ins s WHERE (SELECT count(*) FROM pub) >= 0",
        10, params, on_created, c, created_free);
    c = NULL;
    goto cleanup;
invalid:
    es_http_invalid(req, &err);
cleanup:
    free(types);
    free(sources);
    free(categories);
    free(policy);
    json_decref(body);
}

typedef struct {
    char *id;
    char *secret; /* generated: shown once */
} rotated_t;

static void on_rotated(h2o_req_t *req, const PGresult *res, void *user)
{
    rotated_t *r = user;
    if (PQntuples(res) == 0) {
        reply_not_found(req, r->id);
    } else {
        es_buf_t b = ES_BUF_INIT;
        es_buf_puts(&b, "{\"subscription_id\":");
        es_buf_json_cstr(&b, r->id);
        if (r->secret != NULL) {
            es_buf_puts(&b, ",\"webhook_secret\":");
            es_buf_json_cstr(&b, r->secret);
        }
        es_buf_puts(&b, ",\"previous_secret_valid_until\":");
        es_render_pg_time(&b, res, 0, 0);
        es_buf_putc(&b, '}');
        es_http_json(req, 200, b.data, b.len);
        es_buf_free(&b);
    }
}

static void rotated_free(void *p)
{
    rotated_t *r = p;
    free(r->id);
    free(r->secret);
    free(r);
}

void es_h_subscriptions_rotate(h2o_req_t *req, const es_route_args_t *args)
{
    const char *secret = NULL;
    json_t *body = NULL;
    if (req->entity.base != NULL && req->entity.len > 0) {
        body = es_http_body_json(req);
        if (body == NULL)
            return;
        es_field_error_t err;
        if (!json_is_object(body) || !es_json_opt_string(body, "webhook_secret", &secret, &err) ||
            (secret != NULL && (secret[0] == '\0' || strlen(secret) > 1024))) {
            es_field_error_set(&err, "", "webhook_secret", "must be 1 to 1024 characters");
            json_decref(body);
            es_http_invalid(req, &err);
            return;
        }
    }
    rotated_t *r = es_xcalloc(1, sizeof(*r));
    r->id = es_xstrdup(args->v[0]);
    if (secret == NULL)
        r->secret = es_webhook_new_secret();
    char grace[24];
    snprintf(grace, sizeof(grace), "%d", es_api->cfg->delivery.secret_grace_hours * 3600);
    const char *params[3] = {args->v[0], secret ? secret : r->secret, grace};
    /* Both secrets sign until the old one expires. */
    es_dbreq_read_ex(req,
                     "UPDATE event.event_subscriptions SET previous_secret = webhook_secret, "
                     "previous_secret_until = now() + make_interval(secs => $3::int), "
                     "webhook_secret = $2, updated_at = now() WHERE subscription_id = $1 "
                     "RETURNING previous_secret_until",
                     3, params, on_rotated, r, rotated_free);
    json_decref(body);
}
