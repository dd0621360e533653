#include "common/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

bool es_cidr_parse(const char *s, es_cidr_t *out)
{
    char buf[64];
    if (!es_strlcpy(buf, s, sizeof(buf)))
        return false;
    char *slash = strchr(buf, '/');
    int64_t prefix = -1;
    if (slash != NULL) {
        *slash = '\0';
        if (!es_parse_int64(slash + 1, strlen(slash + 1), &prefix) || prefix < 0)
            return false;
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = prefix < 0 ? 32 : (int)prefix;
        return prefix <= 32;
    }
    if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        out->prefix = prefix < 0 ? 128 : (int)prefix;
        return prefix <= 128;
    }
    return false;
}

static bool prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
    int bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)bytes) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

bool es_cidr_contains_any(const es_cidr_t *ranges, size_t n, const char *ip)
{
    unsigned char a[16];
    int family;
    if (inet_pton(AF_INET, ip, a) == 1) {
        family = AF_INET;
    } else if (inet_pton(AF_INET6, ip, a) == 1) {
        family = AF_INET6;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) { /* ::ffff:a.b.c.d */
            memmove(a, a + 12, 4);
            family = AF_INET;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (ranges[i].family == family && prefix_equal(a, ranges[i].addr, ranges[i].prefix))
            return true;
    return false;
}
