#include "common/buf.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define FFFD "\xef\xbf\xbd" /* U+FFFD REPLACEMENT CHARACTER in UTF-8 */

/* es_buf_json_str of s (n bytes) as a new C string (caller frees). */
static char *json_str(const char *s, size_t n)
{
    es_buf_t b = ES_BUF_INIT;
    es_buf_json_str(&b, s, n);
    cr_assert_eq(strlen(b.data), b.len, "output has no NUL bytes and len is exact");
    return es_buf_take(&b);
}

static void assert_json_str(const char *in, size_t n, const char *want)
{
    char *got = json_str(in, n);
    cr_assert_str_eq(got, want);
    /* Whatever went in, what comes out is a valid JSON string literal. */
    json_error_t jerr;
    json_t *v = json_loads(got, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    cr_assert_not_null(v, "%s is not valid JSON: %s", got, jerr.text);
    cr_assert(json_is_string(v));
    json_decref(v);
    free(got);
}

/* Valid UTF-8 must survive encode then decode unchanged, byte for byte. */
static void assert_round_trip(const char *in, size_t n)
{
    char *got = json_str(in, n);
    json_error_t jerr;
    json_t *v = json_loads(got, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    cr_assert_not_null(v, "%s is not valid JSON: %s", got, jerr.text);
    cr_assert_eq(json_string_length(v), n);
    cr_assert_eq(memcmp(json_string_value(v), in, n), 0, "round trip changed %s", got);
    json_decref(v);
    free(got);
}

#define JS(lit, want) assert_json_str(lit, sizeof(lit) - 1, want)

Test(buf, json_str_plain_and_empty)
{
    JS("", "\"\"");
    JS("hello world", "\"hello world\"");
    JS("/path/ok", "\"/path/ok\"");
    JS("\x7f", "\"\x7f\"");
}

Test(buf, json_str_quotes_and_backslash)
{
    JS("\"", "\"\\\"\"");
    JS("\\", "\"\\\\\"");
    JS("a\"b\\c", "\"a\\\"b\\\\c\"");
    JS("\\\"\\\"", "\"\\\\\\\"\\\\\\\"\"");
}

Test(buf, json_str_control_characters)
{
    JS("\n", "\"\\n\"");
    JS("\t", "\"\\t\"");
    JS("\r", "\"\\r\"");
    JS("a\r\nb\tc", "\"a\\r\\nb\\tc\"");
    JS("\x01", "\"\\u0001\"");
    JS("\x08", "\"\\u0008\"");
    JS("\x0c", "\"\\u000c\"");
    JS("\x1b[0m", "\"\\u001b[0m\"");
    JS("\x1f", "\"\\u001f\"");
    JS("a\0b", "\"a\\u0000b\"");
    JS("\0", "\"\\u0000\"");
    for (int c = 0; c < 0x20; c++) {
        char in[1] = {(char)c};
        assert_round_trip(in, 1);
    }
}

Test(buf, json_str_keeps_valid_utf8)
{
    JS("caf\xc3\xa9", "\"caf\xc3\xa9\"");           /* U+00E9 */
    JS("\xc2\x80", "\"\xc2\x80\"");                 /* U+0080, smallest 2-byte */
    JS("\xdf\xbf", "\"\xdf\xbf\"");                 /* U+07FF */
    JS("\xe0\xa0\x80", "\"\xe0\xa0\x80\"");         /* U+0800, smallest 3-byte */
    JS("\xe2\x82\xac", "\"\xe2\x82\xac\"");         /* U+20AC euro */
    JS("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");         /* U+D7FF, just below surrogates */
    JS("\xee\x80\x80", "\"\xee\x80\x80\"");         /* U+E000, just above */
    JS("\xef\xbf\xbf", "\"\xef\xbf\xbf\"");         /* U+FFFF */
    JS("\xf0\x90\x80\x80", "\"\xf0\x90\x80\x80\""); /* U+10000, smallest 4-byte */
    JS("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""); /* U+1F600 */
    JS("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF, the last */
    JS("\xe6\x97\xa5\xe6\x9c\xac\"x", "\"\xe6\x97\xa5\xe6\x9c\xac\\\"x\"");
    static const char mixed[] = "a\xc3\xa9\n\xe2\x82\xac\t\xf0\x9f\x98\x80\"\\";
    assert_round_trip(mixed, sizeof(mixed) - 1);
}

Test(buf, json_str_replaces_invalid_bytes)
{
    JS("\x80", "\"" FFFD "\""); /* lone continuation byte */
    JS("\xbf", "\"" FFFD "\"");
    JS("\xff", "\"" FFFD "\"");
    JS("\xfe", "\"" FFFD "\"");
    JS("a\xffz", "\"a" FFFD "z\"");
    JS("\xc3", "\"" FFFD "\"");          /* truncated at the end */
    JS("\xc3x", "\"" FFFD "x\"");        /* lead byte without continuation */
    JS("\xe2\x82", "\"" FFFD FFFD "\""); /* truncated 3-byte sequence */
    JS("\xe2\x82x", "\"" FFFD FFFD "x\"");
    JS("\xf0\x9f\x98", "\"" FFFD FFFD FFFD "\"");                   /* truncated 4-byte sequence */
    JS("\xf8\x88\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD FFFD "\""); /* 5-byte form */
    JS("\xc3\xa9\xa9", "\"\xc3\xa9" FFFD "\""); /* valid, then a stray continuation */
}

Test(buf, json_str_rejects_overlong_encodings)
{
    JS("\xc0\x80", "\"" FFFD FFFD "\"");                   /* NUL in two bytes */
    JS("\xc0\xaf", "\"" FFFD FFFD "\"");                   /* '/' in two bytes */
    JS("\xc1\xbf", "\"" FFFD FFFD "\"");                   /* U+007F in two bytes */
    JS("\xe0\x80\xaf", "\"" FFFD FFFD FFFD "\"");          /* '/' in three bytes */
    JS("\xe0\x9f\xbf", "\"" FFFD FFFD FFFD "\"");          /* U+07FF in three bytes */
    JS("\xf0\x80\x80\xaf", "\"" FFFD FFFD FFFD FFFD "\""); /* '/' in four bytes */
    JS("\xf0\x8f\xbf\xbf", "\"" FFFD FFFD FFFD FFFD "\""); /* U+FFFF in four bytes */
}

Test(buf, json_str_rejects_surrogates_and_beyond_unicode)
{
    JS("\xed\xa0\x80", "\"" FFFD FFFD FFFD "\"");                            /* U+D800 */
    JS("\xed\xbf\xbf", "\"" FFFD FFFD FFFD "\"");                            /* U+DFFF */
    JS("\xed\xa0\xbd\xed\xb8\x80", "\"" FFFD FFFD FFFD FFFD FFFD FFFD "\""); /* CESU-8 pair */
    JS("\xf4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");                   /* U+110000 */
    JS("\xf5\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");
    JS("\xf7\xbf\xbf\xbf", "\"" FFFD FFFD FFFD FFFD "\"");
}

Test(buf, json_str_respects_length_not_nul)
{
    char *got = json_str("abcdef", 3);
    cr_assert_str_eq(got, "\"abc\"");
    free(got);
    /* A multi-byte sequence cut by n is invalid, even if the bytes go on. */
    got = json_str("\xc3\xa9", 1);
    cr_assert_str_eq(got, "\"" FFFD "\"");
    free(got);
}

Test(buf, json_str_long_input_grows)
{
    size_t n = 5000;
    char *in = malloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (i % 7 == 0) ? '"' : (char)('a' + i % 26);
    assert_round_trip(in, n);
    char *out = json_str(in, n);
    size_t quotes = (n + 6) / 7;
    cr_assert_eq(strlen(out), n + quotes + 2);
    free(out);
    free(in);
}

Test(buf, json_cstr_null_and_string)
{
    es_buf_t b = ES_BUF_INIT;
    es_buf_json_cstr(&b, NULL);
    es_buf_putc(&b, ',');
    es_buf_json_cstr(&b, "x\"y");
    cr_assert_str_eq(b.data, "null,\"x\\\"y\"");
    cr_assert_eq(b.len, strlen("null,\"x\\\"y\""));
    es_buf_free(&b);
}

Test(buf, append_puts_putc)
{
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "ab");
    es_buf_putc(&b, 'c');
    es_buf_append(&b, "d\0e", 3);
    cr_assert_eq(b.len, 6);
    cr_assert_eq(memcmp(b.data, "abcd\0e", 7), 0, "NUL kept and buffer NUL-terminated");
    cr_assert_geq(b.cap, b.len + 1);
    es_buf_append(&b, "", 0);
    cr_assert_eq(b.len, 6);
    es_buf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
}

Test(buf, reserve_leaves_room)
{
    es_buf_t b = ES_BUF_INIT;
    es_buf_reserve(&b, 1000);
    cr_assert_geq(b.cap, 1001);
    cr_assert_eq(b.len, 0);
    size_t cap = b.cap;
    for (int i = 0; i < 1000; i++)
        es_buf_putc(&b, 'x');
    cr_assert_eq(b.cap, cap, "no reallocation within the reserved room");
    cr_assert_eq(b.len, 1000);
    cr_assert_eq(b.data[1000], '\0');
    es_buf_free(&b);
}

Test(buf, printf_small_and_past_256_bytes)
{
    es_buf_t b = ES_BUF_INIT;
    es_buf_printf(&b, "%d-%s", 42, "x");
    cr_assert_str_eq(b.data, "42-x");
    cr_assert_eq(b.len, 4);

    char big[1001];
    memset(big, 'q', 1000);
    big[1000] = '\0';
    es_buf_printf(&b, "[%s]", big);
    cr_assert_eq(b.len, 4 + 1002);
    cr_assert_eq(strlen(b.data), b.len);
    cr_assert_eq(memcmp(b.data, "42-x[", 5), 0);
    cr_assert_eq(b.data[5], 'q');
    cr_assert_eq(b.data[1004], 'q');
    cr_assert_eq(b.data[1005], ']');
    cr_assert_geq(b.cap, b.len + 1);
    es_buf_printf(&b, "%s", "!");
    cr_assert_eq(b.len, 1007);
    cr_assert_eq(b.data[1006], '!');
    es_buf_free(&b);
}

Test(buf, printf_at_the_256_byte_boundary)
{
    /* 255, 256 and 257 bytes of output: either side of the stack buffer. */
    for (int n = 254; n <= 258; n++) {
        es_buf_t b = ES_BUF_INIT;
        es_buf_puts(&b, "<");
        es_buf_printf(&b, "%0*d", n, 7);
        cr_assert_eq(b.len, (size_t)n + 1, "n=%d", n);
        cr_assert_eq(strlen(b.data), b.len, "n=%d", n);
        cr_assert_eq(b.data[0], '<');
        cr_assert_eq(b.data[1], '0');
        cr_assert_eq(b.data[n], '7', "n=%d", n);
        es_buf_free(&b);
    }
}

Test(buf, printf_many_appends)
{
    es_buf_t b = ES_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        es_buf_printf(&b, "%04d,", i);
    cr_assert_eq(b.len, 5000);
    cr_assert_eq(memcmp(b.data, "0000,0001,", 10), 0);
    cr_assert_eq(memcmp(b.data + 4995, "0999,", 5), 0);
    cr_assert_eq(b.data[5000], '\0');
    es_buf_free(&b);
}

Test(buf, take_hands_over_and_resets)
{
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "owned");
    char *s = es_buf_take(&b);
    cr_assert_str_eq(s, "owned");
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
    /* The buffer is usable again and independent of what was taken. */
    es_buf_puts(&b, "again");
    cr_assert_str_eq(b.data, "again");
    cr_assert_str_eq(s, "owned");
    free(s);
    es_buf_free(&b);
}

Test(buf, take_of_empty_buffer_is_empty_string)
{
    es_buf_t b = ES_BUF_INIT;
    char *s = es_buf_take(&b);
    cr_assert_not_null(s);
    cr_assert_str_eq(s, "");
    free(s);
}

Test(buf, reset_keeps_storage)
{
    es_buf_t b = ES_BUF_INIT;
    es_buf_reset(&b); /* on an empty buffer: nothing to do, no crash */
    cr_assert_eq(b.len, 0);
    es_buf_puts(&b, "something long enough");
    size_t cap = b.cap;
    char *data = b.data;
    es_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.data, "");
    cr_assert_eq(b.cap, cap);
    cr_assert_eq(b.data, data, "storage is reused");
    es_buf_puts(&b, "new");
    cr_assert_str_eq(b.data, "new");
    cr_assert_eq(b.len, 3);
    es_buf_free(&b);
}
