#include "api-worker/ingest.h"

#include "common/event_row.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bound of events written in one transaction. */
#define GROUP_MAX_EVENTS 2000

static const es_pg_stmt_t ingest_stmt = {1, "SELECT * FROM event.ingest($1::jsonb)", 1};
/* The set-based path for client-named events (a client event_id, an
 * Idempotency-Key, a messageId) when every such request holds one event and
 * none appends to a stream: insert what is new, and return, for an id that
 * already existed, the stored row and its content fingerprint, so the caller
 * answers 200 (same content) or 409. An id taken by a transaction that
 * committed meanwhile shows neither: that request is written again alone. */
static const es_pg_stmt_t ingest_ids_stmt = {
    3,
    "WITH src AS (SELECT x.* FROM jsonb_to_recordset($1::jsonb) AS x(seq int, event_id text, "
    "event_type text, event_source text, event_category text, user_id text, session_id text, "
    "organization_id text, device_id text, correlation_id text, data jsonb, metadata jsonb, "
    "context jsonb, properties jsonb, \"timestamp\" timestamptz, created_at timestamptz, "
    "request_hash text)), "
    "ins AS (INSERT INTO event.events AS t (event_id, event_type, event_source, event_category, "
    "user_id, session_id, organization_id, device_id, correlation_id, data, metadata, context, "
    "properties, timestamp, created_at, updated_at, request_hash) "
    "SELECT s.event_id, s.event_type, s.event_source, s.event_category, s.user_id, s.session_id, "
    "s.organization_id, s.device_id, s.correlation_id, s.data, s.metadata, s.context, "
    "s.properties, s.timestamp, s.created_at, s.created_at, s.request_hash FROM src s "
    "WHERE (SELECT pg_current_xact_id()) IS NOT NULL ORDER BY s.seq "
    "ON CONFLICT (event_id) DO NOTHING RETURNING t.event_id, t.position) "
    "SELECT s.event_id, i.position, e.request_hash, " ES_EVENT_COLUMNS " FROM src s "
    "LEFT JOIN ins i ON i.event_id = s.event_id "
    "LEFT JOIN event.events e ON i.event_id IS NULL AND e.event_id = s.event_id",
    1};

/* The common case of event.ingest(): a group where no request has a client
 * event_id or a stream append, so nothing can conflict: one set-based insert
 * of the group's events, returning each event's id and position; the
 * answers are rendered from what was sent. Prepared once per connection (a
 * plpgsql or SQL function would be planned per call or per session). The
 * events go as one array per column in PostgreSQL's binary format: no JSON
 * document of the group to parse, no keys to look up, no timestamps to read
 * from text (only the four JSON objects are parsed, as they must be). The
 * InitPlan on pg_current_xact_id() runs before the first row draws its
 * position (see event.position_mark, 003). */
static const es_pg_stmt_t ingest_plain_stmt = {
    4,
    "INSERT INTO event.events AS t (event_id, event_type, event_source, event_category, user_id, "
    "session_id, organization_id, device_id, correlation_id, data, metadata, context, properties, "
    "timestamp, created_at, updated_at) "
    "SELECT x.id, x.ty, x.src, x.cat, x.uid, x.sid, x.org, x.dev, x.cor, x.d, x.m, x.c, x.p, "
    "x.ts, x.ca, x.ca "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::text[], $8::text[], $9::text[], $10::jsonb[], $11::jsonb[], $12::jsonb[], $13::jsonb[], "
    "$14::timestamptz[], $15::timestamptz[]) WITH ORDINALITY "
    "AS x(id, ty, src, cat, uid, sid, org, dev, cor, d, m, c, p, ts, ca, seq) "
    "WHERE (SELECT pg_current_xact_id()) IS NOT NULL "
    "ORDER BY x.seq RETURNING t.event_id, t.position",
    15};
enum { PLAIN_COLUMNS = 15 };

/* One event.ingest() call in flight: the requests it carries. */
typedef struct {
    es_ingest_t *in;
    es_ingest_req_t *reqs; /* linked by next, in req_index order */
    int nreqs;
    int nevents;
    enum { PATH_PLAIN, PATH_IDS, PATH_FULL } path;
} group_t;

struct es_ingest {
    es_pgpool_t *pg;
    es_nats_t *nats;
    es_ingest_req_t *head, *tail; /* waiting to be written */
    int queued;
    int queued_events;
    int inflight_ops; /* event.ingest() calls awaiting their result */
    int inflight_reqs;
    es_ingest_req_t *solo; /* requests to retry one transaction each */
    /* Clients of the last written group that have not sent again yet: while
     * some may still come back, the next group waits for them (at most the
     * linger timeout), so a closed loop of N clients is written N at a time
     * rather than in halves that alternate. */
    int returning;
    h2o_loop_t *loop;
    h2o_timeout_t linger;
    h2o_timeout_entry_t linger_entry;
    bool wait; /* group_wait_ms > 0 */
};

static void flush(es_ingest_t *in);

es_ingest_req_t *es_ingest_req_new(h2o_req_t *req, int nevents)
{
    es_ingest_req_t *r = es_xcalloc(1, sizeof(*r));
    r->nevents = nevents;
    r->events = es_xcalloc((size_t)ES_MAX(nevents, 1), sizeof(es_event_t));
    int64_t now = es_time_now_us();
    for (int i = 0; i < nevents; i++)
        es_event_init(&r->events[i], now);
    es_async_begin(&r->async, req);
    return r;
}

void es_ingest_req_free(es_ingest_req_t *r)
{
    if (r == NULL)
        return;
    es_async_end(&r->async);
    for (int i = 0; i < r->nevents; i++)
        es_event_clear(&r->events[i]);
    free(r->events);
    free(r);
}

static void on_linger(h2o_timeout_entry_t *entry)
{
    es_ingest_t *in = H2O_STRUCT_FROM_MEMBER(es_ingest_t, linger_entry, entry);
    in->returning = 0;
    flush(in);
}

es_ingest_t *es_ingest_create(h2o_loop_t *loop, es_pgpool_t *pg, es_nats_t *nats, int wait_ms)
{
    es_ingest_t *in = es_xcalloc(1, sizeof(*in));
    in->pg = pg;
    in->nats = nats;
    in->loop = loop;
    h2o_timeout_init(loop, &in->linger, (uint64_t)ES_MAX(wait_ms, 1));
    in->linger_entry.cb = on_linger;
    in->wait = wait_ms > 0;
    return in;
}

static void finish(es_ingest_t *in, es_ingest_req_t *r, int status, const char *detail,
                   const PGresult *res, const int *rows)
{
    (void)in;
    r->out_res = res;
    r->out_rows = rows;
    r->done(r, status, detail);
    es_ingest_req_free(r);
}

void es_ingest_render_event(es_ingest_req_t *r, int i, es_buf_t *b)
{
    if (r->out_res != NULL)
        es_event_row_render(b, r->out_res, r->out_rows[i], 3);
    else
        es_event_render_new(b, &r->events[i], r->out_positions[i]);
}

void es_ingest_destroy(es_ingest_t *in)
{
    if (in == NULL)
        return;
    while (in->head != NULL) {
        es_ingest_req_t *r = in->head;
        in->head = r->next;
        finish(in, r, 503, "service is shutting down", NULL, NULL);
    }
    if (h2o_timeout_is_linked(&in->linger_entry))
        h2o_timeout_unlink(&in->linger_entry);
    h2o_timeout_dispose(in->loop, &in->linger);
    free(in);
}

int es_ingest_pending(const es_ingest_t *in)
{
    return in->queued + in->inflight_reqs;
}

static bool needs_check(const es_ingest_req_t *r)
{
    for (int i = 0; i < r->nevents; i++)
        if (r->events[i].client_id || r->events[i].stream_id != NULL)
            return true;
    return false;
}

void es_ingest_submit(es_ingest_t *in, es_ingest_req_t *r)
{
    if (!es_pgconn_ready(es_pgpool_writer(in->pg))) {
        finish(in, r, 503, "database unavailable", NULL, NULL);
        return;
    }
    r->check = needs_check(r);
    r->next = NULL;
    if (in->tail)
        in->tail->next = r;
    else
        in->head = r;
    in->tail = r;
    in->queued++;
    in->queued_events += r->nevents;
    if (in->returning > 0)
        in->returning--;
    flush(in);
}

/* Maps an error of a one-request transaction to the client's answer. */
static int error_status(const PGresult *res, const char **detail)
{
    const char *state = es_pg_sqlstate(res);
    if (res == NULL || strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0 ||
        strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0) {
        *detail = "database unavailable; retry";
        return 503;
    }
    if (strcmp(state, "23505") == 0) {
        *detail = "conflict with a concurrent write of the same event_id or stream version; "
                  "retry";
        return 409;
    }
    if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0) {
        *detail = "a value was rejected by the database";
        return 422;
    }
    *detail = "internal error";
    return 500;
}

typedef struct {
    const PGresult *res;
    int row;
    int col; /* of the event_id */
} rowref_t;

static int cmp_rowref(const void *a, const void *b)
{
    const rowref_t *x = a, *y = b;
    return strcmp(PQgetvalue(x->res, x->row, x->col), PQgetvalue(y->res, y->row, y->col));
}

/* Row of refs (sorted, n) whose event_id is id, or -1. */
static int find_row(const rowref_t *refs, int n, const char *id)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(id, PQgetvalue(refs[mid].res, refs[mid].row, refs[mid].col));
        if (c == 0)
            return refs[mid].row;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

/* The rows of res sorted by the event_id in their column 0 (for find_row). */
static rowref_t *index_rows(const PGresult *res)
{
    int nrows = PQntuples(res);
    rowref_t *refs = es_xcalloc((size_t)ES_MAX(nrows, 1), sizeof(rowref_t));
    for (int i = 0; i < nrows; i++)
        refs[i] = (rowref_t){res, i, 0};
    qsort(refs, (size_t)nrows, sizeof(rowref_t), cmp_rowref);
    return refs;
}

/* Answers every request of a successful ingest_plain_stmt result: rows
 * (event_id, position), the rest rendered from what was sent. */
static void deliver_plain(es_ingest_t *in, group_t *g, const PGresult *res)
{
    int nrows = PQntuples(res);
    rowref_t *refs = index_rows(res);
    es_ingest_req_t *r = g->reqs;
    g->reqs = NULL;
    while (r != NULL) {
        es_ingest_req_t *next = r->next;
        int64_t *positions = es_xcalloc((size_t)ES_MAX(r->nevents, 1), sizeof(int64_t));
        bool complete = true;
        for (int e = 0; e < r->nevents; e++) {
            int row = find_row(refs, nrows, r->events[e].event_id);
            complete = complete && row >= 0;
            positions[e] = row >= 0 ? es_pg_int(res, row, 1) : 0;
        }
        if (complete) {
            for (int e = 0; e < r->nevents; e++)
                es_metrics_ingested(r->events[e].source, 1);
            r->out_positions = positions;
            finish(in, r, 201, NULL, NULL, NULL);
        } else {
            es_error("the plain insert returned no row for an event");
            finish(in, r, 500, "internal error", NULL, NULL);
        }
        free(positions);
        r = next;
    }
    free(refs);
}

/* Answers every request of a successful event.ingest() result. */
static void deliver(es_ingest_t *in, group_t *g, const PGresult *res)
{
    int nrows = PQntuples(res);
    /* Rows per request, sorted by event_id for lookup. */
    int *count = es_xcalloc((size_t)g->nreqs, sizeof(int));
    int *verdict = es_xcalloc((size_t)g->nreqs, sizeof(int));
    for (int i = 0; i < nrows; i++) {
        int req = (int)es_pg_int(res, i, 0);
        if (req < 0 || req >= g->nreqs)
            continue;
        if (PQgetisnull(res, i, 3))
            verdict[req] = i + 1;
        else
            count[req]++;
    }
    rowref_t **refs = es_xcalloc((size_t)g->nreqs, sizeof(rowref_t *));
    int *fill = es_xcalloc((size_t)g->nreqs, sizeof(int));
    for (int r = 0; r < g->nreqs; r++)
        refs[r] = es_xcalloc((size_t)ES_MAX(count[r], 1), sizeof(rowref_t));
    for (int i = 0; i < nrows; i++) {
        int req = (int)es_pg_int(res, i, 0);
        if (req < 0 || req >= g->nreqs || PQgetisnull(res, i, 3))
            continue;
        refs[req][fill[req]++] = (rowref_t){res, i, 3 + ES_COL_EVENT_ID};
    }

    es_ingest_req_t *r = g->reqs;
    g->reqs = NULL;
    while (r != NULL) {
        es_ingest_req_t *next = r->next;
        int idx = r->req_index;
        if (verdict[idx] && es_pg_int(res, verdict[idx] - 1, 1) == 409) {
            finish(in, r, 409, PQgetvalue(res, verdict[idx] - 1, 2), NULL, NULL);
            r = next;
            continue;
        }
        qsort(refs[idx], (size_t)count[idx], sizeof(rowref_t), cmp_rowref);
        int *rows = es_xcalloc((size_t)ES_MAX(r->nevents, 1), sizeof(int));
        bool complete = true;
        for (int e = 0; e < r->nevents; e++) {
            rows[e] = find_row(refs[idx], count[idx], r->events[e].event_id);
            complete = complete && rows[e] >= 0;
        }
        if (!complete) {
            es_error("event.ingest() returned no row for an event of request %d", idx);
            finish(in, r, 500, "internal error", NULL, NULL);
        } else {
            for (int e = 0; e < r->nevents; e++) /* code 1: inserted by this call */
                if (es_pg_int(res, rows[e], 1) == 1)
                    es_metrics_ingested(r->events[e].source, 1);
            finish(in, r, verdict[idx] ? 200 : 201, NULL, res, rows);
        }
        free(rows);
        r = next;
    }
    for (int i = 0; i < g->nreqs; i++)
        free(refs[i]);
    free(refs);
    free(fill);
    free(count);
    free(verdict);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The cheapest statement that can decide every request of the group. */
static int choose_path(es_ingest_req_t *reqs)
{
    bool checks = false;
    int named = 0;
    for (es_ingest_req_t *r = reqs; r != NULL; r = r->next) {
        if (r->solo_tries > 0)
            return PATH_FULL; /* a retry after a conflict: the path that decides everything */
        if (!r->check)
            continue;
        checks = true;
        if (r->nevents != 1 || r->events[0].stream_id != NULL)
            return PATH_FULL; /* all-or-nothing over several events, or a stream */
        named++;
    }
    if (!checks)
        return PATH_PLAIN;
    /* Two requests naming the same event in one group: the full path orders them. */
    const char **ids = es_xcalloc((size_t)named, sizeof(char *));
    int k = 0;
    for (es_ingest_req_t *r = reqs; r != NULL; r = r->next)
        if (r->check)
            ids[k++] = r->events[0].event_id;
    qsort(ids, (size_t)named, sizeof(char *), cmp_str);
    bool distinct = true;
    for (int i = 1; i < named && distinct; i++)
        distinct = strcmp(ids[i - 1], ids[i]) != 0;
    free(ids);
    return distinct ? PATH_IDS : PATH_FULL;
}

/* Answers a group written by ingest_ids_stmt. Rows: (event_id, position if
 * this call inserted it, stored request_hash, stored row from column 3). */
static void deliver_ids(es_ingest_t *in, group_t *g, const PGresult *res)
{
    int nrows = PQntuples(res);
    rowref_t *refs = index_rows(res);
    es_ingest_req_t *r = g->reqs;
    g->reqs = NULL;
    while (r != NULL) {
        es_ingest_req_t *next = r->next;
        r->next = NULL;
        int64_t *positions = es_xcalloc((size_t)ES_MAX(r->nevents, 1), sizeof(int64_t));
        int status = 201, existing = -1;
        for (int e = 0; e < r->nevents && status == 201; e++) {
            int row = find_row(refs, nrows, r->events[e].event_id);
            if (row < 0) {
                status = 500;
            } else if (!PQgetisnull(res, row, 1)) {
                positions[e] = es_pg_int(res, row, 1);
            } else if (!PQgetisnull(res, row, 3 + ES_COL_EVENT_ID)) {
                existing = row; /* one event: the request is that event */
                status =
                    strcmp(PQgetvalue(res, row, 2), r->events[e].request_hash) == 0 ? 200 : 409;
            } else {
                status = 0; /* taken by a transaction we could not see: decide alone */
            }
        }
        if (status == 201) {
            for (int e = 0; e < r->nevents; e++)
                es_metrics_ingested(r->events[e].source, 1);
            r->out_positions = positions;
            finish(in, r, 201, NULL, NULL, NULL);
        } else if (status == 200) {
            finish(in, r, 200, NULL, res, &existing);
        } else if (status == 409) {
            char *detail = es_xasprintf("event_id: %s already exists with different content",
                                        r->events[0].event_id);
            finish(in, r, 409, detail, NULL, NULL);
            free(detail);
        } else if (status == 0) {
            r->solo_tries++; /* written again through event.ingest(), which waits and sees */
            r->next = in->solo;
            in->solo = r;
        } else {
            es_error("the named-events insert returned no row for an event");
            finish(in, r, 500, "internal error", NULL, NULL);
        }
        free(positions);
        r = next;
    }
    free(refs);
}

static void on_group_done(void *ctx, const PGresult *res, const char *err)
{
    group_t *g = ctx;
    es_ingest_t *in = g->in;
    in->inflight_ops--;
    in->inflight_reqs -= g->nreqs;
    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
        /* Committed: wake the processor workers (and the event.stored
         * publisher) now rather than at their next poll. */
        (void)es_nats_publish(in->nats, ES_WAKE_SUBJECT, "", 0);
        es_metrics_ingest_group(g->nreqs, g->nevents);
        in->returning = g->nreqs;
        if (g->path == PATH_PLAIN)
            deliver_plain(in, g, res);
        else if (g->path == PATH_IDS)
            deliver_ids(in, g, res);
        else
            deliver(in, g, res);
    } else if (g->nreqs > 1) {
        /* Something one request could not decide alone (a deadlock, a stream or
         * event_id created concurrently): retry each in its own transaction. */
        es_warn("group write of %d requests failed (%s); retrying them one by one", g->nreqs,
                res ? PQresultErrorMessage(res) : err);
        es_ingest_req_t *last = g->reqs;
        while (last->next != NULL)
            last = last->next;
        last->next = in->solo;
        in->solo = g->reqs;
        g->reqs = NULL;
    } else if (res != NULL && g->reqs->solo_tries < 3 &&
               (strcmp(es_pg_sqlstate(res), "23505") == 0 ||
                strcmp(es_pg_sqlstate(res), "40P01") == 0 ||
                strcmp(es_pg_sqlstate(res), "40001") == 0)) {
        /* Another transaction wrote the same event_id or stream version first
         * (or a deadlock picked us): written again, the request now sees that
         * row and gets its answer (the stored event, or a 409 verdict). */
        g->reqs->solo_tries++;
        g->reqs->next = in->solo;
        in->solo = g->reqs;
        g->reqs = NULL;
    } else {
        const char *detail = NULL;
        int status = error_status(res, &detail);
        if (status >= 500 || res == NULL)
            es_error("event write failed: %s", res ? PQresultErrorMessage(res) : err);
        finish(in, g->reqs, status, detail, NULL, NULL);
        g->reqs = NULL;
    }
    free(g);
    flush(in);
}

/* Counts g in flight once its write was sent (rc ES_OK); otherwise answers
 * its requests 503 and frees it. */
static void submit_group(es_ingest_t *in, group_t *g, es_rc_t rc)
{
    if (rc == ES_OK) {
        in->inflight_ops++;
        in->inflight_reqs += g->nreqs;
        return;
    }
    while (g->reqs != NULL) {
        es_ingest_req_t *r = g->reqs;
        g->reqs = r->next;
        finish(in, r, 503, "database unavailable", NULL, NULL);
    }
    free(g);
}

/* The plain path's parameters: one binary array per column over the events
 * of reqs, in order (nevents in all). */
static void plain_params(es_ingest_req_t *reqs, int nevents, es_pgarr_t cols[PLAIN_COLUMNS])
{
    /* Columns 4 to 8 (user_id .. correlation_id) may hold NULLs. */
    for (int k = 0; k < 9; k++)
        es_pgarr_begin(&cols[k], 25, nevents, k >= 4);
    for (int k = 9; k < 13; k++)
        es_pgarr_begin(&cols[k], 3802, nevents, false);
    for (int k = 13; k < 15; k++)
        es_pgarr_begin(&cols[k], 1184, nevents, false);
    for (es_ingest_req_t *r = reqs; r != NULL; r = r->next)
        for (int e = 0; e < r->nevents; e++) {
            es_event_t *ev = &r->events[e];
            es_event_freeze(ev);
            const char *text[9] = {ev->event_id,
                                   ev->event_type,
                                   es_source_names[ev->source],
                                   es_category_names[ev->category],
                                   ev->user_id,
                                   ev->session_id,
                                   ev->organization_id,
                                   ev->device_id,
                                   ev->correlation_id};
            for (int k = 0; k < 9; k++)
                es_pgarr_text(&cols[k], text[k]);
            for (int k = 0; k < 4; k++)
                es_pgarr_jsonb(&cols[9 + k], ev->text[k]);
            es_pgarr_timestamptz(&cols[13], ev->timestamp_us);
            es_pgarr_timestamptz(&cols[14], ev->created_at_us);
        }
}

/* The plain insert of g, its events as binary arrays. */
static void send_plain(es_ingest_t *in, group_t *g)
{
    es_pgarr_t cols[PLAIN_COLUMNS];
    plain_params(g->reqs, g->nevents, cols);
    const char *values[PLAIN_COLUMNS];
    int lengths[PLAIN_COLUMNS];
    for (int k = 0; k < PLAIN_COLUMNS; k++) {
        values[k] = cols[k].b.data;
        lengths[k] = (int)cols[k].b.len;
    }
    submit_group(in, g,
                 es_pg_send_prepared_bin(es_pgpool_writer(in->pg), &ingest_plain_stmt, values,
                                         lengths, on_group_done, g));
    for (int k = 0; k < PLAIN_COLUMNS; k++)
        es_buf_free(&cols[k].b);
}

/* g as one JSON document: a flat array of events for the client-id path,
 * the requests with their events for event.ingest(). */
static void send_json(es_ingest_t *in, group_t *g)
{
    bool full = g->path == PATH_FULL;
    es_buf_t arr = ES_BUF_INIT;
    es_buf_putc(&arr, '[');
    int seq = 0;
    for (es_ingest_req_t *r = g->reqs; r != NULL; r = r->next) {
        if (r->req_index > 0)
            es_buf_putc(&arr, ',');
        if (full)
            es_buf_printf(&arr, "{\"req\":%d,\"check\":%s,\"events\":[", r->req_index,
                          r->check ? "true" : "false");
        for (int e = 0; e < r->nevents; e++) {
            if (e > 0)
                es_buf_putc(&arr, ',');
            es_event_append_ingest_json(&arr, &r->events[e], r->req_index, seq++);
        }
        if (full)
            es_buf_puts(&arr, "]}");
    }
    es_buf_putc(&arr, ']');
    char *payload = es_buf_take(&arr);
    const char *params[1] = {payload};
    submit_group(in, g,
                 es_pg_send_prepared(es_pgpool_writer(in->pg),
                                     full ? &ingest_stmt : &ingest_ids_stmt, params, on_group_done,
                                     g));
    free(payload);
}

/* Sends reqs (linked, count n) as one write: the plain insert, or an
 * event.ingest() call. */
static void send_group(es_ingest_t *in, es_ingest_req_t *reqs, int n)
{
    group_t *g = es_xcalloc(1, sizeof(*g));
    g->in = in;
    g->reqs = reqs;
    g->nreqs = n;
    g->path = choose_path(reqs);
    int i = 0;
    for (es_ingest_req_t *r = reqs; r != NULL; r = r->next) {
        r->req_index = i++;
        g->nevents += r->nevents;
    }
    if (g->path == PATH_PLAIN)
        send_plain(in, g);
    else
        send_json(in, g);
}

static void flush(es_ingest_t *in)
{
    if (in->inflight_ops > 0)
        return;
    if (in->solo != NULL) {
        /* Pipelined, but each its own transaction (own sync point). */
        while (in->solo != NULL) {
            es_ingest_req_t *r = in->solo;
            in->solo = r->next;
            r->next = NULL;
            send_group(in, r, 1);
        }
        return;
    }
    if (in->head == NULL)
        return;
    if (!es_pgconn_ready(es_pgpool_writer(in->pg))) {
        while (in->head != NULL) {
            es_ingest_req_t *r = in->head;
            in->head = r->next;
            in->queued--;
            in->queued_events -= r->nevents;
            finish(in, r, 503, "database unavailable", NULL, NULL);
        }
        in->tail = NULL;
        return;
    }
    if (in->returning > 0 && in->queued_events < GROUP_MAX_EVENTS && in->wait) {
        if (!h2o_timeout_is_linked(&in->linger_entry))
            h2o_timeout_link(in->loop, &in->linger, &in->linger_entry);
        return;
    }
    if (h2o_timeout_is_linked(&in->linger_entry))
        h2o_timeout_unlink(&in->linger_entry);
    es_ingest_req_t *first = in->head, *last = NULL;
    int n = 0, events = 0;
    while (in->head != NULL && (n == 0 || events + in->head->nevents <= GROUP_MAX_EVENTS)) {
        last = in->head;
        events += last->nevents;
        in->head = last->next;
        n++;
    }
    last->next = NULL;
    if (in->head == NULL)
        in->tail = NULL;
    in->queued -= n;
    in->queued_events -= events;
    send_group(in, first, n);
}
