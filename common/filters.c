#include "common/filters.h"

#include "common/pattern.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Value of key or its plural form. */
static const json_t *get_either(const json_t *o, const char *key, const char *plural,
                                const char **used)
{
    const json_t *v = json_object_get(o, key);
    *used = key;
    if (v == NULL || json_is_null(v)) {
        v = json_object_get(o, plural);
        *used = plural;
    }
    return (v == NULL || json_is_null(v)) ? NULL : v;
}

/* Calls fn for each string of v (a string or an array of strings). */
static es_rc_t each_string(const json_t *v, const char *prefix, const char *key,
                           es_rc_t (*fn)(const char *s, void *ctx), void *ctx,
                           es_field_error_t *err)
{
    if (json_is_string(v)) {
        if (fn(json_string_value(v), ctx) == ES_OK)
            return ES_OK;
        es_field_error_set(err, prefix, key, "not a valid value: %s", json_string_value(v));
        return ES_INVALID;
    }
    if (!json_is_array(v)) {
        es_field_error_set(err, prefix, key, "must be a string or an array of strings");
        return ES_INVALID;
    }
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item)) {
            es_field_error_set(err, prefix, key, "must be a string or an array of strings");
            return ES_INVALID;
        }
        if (fn(json_string_value(item), ctx) != ES_OK) {
            char field[96];
            snprintf(field, sizeof(field), "%s[%zu]", key, i);
            es_field_error_set(err, prefix, field, "not a valid value: %s",
                               json_string_value(item));
            return ES_INVALID;
        }
    }
    return ES_OK;
}

static es_rc_t add_type(const char *s, void *ctx)
{
    es_filters_t *f = ctx;
    if (!es_pattern_valid(s) || strlen(s) > ES_FIELD_MAX)
        return ES_INVALID;
    f->types = es_xrealloc(f->types, (f->ntypes + 1) * sizeof(char *));
    f->types[f->ntypes++] = es_xstrdup(s);
    return ES_OK;
}

static es_rc_t add_source(const char *s, void *ctx)
{
    int i = es_enum_parse(es_source_names, ES_SOURCE_COUNT, s);
    if (i < 0)
        return ES_INVALID;
    ((es_filters_t *)ctx)->sources |= 1u << i;
    return ES_OK;
}

static es_rc_t add_category(const char *s, void *ctx)
{
    int i = es_enum_parse(es_category_names, ES_CAT_COUNT, s);
    if (i < 0)
        return ES_INVALID;
    ((es_filters_t *)ctx)->categories |= 1u << i;
    return ES_OK;
}

es_rc_t es_filters_parse(const json_t *filters, const char *prefix, es_filters_t *out,
                         es_field_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (filters == NULL || json_is_null(filters))
        return ES_OK;
    if (!json_is_object(filters)) {
        es_field_error_set(err, prefix, "", "must be an object");
        err->field[strlen(err->field) ? strlen(err->field) - 1 : 0] = '\0';
        return ES_INVALID;
    }
    static const char *const known[] = {"event_type",   "event_types",    "event_source",
                                        "event_sources", "event_category", "event_categories"};
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)filters, key, value)
    {
        bool ok = false;
        for (size_t i = 0; i < ES_ARRAY_LEN(known); i++)
            ok |= strcmp(key, known[i]) == 0;
        if (!ok) {
            es_field_error_set(err, prefix, key,
                               "unknown filter (known: event_type, event_source, event_category)");
            return ES_INVALID;
        }
    }
    const char *used;
    const json_t *v = get_either(filters, "event_type", "event_types", &used);
    if (v != NULL && each_string(v, prefix, used, add_type, out, err) != ES_OK)
        goto fail;
    v = get_either(filters, "event_source", "event_sources", &used);
    if (v != NULL && each_string(v, prefix, used, add_source, out, err) != ES_OK)
        goto fail;
    v = get_either(filters, "event_category", "event_categories", &used);
    if (v != NULL && each_string(v, prefix, used, add_category, out, err) != ES_OK)
        goto fail;
    return ES_OK;
fail:
    es_filters_free(out);
    return ES_INVALID;
}

void es_filters_free(es_filters_t *f)
{
    for (size_t i = 0; i < f->ntypes; i++)
        free(f->types[i]);
    ES_FREE(&f->types);
    f->ntypes = 0;
}

bool es_filters_match(const es_filters_t *f, const char *event_type, const char *source,
                      const char *category)
{
    if (f->sources) {
        int i = es_enum_parse(es_source_names, ES_SOURCE_COUNT, source);
        if (i < 0 || !(f->sources & (1u << i)))
            return false;
    }
    if (f->categories) {
        int i = es_enum_parse(es_category_names, ES_CAT_COUNT, category);
        if (i < 0 || !(f->categories & (1u << i)))
            return false;
    }
    if (f->ntypes == 0)
        return true;
    for (size_t i = 0; i < f->ntypes; i++)
        if (es_pattern_match(f->types[i], event_type))
            return true;
    return false;
}
