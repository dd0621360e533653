#include "common/nats.h"

#include "common/log.h"
#include "common/timeutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PENDING_ACKS 65536

struct es_nats {
    const es_config_t *cfg;
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    atomic_bool connected;
    atomic_bool stream_ready;
    atomic_int_fast64_t last_fail_log_ms; /* publications not acknowledged: warned then */
    pthread_t helper;
    bool helper_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool need_stream; /* guarded by mu */
    bool closing;     /* guarded by mu */
    bool closed;      /* guarded by mu: the closed callback ran, no callback follows */
};

static void wake_helper(es_nats_t *n)
{
    pthread_mutex_lock(&n->mu);
    n->need_stream = true;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

static void on_connected(natsConnection *nc, void *closure)
{
    es_nats_t *n = closure;
    atomic_store(&n->connected, true);
    es_info("NATS connected");
    wake_helper(n);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    es_nats_t *n = closure;
    if (atomic_exchange(&n->connected, false))
        es_warn("NATS disconnected; reconnecting in the background");
    atomic_store(&n->stream_ready, false);
}

static void on_closed(natsConnection *nc, void *closure)
{
    es_nats_t *n = closure;
    pthread_mutex_lock(&n->mu);
    n->closed = true;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}


/* Creates or updates the stream the service publishes on. Blocking: runs on
 * the helper thread only. */
static bool ensure_stream(es_nats_t *n)
{
    const es_config_t *cfg = n->cfg;
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = cfg->nats.stream;
    sc.Subjects = (const char **)cfg->nats.subjects.items;
    sc.SubjectsLen = (int)cfg->nats.subjects.len;
    sc.Storage = js_FileStorage;
    sc.MaxMsgs = cfg->nats.max_messages;
    sc.Duplicates = (int64_t)cfg->nats.duplicate_window_seconds * 1000000000LL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(&si, n->js, &sc, NULL, &jerr);
    if (s != NATS_OK && jerr == JSStreamNameExistErr)
        s = js_UpdateStream(&si, n->js, &sc, NULL, &jerr);
    if (si != NULL)
        jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        es_warn("JetStream stream %s not ready: %s (error %d)", cfg->nats.stream,
                natsStatus_GetText(s), (int)jerr);
        return false;
    }
    return true;
}

static void *helper_main(void *arg)
{
    es_nats_t *n = arg;
    pthread_mutex_lock(&n->mu);
    while (!n->closing) {
        if (!n->need_stream) {
            pthread_cond_wait(&n->cv, &n->mu);
            continue;
        }
        n->need_stream = false;
        pthread_mutex_unlock(&n->mu);
        bool ok = atomic_load(&n->connected) && ensure_stream(n);
        atomic_store(&n->stream_ready, ok);
        pthread_mutex_lock(&n->mu);
        if (!ok && atomic_load(&n->connected) && !n->closing) {
            struct timespec until = es_time_realtime_in(1000);
            pthread_cond_timedwait(&n->cv, &n->mu, &until);
            n->need_stream = true;
        }
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

es_nats_t *es_nats_open(const es_config_t *cfg, const char *name)
{
    es_nats_t *n = es_xcalloc(1, sizeof(*n));
    n->cfg = cfg;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    if (!cfg->nats.enabled)
        return n;

    natsOptions_Create(&n->opts);
    natsOptions_SetURL(n->opts, cfg->nats.url);
    natsOptions_SetName(n->opts, name);
    natsOptions_SetMaxReconnect(n->opts, -1);
    natsOptions_SetReconnectWait(n->opts, 250);
    natsOptions_SetReconnectBufSize(n->opts, 8 * 1024 * 1024);
    natsOptions_SetTimeout(n->opts, 2000);
    natsOptions_SetRetryOnFailedConnect(n->opts, true, on_connected, n);
    natsOptions_SetReconnectedCB(n->opts, on_connected, n);
    natsOptions_SetDisconnectedCB(n->opts, on_disconnected, n);
    natsOptions_SetClosedCB(n->opts, on_closed, n);

    natsStatus s = natsConnection_Connect(&n->nc, n->opts);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
        es_error("NATS connection to %s cannot start: %s", cfg->nats.url, natsStatus_GetText(s));
        return n;
    }
    if (s == NATS_NOT_YET_CONNECTED)
        es_warn("NATS server %s not reachable yet; retrying in the background", cfg->nats.url);

    jsOptions jo; /* stream management and consumers; publications go through sets */
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    s = natsConnection_JetStream(&n->js, n->nc, &jo);
    if (s != NATS_OK)
        es_error("JetStream context: %s", natsStatus_GetText(s));

    if (pthread_create(&n->helper, NULL, helper_main, n) == 0)
        n->helper_started = true;
    if (natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED)
        on_connected(n->nc, n);
    return n;
}

bool es_nats_connected(es_nats_t *n)
{
    return n != NULL && atomic_load(&n->connected);
}

bool es_nats_stream_ready(es_nats_t *n)
{
    return n != NULL && atomic_load(&n->stream_ready);
}

bool es_nats_settled(es_nats_t *n)
{
    return n == NULL || !n->cfg->nats.enabled || !atomic_load(&n->connected) ||
           atomic_load(&n->stream_ready);
}

struct es_pubset {
    es_nats_t *n;
    jsCtx *js;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int outstanding;  /* published, answer not yet handled (guarded by mu) */
    natsMsg **failed; /* answered with an error, kept for settle (guarded by mu) */
    int nfailed, cap;
};

static void on_set_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    es_pubset_t *p = closure;
    pthread_mutex_lock(&p->mu);
    if (pae != NULL) {
        if (p->nfailed == p->cap) {
            p->cap = p->cap ? 2 * p->cap : 16;
            p->failed = es_xrealloc(p->failed, (size_t)p->cap * sizeof(natsMsg *));
        }
        p->failed[p->nfailed++] = msg;
        msg = NULL;
    }
    if (--p->outstanding == 0)
        pthread_cond_broadcast(&p->cv); /* settle waits for none outstanding */
    pthread_mutex_unlock(&p->mu);
    natsMsg_Destroy(msg);
}

es_pubset_t *es_pubset_open(es_nats_t *n)
{
    if (n == NULL || n->nc == NULL)
        return NULL;
    es_pubset_t *p = es_xcalloc(1, sizeof(*p));
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    jsOptions jo; /* publishes never block: a full window answers at once */
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = MAX_PENDING_ACKS;
    jo.PublishAsync.AckHandler = on_set_ack;
    jo.PublishAsync.AckHandlerClosure = p;
    jo.PublishAsync.StallWait = 1;
    jo.Wait = 5000;
    natsStatus s = natsConnection_JetStream(&p->js, n->nc, &jo);
    if (s != NATS_OK) {
        es_error("JetStream context: %s", natsStatus_GetText(s));
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    return p;
}

es_rc_t es_pubset_publish(es_pubset_t *p, const char *subject, const char *data, size_t len,
                          const char *msg_id)
{
    if (p == NULL || !atomic_load(&p->n->connected))
        return ES_AGAIN;
    natsMsg *msg = NULL;
    if (natsMsg_Create(&msg, subject, NULL, data, (int)len) != NATS_OK)
        return ES_ERR;
    if (msg_id != NULL)
        natsMsgHeader_Set(msg, "Nats-Msg-Id", msg_id);
    pthread_mutex_lock(&p->mu);
    bool full = p->outstanding >= MAX_PENDING_ACKS - 16;
    p->outstanding += !full;
    pthread_mutex_unlock(&p->mu);
    if (full) {
        natsMsg_Destroy(msg);
        return ES_AGAIN;
    }
    if (js_PublishMsgAsync(p->js, &msg, NULL) != NATS_OK) {
        pthread_mutex_lock(&p->mu);
        p->outstanding--;
        pthread_mutex_unlock(&p->mu);
        natsMsg_Destroy(msg); /* still ours when the call failed */
        return ES_AGAIN;
    }
    return ES_OK;
}

static void hand_over(natsMsg *m, es_pubset_failed_cb failed, void *closure)
{
    const char *msg_id = NULL;
    if (natsMsgHeader_Get(m, "Nats-Msg-Id", &msg_id) != NATS_OK)
        msg_id = NULL;
    if (failed != NULL)
        failed(natsMsg_GetSubject(m), msg_id, natsMsg_GetData(m), natsMsg_GetDataLength(m),
               closure);
}

int es_pubset_settle(es_pubset_t *p, int timeout_ms, es_pubset_failed_cb failed, void *closure)
{
    if (p == NULL)
        return 0;
    struct timespec until = es_time_realtime_in(timeout_ms);
    pthread_mutex_lock(&p->mu);
    while (p->outstanding > 0)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0)
            break;
    bool unanswered = p->outstanding > 0;
    pthread_mutex_unlock(&p->mu);
    /* Still unanswered: taken back from the library (an answer that comes
     * later is dropped; a resend under the same Nats-Msg-Id is a duplicate
     * the stream discards). Only then: nats.c 3.4 crashes asking a context
     * that never had a publication in flight. */
    natsMsgList pending = {0};
    if (unanswered && js_PublishAsyncGetPendingList(&pending, p->js) == NATS_OK) {
        pthread_mutex_lock(&p->mu);
        p->outstanding -= pending.Count;
        if (p->outstanding == 0)
            pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&p->mu);
    natsMsg **gone = p->failed;
    int ngone = p->nfailed;
    p->failed = NULL;
    p->nfailed = p->cap = 0;
    pthread_mutex_unlock(&p->mu);
    int n = ngone + pending.Count;
    if (n > 0) {
        int64_t now = es_time_mono_ms();
        int64_t last = atomic_load(&p->n->last_fail_log_ms);
        if (now - last > 5000 &&
            atomic_compare_exchange_strong(&p->n->last_fail_log_ms, &last, now))
            es_warn("%d JetStream publications (to %s, ...) not acknowledged: %d errors, %d no "
                    "answer in %d ms",
                    n, natsMsg_GetSubject(ngone > 0 ? gone[0] : pending.Msgs[0]), ngone,
                    pending.Count, timeout_ms);
    }
    for (int i = 0; i < ngone; i++) {
        hand_over(gone[i], failed, closure);
        natsMsg_Destroy(gone[i]);
    }
    free(gone);
    for (int i = 0; i < pending.Count; i++)
        hand_over(pending.Msgs[i], failed, closure);
    if (pending.Msgs != NULL)
        natsMsgList_Destroy(&pending);
    return n;
}

void es_pubset_close(es_pubset_t *p, int timeout_ms)
{
    if (p == NULL)
        return;
    es_pubset_settle(p, timeout_ms, NULL, NULL);
    pthread_mutex_lock(&p->mu);
    int left = p->outstanding;
    pthread_mutex_unlock(&p->mu);
    jsCtx_Destroy(p->js);
    if (left > 0)
        return; /* an answer may still be handled: the set stays (the process is ending) */
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

es_rc_t es_nats_publish(es_nats_t *n, const char *subject, const char *data, size_t len)
{
    if (n == NULL || n->nc == NULL || !atomic_load(&n->connected))
        return ES_AGAIN;
    return natsConnection_Publish(n->nc, subject, data, (int)len) == NATS_OK ? ES_OK : ES_AGAIN;
}

natsConnection *es_nats_conn(es_nats_t *n)
{
    return n ? n->nc : NULL;
}

jsCtx *es_nats_js(es_nats_t *n)
{
    return n ? n->js : NULL;
}

void es_nats_close(es_nats_t *n)
{
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->mu);
    n->closing = true;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    if (n->helper_started)
        pthread_join(n->helper, NULL);
    if (n->nc != NULL) {
        /* Callbacks run on a library thread; n may go only after the last
         * one (closed) has run. */
        natsConnection_Close(n->nc);
        struct timespec until = es_time_realtime_in(5000);
        pthread_mutex_lock(&n->mu);
        while (!n->closed)
            if (pthread_cond_timedwait(&n->cv, &n->mu, &until) != 0)
                break;
        pthread_mutex_unlock(&n->mu);
    }
    if (n->js != NULL)
        jsCtx_Destroy(n->js);
    if (n->nc != NULL)
        natsConnection_Destroy(n->nc);
    if (n->opts != NULL)
        natsOptions_Destroy(n->opts);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n);
}
