/*
 * config.h - the typed configuration of event_service.
 *
 * Loaded from YAML (conf/event_service.yaml) with libyaml; every key has a
 * built-in default (es_config_defaults), the seed's environment variables
 * override the file (es_config_apply_env), and es_config_validate checks
 * ranges and cross-field rules. Unknown keys and wrong types are errors that
 * name the file, line and key.
 */
#ifndef ES_CONFIG_H
#define ES_CONFIG_H

#include "common/es.h"
#include "common/cron.h"
#include "common/log.h"

#include <stddef.h>

typedef struct {
    char **items;
    size_t len;
} es_strlist_t;

typedef struct {
    int *items;
    size_t len;
} es_intlist_t;

/* A scheduled replay (replay.schedules). */
typedef struct {
    char *name;
    char *cron_expr;
    es_cron_t cron;
    char *mode;            /* reprocess | republish | redeliver */
    char *target_service;  /* republish: event.replay.<target_service> */
    char *subscription_id; /* redeliver */
    /* which events: timestamp in [fire time - window_seconds, fire time], and */
    int64_t window_seconds;
    char *status; /* optional filters, NULL = any */
    char *event_type;
    char *event_source;
    char *event_category;
} es_schedule_t;

typedef struct es_config {
    char *path; /* file it was loaded from, or NULL for pure defaults */
    struct {
        char *name;
        char *bind;
        int port;
        int shutdown_timeout_seconds;
        int64_t body_limit_bytes;
        int max_batch;
        int json_max_depth;
        int request_timeout_seconds;
        int heartbeat_timeout_seconds;
        es_strlist_t trusted_proxies;
    } service;
    struct {
        int api;
        int processor;
        int replay;
    } workers;
    struct {
        char *url; /* libpq conninfo or URI; when empty, built from the fields below */
        char *host;
        int port;
        char *name;
        char *user;
        char *password;
        int connections_per_worker;
        int statement_timeout_ms;
        int connect_timeout_seconds;
        int group_wait_ms; /* ingest: how long a group may wait for clients of the last one */
    } database;
    struct {
        bool enabled;
        char *url;
        char *stream;
        es_strlist_t subjects;
        int64_t max_messages;
        int duplicate_window_seconds;
        bool backend_enabled; /* consume events.backend.> */
        char *backend_stream; /* JetStream stream holding them */
        char *backend_subject;
        char *backend_consumer; /* durable consumer shared by every worker and instance */
    } nats;
    struct {
        bool enabled;
        char *host;
        int port;
        int check_interval_seconds;
    } consul;
    struct {
        int batch_size;
        double interval_seconds;
        int max_retries;
        int backoff_base_ms;
        int backoff_max_ms;
        int lease_seconds;
        int concurrency; /* claim loops (threads) per processor worker */
    } processing;
    struct {
        int timeout_ms;
        int concurrency;
        int batch_size;
        int lease_seconds;
        bool allow_private;
        int max_response_bytes;
        int disable_after_hours;
        int secret_grace_hours;
        es_intlist_t retry_schedule_seconds; /* delays between attempts */
    } delivery;
    struct {
        char *mode;        /* none | gateway | jwt */
        char *user_header; /* gateway: the caller's user id */
        char *role_header; /* gateway: the caller's roles (comma-separated) */
        char *admin_role;
        char *jwt_secret;          /* HS256 */
        char *jwt_public_key_file; /* RS256 (PEM) */
        char *jwt_issuer;
        char *jwt_audience;
    } auth;
    struct {
        char *webhook_secret;
    } rudderstack;
    struct {
        int rate_limit_per_minute; /* per client IP and API worker; 0 = off */
        int rate_limit_burst;
        int64_t max_body_bytes;
        int max_batch;
    } frontend;
    struct {
        es_strlist_t write_keys;
        int max_event_bytes;
        int max_batch_bytes;
    } tracking;
    struct {
        int page_size;
        int lease_seconds;
        char *catch_up; /* latest | all | none */
        int max_catch_up;
        es_schedule_t *schedules;
        size_t nschedules;
    } replay;
    struct {
        es_log_level_t level;
        bool json;
    } logging;
} es_config_t;

/* Fills cfg with the built-in defaults (the embedded local setup). */
void es_config_defaults(es_config_t *cfg);

/* Loads path over the defaults, then environment overrides, then validates.
 * On failure returns ES_INVALID (or ES_ERR if the file cannot be read) and
 * writes a one-line reason ("file:line: key: why") into err. cfg is left
 * initialised either way; release it with es_config_free. */
es_rc_t es_config_load(es_config_t *cfg, const char *path, char *err, size_t errlen) ES_MUST_CHECK;

/* Parses YAML text (name is used in messages) over what cfg holds. */
es_rc_t es_config_parse_yaml(es_config_t *cfg, const char *name, const char *text, size_t len,
                             char *err, size_t errlen) ES_MUST_CHECK;

/* Applies the seed's environment variables (SERVICE_PORT, DATABASE_URL, ...). */
es_rc_t es_config_apply_env(es_config_t *cfg, char *err, size_t errlen) ES_MUST_CHECK;

/* Range and consistency checks. */
es_rc_t es_config_validate(const es_config_t *cfg, char *err, size_t errlen) ES_MUST_CHECK;

/* The libpq connection string to use; caller frees. */
char *es_config_conninfo(const es_config_t *cfg);

void es_config_free(es_config_t *cfg);

#endif
