/*
 * harness_env.c - the per-test environment (directory, database,
 * nats-server), the service under test, and the Criterion report hooks that
 * run in the runner process: the run's shared PostgreSQL, and the log tail of
 * every test that did not pass. Contracts in harness.h.
 */
#include "harness.h"
#include "harness_internal.h"

#include <criterion/hooks.h>
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static h_env_t *h_current; /* the environment of the running test */
static h_pg_t shared_pg;   /* the run's PostgreSQL (runner process only) */

/* Instances of h_svc_start_other in the running test. */
#define MAX_OTHERS 4
static h_svc_t *others[MAX_OTHERS];
static int nothers;
static void others_stop_all(void);

/* ---- the test environment ------------------------------------------------- */

/* The database of test "suite.test": a valid, unique, <= 63-byte name. */
static void db_name_of(const char *test, char *out, size_t cap)
{
    uint32_t h = 2166136261u;
    for (const char *p = test; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    int n = snprintf(out, cap, "e2e_%08x_", h);
    for (const char *p = test; *p && (size_t)n + 1 < cap && n < 60; p++) {
        char c = *p;
        out[n++] = (c >= 'A' && c <= 'Z')                               ? (char)(c + 32)
                   : ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? c
                                                                        : '_';
    }
    out[n] = '\0';
}

h_env_t *h_setup(const h_opts_t *opts)
{
    static bool curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
    h_env_t *e = calloc(1, sizeof(*e));
    h_current = e;
    if (opts)
        e->opts = *opts;
    if (e->opts.api_workers == 0)
        e->opts.api_workers = 2;
    if (e->opts.shutdown_timeout == 0)
        e->opts.shutdown_timeout = 10;
    snprintf(e->name, sizeof(e->name), "%s.%s", criterion_current_test->category,
             criterion_current_test->name);

    const char *root = getenv("ES_E2E_ROOT");
    const char *shared_port = getenv("ES_E2E_PG_PORT");
    char solo_root[64];
    if (root == NULL || shared_port == NULL) { /* run without the runner's hooks */
        snprintf(solo_root, sizeof(solo_root), "/tmp/es-e2e-solo-%d", (int)getpid());
        mkdir(solo_root, 0755);
        root = solo_root;
        e->opts.private_pg = true;
    }
    snprintf(e->dir, sizeof(e->dir), "%s/%s", root, e->name);
    h_rm_rf(e->dir);
    if (mkdir(e->dir, 0755) != 0)
        h_fatal("mkdir %s: %s", e->dir, strerror(errno));

    if (e->opts.private_pg) {
        char pgdir[300];
        snprintf(pgdir, sizeof(pgdir), "%s/pg", e->dir);
        mkdir(pgdir, 0755);
        h_pg_create(&e->pg, pgdir, h_free_port());
        e->pg_port = e->pg.port;
    } else {
        e->pg_port = atoi(shared_port);
    }
    db_name_of(e->name, e->dbname, sizeof(e->dbname));
    char sql[200], err[512];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", e->dbname);
    if (!h_pg_admin(e->pg_port, sql, err, sizeof(err)))
        h_fatal("%s: %s", sql, err);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", e->dbname);
    if (!h_pg_admin(e->pg_port, sql, err, sizeof(err)))
        h_fatal("%s: %s", sql, err);
    snprintf(e->dburl, sizeof(e->dburl), "postgresql://postgres@127.0.0.1:%d/%s", e->pg_port,
             e->dbname);

    if (!e->opts.no_nats) {
        snprintf(e->nats.dir, sizeof(e->nats.dir), "%s", e->dir);
        e->nats.port = h_free_port();
        h_nats_start(&e->nats);
    }
    e->svc.port = h_free_port();
    snprintf(e->svc.conf, sizeof(e->svc.conf), "%s/service.yaml", e->dir);
    snprintf(e->svc.log, sizeof(e->svc.log), "%s/service.log", e->dir);
    h_svc_write_config(e);
    return e;
}

void h_teardown(void)
{
    h_env_t *e = h_current;
    if (e == NULL)
        return;
    h_current = NULL;
    others_stop_all();
    if (e->svc.pid > 0 && !h_svc_stop(e, SIGTERM, 15000))
        fprintf(stderr, "e2e %s: the service needed SIGKILL at teardown\n", e->name);
    h_nats_stop(&e->nats, SIGTERM);
    if (e->db)
        PQfinish(e->db);
    e->db = NULL;
    if (e->opts.private_pg) {
        h_pg_destroy(&e->pg);
    } else {
        char sql[200], err[512];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", e->dbname);
        if (!h_pg_admin(e->pg_port, sql, err, sizeof(err)))
            fprintf(stderr, "e2e %s: %s: %s\n", e->name, sql, err);
    }
    char store[300];
    snprintf(store, sizeof(store), "%s/nats-store", e->dir);
    h_rm_rf(store);
    free(e);
}

/* Copies the line of path holding needle and the two after it to out. */
static bool log_excerpt(const char *path, const char *needle, char *out, size_t cap)
{
    char *text = h_read_file(path, 0, NULL);
    char *hit = text ? strstr(text, needle) : NULL;
    if (hit != NULL) {
        char *start = hit;
        while (start > text && start[-1] != '\n')
            start--;
        char *end = start;
        for (int lines = 0; *end && lines < 3; end++)
            lines += *end == '\n';
        snprintf(out, cap, "%.*s", (int)(end - start), start);
    }
    free(text);
    return hit != NULL;
}

/* Fails the test when a service log shows a sanitizer report, or a worker
 * crash the test did not cause. */
static void check_log(h_env_t *e, const char *log)
{
    static const char *const reports[] = {"AddressSanitizer", "LeakSanitizer",
                                          "UndefinedBehaviorSanitizer", "runtime error:"};
    for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++) {
        char excerpt[600];
        if (log_excerpt(log, reports[i], excerpt, sizeof(excerpt)))
            cr_assert_fail("sanitizer report in %s:\n%s", log, excerpt);
    }
    if (!e->expect_worker_deaths)
        cr_assert(!h_file_contains(log, "was killed by signal", 0),
                  "a worker crashed (see \"was killed by signal\" in %s)", log);
}

void h_finish(void)
{
    h_env_t *e = h_current;
    if (e == NULL)
        return;
    if (e->svc.pid > 0)
        cr_assert(h_svc_stop(e, SIGTERM, 20000),
                  "the service did not stop within 20 s of SIGTERM (log: %s)", e->svc.log);
    for (int i = 0; i < nothers; i++)
        if (others[i]->pid > 0)
            cr_assert(h_svc_stop_other(others[i], SIGTERM, 20000),
                      "the service did not stop within 20 s of SIGTERM (log: %s)", others[i]->log);
    check_log(e, e->svc.log);
    for (int i = 0; i < nothers; i++)
        check_log(e, others[i]->log);
}

/* ---- the service ---------------------------------------------------------- */

static const char *const service_env_unset[] = {
    "SERVICE_PORT", "SERVICE_NAME",        "LOG_LEVEL",
    "DATABASE_URL", "POSTGRES_HOST",       "POSTGRES_PORT",
    "POSTGRES_DB",  "POSTGRES_USER",       "POSTGRES_PASSWORD",
    "NATS_URL",     "NATS_ENABLED",        "CONSUL_HOST",
    "CONSUL_PORT",  "CONSUL_ENABLED",      "RUDDERSTACK_WEBHOOK_SECRET",
    "BATCH_SIZE",   "PROCESSING_INTERVAL", NULL};

/* Writes text to path (via a temporary file and a rename). */
static void write_text(const char *path, const char *text)
{
    char tmp[320];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        h_fatal("cannot write %s", tmp);
    if (rename(tmp, path) != 0) /* readers never see half a file */
        h_fatal("rename %s: %s", tmp, strerror(errno));
}

void h_svc_write_config_text(h_env_t *e, const char *text)
{
    write_text(e->svc.conf, text);
}

/* The config of an instance of e on port, with more appended (or NULL). */
static void config_text(h_env_t *e, int port, const char *more, char *text, size_t cap)
{
    snprintf(text, cap,
             "service:\n"
             "  bind: 127.0.0.1\n"
             "  port: %d\n"
             "  shutdown_timeout_seconds: %d\n"
             "workers:\n"
             "  api: %d\n"
             "  processor: %d\n"
             "  replay: 0\n"
             "database:\n"
             "  url: \"%s\"\n"
             "nats:\n"
             "  enabled: %s\n"
             "  url: \"nats://127.0.0.1:%d\"\n"
             "logging:\n"
             "  level: info\n"
             "  format: text\n"
             "%s%s",
             port, e->opts.shutdown_timeout, e->opts.api_workers, e->opts.processors, e->dburl,
             e->opts.no_nats ? "false" : "true", e->opts.no_nats ? 4222 : e->nats.port,
             e->opts.extra_yaml ? e->opts.extra_yaml : "", more ? more : "");
}

void h_svc_write_config(h_env_t *e)
{
    char text[8192];
    config_text(e, e->svc.port, NULL, text, sizeof(text));
    h_svc_write_config_text(e, text);
}

bool h_svc_ready(h_env_t *e)
{
    h_resp_t r = h_http(e->svc.port, "GET", "/health/ready", NULL, 0, NULL, 2000);
    bool ok = r.status == 200;
    h_resp_free(&r);
    return ok;
}

/* Database sessions of the API workers that have run a query, i.e. whose
 * connection the worker has finished establishing. /health/ready answers as
 * soon as one worker has one reader connection; the tests want every worker
 * fully connected before they start. */
static int api_sessions_ready(h_env_t *e)
{
    return (int)h_sql_int(e, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                             "current_database() AND application_name = 'event_service api' "
                             "AND state = 'idle' AND query <> ''");
}

void h_svc_spawn(h_env_t *e, const char *const *env_set)
{
    cr_assert(e->svc.pid == 0, "the service is already running");
    const char *argv[] = {ES_TEST_BINARY, "-c", e->svc.conf, NULL};
    e->svc.pid = h_spawn(argv, e->svc.log, false, service_env_unset, env_set);
}

void h_svc_start_env(h_env_t *e, const char *const *env_set, int port)
{
    h_svc_spawn(e, env_set);
    if (port == 0)
        port = e->svc.port;
    int64_t deadline = h_now_ms() + 30000;
    for (;;) {
        int status;
        if (h_wait_exit(e->svc.pid, 0, &status)) {
            e->svc.pid = 0;
            e->svc.exit_status = status;
            h_print_tail(e->svc.log, 30, "  service.log| ");
            cr_assert_fail("event-service exited at start (status 0x%x)", status);
        }
        h_resp_t r = h_http(port, "GET", "/health/ready", NULL, 0, NULL, 2000);
        bool ready = r.status == 200 && (e->opts.no_nats || h_js_stream_exists(e)) &&
                     api_sessions_ready(e) >= e->opts.api_workers * 2;
        h_resp_free(&r);
        if (ready)
            return;
        if (h_now_ms() > deadline) {
            h_print_tail(e->svc.log, 30, "  service.log| ");
            cr_assert_fail("event-service not ready on port %d after 30 s", port);
        }
        h_pause_ms(20);
    }
}

h_env_t *h_start(int processors, const char *extra_yaml)
{
    h_env_t *e = h_setup(&(h_opts_t){.processors = processors, .extra_yaml = extra_yaml});
    h_svc_start(e);
    return e;
}

int h_run_binary(h_env_t *e, const char *const *args, const char *const *env_set, char **output)
{
    const char *argv[32] = {ES_TEST_BINARY};
    int n = 1;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char log[300];
    snprintf(log, sizeof(log), "%s/run.out", e->dir);
    unlink(log);
    pid_t pid = h_spawn(argv, log, false, service_env_unset, env_set);
    int status = 0;
    if (!h_wait_exit(pid, 30000, &status)) {
        kill(pid, SIGKILL);
        h_wait_exit(pid, 10000, NULL);
        status = -1;
    }
    if (output) {
        *output = h_read_file(log, 0, NULL);
        if (*output == NULL)
            *output = strdup("");
    }
    return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool h_svc_stop(h_env_t *e, int sig, int timeout_ms)
{
    if (e->svc.pid <= 0)
        return true;
    kill(e->svc.pid, sig);
    int status = 0;
    bool exited = h_wait_exit(e->svc.pid, timeout_ms, &status);
    if (!exited) {
        kill(e->svc.pid, SIGKILL);
        h_wait_exit(e->svc.pid, 10000, &status);
    }
    e->svc.exit_status = status;
    e->svc.pid = 0;
    return exited;
}

bool h_process_alive(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *stat = h_read_file(path, 0, NULL);
    const char *paren = stat ? strrchr(stat, ')') : NULL;
    bool alive = paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
    free(stat);
    return alive;
}

int h_svc_workers(h_env_t *e, pid_t *out, int max)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)e->svc.pid, (int)e->svc.pid);
    char *text = h_read_file(path, 0, NULL);
    int n = 0;
    for (char *p = text; p && *p && n < max;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        p = end;
        if (h_process_alive((pid_t)pid))
            out[n++] = (pid_t)pid;
    }
    free(text);
    return n;
}

bool h_svc_is_worker(h_env_t *e, pid_t pid)
{
    pid_t workers[64];
    int n = h_svc_workers(e, workers, 64);
    for (int i = 0; i < n; i++)
        if (workers[i] == pid)
            return true;
    return false;
}

bool h_svc_log_contains(h_env_t *e, const char *needle, long from)
{
    return h_file_contains(e->svc.log, needle, from);
}

/* ---- more instances of the service ---------------------------------------- */

h_svc_t *h_svc_start_other(h_env_t *e, const char *name, const char *extra_yaml)
{
    cr_assert(nothers < MAX_OTHERS, "at most %d more instances per test", MAX_OTHERS);
    h_svc_t *s = calloc(1, sizeof(*s));
    s->port = h_free_port();
    snprintf(s->conf, sizeof(s->conf), "%s/%s.yaml", e->dir, name);
    snprintf(s->log, sizeof(s->log), "%s/%s.log", e->dir, name);
    char text[8192];
    config_text(e, s->port, extra_yaml, text, sizeof(text));
    write_text(s->conf, text);
    const char *argv[] = {ES_TEST_BINARY, "-c", s->conf, NULL};
    s->pid = h_spawn(argv, s->log, false, service_env_unset, NULL);
    others[nothers++] = s;
    int64_t deadline = h_now_ms() + 30000;
    for (;;) {
        int status;
        if (h_wait_exit(s->pid, 0, &status)) {
            s->pid = 0;
            s->exit_status = status;
            h_print_tail(s->log, 30, "  other.log| ");
            cr_assert_fail("event-service %s exited at start (status 0x%x)", name, status);
        }
        int running = 0;
        for (int i = 0; i < nothers; i++)
            running += others[i]->pid > 0;
        running += e->svc.pid > 0;
        h_resp_t r = h_http(s->port, "GET", "/health/ready", NULL, 0, NULL, 2000);
        bool ready = r.status == 200 && (e->opts.no_nats || h_js_stream_exists(e)) &&
                     api_sessions_ready(e) >= running * e->opts.api_workers * 2;
        h_resp_free(&r);
        if (ready)
            return s;
        if (h_now_ms() > deadline) {
            h_print_tail(s->log, 30, "  other.log| ");
            cr_assert_fail("event-service %s not ready on port %d after 30 s", name, s->port);
        }
        h_pause_ms(20);
    }
}

bool h_svc_stop_other(h_svc_t *s, int sig, int timeout_ms)
{
    if (s->pid <= 0)
        return true;
    kill(s->pid, sig);
    int status = 0;
    bool exited = h_wait_exit(s->pid, timeout_ms, &status);
    if (!exited) {
        kill(s->pid, SIGKILL);
        h_wait_exit(s->pid, 10000, &status);
    }
    s->exit_status = status;
    s->pid = 0;
    return exited;
}

static void others_stop_all(void)
{
    for (int i = 0; i < nothers; i++) {
        if (others[i]->pid > 0 && !h_svc_stop_other(others[i], SIGTERM, 15000))
            fprintf(stderr, "e2e: %s needed SIGKILL at teardown\n", others[i]->log);
        free(others[i]);
        others[i] = NULL;
    }
    nothers = 0;
}

/* ---- Criterion runner hooks (parent process) ------------------------------ */

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    h_in_runner = true;
    char root[] = "/tmp/es-e2e-XXXXXX";
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    chmod(root, 0755);
    char pgdir[64], port[16];
    snprintf(pgdir, sizeof(pgdir), "%s/pg", root);
    mkdir(pgdir, 0755);
    int64_t t0 = h_now_ms();
    h_pg_create(&shared_pg, pgdir, h_free_port());
    snprintf(port, sizeof(port), "%d", shared_pg.port);
    setenv("ES_E2E_ROOT", root, 1);
    setenv("ES_E2E_PG_PORT", port, 1);
    fprintf(stderr, "e2e: PostgreSQL on port %s ready in %lld ms; test directories under %s\n",
            port, (long long)(h_now_ms() - t0), root);
}

/* A test that did not pass: show its service log, keep its directory. */
static void report_failure(const struct criterion_test *t, const char *why)
{
    const char *root = getenv("ES_E2E_ROOT");
    char name[128], dir[400], log[450], sql[200], db[64], err[512];
    snprintf(name, sizeof(name), "%s.%s", t->category, t->name);
    snprintf(dir, sizeof(dir), "%s/%s", root, name);
    snprintf(log, sizeof(log), "%s/service.log", dir);
    fprintf(stderr, "---- %s %s; last lines of %s:\n", name, why, log);
    h_print_tail(log, 40, "  | ");
    db_name_of(name, db, sizeof(db));
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    if (shared_pg.pid > 0)
        h_pg_admin(shared_pg.port, sql, err, sizeof(err));
    char big[450];
    snprintf(big, sizeof(big), "%s/pg/pgdata", dir);
    h_rm_rf(big);
    snprintf(big, sizeof(big), "%s/nats-store", dir);
    h_rm_rf(big);
}

ReportHook(POST_FINI)(struct criterion_test_stats *stats)
{
    const char *root = getenv("ES_E2E_ROOT");
    if (root == NULL)
        return;
    if (stats->test_status == CR_STATUS_FAILED) {
        report_failure(stats->test, stats->timed_out ? "timed out" : "failed");
    } else {
        char dir[400];
        snprintf(dir, sizeof(dir), "%s/%s.%s", root, stats->test->category, stats->test->name);
        h_rm_rf(dir);
    }
}

ReportHook(TEST_CRASH)(struct criterion_test_stats *stats)
{
    if (getenv("ES_E2E_ROOT") != NULL)
        report_failure(stats->test, "crashed");
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    const char *root = getenv("ES_E2E_ROOT");
    if (root == NULL)
        return;
    h_pg_destroy(&shared_pg);
    char pgdir[400];
    snprintf(pgdir, sizeof(pgdir), "%s/pg", root);
    h_rm_rf(pgdir);
    if (rmdir(root) != 0)
        fprintf(stderr, "e2e: directories of the tests that did not pass are kept under %s\n",
                root);
}
