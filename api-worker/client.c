#include "api-worker/client.h"

#include "api-worker/http.h"
#include "api-worker/worker.h"
#include "common/cidr.h"
#include "common/timeutil.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static es_cidr_t *trusted;
static size_t ntrusted;

void es_client_setup(void)
{
    const es_strlist_t *l = &es_api->cfg->service.trusted_proxies;
    trusted = es_xcalloc(ES_MAX(l->len, 1), sizeof(es_cidr_t));
    ntrusted = 0;
    for (size_t i = 0; i < l->len; i++)
        if (es_cidr_parse(l->items[i], &trusted[ntrusted])) /* validated with the config */
            ntrusted++;
}

static void peer_ip(h2o_req_t *req, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    out[0] = '\0';
    if (len == 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)cap);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)cap);
}

/* Copies the trimmed [s, e) into out when it is an IP address. */
static bool take_ip(const char *s, const char *e, char *out, size_t cap)
{
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    char buf[ES_IP_LEN];
    if (e <= s || (size_t)(e - s) >= sizeof(buf))
        return false;
    memcpy(buf, s, (size_t)(e - s));
    buf[e - s] = '\0';
    unsigned char tmp[16];
    if (inet_pton(AF_INET, buf, tmp) != 1 && inet_pton(AF_INET6, buf, tmp) != 1)
        return false;
    es_strlcpy(out, buf, cap);
    return true;
}

void es_client_ip(h2o_req_t *req, char *out, size_t cap)
{
    peer_ip(req, out, cap);
    if (ntrusted == 0 || !es_cidr_contains_any(trusted, ntrusted, out))
        return;
    size_t len;
    const char *xff = es_http_header(req, "x-forwarded-for", &len);
    if (xff != NULL) {
        /* From the right: the first hop our proxies did not add. */
        const char *end = xff + len;
        char candidate[ES_IP_LEN];
        while (end > xff) {
            const char *comma = end;
            while (comma > xff && comma[-1] != ',')
                comma--;
            if (!take_ip(comma, end, candidate, sizeof(candidate)))
                break;
            es_strlcpy(out, candidate, cap);
            if (!es_cidr_contains_any(trusted, ntrusted, candidate))
                return;
            end = comma > xff ? comma - 1 : xff;
        }
        return;
    }
    const char *real = es_http_header(req, "x-real-ip", &len);
    if (real != NULL) {
        char candidate[ES_IP_LEN];
        if (take_ip(real, real + len, candidate, sizeof(candidate)))
            es_strlcpy(out, candidate, cap);
    }
}

#define BUCKETS 4096

typedef struct {
    char ip[ES_IP_LEN];
    double tokens;
    int64_t last_ms;
} bucket_t;

static bucket_t buckets[BUCKETS];

static uint32_t hash_ip(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

bool es_rate_allow(const char *ip, int64_t *retry_after_s)
{
    const es_config_t *cfg = es_api->cfg;
    if (cfg->frontend.rate_limit_per_minute <= 0)
        return true;
    double per_ms = cfg->frontend.rate_limit_per_minute / 60000.0;
    double burst = cfg->frontend.rate_limit_burst;
    int64_t now = es_time_mono_ms();
    bucket_t *b = &buckets[hash_ip(ip) % BUCKETS];
    if (strcmp(b->ip, ip) != 0) { /* a new address (or a collision: it starts full) */
        es_strlcpy(b->ip, ip, sizeof(b->ip));
        b->tokens = burst;
        b->last_ms = now;
    }
    b->tokens = ES_MIN(burst, b->tokens + (double)(now - b->last_ms) * per_ms);
    b->last_ms = now;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return true;
    }
    *retry_after_s = (int64_t)ceil((1.0 - b->tokens) / per_ms / 1000.0);
    if (*retry_after_s < 1)
        *retry_after_s = 1;
    return false;
}
