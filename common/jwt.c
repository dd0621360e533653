#include "common/jwt.h"

#include "common/b64.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEEWAY_S 60

struct es_jwt_verifier {
    char *secret;   /* HS256 */
    EVP_PKEY *pkey; /* RS256 */
    char *issuer;
    char *audience;
};

es_jwt_verifier_t *es_jwt_verifier_new(const char *secret, const char *public_key_file,
                                       const char *issuer, const char *audience, char *why,
                                       size_t whylen)
{
    es_jwt_verifier_t *v = es_xcalloc(1, sizeof(*v));
    v->issuer = es_xstrdup(issuer ? issuer : "");
    v->audience = es_xstrdup(audience ? audience : "");
    if (public_key_file != NULL && public_key_file[0] != '\0') {
        FILE *f = fopen(public_key_file, "r");
        if (f != NULL) {
            v->pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
            fclose(f);
        }
        if (v->pkey == NULL) {
            snprintf(why, whylen, "cannot read an RSA public key (PEM) from %s", public_key_file);
            es_jwt_verifier_free(v);
            return NULL;
        }
    } else if (secret != NULL && secret[0] != '\0') {
        v->secret = es_xstrdup(secret);
    } else {
        snprintf(why, whylen, "no JWT secret or public key configured");
        es_jwt_verifier_free(v);
        return NULL;
    }
    return v;
}

void es_jwt_verifier_free(es_jwt_verifier_t *v)
{
    if (v == NULL)
        return;
    free(v->secret);
    EVP_PKEY_free(v->pkey);
    free(v->issuer);
    free(v->audience);
    free(v);
}

static json_t *decode_part(const char *s, size_t n)
{
    size_t len = 0;
    unsigned char *raw = es_b64_decode(s, n, &len);
    if (raw == NULL)
        return NULL;
    json_t *j = json_loadb((const char *)raw, len, 0, NULL);
    free(raw);
    return j;
}

static bool signature_ok(const es_jwt_verifier_t *v, const char *signed_part, size_t n,
                         const unsigned char *sig, size_t siglen)
{
    if (v->secret != NULL) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        if (HMAC(EVP_sha256(), v->secret, (int)strlen(v->secret), (const unsigned char *)signed_part,
                 n, mac, &maclen) == NULL)
            return false;
        return maclen == siglen && CRYPTO_memcmp(mac, sig, siglen) == 0;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, v->pkey) == 1 &&
              EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)signed_part, n) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static bool audience_ok(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    const json_t *a;
    json_array_foreach(aud, i, a)
    {
        if (json_is_string(a) && strcmp(json_string_value(a), want) == 0)
            return true;
    }
    return false;
}

json_t *es_jwt_verify(const es_jwt_verifier_t *v, const char *token, size_t n, int64_t now_s,
                      char *why, size_t whylen)
{
    const char *dot1 = memchr(token, '.', n);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL) {
        snprintf(why, whylen, "not a JWT");
        return NULL;
    }
    json_t *header = decode_part(token, (size_t)(dot1 - token));
    const char *alg = json_string_value(json_object_get(header, "alg"));
    const char *want = v->secret ? "HS256" : "RS256";
    if (alg == NULL || strcmp(alg, want) != 0) {
        snprintf(why, whylen, "token algorithm must be %s", want);
        json_decref(header);
        return NULL;
    }
    json_decref(header);
    size_t siglen = 0;
    unsigned char *sig = es_b64_decode(dot2 + 1, n - (size_t)(dot2 + 1 - token), &siglen);
    bool ok = sig != NULL && signature_ok(v, token, (size_t)(dot2 - token), sig, siglen);
    free(sig);
    if (!ok) {
        snprintf(why, whylen, "bad token signature");
        return NULL;
    }
    json_t *claims = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!json_is_object(claims)) {
        snprintf(why, whylen, "token claims are not a JSON object");
        json_decref(claims);
        return NULL;
    }
    const json_t *exp = json_object_get(claims, "exp");
    const json_t *nbf = json_object_get(claims, "nbf");
    const char *problem = NULL;
    if (json_is_number(exp) && now_s > (int64_t)json_number_value(exp) + LEEWAY_S)
        problem = "token expired";
    else if (json_is_number(nbf) && now_s + LEEWAY_S < (int64_t)json_number_value(nbf))
        problem = "token not valid yet";
    else if (v->issuer[0] && (!json_is_string(json_object_get(claims, "iss")) ||
                              strcmp(json_string_value(json_object_get(claims, "iss")),
                                     v->issuer) != 0))
        problem = "token issuer not accepted";
    else if (v->audience[0] && !audience_ok(json_object_get(claims, "aud"), v->audience))
        problem = "token audience not accepted";
    if (problem != NULL) {
        snprintf(why, whylen, "%s", problem);
        json_decref(claims);
        return NULL;
    }
    return claims;
}
