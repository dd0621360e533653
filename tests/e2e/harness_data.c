/*
 * harness_data.c - how the end-to-end tests look at the service's effects:
 * SQL on the test's database (with shorthands for the service's own tables)
 * and the JetStream stream the service publishes on. Contracts in harness.h.
 */
#include "harness.h"

#include <nats/nats.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_NAME "event-stream"

/* ---- SQL ------------------------------------------------------------------ */

static PGresult *sql_v(h_env_t *e, const char *sql, va_list ap)
{
    const char *params[32];
    int n = 0;
    for (const char *p; n < 32 && (p = va_arg(ap, const char *)) != NULL;)
        params[n++] = p;
    if (e->db == NULL) {
        char conninfo[400];
        snprintf(conninfo, sizeof(conninfo), "%s?options=-c%%20client_min_messages%%3Dwarning",
                 e->dburl);
        e->db = PQconnectdb(conninfo);
    } else if (PQstatus(e->db) != CONNECTION_OK)
        PQreset(e->db);
    cr_assert(PQstatus(e->db) == CONNECTION_OK, "cannot connect to %s: %s", e->dburl,
              PQerrorMessage(e->db));
    PGresult *r = PQexecParams(e->db, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
        PQclear(r);
        /* A restarted server drops the connection: one retry on a new one. */
        if (PQstatus(e->db) != CONNECTION_OK) {
            PQreset(e->db);
            r = PQexecParams(e->db, sql, n, NULL, params, NULL, NULL, 0);
            st = PQresultStatus(r);
            if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
                return r;
            PQclear(r);
        }
        cr_assert_fail("SQL failed: %s\n  %s", sql, msg);
    }
    return r;
}

PGresult *h_sql_(h_env_t *e, const char *sql, ...)
{
    va_list ap;
    va_start(ap, sql);
    PGresult *r = sql_v(e, sql, ap);
    va_end(ap);
    return r;
}

int64_t h_sql_int_(h_env_t *e, const char *sql, ...)
{
    va_list ap;
    va_start(ap, sql);
    PGresult *r = sql_v(e, sql, ap);
    va_end(ap);
    cr_assert(PQntuples(r) > 0 && !PQgetisnull(r, 0, 0), "no value from: %s", sql);
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

char *h_sql_text(h_env_t *e, const char *sql, const char *param)
{
    PGresult *r = h_sql(e, sql, param);
    char *v = NULL;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

int64_t h_count_events(h_env_t *e, char *const *ids, int n)
{
    size_t cap = 16 + (size_t)n * 300;
    char *arr = malloc(cap);
    size_t len = (size_t)snprintf(arr, cap, "{");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(arr + len, cap - len, "%s\"%s\"", i ? "," : "", ids[i]);
    snprintf(arr + len, cap - len, "}");
    int64_t count =
        h_sql_int(e, "SELECT count(*) FROM event.events WHERE event_id = ANY($1::text[])", arr);
    free(arr);
    return count;
}

/* ---- the service's tables ------------------------------------------------- */

bool h_event_status_is(h_env_t *e, const char *event_id, const char *status)
{
    return h_sql_int(e, "SELECT count(*) FROM event.events WHERE event_id = $1 AND status = $2",
                     event_id, status) == 1;
}

int64_t h_events_with_status(h_env_t *e, const char *status)
{
    return h_sql_int(e, "SELECT count(*) FROM event.events WHERE status = $1", status);
}

int64_t h_events_with_message_id(h_env_t *e, const char *message_id)
{
    return h_sql_int(e, "SELECT count(*) FROM event.events WHERE metadata->>'messageId' = $1",
                     message_id);
}

int64_t h_processing_results(h_env_t *e, const char *event_id, const char *processor,
                             const char *status)
{
    /* h_sql's parameter list ends at the first NULL: "" stands for any. */
    return h_sql_int(e,
                     "SELECT count(*) FROM event.processing_results WHERE event_id = $1 "
                     "AND ($2 = '' OR processor_name = $2) AND ($3 = '' OR status = $3)",
                     event_id, processor ? processor : "", status ? status : "");
}

bool h_delivery_status_is(h_env_t *e, const char *delivery_id, const char *status)
{
    return h_sql_int(e,
                     "SELECT count(*) FROM event.deliveries WHERE delivery_id = $1 AND "
                     "status = $2",
                     delivery_id, status) == 1;
}

int64_t h_deliveries_with_status(h_env_t *e, const char *subscription_id, const char *status)
{
    return h_sql_int(e,
                     "SELECT count(*) FROM event.deliveries WHERE subscription_id = $1 AND "
                     "status = $2",
                     subscription_id, status);
}

void h_preload_events(h_env_t *e, int n)
{
    char count[16];
    snprintf(count, sizeof(count), "%d", n);
    PQclear(h_sql(e,
                  "INSERT INTO event.events (event_id, event_type, event_source, event_category, "
                  "user_id, data, status, processed_at, timestamp) "
                  "SELECT 'pre-' || lpad(g::text, 7, '0'), 'bulk.item', 'backend', 'system', "
                  "'u' || (g % 10), jsonb_build_object('n', g), 'processed', now(), "
                  "timestamptz '2025-01-01T00:00:00Z' + g * interval '1 second' "
                  "FROM generate_series(1, $1::int) g",
                  count));
    PQclear(h_sql(e, "UPDATE event.outbox_state SET position = (SELECT max(position) FROM "
                     "event.events) WHERE name = 'event.stored'"));
}

pid_t h_claim_pid(const char *token)
{
    const char *last = strrchr(token, ':');
    if (last == NULL || last == token)
        return 0;
    const char *p = last - 1;
    while (p > token && *p != ':')
        p--;
    return *p == ':' ? (pid_t)strtol(p + 1, NULL, 10) : 0;
}

/* ---- NATS JetStream ------------------------------------------------------- */

typedef struct {
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
} js_conn_t;

static void js_close(js_conn_t *c)
{
    if (c->js)
        jsCtx_Destroy(c->js);
    if (c->nc)
        natsConnection_Destroy(c->nc);
    if (c->opts)
        natsOptions_Destroy(c->opts);
    memset(c, 0, sizeof(*c));
}

static bool js_open(h_env_t *e, js_conn_t *c)
{
    memset(c, 0, sizeof(*c));
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", e->nats.port);
    if (natsOptions_Create(&c->opts) != NATS_OK || natsOptions_SetURL(c->opts, url) != NATS_OK ||
        natsOptions_SetTimeout(c->opts, 2000) != NATS_OK ||
        natsOptions_SetAllowReconnect(c->opts, false) != NATS_OK ||
        natsConnection_Connect(&c->nc, c->opts) != NATS_OK ||
        natsConnection_JetStream(&c->js, c->nc, NULL) != NATS_OK) {
        js_close(c);
        return false;
    }
    return true;
}

bool h_js_stream_exists(h_env_t *e)
{
    js_conn_t c;
    if (!js_open(e, &c))
        return false;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    bool ok = js_GetStreamInfo(&si, c.js, STREAM_NAME, NULL, &jerr) == NATS_OK;
    if (si)
        jsStreamInfo_Destroy(si);
    js_close(&c);
    return ok;
}

bool h_js_delete_stream(h_env_t *e)
{
    js_conn_t c;
    if (!js_open(e, &c))
        return false;
    jsErrCode jerr = 0;
    bool ok = js_DeleteStream(c.js, STREAM_NAME, NULL, &jerr) == NATS_OK;
    js_close(&c);
    return ok;
}

static void msg_copy(natsMsg *m, h_msg_t *out)
{
    memset(out, 0, sizeof(*out));
    out->subject = strdup(natsMsg_GetSubject(m));
    out->len = natsMsg_GetDataLength(m);
    out->data = malloc((size_t)out->len + 1);
    memcpy(out->data, natsMsg_GetData(m), (size_t)out->len);
    out->data[out->len] = '\0';
    const char *id = NULL;
    if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id)
        out->msg_id = strdup(id);
    jsMsgMetaData *md = NULL;
    if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
        out->seq = md->Sequence.Stream;
        jsMsgMetaData_Destroy(md);
    }
}

void h_msg_clear(h_msg_t *m)
{
    free(m->subject);
    free(m->data);
    free(m->msg_id);
    memset(m, 0, sizeof(*m));
}

void h_msgs_free(h_msg_t *msgs, int n)
{
    for (int i = 0; i < n; i++)
        h_msg_clear(&msgs[i]);
    free(msgs);
}

int h_js_snapshot(h_env_t *e, h_msg_t **out)
{
    *out = NULL;
    js_conn_t c;
    if (!js_open(e, &c))
        return -1;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, c.js, STREAM_NAME, NULL, &jerr) != NATS_OK) {
        js_close(&c);
        return -1;
    }
    uint64_t want = si->State.Msgs, last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    h_msg_t *msgs = calloc(want + 1, sizeof(h_msg_t));
    int got = 0;
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = STREAM_NAME;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverAll;
    if (want > 0 && js_SubscribeSync(&sub, c.js, "event.>", NULL, &so, &jerr) == NATS_OK) {
        int64_t deadline = h_now_ms() + 15000;
        while ((uint64_t)got < want && h_now_ms() < deadline) {
            natsMsg *m = NULL;
            if (natsSubscription_NextMsg(&m, sub, 1000) != NATS_OK)
                continue;
            msg_copy(m, &msgs[got]);
            natsMsg_Destroy(m);
            if (msgs[got++].seq >= last)
                break;
        }
        natsSubscription_Destroy(sub);
    } else if (want > 0) {
        got = -1;
    }
    js_close(&c);
    if (got < 0) {
        free(msgs);
        return -1;
    }
    *out = msgs;
    return got;
}

bool h_js_wait_msg(h_env_t *e, const char *msg_id, int timeout_ms, h_msg_t *out)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    do {
        h_msg_t *msgs = NULL;
        int n = h_js_snapshot(e, &msgs);
        for (int i = 0; i < n; i++) {
            if (msgs[i].msg_id && strcmp(msgs[i].msg_id, msg_id) == 0) {
                if (out) {
                    *out = msgs[i];
                    memset(&msgs[i], 0, sizeof(msgs[i]));
                }
                h_msgs_free(msgs, n);
                return true;
            }
        }
        h_msgs_free(msgs, n > 0 ? n : 0);
        h_pause_ms(25);
    } while (h_now_ms() < deadline);
    return false;
}

json_t *h_js_published(h_env_t *e, const char *subject, const char *event_id)
{
    json_t *out = json_array();
    h_msg_t *msgs = NULL;
    int n = h_js_snapshot(e, &msgs);
    for (int i = 0; i < n; i++) {
        if (strcmp(msgs[i].subject, subject) != 0)
            continue;
        json_t *env = json_loads(msgs[i].data, 0, NULL);
        const char *eid = h_jstr(env, "data.event_id");
        if (eid && strcmp(eid, event_id) == 0)
            json_array_append(out, h_jget(env, "data"));
        json_decref(env);
    }
    h_msgs_free(msgs, n > 0 ? n : 0);
    return out;
}

size_t h_js_published_count(h_env_t *e, const char *subject, const char *event_id)
{
    json_t *a = h_js_published(e, subject, event_id);
    size_t n = json_array_size(a);
    json_decref(a);
    return n;
}

/* ---- NATS as another service would use it ---------------------------------- */

struct h_nc {
    js_conn_t conn;
    natsSubscription *sub;
};

h_nc_t *h_nc_open(h_env_t *e)
{
    h_nc_t *c = calloc(1, sizeof(*c));
    cr_assert(js_open(e, &c->conn), "cannot connect to nats-server on port %d", e->nats.port);
    return c;
}

void h_nc_close(h_nc_t *c)
{
    if (c == NULL)
        return;
    if (c->sub)
        natsSubscription_Destroy(c->sub);
    js_close(&c->conn);
    free(c);
}

static natsMsg *nc_msg(const char *subject, const char *data, const char *msg_id)
{
    natsMsg *m = NULL;
    if (natsMsg_Create(&m, subject, NULL, data, (int)strlen(data)) != NATS_OK)
        return NULL;
    if (msg_id != NULL && natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id) != NATS_OK) {
        natsMsg_Destroy(m);
        return NULL;
    }
    return m;
}

bool h_nc_publish(h_nc_t *c, const char *subject, const char *data, const char *msg_id)
{
    natsMsg *m = nc_msg(subject, data, msg_id);
    bool ok = m != NULL && natsConnection_PublishMsg(c->conn.nc, m) == NATS_OK &&
              natsConnection_FlushTimeout(c->conn.nc, 5000) == NATS_OK;
    natsMsg_Destroy(m);
    return ok;
}

bool h_nc_js_publish(h_nc_t *c, const char *subject, const char *data, const char *msg_id,
                     bool *duplicate)
{
    natsMsg *m = nc_msg(subject, data, msg_id);
    if (m == NULL)
        return false;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 5000;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    bool ok = js_PublishMsg(&pa, c->conn.js, m, &po, &jerr) == NATS_OK && pa != NULL;
    if (ok && duplicate)
        *duplicate = pa->Duplicate;
    if (pa)
        jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    return ok;
}

bool h_nc_subscribe(h_nc_t *c, const char *subject)
{
    if (c->sub != NULL)
        return false;
    if (natsConnection_SubscribeSync(&c->sub, c->conn.nc, subject) != NATS_OK) {
        c->sub = NULL;
        return false;
    }
    return natsConnection_FlushTimeout(c->conn.nc, 5000) == NATS_OK;
}

bool h_nc_next(h_nc_t *c, int timeout_ms, h_msg_t *out)
{
    natsMsg *m = NULL;
    if (c->sub == NULL || natsSubscription_NextMsg(&m, c->sub, timeout_ms) != NATS_OK)
        return false;
    msg_copy(m, out);
    natsMsg_Destroy(m);
    return true;
}

bool h_nc_add_stream(h_nc_t *c, const char *name, const char *subject, int duplicate_window_ms)
{
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = name;
    const char *subjects[1] = {subject};
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Duplicates = (int64_t)duplicate_window_ms * 1000000;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(&si, c->conn.js, &sc, NULL, &jerr);
    if (si)
        jsStreamInfo_Destroy(si);
    return s == NATS_OK;
}

bool h_js_consumer(h_env_t *e, const char *stream, const char *consumer, h_consumer_t *out)
{
    js_conn_t c;
    if (!js_open(e, &c))
        return false;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    bool ok = js_GetConsumerInfo(&ci, c.js, stream, consumer, NULL, &jerr) == NATS_OK && ci;
    if (ok && out) {
        out->num_pending = ci->NumPending;
        out->num_ack_pending = ci->NumAckPending;
        out->num_redelivered = ci->NumRedelivered;
        out->delivered_stream = ci->Delivered.Stream;
        out->ack_floor_stream = ci->AckFloor.Stream;
    }
    if (ci)
        jsConsumerInfo_Destroy(ci);
    js_close(&c);
    return ok;
}
