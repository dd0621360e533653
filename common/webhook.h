/*
 * webhook.h - the Standard Webhooks wire format (signing) and the checks that
 * keep deliveries from reaching internal addresses.
 */
#ifndef ES_WEBHOOK_H
#define ES_WEBHOOK_H

#include "common/es.h"

#include <curl/curl.h>
#include <sys/socket.h>

/* Signing key of a secret: "whsec_<base64>" is the decoded bytes (as the
 * Standard Webhooks libraries expect); any other secret is its own bytes.
 * Returns a heap buffer (caller frees) of *len bytes. */
unsigned char *es_webhook_key(const char *secret, size_t *len);

/* Appends "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" to out (cap bytes,
 * at least 64). Returns false when it does not fit. */
bool es_webhook_sign(const char *secret, const char *id, long long timestamp, const char *body,
                     size_t body_len, char *out, size_t cap);

/* A new secret: "whsec_" + base64 of 24 random bytes. Caller frees. */
char *es_webhook_new_secret(void);

/* True when addr is loopback, private, link-local (cloud metadata included),
 * carrier-grade NAT, multicast, unspecified, documentation, benchmarking or
 * reserved, for IPv4 and IPv6 (v4-mapped addresses checked as IPv4). */
bool es_addr_is_internal(const struct sockaddr *addr);

/* Checks a callback URL at registration: http(s), a host, and (unless
 * allow_private) no literal internal IP address. Names are checked again at
 * delivery time, after DNS. On failure returns false with the reason in why. */
bool es_webhook_url_ok(const char *url, bool allow_private, char *why, size_t whylen);

/* The next finished transfer of multi: removed from it and cleaned up; its
 * CURLOPT_PRIVATE pointer returned with the transfer's result and HTTP status.
 * NULL when none has finished. */
void *es_curl_next_done(CURLM *multi, CURLcode *result, long *status);

#endif
