/*
 * dbreq.h - one read-only statement on behalf of an HTTP request: sent on a
 * reader connection, answered 503 when the database is unavailable and 500
 * (details only in the log) when the statement fails, otherwise handed to the
 * caller's callback to render.
 */
#ifndef ES_API_DBREQ_H
#define ES_API_DBREQ_H

#include <h2o.h>
#include <libpq-fe.h>

/* Renders a successful result (PGRES_TUPLES_OK) and must answer req. user is
 * the pointer given to es_dbreq_read, freed with free() afterwards. */
typedef void (*es_dbreq_cb)(h2o_req_t *req, const PGresult *res, void *user);

/* Sends sql with text params (copied). Answers req itself on failure. */
void es_dbreq_read(h2o_req_t *req, const char *sql, int nparams, const char *const *params,
                   es_dbreq_cb cb, void *user);
/* The same, with user released by free_user (instead of free) in every case. */
void es_dbreq_read_ex(h2o_req_t *req, const char *sql, int nparams, const char *const *params,
                      es_dbreq_cb cb, void *user, void (*free_user)(void *));

#endif
