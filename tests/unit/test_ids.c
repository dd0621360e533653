#include "common/ids.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", y in 8 9 a b, lowercase. */
static void assert_uuid_v4(const char *u)
{
    cr_assert_eq(strlen(u), ES_UUID_LEN, "%s", u);
    for (int i = 0; i < ES_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            cr_assert_eq(u[i], '-', "%s: position %d", u, i);
        else
            cr_assert(is_lower_hex(u[i]), "%s: position %d", u, i);
    }
    cr_assert_eq(u[14], '4', "%s: version nibble", u);
    cr_assert(strchr("89ab", u[19]) != NULL, "%s: variant nibble", u);
}

Test(ids, uuid_v4_format)
{
    char u[ES_UUID_LEN + 1];
    for (int i = 0; i < 200; i++) {
        memset(u, 'X', sizeof(u));
        es_uuid_v4(u);
        cr_assert_eq(u[ES_UUID_LEN], '\0');
        assert_uuid_v4(u);
    }
}

Test(ids, uuid_v4_does_not_write_past_its_buffer)
{
    char u[ES_UUID_LEN + 8];
    memset(u, '#', sizeof(u));
    es_uuid_v4(u);
    for (size_t i = ES_UUID_LEN + 1; i < sizeof(u); i++)
        cr_assert_eq(u[i], '#', "byte %zu overwritten", i);
}

static int cmp_uuid(const void *a, const void *b)
{
    return memcmp(a, b, ES_UUID_LEN + 1);
}

Test(ids, uuid_v4_unique_and_random)
{
    enum { N = 20000 };
    char(*u)[ES_UUID_LEN + 1] = malloc(sizeof(*u) * N);
    bool variant_seen[4] = {false};
    int hist[16] = {0}; /* first nibble: should spread over all values */
    for (int i = 0; i < N; i++) {
        es_uuid_v4(u[i]);
        assert_uuid_v4(u[i]);
        variant_seen[strchr("89ab", u[i][19]) - "89ab"] = true;
        hist[strchr("0123456789abcdef", u[i][0]) - "0123456789abcdef"]++;
    }
    qsort(u, N, sizeof(*u), cmp_uuid);
    for (int i = 1; i < N; i++)
        cr_assert_neq(memcmp(u[i - 1], u[i], ES_UUID_LEN), 0, "duplicate %s", u[i]);
    for (int i = 0; i < 4; i++)
        cr_assert(variant_seen[i], "variant nibble %c never drawn", "89ab"[i]);
    /* Expected 1250 each; 900..1600 is far outside chance for a fair source. */
    for (int i = 0; i < 16; i++)
        cr_assert(hist[i] > 900 && hist[i] < 1600, "nibble %x drawn %d times", i, hist[i]);
    free(u);
}

Test(ids, hex_encodes_lowercase)
{
    static const unsigned char in[] = {0x00, 0x01, 0x0f, 0x10, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof(in) + 1];
    es_hex(in, sizeof(in), out);
    cr_assert_str_eq(out, "00010f107f80abff");
}

Test(ids, hex_of_nothing_is_empty)
{
    char out[1] = {'x'};
    es_hex((const unsigned char *)"", 0, out);
    cr_assert_str_eq(out, "");
}

Test(ids, hex_writes_exactly_2n_plus_1)
{
    static const unsigned char in[] = {0xde, 0xad, 0xbe, 0xef};
    char out[16];
    memset(out, '#', sizeof(out));
    es_hex(in, sizeof(in), out);
    cr_assert_str_eq(out, "deadbeef");
    for (size_t i = 9; i < sizeof(out); i++)
        cr_assert_eq(out[i], '#');
}

Test(ids, random_bytes_fill_the_whole_buffer)
{
    /* A large request may be served in pieces: every piece must land. */
    size_t n = 1 << 20;
    unsigned char *a = calloc(n, 1);
    unsigned char *b = calloc(n, 1);
    es_random_bytes(a, n);
    es_random_bytes(b, n);
    static const unsigned char zero[64];
    cr_assert_neq(memcmp(a + n - 64, zero, 64), 0, "tail left unwritten");
    cr_assert_neq(memcmp(a, zero, 64), 0, "head left unwritten");
    cr_assert_neq(memcmp(a, b, n), 0, "two draws are equal");
    es_random_bytes(a, 0); /* nothing to do */
    free(a);
    free(b);
}

/* A name-based UUID is SHA-256 of the name, version 5 and RFC 4122 variant
 * bits set, in 8-4-4-4-12 form (checked against an independent computation). */
Test(ids, uuid_from_name_known_value)
{
    char u[ES_UUID_LEN + 8];
    memset(u, '#', sizeof(u));
    es_uuid_from_name("abc", 3, u);
    cr_assert_str_eq(u, "ba7816bf-8f01-5fea-8141-40de5dae2223");
    for (size_t i = ES_UUID_LEN + 1; i < sizeof(u); i++)
        cr_assert_eq(u[i], '#', "byte %zu overwritten", i);
}

/* A process forked with bytes left in its pool does not hand out the same
 * bytes as its parent: the workers are forked from the master. */
Test(ids, forked_child_draws_its_own_random_bytes)
{
    char first[ES_UUID_LEN + 1], parent[ES_UUID_LEN + 1], child[ES_UUID_LEN + 1] = {0};
    es_uuid_v4(first); /* the pool now holds bytes for more */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        char u[ES_UUID_LEN + 1];
        es_uuid_v4(u);
        _exit(write(fds[1], u, ES_UUID_LEN) == ES_UUID_LEN ? 0 : 1);
    }
    es_uuid_v4(parent);
    cr_assert_eq(read(fds[0], child, ES_UUID_LEN), ES_UUID_LEN);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fds[0]);
    close(fds[1]);
    assert_uuid_v4(child);
    cr_assert_neq(memcmp(parent, child, ES_UUID_LEN), 0, "parent and child both drew %s", child);
}

static void *uuid_thread(void *arg)
{
    es_uuid_v4(arg);
    return NULL;
}

/* Threads draw from pools of their own. */
Test(ids, threads_draw_distinct_bytes)
{
    char mine[ES_UUID_LEN + 1], theirs[ES_UUID_LEN + 1];
    es_uuid_v4(mine);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, uuid_thread, theirs), 0);
    es_uuid_v4(mine);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_neq(memcmp(mine, theirs, ES_UUID_LEN), 0);
}

/* Version 7: the version and variant nibbles, the millisecond of the given
 * time in the first 48 bits, random bits after; ids of later milliseconds
 * sort after earlier ones, ids of one millisecond differ. */
Test(ids, uuid_v7_time_ordered)
{
    const int64_t t0 = INT64_C(1764201600123456); /* 2025-11-27 00:00:00.123456 UTC */
    char prev[ES_UUID_LEN + 1] = "";
    for (int i = 0; i < 100; i++) {
        char a[ES_UUID_LEN + 1], b[ES_UUID_LEN + 1];
        int64_t t = t0 + (int64_t)i * 1000;
        es_uuid_v7(t, a);
        es_uuid_v7(t, b);
        cr_assert_eq(strlen(a), ES_UUID_LEN);
        cr_assert_eq(a[14], '7', "%s: version nibble", a);
        cr_assert(strchr("89ab", a[19]) != NULL, "%s: variant nibble", a);
        char hex[13];
        snprintf(hex, sizeof(hex), "%012llx", (unsigned long long)(t / 1000));
        cr_assert(strncmp(a, hex, 8) == 0 && a[8] == '-' && strncmp(a + 9, hex + 8, 4) == 0,
                  "%s does not start with the millisecond %s", a, hex);
        cr_assert_str_neq(a, b, "two ids of one millisecond are equal");
        cr_assert(strcmp(prev, a) < 0 && strcmp(prev, b) < 0, "%s sorts before %s", a, prev);
        strcpy(prev, strcmp(a, b) > 0 ? a : b);
    }
}
