/*
 * supervisor.c - the master's process table and main loop.
 *
 * The master forks one process per worker slot (workers.api API workers, and
 * the other roles as configured), then loops on poll(2) over a self-pipe
 * (signals) and one socketpair per worker (heartbeats in; EOF on the
 * worker's side tells it the master died). It reaps with waitpid(WNOHANG),
 * restarts a dead worker with exponential backoff and logs why it died, kills
 * a worker whose heartbeats stop, stops gracefully on SIGTERM/SIGINT and
 * replaces every worker with the new configuration on SIGHUP (a bad new
 * configuration is logged and the running one kept).
 */
#include "master/master.h"

#include "api-worker/worker.h"
#include "processor-worker/worker.h"
#include "replay-worker/worker.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PROCS 1024
#define MAX_LISTENERS 256

typedef enum { ROLE_API, ROLE_PROCESSOR, ROLE_REPLAY, ROLE_COUNT } role_t;

typedef struct {
    const char *name;
    int (*count)(const es_config_t *cfg);
} role_info_t;

static int api_count(const es_config_t *cfg)
{
    return cfg->workers.api;
}

static int processor_count(const es_config_t *cfg)
{
    return cfg->workers.processor;
}

static int replay_count(const es_config_t *cfg)
{
    return cfg->workers.replay;
}

static const role_info_t roles[ROLE_COUNT] = {
    {"api", api_count},
    {"processor", processor_count},
    {"replay", replay_count},
};

typedef struct {
    role_t role;
    int slot;
    int generation;
    pid_t pid;          /* 0 = not running (waiting to be respawned) */
    int fd;             /* master's end of the socketpair, -1 when not running */
    int64_t started_ms;
    int64_t last_beat_ms;
    int64_t respawn_at_ms;
    int failures;       /* consecutive short-lived runs: drives the backoff */
    bool retiring;      /* old generation or stopping: never respawned */
    bool ready;         /* serving (an API worker said so), so its predecessor may go */
    bool heartbeat_killed;
} proc_t;

static proc_t procs[MAX_PROCS];
static int nprocs;
static int generation;
static es_config_t *cfg;
static int listen_fds[MAX_LISTENERS];
static int nlisten;
static int self_pipe[2] = {-1, -1};
static volatile sig_atomic_t sig_term, sig_hup, sig_chld;
static uint64_t restarts_total[ROLE_COUNT];
/* After a reload: the old generation is retired once every new API worker
 * serves (or at the deadline), so no request meets a worker still connecting. */
static bool retire_pending;
static int64_t retire_deadline_ms;

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGTERM || sig == SIGINT)
        sig_term = 1;
    else if (sig == SIGHUP)
        sig_hup = 1;
    else if (sig == SIGCHLD)
        sig_chld = 1;
    char c = (char)sig;
    ssize_t n = write(self_pipe[1], &c, 1);
    (void)n;
    errno = saved;
}

static void install_signals(void)
{
    if (pipe2(self_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        perror("pipe2");
        exit(1);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Child side of fork: drop the master's descriptors and signal handling. */
static void child_reset(int keep_listen, int keep_fd)
{
    close(self_pipe[0]);
    close(self_pipe[1]);
    for (int i = 0; i < nprocs; i++)
        if (procs[i].fd >= 0 && procs[i].fd != keep_fd)
            close(procs[i].fd);
    for (int i = 0; i < nlisten; i++)
        if (listen_fds[i] != keep_listen)
            close(listen_fds[i]);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
}

static void spawn(proc_t *p)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        es_error("socketpair: %s; retrying later", strerror(errno));
        p->respawn_at_ms = es_time_mono_ms() + 1000;
        return;
    }
    int listen_fd = p->role == ROLE_API ? listen_fds[p->slot] : -1;
    pid_t pid = fork();
    if (pid < 0) {
        es_error("fork: %s; retrying later", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        p->respawn_at_ms = es_time_mono_ms() + 1000;
        return;
    }
    if (pid == 0) {
        close(sv[0]);
        child_reset(listen_fd, sv[1]);
        es_log_setup(cfg->logging.level, cfg->logging.json, roles[p->role].name);
        int rc = 1;
        if (p->role == ROLE_API)
            rc = es_api_worker_main(cfg, listen_fd, sv[1]);
        else if (p->role == ROLE_PROCESSOR)
            rc = es_processor_worker_main(cfg, sv[1]);
        else if (p->role == ROLE_REPLAY)
            rc = es_replay_worker_main(cfg, sv[1]);
        exit(rc);
    }
    close(sv[1]);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    p->pid = pid;
    p->fd = sv[0];
    p->started_ms = p->last_beat_ms = es_time_mono_ms();
    p->heartbeat_killed = false;
    p->ready = p->role != ROLE_API; /* only API workers announce readiness */
    es_info("started %s worker %d (pid %d, generation %d)", roles[p->role].name, p->slot,
            (int)pid, p->generation);
}

static void add_generation(void)
{
    generation++;
    for (int r = 0; r < ROLE_COUNT; r++) {
        int n = roles[r].count(cfg);
        for (int i = 0; i < n && nprocs < MAX_PROCS; i++) {
            proc_t *p = &procs[nprocs++];
            memset(p, 0, sizeof(*p));
            p->role = (role_t)r;
            p->slot = i;
            p->generation = generation;
            p->fd = -1;
            spawn(p);
        }
    }
}

static void remove_proc(int i)
{
    procs[i] = procs[--nprocs];
}

static void describe_exit(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "ended (status 0x%x)", status);
}

/* Returns true when a worker asked not to be respawned (fatal exit code). */
static bool reap(bool stopping)
{
    bool fatal = false;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i;
        for (i = 0; i < nprocs; i++)
            if (procs[i].pid == pid)
                break;
        if (i == nprocs)
            continue;
        proc_t *p = &procs[i];
        char why[128];
        describe_exit(status, why, sizeof(why));
        close(p->fd);
        p->fd = -1;
        p->pid = 0;
        if (p->retiring || stopping) {
            es_info("%s worker %d (generation %d) %s", roles[p->role].name, p->slot,
                    p->generation, why);
            remove_proc(i);
            continue;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == ES_EXIT_FATAL) {
            es_error("%s worker %d %s (fatal: not restarting)", roles[p->role].name, p->slot, why);
            remove_proc(i);
            fatal = true;
            continue;
        }
        int64_t now = es_time_mono_ms();
        p->failures = now - p->started_ms > 30000 ? 1 : p->failures + 1;
        int64_t delay = ES_MIN(100LL << ES_MIN(p->failures - 1, 7), 10000);
        p->respawn_at_ms = now + delay;
        restarts_total[p->role]++;
        es_metrics_restart((int)p->role);
        es_error("%s worker %d (pid %d) %s%s; restarting in %lld ms", roles[p->role].name,
                 p->slot, (int)pid, why,
                 p->heartbeat_killed ? " after it stopped heartbeating" : "", (long long)delay);
    }
    return fatal;
}

static bool same_address(const es_config_t *a, const es_config_t *b)
{
    return strcmp(a->service.bind, b->service.bind) == 0 && a->service.port == b->service.port;
}

static void reload(void)
{
    es_config_t *next = es_xcalloc(1, sizeof(*next));
    char err[512];
    es_info("SIGHUP: reloading %s", cfg->path ? cfg->path : "the configuration");
    if (es_config_load(next, cfg->path, err, sizeof(err)) != ES_OK) {
        es_error("reload failed, keeping the running configuration: %s", err);
        es_config_free(next);
        free(next);
        return;
    }
    if (es_master_migrate(next, 5, err, sizeof(err)) != ES_OK) {
        es_error("reload failed, keeping the running configuration: %s", err);
        es_config_free(next);
        free(next);
        return;
    }
    if (!same_address(cfg, next) || next->workers.api > nlisten) {
        /* Sockets of slots that survive on the same address are kept: a
         * socket leaving the SO_REUSEPORT group resets the connections
         * queued on it, so only what must change changes. */
        bool keep = same_address(cfg, next);
        int from = keep ? nlisten : 0;
        int fds[MAX_LISTENERS];
        if (es_listen_open(next->service.bind, next->service.port, next->workers.api - from,
                           fds, err, sizeof(err)) != ES_OK) {
            es_error("reload failed, keeping the running configuration: %s", err);
            es_config_free(next);
            free(next);
            return;
        }
        if (!keep) /* the old workers keep their own copies until they have drained */
            es_listen_close(listen_fds, nlisten);
        memcpy(listen_fds + from, fds, sizeof(int) * (size_t)(next->workers.api - from));
        nlisten = next->workers.api;
    } else if (next->workers.api < nlisten) {
        es_listen_close(listen_fds + next->workers.api, nlisten - next->workers.api);
        nlisten = next->workers.api;
    }
    es_config_free(cfg);
    free(cfg);
    cfg = next;
    es_log_setup(cfg->logging.level, cfg->logging.json, "master");
    for (int i = 0; i < nprocs; i++)
        procs[i].retiring = true; /* not respawned from now on */
    add_generation();
    retire_pending = true;
    retire_deadline_ms = es_time_mono_ms() + 15000;
    es_info("reload: generation %d starting; the previous one stops once it serves",
            generation);
}

/* Stops the previous generation once the current one serves. */
static void retire_old(int64_t now)
{
    bool all_ready = true;
    for (int i = 0; i < nprocs; i++)
        if (procs[i].generation == generation && procs[i].pid > 0 && !procs[i].ready)
            all_ready = false;
    if (!all_ready && now < retire_deadline_ms)
        return;
    retire_pending = false;
    for (int i = nprocs - 1; i >= 0; i--) {
        if (procs[i].generation == generation)
            continue;
        if (procs[i].pid > 0)
            kill(procs[i].pid, SIGTERM);
        else
            remove_proc(i);
    }
    es_info("reload done: generation %d serving", generation);
}

int es_master_run(es_config_t *config)
{
    cfg = config;
    es_metrics_init(); /* before any fork: every worker shares it */
    install_signals();
    char err[512];
    if (es_master_migrate(cfg, 60, err, sizeof(err)) != ES_OK) {
        es_error("%s", err);
        return 1;
    }
    if (cfg->workers.api > MAX_LISTENERS) {
        es_error("workers.api: at most %d", MAX_LISTENERS);
        return 1;
    }
    if (es_listen_open(cfg->service.bind, cfg->service.port, cfg->workers.api, listen_fds, err,
                       sizeof(err)) != ES_OK) {
        es_error("%s", err);
        return 1;
    }
    nlisten = cfg->workers.api;
    es_info("listening on %s:%d with %d API workers", cfg->service.bind, cfg->service.port,
            cfg->workers.api);
    add_generation();

    bool stopping = false, failed = false;
    bool registered = false;
    int64_t next_consul_ms = 0;
    int64_t stop_deadline = 0;
    struct pollfd pfds[MAX_PROCS + 1];
    int owner[MAX_PROCS + 1];
    for (;;) {
        int n = 0;
        pfds[n].fd = self_pipe[0];
        pfds[n].events = POLLIN;
        owner[n++] = -1;
        for (int i = 0; i < nprocs; i++) {
            if (procs[i].fd < 0)
                continue;
            pfds[n].fd = procs[i].fd;
            pfds[n].events = POLLIN;
            owner[n++] = procs[i].pid;
        }
        int ready = poll(pfds, (nfds_t)n, 200);
        int64_t now = es_time_mono_ms();
        if (ready > 0) {
            for (int k = 1; k < n; k++) {
                if (!(pfds[k].revents & (POLLIN | POLLHUP)))
                    continue;
                char buf[256];
                ssize_t got = read(pfds[k].fd, buf, sizeof(buf));
                for (int i = 0; i < nprocs; i++) {
                    if (procs[i].pid != owner[k] || got <= 0)
                        continue;
                    procs[i].last_beat_ms = now;
                    if (memchr(buf, 'R', (size_t)got) != NULL)
                        procs[i].ready = true;
                }
            }
            char drain[64];
            while (read(self_pipe[0], drain, sizeof(drain)) > 0) {
            }
        }
        if (sig_term && !stopping) {
            sig_term = 0;
            stopping = true;
            stop_deadline = now + (int64_t)cfg->service.shutdown_timeout_seconds * 1000 + 2000;
            es_info("stopping: asking %d workers to finish their work", nprocs);
            if (registered)
                es_consul_deregister(cfg);
            /* New connections are refused from now on; the workers take what
             * the kernel already queued before they let go of their copies. */
            es_listen_close(listen_fds, nlisten);
            nlisten = 0;
            for (int i = 0; i < nprocs; i++)
                if (procs[i].pid > 0)
                    kill(procs[i].pid, SIGTERM);
            for (int i = nprocs - 1; i >= 0; i--)
                if (procs[i].pid == 0)
                    remove_proc(i);
        }
        if (sig_hup) {
            sig_hup = 0;
            if (!stopping)
                reload();
        }
        sig_chld = 0;
        if (reap(stopping) && !stopping) {
            failed = true;
            sig_term = 1;
            continue;
        }
        if (stopping) {
            if (nprocs == 0)
                break;
            if (now > stop_deadline) {
                es_warn("shutdown timeout: killing %d workers", nprocs);
                for (int i = 0; i < nprocs; i++)
                    if (procs[i].pid > 0)
                        kill(procs[i].pid, SIGKILL);
                stop_deadline = now + 5000;
            }
            continue;
        }
        if (retire_pending)
            retire_old(now);
        if (cfg->consul.enabled && !registered && now >= next_consul_ms) {
            registered = es_consul_register(cfg);
            next_consul_ms = now + (int64_t)cfg->consul.check_interval_seconds * 1000;
        }
        int64_t beat_timeout = (int64_t)cfg->service.heartbeat_timeout_seconds * 1000;
        for (int i = 0; i < nprocs; i++) {
            proc_t *p = &procs[i];
            if (p->pid == 0 && now >= p->respawn_at_ms) {
                spawn(p);
            } else if (p->pid > 0 && !p->heartbeat_killed && now - p->last_beat_ms > beat_timeout) {
                es_error("%s worker %d (pid %d) sent no heartbeat for %lld ms; killing it",
                         roles[p->role].name, p->slot, (int)p->pid,
                         (long long)(now - p->last_beat_ms));
                p->heartbeat_killed = true;
                kill(p->pid, SIGKILL);
            }
        }
    }
    es_listen_close(listen_fds, nlisten);
    es_info("stopped");
    es_config_free(cfg);
    free(cfg);
    return failed ? 1 : 0;
}
