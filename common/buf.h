/*
 * buf.h - a growable byte buffer for building responses, SQL parameters and
 * JSON text without intermediate trees.
 */
#ifndef ES_BUF_H
#define ES_BUF_H

#include "common/es.h"

typedef struct {
    char *data; /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
} es_buf_t;

#define ES_BUF_INIT {NULL, 0, 0}

void es_buf_reserve(es_buf_t *b, size_t extra);
void es_buf_append(es_buf_t *b, const void *p, size_t n);
void es_buf_puts(es_buf_t *b, const char *s);
void es_buf_putc(es_buf_t *b, char c);
void es_buf_printf(es_buf_t *b, const char *fmt, ...) ES_PRINTF(2, 3);
/* Appends s (n bytes) as a JSON string literal, quotes included. Invalid UTF-8
 * bytes are replaced by U+FFFD so the output is always valid JSON. */
void es_buf_json_str(es_buf_t *b, const char *s, size_t n);
/* Appends "null" for NULL, else the JSON string. */
void es_buf_json_cstr(es_buf_t *b, const char *s);
/* Appends ,"key": for the next member of an object (key needs no escaping). */
void es_buf_json_key(es_buf_t *b, const char *key);
void es_buf_reset(es_buf_t *b);
void es_buf_free(es_buf_t *b);
/* Hands the bytes to the caller (who frees them) and resets b. */
char *es_buf_take(es_buf_t *b);

#endif
