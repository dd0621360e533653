/*
 * event.h - the event model: enums with their exact wire strings, the typed
 * event built from a request (validated once at the edge), and its encoding
 * for event.ingest().
 */
#ifndef ES_EVENT_H
#define ES_EVENT_H

#include "common/buf.h"
#include "common/es.h"

#include <jansson.h>

#define ES_FIELD_MAX 255 /* varchar(255) columns */

typedef enum {
    ES_SOURCE_FRONTEND,
    ES_SOURCE_BACKEND,
    ES_SOURCE_SYSTEM,
    ES_SOURCE_IOT_DEVICE,
    ES_SOURCE_EXTERNAL_API,
    ES_SOURCE_SCHEDULED,
    ES_SOURCE_COUNT
} es_source_t;

typedef enum {
    ES_CAT_USER_ACTION,
    ES_CAT_PAGE_VIEW,
    ES_CAT_FORM_SUBMIT,
    ES_CAT_CLICK,
    ES_CAT_USER_LIFECYCLE,
    ES_CAT_PAYMENT,
    ES_CAT_ORDER,
    ES_CAT_TASK,
    ES_CAT_SYSTEM,
    ES_CAT_SECURITY,
    ES_CAT_PERFORMANCE,
    ES_CAT_ERROR,
    ES_CAT_DEVICE,
    ES_CAT_DEVICE_STATUS,
    ES_CAT_TELEMETRY,
    ES_CAT_COMMAND,
    ES_CAT_ALERT,
    ES_CAT_COUNT
} es_category_t;

typedef enum {
    ES_STATUS_PENDING,
    ES_STATUS_PROCESSING,
    ES_STATUS_PROCESSED,
    ES_STATUS_FAILED,
    ES_STATUS_ARCHIVED,
    ES_STATUS_COUNT
} es_status_t;

extern const char *const es_source_names[ES_SOURCE_COUNT];
extern const char *const es_category_names[ES_CAT_COUNT];
extern const char *const es_status_names[ES_STATUS_COUNT];

/* Looks s up in names (count entries); returns its index or -1. */
int es_enum_parse(const char *const *names, int count, const char *s);

/* A validation failure: the field path as the client wrote it
 * ("events[2].event_source") and why ("not a valid value"). */
typedef struct {
    char field[192];
    char msg[256];
} es_field_error_t;

void es_field_error_set(es_field_error_t *err, const char *prefix, const char *field,
                        const char *fmt, ...) ES_PRINTF(4, 5);

typedef struct {
    char event_id[ES_FIELD_MAX * 4 + 1]; /* 255 characters of up to 4 UTF-8 bytes */
    bool client_id; /* event_id came from the client: repeats are idempotent */
    char *event_type;
    es_source_t source;
    es_category_t category;
    char *user_id; /* NULL when absent, as the four below */
    char *session_id;
    char *organization_id;
    char *device_id;
    char *correlation_id;
    json_t *data; /* objects, never NULL after init */
    json_t *metadata;
    json_t *context;
    json_t *properties;
    int64_t timestamp_us;
    int64_t created_at_us;
    char *stream_id;          /* NULL = joins no stream */
    int64_t expected_version; /* -1 = no check */
    char request_hash[33];    /* hex fingerprint of the client's content; "" unless client_id */
    /* JSON text of data, metadata, context, properties, made once by
     * es_event_freeze and reused for the write and for the answer. */
    char *text[4];
} es_event_t;

/* Defaults: new random event_id, source backend, category user_action, empty
 * objects, timestamp and created_at = now_us. */
void es_event_init(es_event_t *ev, int64_t now_us);
void es_event_clear(es_event_t *ev);

/* Replaces *slot (one of the string fields) with a copy of s (NULL clears). */
void es_event_set_str(char **slot, const char *s);

/* Validates one create-request object and fills ev (initialised by the caller
 * with es_event_init). prefix names the element in errors ("" or
 * "events[3]."). Unknown keys are ignored, as the seed did. Returns ES_OK or
 * ES_INVALID with err filled. When the client supplied event_id, request_hash
 * is set from the canonical form of in. */
es_rc_t es_event_from_json(es_event_t *ev, const json_t *in, const char *prefix,
                           es_field_error_t *err) ES_MUST_CHECK;

/* Sets request_hash from the canonical (sorted, compact) JSON of content. */
void es_event_hash_content(es_event_t *ev, const json_t *content);
/* Binds a client-identified event's fingerprint to the authenticated
 * caller who, so that the same id and content sent by another caller is a
 * different request (409), never an answer with the first caller's event. */
void es_event_hash_bind(es_event_t *ev, const char *who);

/* Renders data, metadata, context and properties to text once (ev->text);
 * call after the last change to those objects. Idempotent. */
void es_event_freeze(es_event_t *ev);

/* Appends the event as one element of event.ingest()'s input (a JSON
 * object; see schema/002_ingest.sql). Freezes ev. */
void es_event_append_ingest_json(es_buf_t *b, es_event_t *ev, int req, int seq);

/* A JSON string of the bytes s (n), invalid UTF-8 and NULs replaced by
 * U+FFFD: text from outside (headers, responses) that must be stored. */
json_t *es_json_lossy_string(const char *s, size_t n);

/* True when v nests deeper than max_depth containers. */
bool es_json_too_deep(const json_t *v, int max_depth);

/* Characters (code points) in a valid UTF-8 string: what the 255-character
 * limits of the text columns count. */
size_t es_utf8_chars(const char *s);

#endif
