/*
 * cron.h - 5-field cron expressions ("minute hour day-of-month month
 * day-of-week"), evaluated in UTC: '*', numbers, ranges "a-b", steps "*\/n"
 * and "a-b/n", lists "a,b", month and weekday names (JAN, MON), 7 = Sunday,
 * and the macros @yearly @annually @monthly @weekly @daily @midnight @hourly.
 * As in Vixie cron, when both day fields are restricted a day matching either
 * one fires.
 */
#ifndef ES_CRON_H
#define ES_CRON_H

#include "common/es.h"

typedef struct {
    uint64_t minutes; /* bit per minute 0..59 */
    uint32_t hours;   /* 0..23 */
    uint32_t mdays;   /* 1..31 */
    uint16_t months;  /* 1..12 */
    uint8_t wdays;    /* 0..6, Sunday = 0 */
    bool mday_any, wday_any;
} es_cron_t;

/* Parses expr; on failure returns false with the reason in why. */
bool es_cron_parse(const char *expr, es_cron_t *out, char *why, size_t whylen) ES_MUST_CHECK;

/* The first fire time strictly after after_s (Unix seconds, UTC), at a whole
 * minute; -1 if none within the next 5 years (e.g. "0 0 30 2 *"). */
int64_t es_cron_next(const es_cron_t *c, int64_t after_s);

#endif
