/*
 * harness_http.c - how the end-to-end tests talk to the service: HTTP with
 * libcurl (one request, many at once, background load) and JSON lookups.
 * Contracts in harness.h.
 */
#include "harness.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

h_resp_t h_get(h_env_t *e, const char *path_fmt, ...)
{
    char *path = NULL;
    va_list ap;
    va_start(ap, path_fmt);
    if (vasprintf(&path, path_fmt, ap) < 0)
        path = NULL;
    va_end(ap);
    h_resp_t r = h_http(e->svc.port, "GET", path, NULL, 0, NULL, 0);
    free(path);
    return r;
}

h_resp_t h_post(h_env_t *e, const char *path, const char *body_fmt, ...)
{
    char *body = NULL;
    va_list ap;
    va_start(ap, body_fmt);
    if (vasprintf(&body, body_fmt, ap) < 0)
        body = NULL;
    va_end(ap);
    h_resp_t r = h_http(e->svc.port, "POST", path, body, strlen(body), NULL, 0);
    free(body);
    return r;
}

char *h_create(h_env_t *e, const char *body_fmt, ...)
{
    char *body = NULL;
    va_list ap;
    va_start(ap, body_fmt);
    if (vasprintf(&body, body_fmt, ap) < 0)
        body = NULL;
    va_end(ap);
    h_resp_t r = h_http(e->svc.port, "POST", "/api/v1/events/create", body, strlen(body), NULL, 0);
    cr_assert_eq(r.status, 201, "POST /api/v1/events/create %s -> %ld %s %s", body, r.status,
                 r.body, r.error);
    const char *id = h_jstr(r.json, "event_id");
    cr_assert(id != NULL, "no event_id in %s", r.body);
    char *copy = strdup(id);
    h_resp_free(&r);
    free(body);
    return copy;
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
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
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
