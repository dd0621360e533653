/*
 * http.h - replies, errors and request parsing shared by the handlers, and
 * es_async_t: a request whose answer comes later (after a database round
 * trip), with a deadline and protection against the request going away.
 */
#ifndef ES_API_HTTP_H
#define ES_API_HTTP_H

#include "common/event.h"

#include <h2o.h>
#include <jansson.h>

/* Sends a JSON body with status. Sets content-length (keeps POST keep-alive)
 * and closes the connection afterwards once the worker is stopping. */
void es_http_json(h2o_req_t *req, int status, const char *body, size_t len);
/* {"detail": detail} with status. */
void es_http_error(h2o_req_t *req, int status, const char *detail);
/* The same with a formatted detail. */
void es_http_errorf(h2o_req_t *req, int status, const char *fmt, ...) ES_PRINTF(3, 4);
/* 422 {"detail": "field: msg", "errors": [{"loc": [...], "msg": ...}]}. */
void es_http_invalid(h2o_req_t *req, const es_field_error_t *err);

/* Parses the request body as JSON, within service.body_limit_bytes. On
 * failure replies (400 malformed, 413 too large, 422 empty or too deep) and
 * returns NULL. New reference. */
json_t *es_http_body_json(h2o_req_t *req);

/* The request body, inflated when it is Content-Encoding: gzip and gzip is
 * allowed, at most max bytes (after inflating). ES_OK with a heap copy in
 * *out (NUL-terminated, caller frees); otherwise the request was answered
 * (413 too large, 400 bad gzip, 415 other encodings). */
es_rc_t es_http_body_raw(h2o_req_t *req, size_t max, bool gzip, char **out,
                         size_t *len) ES_MUST_CHECK;

/* Parses text as JSON with the service's depth limit; answers 400/422 and
 * returns NULL on failure. */
json_t *es_http_parse_json(h2o_req_t *req, const char *text, size_t len);

/* Copies the percent-decoded value of query parameter name into out (cap
 * bytes). Returns true when present (an empty value counts). */
bool es_http_query(h2o_req_t *req, const char *name, char *out, size_t cap);

/* Percent-decodes s (n bytes) into out (cap bytes), '+' meaning a space (query
 * strings); false if malformed, %00, or too long for out. */
bool es_http_unescape(const char *s, size_t n, char *out, size_t cap);
/* The same; plus_is_space false for path segments, where '+' is itself. */
bool es_http_unescape_ex(const char *s, size_t n, char *out, size_t cap, bool plus_is_space);

/* Value of request header name (lowercase), or NULL. Not NUL-terminated: len set. */
const char *es_http_header(h2o_req_t *req, const char *name, size_t *len);

typedef struct es_async {
    h2o_req_t *req; /* NULL once answered, timed out, or gone */
    int route;      /* for the metrics of the answer */
    struct es_async_guard *guard;
    h2o_timeout_entry_t deadline;
} es_async_t;

/* Starts waiting on req (counts it in flight and arms the request deadline;
 * when it passes, the client gets 503 and a->req becomes NULL). The owner of
 * a must call es_async_json/es_async_error or es_async_end before freeing it. */
void es_async_begin(es_async_t *a, h2o_req_t *req);
/* Answers (if the request is still there) and ends the wait. */
void es_async_json(es_async_t *a, int status, const char *body, size_t len);
void es_async_error(es_async_t *a, int status, const char *detail);
/* Ends the wait without answering (the request was answered elsewhere or is gone). */
void es_async_end(es_async_t *a);

/* Marks a (its request, still waiting) as the one being handled: an answer
 * given with es_http_json by a completion is counted under its route. */
void es_async_enter(const es_async_t *a);

#endif
