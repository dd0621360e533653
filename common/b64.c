#include "common/b64.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

char *es_b64_encode(const unsigned char *in, size_t n, bool url)
{
    char *out = es_xmalloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    if (url) {
        while (len > 0 && out[len - 1] == '=')
            len--;
        out[len] = '\0';
        for (int i = 0; i < len; i++) {
            if (out[i] == '+')
                out[i] = '-';
            else if (out[i] == '/')
                out[i] = '_';
        }
    }
    return out;
}

unsigned char *es_b64_decode(const char *s, size_t n, size_t *outlen)
{
    /* Normalise to the standard alphabet with padding. */
    size_t padded = (n + 3) / 4 * 4;
    char *norm = es_xmalloc(padded + 1);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '+' || c == '/' || c == '=')) {
            free(norm);
            return NULL;
        }
        norm[i] = c;
    }
    for (size_t i = n; i < padded; i++)
        norm[i] = '=';
    norm[padded] = '\0';
    size_t pad = 0;
    while (pad < padded && norm[padded - 1 - pad] == '=')
        pad++;
    /* '=' only as the final padding, at most two of them. */
    if (pad > 2 || memchr(norm, '=', padded - pad) != NULL) {
        free(norm);
        return NULL;
    }
    unsigned char *out = es_xmalloc(padded / 4 * 3 + 1);
    int len = EVP_DecodeBlock(out, (const unsigned char *)norm, (int)padded);
    free(norm);
    if (len < 0) {
        free(out);
        return NULL;
    }
    *outlen = (size_t)len - pad;
    return out;
}
