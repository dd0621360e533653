#include "common/config.h"

#include "common/cidr.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

typedef enum {
    K_INT,
    K_INT64,
    K_DOUBLE,
    K_BOOL,
    K_STR,
    K_STRLIST,
    K_INTLIST,
    K_LOGLEVEL,
    K_LOGFORMAT,
    K_SCHEDULES
} kind_t;

/* One configurable key: where it lives in es_config_t and its bounds. */
typedef struct {
    const char *section;
    const char *name;
    kind_t kind;
    size_t offset;
    double min, max;
} key_t_;

#define OFF(f) offsetof(es_config_t, f)
static const key_t_ keys[] = {
    {"service", "name", K_STR, OFF(service.name), 0, 0},
    {"service", "bind", K_STR, OFF(service.bind), 0, 0},
    {"service", "port", K_INT, OFF(service.port), 1, 65535},
    {"service", "shutdown_timeout_seconds", K_INT, OFF(service.shutdown_timeout_seconds), 1, 3600},
    {"service", "body_limit_bytes", K_INT64, OFF(service.body_limit_bytes), 1024, 1 << 30},
    {"service", "max_batch", K_INT, OFF(service.max_batch), 1, 100000},
    {"service", "json_max_depth", K_INT, OFF(service.json_max_depth), 2, 10000},
    {"service", "request_timeout_seconds", K_INT, OFF(service.request_timeout_seconds), 1, 3600},
    {"service", "heartbeat_timeout_seconds", K_INT, OFF(service.heartbeat_timeout_seconds), 1,
     3600},
    {"service", "trusted_proxies", K_STRLIST, OFF(service.trusted_proxies), 0, 0},
    {"workers", "api", K_INT, OFF(workers.api), 1, 256},
    {"workers", "processor", K_INT, OFF(workers.processor), 0, 256},
    {"workers", "replay", K_INT, OFF(workers.replay), 0, 256},
    {"database", "url", K_STR, OFF(database.url), 0, 0},
    {"database", "host", K_STR, OFF(database.host), 0, 0},
    {"database", "port", K_INT, OFF(database.port), 1, 65535},
    {"database", "name", K_STR, OFF(database.name), 0, 0},
    {"database", "user", K_STR, OFF(database.user), 0, 0},
    {"database", "password", K_STR, OFF(database.password), 0, 0},
    {"database", "connections_per_worker", K_INT, OFF(database.connections_per_worker), 2, 64},
    {"database", "statement_timeout_ms", K_INT, OFF(database.statement_timeout_ms), 0, 86400000},
    {"database", "connect_timeout_seconds", K_INT, OFF(database.connect_timeout_seconds), 1, 600},
    {"database", "group_wait_ms", K_INT, OFF(database.group_wait_ms), 0, 100},
    {"nats", "enabled", K_BOOL, OFF(nats.enabled), 0, 0},
    {"nats", "url", K_STR, OFF(nats.url), 0, 0},
    {"nats", "stream", K_STR, OFF(nats.stream), 0, 0},
    {"nats", "subjects", K_STRLIST, OFF(nats.subjects), 0, 0},
    {"nats", "max_messages", K_INT64, OFF(nats.max_messages), -1, 1e15},
    {"nats", "duplicate_window_seconds", K_INT, OFF(nats.duplicate_window_seconds), 1, 86400 * 7},
    {"nats", "backend_enabled", K_BOOL, OFF(nats.backend_enabled), 0, 0},
    {"nats", "backend_stream", K_STR, OFF(nats.backend_stream), 0, 0},
    {"nats", "backend_subject", K_STR, OFF(nats.backend_subject), 0, 0},
    {"nats", "backend_consumer", K_STR, OFF(nats.backend_consumer), 0, 0},
    {"consul", "enabled", K_BOOL, OFF(consul.enabled), 0, 0},
    {"consul", "host", K_STR, OFF(consul.host), 0, 0},
    {"consul", "port", K_INT, OFF(consul.port), 1, 65535},
    {"consul", "check_interval_seconds", K_INT, OFF(consul.check_interval_seconds), 1, 3600},
    {"processing", "batch_size", K_INT, OFF(processing.batch_size), 1, 10000},
    {"processing", "interval_seconds", K_DOUBLE, OFF(processing.interval_seconds), 0.01, 3600},
    {"processing", "max_retries", K_INT, OFF(processing.max_retries), 0, 100},
    {"processing", "backoff_base_ms", K_INT, OFF(processing.backoff_base_ms), 1, 3600000},
    {"processing", "backoff_max_ms", K_INT, OFF(processing.backoff_max_ms), 1, 86400000},
    {"processing", "lease_seconds", K_INT, OFF(processing.lease_seconds), 1, 86400},
    {"processing", "concurrency", K_INT, OFF(processing.concurrency), 1, 64},
    {"delivery", "timeout_ms", K_INT, OFF(delivery.timeout_ms), 100, 300000},
    {"delivery", "concurrency", K_INT, OFF(delivery.concurrency), 1, 10000},
    {"delivery", "batch_size", K_INT, OFF(delivery.batch_size), 1, 10000},
    {"delivery", "lease_seconds", K_INT, OFF(delivery.lease_seconds), 1, 86400},
    {"delivery", "allow_private", K_BOOL, OFF(delivery.allow_private), 0, 0},
    {"delivery", "max_response_bytes", K_INT, OFF(delivery.max_response_bytes), 0, 1048576},
    {"delivery", "disable_after_hours", K_INT, OFF(delivery.disable_after_hours), 1, 87600},
    {"delivery", "secret_grace_hours", K_INT, OFF(delivery.secret_grace_hours), 0, 720},
    {"delivery", "retry_schedule_seconds", K_INTLIST, OFF(delivery.retry_schedule_seconds), 0,
     31536000},
    {"auth", "mode", K_STR, OFF(auth.mode), 0, 0},
    {"auth", "user_header", K_STR, OFF(auth.user_header), 0, 0},
    {"auth", "role_header", K_STR, OFF(auth.role_header), 0, 0},
    {"auth", "admin_role", K_STR, OFF(auth.admin_role), 0, 0},
    {"auth", "jwt_secret", K_STR, OFF(auth.jwt_secret), 0, 0},
    {"auth", "jwt_public_key_file", K_STR, OFF(auth.jwt_public_key_file), 0, 0},
    {"auth", "jwt_issuer", K_STR, OFF(auth.jwt_issuer), 0, 0},
    {"auth", "jwt_audience", K_STR, OFF(auth.jwt_audience), 0, 0},
    {"rudderstack", "webhook_secret", K_STR, OFF(rudderstack.webhook_secret), 0, 0},
    {"frontend", "rate_limit_per_minute", K_INT, OFF(frontend.rate_limit_per_minute), 0, 10000000},
    {"frontend", "rate_limit_burst", K_INT, OFF(frontend.rate_limit_burst), 1, 1000000},
    {"frontend", "max_body_bytes", K_INT64, OFF(frontend.max_body_bytes), 1024, 1 << 30},
    {"frontend", "max_batch", K_INT, OFF(frontend.max_batch), 1, 100000},
    {"tracking", "write_keys", K_STRLIST, OFF(tracking.write_keys), 0, 0},
    {"tracking", "max_event_bytes", K_INT, OFF(tracking.max_event_bytes), 256, 1 << 26},
    {"tracking", "max_batch_bytes", K_INT, OFF(tracking.max_batch_bytes), 1024, 1 << 28},
    {"replay", "page_size", K_INT, OFF(replay.page_size), 1, 10000},
    {"replay", "lease_seconds", K_INT, OFF(replay.lease_seconds), 5, 86400},
    {"replay", "catch_up", K_STR, OFF(replay.catch_up), 0, 0},
    {"replay", "max_catch_up", K_INT, OFF(replay.max_catch_up), 1, 100000},
    {"replay", "schedules", K_SCHEDULES, OFF(replay.schedules), 0, 0},
    {"logging", "level", K_LOGLEVEL, OFF(logging.level), 0, 0},
    {"logging", "format", K_LOGFORMAT, OFF(logging.json), 0, 0},
};
#undef OFF

static void set_err(char *err, size_t errlen, const char *fmt, ...) ES_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = es_xstrdup(v);
}

static void strlist_free(es_strlist_t *l)
{
    for (size_t i = 0; i < l->len; i++)
        free(l->items[i]);
    ES_FREE(&l->items);
    l->len = 0;
}

static void intlist_free(es_intlist_t *l)
{
    ES_FREE(&l->items);
    l->len = 0;
}

static void intlist_add(es_intlist_t *l, int v)
{
    l->items = es_xrealloc(l->items, (l->len + 1) * sizeof(int));
    l->items[l->len++] = v;
}

static void schedule_free(es_schedule_t *s)
{
    free(s->name);
    free(s->cron_expr);
    free(s->mode);
    free(s->target_service);
    free(s->subscription_id);
    free(s->status);
    free(s->event_type);
    free(s->event_source);
    free(s->event_category);
}

static void schedules_free(es_config_t *cfg)
{
    for (size_t i = 0; i < cfg->replay.nschedules; i++)
        schedule_free(&cfg->replay.schedules[i]);
    ES_FREE(&cfg->replay.schedules);
    cfg->replay.nschedules = 0;
}

static void strlist_add(es_strlist_t *l, const char *v)
{
    l->items = es_xrealloc(l->items, (l->len + 1) * sizeof(char *));
    l->items[l->len++] = es_xstrdup(v);
}

void es_config_defaults(es_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->service.name = es_xstrdup(ES_SERVICE_NAME);
    cfg->service.bind = es_xstrdup("0.0.0.0");
    cfg->service.port = 8208;
    cfg->service.shutdown_timeout_seconds = 30;
    cfg->service.body_limit_bytes = 1048576;
    cfg->service.max_batch = 100;
    cfg->service.json_max_depth = 64;
    cfg->service.request_timeout_seconds = 30;
    cfg->service.heartbeat_timeout_seconds = 15;
    cfg->workers.api = 2;
    cfg->workers.processor = 1;
    cfg->workers.replay = 1;
    /* The embedded default: the local PostgreSQL and nats-server that
     * scripts/run.sh starts under ./var/. */
    cfg->database.url = es_xstrdup("");
    cfg->database.host = es_xstrdup("127.0.0.1");
    cfg->database.port = 54329;
    cfg->database.name = es_xstrdup("event_service");
    cfg->database.user = es_xstrdup("postgres");
    cfg->database.password = es_xstrdup("");
    cfg->database.connections_per_worker = 2;
    cfg->database.statement_timeout_ms = 30000;
    cfg->database.connect_timeout_seconds = 5;
    cfg->database.group_wait_ms = 1;
    cfg->nats.enabled = true;
    cfg->nats.url = es_xstrdup("nats://127.0.0.1:42229");
    cfg->nats.stream = es_xstrdup("event-stream");
    strlist_add(&cfg->nats.subjects, "event.>");
    cfg->nats.max_messages = 100000;
    cfg->nats.duplicate_window_seconds = 120;
    cfg->nats.backend_enabled = true;
    cfg->nats.backend_stream = es_xstrdup("event-backend");
    cfg->nats.backend_subject = es_xstrdup("events.backend.>");
    cfg->nats.backend_consumer = es_xstrdup("event_service_backend");
    cfg->consul.enabled = false;
    cfg->consul.host = es_xstrdup("localhost");
    cfg->consul.port = 8500;
    cfg->consul.check_interval_seconds = 30;
    cfg->processing.batch_size = 500;
    cfg->processing.interval_seconds = 5;
    cfg->processing.max_retries = 3;
    cfg->processing.backoff_base_ms = 1000;
    cfg->processing.backoff_max_ms = 300000;
    cfg->processing.lease_seconds = 30;
    cfg->processing.concurrency = 2;
    cfg->delivery.timeout_ms = 15000;
    cfg->delivery.concurrency = 256;
    cfg->delivery.batch_size = 200;
    cfg->delivery.lease_seconds = 60;
    cfg->delivery.allow_private = false;
    cfg->delivery.max_response_bytes = 4096;
    cfg->delivery.disable_after_hours = 120;
    cfg->delivery.secret_grace_hours = 24;
    /* Svix's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. */
    static const int svix[] = {5, 300, 1800, 7200, 18000, 36000, 36000};
    for (size_t i = 0; i < ES_ARRAY_LEN(svix); i++)
        intlist_add(&cfg->delivery.retry_schedule_seconds, svix[i]);
    cfg->auth.mode = es_xstrdup("none");
    cfg->auth.user_header = es_xstrdup("X-User-Id");
    cfg->auth.role_header = es_xstrdup("X-User-Role");
    cfg->auth.admin_role = es_xstrdup("admin");
    cfg->auth.jwt_secret = es_xstrdup("");
    cfg->auth.jwt_public_key_file = es_xstrdup("");
    cfg->auth.jwt_issuer = es_xstrdup("");
    cfg->auth.jwt_audience = es_xstrdup("");
    cfg->rudderstack.webhook_secret = es_xstrdup("");
    cfg->frontend.rate_limit_per_minute = 600;
    cfg->frontend.rate_limit_burst = 100;
    cfg->frontend.max_body_bytes = 65536;
    cfg->frontend.max_batch = 100;
    cfg->tracking.max_event_bytes = 32 * 1024; /* Segment's limits */
    cfg->tracking.max_batch_bytes = 500 * 1024;
    cfg->replay.page_size = 500;
    cfg->replay.lease_seconds = 60;
    cfg->replay.catch_up = es_xstrdup("latest");
    cfg->replay.max_catch_up = 100;
    cfg->logging.level = ES_LOG_INFO;
    cfg->logging.json = true;
}

void es_config_free(es_config_t *cfg)
{
    for (size_t i = 0; i < ES_ARRAY_LEN(keys); i++) {
        void *slot = (char *)cfg + keys[i].offset;
        if (keys[i].kind == K_STR)
            ES_FREE((char **)slot);
        else if (keys[i].kind == K_STRLIST)
            strlist_free((es_strlist_t *)slot);
        else if (keys[i].kind == K_INTLIST)
            intlist_free((es_intlist_t *)slot);
        else if (keys[i].kind == K_SCHEDULES)
            schedules_free(cfg);
    }
    ES_FREE(&cfg->path);
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < ES_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Sets one key from a textual value (from YAML or the environment). where is
 * the prefix of any error ("file:line" or "env NAME"). */
static es_rc_t set_value(es_config_t *cfg, const key_t_ *k, const char *v, const char *where,
                         char *err, size_t errlen)
{
    void *slot = (char *)cfg + k->offset;
    int64_t iv = 0;
    switch (k->kind) {
    case K_INT:
    case K_INT64:
        if (!es_parse_int64(v, strlen(v), &iv)) {
            set_err(err, errlen, "%s: %s.%s: expected an integer, got \"%s\"", where, k->section,
                    k->name, v);
            return ES_INVALID;
        }
        if ((double)iv < k->min || (double)iv > k->max) {
            set_err(err, errlen, "%s: %s.%s: %lld is out of range [%.0f, %.0f]", where, k->section,
                    k->name, (long long)iv, k->min, k->max);
            return ES_INVALID;
        }
        if (k->kind == K_INT)
            *(int *)slot = (int)iv;
        else
            *(int64_t *)slot = iv;
        return ES_OK;
    case K_DOUBLE: {
        char *end = NULL;
        errno = 0;
        double d = strtod(v, &end);
        if (*v == '\0' || errno != 0 || *end != '\0' || !isfinite(d)) {
            set_err(err, errlen, "%s: %s.%s: expected a number, got \"%s\"", where, k->section,
                    k->name, v);
            return ES_INVALID;
        }
        if (d < k->min || d > k->max) {
            set_err(err, errlen, "%s: %s.%s: %g is out of range [%g, %g]", where, k->section,
                    k->name, d, k->min, k->max);
            return ES_INVALID;
        }
        *(double *)slot = d;
        return ES_OK;
    }
    case K_BOOL:
        if (!parse_bool(v, (bool *)slot)) {
            set_err(err, errlen, "%s: %s.%s: expected true or false, got \"%s\"", where, k->section,
                    k->name, v);
            return ES_INVALID;
        }
        return ES_OK;
    case K_STR:
        set_str((char **)slot, v);
        return ES_OK;
    case K_LOGLEVEL:
        if (!es_log_level_parse(v, (es_log_level_t *)slot)) {
            set_err(err, errlen, "%s: %s.%s: expected debug, info, warn or error, got \"%s\"",
                    where, k->section, k->name, v);
            return ES_INVALID;
        }
        return ES_OK;
    case K_LOGFORMAT:
        if (strcmp(v, "json") == 0 || strcmp(v, "text") == 0) {
            *(bool *)slot = strcmp(v, "json") == 0;
            return ES_OK;
        }
        set_err(err, errlen, "%s: %s.%s: expected json or text, got \"%s\"", where, k->section,
                k->name, v);
        return ES_INVALID;
    case K_STRLIST:
    case K_INTLIST:
    case K_SCHEDULES:
        break;
    }
    set_err(err, errlen, "%s: %s.%s: expected a list", where, k->section, k->name);
    return ES_INVALID;
}

static const key_t_ *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < ES_ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static bool section_exists(const char *section)
{
    for (size_t i = 0; i < ES_ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].section, section) == 0)
            return true;
    return false;
}

static const char *scalar(yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain (unquoted) scalar that YAML would read as null. */
static bool is_null(yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = scalar(n);
    return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0;
}

/* One entry of replay.schedules (a mapping), validated. */
static es_rc_t parse_schedule(es_schedule_t *s, yaml_document_t *doc, yaml_node_t *node,
                              const char *name, size_t index, char *err, size_t errlen)
{
    size_t line = node->start_mark.line + 1;
    if (node->type != YAML_MAPPING_NODE) {
        set_err(err, errlen, "%s:%zu: replay.schedules[%zu]: expected a mapping", name, line,
                index);
        return ES_INVALID;
    }
    s->window_seconds = 86400;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(doc, p->value);
        size_t kl = kn->start_mark.line + 1;
        const char *key = kn->type == YAML_SCALAR_NODE ? scalar(kn) : "";
        if (strcmp(key, "select") == 0) {
            if (vn->type != YAML_MAPPING_NODE) {
                set_err(err, errlen, "%s:%zu: replay.schedules[%zu].select: expected a mapping",
                        name, kl, index);
                return ES_INVALID;
            }
            for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top;
                 q++) {
                yaml_node_t *fk = yaml_document_get_node(doc, q->key);
                yaml_node_t *fv = yaml_document_get_node(doc, q->value);
                size_t fl = fk->start_mark.line + 1;
                const char *fkey = fk->type == YAML_SCALAR_NODE ? scalar(fk) : "";
                if (fv->type != YAML_SCALAR_NODE) {
                    set_err(err, errlen,
                            "%s:%zu: replay.schedules[%zu].select.%s: expected a value", name, fl,
                            index, fkey);
                    return ES_INVALID;
                }
                char **slot = strcmp(fkey, "status") == 0           ? &s->status
                              : strcmp(fkey, "event_type") == 0     ? &s->event_type
                              : strcmp(fkey, "event_source") == 0   ? &s->event_source
                              : strcmp(fkey, "event_category") == 0 ? &s->event_category
                                                                    : NULL;
                if (strcmp(fkey, "window_seconds") == 0) {
                    if (!es_parse_int64(scalar(fv), strlen(scalar(fv)), &s->window_seconds) ||
                        s->window_seconds < 1) {
                        set_err(err, errlen,
                                "%s:%zu: replay.schedules[%zu].select.window_seconds: expected a "
                                "positive integer",
                                name, fl, index);
                        return ES_INVALID;
                    }
                } else if (slot != NULL) {
                    set_str(slot, scalar(fv));
                } else {
                    set_err(err, errlen, "%s:%zu: unknown key replay.schedules[%zu].select.%s",
                            name, fl, index, fkey);
                    return ES_INVALID;
                }
            }
            continue;
        }
        if (vn->type != YAML_SCALAR_NODE) {
            set_err(err, errlen, "%s:%zu: replay.schedules[%zu].%s: expected a value", name, kl,
                    index, key);
            return ES_INVALID;
        }
        char **slot = strcmp(key, "name") == 0              ? &s->name
                      : strcmp(key, "cron") == 0            ? &s->cron_expr
                      : strcmp(key, "mode") == 0            ? &s->mode
                      : strcmp(key, "target_service") == 0  ? &s->target_service
                      : strcmp(key, "subscription_id") == 0 ? &s->subscription_id
                                                            : NULL;
        if (slot == NULL) {
            set_err(err, errlen, "%s:%zu: unknown key replay.schedules[%zu].%s", name, kl, index,
                    key);
            return ES_INVALID;
        }
        set_str(slot, scalar(vn));
        if (slot == &s->cron_expr) {
            char why[160];
            if (!es_cron_parse(s->cron_expr, &s->cron, why, sizeof(why))) {
                set_err(err, errlen, "%s:%zu: replay.schedules[%zu].cron: \"%s\": %s", name,
                        vn->start_mark.line + 1, index, s->cron_expr, why);
                return ES_INVALID;
            }
        }
    }
    const char *missing = s->name == NULL ? "name" : s->cron_expr == NULL ? "cron" : NULL;
    if (missing != NULL) {
        set_err(err, errlen, "%s:%zu: replay.schedules[%zu].%s: required", name, line, index,
                missing);
        return ES_INVALID;
    }
    if (s->mode == NULL)
        s->mode = es_xstrdup("reprocess");
    if (strcmp(s->mode, "reprocess") != 0 && strcmp(s->mode, "republish") != 0 &&
        strcmp(s->mode, "redeliver") != 0) {
        set_err(err, errlen,
                "%s:%zu: replay.schedules[%zu].mode: expected reprocess, republish or redeliver",
                name, line, index);
        return ES_INVALID;
    }
    if (strcmp(s->mode, "redeliver") == 0 && s->subscription_id == NULL) {
        set_err(err, errlen, "%s:%zu: replay.schedules[%zu].subscription_id: required to redeliver",
                name, line, index);
        return ES_INVALID;
    }
    return ES_OK;
}

static es_rc_t apply_node(es_config_t *cfg, yaml_document_t *doc, const key_t_ *k, yaml_node_t *val,
                          const char *name, char *err, size_t errlen)
{
    if (k->kind == K_SCHEDULES) {
        schedules_free(cfg);
        if (is_null(val))
            return ES_OK;
        if (val->type != YAML_SEQUENCE_NODE) {
            set_err(err, errlen, "%s:%zu: replay.schedules: expected a list", name,
                    val->start_mark.line + 1);
            return ES_INVALID;
        }
        size_t n = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
        cfg->replay.schedules = es_xcalloc(ES_MAX(n, 1), sizeof(es_schedule_t));
        for (size_t i = 0; i < n; i++) {
            cfg->replay.nschedules = i + 1;
            yaml_node_t *item = yaml_document_get_node(doc, val->data.sequence.items.start[i]);
            if (parse_schedule(&cfg->replay.schedules[i], doc, item, name, i, err, errlen) != ES_OK)
                return ES_INVALID;
            for (size_t j = 0; j < i; j++)
                if (strcmp(cfg->replay.schedules[j].name, cfg->replay.schedules[i].name) == 0) {
                    set_err(err, errlen, "%s:%zu: replay.schedules[%zu].name: \"%s\" is used twice",
                            name, item->start_mark.line + 1, i, cfg->replay.schedules[i].name);
                    return ES_INVALID;
                }
        }
        return ES_OK;
    }
    char where[300];
    snprintf(where, sizeof(where), "%s:%zu", name, val->start_mark.line + 1);
    if (k->kind == K_STRLIST) {
        es_strlist_t *l = (es_strlist_t *)((char *)cfg + k->offset);
        if (is_null(val)) {
            strlist_free(l);
            return ES_OK;
        }
        if (val->type != YAML_SEQUENCE_NODE) {
            set_err(err, errlen, "%s: %s.%s: expected a list of strings", where, k->section,
                    k->name);
            return ES_INVALID;
        }
        strlist_free(l);
        for (yaml_node_item_t *it = val->data.sequence.items.start;
             it < val->data.sequence.items.top; it++) {
            yaml_node_t *item = yaml_document_get_node(doc, *it);
            if (item->type != YAML_SCALAR_NODE) {
                set_err(err, errlen, "%s:%zu: %s.%s: expected a list of strings", name,
                        item->start_mark.line + 1, k->section, k->name);
                return ES_INVALID;
            }
            strlist_add(l, scalar(item));
        }
        return ES_OK;
    }
    if (k->kind == K_INTLIST) {
        es_intlist_t *l = (es_intlist_t *)((char *)cfg + k->offset);
        if (val->type != YAML_SEQUENCE_NODE) {
            set_err(err, errlen, "%s: %s.%s: expected a list of integers", where, k->section,
                    k->name);
            return ES_INVALID;
        }
        intlist_free(l);
        for (yaml_node_item_t *it = val->data.sequence.items.start;
             it < val->data.sequence.items.top; it++) {
            yaml_node_t *item = yaml_document_get_node(doc, *it);
            int64_t v = 0;
            if (item->type != YAML_SCALAR_NODE ||
                !es_parse_int64(scalar(item), strlen(scalar(item)), &v) || v < k->min ||
                v > k->max) {
                set_err(err, errlen, "%s:%zu: %s.%s: expected a list of integers from %.0f to %.0f",
                        name, item->start_mark.line + 1, k->section, k->name, k->min, k->max);
                return ES_INVALID;
            }
            intlist_add(l, (int)v);
        }
        return ES_OK;
    }
    if (val->type != YAML_SCALAR_NODE) {
        set_err(err, errlen, "%s: %s.%s: expected a single value, got a %s", where, k->section,
                k->name, val->type == YAML_MAPPING_NODE ? "mapping" : "list");
        return ES_INVALID;
    }
    bool quoted = val->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    if (k->kind != K_STR && quoted) {
        set_err(err, errlen, "%s: %s.%s: expected %s, got the quoted string \"%s\"", where,
                k->section, k->name, k->kind == K_BOOL ? "true or false" : "an unquoted value",
                scalar(val));
        return ES_INVALID;
    }
    if (k->kind == K_STR && !quoted && is_null(val)) {
        set_str((char **)((char *)cfg + k->offset), "");
        return ES_OK;
    }
    return set_value(cfg, k, scalar(val), where, err, errlen);
}

es_rc_t es_config_parse_yaml(es_config_t *cfg, const char *name, const char *text, size_t len,
                             char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    es_rc_t rc = ES_INVALID;
    bool have_doc = false;

    if (!yaml_parser_initialize(&parser)) {
        set_err(err, errlen, "%s: cannot initialise the YAML parser", name);
        return ES_ERR;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        set_err(err, errlen, "%s:%zu: YAML syntax error: %s", name, parser.problem_mark.line + 1,
                parser.problem ? parser.problem : "unknown");
        goto cleanup;
    }
    have_doc = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL || is_null(root)) { /* an empty file keeps every default */
        rc = ES_OK;
        goto cleanup;
    }
    if (root->type != YAML_MAPPING_NODE) {
        set_err(err, errlen, "%s:%zu: the top level must be a mapping of sections", name,
                root->start_mark.line + 1);
        goto cleanup;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *sk = yaml_document_get_node(&doc, p->key);
        yaml_node_t *sv = yaml_document_get_node(&doc, p->value);
        if (sk->type != YAML_SCALAR_NODE || !section_exists(scalar(sk))) {
            set_err(err, errlen, "%s:%zu: unknown key %s", name, sk->start_mark.line + 1,
                    sk->type == YAML_SCALAR_NODE ? scalar(sk) : "(not a string)");
            goto cleanup;
        }
        if (is_null(sv))
            continue;
        if (sv->type != YAML_MAPPING_NODE) {
            set_err(err, errlen, "%s:%zu: %s: expected a mapping of keys", name,
                    sv->start_mark.line + 1, scalar(sk));
            goto cleanup;
        }
        for (yaml_node_pair_t *q = sv->data.mapping.pairs.start; q < sv->data.mapping.pairs.top;
             q++) {
            yaml_node_t *kk = yaml_document_get_node(&doc, q->key);
            yaml_node_t *kv = yaml_document_get_node(&doc, q->value);
            const key_t_ *k =
                kk->type == YAML_SCALAR_NODE ? find_key(scalar(sk), scalar(kk)) : NULL;
            if (k == NULL) {
                set_err(err, errlen, "%s:%zu: unknown key %s.%s", name, kk->start_mark.line + 1,
                        scalar(sk), kk->type == YAML_SCALAR_NODE ? scalar(kk) : "(not a string)");
                goto cleanup;
            }
            if (apply_node(cfg, &doc, k, kv, name, err, errlen) != ES_OK)
                goto cleanup;
        }
    }
    rc = ES_OK;
cleanup:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

/* The seed's variables. DATABASE_URL wins over the POSTGRES_* parts. */
static const struct {
    const char *env;
    const char *section, *name;
} env_map[] = {
    {"SERVICE_PORT", "service", "port"},
    {"SERVICE_NAME", "service", "name"},
    {"LOG_LEVEL", "logging", "level"},
    {"POSTGRES_HOST", "database", "host"},
    {"POSTGRES_PORT", "database", "port"},
    {"POSTGRES_DB", "database", "name"},
    {"POSTGRES_USER", "database", "user"},
    {"POSTGRES_PASSWORD", "database", "password"},
    {"DATABASE_URL", "database", "url"},
    {"NATS_URL", "nats", "url"},
    {"NATS_ENABLED", "nats", "enabled"},
    {"CONSUL_HOST", "consul", "host"},
    {"CONSUL_PORT", "consul", "port"},
    {"CONSUL_ENABLED", "consul", "enabled"},
    {"RUDDERSTACK_WEBHOOK_SECRET", "rudderstack", "webhook_secret"},
    {"BATCH_SIZE", "processing", "batch_size"},
    {"PROCESSING_INTERVAL", "processing", "interval_seconds"},
};

es_rc_t es_config_apply_env(es_config_t *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < ES_ARRAY_LEN(env_map); i++) {
        const char *v = getenv(env_map[i].env);
        if (v == NULL)
            continue;
        const key_t_ *k = find_key(env_map[i].section, env_map[i].name);
        char where[64];
        snprintf(where, sizeof(where), "environment %s", env_map[i].env);
        if (set_value(cfg, k, v, where, err, errlen) != ES_OK)
            return ES_INVALID;
    }
    return ES_OK;
}

es_rc_t es_config_validate(const es_config_t *cfg, char *err, size_t errlen)
{
    const char *p = cfg->path ? cfg->path : "config";
    if (cfg->service.name[0] == '\0') {
        set_err(err, errlen, "%s: service.name: must not be empty", p);
        return ES_INVALID;
    }
    if (cfg->nats.enabled && strncmp(cfg->nats.url, "nats://", 7) != 0 &&
        strncmp(cfg->nats.url, "tls://", 6) != 0) {
        set_err(err, errlen, "%s: nats.url: expected nats://host:port, got \"%s\"", p,
                cfg->nats.url);
        return ES_INVALID;
    }
    if (cfg->nats.enabled && (cfg->nats.stream[0] == '\0' || cfg->nats.subjects.len == 0)) {
        set_err(err, errlen, "%s: nats.stream and nats.subjects must not be empty", p);
        return ES_INVALID;
    }
    if ((int64_t)cfg->delivery.lease_seconds * 1000 < (int64_t)cfg->delivery.timeout_ms + 5000) {
        set_err(err, errlen,
                "%s: delivery.lease_seconds: must exceed delivery.timeout_ms by at least 5 s "
                "(a delivery in flight must not be claimed again)",
                p);
        return ES_INVALID;
    }
    for (size_t i = 0; i < cfg->service.trusted_proxies.len; i++) {
        es_cidr_t range;
        if (!es_cidr_parse(cfg->service.trusted_proxies.items[i], &range)) {
            set_err(err, errlen,
                    "%s: service.trusted_proxies: \"%s\" is not an IP address or CIDR range", p,
                    cfg->service.trusted_proxies.items[i]);
            return ES_INVALID;
        }
    }
    if (strcmp(cfg->auth.mode, "none") != 0 && strcmp(cfg->auth.mode, "gateway") != 0 &&
        strcmp(cfg->auth.mode, "jwt") != 0) {
        set_err(err, errlen, "%s: auth.mode: expected none, gateway or jwt, got \"%s\"", p,
                cfg->auth.mode);
        return ES_INVALID;
    }
    if (strcmp(cfg->auth.mode, "jwt") == 0 && cfg->auth.jwt_secret[0] == '\0' &&
        cfg->auth.jwt_public_key_file[0] == '\0') {
        set_err(err, errlen,
                "%s: auth.jwt_secret or auth.jwt_public_key_file: required when "
                "auth.mode is jwt",
                p);
        return ES_INVALID;
    }
    if (strcmp(cfg->replay.catch_up, "latest") != 0 && strcmp(cfg->replay.catch_up, "all") != 0 &&
        strcmp(cfg->replay.catch_up, "none") != 0) {
        set_err(err, errlen, "%s: replay.catch_up: expected latest, all or none, got \"%s\"", p,
                cfg->replay.catch_up);
        return ES_INVALID;
    }
    if (cfg->processing.backoff_max_ms < cfg->processing.backoff_base_ms) {
        set_err(err, errlen, "%s: processing.backoff_max_ms: must be >= backoff_base_ms", p);
        return ES_INVALID;
    }
    return ES_OK;
}

es_rc_t es_config_load(es_config_t *cfg, const char *path, char *err, size_t errlen)
{
    es_config_defaults(cfg);
    if (path != NULL) {
        cfg->path = es_xstrdup(path);
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
            return ES_ERR;
        }
        char *text = NULL;
        size_t len = 0, cap = 0;
        for (;;) {
            if (len + 4096 > cap) {
                cap = cap ? cap * 2 : 8192;
                text = es_xrealloc(text, cap);
            }
            size_t n = fread(text + len, 1, cap - len, f);
            len += n;
            if (n == 0)
                break;
        }
        fclose(f);
        es_rc_t rc = es_config_parse_yaml(cfg, path, text, len, err, errlen);
        free(text);
        if (rc != ES_OK)
            return rc;
    }
    if (es_config_apply_env(cfg, err, errlen) != ES_OK)
        return ES_INVALID;
    return es_config_validate(cfg, err, errlen);
}

/* Appends key='value' to a conninfo string, quoting as libpq requires. */
static void conninfo_add(char **ci, const char *key, const char *value)
{
    if (value == NULL || *value == '\0')
        return;
    size_t n = strlen(*ci);
    size_t vlen = strlen(value);
    size_t cap = n + strlen(key) + 2 * vlen + 6;
    *ci = es_xrealloc(*ci, cap);
    char *w = *ci + n;
    w += snprintf(w, cap - n, "%s%s='", n ? " " : "", key);
    for (const char *s = value; *s; s++) {
        if (*s == '\'' || *s == '\\')
            *w++ = '\\';
        *w++ = *s;
    }
    *w++ = '\'';
    *w = '\0';
}

char *es_config_conninfo(const es_config_t *cfg)
{
    if (cfg->database.url[0] != '\0')
        return es_xstrdup(cfg->database.url);
    char *ci = es_xstrdup("");
    char port[16];
    snprintf(port, sizeof(port), "%d", cfg->database.port);
    conninfo_add(&ci, "host", cfg->database.host);
    conninfo_add(&ci, "port", port);
    conninfo_add(&ci, "dbname", cfg->database.name);
    conninfo_add(&ci, "user", cfg->database.user);
    conninfo_add(&ci, "password", cfg->database.password);
    return ci;
}
