#include "common/proctypes.h"

#include "common/pattern.h"

#include <string.h>
#include <strings.h>

static es_rc_t validate_webhook(const json_t *config, es_field_error_t *err)
{
    const json_t *url = json_object_get(config, "url");
    if (!json_is_string(url)) {
        es_field_error_set(err, "config.", "url", "required: the http(s) URL to POST events to");
        return ES_INVALID;
    }
    const char *u = json_string_value(url);
    if ((strncasecmp(u, "http://", 7) != 0 || strlen(u) == 7) &&
        (strncasecmp(u, "https://", 8) != 0 || strlen(u) == 8)) {
        es_field_error_set(err, "config.", "url", "must be an http:// or https:// URL");
        return ES_INVALID;
    }
    const json_t *t = json_object_get(config, "timeout_ms");
    if (t != NULL && (!json_is_integer(t) || json_integer_value(t) < 1 ||
                      json_integer_value(t) > 120000)) {
        es_field_error_set(err, "config.", "timeout_ms", "must be an integer from 1 to 120000");
        return ES_INVALID;
    }
    const json_t *h = json_object_get(config, "headers");
    if (h != NULL) {
        const char *k;
        const json_t *v;
        if (!json_is_object(h)) {
            es_field_error_set(err, "config.", "headers", "must be an object of strings");
            return ES_INVALID;
        }
        json_object_foreach((json_t *)h, k, v)
        {
            if (!json_is_string(v) || strpbrk(k, "\r\n:") != NULL ||
                strpbrk(json_string_value(v), "\r\n") != NULL) {
                es_field_error_set(err, "config.headers.", k, "must be a single-line string");
                return ES_INVALID;
            }
        }
    }
    return ES_OK;
}

static es_rc_t validate_nats(const json_t *config, es_field_error_t *err)
{
    const json_t *subject = json_object_get(config, "subject");
    if (!json_is_string(subject) || !es_pattern_valid(json_string_value(subject)) ||
        strpbrk(json_string_value(subject), "*>") != NULL) {
        es_field_error_set(err, "config.", "subject",
                           "required: a NATS subject without wildcards, e.g. \"audit.events\"");
        return ES_INVALID;
    }
    return ES_OK;
}

static es_rc_t validate_projection(const json_t *config, es_field_error_t *err)
{
    const json_t *name = json_object_get(config, "name");
    if (name != NULL && (!json_is_string(name) || json_string_length(name) == 0 ||
                         json_string_length(name) > ES_FIELD_MAX)) {
        es_field_error_set(err, "config.", "name", "must be a non-empty string");
        return ES_INVALID;
    }
    return ES_OK;
}

static es_rc_t validate_none(const json_t *config, es_field_error_t *err)
{
    return ES_OK;
}

static const es_proctype_t types[] = {
    {"webhook", validate_webhook},
    {"nats", validate_nats},
    {"projection", validate_projection},
    {"noop", validate_none},
};

const es_proctype_t *es_proctype_find(const char *name)
{
    for (size_t i = 0; i < ES_ARRAY_LEN(types); i++)
        if (strcmp(types[i].name, name) == 0)
            return &types[i];
    return NULL;
}

const char *es_proctype_list(void)
{
    return "webhook, nats, projection, noop";
}
