#include "common/b64.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *plain;
    const char *std;
    const char *url;
} vector_t;

/* RFC 4648 section 10. */
static const vector_t rfc4648[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void assert_decodes(const char *s, const void *want, size_t wantlen)
{
    size_t len = 12345;
    unsigned char *out = es_b64_decode(s, strlen(s), &len);
    cr_assert_not_null(out, "\"%s\" should decode", s);
    cr_assert_eq(len, wantlen, "\"%s\": %zu bytes, want %zu", s, len, wantlen);
    cr_assert_eq(memcmp(out, want, wantlen), 0, "\"%s\" decoded to the wrong bytes", s);
    free(out);
}

static void assert_rejected(const char *s, size_t n)
{
    size_t len = 0;
    unsigned char *out = es_b64_decode(s, n, &len);
    cr_expect_null(out, "\"%.*s\" should be rejected, decoded to %zu bytes", (int)n, s, len);
    free(out);
}

Test(b64, rfc4648_encode_standard)
{
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const vector_t *v = &rfc4648[i];
        char *got = es_b64_encode((const unsigned char *)v->plain, strlen(v->plain), false);
        cr_assert_str_eq(got, v->std, "encode(\"%s\")", v->plain);
        free(got);
    }
}

Test(b64, rfc4648_encode_url_unpadded)
{
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const vector_t *v = &rfc4648[i];
        char *got = es_b64_encode((const unsigned char *)v->plain, strlen(v->plain), true);
        cr_assert_str_eq(got, v->url, "url encode(\"%s\")", v->plain);
        free(got);
    }
}

Test(b64, rfc4648_decode_padded_and_unpadded)
{
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const vector_t *v = &rfc4648[i];
        assert_decodes(v->std, v->plain, strlen(v->plain));
        assert_decodes(v->url, v->plain, strlen(v->plain));
    }
}

Test(b64, url_alphabet_replaces_plus_and_slash)
{
    static const unsigned char plus[] = {0xfb, 0xef, 0xbe};  /* 62 62 62 62 */
    static const unsigned char slash[] = {0xff, 0xff, 0xff}; /* 63 63 63 63 */
    static const unsigned char mix[] = {0xfb, 0xff};         /* 62 63 60 + pad */
    char *s = es_b64_encode(plus, 3, false);
    cr_assert_str_eq(s, "++++");
    free(s);
    s = es_b64_encode(plus, 3, true);
    cr_assert_str_eq(s, "----");
    free(s);
    s = es_b64_encode(slash, 3, false);
    cr_assert_str_eq(s, "////");
    free(s);
    s = es_b64_encode(slash, 3, true);
    cr_assert_str_eq(s, "____");
    free(s);
    s = es_b64_encode(mix, 2, false);
    cr_assert_str_eq(s, "+/8=");
    free(s);
    s = es_b64_encode(mix, 2, true);
    cr_assert_str_eq(s, "-_8");
    free(s);

    assert_decodes("++++", plus, 3);
    assert_decodes("----", plus, 3);
    assert_decodes("////", slash, 3);
    assert_decodes("____", slash, 3);
    assert_decodes("+/8=", mix, 2);
    assert_decodes("-_8", mix, 2);
    assert_decodes("-_8=", mix, 2);
}

Test(b64, binary_round_trip_every_length)
{
    unsigned char in[300];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(in); n++) {
        for (int url = 0; url <= 1; url++) {
            char *enc = es_b64_encode(in, n, url);
            size_t want = url ? (n * 4 + 2) / 3 : 4 * ((n + 2) / 3);
            cr_assert_eq(strlen(enc), want, "n=%zu url=%d: %s", n, url, enc);
            if (url)
                cr_assert(strpbrk(enc, "+/=") == NULL, "n=%zu: %s", n, enc);
            size_t len = 0;
            unsigned char *dec = es_b64_decode(enc, strlen(enc), &len);
            cr_assert_not_null(dec, "n=%zu url=%d", n, url);
            cr_assert_eq(len, n);
            cr_assert_eq(memcmp(dec, in, n), 0, "n=%zu url=%d", n, url);
            free(dec);
            free(enc);
        }
    }
}

Test(b64, decode_respects_length)
{
    size_t len = 0;
    unsigned char *out = es_b64_decode("Zm9vYmFy", 4, &len);
    cr_assert_not_null(out);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(out, "foo", 3), 0);
    free(out);
}

Test(b64, invalid_characters_rejected)
{
    static const char *const bad[] = {
        "Zm9v!", "Zm9v YmFy", " Zm9v",  "Zm9v\n", "Zm9v\r\n", "Zm9v\t",  "Zm.v",
        "Zm9v*", "Zm9v~",     "Zm9v\"", "Zm9v:",  "Zm9v@",    "Zm9\x80", "\xc3\xa9Zm",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_rejected(bad[i], strlen(bad[i]));
    assert_rejected("Zm\0v", 4);
}

Test(b64, impossible_lengths_rejected)
{
    /* One character past a group of four carries only 6 bits: never valid. */
    assert_rejected("Z", 1);
    assert_rejected("Zm9vY", 5);
    assert_rejected("Zm9vY===", 8);
    assert_rejected("====", 4);
    assert_rejected("=", 1);
}

Test(b64, misplaced_padding_rejected)
{
    /* Padding may only end the text. */
    assert_rejected("Zg=x", 4);
    assert_rejected("=Zg=", 4);
    assert_rejected("Zg==Zg==", 8);
    assert_rejected("Zm9=Zm9v", 8);
}
