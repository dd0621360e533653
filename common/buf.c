#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void es_buf_reserve(es_buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = es_xrealloc(b->data, cap);
    b->cap = cap;
}

void es_buf_append(es_buf_t *b, const void *p, size_t n)
{
    es_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void es_buf_puts(es_buf_t *b, const char *s)
{
    es_buf_append(b, s, strlen(s));
}

void es_buf_putc(es_buf_t *b, char c)
{
    es_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void es_buf_printf(es_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        es_buf_append(b, small, (size_t)n);
        return;
    }
    es_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (max n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

void es_buf_json_str(es_buf_t *b, const char *s, size_t n)
{
    static const char hexdig[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    es_buf_reserve(b, n + 2);
    es_buf_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            es_buf_append(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hexdig[c >> 4], hexdig[c & 15]};
            if (c == '\n')
                es_buf_append(b, "\\n", 2);
            else if (c == '\t')
                es_buf_append(b, "\\t", 2);
            else if (c == '\r')
                es_buf_append(b, "\\r", 2);
            else
                es_buf_append(b, esc, 6);
            i++;
        } else if (c < 0x80) {
            size_t start = i;
            while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\')
                i++;
            es_buf_append(b, p + start, i - start);
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                es_buf_append(b, "\xef\xbf\xbd", 3);
                i++;
            } else {
                es_buf_append(b, p + i, l);
                i += l;
            }
        }
    }
    es_buf_putc(b, '"');
}

void es_buf_json_key(es_buf_t *b, const char *key)
{
    es_buf_puts(b, ",\"");
    es_buf_puts(b, key);
    es_buf_puts(b, "\":");
}

void es_buf_json_cstr(es_buf_t *b, const char *s)
{
    if (s == NULL)
        es_buf_append(b, "null", 4);
    else
        es_buf_json_str(b, s, strlen(s));
}

void es_buf_reset(es_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void es_buf_free(es_buf_t *b)
{
    ES_FREE(&b->data);
    b->len = b->cap = 0;
}

char *es_buf_take(es_buf_t *b)
{
    char *d = b->data ? b->data : es_xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}
