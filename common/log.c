#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static es_log_level_t g_level = ES_LOG_INFO;
static bool g_json = true;
static char g_role[16] = "main";

static const char *const level_names[] = {"debug", "info", "warn", "error", "fatal"};

void es_log_setup(es_log_level_t level, bool json, const char *role)
{
    g_level = level;
    g_json = json;
    es_strlcpy(g_role, role, sizeof(g_role));
}

bool es_log_level_parse(const char *s, es_log_level_t *out)
{
    static const struct {
        const char *name;
        es_log_level_t level;
    } names[] = {{"debug", ES_LOG_DEBUG}, {"info", ES_LOG_INFO},   {"warn", ES_LOG_WARN},
                 {"warning", ES_LOG_WARN}, {"error", ES_LOG_ERROR}, {"critical", ES_LOG_FATAL}};
    for (size_t i = 0; i < ES_ARRAY_LEN(names); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return true;
        }
    }
    return false;
}

bool es_log_enabled(es_log_level_t level)
{
    return level >= g_level;
}

/* Appends s JSON-escaped to buf at *pos (bounded by cap). */
static void put_escaped(char *buf, size_t cap, size_t *pos, const char *s)
{
    for (; *s && *pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[(*pos)++] = '\\';
            buf[(*pos)++] = (char)c;
        } else if (c == '\n') {
            buf[(*pos)++] = '\\';
            buf[(*pos)++] = 'n';
        } else if (c < 0x20) {
            *pos += (size_t)snprintf(buf + *pos, cap - *pos, "\\u%04x", c);
        } else {
            buf[(*pos)++] = (char)c;
        }
    }
}

void es_log_write(es_log_level_t level, const char *request_id, const char *fmt, ...)
{
    if (level < g_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t w = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof(when) - w, ".%03ldZ", ts.tv_nsec / 1000000);

    char line[4096];
    size_t pos = 0;
    if (g_json) {
        pos += (size_t)snprintf(line, sizeof(line),
                                "{\"ts\":\"%s\",\"level\":\"%s\",\"service\":\"" ES_SERVICE_NAME
                                "\",\"role\":\"%s\",\"pid\":%d,",
                                when, level_names[level], g_role, (int)getpid());
        if (request_id != NULL) {
            pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"request_id\":\"");
            put_escaped(line, sizeof(line), &pos, request_id);
            pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\",");
        }
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"msg\":\"");
        put_escaped(line, sizeof(line) - 3, &pos, msg);
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"}\n");
    } else {
        pos = (size_t)snprintf(line, sizeof(line), "%s %-5s %s[%d] %s%s%s\n", when,
                               level_names[level], g_role, (int)getpid(),
                               request_id ? request_id : "", request_id ? " " : "", msg);
    }
    if (pos >= sizeof(line))
        pos = sizeof(line) - 1;
    ssize_t rc = write(STDERR_FILENO, line, pos);
    (void)rc;
}
