#include "api-worker/worker.h"

#include "api-worker/auth.h"
#include "api-worker/client.h"
#include "api-worker/ingest.h"
#include "api-worker/pg.h"
#include "api-worker/routes.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

es_api_t *es_api = NULL;

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    es_route_dispatch(req);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    for (int i = 0; i < 32; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        h2o_accept(&es_api->accept_ctx, sock);
    }
}

/* The master's end of our socketpair: EOF means the master is gone. */
static void on_master(h2o_socket_t *sock, const char *err)
{
    if (es_worker_master_gone(es_api->master_fd)) {
        h2o_socket_read_stop(sock);
        g_stop = 1;
    }
}

static void on_compacted(void *ctx, const PGresult *res, const char *err)
{
    if (res != NULL && PQresultStatus(res) != PGRES_TUPLES_OK)
        es_warn("counter compaction failed: %s", PQresultErrorMessage(res));
}

/* Once a second: heartbeat to the master; now and then, compact counters. */
static void on_second(h2o_timeout_entry_t *entry)
{
    es_worker_beat(es_api->master_fd);
    int64_t now = es_time_mono_ms();
    if (now - es_api->last_compaction_ms > 60000) {
        es_api->last_compaction_ms = now;
        es_pgconn_t *c = es_pgpool_reader(es_api->pg);
        if (c != NULL &&
            es_pg_send(c, "SELECT event.compact_counters()", 0, NULL, on_compacted, NULL) != ES_OK)
            es_debug("counter compaction skipped: database not ready");
    }
    h2o_timeout_link(es_api->loop, &es_api->second, &es_api->second_entry);
}

/* How long a stopping worker keeps reading the connections it accepted last. */
#define STOP_GRACE_MS 200

static void begin_stop(void)
{
    if (es_api->stopping)
        return;
    es_api->stopping = true;
    es_api->stop_began_ms = es_time_mono_ms();
    es_info("stopping: finishing %d in-flight requests", es_api->inflight);
    if (es_api->listener != NULL) {
        /* Take what the kernel already queued for us before letting go. */
        on_accept(es_api->listener, NULL);
        h2o_socket_read_stop(es_api->listener);
        h2o_socket_close(es_api->listener); /* closes only this process's copy */
        es_api->listener = NULL;
    }
    h2o_context_request_shutdown(&es_api->ctx);
}

int es_api_worker_main(const es_config_t *cfg, int listen_fd, int master_fd)
{
    static es_api_t api;
    memset(&api, 0, sizeof(api));
    es_api = &api;
    api.cfg = cfg;
    api.master_fd = master_fd;
    api.last_compaction_ms = es_time_mono_ms() - 55000 + (getpid() % 20) * 1000;
    es_client_setup();
    char why[256];
    if (!es_auth_setup(why, sizeof(why))) {
        es_error("auth: %s", why);
        return ES_EXIT_FATAL;
    }

    es_worker_signals(on_signal);

    h2o_config_init(&api.globalconf);
    api.globalconf.server_name = h2o_iovec_init(H2O_STRLIT("event_service"));
    /* Bodies up to 4x the limit reach the handlers, which answer a JSON 413;
     * beyond that h2o refuses them itself. */
    api.globalconf.max_request_entity_size = (size_t)cfg->service.body_limit_bytes * 4 + 65536;
    h2o_hostconf_t *host =
        h2o_config_register_host(&api.globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_req;

    api.loop = h2o_evloop_create();
    h2o_context_init(&api.ctx, api.loop, &api.globalconf);
    api.accept_ctx.ctx = &api.ctx;
    api.accept_ctx.hosts = api.globalconf.hosts;
    h2o_timeout_init(api.loop, &api.request_timeout,
                     (uint64_t)cfg->service.request_timeout_seconds * 1000);
    h2o_timeout_init(api.loop, &api.second, 1000);

    char *conninfo = es_config_conninfo(cfg);
    api.pg = es_pgpool_create(api.loop, conninfo, cfg->database.connections_per_worker,
                              cfg->database.statement_timeout_ms, "event_service api");
    free(conninfo);
    api.nats = es_nats_open(cfg, "event_service api");
    api.ingest = es_ingest_create(api.loop, api.pg, api.nats, cfg->database.group_wait_ms);

    /* Connections are accepted once the database connections are up and a
     * reachable NATS has confirmed the stream (or after a few seconds, to
     * answer 503 rather than hang), so a fresh worker never turns requests
     * away, nor reports NATS degraded, while it is still connecting. */
    api.listener = h2o_evloop_socket_create(api.loop, listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    int64_t started = es_time_mono_ms();
    bool accepting = false;
    h2o_socket_t *master_sock =
        h2o_evloop_socket_create(api.loop, master_fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(master_sock, on_master);
    api.second_entry.cb = on_second;
    h2o_timeout_link(api.loop, &api.second, &api.second_entry);
    es_worker_beat(es_api->master_fd); /* at once: the master knows we are up */

    es_info("API worker serving");
    int64_t deadline = 0;
    for (;;) {
        if (h2o_evloop_run(api.loop, accepting ? 100 : 10) != 0 && errno != EINTR)
            es_debug("event loop returned an error: %s", strerror(errno));
        if (!accepting && !g_stop &&
            ((es_pgpool_all_ready(api.pg) && es_nats_settled(api.nats)) ||
             es_time_mono_ms() - started > 5000)) {
            accepting = true;
            h2o_socket_read_start(api.listener, on_accept);
            char ready = 'R'; /* tells the master this worker serves now */
            ssize_t n = write(master_fd, &ready, 1);
            (void)n;
            if (!es_pgpool_all_ready(api.pg))
                es_warn("serving without a database connection (requests get 503)");
        }
        if (g_stop && !api.stopping) {
            begin_stop();
            deadline = es_time_mono_ms() + (int64_t)cfg->service.shutdown_timeout_seconds * 1000;
        }
        if (api.stopping) {
            /* The connections taken from the queue as the stop began have
             * sent their requests, but those are read only by the next
             * turns of the loop: leaving before would reset them. */
            if (api.inflight == 0 && es_ingest_pending(api.ingest) == 0 &&
                es_time_mono_ms() - api.stop_began_ms >= STOP_GRACE_MS)
                break;
            if (es_time_mono_ms() > deadline) {
                es_warn("shutdown timeout: %d requests still in flight", api.inflight);
                break;
            }
        }
    }
    es_ingest_destroy(api.ingest);
    es_pgpool_destroy(api.pg);
    es_nats_close(api.nats);
    es_info("API worker stopped");
    return 0;
}
