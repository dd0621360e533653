#include "processor-worker/outbox.h"

#include "common/event_row.h"
#include "common/log.h"
#include "common/nats.h"
#include "common/pgsync.h"
#include "common/publish.h"
#include "common/timeutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PUBLISHER_LOCK_KEY 1163284546 /* "EVPB" as a decimal literal (SQL) */
#define PAGE 500
#define ACK_WAIT_MS 5000

struct es_outbox {
    const es_config_t *cfg;
    es_pgsync_t db;
    es_nats_t *nats;
    es_pubset_t *pub; /* event.stored and the spilled publications */
    bool leader;
    bool have_mark; /* a candidate horizon waiting to settle */
    int64_t mark;
    char snapshot[4096];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken, stopping;
};

static PGresult *query(es_outbox_t *o, const char *sql, int n, const char *const *params)
{
    PGresult *r = es_pgsync_query(&o->db, "publish", sql, n, params);
    if (o->db.fresh) { /* a new session holds no lock and no pending mark */
        o->leader = false;
        o->have_mark = false;
    }
    return r;
}

/* Waits for every publish in flight; true when all were acknowledged. */
static bool acked(es_outbox_t *o)
{
    return es_pubset_settle(o->pub, ACK_WAIT_MS, NULL, NULL) == 0;
}

/* One step of the event.stored walk. Returns 1 when it published or moved
 * the checkpoint, 2 when a horizon is waiting to settle, 0 when idle. */
static int walk_stored(es_outbox_t *o)
{
    if (!o->have_mark) {
        /* The mark first, then (next statement, so a later snapshot) the
         * transactions still running: see event.position_mark. */
        PGresult *r = query(o, "SELECT event.position_mark()", 0, NULL);
        if (r == NULL)
            return 0;
        o->mark = es_pg_int(r, 0, 0);
        PQclear(r);
        r = query(o, "SELECT pg_current_snapshot()::text", 0, NULL);
        if (r == NULL)
            return 0;
        snprintf(o->snapshot, sizeof(o->snapshot), "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        o->have_mark = true;
    }
    const char *sp[1] = {o->snapshot};
    PGresult *r = query(o, "SELECT event.snapshot_settled($1)", 1, sp);
    if (r == NULL)
        return 0;
    bool settled = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!settled)
        return 2;
    int64_t horizon = o->mark;
    o->have_mark = false;

    r = query(o, "SELECT position FROM event.outbox_state WHERE name = 'event.stored'", 0, NULL);
    if (r == NULL || PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    int64_t checkpoint = es_pg_int(r, 0, 0);
    PQclear(r);
    int moved = 0;
    while (checkpoint < horizon) {
        char from[24], to[24];
        snprintf(from, sizeof(from), "%lld", (long long)checkpoint);
        snprintf(to, sizeof(to), "%lld", (long long)horizon);
        const char *params[2] = {from, to};
        r = query(o,
                  "SELECT " ES_EVENT_COLUMNS " FROM event.events e WHERE e.position > $1::bigint "
                  "AND e.position <= $2::bigint ORDER BY e.position LIMIT " ES_STR(PAGE),
                  2, params);
        if (r == NULL)
            return moved;
        int n = PQntuples(r);
        bool ok = true;
        for (int i = 0; i < n && ok; i++)
            ok = es_publish_stored(o->pub, r, i, 0) == ES_OK;
        ok = acked(o) && ok;
        int64_t last = n < PAGE ? horizon : es_pg_int(r, n - 1, ES_COL_POSITION);
        PQclear(r);
        if (!ok) {
            es_warn("event.stored publication interrupted at position %lld; will resume",
                    (long long)checkpoint);
            return moved;
        }
        char lasts[24];
        snprintf(lasts, sizeof(lasts), "%lld", (long long)last);
        const char *up[1] = {lasts};
        r = query(o,
                  "UPDATE event.outbox_state SET position = greatest(position, $1::bigint), "
                  "updated_at = now() "
                  "WHERE name = 'event.stored'",
                  1, up);
        if (r == NULL)
            return moved;
        PQclear(r);
        checkpoint = last;
        moved = 1;
    }
    return moved;
}

/* Publishes what event.outbox holds; deletes what was acknowledged. */
static int drain_spill(es_outbox_t *o)
{
    PGresult *r = query(o,
                        "SELECT id, subject, msg_id, payload FROM event.outbox ORDER BY id "
                        "LIMIT " ES_STR(PAGE),
                        0, NULL);
    if (r == NULL)
        return 0;
    int n = PQntuples(r);
    if (n == 0) {
        PQclear(r);
        return 0;
    }
    bool ok = true;
    for (int i = 0; i < n && ok; i++)
        ok = es_pubset_publish(o->pub, PQgetvalue(r, i, 1), PQgetvalue(r, i, 3),
                               (size_t)PQgetlength(r, i, 3), PQgetvalue(r, i, 2)) == ES_OK;
    ok = acked(o) && ok;
    char maxid[24];
    snprintf(maxid, sizeof(maxid), "%s", PQgetvalue(r, n - 1, 0));
    PQclear(r);
    if (!ok)
        return 0;
    const char *params[1] = {maxid};
    PQclear(query(o, "DELETE FROM event.outbox WHERE id <= $1::bigint", 1, params));
    return 1;
}

static void wait_ms(es_outbox_t *o, int64_t ms)
{
    struct timespec until = es_time_realtime_in(ms);
    pthread_mutex_lock(&o->mu);
    while (!o->woken && !o->stopping) {
        if (pthread_cond_timedwait(&o->cv, &o->mu, &until) != 0)
            break;
    }
    o->woken = false;
    pthread_mutex_unlock(&o->mu);
}

static bool stopping(es_outbox_t *o)
{
    pthread_mutex_lock(&o->mu);
    bool s = o->stopping;
    pthread_mutex_unlock(&o->mu);
    return s;
}

static void *run(void *arg)
{
    es_outbox_t *o = arg;
    int64_t poll_ms = (int64_t)(o->cfg->processing.interval_seconds * 1000);
    while (!stopping(o)) {
        if (!o->leader) {
            PGresult *r =
                query(o, "SELECT pg_try_advisory_lock(" ES_STR(PUBLISHER_LOCK_KEY) ")", 0, NULL);
            o->leader = r != NULL && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
            PQclear(r);
            if (o->leader)
                es_info("this worker publishes event.stored now");
            else {
                wait_ms(o, 2000);
                continue;
            }
        }
        int step = 0;
        if (es_nats_connected(o->nats) && es_nats_stream_ready(o->nats)) {
            step = walk_stored(o);
            step |= drain_spill(o);
        }
        if (step & 2)
            wait_ms(o, 2); /* a horizon is settling: look again very soon */
        else if (step == 0)
            wait_ms(o, ES_MIN(poll_ms, 1000));
    }
    return NULL;
}

es_outbox_t *es_outbox_start(const es_config_t *cfg, const char *conninfo)
{
    es_outbox_t *o = es_xcalloc(1, sizeof(*o));
    o->cfg = cfg;
    es_pgsync_init(&o->db, conninfo, "event.stored publisher");
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    o->nats = es_nats_open(cfg, "event_service publisher");
    o->pub = es_pubset_open(o->nats);
    if (pthread_create(&o->thread, NULL, run, o) != 0) {
        es_error("cannot start the publisher thread");
        abort();
    }
    return o;
}

void es_outbox_wake(es_outbox_t *o)
{
    pthread_mutex_lock(&o->mu);
    o->woken = true;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

void es_outbox_stop(es_outbox_t *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->mu);
    o->stopping = true;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->thread, NULL);
    es_pgsync_close(&o->db); /* releases the publisher lock */
    es_pubset_close(o->pub, ACK_WAIT_MS);
    es_nats_close(o->nats);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o);
}
