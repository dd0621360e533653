/*
 * client.h - who is calling: the client's address (the peer, or what trusted
 * proxies say), and a per-address token bucket for the public endpoints.
 */
#ifndef ES_API_CLIENT_H
#define ES_API_CLIENT_H

#include "common/es.h"

#include <h2o.h>

#define ES_IP_LEN 64

/* The client's address into out: the TCP peer; when the peer is one of
 * service.trusted_proxies, the rightmost X-Forwarded-For entry that is not a
 * trusted proxy (or X-Real-IP). Client-supplied headers from anyone else are
 * ignored. */
void es_client_ip(h2o_req_t *req, char *out, size_t cap);

/* Token bucket of frontend.rate_limit_per_minute / rate_limit_burst for ip
 * (per API worker). True when the request may go on; otherwise
 * *retry_after_s says when it may. */
bool es_rate_allow(const char *ip, int64_t *retry_after_s);

/* Parses service.trusted_proxies once (worker start). */
void es_client_setup(void);

#endif
