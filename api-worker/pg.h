/*
 * pg.h - asynchronous PostgreSQL connections on the worker's h2o loop.
 *
 * Never blocks the loop: connections are opened with PQconnectStartParams /
 * PQconnectPoll, queries are sent in libpq pipeline mode (one query and one
 * sync point per operation, so each operation is its own transaction and
 * several can be in flight on one connection), and results are read when the
 * loop says the socket is readable. A lost connection fails every queued
 * operation (callback with res == NULL) and is re-opened with backoff; while a
 * connection is down es_pg_send answers ES_AGAIN at once so callers can reply
 * 503 instead of waiting.
 *
 * Connection 0 is the writer (group commit); the others serve reads, so a
 * slow query never sits in front of a commit.
 */
#ifndef ES_API_PG_H
#define ES_API_PG_H

#include "common/buf.h"
#include "common/es.h"

#include <h2o.h>
#include <libpq-fe.h>

typedef struct es_pgpool es_pgpool_t;
typedef struct es_pgconn es_pgconn_t;

/* Completion of one operation, on the loop thread. res is the first result of
 * the query (PGRES_TUPLES_OK, PGRES_COMMAND_OK or PGRES_FATAL_ERROR) and is
 * freed by the pool when the callback returns; res is NULL when the
 * connection was lost first, and err then says why. */
typedef void (*es_pg_cb)(void *ctx, const PGresult *res, const char *err);

/* Creates nconns connections (>= 2) and starts connecting them. Session
 * settings: TimeZone UTC, DateStyle ISO, the given statement_timeout. */
es_pgpool_t *es_pgpool_create(h2o_loop_t *loop, const char *conninfo, int nconns,
                              int statement_timeout_ms, const char *application_name);
/* Closes every connection; pending operations get their callback (res NULL). */
void es_pgpool_destroy(es_pgpool_t *pool);

/* The writer connection (always the same one). */
es_pgconn_t *es_pgpool_writer(es_pgpool_t *pool);
/* The ready reader with the fewest operations in flight, or NULL if none is up. */
es_pgconn_t *es_pgpool_reader(es_pgpool_t *pool);
bool es_pgconn_ready(const es_pgconn_t *c);
/* Operations queued or in flight on this connection. */
int es_pgconn_inflight(const es_pgconn_t *c);
/* True when every connection is ready. */
bool es_pgpool_all_ready(const es_pgpool_t *pool);
/* True when at least one connection is ready. */
bool es_pgpool_any_ready(const es_pgpool_t *pool);
/* Operations in flight on all connections. */
int es_pgpool_inflight(const es_pgpool_t *pool);

/* Sends sql with text parameters (copied by libpq before return). Returns
 * ES_OK (cb will be called exactly once), or ES_AGAIN when c is not connected
 * (cb will not be called). */
es_rc_t es_pg_send(es_pgconn_t *c, const char *sql, int nparams, const char *const *params,
                   es_pg_cb cb, void *ctx) ES_MUST_CHECK;

/* A statement prepared once per connection and then executed by name: no
 * parsing or planning on the hot path. id is unique per statement, < 64. */
typedef struct {
    int id;
    const char *sql;
    int nparams;
} es_pg_stmt_t;

/* Like es_pg_send for a prepared statement (prepares it first on this
 * connection when needed, in the same round trip). */
es_rc_t es_pg_send_prepared(es_pgconn_t *c, const es_pg_stmt_t *stmt, const char *const *params,
                            es_pg_cb cb, void *ctx) ES_MUST_CHECK;
/* The same with every parameter in binary format, lengths[i] bytes each
 * (results still in text). */
es_rc_t es_pg_send_prepared_bin(es_pgconn_t *c, const es_pg_stmt_t *stmt, const char *const *params,
                                const int *lengths, es_pg_cb cb, void *ctx) ES_MUST_CHECK;

/* A one-dimensional array parameter in PostgreSQL's binary format (what
 * array_send writes): its header, then each element as a length and bytes. */
typedef struct {
    es_buf_t b;
} es_pgarr_t;
/* Starts an array of n elements of type elem_oid (25 text, 3802 jsonb, 1184
 * timestamptz); has_nulls: elements may be NULL (PostgreSQL reads the flag
 * only as a hint and finds the NULLs itself). */
void es_pgarr_begin(es_pgarr_t *a, uint32_t elem_oid, int n, bool has_nulls);
void es_pgarr_text(es_pgarr_t *a, const char *s); /* NULL: a NULL element */
void es_pgarr_jsonb(es_pgarr_t *a, const char *json_text);
void es_pgarr_timestamptz(es_pgarr_t *a, int64_t unix_us);

/* SQLSTATE of an error result ("" if none). */
const char *es_pg_sqlstate(const PGresult *res);

#endif
