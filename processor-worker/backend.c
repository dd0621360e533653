#include "processor-worker/backend.h"

#include "common/buf.h"
#include "common/event_row.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/nats.h"
#include "common/pgsync.h"
#include "common/timeutil.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define FETCH_BATCH 200
#define FETCH_WAIT_MS 500

struct es_backend {
    const es_config_t *cfg;
    es_pgsync_t db;
    es_nats_t *nats;
    natsSubscription *sub;
    pthread_t thread;
    atomic_bool stopping;
};

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

static es_category_t category_of(const char *type)
{
    if (contains_ci(type, "user"))
        return ES_CAT_USER_LIFECYCLE;
    if (contains_ci(type, "payment"))
        return ES_CAT_PAYMENT;
    if (contains_ci(type, "order"))
        return ES_CAT_ORDER;
    if (contains_ci(type, "task"))
        return ES_CAT_TASK;
    if (contains_ci(type, "device"))
        return ES_CAT_DEVICE_STATUS;
    return ES_CAT_SYSTEM;
}

es_rc_t es_backend_to_event(es_event_t *ev, const char *subject, const char *subject_pattern,
                            const json_t *payload, const char *id, es_field_error_t *err)
{
    if (!json_is_object(payload)) {
        es_field_error_set(err, "", "payload", "must be a JSON object");
        return ES_INVALID;
    }
    const json_t *t = json_object_get(payload, "type");
    if (!json_is_string(t))
        t = json_object_get(payload, "event_type");
    char *type = NULL;
    if (json_is_string(t) && json_string_length(t) > 0) {
        type = es_xstrdup(json_string_value(t));
    } else {
        /* "events.backend.>" and "events.backend.user.created" -> "user.created" */
        size_t plen = strlen(subject_pattern);
        if (plen > 1 && subject_pattern[plen - 1] == '>' && strlen(subject) > plen - 1 &&
            strncmp(subject, subject_pattern, plen - 1) == 0)
            type = es_xstrdup(subject + plen - 1);
    }
    if (type == NULL || type[0] == '\0' || strlen(type) > ES_FIELD_MAX) {
        free(type);
        es_field_error_set(err, "", "type", "no event type (payload \"type\" or subject)");
        return ES_INVALID;
    }
    es_event_set_str(&ev->event_type, type);
    ev->source = ES_SOURCE_BACKEND;
    ev->category = category_of(type);
    free(type);

    const json_t *data = json_object_get(payload, "data");
    json_decref(ev->data);
    ev->data = json_copy(json_is_object(data) ? (json_t *)data : (json_t *)payload);
    const json_t *uid = json_object_get(ev->data, "user_id");
    if (json_is_string(uid) && json_string_length(uid) <= ES_FIELD_MAX)
        es_event_set_str(&ev->user_id, json_string_value(uid));
    static const char *const id_keys[] = {"organization_id", "device_id", "correlation_id",
                                          "session_id"};
    char **slots[] = {&ev->organization_id, &ev->device_id, &ev->correlation_id, &ev->session_id};
    for (size_t i = 0; i < ES_ARRAY_LEN(id_keys); i++) {
        const json_t *v = json_object_get(payload, id_keys[i]);
        if (!json_is_string(v))
            v = json_object_get(ev->data, id_keys[i]);
        if (json_is_string(v) && json_string_length(v) <= ES_FIELD_MAX)
            es_event_set_str(slots[i], json_string_value(v));
    }
    const json_t *ts = json_object_get(payload, "timestamp");
    int64_t us;
    if (json_is_string(ts) && es_time_parse(json_string_value(ts), json_string_length(ts), &us))
        ev->timestamp_us = us;
    json_object_set_new(ev->metadata, "nats_subject", json_string(subject));
    json_object_set_new(ev->metadata, "nats_message_id", json_string(id));
    const json_t *src = json_object_get(payload, "source");
    if (json_is_string(src))
        json_object_set(ev->metadata, "publisher", (json_t *)src);

    char *name = es_xasprintf("event_service/nats/%s", id);
    es_uuid_from_name(name, strlen(name), ev->event_id);
    ev->client_id = true;
    json_t *fp = json_string(name); /* a redelivery is the same event, always */
    es_event_hash_content(ev, fp);
    json_decref(fp);
    free(name);
    return ES_OK;
}

static bool ensure_consumer(es_backend_t *b)
{
    const es_config_t *cfg = b->cfg;
    jsCtx *js = es_nats_js(b->nats);
    jsErrCode jerr = 0;
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = cfg->nats.backend_stream;
    const char *subjects[1] = {cfg->nats.backend_subject};
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    jsStreamInfo *si = NULL;
    natsStatus s = js_AddStream(&si, js, &sc, NULL, &jerr);
    if (si != NULL)
        jsStreamInfo_Destroy(si);
    if (s != NATS_OK && jerr != JSStreamNameExistErr) {
        es_warn("backend stream %s not ready: %s (error %d); is %s captured by another stream? "
                "Set nats.backend_stream to its name",
                cfg->nats.backend_stream, natsStatus_GetText(s), (int)jerr,
                cfg->nats.backend_subject);
        return false;
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = cfg->nats.backend_consumer;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = 30LL * 1000000000LL;
    cc.FilterSubject = cfg->nats.backend_subject;
    cc.DeliverPolicy = js_DeliverAll;
    jsConsumerInfo *ci = NULL;
    s = js_AddConsumer(&ci, js, cfg->nats.backend_stream, &cc, NULL, &jerr);
    if (ci != NULL)
        jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK)
        es_debug("backend consumer add: %s (error %d); binding to it anyway", natsStatus_GetText(s),
                 (int)jerr);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = cfg->nats.backend_stream;
    so.Consumer = cfg->nats.backend_consumer;
    s = js_PullSubscribe(&b->sub, js, cfg->nats.backend_subject, cfg->nats.backend_consumer, NULL,
                         &so, &jerr);
    if (s != NATS_OK) {
        es_warn("backend consumer %s: %s (error %d)", cfg->nats.backend_consumer,
                natsStatus_GetText(s), (int)jerr);
        b->sub = NULL;
        return false;
    }
    es_info("consuming %s through durable consumer %s", cfg->nats.backend_subject,
            cfg->nats.backend_consumer);
    return true;
}

/* Stores one fetched batch; acknowledges what was stored, terminates what can
 * never be an event, leaves the rest for redelivery. */
static void handle(es_backend_t *b, natsMsgList *list)
{
    int n = list->Count;
    es_event_t *events = es_xcalloc((size_t)n, sizeof(es_event_t));
    bool *ok = es_xcalloc((size_t)n, sizeof(bool));
    int64_t now = es_time_now_us();
    es_buf_t reqs = ES_BUF_INIT;
    es_buf_putc(&reqs, '[');
    int stored = 0;
    for (int i = 0; i < n; i++) {
        natsMsg *m = list->Msgs[i];
        es_event_init(&events[i], now);
        char id[160];
        const char *hdr = NULL;
        const json_t *envelope_id = NULL;
        json_t *payload = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
        if (json_is_object(payload))
            envelope_id = json_object_get(payload, "id");
        if (natsMsgHeader_Get(m, "Nats-Msg-Id", &hdr) == NATS_OK && hdr != NULL && hdr[0])
            snprintf(id, sizeof(id), "msg:%s", hdr);
        else if (json_is_string(envelope_id) && json_string_length(envelope_id) > 0)
            snprintf(id, sizeof(id), "id:%s", json_string_value(envelope_id));
        else {
            jsMsgMetaData *meta = NULL;
            uint64_t seq = 0;
            if (natsMsg_GetMetaData(&meta, m) == NATS_OK && meta != NULL)
                seq = meta->Sequence.Stream;
            jsMsgMetaData_Destroy(meta);
            snprintf(id, sizeof(id), "seq:%s:%llu", b->cfg->nats.backend_stream,
                     (unsigned long long)seq);
        }
        es_field_error_t err;
        if (payload == NULL ||
            es_backend_to_event(&events[i], natsMsg_GetSubject(m), b->cfg->nats.backend_subject,
                                payload, id, &err) != ES_OK) {
            es_warn("backend message on %s (%s) is not an event (%s); dropped",
                    natsMsg_GetSubject(m), id, payload == NULL ? "not JSON" : err.msg);
            natsMsg_Term(m, NULL);
            json_decref(payload);
            continue;
        }
        json_decref(payload);
        es_buf_printf(&reqs, "%s{\"req\":%d,\"check\":true,\"events\":[", stored ? "," : "", i);
        es_event_append_ingest_json(&reqs, &events[i], i, i);
        es_buf_puts(&reqs, "]}");
        ok[i] = true;
        stored++;
    }
    es_buf_putc(&reqs, ']');
    if (stored > 0) {
        const char *params[1] = {reqs.data};
        PGresult *r = NULL;
        /* A copy of one of these messages stored meanwhile by another worker
         * (committed after event.ingest looked) fails the insert on the
         * primary key; looked at again, it is an existing event. Each such
         * failure means one more of this batch's ids has been committed
         * elsewhere, so stored + 1 attempts suffice. Two workers inserting
         * copies in different orders can also deadlock on the key: the
         * survivor commits, and the loser's next attempt finds its rows. */
        for (int attempt = 0; attempt <= stored + 2 && r == NULL; attempt++) {
            r = es_pgsync_query(&b->db, "store backend events",
                                "SELECT req, code, detail FROM event.ingest($1::jsonb) WHERE "
                                "event_id IS NULL AND code = 409",
                                1, params);
            if (r == NULL && strcmp(b->db.sqlstate, "23505") != 0 &&
                strcmp(b->db.sqlstate, "40P01") != 0)
                break;
        }
        if (r == NULL) {
            es_warn("backend: %d events not stored (SQLSTATE %s); they will be redelivered", stored,
                    b->db.sqlstate[0] ? b->db.sqlstate : "none");
        } else {
            /* The id is taken by an event with other content (one created
             * through the API under this message's id): the message can
             * never be stored, so it is terminated, not redelivered forever. */
            for (int k = 0; k < PQntuples(r); k++) {
                int i = (int)es_pg_int(r, k, 0);
                if (i < 0 || i >= n)
                    continue;
                ok[i] = false;
                stored--;
                es_warn("backend message on %s not stored: %s; terminated",
                        natsMsg_GetSubject(list->Msgs[i]), PQgetvalue(r, k, 2));
                natsMsg_Term(list->Msgs[i], NULL);
            }
            PQclear(r);
            (void)es_nats_publish(b->nats, ES_WAKE_SUBJECT, "", 0);
            es_metrics_ingested(ES_SOURCE_BACKEND, stored);
            for (int i = 0; i < n; i++)
                if (ok[i])
                    natsMsg_Ack(list->Msgs[i], NULL);
        }
    }
    es_buf_free(&reqs);
    for (int i = 0; i < n; i++)
        es_event_clear(&events[i]);
    free(events);
    free(ok);
}

static void *run(void *arg)
{
    es_backend_t *b = arg;
    while (!atomic_load(&b->stopping)) {
        if (b->sub == NULL) {
            if (!es_nats_connected(b->nats) || !ensure_consumer(b)) {
                for (int i = 0; i < 10 && !atomic_load(&b->stopping); i++)
                    usleep(100 * 1000);
                continue;
            }
        }
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus s = natsSubscription_Fetch(&list, b->sub, FETCH_BATCH, FETCH_WAIT_MS, &jerr);
        if (s == NATS_OK && list.Count > 0)
            handle(b, &list);
        else if (s != NATS_OK && s != NATS_TIMEOUT && !atomic_load(&b->stopping)) {
            es_debug("backend fetch: %s (error %d)", natsStatus_GetText(s), (int)jerr);
            usleep(200 * 1000);
            if (s == NATS_INVALID_SUBSCRIPTION || s == NATS_CONNECTION_CLOSED) {
                natsSubscription_Destroy(b->sub); /* keeps the durable consumer */
                b->sub = NULL;
            }
        }
        natsMsgList_Destroy(&list);
    }
    return NULL;
}

es_backend_t *es_backend_start(const es_config_t *cfg, const char *conninfo)
{
    if (!cfg->nats.enabled || !cfg->nats.backend_enabled)
        return NULL;
    es_backend_t *b = es_xcalloc(1, sizeof(*b));
    b->cfg = cfg;
    es_pgsync_init(&b->db, conninfo, "backend ingestion");
    b->db.retried_states = "23505 40P01"; /* copies stored by another worker: see handle() */
    b->nats = es_nats_open(cfg, "event_service backend");
    if (pthread_create(&b->thread, NULL, run, b) != 0) {
        es_error("cannot start the backend consumer thread");
        abort();
    }
    return b;
}

void es_backend_stop(es_backend_t *b)
{
    if (b == NULL)
        return;
    atomic_store(&b->stopping, true);
    pthread_join(b->thread, NULL);
    if (b->sub != NULL)
        natsSubscription_Destroy(b->sub); /* Destroy, not Unsubscribe: the durable stays */
    es_nats_close(b->nats);
    es_pgsync_close(&b->db);
    free(b);
}
