#include "api-worker/filter.h"

#include "common/timeutil.h"

#include <stdlib.h>
#include <string.h>

void es_filter_init(es_filter_t *f)
{
    memset(f, 0, sizeof(*f));
    f->counter_ok = true;
    es_buf_puts(&f->where, "");
    es_buf_puts(&f->counter, "");
}

void es_filter_free(es_filter_t *f)
{
    es_buf_free(&f->where);
    es_buf_free(&f->counter);
    for (int i = 0; i < f->n; i++)
        free(f->params[i]);
    f->n = 0;
}

int es_filter_param(es_filter_t *f, const char *value)
{
    if (f->n >= ES_FILTER_MAX_PARAMS)
        abort(); /* a programming error: every caller adds a fixed, small number */
    f->params[f->n] = value ? es_xstrdup(value) : NULL;
    return ++f->n;
}

void es_filter_cond(es_filter_t *f, const char *column, const char *op, const char *cast,
                    const char *value, bool in_counters)
{
    int i = es_filter_param(f, value);
    es_buf_printf(&f->where, " AND e.%s %s $%d%s", column, op, i, cast);
    if (in_counters)
        es_buf_printf(&f->counter, " AND k.%s %s $%d%s", column, op, i, cast);
    else
        f->counter_ok = false;
}

bool es_json_opt_string(const json_t *body, const char *key, const char **out,
                        es_field_error_t *err)
{
    const json_t *v = json_object_get(body, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        es_field_error_set(err, "", key, "must be a string");
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool opt_enum(const json_t *body, const char *key, const char *const *names, int count,
                     const char **out, es_field_error_t *err)
{
    if (!es_json_opt_string(body, key, out, err))
        return false;
    if (*out != NULL && es_enum_parse(names, count, *out) < 0) {
        es_field_error_set(err, "", key, "not a valid value");
        return false;
    }
    return true;
}

bool es_json_opt_time(const json_t *body, const char *key, int64_t *us, bool *present,
                      es_field_error_t *err)
{
    const char *s = NULL;
    *present = false;
    if (!es_json_opt_string(body, key, &s, err))
        return false;
    if (s == NULL)
        return true;
    if (!es_time_parse(s, strlen(s), us)) {
        es_field_error_set(err, "", key, "not a valid date-time (expected ISO 8601)");
        return false;
    }
    *present = true;
    return true;
}

bool es_json_opt_int(const json_t *body, const char *key, int64_t def, int64_t min, int64_t max,
                     int64_t *out, es_field_error_t *err)
{
    const json_t *v = json_object_get(body, key);
    *out = def;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_integer(v)) {
        es_field_error_set(err, "", key, "must be an integer");
        return false;
    }
    *out = json_integer_value(v);
    if (*out < min || *out > max) {
        if (max == INT64_MAX)
            es_field_error_set(err, "", key, "must be >= %lld", (long long)min);
        else
            es_field_error_set(err, "", key, "must be between %lld and %lld", (long long)min,
                               (long long)max);
        return false;
    }
    return true;
}

es_rc_t es_filter_from_json(es_filter_t *f, const json_t *body, es_field_error_t *err)
{
    const char *user_id, *event_type, *source, *category, *status, *correlation_id;
    int64_t start_us = 0, end_us = 0;
    bool has_start, has_end;
    if (!es_json_opt_string(body, "user_id", &user_id, err) ||
        !es_json_opt_string(body, "event_type", &event_type, err) ||
        !opt_enum(body, "event_source", es_source_names, ES_SOURCE_COUNT, &source, err) ||
        !opt_enum(body, "event_category", es_category_names, ES_CAT_COUNT, &category, err) ||
        !opt_enum(body, "status", es_status_names, ES_STATUS_COUNT, &status, err) ||
        !es_json_opt_string(body, "correlation_id", &correlation_id, err) ||
        !es_json_opt_time(body, "start_time", &start_us, &has_start, err) ||
        !es_json_opt_time(body, "end_time", &end_us, &has_end, err))
        return ES_INVALID;
    if (has_start && has_end && end_us < start_us) {
        es_field_error_set(err, "", "end_time", "must not be before start_time");
        return ES_INVALID;
    }
    if (user_id)
        es_filter_cond(f, "user_id", "=", "", user_id, false);
    if (event_type)
        es_filter_cond(f, "event_type", "=", "", event_type, true);
    if (source)
        es_filter_cond(f, "event_source", "=", "", source, true);
    if (category)
        es_filter_cond(f, "event_category", "=", "", category, true);
    if (status)
        es_filter_cond(f, "status", "=", "", status, true);
    if (correlation_id)
        es_filter_cond(f, "correlation_id", "=", "", correlation_id, false);
    char ts[ES_TIME_BUFLEN];
    if (has_start) {
        es_time_format(start_us, ts);
        es_filter_cond(f, "timestamp", ">=", "::timestamptz", ts, false);
    }
    if (has_end) {
        es_time_format(end_us, ts);
        es_filter_cond(f, "timestamp", "<=", "::timestamptz", ts, false);
    }
    return ES_OK;
}
