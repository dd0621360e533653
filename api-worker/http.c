#include "api-worker/http.h"

#include "api-worker/routes.h"
#include "api-worker/worker.h"
#include "common/metrics.h"
#include "common/buf.h"
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <zlib.h>

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return status < 500 ? "Error" : "Internal Server Error";
    }
}

void es_http_json(h2o_req_t *req, int status, const char *body, size_t len)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    double secs = (double)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) +
                  (double)(now.tv_usec - req->timestamps.request_begin_at.tv_usec) / 1e6;
    int route = req == es_current_req ? es_current_route : es_route_index(req);
    es_metrics_http(route, status, secs < 0 ? 0 : secs);
    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    if (es_api != NULL && es_api->stopping)
        req->http1_is_persistent = 0; /* h2o 2.2.5 keeps idle keep-alives open otherwise */
    h2o_send_inline(req, body, len);
}

void es_http_error(h2o_req_t *req, int status, const char *detail)
{
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "{\"detail\":");
    es_buf_json_cstr(&b, detail);
    es_buf_putc(&b, '}');
    es_http_json(req, status, b.data, b.len);
    es_buf_free(&b);
}

void es_http_errorf(h2o_req_t *req, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *detail = NULL;
    if (vasprintf(&detail, fmt, ap) < 0)
        detail = NULL;
    va_end(ap);
    es_http_error(req, status, detail ? detail : fmt);
    free(detail);
}

/* "events[2].event_source" -> ["body","events",2,"event_source"] */
static void put_loc(es_buf_t *b, const char *field)
{
    es_buf_puts(b, "[\"body\"");
    const char *p = field;
    while (*p) {
        size_t n = strcspn(p, ".[");
        if (n > 0) {
            es_buf_putc(b, ',');
            es_buf_json_str(b, p, n);
        }
        p += n;
        if (*p == '.') {
            p++;
        } else if (*p == '[') {
            const char *close = strchr(p, ']');
            if (close == NULL)
                break;
            es_buf_putc(b, ',');
            es_buf_append(b, p + 1, (size_t)(close - p - 1));
            p = close + 1;
            if (*p == '.')
                p++;
        }
    }
    es_buf_putc(b, ']');
}

void es_http_invalid(h2o_req_t *req, const es_field_error_t *err)
{
    es_buf_t detail = ES_BUF_INIT, b = ES_BUF_INIT;
    es_buf_printf(&detail, "%s: %s", err->field, err->msg);
    es_buf_puts(&b, "{\"detail\":");
    es_buf_json_str(&b, detail.data, detail.len);
    es_buf_puts(&b, ",\"errors\":[{\"loc\":");
    put_loc(&b, err->field);
    es_buf_puts(&b, ",\"msg\":");
    es_buf_json_cstr(&b, err->msg);
    es_buf_puts(&b, "}]}");
    es_http_json(req, 422, b.data, b.len);
    es_buf_free(&detail);
    es_buf_free(&b);
}

/* Inflates a gzip body into at most max bytes; NULL when it is not gzip or
 * inflates to more (*too_big set). */
static char *gunzip(const char *in, size_t n, size_t max, size_t *outlen, bool *too_big)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    *too_big = false;
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return NULL;
    size_t cap = ES_MIN(max, ES_MAX(n * 4, (size_t)4096)) + 1;
    char *out = es_xmalloc(cap);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    int rc = Z_OK;
    while (rc == Z_OK) {
        if (zs.total_out + 1 >= cap) {
            if (cap > max) {
                *too_big = true;
                break;
            }
            cap = ES_MIN(cap * 2, max + 2);
            out = es_xrealloc(out, cap);
        }
        zs.next_out = (Bytef *)out + zs.total_out;
        zs.avail_out = (uInt)(cap - 1 - zs.total_out);
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc == Z_BUF_ERROR && zs.avail_in == 0)
            break;
        if (rc == Z_BUF_ERROR)
            rc = Z_OK;
    }
    bool ok = rc == Z_STREAM_END && zs.total_out <= max;
    if (zs.total_out > max)
        *too_big = true;
    *outlen = zs.total_out;
    inflateEnd(&zs);
    if (!ok) {
        free(out);
        return NULL;
    }
    out[*outlen] = '\0';
    return out;
}

es_rc_t es_http_body_raw(h2o_req_t *req, size_t max, bool gzip, char **out, size_t *len)
{
    char msg[160];
    size_t hlen;
    const char *enc = es_http_header(req, "content-encoding", &hlen);
    bool gzipped = enc != NULL && hlen == 4 && strncasecmp(enc, "gzip", 4) == 0;
    if (enc != NULL && !gzipped && !(hlen == 8 && strncasecmp(enc, "identity", 8) == 0)) {
        es_http_error(req, 415, "Content-Encoding: only gzip is accepted");
        return ES_ERR;
    }
    if (gzipped && !gzip) {
        es_http_error(req, 415, "Content-Encoding: gzip is not accepted here");
        return ES_ERR;
    }
    const char *base = req->entity.base ? req->entity.base : "";
    size_t n = req->entity.base ? req->entity.len : 0;
    if (!gzipped) {
        if (n > max) {
            snprintf(msg, sizeof(msg), "request body exceeds the limit of %zu bytes", max);
            es_http_error(req, 413, msg);
            return ES_ERR;
        }
        *out = es_xstrndup(base, n);
        *len = n;
        return ES_OK;
    }
    bool too_big = false;
    *out = gunzip(base, n, max, len, &too_big);
    if (*out != NULL)
        return ES_OK;
    if (too_big) {
        snprintf(msg, sizeof(msg), "request body exceeds the limit of %zu bytes once inflated",
                 max);
        es_http_error(req, 413, msg);
    } else {
        es_http_error(req, 400, "malformed gzip body");
    }
    return ES_ERR;
}

json_t *es_http_parse_json(h2o_req_t *req, const char *text, size_t len)
{
    const es_config_t *cfg = es_api->cfg;
    if (len == 0) {
        es_field_error_t err;
        es_field_error_set(&err, "", "body", "field required (expected a JSON document)");
        es_http_invalid(req, &err);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (doc == NULL) {
        char msg[300];
        if (json_error_code(&jerr) == json_error_stack_overflow) {
            snprintf(msg, sizeof(msg), "body: JSON nesting deeper than %d levels",
                     cfg->service.json_max_depth);
            es_http_error(req, 422, msg);
        } else {
            snprintf(msg, sizeof(msg), "malformed JSON: %s (line %d, column %d)", jerr.text,
                     jerr.line, jerr.column);
            es_http_error(req, 400, msg);
        }
        return NULL;
    }
    if (es_json_too_deep(doc, cfg->service.json_max_depth)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "body: JSON nesting deeper than %d levels",
                 cfg->service.json_max_depth);
        es_http_error(req, 422, msg);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

json_t *es_http_body_json(h2o_req_t *req)
{
    char *text = NULL;
    size_t len = 0;
    if (es_http_body_raw(req, (size_t)es_api->cfg->service.body_limit_bytes, false, &text, &len) !=
        ES_OK)
        return NULL;
    json_t *doc = es_http_parse_json(req, text, len);
    free(text);
    return doc;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool es_http_unescape(const char *s, size_t n, char *out, size_t cap)
{
    return es_http_unescape_ex(s, n, out, cap, true);
}

bool es_http_unescape_ex(const char *s, size_t n, char *out, size_t cap, bool plus_is_space)
{
    size_t o = 0;
    if (cap == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (o + 1 >= cap)
            return false;
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return false;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

bool es_http_query(h2o_req_t *req, const char *name, char *out, size_t cap)
{
    if (req->query_at == SIZE_MAX)
        return false;
    const char *q = req->path.base + req->query_at + 1;
    const char *end = req->path.base + req->path.len;
    size_t nlen = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - q) == nlen && memcmp(q, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : stop;
            if (!es_http_unescape(v, (size_t)(stop - v), out, cap))
                out[0] = '\x01'; /* present but undecodable: callers reject it */
            return true;
        }
        q = stop + 1;
    }
    return false;
}

const char *es_http_header(h2o_req_t *req, const char *name, size_t *len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return NULL;
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

struct es_async_guard {
    es_async_t *a;
};

static void detach(es_async_t *a)
{
    if (a->guard != NULL) {
        a->guard->a = NULL;
        a->guard = NULL;
    }
    if (h2o_timeout_is_linked(&a->deadline))
        h2o_timeout_unlink(&a->deadline);
    if (a->req != NULL) {
        a->req = NULL;
        es_api->inflight--;
    }
}

static void on_request_disposed(void *p)
{
    struct es_async_guard *g = p;
    if (g->a != NULL) {
        g->a->guard = NULL;
        detach(g->a);
    }
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    es_async_t *a = H2O_STRUCT_FROM_MEMBER(es_async_t, deadline, entry);
    es_async_error(a, 503, "timed out waiting for the database");
}

void es_async_begin(es_async_t *a, h2o_req_t *req)
{
    memset(a, 0, sizeof(*a));
    a->req = req;
    a->route = req == es_current_req ? es_current_route : -1;
    a->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*a->guard), on_request_disposed);
    a->guard->a = a;
    a->deadline.cb = on_deadline;
    h2o_timeout_link(es_api->loop, &es_api->request_timeout, &a->deadline);
    es_api->inflight++;
}

void es_async_enter(const es_async_t *a)
{
    es_current_req = a->req;
    es_current_route = a->route;
}

void es_async_json(es_async_t *a, int status, const char *body, size_t len)
{
    h2o_req_t *req = a->req;
    es_async_enter(a);
    detach(a);
    if (req != NULL)
        es_http_json(req, status, body, len);
}

void es_async_error(es_async_t *a, int status, const char *detail)
{
    h2o_req_t *req = a->req;
    es_async_enter(a);
    detach(a);
    if (req != NULL)
        es_http_error(req, status, detail);
}

void es_async_end(es_async_t *a)
{
    detach(a);
}
