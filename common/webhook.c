#include "common/webhook.h"

#include "common/b64.h"
#include "common/ids.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

unsigned char *es_webhook_key(const char *secret, size_t *len)
{
    if (strncmp(secret, "whsec_", 6) == 0) {
        unsigned char *key = es_b64_decode(secret + 6, strlen(secret + 6), len);
        if (key != NULL)
            return key;
    }
    *len = strlen(secret);
    return (unsigned char *)es_xstrndup(secret, *len);
}

bool es_webhook_sign(const char *secret, const char *id, long long timestamp, const char *body,
                     size_t body_len, char *out, size_t cap)
{
    size_t klen = 0;
    unsigned char *key = es_webhook_key(secret, &klen);
    char prefix[320];
    int plen = snprintf(prefix, sizeof(prefix), "%s.%lld.", id, timestamp);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    bool ok = plen > 0 && (size_t)plen < sizeof(prefix);
    if (ok) {
        /* Signed content: id.timestamp.body, over the exact bytes sent. */
        size_t n = (size_t)plen + body_len;
        unsigned char *msg = es_xmalloc(n);
        memcpy(msg, prefix, (size_t)plen);
        memcpy(msg + plen, body, body_len);
        ok = HMAC(EVP_sha256(), key, (int)klen, msg, n, mac, &maclen) != NULL;
        free(msg);
    }
    free(key);
    if (!ok)
        return false;
    char *b64 = es_b64_encode(mac, maclen, false);
    int n = snprintf(out, cap, "v1,%s", b64);
    free(b64);
    return n > 0 && (size_t)n < cap;
}

char *es_webhook_new_secret(void)
{
    unsigned char raw[24];
    es_random_bytes(raw, sizeof(raw));
    char *b64 = es_b64_encode(raw, sizeof(raw), false);
    char *s = es_xasprintf("whsec_%s", b64);
    free(b64);
    return s;
}

static bool v4_internal(uint32_t a) /* host byte order */
{
    uint8_t b0 = (uint8_t)(a >> 24), b1 = (uint8_t)(a >> 16);
    return b0 == 0 ||                               /* 0.0.0.0/8 */
           b0 == 10 ||                              /* private */
           b0 == 127 ||                             /* loopback */
           (b0 == 100 && (b1 & 0xc0) == 64) ||      /* 100.64/10 CGNAT */
           (b0 == 169 && b1 == 254) ||              /* link-local, metadata */
           (b0 == 172 && (b1 & 0xf0) == 16) ||      /* 172.16/12 */
           (b0 == 192 && b1 == 168) ||              /* 192.168/16 */
           (b0 == 192 && b1 == 0) ||                /* 192.0.0/24, 192.0.2/24 */
           (b0 == 198 && (b1 == 18 || b1 == 19)) || /* benchmarking */
           (b0 == 198 && b1 == 51) ||               /* documentation */
           (b0 == 203 && b1 == 0) ||                /* documentation */
           b0 >= 224;                               /* multicast, reserved, broadcast */
}

bool es_addr_is_internal(const struct sockaddr *addr)
{
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        return v4_internal(ntohl(in->sin_addr.s_addr));
    }
    if (addr->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
        const uint8_t *b = a->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a)) {
            uint32_t v4 =
                ((uint32_t)b[12] << 24) | ((uint32_t)b[13] << 16) | ((uint32_t)b[14] << 8) | b[15];
            return v4_internal(v4);
        }
        return IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
               IN6_IS_ADDR_SITELOCAL(a) || IN6_IS_ADDR_MULTICAST(a) ||
               (b[0] & 0xfe) == 0xfc ||                                          /* fc00::/7 ULA */
               (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) || /* doc */
               (b[0] == 0x20 && b[1] == 0x02) ||                                 /* 6to4 */
               (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b);   /* NAT64 */
    }
    return true; /* anything else is not a place to send webhooks */
}

bool es_webhook_url_ok(const char *url, bool allow_private, char *why, size_t whylen)
{
    bool ok = false;
    char *scheme = NULL, *host = NULL;
    CURLU *u = curl_url();
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(why, whylen, "not a valid URL");
        goto cleanup;
    }
    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        snprintf(why, whylen, "must be an http:// or https:// URL");
        goto cleanup;
    }
    if (host[0] == '\0') {
        snprintf(why, whylen, "has no host");
        goto cleanup;
    }
    if (!allow_private) {
        const char *h = host;
        char v6[64];
        if (h[0] == '[') { /* curl keeps the brackets of an IPv6 literal */
            size_t n = strcspn(h + 1, "]%");
            snprintf(v6, sizeof(v6), "%.*s", (int)n, h + 1);
            h = v6;
        }
        struct sockaddr_in sin = {.sin_family = AF_INET};
        struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
        if ((inet_pton(AF_INET, h, &sin.sin_addr) == 1 &&
             es_addr_is_internal((struct sockaddr *)&sin)) ||
            (inet_pton(AF_INET6, h, &sin6.sin6_addr) == 1 &&
             es_addr_is_internal((struct sockaddr *)&sin6)) ||
            strcasecmp(h, "localhost") == 0) {
            snprintf(why, whylen, "points to an internal address (delivery.allow_private is off)");
            goto cleanup;
        }
    }
    ok = true;
cleanup:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

void *es_curl_next_done(CURLM *multi, CURLcode *result, long *status)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        void *priv = NULL;
        *result = msg->data.result;
        *status = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&priv);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
        curl_multi_remove_handle(multi, e);
        curl_easy_cleanup(e);
        return priv;
    }
    return NULL;
}
