/*
 * receiver.c - the webhook receiver of the end-to-end tests. Contract in
 * receiver.h.
 *
 * One mutex guards everything shared; one condition variable (monotonic
 * clock) is broadcast on every change a waiter may care about: a request
 * read, an answer written, a connection ended, the stop.
 */
#include "receiver.h"

#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WR_MAX_HEAD (64 * 1024)
#define WR_MAX_BODY (16 * 1024 * 1024)
#define WR_IDLE_MS 60000 /* an idle keep-alive connection is closed after this */

/* An answer with its strings owned. */
typedef struct {
    int status;
    int delay_ms;
    char *retry_after;
    size_t body_bytes;
    char *body;
    char *header;
} ans_t;

typedef struct queued {
    char *path; /* NULL: any path */
    ans_t a;
    int times;
    struct queued *next;
} queued_t;

typedef struct {
    char *path; /* NULL: every path without its own */
    ans_t a;
} dflt_t;

typedef struct {
    char *path; /* NULL: every path without its own */
    char *secret;
} secret_t;

struct wr {
    int port;
    int fd;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    int active; /* connection threads running */
    int nconns; /* connections accepted */
    int *fds;   /* open connection sockets (shut down at stop) */
    int nfds, capfds;
    wr_req_t *reqs;
    int nreqs, capreqs;
    queued_t *queue;
    dflt_t *defaults;
    int ndefaults;
    secret_t *secrets;
    int nsecrets;
};

typedef struct {
    wr_t *r;
    int fd;
    int id;
    char *buf; /* bytes read and not consumed yet: buf[0..len) */
    size_t len, cap;
} conn_t;

/* ---- small helpers -------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static ans_t ans_copy(const wr_answer_t *a)
{
    ans_t o = {.status = a->status ? a->status : 200,
               .delay_ms = a->delay_ms,
               .retry_after = dup_or_null(a->retry_after),
               .body_bytes = a->body_bytes,
               .body = dup_or_null(a->body),
               .header = dup_or_null(a->header)};
    return o;
}

static ans_t ans_dup(const ans_t *a)
{
    ans_t o = *a;
    o.retry_after = dup_or_null(a->retry_after);
    o.body = dup_or_null(a->body);
    o.header = dup_or_null(a->header);
    return o;
}

static void ans_free(ans_t *a)
{
    free(a->retry_after);
    free(a->body);
    free(a->header);
    a->retry_after = a->body = a->header = NULL;
}

/* Length of target's path (without the query string). */
static size_t path_len(const char *target)
{
    return strcspn(target, "?#");
}

static bool path_is(const char *target, const char *path)
{
    size_t n = path_len(target);
    return strlen(path) == n && strncmp(target, path, n) == 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Absolute CLOCK_MONOTONIC time ms from now (the condition's clock). */
static struct timespec deadline_in(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void req_free(wr_req_t *q)
{
    for (int i = 0; i < q->nheaders; i++) {
        free(q->headers[i].name);
        free(q->headers[i].value);
    }
    free(q->headers);
    free(q->body);
    json_decref(q->json);
    memset(q, 0, sizeof(*q));
}

static wr_req_t req_copy(const wr_req_t *q)
{
    wr_req_t c = *q;
    c.headers = calloc((size_t)q->nheaders + 1, sizeof(*c.headers));
    for (int i = 0; i < q->nheaders; i++) {
        c.headers[i].name = strdup(q->headers[i].name);
        c.headers[i].value = strdup(q->headers[i].value);
    }
    c.body = malloc(q->len + 1);
    memcpy(c.body, q->body, q->len + 1);
    c.json = json_deep_copy(q->json);
    return c;
}

/* ---- signatures ----------------------------------------------------------- */

/* The HMAC key of secret (caller frees; *len its length). */
static unsigned char *key_of(const char *secret, size_t *len)
{
    if (strncmp(secret, "whsec_", 6) == 0) {
        const char *b = secret + 6;
        size_t n = strlen(b);
        char *padded = malloc(n + 4);
        memcpy(padded, b, n);
        while (n % 4 != 0)
            padded[n++] = '=';
        unsigned char *key = malloc(n / 4 * 3 + 1);
        int got = n > 0 ? EVP_DecodeBlock(key, (const unsigned char *)padded, (int)n) : -1;
        if (got >= 0) {
            size_t pad = 0;
            while (pad < 2 && n > pad && padded[n - 1 - pad] == '=')
                pad++;
            free(padded);
            *len = (size_t)got - pad;
            return key;
        }
        free(padded);
        free(key);
    }
    *len = strlen(secret);
    unsigned char *key = malloc(*len + 1);
    memcpy(key, secret, *len + 1);
    return key;
}

bool wr_sign(const char *secret, const char *id, const char *timestamp, const void *body,
             size_t len, char *out, size_t cap)
{
    size_t klen = 0;
    unsigned char *key = key_of(secret, &klen);
    size_t idlen = strlen(id), tslen = strlen(timestamp);
    size_t n = idlen + 1 + tslen + 1 + len;
    unsigned char *msg = malloc(n + 1);
    memcpy(msg, id, idlen);
    msg[idlen] = '.';
    memcpy(msg + idlen + 1, timestamp, tslen);
    msg[idlen + 1 + tslen] = '.';
    memcpy(msg + idlen + tslen + 2, body, len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    bool ok = HMAC(EVP_sha256(), key, (int)klen, msg, n, mac, &maclen) != NULL;
    free(msg);
    free(key);
    if (!ok)
        return false;
    char b64[4 * EVP_MAX_MD_SIZE / 3 + 8];
    EVP_EncodeBlock((unsigned char *)b64, mac, (int)maclen);
    int w = snprintf(out, cap, "v1,%s", b64);
    return w > 0 && (size_t)w < cap;
}

const char *wr_header(const wr_req_t *q, const char *name)
{
    for (int i = 0; i < q->nheaders; i++)
        if (strcasecmp(q->headers[i].name, name) == 0)
            return q->headers[i].value;
    return NULL;
}

int wr_signature_count(const wr_req_t *q)
{
    const char *h = wr_header(q, "webhook-signature");
    int n = 0;
    for (const char *p = h; p && *p;) {
        p += strspn(p, " ");
        size_t tok = strcspn(p, " ");
        n += tok > 3 && strncmp(p, "v1,", 3) == 0;
        p += tok;
    }
    return n;
}

bool wr_verify(const wr_req_t *q, const char *secret)
{
    const char *id = wr_header(q, "webhook-id");
    const char *ts = wr_header(q, "webhook-timestamp");
    const char *h = wr_header(q, "webhook-signature");
    char want[128];
    if (id == NULL || ts == NULL || h == NULL ||
        !wr_sign(secret, id, ts, q->body, q->len, want, sizeof(want)))
        return false;
    size_t wlen = strlen(want);
    bool ok = false;
    for (const char *p = h; *p;) {
        p += strspn(p, " ");
        size_t tok = strcspn(p, " ");
        if (tok == wlen && strncmp(p, "v1,", 3) == 0 && CRYPTO_memcmp(p, want, wlen) == 0)
            ok = true;
        p += tok;
    }
    return ok;
}

char wr_body_byte(size_t i)
{
    uint32_t x = (uint32_t)i * 2654435761u;
    x ^= x >> 15;
    x *= 2246822519u;
    x ^= x >> 13;
    return (char)('a' + x % 26);
}

/* ---- answering ------------------------------------------------------------ */

/* The answer for a request on target (mu held); the caller frees it. */
static ans_t pick_answer(wr_t *r, const char *target)
{
    for (int pass = 0; pass < 2; pass++) {
        for (queued_t **pp = &r->queue; *pp; pp = &(*pp)->next) {
            queued_t *q = *pp;
            bool match = pass == 0 ? q->path && path_is(target, q->path) : q->path == NULL;
            if (!match)
                continue;
            ans_t a = ans_dup(&q->a);
            if (--q->times <= 0) {
                *pp = q->next;
                free(q->path);
                ans_free(&q->a);
                free(q);
            }
            return a;
        }
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < r->ndefaults; i++) {
            dflt_t *d = &r->defaults[i];
            if (pass == 0 ? d->path && path_is(target, d->path) : d->path == NULL)
                return ans_dup(&d->a);
        }
    return (ans_t){.status = 200};
}

static const char *secret_for(wr_t *r, const char *target)
{
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < r->nsecrets; i++) {
            secret_t *s = &r->secrets[i];
            if (pass == 0 ? s->path && path_is(target, s->path) : s->path == NULL)
                return s->secret;
        }
    return NULL;
}

/* Writes answer a on fd; false when the client went away meanwhile. */
static bool write_answer(int fd, const ans_t *a, bool close_after)
{
    char *body = NULL;
    size_t blen;
    if (a->body_bytes > 0) {
        blen = a->body_bytes;
        body = malloc(blen);
        for (size_t i = 0; i < blen; i++)
            body[i] = wr_body_byte(i);
    } else {
        body = strdup(a->body ? a->body : "{}");
        blen = strlen(body);
    }
    char head[2048];
    int n = snprintf(
        head, sizeof(head),
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s%s%s%s\r\n", a->status,
        h_reason_phrase(a->status), a->body_bytes > 0 ? "text/plain" : "application/json", blen,
        a->retry_after ? "Retry-After: " : "", a->retry_after ? a->retry_after : "",
        a->retry_after ? "\r\n" : "", a->header ? a->header : "", a->header ? "\r\n" : "",
        close_after ? "Connection: close\r\n" : "");
    bool ok = n > 0 && (size_t)n < sizeof(head) && h_send_all(fd, head, (size_t)n) &&
              h_send_all(fd, body, blen);
    free(body);
    return ok;
}

/* ---- reading requests ----------------------------------------------------- */

/* Reads more bytes into c->buf; false at EOF, on an error or after the idle
 * limit. */
static bool fill(conn_t *c)
{
    if (c->len + 4096 > c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16384;
        while (c->len + 4096 > c->cap)
            c->cap *= 2;
        c->buf = realloc(c->buf, c->cap + 1);
    }
    for (;;) {
        struct pollfd p = {c->fd, POLLIN, 0};
        int ready = poll(&p, 1, WR_IDLE_MS);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            return false;
        ssize_t got = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return false;
        c->len += (size_t)got;
        c->buf[c->len] = '\0';
        return true;
    }
}

/* Offset of "\r\n" in c->buf at or after from, reading more as needed;
 * -1 at EOF or past limit bytes. */
static long find_crlf(conn_t *c, size_t from, size_t limit)
{
    for (;;) {
        for (size_t i = from; i + 1 < c->len; i++)
            if (c->buf[i] == '\r' && c->buf[i + 1] == '\n')
                return (long)i;
        if (c->len > limit || !fill(c))
            return -1;
    }
}

static bool have(conn_t *c, size_t n)
{
    while (c->len < n)
        if (!fill(c))
            return false;
    return true;
}

/* Drops the first n bytes of c->buf (the request just handled). */
static void consume(conn_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    if (c->buf)
        c->buf[c->len] = '\0';
}

/* Reads one request into q (method, target, headers, body). *used gets the
 * bytes it took in c->buf. False at EOF or on a malformed request. */
static bool read_request(conn_t *c, wr_req_t *q, size_t *used, bool *wants_close)
{
    size_t head_end = 0;
    for (;;) { /* the head ends at the first empty line */
        char *end = c->len ? strstr(c->buf, "\r\n\r\n") : NULL;
        if (end != NULL) {
            head_end = (size_t)(end - c->buf) + 4;
            break;
        }
        if (c->len > WR_MAX_HEAD || !fill(c))
            return false;
    }
    char *line_end = strstr(c->buf, "\r\n");
    char *sp1 = memchr(c->buf, ' ', (size_t)(line_end - c->buf));
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL)
        return false;
    snprintf(q->method, sizeof(q->method), "%.*s", (int)(sp1 - c->buf), c->buf);
    snprintf(q->target, sizeof(q->target), "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);

    size_t content_length = 0;
    bool chunked = false, expect_continue = false;
    *wants_close = false;
    for (char *line = line_end + 2; line < c->buf + head_end - 2;) {
        char *eol = strstr(line, "\r\n");
        char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon != NULL) {
            char *value = colon + 1;
            while (value < eol && (*value == ' ' || *value == '\t'))
                value++;
            char *vend = eol;
            while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
                vend--;
            q->headers = realloc(q->headers, (size_t)(q->nheaders + 1) * sizeof(*q->headers));
            q->headers[q->nheaders].name = strndup(line, (size_t)(colon - line));
            q->headers[q->nheaders].value = strndup(value, (size_t)(vend - value));
            const char *name = q->headers[q->nheaders].name;
            const char *v = q->headers[q->nheaders].value;
            q->nheaders++;
            if (strcasecmp(name, "Content-Length") == 0)
                content_length = strtoul(v, NULL, 10);
            else if (strcasecmp(name, "Transfer-Encoding") == 0 && strcasestr(v, "chunked"))
                chunked = true;
            else if (strcasecmp(name, "Connection") == 0 && strcasestr(v, "close"))
                *wants_close = true;
            else if (strcasecmp(name, "Expect") == 0 && strcasestr(v, "100-continue"))
                expect_continue = true;
        }
        line = eol + 2;
    }
    if (expect_continue && !h_send_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25))
        return false;

    if (!chunked) {
        if (content_length > WR_MAX_BODY || !have(c, head_end + content_length))
            return false;
        q->body = malloc(content_length + 1);
        memcpy(q->body, c->buf + head_end, content_length);
        q->body[content_length] = '\0';
        q->len = content_length;
        *used = head_end + content_length;
        return true;
    }
    /* chunked: size line, data, CRLF ... "0" line, trailers, empty line */
    size_t pos = head_end, blen = 0;
    char *body = malloc(1);
    for (;;) {
        long eol = find_crlf(c, pos, pos + 64);
        if (eol < 0)
            goto bad;
        size_t size = strtoul(c->buf + pos, NULL, 16);
        pos = (size_t)eol + 2;
        if (size == 0)
            break;
        if (blen + size > WR_MAX_BODY || !have(c, pos + size + 2))
            goto bad;
        body = realloc(body, blen + size + 1);
        memcpy(body + blen, c->buf + pos, size);
        blen += size;
        pos += size + 2;
    }
    for (;;) { /* trailers up to the empty line */
        long eol = find_crlf(c, pos, pos + WR_MAX_HEAD);
        if (eol < 0)
            goto bad;
        bool empty = (size_t)eol == pos;
        pos = (size_t)eol + 2;
        if (empty)
            break;
    }
    body[blen] = '\0';
    q->body = body;
    q->len = blen;
    *used = pos;
    return true;
bad:
    free(body);
    return false;
}

/* ---- threads -------------------------------------------------------------- */

static void forget_fd(wr_t *r, int fd)
{
    for (int i = 0; i < r->nfds; i++)
        if (r->fds[i] == fd) {
            r->fds[i] = r->fds[--r->nfds];
            break;
        }
}

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    wr_t *r = c->r;
    struct timeval tv = {30, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    for (;;) {
        wr_req_t q;
        memset(&q, 0, sizeof(q));
        size_t used = 0;
        bool wants_close = false;
        if (!read_request(c, &q, &used, &wants_close)) {
            req_free(&q);
            break;
        }
        consume(c, used);
        q.json = json_loadb(q.body, q.len, 0, NULL);
        q.at_ms = h_now_ms();
        q.at_unix_ms = wall_ms();
        q.conn = c->id;

        pthread_mutex_lock(&r->mu);
        const char *secret = secret_for(r, q.target);
        if (secret != NULL)
            q.sig = wr_verify(&q, secret) ? WR_SIG_OK : WR_SIG_BAD;
        ans_t a = pick_answer(r, q.target);
        if (r->nreqs == r->capreqs) {
            r->capreqs = r->capreqs ? r->capreqs * 2 : 64;
            r->reqs = realloc(r->reqs, (size_t)r->capreqs * sizeof(*r->reqs));
        }
        int index = r->nreqs++;
        q.seq = index;
        r->reqs[index] = q; /* the receiver owns q's memory from here */
        pthread_cond_broadcast(&r->cv);
        struct timespec until = deadline_in(a.delay_ms);
        while (a.delay_ms > 0 && !r->stopping)
            if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
                break;
        bool close_after = wants_close || r->stopping;
        pthread_mutex_unlock(&r->mu);

        bool written = write_answer(c->fd, &a, close_after);

        pthread_mutex_lock(&r->mu);
        r->reqs[index].status = a.status;
        r->reqs[index].answered_ms = h_now_ms();
        r->reqs[index].answer_failed = !written;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        ans_free(&a);
        if (!written || close_after)
            break;
    }
    pthread_mutex_lock(&r->mu);
    forget_fd(r, c->fd);
    close(c->fd);
    r->active--;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    free(c->buf);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    wr_t *r = arg;
    int fd;
    while ((fd = h_accept_until(r->fd, &r->mu, &r->stopping)) >= 0) {
        conn_t *c = calloc(1, sizeof(*c));
        c->r = r;
        c->fd = fd;
        pthread_mutex_lock(&r->mu);
        if (r->stopping) {
            pthread_mutex_unlock(&r->mu);
            close(fd);
            free(c);
            break;
        }
        c->id = r->nconns++;
        if (r->nfds == r->capfds) {
            r->capfds = r->capfds ? r->capfds * 2 : 32;
            r->fds = realloc(r->fds, (size_t)r->capfds * sizeof(*r->fds));
        }
        r->fds[r->nfds++] = fd;
        r->active++;
        pthread_mutex_unlock(&r->mu);
        if (!h_thread_detached(conn_main, c)) {
            pthread_mutex_lock(&r->mu);
            forget_fd(r, fd);
            r->active--;
            pthread_mutex_unlock(&r->mu);
            close(fd);
            free(c);
        }
    }
    return NULL;
}

/* ---- the API -------------------------------------------------------------- */

wr_t *wr_start(void)
{
    wr_t *r = calloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    r->fd = h_listen_local(512, &r->port);
    cr_assert_eq(pthread_create(&r->acceptor, NULL, accept_main, r), 0);
    return r;
}

int wr_port(const wr_t *r)
{
    return r->port;
}

const char *wr_url(const wr_t *r, const char *path, char *buf, size_t cap)
{
    snprintf(buf, cap, "http://127.0.0.1:%d%s", r->port, path);
    return buf;
}

void wr_default(wr_t *r, const char *path, wr_answer_t answer)
{
    pthread_mutex_lock(&r->mu);
    int i = 0;
    while (i < r->ndefaults &&
           !(path == NULL ? r->defaults[i].path == NULL
                          : r->defaults[i].path && strcmp(r->defaults[i].path, path) == 0))
        i++;
    if (i == r->ndefaults) {
        r->defaults = realloc(r->defaults, (size_t)(r->ndefaults + 1) * sizeof(*r->defaults));
        r->defaults[i].path = dup_or_null(path);
        r->ndefaults++;
    } else {
        ans_free(&r->defaults[i].a);
    }
    r->defaults[i].a = ans_copy(&answer);
    pthread_mutex_unlock(&r->mu);
}

void wr_push(wr_t *r, const char *path, int times, wr_answer_t answer)
{
    if (times <= 0)
        return;
    queued_t *q = calloc(1, sizeof(*q));
    q->path = dup_or_null(path);
    q->a = ans_copy(&answer);
    q->times = times;
    pthread_mutex_lock(&r->mu);
    queued_t **pp = &r->queue;
    while (*pp)
        pp = &(*pp)->next;
    *pp = q;
    pthread_mutex_unlock(&r->mu);
}

void wr_secret(wr_t *r, const char *path, const char *secret)
{
    pthread_mutex_lock(&r->mu);
    int i = 0;
    while (i < r->nsecrets &&
           !(path == NULL ? r->secrets[i].path == NULL
                          : r->secrets[i].path && strcmp(r->secrets[i].path, path) == 0))
        i++;
    if (i == r->nsecrets) {
        r->secrets = realloc(r->secrets, (size_t)(r->nsecrets + 1) * sizeof(*r->secrets));
        r->secrets[i].path = dup_or_null(path);
        r->secrets[i].secret = NULL;
        r->nsecrets++;
    }
    free(r->secrets[i].secret);
    r->secrets[i].secret = dup_or_null(secret);
    if (secret == NULL) { /* removed */
        free(r->secrets[i].path);
        r->secrets[i] = r->secrets[--r->nsecrets];
    }
    pthread_mutex_unlock(&r->mu);
}

static int count_locked(wr_t *r, const char *path)
{
    int n = 0;
    for (int i = 0; i < r->nreqs; i++)
        n += path == NULL || path_is(r->reqs[i].target, path);
    return n;
}

int wr_count(wr_t *r, const char *path)
{
    pthread_mutex_lock(&r->mu);
    int n = count_locked(r, path);
    pthread_mutex_unlock(&r->mu);
    return n;
}

int wr_in_flight(wr_t *r)
{
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (int i = 0; i < r->nreqs; i++)
        n += r->reqs[i].answered_ms == 0;
    pthread_mutex_unlock(&r->mu);
    return n;
}

typedef struct {
    const char *path;
    int n;
} count_arg_t;

static bool count_reached(const wr_req_t *reqs, int n, void *arg)
{
    count_arg_t *a = arg;
    int k = 0;
    for (int i = 0; i < n; i++)
        k += a->path == NULL || path_is(reqs[i].target, a->path);
    return k >= a->n;
}

bool wr_wait_count(wr_t *r, const char *path, int n, int timeout_ms)
{
    count_arg_t a = {path, n};
    return wr_wait_for(r, timeout_ms, count_reached, &a);
}

bool wr_wait_for(wr_t *r, int timeout_ms, bool (*pred)(const wr_req_t *reqs, int n, void *arg),
                 void *arg)
{
    struct timespec until = deadline_in(timeout_ms);
    pthread_mutex_lock(&r->mu);
    bool ok;
    while (!(ok = pred(r->reqs, r->nreqs, arg)))
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT) {
            ok = pred(r->reqs, r->nreqs, arg);
            break;
        }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

int wr_requests(wr_t *r, const char *path, wr_req_t **out)
{
    pthread_mutex_lock(&r->mu);
    wr_req_t *copy = calloc((size_t)r->nreqs + 1, sizeof(*copy));
    int n = 0;
    for (int i = 0; i < r->nreqs; i++)
        if (path == NULL || path_is(r->reqs[i].target, path))
            copy[n++] = req_copy(&r->reqs[i]);
    pthread_mutex_unlock(&r->mu);
    *out = copy;
    return n;
}

void wr_reqs_free(wr_req_t *reqs, int n)
{
    for (int i = 0; i < n; i++)
        req_free(&reqs[i]);
    free(reqs);
}

void wr_stop(wr_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->acceptor, NULL);
    close(r->fd);
    struct timespec until = deadline_in(10000);
    pthread_mutex_lock(&r->mu);
    /* Idle keep-alive connections see EOF; waiting answers are still written. */
    for (int i = 0; i < r->nfds; i++)
        shutdown(r->fds[i], SHUT_RD);
    while (r->active > 0)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
            break;
    bool idle = r->active == 0;
    pthread_mutex_unlock(&r->mu);
    if (!idle) {
        fprintf(stderr, "e2e: receiver on port %d: connection threads still running; kept\n",
                r->port);
        return; /* they still use r: leak it rather than free it under them */
    }
    for (int i = 0; i < r->nreqs; i++)
        req_free(&r->reqs[i]);
    free(r->reqs);
    while (r->queue) {
        queued_t *q = r->queue;
        r->queue = q->next;
        free(q->path);
        ans_free(&q->a);
        free(q);
    }
    for (int i = 0; i < r->ndefaults; i++) {
        free(r->defaults[i].path);
        ans_free(&r->defaults[i].a);
    }
    free(r->defaults);
    for (int i = 0; i < r->nsecrets; i++) {
        free(r->secrets[i].path);
        free(r->secrets[i].secret);
    }
    free(r->secrets);
    free(r->fds);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void wr_stop_all(h_env_t *e, wr_t *r)
{
    cr_assert(h_svc_stop(e, SIGTERM, 20000), "the service did not stop within 20 s of SIGTERM");
    wr_stop(r);
}
