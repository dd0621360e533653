#include "api-worker/pg.h"

#include "common/log.h"
#include "common/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PGC_DOWN, PGC_CONNECTING, PGC_READY };

typedef struct es_pgop {
    struct es_pgop *next;
    es_pg_cb cb;
    void *ctx;
    PGresult *res;
    int64_t sent_ms;
    int skip; /* results of a PQsendPrepare sent ahead of the query: not the answer */
} es_pgop_t;

struct es_pgconn {
    es_pgpool_t *pool;
    int index;
    PGconn *conn;
    h2o_socket_t *sock; /* read watcher on PQsocket(conn); never owns the fd */
    int sock_fd;
    int state;
    bool need_flush;   /* PQflush returned 1: retry on the 1 ms timer */
    bool poll_writing; /* connecting and libpq waits for writability */
    bool fail_pending; /* failed inside es_pg_send: fail on the next loop turn */
    es_pgop_t *head, *tail;
    int inflight;
    int64_t next_attempt_ms;
    int backoff_ms;
    h2o_timeout_entry_t retry_entry; /* 1 ms retries of flush / connect-poll */
    uint64_t prepared;               /* bit per es_pg_stmt_t id prepared on this session */
};

struct es_pgpool {
    h2o_loop_t *loop;
    char *conninfo;
    char *app_name;
    char options[128];
    int statement_timeout_ms;
    es_pgconn_t *conns;
    int n;
    h2o_timeout_t tick; /* 250 ms: reconnects and stuck-operation checks */
    h2o_timeout_entry_t tick_entry;
    h2o_timeout_t retry; /* 1 ms */
    bool destroying;
};

static void conn_start(es_pgconn_t *c);
static void conn_fail(es_pgconn_t *c, const char *why);
static void on_readable(h2o_socket_t *sock, const char *err);

const char *es_pg_sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

/* Stops watching the fd without closing it: libpq owns it (and may already
 * have closed it after an error). */
static void unwatch(es_pgconn_t *c)
{
    if (c->sock == NULL)
        return;
    h2o_socket_export_t info;
    h2o_socket_read_stop(c->sock);
    if (h2o_socket_export(c->sock, &info) == 0)
        h2o_buffer_dispose(&info.input);
    c->sock = NULL;
    c->sock_fd = -1;
}

/* Watches PQsocket(conn) for readability; re-wraps if libpq changed sockets. */
static void watch(es_pgconn_t *c)
{
    int fd = PQsocket(c->conn);
    if (c->sock != NULL && c->sock_fd == fd)
        return;
    unwatch(c);
    if (fd < 0)
        return;
    c->sock = h2o_evloop_socket_create(c->pool->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    c->sock->data = c;
    c->sock_fd = fd;
    h2o_socket_read_start(c->sock, on_readable);
}

static void arm_retry(es_pgconn_t *c)
{
    if (!h2o_timeout_is_linked(&c->retry_entry))
        h2o_timeout_link(c->pool->loop, &c->pool->retry, &c->retry_entry);
}

static void complete_op(es_pgconn_t *c)
{
    es_pgop_t *op = c->head;
    c->head = op->next;
    if (c->head == NULL)
        c->tail = NULL;
    c->inflight--;
    op->cb(op->ctx, op->res, op->res ? NULL : "no result");
    PQclear(op->res);
    free(op);
}

/* Fails every queued operation and closes the connection; a reconnect is
 * scheduled with backoff by the tick. */
static void conn_fail(es_pgconn_t *c, const char *why)
{
    if (c->state == PGC_READY || c->inflight > 0)
        es_warn("database connection %d lost: %s", c->index, why);
    unwatch(c);
    if (h2o_timeout_is_linked(&c->retry_entry))
        h2o_timeout_unlink(&c->retry_entry);
    if (c->conn != NULL) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    c->state = PGC_DOWN;
    c->prepared = 0;
    c->need_flush = false;
    c->poll_writing = false;
    c->fail_pending = false;
    while (c->head != NULL) {
        es_pgop_t *op = c->head;
        c->head = op->next;
        c->inflight--;
        op->cb(op->ctx, NULL, "database connection lost");
        PQclear(op->res);
        free(op);
    }
    c->tail = NULL;
    c->backoff_ms = c->backoff_ms ? ES_MIN(c->backoff_ms * 2, 2000) : 100;
    c->next_attempt_ms = es_time_mono_ms() + c->backoff_ms;
}

/* Marks the connection failed without running callbacks now: es_pg_send's
 * callers must never see their callback run before es_pg_send returns. */
static void fail_later(es_pgconn_t *c)
{
    c->fail_pending = true;
    arm_retry(c);
}

static void try_flush(es_pgconn_t *c)
{
    int r = PQflush(c->conn);
    if (r < 0) {
        fail_later(c);
        return;
    }
    c->need_flush = r == 1;
    if (c->need_flush)
        arm_retry(c);
}

/* Reads every available result and completes the operations they finish. */
static void drain_results(es_pgconn_t *c)
{
    if (!PQconsumeInput(c->conn)) {
        conn_fail(c, PQerrorMessage(c->conn));
        return;
    }
    while (c->head != NULL && !PQisBusy(c->conn)) {
        PGresult *r = PQgetResult(c->conn);
        if (r == NULL)
            continue; /* end of this query's results; its sync point follows */
        switch (PQresultStatus(r)) {
        case PGRES_PIPELINE_SYNC:
            PQclear(r);
            complete_op(c);
            break;
        default:
            if (c->head->skip > 0 && PQresultStatus(r) == PGRES_COMMAND_OK) {
                c->head->skip--; /* the statement was prepared */
                PQclear(r);
            } else if (c->head->res == NULL) {
                c->head->res = r;
            } else {
                PQclear(r);
            }
            break;
        }
        if (c->state != PGC_READY)
            return; /* a callback tore the pool down */
    }
    if (PQstatus(c->conn) == CONNECTION_BAD)
        conn_fail(c, PQerrorMessage(c->conn));
}

static void setup_done(void *ctx, const PGresult *res, const char *err)
{
    es_pgconn_t *c = ctx;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        es_warn("database connection %d: session setup failed: %s", c->index,
                res ? PQresultErrorMessage(res) : err);
}

static void connected(es_pgconn_t *c)
{
    if (PQsetnonblocking(c->conn, 1) != 0 || PQenterPipelineMode(c->conn) != 1) {
        conn_fail(c, PQerrorMessage(c->conn));
        return;
    }
    c->state = PGC_READY;
    if (c->backoff_ms > 0)
        es_info("database connection %d re-established", c->index);
    c->backoff_ms = 0;
    watch(c);
    char timeout[24];
    snprintf(timeout, sizeof(timeout), "%d", c->pool->statement_timeout_ms);
    const char *params[1] = {timeout};
    if (es_pg_send(c,
                   "SELECT set_config('TimeZone', 'UTC', false),"
                   " set_config('DateStyle', 'ISO, YMD', false),"
                   " set_config('jit', 'off', false)," /* short statements: see pgsync.c */
                   " set_config('statement_timeout', $1, false)",
                   1, params, setup_done, c) != ES_OK)
        return;
}

static void connect_poll(es_pgconn_t *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->conn);
    watch(c);
    c->poll_writing = false;
    switch (st) {
    case PGRES_POLLING_OK:
        connected(c);
        break;
    case PGRES_POLLING_FAILED:
        conn_fail(c, PQerrorMessage(c->conn));
        break;
    case PGRES_POLLING_WRITING:
        c->poll_writing = true;
        arm_retry(c);
        break;
    default: /* reading: wait for the read watcher */
        break;
    }
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    es_pgconn_t *c = sock->data;
    if (c->state == PGC_CONNECTING) {
        connect_poll(c);
        return;
    }
    if (c->state != PGC_READY || c->fail_pending)
        return;
    drain_results(c);
    if (c->state == PGC_READY && c->need_flush)
        try_flush(c);
}

static void on_retry(h2o_timeout_entry_t *entry)
{
    es_pgconn_t *c = H2O_STRUCT_FROM_MEMBER(es_pgconn_t, retry_entry, entry);
    if (c->fail_pending)
        conn_fail(c, c->conn ? PQerrorMessage(c->conn) : "connection failed");
    else if (c->state == PGC_CONNECTING && c->poll_writing)
        connect_poll(c);
    else if (c->state == PGC_READY && c->need_flush)
        try_flush(c);
}

static void conn_start(es_pgconn_t *c)
{
    es_pgpool_t *p = c->pool;
    const char *keys[] = {
        "dbname",          "application_name",    "connect_timeout",  "keepalives",
        "keepalives_idle", "keepalives_interval", "keepalives_count", NULL};
    const char *vals[] = {p->conninfo, p->app_name, "10", "1", "10", "5", "3", NULL};
    c->conn = PQconnectStartParams(keys, vals, 1);
    if (c->conn == NULL || PQstatus(c->conn) == CONNECTION_BAD) {
        conn_fail(c, c->conn ? PQerrorMessage(c->conn) : "out of memory");
        return;
    }
    c->state = PGC_CONNECTING;
    connect_poll(c);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    es_pgpool_t *p = H2O_STRUCT_FROM_MEMBER(es_pgpool_t, tick_entry, entry);
    int64_t now = es_time_mono_ms();
    for (int i = 0; i < p->n; i++) {
        es_pgconn_t *c = &p->conns[i];
        if (c->state == PGC_DOWN && now >= c->next_attempt_ms) {
            conn_start(c);
        } else if (c->state == PGC_READY && c->head != NULL && p->statement_timeout_ms > 0 &&
                   now - c->head->sent_ms > p->statement_timeout_ms + 15000) {
            /* The server enforces statement_timeout; an answer this late means
             * the network ate the connection without a reset. */
            conn_fail(c, "no answer from the server within statement_timeout + 15 s");
        }
    }
    h2o_timeout_link(p->loop, &p->tick, &p->tick_entry);
}

es_pgpool_t *es_pgpool_create(h2o_loop_t *loop, const char *conninfo, int nconns,
                              int statement_timeout_ms, const char *application_name)
{
    es_pgpool_t *p = es_xcalloc(1, sizeof(*p));
    p->loop = loop;
    p->conninfo = es_xstrdup(conninfo);
    p->app_name = es_xstrdup(application_name);
    p->statement_timeout_ms = statement_timeout_ms;
    p->n = ES_MAX(nconns, 2);
    p->conns = es_xcalloc((size_t)p->n, sizeof(es_pgconn_t));
    h2o_timeout_init(loop, &p->tick, 250);
    h2o_timeout_init(loop, &p->retry, 1);
    for (int i = 0; i < p->n; i++) {
        es_pgconn_t *c = &p->conns[i];
        c->pool = p;
        c->index = i;
        c->sock_fd = -1;
        c->retry_entry.cb = on_retry;
        conn_start(c);
    }
    p->tick_entry.cb = on_tick;
    h2o_timeout_link(loop, &p->tick, &p->tick_entry);
    return p;
}

void es_pgpool_destroy(es_pgpool_t *p)
{
    if (p == NULL)
        return;
    p->destroying = true;
    for (int i = 0; i < p->n; i++) {
        es_pgconn_t *c = &p->conns[i];
        if (c->conn != NULL || c->head != NULL)
            conn_fail(c, "shutting down");
    }
    if (h2o_timeout_is_linked(&p->tick_entry))
        h2o_timeout_unlink(&p->tick_entry);
    h2o_timeout_dispose(p->loop, &p->tick);
    h2o_timeout_dispose(p->loop, &p->retry);
    free(p->conns);
    free(p->conninfo);
    free(p->app_name);
    free(p);
}

es_pgconn_t *es_pgpool_writer(es_pgpool_t *p)
{
    return &p->conns[0];
}

es_pgconn_t *es_pgpool_reader(es_pgpool_t *p)
{
    es_pgconn_t *best = NULL;
    for (int i = 1; i < p->n; i++) {
        es_pgconn_t *c = &p->conns[i];
        if (c->state == PGC_READY && (best == NULL || c->inflight < best->inflight))
            best = c;
    }
    return best;
}

bool es_pgconn_ready(const es_pgconn_t *c)
{
    return c->state == PGC_READY;
}

int es_pgconn_inflight(const es_pgconn_t *c)
{
    return c->inflight;
}

bool es_pgpool_all_ready(const es_pgpool_t *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->conns[i].state != PGC_READY)
            return false;
    return true;
}

bool es_pgpool_any_ready(const es_pgpool_t *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->conns[i].state == PGC_READY)
            return true;
    return false;
}

int es_pgpool_inflight(const es_pgpool_t *p)
{
    int n = 0;
    for (int i = 0; i < p->n; i++)
        n += p->conns[i].inflight;
    return n;
}

static es_rc_t enqueue(es_pgconn_t *c, es_pg_cb cb, void *ctx, int skip);

es_rc_t es_pg_send(es_pgconn_t *c, const char *sql, int nparams, const char *const *params,
                   es_pg_cb cb, void *ctx)
{
    if (c->state != PGC_READY || c->fail_pending || c->pool->destroying)
        return ES_AGAIN;
    if (!PQsendQueryParams(c->conn, sql, nparams, NULL, params, NULL, NULL, 0) ||
        !PQpipelineSync(c->conn)) {
        /* This op is not queued; the ones before it fail with the connection. */
        fail_later(c);
        return ES_AGAIN;
    }
    return enqueue(c, cb, ctx, 0);
}

static es_rc_t send_prepared(es_pgconn_t *c, const es_pg_stmt_t *stmt, const char *const *params,
                             const int *lengths, const int *formats, es_pg_cb cb, void *ctx);

es_rc_t es_pg_send_prepared(es_pgconn_t *c, const es_pg_stmt_t *stmt, const char *const *params,
                            es_pg_cb cb, void *ctx)
{
    return send_prepared(c, stmt, params, NULL, NULL, cb, ctx);
}

es_rc_t es_pg_send_prepared_bin(es_pgconn_t *c, const es_pg_stmt_t *stmt, const char *const *params,
                                const int *lengths, es_pg_cb cb, void *ctx)
{
    int formats[32];
    if (stmt->nparams > (int)ES_ARRAY_LEN(formats))
        return ES_AGAIN;
    for (int i = 0; i < stmt->nparams; i++)
        formats[i] = 1;
    return send_prepared(c, stmt, params, lengths, formats, cb, ctx);
}

static void put_be32(es_buf_t *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    es_buf_append(b, x, 4);
}

void es_pgarr_begin(es_pgarr_t *a, uint32_t elem_oid, int n, bool has_nulls)
{
    a->b = (es_buf_t)ES_BUF_INIT;
    put_be32(&a->b, 1); /* dimensions */
    put_be32(&a->b, has_nulls ? 1 : 0);
    put_be32(&a->b, elem_oid);
    put_be32(&a->b, (uint32_t)n);
    put_be32(&a->b, 1); /* lower bound */
}

void es_pgarr_text(es_pgarr_t *a, const char *s)
{
    if (s == NULL) {
        put_be32(&a->b, UINT32_MAX); /* -1: NULL */
        return;
    }
    size_t n = strlen(s);
    put_be32(&a->b, (uint32_t)n);
    es_buf_append(&a->b, s, n);
}

void es_pgarr_jsonb(es_pgarr_t *a, const char *json_text)
{
    size_t n = strlen(json_text);
    put_be32(&a->b, (uint32_t)(n + 1));
    es_buf_putc(&a->b, 1); /* jsonb's binary format version */
    es_buf_append(&a->b, json_text, n);
}

void es_pgarr_timestamptz(es_pgarr_t *a, int64_t unix_us)
{
    /* Microseconds since 2000-01-01 00:00 UTC, as a big-endian int64. */
    uint64_t v = (uint64_t)(unix_us - INT64_C(946684800000000));
    put_be32(&a->b, 8);
    put_be32(&a->b, (uint32_t)(v >> 32));
    put_be32(&a->b, (uint32_t)v);
}

static es_rc_t send_prepared(es_pgconn_t *c, const es_pg_stmt_t *stmt, const char *const *params,
                             const int *lengths, const int *formats, es_pg_cb cb, void *ctx)
{
    if (c->state != PGC_READY || c->fail_pending || c->pool->destroying)
        return ES_AGAIN;
    char name[16];
    snprintf(name, sizeof(name), "es%d", stmt->id);
    int skip = 0;
    if (!(c->prepared & (1ull << stmt->id))) {
        if (!PQsendPrepare(c->conn, name, stmt->sql, stmt->nparams, NULL)) {
            fail_later(c);
            return ES_AGAIN;
        }
        c->prepared |= 1ull << stmt->id;
        skip = 1;
    }
    if (!PQsendQueryPrepared(c->conn, name, stmt->nparams, params, lengths, formats, 0) ||
        !PQpipelineSync(c->conn)) {
        fail_later(c);
        return ES_AGAIN;
    }
    return enqueue(c, cb, ctx, skip);
}

static es_rc_t enqueue(es_pgconn_t *c, es_pg_cb cb, void *ctx, int skip)
{
    es_pgop_t *op = es_xcalloc(1, sizeof(*op));
    op->skip = skip;
    op->cb = cb;
    op->ctx = ctx;
    op->sent_ms = es_time_mono_ms();
    if (c->tail)
        c->tail->next = op;
    else
        c->head = op;
    c->tail = op;
    c->inflight++;
    if (!c->need_flush)
        try_flush(c);
    return ES_OK;
}
