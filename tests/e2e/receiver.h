/*
 * receiver.h - a webhook receiver for the end-to-end tests: a small
 * multi-threaded HTTP/1.1 server on 127.0.0.1 (a free port) run by the test
 * process, standing in for a subscriber's endpoint.
 *
 * - An acceptor thread, then a thread per connection that serves requests
 *   one after the other on it (keep-alive, as curl reuses connections;
 *   Content-Length and chunked request bodies).
 * - Every request is recorded with its arrival time (monotonic and wall
 *   clock), method, target, headers and body, and what was answered.
 * - How a request is answered is decided when it has been read in full: the
 *   next scripted answer queued for its path (wr_push), else the path's
 *   default (wr_default), else the receiver's default, else 200 "{}". An
 *   answer has a status, an optional Retry-After, a delay before it is
 *   written (a slow endpoint), and a body (small JSON, or a large generated
 *   one: byte i is wr_body_byte(i)).
 * - Standard Webhooks signatures (webhook-id, webhook-timestamp,
 *   webhook-signature: "v1,<base64 HMAC-SHA256 of id.timestamp.body>", several
 *   space-separated) are checked on arrival against the path's secret
 *   (wr_secret) and can be checked afterwards against any secret
 *   (wr_verify). A secret "whsec_<base64>" is the base64-decoded bytes; any
 *   other secret is its own bytes.
 *
 * Paths are compared without their query string. The receiver never fails a
 * test from its own threads; only wr_start asserts (in the test's thread).
 * Waits take a deadline and return false when it passes.
 */
#ifndef ES_E2E_RECEIVER_H
#define ES_E2E_RECEIVER_H

#include "harness.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wr wr_t;

/* How to answer a request. Zero-initialised fields mean: status 200, no
 * Retry-After, no delay, body "{}", no extra header. */
typedef struct {
    int status;              /* 0 means 200 */
    int delay_ms;            /* wait this long before answering (wr_stop cuts it short) */
    const char *retry_after; /* value of a Retry-After header, or NULL for none */
    size_t body_bytes;       /* > 0: a generated body of this many bytes (wr_body_byte) */
    const char *body;        /* else this body (NULL: "{}") */
    const char *header;      /* one more header line, "Name: value", or NULL */
} wr_answer_t;

typedef struct {
    char *name; /* as sent */
    char *value;
} wr_header_t;

/* Outcome of the check against the path's secret on arrival. */
enum { WR_SIG_BAD = -1, WR_SIG_UNCHECKED = 0, WR_SIG_OK = 1 };

/* One request as received. */
typedef struct {
    int seq;  /* arrival order, from 0 */
    int conn; /* connection it came on, from 0 (keep-alive reuse is visible) */
    char method[16];
    char target[512]; /* as sent, query string included */
    wr_header_t *headers;
    int nheaders;
    char *body; /* NUL-terminated, never NULL */
    size_t len;
    json_t *json;        /* body parsed, or NULL */
    int64_t at_ms;       /* h_now_ms() when it had been read in full */
    int64_t at_unix_ms;  /* wall clock (CLOCK_REALTIME) then, in milliseconds */
    int sig;             /* WR_SIG_*: against the path's secret on arrival */
    int status;          /* the status answered; 0 while in flight */
    int64_t answered_ms; /* h_now_ms() when the answer was written (or failed); 0 before */
    bool answer_failed;  /* the client was gone before the whole answer was written */
} wr_req_t;

/* Starts a receiver on 127.0.0.1 and a free port (h_free_port). Fails the
 * test if it cannot listen. Stop it with wr_stop. */
wr_t *wr_start(void);
/* Its port. */
int wr_port(const wr_t *r);
/* Writes "http://127.0.0.1:<port><path>" to buf and returns buf. */
const char *wr_url(const wr_t *r, const char *path, char *buf, size_t cap);

/* The answer for requests on path (NULL: every path without its own) once
 * the queued ones are used up. Strings are copied. */
void wr_default(wr_t *r, const char *path, wr_answer_t answer);
/* Queues answer for the next `times` requests on path (NULL: any path),
 * after the answers already queued for it. Path queues come before the
 * any-path queue. */
void wr_push(wr_t *r, const char *path, int times, wr_answer_t answer);
/* Requests on path (NULL: every path without its own) are checked on
 * arrival against secret (copied); NULL stops checking. */
void wr_secret(wr_t *r, const char *path, const char *secret);

/* Requests received so far on path (NULL: all), answered or not. */
int wr_count(wr_t *r, const char *path);
/* Requests read in full and not answered yet. */
int wr_in_flight(wr_t *r);
/* Waits up to timeout_ms until at least n requests arrived on path (NULL:
 * all). True when they did. */
bool wr_wait_count(wr_t *r, const char *path, int n, int timeout_ms);
/* Waits up to timeout_ms until pred(reqs, n, arg) is true; pred sees every
 * request so far (in arrival order) and runs with the receiver locked: it must
 * not call the receiver. Evaluated at once and after each arrival or answer.
 * True when pred became true. */
bool wr_wait_for(wr_t *r, int timeout_ms, bool (*pred)(const wr_req_t *reqs, int n, void *arg),
                 void *arg);
/* Copies of the requests on path (NULL: all) in arrival order; *out is freed
 * with wr_reqs_free. Returns how many. */
int wr_requests(wr_t *r, const char *path, wr_req_t **out);
void wr_reqs_free(wr_req_t *reqs, int n);

/* Value of header name (case-insensitive) of q, or NULL. */
const char *wr_header(const wr_req_t *q, const char *name);
/* Number of "v1," entries in q's webhook-signature header. */
int wr_signature_count(const wr_req_t *q);
/* True when one of q's v1 signatures is the HMAC-SHA256 of
 * webhook-id.webhook-timestamp.body under secret. */
bool wr_verify(const wr_req_t *q, const char *secret);
/* The Standard Webhooks v1 signature ("v1,<base64>") of id.timestamp.body
 * under secret, written to out. False if it does not fit. */
bool wr_sign(const char *secret, const char *id, const char *timestamp, const void *body,
             size_t len, char *out, size_t cap);

/* Byte i of a generated answer body (printable ASCII, not periodic over a
 * few KB, so a truncated copy shows where it was cut). */
char wr_body_byte(size_t i);

/* Stops accepting, cuts pending delays short (those answers are still
 * written), closes idle connections, waits up to 10 s for the connection
 * threads and frees the receiver. NULL is fine. */
void wr_stop(wr_t *r);
/* Stops e's service (SIGTERM; asserts it exits within 20 s), then the receiver r. */
void wr_stop_all(h_env_t *e, wr_t *r);

#endif
