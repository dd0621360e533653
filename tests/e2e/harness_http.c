/*
 * harness_http.c - how the end-to-end tests talk to the service: HTTP with
 * libcurl (one request, many at once, background load), JSON lookups, and
 * the HTTP receiver that webhook processors post to, with the socket helpers
 * it shares with receiver.c. Contracts in harness.h and harness_internal.h.
 */
#include "harness.h"
#include "harness_internal.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- HTTP ----------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
    buf_t *b = user;
    size_t add = size * n;
    if (b->len + add + 1 > b->cap) {
        b->cap = (b->len + add + 1) * 2;
        b->data = realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* One transfer being prepared or running. */
typedef struct {
    CURL *curl;
    struct curl_slist *headers;
    buf_t body;
    h_resp_t *out;
} xfer_t;

static void xfer_init(xfer_t *x, int port, const char *method, const char *path, const char *body,
                      size_t body_len, const char *const *headers, int timeout_ms, h_resp_t *out)
{
    memset(x, 0, sizeof(*x));
    memset(out, 0, sizeof(*out));
    x->out = out;
    x->curl = curl_easy_init();
    char url[2048];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = x->curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 15000));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x->body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, out->error);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    x->headers = curl_slist_append(x->headers, "Expect:");
    if (body != NULL) {
        x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body); /* not copied: outlives the transfer */
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        }
    }
    for (int i = 0; headers && headers[i]; i++)
        x->headers = curl_slist_append(x->headers, headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->headers);
}

static void xfer_done(xfer_t *x, CURLcode code)
{
    h_resp_t *r = x->out;
    r->curl_code = (int)code;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(x->curl, CURLINFO_TOTAL_TIME, &r->seconds);
    if (code != CURLE_OK && r->error[0] == '\0')
        snprintf(r->error, sizeof(r->error), "%s", curl_easy_strerror(code));
    r->body = x->body.data ? x->body.data : calloc(1, 1);
    r->len = x->body.len;
    r->json = code == CURLE_OK ? json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL) : NULL;
    curl_slist_free_all(x->headers);
    curl_easy_cleanup(x->curl);
}

h_resp_t h_http(int port, const char *method, const char *path, const char *body, size_t body_len,
                const char *const *headers, int timeout_ms)
{
    h_resp_t r;
    xfer_t x;
    xfer_init(&x, port, method, path, body, body_len, headers, timeout_ms, &r);
    xfer_done(&x, curl_easy_perform(x.curl));
    return r;
}

void h_resp_free(h_resp_t *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* fmt formatted with ap (caller frees). */
static char *format_v(const char *fmt, va_list ap)
{
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0)
        text = NULL;
    return text;
}

/* GET of path_fmt formatted with ap; *path gets the path (caller frees). */
static h_resp_t get_v(h_env_t *e, const char *path_fmt, va_list ap, char **path)
{
    *path = format_v(path_fmt, ap);
    return h_http(e->svc.port, "GET", *path, NULL, 0, NULL, 0);
}

h_resp_t h_get(h_env_t *e, const char *path_fmt, ...)
{
    char *path = NULL;
    va_list ap;
    va_start(ap, path_fmt);
    h_resp_t r = get_v(e, path_fmt, ap, &path);
    va_end(ap);
    free(path);
    return r;
}

json_t *h_get_json(h_env_t *e, const char *path_fmt, ...)
{
    char *path = NULL;
    va_list ap;
    va_start(ap, path_fmt);
    h_resp_t r = get_v(e, path_fmt, ap, &path);
    va_end(ap);
    cr_assert_eq(r.status, 200, "GET %s -> %ld %s", path, r.status, r.body);
    json_t *j = json_incref(r.json);
    h_resp_free(&r);
    free(path);
    return j;
}

h_resp_t h_post(h_env_t *e, const char *path, const char *body_fmt, ...)
{
    va_list ap;
    va_start(ap, body_fmt);
    char *body = format_v(body_fmt, ap);
    va_end(ap);
    h_resp_t r = h_http(e->svc.port, "POST", path, body, strlen(body), NULL, 0);
    free(body);
    return r;
}

/* POSTs the body (body_fmt and ap) to path on the test's service and
 * asserts 201; the caller frees the answer. */
static h_resp_t post_created(h_env_t *e, const char *path, const char *body_fmt, va_list ap)
{
    char *body = format_v(body_fmt, ap);
    h_resp_t r = h_http(e->svc.port, "POST", path, body, strlen(body), NULL, 0);
    cr_assert_eq(r.status, 201, "POST %s %s -> %ld %s %s", path, body, r.status, r.body, r.error);
    free(body);
    return r;
}

/* The string at key of a post_created answer, which it frees (caller frees
 * the copy). */
static char *created_id(h_resp_t *r, const char *key)
{
    const char *id = h_jstr(r->json, key);
    cr_assert(id != NULL, "no %s in %s", key, r->body);
    char *copy = strdup(id);
    h_resp_free(r);
    return copy;
}

char *h_create(h_env_t *e, const char *body_fmt, ...)
{
    va_list ap;
    va_start(ap, body_fmt);
    h_resp_t r = post_created(e, "/api/v1/events/create", body_fmt, ap);
    va_end(ap);
    return created_id(&r, "event_id");
}

char *h_add_processor(h_env_t *e, const char *body_fmt, ...)
{
    va_list ap;
    va_start(ap, body_fmt);
    h_resp_t r = post_created(e, "/api/v1/events/processors", body_fmt, ap);
    va_end(ap);
    return created_id(&r, "processor_id");
}

json_t *h_subscribe(h_env_t *e, const char *body_fmt, ...)
{
    va_list ap;
    va_start(ap, body_fmt);
    h_resp_t r = post_created(e, "/api/v1/events/subscriptions", body_fmt, ap);
    va_end(ap);
    json_t *j = json_incref(r.json);
    h_resp_free(&r);
    return j;
}

/* Finishes every transfer of m that is done (xfer_done). */
static void multi_collect(CURLM *m)
{
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        xfer_t *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode code = msg->data.result;
        curl_multi_remove_handle(m, t->curl);
        xfer_done(t, code);
    }
}

void h_http_multi(int port, int n, const char *method, const char *path, const char *const *bodies,
                  h_resp_t *out, int timeout_ms)
{
    CURLM *m = curl_multi_init();
    xfer_t *x = calloc((size_t)n, sizeof(xfer_t));
    for (int i = 0; i < n; i++) {
        const char *b = bodies ? bodies[i] : NULL;
        xfer_init(&x[i], port, method, path, b, b ? strlen(b) : 0, NULL, timeout_ms, &out[i]);
        curl_easy_setopt(x[i].curl, CURLOPT_PRIVATE, &x[i]);
        curl_multi_add_handle(m, x[i].curl);
    }
    int running = n;
    while (running > 0) {
        curl_multi_perform(m, &running);
        multi_collect(m);
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    multi_collect(m);
    curl_multi_cleanup(m);
    free(x);
}

/* ---- JSON ----------------------------------------------------------------- */

json_t *h_jget(const json_t *v, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = (json_t *)v;
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok && cur;
         tok = strtok_r(NULL, ".", &save)) {
        if (json_is_array(cur)) {
            char *end;
            long i = strtol(tok, &end, 10);
            cur = *end == '\0' ? json_array_get(cur, (size_t)i) : NULL;
        } else {
            cur = json_object_get(cur, tok);
        }
    }
    return cur;
}

const char *h_jstr(const json_t *v, const char *path)
{
    return json_string_value(h_jget(v, path));
}

int64_t h_jint(const json_t *v, const char *path)
{
    json_t *x = h_jget(v, path);
    return json_is_integer(x) ? (int64_t)json_integer_value(x) : INT64_MIN;
}

const char *h_jdump(const json_t *v)
{
    static char buf[8192];
    char *s = json_dumps(v, JSON_COMPACT);
    snprintf(buf, sizeof(buf), "%s", s ? s : "(null)");
    free(s);
    return buf;
}

bool h_is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* ---- background load ------------------------------------------------------ */

typedef struct {
    struct h_load *load;
    int index;
    h_load_result_t res;
    int cap_ids;
} loader_t;

struct h_load {
    int port;
    int nthreads;
    pthread_t th[64];
    loader_t lt[64];
    atomic_bool stop;
    atomic_int created;
};

static void *load_main(void *arg)
{
    loader_t *t = arg;
    h_load_result_t *r = &t->res;
    for (int i = 0; !atomic_load(&t->load->stop); i++) {
        char body[160];
        snprintf(body, sizeof(body), "{\"event_type\":\"load.test\",\"data\":{\"t\":%d,\"i\":%d}}",
                 t->index, i);
        h_resp_t resp =
            h_http(t->load->port, "POST", "/api/v1/events/create", body, strlen(body), NULL, 15000);
        r->sent++;
        if (resp.seconds > r->max_seconds)
            r->max_seconds = resp.seconds;
        if (resp.curl_code != 0) {
            if (resp.status != 0)
                r->partial++;
            else if (resp.curl_code == CURLE_COULDNT_CONNECT)
                r->refused++;
            else
                r->no_response++;
            if (r->first_error[0] == '\0')
                snprintf(r->first_error, sizeof(r->first_error), "%s", resp.error);
        } else if (resp.json == NULL) {
            r->bad_body++;
        } else if (resp.status == 201 && h_jstr(resp.json, "event_id")) {
            if (r->nids == t->cap_ids) {
                t->cap_ids = t->cap_ids ? t->cap_ids * 2 : 256;
                r->ids = realloc(r->ids, (size_t)t->cap_ids * sizeof(char *));
            }
            r->ids[r->nids++] = strdup(h_jstr(resp.json, "event_id"));
            r->created++;
            atomic_fetch_add(&t->load->created, 1);
        } else if (resp.status == 503) {
            r->unavailable++;
        } else {
            r->other_status++;
            if (r->first_other == 0)
                r->first_other = (int)resp.status;
        }
        h_resp_free(&resp);
    }
    return NULL;
}

h_load_t *h_load_start(int port, int threads)
{
    h_load_t *l = calloc(1, sizeof(*l));
    l->port = port;
    l->nthreads = threads > 64 ? 64 : threads;
    for (int i = 0; i < l->nthreads; i++) {
        l->lt[i].load = l;
        l->lt[i].index = i;
        pthread_create(&l->th[i], NULL, load_main, &l->lt[i]);
    }
    return l;
}

int h_load_created(h_load_t *l)
{
    return atomic_load(&l->created);
}

void h_load_stop(h_load_t *l, h_load_result_t *res)
{
    atomic_store(&l->stop, true);
    memset(res, 0, sizeof(*res));
    for (int i = 0; i < l->nthreads; i++) {
        pthread_join(l->th[i], NULL);
        h_load_result_t *r = &l->lt[i].res;
        res->sent += r->sent;
        res->created += r->created;
        res->refused += r->refused;
        res->no_response += r->no_response;
        res->partial += r->partial;
        res->bad_body += r->bad_body;
        res->unavailable += r->unavailable;
        res->other_status += r->other_status;
        if (r->max_seconds > res->max_seconds)
            res->max_seconds = r->max_seconds;
        if (res->first_other == 0)
            res->first_other = r->first_other;
        if (res->first_error[0] == '\0')
            memcpy(res->first_error, r->first_error, sizeof(res->first_error));
        res->ids = realloc(res->ids, (size_t)(res->nids + r->nids + 1) * sizeof(char *));
        memcpy(res->ids + res->nids, r->ids, (size_t)r->nids * sizeof(char *));
        res->nids += r->nids;
        free(r->ids);
    }
    free(l);
}

void h_load_result_free(h_load_result_t *res)
{
    for (int i = 0; i < res->nids; i++)
        free(res->ids[i]);
    free(res->ids);
    memset(res, 0, sizeof(*res));
}

/* ---- what both receivers use (this one and receiver.c) -------------------- */

const char *h_reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 410:
        return "Gone";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

bool h_send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

int h_listen_local(int backlog, int *port)
{
    *port = h_free_port();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)*port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
                  listen(fd, backlog) == 0,
              "receiver cannot listen on 127.0.0.1:%d: %s", *port, strerror(errno));
    return fd;
}

int h_accept_until(int fd, pthread_mutex_t *mu, const bool *stopping)
{
    for (;;) {
        pthread_mutex_lock(mu);
        bool stop = *stopping;
        pthread_mutex_unlock(mu);
        if (stop)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn >= 0)
            return conn;
    }
}

bool h_thread_detached(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    bool ok = pthread_create(&th, &attr, fn, arg) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}

/* ---- the HTTP receiver ---------------------------------------------------- */

#define RECV_MAX_RULES 32
#define RECV_MAX_REQUEST (4 * 1024 * 1024)

struct h_recv {
    int fd;
    int port;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* stopping, a connection thread ended */
    bool stopping;     /* guarded by mu, as everything below */
    int active;        /* connection threads running */
    struct {
        char path[256];
        int status;
        int delay_ms;
    } rules[RECV_MAX_RULES];
    int nrules;
    h_recv_req_t *reqs;
    int nreqs, cap;
};

typedef struct {
    h_recv_t *r;
    int fd;
} recv_conn_t;

/* Reads one request from fd: the head, then Content-Length bytes of body.
 * *head_len is the length of the head including its blank line. Returns the
 * buffer (NUL-terminated) or NULL when the client went away or sent garbage. */
static char *recv_read_request(int fd, size_t *head_len, size_t *body_len)
{
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    char *end = NULL;
    while (end == NULL) {
        if (n + 1 >= cap) {
            if (cap >= RECV_MAX_REQUEST)
                goto fail;
            buf = realloc(buf, cap *= 2);
        }
        ssize_t got = recv(fd, buf + n, cap - n - 1, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            goto fail;
        n += (size_t)got;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    *head_len = (size_t)(end - buf) + 4;
    size_t want = 0;
    for (const char *line = strstr(buf, "\r\n"); line && line < end;
         line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
            want = strtoul(line + 17, NULL, 10);
    if (want > RECV_MAX_REQUEST)
        goto fail;
    if (*head_len + want + 1 > cap)
        buf = realloc(buf, cap = *head_len + want + 1);
    while (n < *head_len + want) {
        ssize_t got = recv(fd, buf + n, *head_len + want - n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            goto fail;
        n += (size_t)got;
    }
    buf[*head_len + want] = '\0';
    *body_len = want;
    return buf;
fail:
    free(buf);
    return NULL;
}

static void *recv_conn_main(void *arg)
{
    recv_conn_t *c = arg;
    h_recv_t *r = c->r;
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    size_t head_len = 0, body_len = 0;
    char *req = recv_read_request(c->fd, &head_len, &body_len);
    if (req != NULL) {
        h_recv_req_t rec;
        memset(&rec, 0, sizeof(rec));
        const char *target = strchr(req, ' ');
        size_t tlen = target ? strcspn(target + 1, " \r\n") : 0;
        snprintf(rec.path, sizeof(rec.path), "%.*s", (int)tlen, target ? target + 1 : "");
        rec.body = malloc(body_len + 1);
        memcpy(rec.body, req + head_len, body_len + 1);
        rec.len = body_len;
        rec.json = json_loadb(rec.body, rec.len, 0, NULL);
        rec.start_ms = h_now_ms();
        free(req);

        pthread_mutex_lock(&r->mu);
        int status = 200, delay_ms = 0;
        size_t plen = strcspn(rec.path, "?");
        for (int i = 0; i < r->nrules; i++)
            if (strlen(r->rules[i].path) == plen &&
                strncmp(r->rules[i].path, rec.path, plen) == 0) {
                status = r->rules[i].status;
                delay_ms = r->rules[i].delay_ms;
            }
        if (r->nreqs == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 64;
            r->reqs = realloc(r->reqs, (size_t)r->cap * sizeof(*r->reqs));
        }
        int index = r->nreqs++;
        r->reqs[index] = rec;
        /* The delay plays a slow endpoint; h_recv_stop cuts it short. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += delay_ms / 1000;
        until.tv_nsec += (long)(delay_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (delay_ms > 0 && !r->stopping)
            if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
                break;
        pthread_mutex_unlock(&r->mu);

        char head[256];
        int n = snprintf(head, sizeof(head),
                         "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: 2\r\nConnection: close\r\n\r\n{}",
                         status, h_reason_phrase(status));
        /* A failure means the client is gone (a worker killed mid-request). */
        h_send_all(c->fd, head, (size_t)n);
        pthread_mutex_lock(&r->mu);
        r->reqs[index].status = status;
        r->reqs[index].end_ms = h_now_ms();
        pthread_mutex_unlock(&r->mu);
    }
    close(c->fd);
    free(c);
    pthread_mutex_lock(&r->mu);
    r->active--;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void *recv_accept_main(void *arg)
{
    h_recv_t *r = arg;
    int fd;
    while ((fd = h_accept_until(r->fd, &r->mu, &r->stopping)) >= 0) {
        recv_conn_t *c = malloc(sizeof(*c));
        c->r = r;
        c->fd = fd;
        pthread_mutex_lock(&r->mu);
        r->active++;
        pthread_mutex_unlock(&r->mu);
        if (!h_thread_detached(recv_conn_main, c)) {
            close(fd);
            free(c);
            pthread_mutex_lock(&r->mu);
            r->active--;
            pthread_mutex_unlock(&r->mu);
        }
    }
    return NULL;
}

h_recv_t *h_recv_start(void)
{
    h_recv_t *r = calloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->fd = h_listen_local(256, &r->port);
    cr_assert_eq(pthread_create(&r->acceptor, NULL, recv_accept_main, r), 0);
    return r;
}

int h_recv_port(const h_recv_t *r)
{
    return r->port;
}

void h_recv_rule(h_recv_t *r, const char *path, int status, int delay_ms)
{
    pthread_mutex_lock(&r->mu);
    int i = 0;
    while (i < r->nrules && strcmp(r->rules[i].path, path) != 0)
        i++;
    cr_assert(i < RECV_MAX_RULES, "too many receiver rules");
    if (i == r->nrules)
        r->nrules++;
    snprintf(r->rules[i].path, sizeof(r->rules[i].path), "%s", path);
    r->rules[i].status = status;
    r->rules[i].delay_ms = delay_ms;
    pthread_mutex_unlock(&r->mu);
}

int h_recv_count(h_recv_t *r, const char *path)
{
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (int i = 0; i < r->nreqs; i++) {
        const char *p = r->reqs[i].path;
        size_t plen = strcspn(p, "?");
        n += path == NULL || (strlen(path) == plen && strncmp(path, p, plen) == 0);
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

int h_recv_in_flight(h_recv_t *r)
{
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (int i = 0; i < r->nreqs; i++)
        n += r->reqs[i].end_ms == 0;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int h_recv_reqs(h_recv_t *r, h_recv_req_t **out)
{
    pthread_mutex_lock(&r->mu);
    int n = r->nreqs;
    h_recv_req_t *copy = calloc((size_t)n + 1, sizeof(*copy));
    for (int i = 0; i < n; i++) {
        copy[i] = r->reqs[i];
        copy[i].body = malloc(r->reqs[i].len + 1);
        memcpy(copy[i].body, r->reqs[i].body, r->reqs[i].len + 1);
        copy[i].json = json_deep_copy(r->reqs[i].json);
    }
    pthread_mutex_unlock(&r->mu);
    *out = copy;
    return n;
}

void h_recv_reqs_free(h_recv_req_t *reqs, int n)
{
    for (int i = 0; i < n; i++) {
        free(reqs[i].body);
        json_decref(reqs[i].json);
    }
    free(reqs);
}

void h_recv_stop(h_recv_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->acceptor, NULL);
    close(r->fd);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&r->mu);
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
    for (int i = 0; i < r->nreqs; i++) {
        free(r->reqs[i].body);
        json_decref(r->reqs[i].json);
    }
    free(r->reqs);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void h_stop_all(h_env_t *e, h_recv_t *r)
{
    cr_assert(h_svc_stop(e, SIGTERM, 20000), "the service did not stop within 20 s of SIGTERM");
    h_recv_stop(r);
}

/* ---- HTTP: response headers ------------------------------------------------ */

h_resp_t h_http_head(int port, const char *method, const char *path, const char *body,
                     size_t body_len, const char *const *headers, int timeout_ms, char **head)
{
    h_resp_t r;
    xfer_t x;
    buf_t hb = {0};
    xfer_init(&x, port, method, path, body, body_len, headers, timeout_ms, &r);
    curl_easy_setopt(x.curl, CURLOPT_HEADERFUNCTION, on_body);
    curl_easy_setopt(x.curl, CURLOPT_HEADERDATA, &hb);
    xfer_done(&x, curl_easy_perform(x.curl));
    *head = hb.data ? hb.data : calloc(1, 1);
    return r;
}

bool h_head_get(const char *head, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *line = head; line && *line;) {
        const char *eol = strstr(line, "\r\n");
        const char *end = eol ? eol : line + strlen(line);
        if ((size_t)(end - line) > nlen && strncasecmp(line, name, nlen) == 0 &&
            line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = end;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (cap > 0)
                snprintf(out, cap, "%.*s", (int)(ve - v), v);
            return true;
        }
        line = eol ? eol + 2 : NULL;
    }
    return false;
}
