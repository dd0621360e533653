/*
 * jwt.h - verification of JSON Web Tokens signed HS256 (shared secret) or
 * RS256 (RSA public key, PEM), with OpenSSL. Only the compact serialization;
 * "alg" must be the one configured (never "none"); exp and nbf are enforced
 * with 60 s of leeway; iss and aud when configured.
 */
#ifndef ES_JWT_H
#define ES_JWT_H

#include "common/es.h"

#include <jansson.h>

typedef struct es_jwt_verifier es_jwt_verifier_t;

/* A verifier for HS256 with secret, or RS256 with the PEM public key in
 * public_key_file (one of the two non-empty). issuer/audience may be "" (not
 * checked). NULL with why filled when the key cannot be loaded. */
es_jwt_verifier_t *es_jwt_verifier_new(const char *secret, const char *public_key_file,
                                       const char *issuer, const char *audience, char *why,
                                       size_t whylen);
void es_jwt_verifier_free(es_jwt_verifier_t *v);

/* Verifies token (n bytes) at time now_s; returns its claims (new reference)
 * or NULL with the reason in why. */
json_t *es_jwt_verify(const es_jwt_verifier_t *v, const char *token, size_t n, int64_t now_s,
                      char *why, size_t whylen);

#endif
