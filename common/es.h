/*
 * es.h - what every module of event_service shares: return codes, the
 * out-of-memory policy and a few small macros.
 *
 * Out-of-memory policy: allocation failure aborts the process with a message
 * (es_xmalloc and friends). A worker that dies is restarted by the master, and
 * nothing accepted lives only in a worker's memory (201 is sent after commit),
 * so aborting is both safe and keeps every call site free of NULL checks.
 */
#ifndef ES_ES_H
#define ES_ES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef ES_VERSION
#define ES_VERSION "1.0.0"
#endif
#define ES_SERVICE_NAME "event_service"

/* The one set of return codes used across the codebase. */
typedef enum {
    ES_OK = 0,
    ES_ERR = -1,       /* generic failure; details were logged or put in an errbuf */
    ES_AGAIN = -2,     /* temporary: try later (dependency down, would block) */
    ES_NOT_FOUND = -3, /* the thing asked for does not exist */
    ES_CONFLICT = -4,  /* exists already / version mismatch */
    ES_INVALID = -5,   /* input rejected by validation */
} es_rc_t;

#define ES_MUST_CHECK __attribute__((warn_unused_result))
#define ES_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define ES_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define ES_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ES_MAX(a, b) ((a) > (b) ? (a) : (b))
#define ES_XSTR(x) #x
#define ES_STR(x) ES_XSTR(x) /* expands x, then quotes it */

/* Exit code of a worker or the master meaning "fatal, do not respawn". */
#define ES_EXIT_FATAL 78 /* EX_CONFIG */

/* Allocation wrappers: never return NULL (abort on exhaustion). */
void *es_xmalloc(size_t n);
void *es_xcalloc(size_t count, size_t n);
void *es_xrealloc(void *p, size_t n);
char *es_xstrdup(const char *s);
char *es_xstrndup(const char *s, size_t n);
/* printf into a new heap string; never NULL. */
char *es_xasprintf(const char *fmt, ...) ES_PRINTF(1, 2);

/* Frees *pp and sets it to NULL. */
#define ES_FREE(pp)                                                                                \
    do {                                                                                           \
        free(*(pp));                                                                               \
        *(pp) = NULL;                                                                              \
    } while (0)

/* Copies src into dst (capacity cap, cap > 0), always NUL-terminated. Returns
 * false when src did not fit (dst then holds a truncated copy). */
bool es_strlcpy(char *dst, const char *src, size_t cap);

/* Parses a whole decimal integer (optional sign); false on junk, overflow or an
 * empty string. The replacement for atoi/strtol at the edges. */
bool es_parse_int64(const char *s, size_t len, int64_t *out) ES_MUST_CHECK;

#endif
