/*
 * cidr.h - address ranges ("10.0.0.0/8", "192.168.1.7", "fd00::/8") for the
 * trusted-proxy list.
 */
#ifndef ES_CIDR_H
#define ES_CIDR_H

#include "common/es.h"

typedef struct {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int prefix; /* bits */
} es_cidr_t;

/* Parses an address or range; false when it is neither. */
bool es_cidr_parse(const char *s, es_cidr_t *out) ES_MUST_CHECK;

/* True when the textual address ip lies in one of the n ranges. IPv4-mapped
 * IPv6 addresses match IPv4 ranges. */
bool es_cidr_contains_any(const es_cidr_t *ranges, size_t n, const char *ip);

#endif
