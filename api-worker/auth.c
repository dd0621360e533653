#include "api-worker/auth.h"

#include "api-worker/http.h"
#include "api-worker/worker.h"
#include "common/jwt.h"
#include "common/timeutil.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static es_jwt_verifier_t *verifier;

bool es_auth_setup(char *why, size_t whylen)
{
    const es_config_t *cfg = es_api->cfg;
    if (strcmp(cfg->auth.mode, "jwt") != 0)
        return true;
    verifier = es_jwt_verifier_new(cfg->auth.jwt_secret, cfg->auth.jwt_public_key_file,
                                   cfg->auth.jwt_issuer, cfg->auth.jwt_audience, why, whylen);
    return verifier != NULL;
}

/* True when the comma-separated list has role. */
static bool has_role(const char *list, size_t n, const char *role)
{
    size_t rl = strlen(role);
    const char *p = list, *end = list + n;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ','))
            p++;
        const char *q = p;
        while (q < end && *q != ',')
            q++;
        const char *t = q;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == rl && strncasecmp(p, role, rl) == 0)
            return true;
        p = q;
    }
    return false;
}

static bool claims_have_role(const json_t *claims, const char *role)
{
    const json_t *r = json_object_get(claims, "role");
    if (json_is_string(r) && has_role(json_string_value(r), json_string_length(r), role))
        return true;
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(claims, "roles"), i, v)
    {
        if (json_is_string(v) && strcasecmp(json_string_value(v), role) == 0)
            return true;
    }
    return false;
}

bool es_auth_check(h2o_req_t *req, es_access_t access, es_route_args_t *args)
{
    const es_config_t *cfg = es_api->cfg;
    args->user = NULL;
    if (access == ES_PUBLIC || strcmp(cfg->auth.mode, "none") == 0)
        return true;
    char user[256] = "";
    bool admin = false;
    if (strcmp(cfg->auth.mode, "gateway") == 0) {
        char name[128];
        size_t len, rlen;
        snprintf(name, sizeof(name), "%s", cfg->auth.user_header);
        for (char *c = name; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c); /* h2o keeps names lowercase */
        const char *u = es_http_header(req, name, &len);
        snprintf(name, sizeof(name), "%s", cfg->auth.role_header);
        for (char *c = name; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        const char *roles = es_http_header(req, name, &rlen);
        if (u == NULL || len == 0 || len >= sizeof(user)) {
            char msg[200];
            snprintf(msg, sizeof(msg), "%s: missing (set by the API gateway)",
                     cfg->auth.user_header);
            es_http_error(req, 401, msg);
            return false;
        }
        memcpy(user, u, len);
        user[len] = '\0';
        admin = roles != NULL && has_role(roles, rlen, cfg->auth.admin_role);
    } else {
        size_t len;
        const char *h = es_http_header(req, "authorization", &len);
        if (h == NULL || len < 8 || strncasecmp(h, "Bearer ", 7) != 0) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                           H2O_STRLIT("Bearer"));
            es_http_error(req, 401, "Authorization: a Bearer token is required");
            return false;
        }
        char why[128];
        json_t *claims = es_jwt_verify(verifier, h + 7, len - 7, es_time_now_us() / 1000000, why,
                                       sizeof(why));
        const json_t *sub = claims ? json_object_get(claims, "sub") : NULL;
        if (!json_is_string(sub))
            sub = claims ? json_object_get(claims, "user_id") : NULL;
        if (claims == NULL || !json_is_string(sub) || json_string_length(sub) >= sizeof(user)) {
            char msg[200];
            snprintf(msg, sizeof(msg), "Authorization: %s",
                     claims == NULL ? why : "the token names no user (sub)");
            json_decref(claims);
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                           H2O_STRLIT("Bearer"));
            es_http_error(req, 401, msg);
            return false;
        }
        es_strlcpy(user, json_string_value(sub), sizeof(user));
        admin = claims_have_role(claims, cfg->auth.admin_role);
        json_decref(claims);
    }
    if (access == ES_ADMIN && !admin) {
        es_http_error(req, 403, "this needs the admin role");
        return false;
    }
    if (!admin)
        args->user = h2o_strdup(&req->pool, user, strlen(user)).base;
    return true;
}
