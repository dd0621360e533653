/*
 * log.h - structured logging to stderr: one JSON object per line (format
 * "json", the default) or a plain "ts level role[pid] msg" line ("text").
 * Safe to call from any thread (one write(2) per line).
 */
#ifndef ES_LOG_H
#define ES_LOG_H

#include "common/es.h"

typedef enum { ES_LOG_DEBUG = 0, ES_LOG_INFO, ES_LOG_WARN, ES_LOG_ERROR, ES_LOG_FATAL } es_log_level_t;

/* Sets the minimum level, the output format (json=true) and the role name
 * shown on each line ("master", "api", ...). Call again after fork. */
void es_log_setup(es_log_level_t level, bool json, const char *role);

/* Parses "debug|info|warn|warning|error" (any case); false if unknown. */
bool es_log_level_parse(const char *s, es_log_level_t *out);

bool es_log_enabled(es_log_level_t level);

/* Logs one line. request_id may be NULL; it becomes the "request_id" field. */
void es_log_write(es_log_level_t level, const char *request_id, const char *fmt, ...)
    ES_PRINTF(3, 4);

#define es_debug(...) es_log_write(ES_LOG_DEBUG, NULL, __VA_ARGS__)
#define es_info(...) es_log_write(ES_LOG_INFO, NULL, __VA_ARGS__)
#define es_warn(...) es_log_write(ES_LOG_WARN, NULL, __VA_ARGS__)
#define es_error(...) es_log_write(ES_LOG_ERROR, NULL, __VA_ARGS__)

#endif
