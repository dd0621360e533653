#include "processor-worker/worker.h"

#include "common/event_row.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/worker.h"
#include "processor-worker/backend.h"
#include "processor-worker/delivery.h"
#include "processor-worker/outbox.h"
#include "processor-worker/pworker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t es_pworker_stop = 0;

static void on_signal(int sig)
{
    (void)sig;
    es_pworker_stop = 1;
}

/* Wake-ups from the API workers arrive on a nats.c thread. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t gen; /* bumped by each wake-up: every waiting loop sees it */
    es_outbox_t *outbox;
    es_delivery_t *delivery;
} wake = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL, NULL};

static void on_wake_delivery(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    natsMsg_Destroy(msg);
    if (wake.delivery != NULL)
        es_delivery_wake(wake.delivery);
}

/* A batch created deliveries: this process's sender looks at once, and so do
 * the other instances'. */
static void deliveries_created(es_pworker_t *w)
{
    es_delivery_wake(wake.delivery);
    (void)es_nats_publish(w->nats, ES_WAKE_DELIVERY, "", 0);
}

static void on_wake(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    natsMsg_Destroy(msg);
    pthread_mutex_lock(&wake.mu);
    wake.gen++;
    pthread_cond_broadcast(&wake.cv);
    pthread_mutex_unlock(&wake.mu);
    if (wake.outbox != NULL)
        es_outbox_wake(wake.outbox);
}

/* Sleeps up to ms, returning early on a wake-up or a stop request. */
static void wait_for_work(es_pworker_t *w, int64_t ms)
{
    int64_t until = es_time_mono_ms() + ms;
    pthread_mutex_lock(&wake.mu);
    while (wake.gen == w->wake_seen && !es_pworker_stop) {
        int64_t left = until - es_time_mono_ms();
        if (left <= 0)
            break;
        struct timespec ts = es_time_realtime_in(ES_MIN(left, 500));
        pthread_cond_timedwait(&wake.cv, &wake.mu, &ts);
    }
    w->wake_seen = wake.gen;
    pthread_mutex_unlock(&wake.mu);
}

void es_pworker_heartbeat(es_pworker_t *w)
{
    if (w->master_fd < 0)
        return; /* processing threads: the main thread beats for the process */
    if (!es_worker_heartbeat(w->master_fd, &w->last_beat_ms))
        es_pworker_stop = 1;
}

PGresult *es_pworker_query(es_pworker_t *w, const char *what, const char *sql, int nparams,
                           const char *const *params)
{
    return es_pgsync_query(&w->db, what, sql, nparams, params);
}

/* Milliseconds until the earliest queued event is due (a retry waiting out
 * its backoff, or a lease running out); a large value when none is queued. */
static int64_t next_due_ms(es_pworker_t *w)
{
    PGresult *r = es_pworker_query(
        w, "next due",
        "SELECT ceil(extract(epoch FROM min(run_at) - clock_timestamp()) * 1000)::bigint "
        "FROM event.processing_queue",
        0, NULL);
    if (r == NULL)
        return 1000;
    int64_t ms = PQgetisnull(r, 0, 0) ? INT64_MAX / 2 : es_pg_int(r, 0, 0);
    PQclear(r);
    return ES_MAX(ms, 5);
}

/* One claim loop (processing.concurrency of them per process): its own
 * database connection and curl handle; the NATS connection is shared. */
static void *claim_loop(void *arg)
{
    es_pworker_t *w = arg;
    int64_t poll_ms = (int64_t)(w->cfg->processing.interval_seconds * 1000);
    while (!es_pworker_stop) {
        int n = es_batch_process(w);
        if (n > 0)
            continue;
        wait_for_work(w, n < 0 ? ES_MIN(poll_ms, 1000) : ES_MIN(poll_ms, next_due_ms(w)));
    }
    es_batch_cleanup(w);
    return NULL;
}

int es_processor_worker_main(const es_config_t *cfg, int master_fd)
{
    es_worker_signals(on_signal);

    char host[32] = "host";
    gethostname(host, sizeof(host) - 1);
    char *conninfo = es_config_conninfo(cfg);
    es_nats_t *nats = es_nats_open(cfg, "event_service processor");
    wake.outbox = es_outbox_start(cfg, conninfo);
    wake.delivery = es_delivery_start(cfg, conninfo);
    es_backend_t *backend = es_backend_start(cfg, conninfo);
    natsSubscription *sub = NULL, *sub_delivery = NULL;
    if (es_nats_conn(nats) != NULL &&
        (natsConnection_Subscribe(&sub, es_nats_conn(nats), ES_WAKE_SUBJECT, on_wake, NULL) !=
             NATS_OK ||
         natsConnection_Subscribe(&sub_delivery, es_nats_conn(nats), ES_WAKE_DELIVERY,
                                  on_wake_delivery, NULL) != NATS_OK))
        es_warn("cannot subscribe to wake-ups; polling every %.1f s",
                cfg->processing.interval_seconds);

    int nloops = cfg->processing.concurrency;
    es_pworker_t *loops = es_xcalloc((size_t)nloops, sizeof(es_pworker_t));
    pthread_t *threads = es_xcalloc((size_t)nloops, sizeof(pthread_t));
    for (int i = 0; i < nloops; i++) {
        es_pworker_t *w = &loops[i];
        w->cfg = cfg;
        w->master_fd = -1;
        w->nats = nats;
        w->pub = es_pubset_open(nats);
        w->on_deliveries = deliveries_created;
        snprintf(w->id, sizeof(w->id), "%s:%d.%d", host, (int)getpid(), i);
        es_pgsync_init(&w->db, conninfo, "processing");
        w->multi = curl_multi_init();
        curl_multi_setopt(w->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 256L);
        if (pthread_create(&threads[i], NULL, claim_loop, w) != 0) {
            es_error("cannot start processing thread %d", i);
            abort();
        }
    }
    es_info("processor worker running (%d claim loops)", nloops);

    /* The main thread keeps the process's heartbeat and notices the master. */
    es_pworker_t beat;
    memset(&beat, 0, sizeof(beat));
    beat.master_fd = master_fd;
    while (!es_pworker_stop) {
        es_pworker_heartbeat(&beat);
        usleep(100 * 1000);
    }

    es_info("processor worker stopping");
    pthread_mutex_lock(&wake.mu);
    pthread_cond_broadcast(&wake.cv);
    pthread_mutex_unlock(&wake.mu);
    for (int i = 0; i < nloops; i++)
        pthread_join(threads[i], NULL); /* each finishes its batch */
    if (sub != NULL)
        natsSubscription_Destroy(sub);
    if (sub_delivery != NULL)
        natsSubscription_Destroy(sub_delivery);
    es_backend_stop(backend);
    es_delivery_stop(wake.delivery);
    wake.delivery = NULL;
    es_outbox_stop(wake.outbox);
    wake.outbox = NULL;
    for (int i = 0; i < nloops; i++)
        es_pubset_close(loops[i].pub, 0); /* each settled its last batch */
    es_nats_close(nats);
    for (int i = 0; i < nloops; i++) {
        curl_multi_cleanup(loops[i].multi);
        es_pgsync_close(&loops[i].db);
    }
    free(loops);
    free(threads);
    free(conninfo);
    return 0;
}
