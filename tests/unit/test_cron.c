/* common/cron.c: parsing (and its error messages) and the next fire time,
 * in UTC: ranges, steps, lists, names, the day-of-month / day-of-week OR
 * rule, month ends, leap years and the @macros. */
#include "common/cron.h"
#include "common/timeutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Unix seconds of an ISO 8601 UTC time. */
static int64_t at(const char *iso)
{
    int64_t us = 0;
    cr_assert(es_time_parse(iso, strlen(iso), &us), "bad test time %s", iso);
    return us / 1000000;
}

static es_cron_t parse_ok(const char *expr)
{
    es_cron_t c;
    char why[160] = "";
    cr_assert(es_cron_parse(expr, &c, why, sizeof(why)), "\"%s\" refused: %s", expr, why);
    return c;
}

/* The next fire time of expr after `after` (ISO), formatted, in out. */
static const char *next_of(const char *expr, const char *after, char *out)
{
    es_cron_t c = parse_ok(expr);
    int64_t t = es_cron_next(&c, at(after));
    if (t < 0)
        snprintf(out, ES_TIME_BUFLEN, "none");
    else
        es_time_format(t * 1000000, out);
    return out;
}

#define ASSERT_NEXT(expr, after, want)                                                             \
    do {                                                                                           \
        char got_[ES_TIME_BUFLEN];                                                                 \
        next_of((expr), (after), got_);                                                            \
        cr_assert_str_eq(got_, (want), "\"%s\" after %s: %s, expected %s", (expr), (after), got_,  \
                         (want));                                                                  \
    } while (0)

/* The fire times of expr after `after`, one after the other. */
static void assert_sequence(const char *expr, const char *after, const char *const *want, int n)
{
    es_cron_t c = parse_ok(expr);
    int64_t t = at(after);
    for (int i = 0; i < n; i++) {
        t = es_cron_next(&c, t);
        char got[ES_TIME_BUFLEN] = "none";
        if (t >= 0)
            es_time_format(t * 1000000, got);
        cr_assert_str_eq(got, want[i], "\"%s\" fire %d after %s: %s, expected %s", expr, i + 1,
                         after, got, want[i]);
    }
}

/* Parsing fails and the reason contains `mention`. */
static void assert_refused(const char *expr, const char *mention)
{
    es_cron_t c;
    char why[160] = "";
    cr_expect_not(es_cron_parse(expr, &c, why, sizeof(why)), "\"%s\" was accepted", expr);
    cr_expect(why[0] != '\0', "\"%s\": no reason given", expr);
    if (mention)
        cr_expect(strstr(why, mention) != NULL, "\"%s\": reason \"%s\" does not mention %s", expr,
                  why, mention);
}

/* ---- parsing ------------------------------------------------------------- */

Test(cron, field_count)
{
    assert_refused("", "5 fields");
    assert_refused("   ", "5 fields");
    assert_refused("* * * *", "got 4");
    assert_refused("* * * * * *", "got 6");
    assert_refused("0 0 * * * 2025", NULL);
    assert_refused("@reboot", NULL); /* not a time */
    assert_refused("@every 5m", NULL);
    parse_ok("  */5 *\t* * *  "); /* blanks and tabs around and between */
}

Test(cron, out_of_range_values_name_the_field)
{
    assert_refused("60 * * * *", "minute");
    assert_refused("* 24 * * *", "hour");
    assert_refused("* * 0 * *", "day-of-month");
    assert_refused("* * 32 * *", "day-of-month");
    assert_refused("* * * 0 *", "month");
    assert_refused("* * * 13 *", "month");
    assert_refused("* * * * 8", "day-of-week");
    assert_refused("0-60 * * * *", "minute");
    assert_refused("* 20-24 * * *", "hour");
    assert_refused("*/5 1,2,25 * * *", "hour");
}

Test(cron, malformed_fields)
{
    static const struct {
        const char *expr, *field;
    } cases[] = {
        {"a * * * *", "minute"},         {"1- * * * *", "minute"},
        {"-1 * * * *", "minute"},        {"5-1 * * * *", "minute"},
        {"*/0 * * * *", "minute"},       {"*/ * * * *", "minute"},
        {"1,,2 * * * *", "minute"},      {"1, * * * *", "minute"},
        {",1 * * * *", "minute"},        {"1-2-3 * * * *", "minute"},
        {"1/2/3 * * * *", "minute"},     {"0001 * * * *", "minute"},
        {"** * * * *", "minute"},        {"jan * * * *", "minute"},
        {"* mon * * *", "hour"},         {"* * 1.5 * *", "day-of-month"},
        {"* * * january *", "month"},    {"* * * * monday", "day-of-week"},
        {"* * * * mo", "day-of-week"},   {"* * * jan-foo *", "month"},
        {"* * * * sun-", "day-of-week"}, {"*/1000 * * * *", "minute"},
        {"? * * * *", "minute"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_refused(cases[i].expr, cases[i].field);
}

Test(cron, accepted_forms)
{
    static const char *const ok[] = {
        "* * * * *",         "0 0 1 1 0",       "59 23 31 12 7",
        "*/15 * * * *",      "0-59/10 * * * *", "5/15 * * * *",
        "1,2,3 4-6 7 8 *",   "0 9 * * MON-FRI", "0 9 * * mon,wed,Fri",
        "0 0 1 JAN-DEC/3 *", "0 0 * Jan,jul *", "007 * * * *",
        "@yearly",           "@annually",       "@monthly",
        "@weekly",           "@daily",          "@midnight",
        "@hourly",           "@DAILY",          "  @hourly  ",
        "0 0 * * 7",         "0 0 * * 5-7",     "0 0 * * sun-sat",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        parse_ok(ok[i]);
}

/* The parsed bit sets, checked directly. */
Test(cron, parsed_sets)
{
    es_cron_t c = parse_ok("*/20 1-3,22 * * *");
    cr_assert_eq(c.minutes, (1ull << 0) | (1ull << 20) | (1ull << 40));
    cr_assert_eq(c.hours, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 22));
    cr_assert(c.mday_any && c.wday_any);
    cr_assert_eq(c.months, 0x1ffe, "every month 1..12");

    c = parse_ok("5/15 0 1,15 feb-apr sat,7");
    cr_assert_eq(c.minutes, (1ull << 5) | (1ull << 20) | (1ull << 35) | (1ull << 50));
    cr_assert_eq(c.mdays, (1u << 1) | (1u << 15));
    cr_assert_eq(c.months, (1u << 2) | (1u << 3) | (1u << 4));
    cr_assert_eq(c.wdays, (1u << 6) | 1u, "saturday and sunday (7)");
    cr_assert(!c.mday_any && !c.wday_any);

    c = parse_ok("0 0 * * 1-5/2");
    cr_assert_eq(c.wdays, (1u << 1) | (1u << 3) | (1u << 5));
    c = parse_ok("0 0 * jan-dec/4 *");
    cr_assert_eq(c.months, (1u << 1) | (1u << 5) | (1u << 9));
}

/* ---- next fire times ----------------------------------------------------- */

Test(cron, every_minute_is_strictly_after)
{
    ASSERT_NEXT("* * * * *", "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z");
    ASSERT_NEXT("* * * * *", "2025-01-01T00:00:59Z", "2025-01-01T00:01:00Z");
    ASSERT_NEXT("* * * * *", "2025-01-01T00:00:01Z", "2025-01-01T00:01:00Z");
    ASSERT_NEXT("* * * * *", "2025-12-31T23:59:30Z", "2026-01-01T00:00:00Z");
    ASSERT_NEXT("30 * * * *", "2025-01-01T10:30:00Z", "2025-01-01T11:30:00Z");
    ASSERT_NEXT("30 * * * *", "2025-01-01T10:29:59Z", "2025-01-01T10:30:00Z");
}

Test(cron, ranges_steps_lists)
{
    static const char *const quarter[] = {"2025-01-01T00:15:00Z", "2025-01-01T00:30:00Z",
                                          "2025-01-01T00:45:00Z", "2025-01-01T01:00:00Z"};
    assert_sequence("*/15 * * * *", "2025-01-01T00:00:00Z", quarter, 4);
    static const char *const offset[] = {"2025-01-01T00:05:00Z", "2025-01-01T00:20:00Z",
                                         "2025-01-01T00:35:00Z", "2025-01-01T00:50:00Z",
                                         "2025-01-01T01:05:00Z"};
    assert_sequence("5/15 * * * *", "2025-01-01T00:00:00Z", offset, 5);
    static const char *const office[] = {"2025-01-01T09:00:00Z", "2025-01-01T11:00:00Z",
                                         "2025-01-01T13:00:00Z", "2025-01-02T09:00:00Z"};
    assert_sequence("0 9-13/2 * * *", "2025-01-01T08:00:00Z", office, 4);
    ASSERT_NEXT("0,30 17 * * *", "2025-01-01T17:00:00Z", "2025-01-01T17:30:00Z");
    ASSERT_NEXT("0,30 17 * * *", "2025-01-01T17:30:00Z", "2025-01-02T17:00:00Z");
    ASSERT_NEXT("10-12 3 * * *", "2025-01-01T03:12:00Z", "2025-01-02T03:10:00Z");
    ASSERT_NEXT("0 22,2 * * *", "2025-01-01T22:00:00Z", "2025-01-02T02:00:00Z");
    ASSERT_NEXT("0 0 * * *", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z");
}

Test(cron, month_and_weekday_names)
{
    /* 2025-06-06 is a Friday; 2025-06-09 a Monday. */
    ASSERT_NEXT("0 9 * * mon-fri", "2025-06-06T10:00:00Z", "2025-06-09T09:00:00Z");
    ASSERT_NEXT("0 9 * * MON-FRI", "2025-06-06T08:00:00Z", "2025-06-06T09:00:00Z");
    ASSERT_NEXT("0 9 * * sat,sun", "2025-06-06T10:00:00Z", "2025-06-07T09:00:00Z");
    ASSERT_NEXT("0 0 * * 7", "2025-06-06T00:00:00Z", "2025-06-08T00:00:00Z");
    ASSERT_NEXT("0 0 * * 0", "2025-06-06T00:00:00Z", "2025-06-08T00:00:00Z");
    ASSERT_NEXT("0 0 1 jul *", "2025-06-06T00:00:00Z", "2025-07-01T00:00:00Z");
    ASSERT_NEXT("0 0 1 jan,jul *", "2025-07-01T00:00:00Z", "2026-01-01T00:00:00Z");
    ASSERT_NEXT("0 0 1 Mar-May/2 *", "2025-03-01T00:00:00Z", "2025-05-01T00:00:00Z");
}

/* When both day fields are restricted, a day matching either fires; when one
 * is '*', only the other counts. */
Test(cron, day_of_month_or_day_of_week)
{
    /* The 13th or any Friday: 2025-06-06 (Fri), 06-13 (both), 06-20 (Fri),
     * 06-27 (Fri), 07-04 (Fri), 07-11 (Fri), 07-13 (Sun, the 13th). */
    static const char *const either[] = {"2025-06-06T00:00:00Z", "2025-06-13T00:00:00Z",
                                         "2025-06-20T00:00:00Z", "2025-06-27T00:00:00Z",
                                         "2025-07-04T00:00:00Z", "2025-07-11T00:00:00Z",
                                         "2025-07-13T00:00:00Z", "2025-07-18T00:00:00Z"};
    assert_sequence("0 0 13 * 5", "2025-06-01T00:00:00Z", either, 8);
    /* Only the day of month. */
    ASSERT_NEXT("0 0 13 * *", "2025-06-01T00:00:00Z", "2025-06-13T00:00:00Z");
    /* Only the weekday. */
    ASSERT_NEXT("0 0 * * 5", "2025-06-07T00:00:00Z", "2025-06-13T00:00:00Z");
    /* The first of the month or a Monday, in February 2025 (Feb 3 is a Monday). */
    ASSERT_NEXT("0 0 1 * mon", "2025-01-31T00:00:00Z", "2025-02-01T00:00:00Z");
    ASSERT_NEXT("0 0 1 * mon", "2025-02-01T00:00:00Z", "2025-02-03T00:00:00Z");
    /* A '*' step counts as unrestricted (Vixie cron): both must match, so
     * "odd days that are Mondays" (2025-06-09 is an odd Monday; 06-02 is even). */
    ASSERT_NEXT("0 0 */2 * mon", "2025-06-01T00:00:00Z", "2025-06-09T00:00:00Z");
    ASSERT_NEXT("0 0 */2 * *", "2025-06-01T00:00:00Z", "2025-06-03T00:00:00Z");
}

Test(cron, month_ends)
{
    /* The 31st: skips the months that have none. */
    static const char *const the31st[] = {"2025-01-31T00:00:00Z", "2025-03-31T00:00:00Z",
                                          "2025-05-31T00:00:00Z", "2025-07-31T00:00:00Z",
                                          "2025-08-31T00:00:00Z", "2025-10-31T00:00:00Z",
                                          "2025-12-31T00:00:00Z", "2026-01-31T00:00:00Z"};
    assert_sequence("0 0 31 * *", "2025-01-01T00:00:00Z", the31st, 8);
    ASSERT_NEXT("0 0 30 * *", "2025-01-30T00:00:00Z", "2025-03-30T00:00:00Z");
    ASSERT_NEXT("59 23 30,31 4,6 *", "2025-04-30T23:59:00Z", "2025-06-30T23:59:00Z");
    /* The last minute of a year to the first of the next. */
    ASSERT_NEXT("0 0 1 1 *", "2025-12-31T23:59:00Z", "2026-01-01T00:00:00Z");
    ASSERT_NEXT("59 23 31 12 *", "2025-12-31T23:59:00Z", "2026-12-31T23:59:00Z");
    /* Hours past the end of a day roll into the next month. */
    ASSERT_NEXT("0 1 * * *", "2025-01-31T02:00:00Z", "2025-02-01T01:00:00Z");
}

Test(cron, leap_years)
{
    ASSERT_NEXT("0 12 29 2 *", "2025-01-01T00:00:00Z", "2028-02-29T12:00:00Z");
    ASSERT_NEXT("0 12 29 2 *", "2024-02-28T00:00:00Z", "2024-02-29T12:00:00Z");
    ASSERT_NEXT("0 12 29 2 *", "2024-02-29T12:00:00Z", "2028-02-29T12:00:00Z");
    /* March the 1st after February the 28th, leap year or not. */
    ASSERT_NEXT("0 0 * 3 *", "2024-02-28T00:00:00Z", "2024-03-01T00:00:00Z");
    ASSERT_NEXT("0 0 1,29 2,3 *", "2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z");
    ASSERT_NEXT("0 0 1,29 2,3 *", "2024-02-01T00:00:00Z", "2024-02-29T00:00:00Z");
    /* 2100 is not a leap year: the next 29 February after 2096 is in 2104,
     * beyond the five years searched. */
    ASSERT_NEXT("0 0 29 2 *", "2096-03-01T00:00:00Z", "none");
    ASSERT_NEXT("0 0 29 2 *", "2099-06-01T00:00:00Z", "2104-02-29T00:00:00Z");
    /* A day that never comes. */
    ASSERT_NEXT("0 0 30 2 *", "2025-01-01T00:00:00Z", "none");
    ASSERT_NEXT("0 0 31 4,6,9,11 *", "2025-01-01T00:00:00Z", "none");
    /* ...unless the weekday rule lets another day in. */
    ASSERT_NEXT("0 0 30 2 mon", "2025-02-01T00:00:00Z", "2025-02-03T00:00:00Z");
}

Test(cron, macros)
{
    ASSERT_NEXT("@hourly", "2025-01-01T10:00:00Z", "2025-01-01T11:00:00Z");
    ASSERT_NEXT("@daily", "2025-01-01T10:00:00Z", "2025-01-02T00:00:00Z");
    ASSERT_NEXT("@midnight", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z");
    ASSERT_NEXT("@weekly", "2025-01-01T10:00:00Z", "2025-01-05T00:00:00Z"); /* a Sunday */
    ASSERT_NEXT("@monthly", "2025-01-15T10:00:00Z", "2025-02-01T00:00:00Z");
    ASSERT_NEXT("@yearly", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
    ASSERT_NEXT("@annually", "2025-06-01T00:00:00Z", "2026-01-01T00:00:00Z");
    ASSERT_NEXT("@Monthly", "2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z");
}

/* ---- against a minute-by-minute search ----------------------------------- */

/* Vixie cron's rule, written out independently of cron.c. */
static bool matches(const es_cron_t *c, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    if (!((c->minutes >> tm.tm_min) & 1) || !((c->hours >> tm.tm_hour) & 1) ||
        !((c->months >> (tm.tm_mon + 1)) & 1))
        return false;
    bool dom = (c->mdays >> tm.tm_mday) & 1, dow = (c->wdays >> tm.tm_wday) & 1;
    if (c->mday_any || c->wday_any)
        return (c->mday_any || dom) && (c->wday_any || dow);
    return dom || dow;
}

/* es_cron_next is the first matching minute after t, for a spread of
 * expressions and start times (each over up to 400 days of minutes). */
Test(cron, agrees_with_a_minute_by_minute_search, .timeout = 60)
{
    static const char *const exprs[] = {
        "* * * * *",     "*/7 * * * *",         "0 */5 * * *",      "17 3 * * *",
        "0 0 29 2 *",    "0 0 31 * *",          "0 12 13 * fri",    "30 8 * * mon-fri",
        "0 0 1,15 * 3",  "45 23 * feb,aug sun", "5/20 1-4 2-6 * *", "0 0 * * 6,7",
        "59 23 31 12 *", "0 6 28-31 * *",       "@weekly",          "15 14 1 */2 *",
    };
    static const char *const starts[] = {"2024-02-27T23:58:00Z", "2025-01-01T00:00:00Z",
                                         "2025-06-30T23:59:59Z", "2025-12-31T23:00:30Z",
                                         "2027-10-10T10:10:00Z"};
    for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
        es_cron_t c = parse_ok(exprs[i]);
        for (size_t k = 0; k < sizeof(starts) / sizeof(starts[0]); k++) {
            int64_t from = at(starts[k]);
            int64_t want = -1;
            for (int64_t t = from - from % 60 + 60; t < from + 400LL * 86400; t += 60)
                if (matches(&c, t)) {
                    want = t;
                    break;
                }
            if (want < 0)
                continue; /* beyond the search; covered by the cases above */
            int64_t got = es_cron_next(&c, from);
            cr_assert_eq(got, want, "\"%s\" after %s: %lld, expected %lld", exprs[i], starts[k],
                         (long long)got, (long long)want);
        }
    }
}
