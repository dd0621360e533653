#include "common/rudder.h"

#include "common/ids.h"
#include "common/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Case-insensitive substring test. */
static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

es_category_t es_rudder_category(const char *type, const char *event)
{
    if (type != NULL && strcasecmp(type, "page") == 0)
        return ES_CAT_PAGE_VIEW;
    if (type != NULL && strcasecmp(type, "track") == 0 && event != NULL) {
        if (contains_ci(event, "form"))
            return ES_CAT_FORM_SUBMIT;
        if (contains_ci(event, "click"))
            return ES_CAT_CLICK;
    }
    return ES_CAT_USER_ACTION;
}

/* A string field, or a number rendered as a string (some SDKs send numeric
 * user ids); NULL when absent or of another type. Caller frees. */
static char *id_value(const json_t *v)
{
    if (json_is_string(v) && json_string_length(v) > 0)
        return es_xstrdup(json_string_value(v));
    if (json_is_integer(v))
        return es_xasprintf("%lld", (long long)json_integer_value(v));
    return NULL;
}

static bool time_of(const json_t *msg, const char *key, int64_t *us)
{
    const json_t *v = json_object_get(msg, key);
    return json_is_string(v) && es_time_parse(json_string_value(v), json_string_length(v), us);
}

static void copy_if_present(json_t *dst, const json_t *msg, const char *key)
{
    json_t *v = json_object_get(msg, key);
    if (v != NULL && !json_is_null(v))
        json_object_set(dst, key, v);
}

es_rc_t es_rudder_to_event(es_event_t *ev, const json_t *msg, const char *type_hint,
                           es_source_t source, int64_t received_us, const char *prefix,
                           es_field_error_t *err)
{
    if (!json_is_object(msg)) {
        es_field_error_set(err, prefix, "message", "must be a JSON object");
        return ES_INVALID;
    }
    const json_t *tv = json_object_get(msg, "type");
    const char *type = json_is_string(tv) && json_string_length(tv) > 0 ? json_string_value(tv)
                                                                        : type_hint;
    if (type == NULL) {
        es_field_error_set(err, prefix, "type", "field required");
        return ES_INVALID;
    }
    if (tv != NULL && !json_is_null(tv) && !json_is_string(tv)) {
        es_field_error_set(err, prefix, "type", "must be a string");
        return ES_INVALID;
    }
    char *user = id_value(json_object_get(msg, "userId"));
    char *anon = id_value(json_object_get(msg, "anonymousId"));
    if (user == NULL && anon == NULL) {
        es_field_error_set(err, prefix, "userId", "userId or anonymousId is required");
        return ES_INVALID;
    }
    if ((user && es_utf8_chars(user) > ES_FIELD_MAX) || (anon && es_utf8_chars(anon) > ES_FIELD_MAX)) {
        es_field_error_set(err, prefix, user && es_utf8_chars(user) > ES_FIELD_MAX ? "userId"
                                                                                   : "anonymousId",
                           "must be at most %d characters", ES_FIELD_MAX);
        free(user);
        free(anon);
        return ES_INVALID;
    }
    const json_t *evv = json_object_get(msg, "event");
    const json_t *namev = json_object_get(msg, "name");
    const char *event = json_is_string(evv) && json_string_length(evv) > 0 ? json_string_value(evv)
                                                                           : NULL;
    const char *name = json_is_string(namev) && json_string_length(namev) > 0
                           ? json_string_value(namev)
                           : NULL;
    const char *event_type = event ? event : name ? name : type;
    if (es_utf8_chars(event_type) > ES_FIELD_MAX) {
        es_field_error_set(err, prefix, event ? "event" : "name", "must be at most %d characters",
                           ES_FIELD_MAX);
        free(user);
        free(anon);
        return ES_INVALID;
    }
    es_event_set_str(&ev->event_type, event_type);
    ev->source = source;
    ev->category = es_rudder_category(type, event);
    es_event_set_str(&ev->user_id, user ? user : anon);

    json_t *data = json_object();
    const json_t *props = json_object_get(msg, "properties");
    json_object_set_new(data, "properties", json_is_object(props) ? json_copy((json_t *)props)
                                                                   : json_object());
    json_object_set_new(data, "type", json_string(type));
    copy_if_present(data, msg, "traits");
    copy_if_present(data, msg, "name");
    copy_if_present(data, msg, "groupId");
    copy_if_present(data, msg, "previousId");
    json_decref(ev->data);
    ev->data = data;

    const json_t *ctx = json_object_get(msg, "context");
    if (json_is_object(ctx)) {
        json_decref(ev->context);
        ev->context = json_copy((json_t *)ctx);
    }

    json_t *meta = json_object();
    copy_if_present(meta, msg, "messageId");
    copy_if_present(meta, msg, "anonymousId");
    copy_if_present(meta, msg, "userId");
    copy_if_present(meta, msg, "sentAt");
    copy_if_present(meta, msg, "originalTimestamp");
    copy_if_present(meta, msg, "timestamp");
    copy_if_present(meta, msg, "channel");
    copy_if_present(meta, msg, "rudderId");
    copy_if_present(meta, msg, "integrations");
    copy_if_present(meta, msg, "request_ip");
    json_object_set_new(meta, "original_type", json_string(type));
    char received[ES_TIME_BUFLEN];
    es_time_format(received_us, received);
    if (json_object_get(msg, "receivedAt") != NULL)
        copy_if_present(meta, msg, "receivedAt");
    else
        json_object_set_new(meta, "receivedAt", json_string(received));
    json_decref(ev->metadata);
    ev->metadata = meta;

    /* The client's clock corrected by how far it is off ours (Segment's rule). */
    int64_t ts = 0, sent = 0;
    bool has_ts = time_of(msg, "timestamp", &ts) || time_of(msg, "originalTimestamp", &ts);
    if (has_ts && time_of(msg, "sentAt", &sent))
        ev->timestamp_us = received_us - (sent - ts);
    else if (has_ts)
        ev->timestamp_us = ts;
    else
        ev->timestamp_us = received_us;

    /* The messageId names the event: a redelivery is the same event. */
    const json_t *mid = json_object_get(msg, "messageId");
    if (json_is_string(mid) && json_string_length(mid) > 0) {
        char *name_key = es_xasprintf("event_service/message-id/%s", json_string_value(mid));
        es_uuid_from_name(name_key, strlen(name_key), ev->event_id);
        ev->client_id = true;
        /* Any repeat of a messageId is the same message, whatever the retry
         * changed (sentAt, receivedAt): the fingerprint is the id itself. */
        json_t *fp = json_string(name_key);
        es_event_hash_content(ev, fp);
        json_decref(fp);
        free(name_key);
    }
    free(user);
    free(anon);
    return ES_OK;
}
