/*
 * auth.h - who may call what (auth.mode): "none" lets everyone in as an
 * administrator; "gateway" trusts the user and role headers an API gateway
 * set; "jwt" verifies a bearer token (HS256 or RS256). Public routes need
 * nothing; others need an identified caller (401), admin routes the admin
 * role (403). A caller without it is kept to its own events (args->user).
 */
#ifndef ES_API_AUTH_H
#define ES_API_AUTH_H

#include "api-worker/routes.h"
#include "common/es.h"

/* Loads the verifier (jwt mode) once per worker; false with why. */
bool es_auth_setup(char *why, size_t whylen);

/* Checks req against access; fills args->user. Answers 401/403 itself and
 * returns false when the caller may not go on. */
bool es_auth_check(h2o_req_t *req, es_access_t access, es_route_args_t *args);

#endif
