#include "api-worker/http.h"

#include <criterion/criterion.h>
#include <string.h>

/* Decodes s into a generous buffer, which must succeed, and compares. */
static void assert_unescapes(const char *s, const char *want)
{
    char out[256];
    memset(out, '#', sizeof(out));
    cr_assert(es_http_unescape(s, strlen(s), out, sizeof(out)), "\"%s\" should decode", s);
    cr_assert_str_eq(out, want, "\"%s\"", s);
}

static void assert_rejected(const char *s)
{
    char out[256];
    cr_assert_not(es_http_unescape(s, strlen(s), out, sizeof(out)), "\"%s\" should be rejected", s);
}

Test(http_unescape, plain_text_is_copied)
{
    assert_unescapes("", "");
    assert_unescapes("abc", "abc");
    assert_unescapes("order:42", "order:42");
    assert_unescapes("a-b_c.d~e", "a-b_c.d~e");
}

Test(http_unescape, percent_escapes_decode)
{
    assert_unescapes("%41", "A");
    assert_unescapes("%41%42%43", "ABC");
    assert_unescapes("%2f", "/");
    assert_unescapes("%2F", "/");
    assert_unescapes("%3a%3A", "::");
    assert_unescapes("a%20b", "a b");
    assert_unescapes("%7e", "~");
    assert_unescapes("%C3%A9t%c3%a9", "\xc3\xa9t\xc3\xa9");
    assert_unescapes("%ff", "\xff");
    assert_unescapes("%01", "\x01");
    assert_unescapes("x%25", "x%");
}

Test(http_unescape, decoding_happens_once)
{
    assert_unescapes("%2541", "%41");
    assert_unescapes("%252B", "%2B");
}

Test(http_unescape, plus_is_space)
{
    assert_unescapes("+", " ");
    assert_unescapes("a+b", "a b");
    assert_unescapes("++", "  ");
    assert_unescapes("%2B", "+");
    assert_unescapes("+%2B+", " + ");
}

Test(http_unescape, truncated_escapes_rejected)
{
    assert_rejected("%");
    assert_rejected("%4");
    assert_rejected("abc%");
    assert_rejected("abc%4");
    assert_rejected("%41%");
    assert_rejected("%41%4");
}

Test(http_unescape, invalid_escapes_rejected)
{
    assert_rejected("%G1");
    assert_rejected("%1G");
    assert_rejected("%%41");
    assert_rejected("%-1");
    assert_rejected("% 1");
    assert_rejected("%+1");
    assert_rejected("%x41");
    assert_rejected("a%zzb");
}

Test(http_unescape, escaped_nul_rejected)
{
    assert_rejected("%00");
    assert_rejected("a%00b");
    assert_rejected("abc%00");
}

Test(http_unescape, length_bounds_the_input)
{
    char out[16];
    /* "%41" cut to two bytes is a truncated escape, whatever follows. */
    cr_assert_not(es_http_unescape("%41", 2, out, sizeof(out)));
    cr_assert(es_http_unescape("abcdef", 3, out, sizeof(out)));
    cr_assert_str_eq(out, "abc");
    cr_assert(es_http_unescape("x", 0, out, sizeof(out)));
    cr_assert_str_eq(out, "");
}

Test(http_unescape, output_capacity_respected)
{
    char out[16];

    /* Exactly enough room: the text plus its NUL. */
    memset(out, '#', sizeof(out));
    cr_assert(es_http_unescape("abcd", 4, out, 5));
    cr_assert_str_eq(out, "abcd");

    /* One byte short: refused, and nothing written at or past cap. */
    memset(out, '#', sizeof(out));
    cr_assert_not(es_http_unescape("abcd", 4, out, 4));
    for (size_t i = 4; i < sizeof(out); i++)
        cr_assert_eq(out[i], '#', "byte %zu written past cap", i);

    /* Capacity counts decoded bytes, not input bytes. */
    memset(out, '#', sizeof(out));
    cr_assert(es_http_unescape("%41%42", 6, out, 3));
    cr_assert_str_eq(out, "AB");
    memset(out, '#', sizeof(out));
    cr_assert_not(es_http_unescape("%41%42", 6, out, 2));
    for (size_t i = 2; i < sizeof(out); i++)
        cr_assert_eq(out[i], '#', "byte %zu written past cap", i);

    /* Room only for the NUL. */
    memset(out, '#', sizeof(out));
    cr_assert(es_http_unescape("", 0, out, 1));
    cr_assert_eq(out[0], '\0');
    cr_assert_eq(out[1], '#');
    cr_assert_not(es_http_unescape("a", 1, out, 1));
    cr_assert_eq(out[1], '#');

    /* Long input into a small buffer. */
    memset(out, '#', sizeof(out));
    cr_assert_not(es_http_unescape("abcdefghijklmnopqrstuvwxyz", 26, out, 8));
    for (size_t i = 8; i < sizeof(out); i++)
        cr_assert_eq(out[i], '#', "byte %zu written past cap", i);
}

Test(http_unescape, zero_capacity_writes_nothing)
{
    /* No room even for the NUL: the call must fail without touching out. */
    char out[4];
    memset(out, '#', sizeof(out));
    cr_expect_not(es_http_unescape("", 0, out, 0), "an empty input still needs room for NUL");
    cr_expect_eq(out[0], '#', "out[0] written with cap 0");
}
