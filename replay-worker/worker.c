#include "replay-worker/worker.h"

#include "common/log.h"
#include "common/timeutil.h"
#include "common/worker.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop = 0;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;
} wake = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void on_wake(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    natsMsg_Destroy(msg);
    pthread_mutex_lock(&wake.mu);
    wake.woken = true;
    pthread_cond_signal(&wake.cv);
    pthread_mutex_unlock(&wake.mu);
}

bool es_rworker_alive(es_rworker_t *w)
{
    if (!es_worker_heartbeat(w->master_fd, &w->last_beat_ms))
        g_stop = 1;
    return !g_stop;
}

/* Waits up to ms for a wake-up, heartbeating. */
static void wait_for_work(es_rworker_t *w, int64_t ms)
{
    int64_t until = es_time_mono_ms() + ms;
    pthread_mutex_lock(&wake.mu);
    while (!wake.woken && !g_stop) {
        int64_t left = until - es_time_mono_ms();
        if (left <= 0)
            break;
        struct timespec ts = es_time_realtime_in(ES_MIN(left, 500));
        pthread_cond_timedwait(&wake.cv, &wake.mu, &ts);
        pthread_mutex_unlock(&wake.mu);
        (void)es_rworker_alive(w);
        pthread_mutex_lock(&wake.mu);
    }
    wake.woken = false;
    pthread_mutex_unlock(&wake.mu);
}

int es_replay_worker_main(const es_config_t *cfg, int master_fd)
{
    es_rworker_t w;
    memset(&w, 0, sizeof(w));
    w.cfg = cfg;
    w.master_fd = master_fd;
    char host[32] = "host";
    gethostname(host, sizeof(host) - 1);
    snprintf(w.id, sizeof(w.id), "%s:%d", host, (int)getpid());

    es_worker_signals(on_signal);

    char *conninfo = es_config_conninfo(cfg);
    es_pgsync_init(&w.db, conninfo, "replay");
    free(conninfo);
    w.nats = es_nats_open(cfg, "event_service replay");
    w.pub = es_pubset_open(w.nats);
    natsSubscription *sub = NULL;
    if (es_nats_conn(w.nats) != NULL &&
        natsConnection_Subscribe(&sub, es_nats_conn(w.nats), ES_WAKE_REPLAY, on_wake, NULL) !=
            NATS_OK)
        es_warn("cannot subscribe to replay wake-ups; polling");

    es_info("replay worker running (%zu schedules)", cfg->replay.nschedules);
    int64_t next_tick = 0;
    while (es_rworker_alive(&w)) {
        int64_t now = es_time_mono_ms();
        if (now >= next_tick) {
            es_replay_fire_schedules(&w);
            /* Soon after each whole minute (cron's resolution), and on start. */
            int64_t wall = es_time_now_us() / 1000;
            next_tick = now + (60000 - wall % 60000) + 200;
            if (next_tick - now > 5000 && cfg->replay.nschedules > 0)
                next_tick = ES_MIN(next_tick, now + 5000);
        }
        if (es_replay_run_one(&w))
            continue;
        wait_for_work(&w, ES_MIN(1000, ES_MAX(next_tick - es_time_mono_ms(), 10)));
    }
    es_info("replay worker stopping");
    if (sub != NULL)
        natsSubscription_Destroy(sub);
    es_pubset_close(w.pub, 2000);
    es_nats_close(w.nats);
    es_pgsync_close(&w.db);
    return 0;
}
