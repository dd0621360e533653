/*
 * filter.h - the event filters shared by /query, /retry and /replay: parsed
 * from a JSON body into a parameterised WHERE clause over event.events e
 * (and, when only counter dimensions are used, over event.event_counters k).
 */
#ifndef ES_API_FILTER_H
#define ES_API_FILTER_H

#include "common/buf.h"
#include "common/event.h"

#include <jansson.h>

#define ES_FILTER_MAX_PARAMS 24

typedef struct {
    es_buf_t where;   /* " AND e.col = $n ..." (empty: no filter) */
    es_buf_t counter; /* the same over event.event_counters k, if counter_ok */
    bool counter_ok;
    char *params[ES_FILTER_MAX_PARAMS];
    int n;
} es_filter_t;

void es_filter_init(es_filter_t *f);
void es_filter_free(es_filter_t *f);
/* Appends a text parameter; returns its $number. */
int es_filter_param(es_filter_t *f, const char *value);
/* Adds " AND e.column op $n<cast>". */
void es_filter_cond(es_filter_t *f, const char *column, const char *op, const char *cast,
                    const char *value, bool in_counters);

/* Reads user_id, event_type, event_source, event_category, status,
 * correlation_id, start_time, end_time from body into f. 422 material in err. */
es_rc_t es_filter_from_json(es_filter_t *f, const json_t *body, es_field_error_t *err)
    ES_MUST_CHECK;

/* Optional typed fields of a JSON body; false (err set) on a wrong type. */
bool es_json_opt_string(const json_t *body, const char *key, const char **out,
                        es_field_error_t *err);
bool es_json_opt_int(const json_t *body, const char *key, int64_t def, int64_t min, int64_t max,
                     int64_t *out, es_field_error_t *err);
bool es_json_opt_time(const json_t *body, const char *key, int64_t *us, bool *present,
                      es_field_error_t *err);

#endif
