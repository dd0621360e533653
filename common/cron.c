#include "common/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* A number or (for months and weekdays) a three-letter name at *p. */
static bool value(const char **p, int base, const char *const *names, int nnames, int *out)
{
    if (isdigit((unsigned char)**p)) {
        int v = 0, digits = 0;
        while (isdigit((unsigned char)**p) && digits < 3) {
            v = v * 10 + (**p - '0');
            (*p)++;
            digits++;
        }
        if (isdigit((unsigned char)**p))
            return false;
        *out = v;
        return true;
    }
    for (int i = 0; names != NULL && i < nnames; i++) {
        if (strncasecmp(*p, names[i], 3) == 0 && !isalpha((unsigned char)(*p)[3])) {
            *p += 3;
            *out = base + i;
            return true;
        }
    }
    return false;
}

/* One field into bits (bit v set for each v allowed). */
static bool field(const char *text, int lo, int hi, const char *const *names, int nnames,
                  int name_base, uint64_t *bits, bool *any, char *why, size_t whylen,
                  const char *fname)
{
    *bits = 0;
    /* As in Vixie cron, a field starting with '*' (a step over the whole
     * range included) counts as unrestricted for the day-of-month /
     * day-of-week OR rule. */
    *any = text[0] == '*' || strcmp(text, "?") == 0;
    const char *p = text;
    for (;;) {
        int a = lo, b = hi, step = 1;
        if (*p == '*') {
            p++;
        } else {
            if (!value(&p, name_base, names, nnames, &a))
                goto bad;
            b = a;
            if (*p == '-') {
                p++;
                if (!value(&p, name_base, names, nnames, &b))
                    goto bad;
            }
        }
        if (*p == '/') {
            p++;
            if (!value(&p, 0, NULL, 0, &step) || step < 1)
                goto bad;
            if (a == b && text[0] != '*')
                b = hi; /* "5/15" means 5-hi/15 */
        }
        if (a < lo || b > hi || a > b) {
            snprintf(why, whylen, "%s: %d-%d is outside %d-%d", fname, a, b, lo, hi);
            return false;
        }
        for (int v = a; v <= b; v += step)
            *bits |= 1ull << v;
        if (*p == '\0')
            return true;
        if (*p != ',')
            goto bad;
        p++;
    }
bad:
    snprintf(why, whylen, "%s: cannot read \"%s\"", fname, text);
    return false;
}

bool es_cron_parse(const char *expr, es_cron_t *out, char *why, size_t whylen)
{
    static const struct {
        const char *name, *expansion;
    } macros[] = {{"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
                  {"@weekly", "0 0 * * 0"},  {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
                  {"@hourly", "0 * * * *"}};
    char buf[256];
    while (isspace((unsigned char)*expr))
        expr++;
    if (!es_strlcpy(buf, expr, sizeof(buf))) {
        snprintf(why, whylen, "too long");
        return false;
    }
    for (size_t i = strlen(buf); i > 0 && isspace((unsigned char)buf[i - 1]); i--)
        buf[i - 1] = '\0';
    for (size_t i = 0; i < ES_ARRAY_LEN(macros); i++)
        if (strcasecmp(buf, macros[i].name) == 0)
            es_strlcpy(buf, macros[i].expansion, sizeof(buf));
    char *fields[6];
    int n = 0;
    for (char *p = buf; *p != '\0' && n < 6;) { /* split on blanks, in place */
        while (*p == ' ' || *p == '\t')
            *p++ = '\0';
        if (*p == '\0')
            break;
        fields[n++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
    }
    if (n != 5) {
        snprintf(why, whylen, "expected 5 fields (minute hour day-of-month month day-of-week), got %d",
                 n);
        return false;
    }
    memset(out, 0, sizeof(*out));
    uint64_t bits;
    bool any;
    if (!field(fields[0], 0, 59, NULL, 0, 0, &bits, &any, why, whylen, "minute"))
        return false;
    out->minutes = bits;
    if (!field(fields[1], 0, 23, NULL, 0, 0, &bits, &any, why, whylen, "hour"))
        return false;
    out->hours = (uint32_t)bits;
    if (!field(fields[2], 1, 31, NULL, 0, 0, &bits, &out->mday_any, why, whylen, "day-of-month"))
        return false;
    out->mdays = (uint32_t)bits;
    if (!field(fields[3], 1, 12, month_names, 12, 1, &bits, &any, why, whylen, "month"))
        return false;
    out->months = (uint16_t)bits;
    if (!field(fields[4], 0, 7, day_names, 7, 0, &bits, &out->wday_any, why, whylen,
               "day-of-week"))
        return false;
    if (bits & (1u << 7))
        bits |= 1u; /* 7 is Sunday too */
    out->wdays = (uint8_t)(bits & 0x7f);
    return true;
}

static bool day_matches(const es_cron_t *c, const struct tm *tm)
{
    bool m = (c->mdays >> tm->tm_mday) & 1, w = (c->wdays >> tm->tm_wday) & 1;
    /* Either field unrestricted: both must match (a plain '*' matches every
     * day, a '*' step only its days); both restricted: either may. */
    if (c->mday_any || c->wday_any)
        return m && w;
    return m || w;
}

int64_t es_cron_next(const es_cron_t *c, int64_t after_s)
{
    time_t t = (time_t)(after_s - after_s % 60 + 60); /* the next whole minute */
    time_t limit = t + 5LL * 366 * 86400;
    struct tm tm;
    while (t < limit) {
        gmtime_r(&t, &tm);
        if (!((c->months >> (tm.tm_mon + 1)) & 1)) { /* to the first of next month */
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!day_matches(c, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!((c->hours >> tm.tm_hour) & 1)) {
            tm.tm_hour++;
            tm.tm_min = tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!((c->minutes >> tm.tm_min) & 1)) {
            t += 60;
            continue;
        }
        return (int64_t)t;
    }
    return -1;
}
