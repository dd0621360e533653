#include "common/b64.h"
#include "common/jwt.h"

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A compact HS256 token of the JSON claims, signed with secret. */
static char *hs256(const char *header, const char *claims, const char *secret)
{
    char *h = es_b64_encode((const unsigned char *)header, strlen(header), true);
    char *c = es_b64_encode((const unsigned char *)claims, strlen(claims), true);
    char *signing = NULL;
    cr_assert(asprintf(&signing, "%s.%s", h, c) > 0);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)signing,
         strlen(signing), mac, &len);
    char *s = es_b64_encode(mac, len, true);
    char *token = NULL;
    cr_assert(asprintf(&token, "%s.%s", signing, s) > 0);
    free(h);
    free(c);
    free(s);
    free(signing);
    return token;
}

#define HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static json_t *verify(es_jwt_verifier_t *v, const char *token, char *why)
{
    return es_jwt_verify(v, token, strlen(token), 2000000000, why, 128);
}

Test(jwt, hs256_valid_token_gives_claims)
{
    char why[128];
    es_jwt_verifier_t *v = es_jwt_verifier_new("s3cret", "", "", "", why, sizeof(why));
    cr_assert_not_null(v, "%s", why);
    char *t = hs256(HEADER, "{\"sub\":\"alice\",\"role\":\"admin\",\"exp\":2000000100}", "s3cret");
    json_t *claims = verify(v, t, why);
    cr_assert_not_null(claims, "%s", why);
    cr_assert_str_eq(json_string_value(json_object_get(claims, "sub")), "alice");
    json_decref(claims);
    free(t);
    es_jwt_verifier_free(v);
}

Test(jwt, rejections_say_why)
{
    char why[128];
    es_jwt_verifier_t *v = es_jwt_verifier_new("s3cret", "", "issuer-a", "aud-b", why, sizeof(why));
    struct {
        const char *header, *claims, *secret, *reason;
    } cases[] = {
        {HEADER, "{\"sub\":\"a\",\"iss\":\"issuer-a\",\"aud\":\"aud-b\"}", "other", "signature"},
        {"{\"alg\":\"none\"}", "{\"sub\":\"a\"}", "s3cret", "algorithm"},
        {"{\"alg\":\"RS256\"}", "{\"sub\":\"a\"}", "s3cret", "algorithm"},
        {HEADER, "{\"sub\":\"a\",\"iss\":\"issuer-a\",\"aud\":\"aud-b\",\"exp\":1999999000}",
         "s3cret", "expired"},
        {HEADER, "{\"sub\":\"a\",\"iss\":\"issuer-a\",\"aud\":\"aud-b\",\"nbf\":2000001000}",
         "s3cret", "not valid yet"},
        {HEADER, "{\"sub\":\"a\",\"iss\":\"other\",\"aud\":\"aud-b\"}", "s3cret", "issuer"},
        {HEADER, "{\"sub\":\"a\",\"iss\":\"issuer-a\",\"aud\":[\"x\",\"y\"]}", "s3cret", "audience"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = hs256(cases[i].header, cases[i].claims, cases[i].secret);
        json_t *claims = verify(v, t, why);
        cr_assert_null(claims, "case %zu accepted", i);
        cr_assert(strstr(why, cases[i].reason) != NULL, "case %zu: %s", i, why);
        free(t);
    }
    char *t = hs256(HEADER, "{\"sub\":\"a\",\"iss\":\"issuer-a\",\"aud\":[\"x\",\"aud-b\"]}",
                    "s3cret");
    json_t *ok = verify(v, t, why);
    cr_assert_not_null(ok, "audience in a list: %s", why);
    json_decref(ok);
    free(t);
    cr_assert_null(es_jwt_verify(v, "garbage", 7, 0, why, sizeof(why)));
    es_jwt_verifier_free(v);
}

Test(jwt, needs_a_key)
{
    char why[128];
    cr_assert_null(es_jwt_verifier_new("", "", "", "", why, sizeof(why)));
    cr_assert_null(es_jwt_verifier_new("", "/nonexistent.pem", "", "", why, sizeof(why)));
    cr_assert(strstr(why, "/nonexistent.pem") != NULL, "%s", why);
}
