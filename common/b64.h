/*
 * b64.h - base64 (RFC 4648) through OpenSSL's EVP block codec.
 */
#ifndef ES_B64_H
#define ES_B64_H

#include "common/es.h"

/* Encodes n bytes; url=true gives the unpadded URL-safe alphabet. Caller frees. */
char *es_b64_encode(const unsigned char *in, size_t n, bool url);

/* Decodes s (standard or URL-safe alphabet, padding optional) into a new buffer
 * (caller frees) of *outlen bytes; NULL when s is not base64. */
unsigned char *es_b64_decode(const char *s, size_t n, size_t *outlen);

#endif
