/*
 * timeutil.h - wall-clock time as int64 microseconds since the Unix epoch
 * (UTC), ISO 8601 parsing and formatting.
 */
#ifndef ES_TIMEUTIL_H
#define ES_TIMEUTIL_H

#include "common/es.h"

#include <time.h>

#define ES_TIME_BUFLEN 40

/* Current wall-clock time in microseconds (CLOCK_REALTIME). */
int64_t es_time_now_us(void);
/* Monotonic clock in milliseconds, for deadlines and intervals. */
int64_t es_time_mono_ms(void);

/* The CLOCK_REALTIME time ms from now, as pthread_cond_timedwait wants it. */
struct timespec es_time_realtime_in(int64_t ms);

/* Parses an ISO 8601 / RFC 3339 date-time: "YYYY-MM-DD[T| ]HH:MM[:SS[.frac]]" with
 * an optional "Z", "+HH", "+HH:MM" or "+HHMM" offset (none means UTC), or a bare
 * date "YYYY-MM-DD" (midnight UTC). PostgreSQL's timestamptz text output parses
 * too. Returns false on anything else, including out-of-range fields. */
bool es_time_parse(const char *s, size_t len, int64_t *out_us) ES_MUST_CHECK;

/* Formats us as "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (fraction only when non-zero)
 * into buf (ES_TIME_BUFLEN bytes). Returns the length written. */
size_t es_time_format(int64_t us, char *buf);

#endif
