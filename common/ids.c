#include "common/ids.h"

#include <errno.h>
#include <pthread.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static void getrandom_all(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            perror("getrandom");
            abort();
        }
        p += got;
        n -= (size_t)got;
    }
}

/* Random bytes are drawn from the kernel 256 at a time: a UUID per event
 * would otherwise cost a system call per event. The pool is per thread, and
 * a forked child starts with it empty, so no two processes or threads ever
 * hand out the same bytes. */
static __thread unsigned char pool[256];
static __thread size_t pool_left;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_forget(void)
{
    pool_left = 0;
}

static void pool_init(void)
{
    pthread_atfork(NULL, NULL, pool_forget);
}

void es_random_bytes(void *buf, size_t n)
{
    pthread_once(&pool_once, pool_init);
    if (n > sizeof(pool) / 4) {
        getrandom_all(buf, n);
        return;
    }
    if (pool_left < n) {
        getrandom_all(pool, sizeof(pool));
        pool_left = sizeof(pool);
    }
    unsigned char *src = pool + sizeof(pool) - pool_left;
    memcpy(buf, src, n);
    memset(src, 0, n); /* handed out once */
    pool_left -= n;
}

static const char hexdig[] = "0123456789abcdef";

void es_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[in[i] >> 4];
        out[2 * i + 1] = hexdig[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* 8-4-4-4-12 hex digits. */
static void format_uuid(const unsigned char *b, char *out)
{
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hexdig[b[i] >> 4];
        *p++ = hexdig[b[i] & 15];
    }
    *p = '\0';
}

void es_uuid_from_name(const char *name, size_t len, char *out)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)name, len, md);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    format_uuid(md, out);
}

void es_uuid_v7(int64_t unix_us, char *out)
{
    unsigned char b[16];
    uint64_t ms = unix_us > 0 ? (uint64_t)unix_us / 1000 : 0;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    es_random_bytes(b + 6, 10);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    format_uuid(b, out);
}

void es_uuid_v4(char *out)
{
    unsigned char b[16];
    es_random_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    format_uuid(b, out);
}
