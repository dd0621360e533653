#include "common/timeutil.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define S 1000000LL /* microseconds in a second */

static const int64_t jan1_2025 = 1735689600LL * S; /* 2025-01-01T00:00:00Z */

static bool parse(const char *s, int64_t *us)
{
    return es_time_parse(s, strlen(s), us);
}

/* Parses s, which must succeed, and returns the instant. */
static int64_t parse_ok(const char *s)
{
    int64_t us = 0;
    cr_assert(parse(s, &us), "expected \"%s\" to parse", s);
    return us;
}

static void assert_rejected(const char *s)
{
    int64_t us = 12345;
    cr_expect_not(parse(s, &us), "expected \"%s\" to be rejected", s);
}

Test(timeutil, utc_designators_and_separators)
{
    cr_assert_eq(parse_ok("2025-01-01T00:00:00Z"), jan1_2025);
    cr_assert_eq(parse_ok("2025-01-01T00:00:00z"), jan1_2025);
    cr_assert_eq(parse_ok("2025-01-01t00:00:00Z"), jan1_2025);
    cr_assert_eq(parse_ok("2025-01-01 00:00:00Z"), jan1_2025);
    cr_assert_eq(parse_ok("2025-01-01T00:00:00"), jan1_2025, "no offset means UTC");
    cr_assert_eq(parse_ok("2025-01-01T00:00Z"), jan1_2025, "seconds are optional");
    cr_assert_eq(parse_ok("2025-01-01T00:00"), jan1_2025);
    cr_assert_eq(parse_ok("2025-06-15T12:34:56Z"), 1749990896LL * S);
}

Test(timeutil, bare_date_is_midnight_utc)
{
    cr_assert_eq(parse_ok("2025-01-01"), jan1_2025);
    cr_assert_eq(parse_ok("2024-02-29"), 1709164800LL * S);
}

Test(timeutil, numeric_offsets_in_every_form)
{
    /* 02:00 at +02 is midnight UTC. */
    cr_assert_eq(parse_ok("2025-01-01T02:00:00+02"), jan1_2025);
    cr_assert_eq(parse_ok("2025-01-01T02:00:00+02:00"), jan1_2025);
    cr_assert_eq(parse_ok("2025-01-01T02:00:00+0200"), jan1_2025);
    cr_assert_eq(parse_ok("2025-01-01T05:30:00+05:30"), jan1_2025);
    cr_assert_eq(parse_ok("2025-01-01T05:30:00+0530"), jan1_2025);
    cr_assert_eq(parse_ok("2024-12-31T19:00:00-05:00"), jan1_2025);
    cr_assert_eq(parse_ok("2024-12-31T14:15:00-0945"), jan1_2025);
    cr_assert_eq(parse_ok("2025-01-01T00:00:00+00:00"), jan1_2025);
    cr_assert_eq(parse_ok("2025-01-01T00:00:00-00:00"), jan1_2025);
    cr_assert_eq(parse_ok("2025-01-01T00:00+01:00"), jan1_2025 - 3600 * S);
}

Test(timeutil, fractions_of_one_to_nine_digits)
{
    cr_assert_eq(parse_ok("2025-01-01T00:00:00.5Z"), jan1_2025 + 500000);
    cr_assert_eq(parse_ok("2025-01-01T00:00:00.12Z"), jan1_2025 + 120000);
    cr_assert_eq(parse_ok("2025-01-01T00:00:00.123Z"), jan1_2025 + 123000);
    cr_assert_eq(parse_ok("2025-01-01T00:00:00.1234Z"), jan1_2025 + 123400);
    cr_assert_eq(parse_ok("2025-01-01T00:00:00.12345Z"), jan1_2025 + 123450);
    cr_assert_eq(parse_ok("2025-01-01T00:00:00.123456Z"), jan1_2025 + 123456);
    /* Beyond microseconds the digits are truncated, not rounded. */
    cr_assert_eq(parse_ok("2025-01-01T00:00:00.1234567Z"), jan1_2025 + 123456);
    cr_assert_eq(parse_ok("2025-01-01T00:00:00.12345678Z"), jan1_2025 + 123456);
    cr_assert_eq(parse_ok("2025-01-01T00:00:00.999999999Z"), jan1_2025 + 999999);
    cr_assert_eq(parse_ok("2025-01-01T00:00:00,25Z"), jan1_2025 + 250000, "comma separator");
    cr_assert_eq(parse_ok("2025-01-01T00:00:00.000001"), jan1_2025 + 1);
    cr_assert_eq(parse_ok("2025-01-01T01:00:00.75+01:00"), jan1_2025 + 750000);
}

Test(timeutil, postgresql_text_output)
{
    cr_assert_eq(parse_ok("2025-01-01 00:00:00.5+00"), jan1_2025 + 500000);
    cr_assert_eq(parse_ok("2025-01-01 00:00:00+00"), jan1_2025);
    cr_assert_eq(parse_ok("2025-01-01 00:00:00.123456+00"), jan1_2025 + 123456);
    cr_assert_eq(parse_ok("2025-01-01 05:30:00+05:30"), jan1_2025);
}

Test(timeutil, leap_years)
{
    cr_assert_eq(parse_ok("2024-02-29T00:00:00Z"), 1709164800LL * S);
    cr_assert_eq(parse_ok("2000-02-29T00:00:00Z"), 951868800LL * S - 86400 * S,
                 "2000 is divisible by 400: leap");
    assert_rejected("2023-02-29T00:00:00Z");
    assert_rejected("2023-02-29");
    assert_rejected("1900-02-29"); /* divisible by 100, not by 400 */
    assert_rejected("2024-02-30");
    cr_assert_eq(parse_ok("2023-02-28T23:59:59Z") + S, parse_ok("2023-03-01T00:00:00Z"));
    cr_assert_eq(parse_ok("2024-02-29T23:59:59Z") + S, parse_ok("2024-03-01T00:00:00Z"));
}

Test(timeutil, out_of_range_fields)
{
    assert_rejected("2025-00-01");
    assert_rejected("2025-13-01");
    assert_rejected("2025-01-00");
    assert_rejected("2025-01-32");
    assert_rejected("2025-04-31");
    assert_rejected("2025-06-31T00:00:00Z");
    assert_rejected("0000-01-01");
    assert_rejected("2025-01-01T24:00:00Z");
    assert_rejected("2025-01-01T23:60:00Z");
    assert_rejected("2025-01-01T23:59:61Z");
    assert_rejected("2025-01-01T00:00:00+24:00");
    assert_rejected("2025-01-01T00:00:00+01:60");
}

Test(timeutil, leap_second_is_clamped)
{
    cr_assert_eq(parse_ok("2016-12-31T23:59:60Z"), parse_ok("2016-12-31T23:59:59Z"));
}

Test(timeutil, malformed_and_trailing_junk)
{
    static const char *const bad[] = {
        "",
        "2025",
        "2025-01",
        "2025-1-01",
        "2025-01-1",
        "25-01-01",
        "2025/01/01",
        "20250101",
        "2025-01-01T",
        "2025-01-01T1",
        "2025-01-01T12",
        "2025-01-01T12:",
        "2025-01-01T12:0",
        "2025-01-01T12:00:",
        "2025-01-01T12:00:0",
        "2025-01-01T12:00:00.",
        "2025-01-01T12:00:00.Z",
        "2025-01-01T12:00.5Z",
        "2025-01-01X12:00:00",
        "2025-01-01  12:00:00",
        "2025-01-01T12:00:00ZZ",
        "2025-01-01T12:00:00Z ",
        " 2025-01-01T12:00:00Z",
        "2025-01-01T12:00:00 Z",
        "2025-01-01T12:00:00+",
        "2025-01-01T12:00:00+1",
        "2025-01-01T12:00:00+01:",
        "2025-01-01T12:00:00+01:0",
        "2025-01-01T12:00:00+010",
        "2025-01-01T12:00:00+01:00:00",
        "2025-01-01T12:00:00+01:00x",
        "2025-01-01T12:00:00UTC",
        "2025-01-01Z",
        "2025-01-01+01:00",
        "2025-01-01junk",
        "2025-01-01T12:00:00.5junk",
        "now",
        "-2025-01-01",
        "2025-01-01T12:00:00\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_rejected(bad[i]);
}

Test(timeutil, length_bounds_the_input)
{
    int64_t us = 0;
    /* Only the first len bytes count: the rest of the C string is ignored. */
    const char *s = "2025-01-01T00:00:00Zjunk";
    cr_assert(es_time_parse(s, 20, &us));
    cr_assert_eq(us, jan1_2025);
    cr_assert(es_time_parse(s, 10, &us), "the date alone");
    cr_assert_eq(us, jan1_2025);
    cr_assert_not(es_time_parse(s, 9, &us));
    /* An embedded NUL is not the end of the input. */
    cr_assert_not(es_time_parse("2025-01-01\0T00:00", 16, &us));
}

Test(timeutil, extremes_of_the_range)
{
    cr_assert_eq(parse_ok("0001-01-01T00:00:00Z"), -62135596800LL * S);
    cr_assert_eq(parse_ok("9999-12-31T23:59:59Z"), 253402300799LL * S);
    cr_assert_eq(parse_ok("1970-01-01T00:00:00Z"), 0);
    cr_assert_eq(parse_ok("1969-12-31T23:59:59Z"), -1 * S);
    cr_assert_eq(parse_ok("1900-01-01T00:00:00Z"), -2208988800LL * S);
}

Test(timeutil, format_without_fraction)
{
    char buf[ES_TIME_BUFLEN];
    size_t n = es_time_format(jan1_2025, buf);
    cr_assert_str_eq(buf, "2025-01-01T00:00:00Z");
    cr_assert_eq(n, strlen(buf));
    es_time_format(0, buf);
    cr_assert_str_eq(buf, "1970-01-01T00:00:00Z");
    es_time_format(1749990896LL * S, buf);
    cr_assert_str_eq(buf, "2025-06-15T12:34:56Z");
}

Test(timeutil, format_with_fraction)
{
    char buf[ES_TIME_BUFLEN];
    size_t n = es_time_format(jan1_2025 + 500000, buf);
    cr_assert_str_eq(buf, "2025-01-01T00:00:00.500000Z");
    cr_assert_eq(n, strlen(buf));
    es_time_format(jan1_2025 + 1, buf);
    cr_assert_str_eq(buf, "2025-01-01T00:00:00.000001Z");
    es_time_format(jan1_2025 + 999999, buf);
    cr_assert_str_eq(buf, "2025-01-01T00:00:00.999999Z");
}

Test(timeutil, format_before_1970)
{
    char buf[ES_TIME_BUFLEN];
    es_time_format(-1, buf);
    cr_assert_str_eq(buf, "1969-12-31T23:59:59.999999Z");
    es_time_format(-1 * S, buf);
    cr_assert_str_eq(buf, "1969-12-31T23:59:59Z");
    es_time_format(-1500000, buf);
    cr_assert_str_eq(buf, "1969-12-31T23:59:58.500000Z");
    es_time_format(-298179740LL * S, buf);
    cr_assert_str_eq(buf, "1960-07-20T20:17:40Z");
    es_time_format(-2208988800LL * S + 250000, buf);
    cr_assert_str_eq(buf, "1900-01-01T00:00:00.250000Z");
    es_time_format(-62135596800LL * S, buf);
    cr_assert_str_eq(buf, "0001-01-01T00:00:00Z");
}

Test(timeutil, format_parse_round_trip)
{
    static const int64_t samples[] = {
        0,
        1,
        -1,
        999999,
        -999999,
        1000000,
        -1500000,
        1735689600LL * S,
        1735689600LL * S + 123456,
        1709164800LL * S + 86399 * S + 999999, /* last microsecond of 2024-02-29 */
        -2208988800LL * S + 7,
        -62135596800LL * S,
        253402300799LL * S + 999999,
        951782400LL * S + 43200 * S + 1,
    };
    char buf[ES_TIME_BUFLEN];
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        size_t n = es_time_format(samples[i], buf);
        int64_t back = 0;
        cr_assert(es_time_parse(buf, n, &back), "\"%s\" does not parse back", buf);
        cr_assert_eq(back, samples[i], "%s: %lld != %lld", buf, (long long)back,
                     (long long)samples[i]);
    }
}

Test(timeutil, format_is_canonical_after_parse)
{
    char buf[ES_TIME_BUFLEN];
    es_time_format(parse_ok("2024-12-31T19:00:00.25-05:00"), buf);
    cr_assert_str_eq(buf, "2025-01-01T00:00:00.250000Z");
    es_time_format(parse_ok("2025-01-01 00:00:00.5+00"), buf);
    cr_assert_str_eq(buf, "2025-01-01T00:00:00.500000Z");
}

Test(timeutil, clocks_move_forward)
{
    int64_t a = es_time_now_us();
    cr_assert_gt(a, jan1_2025, "wall clock is after 2025-01-01");
    int64_t m1 = es_time_mono_ms();
    int64_t m2 = es_time_mono_ms();
    cr_assert_geq(m2, m1);
    cr_assert_geq(es_time_now_us(), a);
}

/* The reference: gmtime_r and printf, as the formatting was first written. */
static void reference_format(int64_t us, char out[128])
{
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    if (frac)
        snprintf(out, 128, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    else
        snprintf(out, 128, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Every instant agrees with the reference: day and year boundaries, leap
 * days, whole seconds and fractions, from year 1 to beyond 9999 and before
 * year 0; and formatting then parsing gives the instant back. */
Test(timeutil, format_matches_gmtime)
{
    const int64_t lo = -62135596800LL - 86400LL * 800, hi = 253402300799LL + 86400LL * 800;
    uint64_t x = 88172645463325252ULL; /* xorshift: the same sequence every run */
    char got[ES_TIME_BUFLEN], want[128];
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t secs = lo + (int64_t)(x % (uint64_t)(hi - lo));
        if (i % 4 == 1)
            secs -= secs % 86400; /* midnights */
        else if (i % 4 == 2)
            secs = secs - secs % 86400 - 1; /* the second before one */
        int64_t us = secs * S + (i % 3 == 0 ? 0 : (int64_t)(x >> 40) % S);
        size_t n = es_time_format(us, got);
        reference_format(us, want);
        cr_assert_str_eq(got, want, "instant %lld us", (long long)us);
        cr_assert_eq(n, strlen(want));
        int64_t back = 0;
        if (secs >= -62135596800LL && secs <= 253402300799LL) {
            cr_assert(es_time_parse(got, n, &back), "%s does not parse", got);
            cr_assert_eq(back, us, "%s", got);
        }
    }
}
