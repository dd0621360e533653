/* The master under load: a worker killed, configuration reloads (SIGHUP),
 * and a graceful stop (SIGTERM) while requests are in flight. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* True when the master has exactly n live workers and none is in old[]. */
static bool all_replaced(h_env_t *e, const pid_t *old, int nold, int n)
{
    pid_t now[64];
    int k = h_svc_workers(e, now, 64);
    if (k != n)
        return false;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < nold; j++)
            if (now[i] == old[j])
                return false;
    return true;
}

/* True when the worker set is exactly old[] (same pids, same count). */
static bool unchanged(h_env_t *e, const pid_t *old, int nold)
{
    pid_t now[64];
    int k = h_svc_workers(e, now, 64);
    if (k != nold)
        return false;
    for (int i = 0; i < k; i++) {
        bool found = false;
        for (int j = 0; j < nold; j++)
            found = found || now[i] == old[j];
        if (!found)
            return false;
    }
    return true;
}

/* Waits until the load got `more` additional 201s (proof it is served). */
static void await_progress(h_load_t *l, int more, const char *when)
{
    int mark = h_load_created(l);
    cr_assert(H_WAIT(30000, h_load_created(l) >= mark + more),
              "%s: only %d of %d more creates succeeded within 30 s", when,
              h_load_created(l) - mark, more);
}

static void print_result(const char *name, const h_load_result_t *r)
{
    fprintf(stderr,
            "%s: %d requests, %d created, %d 503, %d refused, %d no response, %d partial, "
            "%d other (first %d), max %.3f s%s%s\n",
            name, r->sent, r->created, r->unavailable, r->refused, r->no_response, r->partial,
            r->other_status, r->first_other, r->max_seconds, r->first_error[0] ? "; " : "",
            r->first_error);
}

/* Every answer of the load was whole and JSON, 201 or 503, and every event
 * answered 201 is stored; frees res. */
static void assert_load_answered(h_env_t *e, h_load_result_t *res)
{
    cr_assert_eq(res->partial, 0, "%d responses were cut short", res->partial);
    cr_assert_eq(res->bad_body, 0, "%d responses were not JSON", res->bad_body);
    cr_assert_eq(res->other_status, 0, "unexpected status %d", res->first_other);
    cr_assert_eq(h_count_events(e, res->ids, res->nids), res->nids,
                 "an event answered 201 is missing from event.events");
    h_load_result_free(res);
}

/* kill -9 of an API worker during a load of creates: the master starts a
 * new worker, the service answers again, and every event that was answered
 * 201 is stored. */
H_TEST(supervisor, worker_killed_under_load)
{
    h_env_t *e = h_setup(NULL);
    e->expect_worker_deaths = true;
    h_svc_start(e);
    pid_t before[8];
    int n = h_svc_workers(e, before, 8);
    cr_assert_eq(n, 2, "%d workers", n);

    h_load_t *load = h_load_start(e->svc.port, 4);
    await_progress(load, 300, "before the kill");
    pid_t victim = before[0];
    cr_assert_eq(kill(victim, SIGKILL), 0);
    cr_assert(H_WAIT(15000, all_replaced(e, &victim, 1, 2)),
              "no new worker replaced pid %d within 15 s", (int)victim);
    cr_assert(H_WAIT(15000, h_svc_ready(e)), "/health/ready does not answer 200 after the restart");
    await_progress(load, 300, "after the restart");
    h_load_result_t res;
    h_load_stop(load, &res);
    print_result("worker_killed_under_load", &res);

    cr_assert(h_svc_log_contains(e, "was killed by signal 9", 0),
              "the master did not log the crash");
    assert_load_answered(e, &res);
}

/* SIGHUP with a broken file keeps the running configuration and workers, and
 * the log says the reload failed; SIGHUP with a valid file that changes
 * workers.api from 2 to 3 replaces every worker. A client posting all along
 * sees every request answered 201. */
H_TEST(supervisor, reload)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    pid_t old[8];
    int nold = h_svc_workers(e, old, 8);
    cr_assert_eq(nold, 2);
    h_load_t *load = h_load_start(e->svc.port, 2);
    await_progress(load, 50, "before the reloads");

    char good[8192];
    FILE *f = fopen(e->svc.conf, "r");
    size_t len = fread(good, 1, sizeof(good) - 1, f);
    good[len] = '\0';
    fclose(f);
    char broken[8300];
    snprintf(broken, sizeof(broken), "%sservice:\n  no_such_key: 1\n", good);
    h_svc_write_config_text(e, broken);
    long off = h_file_size(e->svc.log);
    cr_assert_eq(kill(e->svc.pid, SIGHUP), 0);
    cr_assert(H_WAIT(15000, h_svc_log_contains(e, "reload failed", off)),
              "no \"reload failed\" in the log after SIGHUP with a broken file");
    cr_assert(h_svc_log_contains(e, "no_such_key", off), "the log does not name the bad key");
    await_progress(load, 50, "after the failed reload");
    cr_assert(unchanged(e, old, nold), "the workers changed after a refused reload");

    e->opts.api_workers = 3;
    h_svc_write_config(e);
    off = h_file_size(e->svc.log);
    cr_assert_eq(kill(e->svc.pid, SIGHUP), 0);
    cr_assert(H_WAIT(30000, all_replaced(e, old, nold, 3)),
              "the workers were not replaced by 3 new ones within 30 s");
    await_progress(load, 50, "after the reload");
    h_load_result_t res;
    h_load_stop(load, &res);
    print_result("reload", &res);
    cr_assert(!h_svc_log_contains(e, "reload failed", off), "the valid reload failed");
    cr_assert_eq(res.refused, 0, "%d connections were refused", res.refused);
    cr_assert_eq(res.no_response, 0, "%d requests got no response (%s)", res.no_response,
                 res.first_error);
    cr_assert_eq(res.partial, 0, "%d responses were cut short", res.partial);
    cr_assert_eq(res.unavailable, 0, "%d requests were answered 503", res.unavailable);
    cr_assert_eq(res.other_status, 0, "unexpected status %d", res.first_other);
    cr_assert_eq(res.created, res.sent, "%d of %d requests were not created",
                 res.sent - res.created, res.sent);
    cr_assert_eq(h_count_events(e, res.ids, res.nids), res.nids);
    h_load_result_free(&res);
}

/* A process that no longer exists or is only a zombie. */
static bool gone(pid_t pid)
{
    char path[64], buf[512] = "";
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    const char *paren = strrchr(buf, ')');
    return paren != NULL && (paren[2] == 'Z' || paren[2] == 'X');
}

/* SIGTERM while creates are in flight: the master exits 0 within
 * shutdown_timeout_seconds, its workers are gone, every answer that came was
 * complete, and every event answered 201 is stored. */
H_TEST(supervisor, graceful_stop_under_load)
{
    h_env_t *e = h_setup(&(h_opts_t){.shutdown_timeout = 10});
    h_svc_start(e);
    pid_t workers[8];
    int nw = h_svc_workers(e, workers, 8);
    h_load_t *load = h_load_start(e->svc.port, 4);
    await_progress(load, 100, "before SIGTERM");
    int64_t t0 = h_now_ms();
    bool exited = h_svc_stop(e, SIGTERM, 10000);
    int64_t took = h_now_ms() - t0;
    h_load_result_t res;
    h_load_stop(load, &res);
    print_result("graceful_stop_under_load", &res);
    cr_assert(exited, "the master did not exit within shutdown_timeout_seconds (10 s)");
    cr_assert(WIFEXITED(e->svc.exit_status) && WEXITSTATUS(e->svc.exit_status) == 0,
              "the master ended with status 0x%x", e->svc.exit_status);
    fprintf(stderr, "graceful_stop_under_load: the master exited %lld ms after SIGTERM\n",
            (long long)took);
    for (int i = 0; i < nw; i++)
        cr_assert(H_WAIT(5000, gone(workers[i])), "worker %d still runs", (int)workers[i]);
    assert_load_answered(e, &res);
}

/* A worker that is stopped (SIGSTOP: alive but silent) is killed and
 * replaced once heartbeat_timeout_seconds pass. */
H_TEST(supervisor, silent_worker_replaced)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = "service:\n  heartbeat_timeout_seconds: 2\n"});
    e->expect_worker_deaths = true;
    h_svc_start(e);
    pid_t before[8];
    cr_assert_eq(h_svc_workers(e, before, 8), 2);
    cr_assert_eq(kill(before[1], SIGSTOP), 0);
    cr_assert(H_WAIT(20000, all_replaced(e, &before[1], 1, 2)),
              "the stopped worker %d was not replaced within 20 s", (int)before[1]);
    cr_assert(h_svc_log_contains(e, "heartbeat", 0), "the log does not say why");
    cr_assert(H_WAIT(10000, h_svc_ready(e)));
}

/* A reload while new database connections are slow to establish (2 s, as
 * with a remote database behind TLS): the new workers must not take requests
 * they cannot serve; every create during the reload is answered 201. */
H_TEST(supervisor, reload_with_slow_database_connections)
{
    h_env_t *e = h_setup(&(h_opts_t){.private_pg = true});
    h_svc_start(e);
    pid_t old[8];
    int nold = h_svc_workers(e, old, 8);
    h_sql(e, "ALTER SYSTEM SET pre_auth_delay = '2s'");
    h_sql(e, "SELECT pg_reload_conf()");
    h_load_t *load = h_load_start(e->svc.port, 2);
    await_progress(load, 50, "before the reload");
    e->opts.api_workers = 3;
    h_svc_write_config(e);
    cr_assert_eq(kill(e->svc.pid, SIGHUP), 0);
    cr_assert(H_WAIT(30000, all_replaced(e, old, nold, 3)),
              "the workers were not replaced by 3 new ones within 30 s");
    await_progress(load, 50, "after the reload");
    h_load_result_t res;
    h_load_stop(load, &res);
    print_result("reload_with_slow_database_connections", &res);
    h_sql(e, "ALTER SYSTEM RESET pre_auth_delay");
    h_sql(e, "SELECT pg_reload_conf()");
    cr_assert_eq(res.refused + res.no_response + res.partial, 0, "%d requests failed (%s)",
                 res.refused + res.no_response + res.partial, res.first_error);
    cr_assert_eq(res.unavailable, 0, "%d of %d creates were answered 503 during the reload",
                 res.unavailable, res.sent);
    cr_assert_eq(res.other_status, 0, "unexpected status %d", res.first_other);
    cr_assert_eq(h_count_events(e, res.ids, res.nids), res.nids);
    h_load_result_free(&res);
}

static bool none_alive(const pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        if (h_process_alive(pids[i]))
            return false;
    return true;
}

/* The master killed outright (kill -9, no chance to stop its workers): every
 * worker of every role notices and exits by itself. */
H_TEST(supervisor, workers_exit_when_master_dies)
{
    h_env_t *e = h_setup(&(h_opts_t){.processors = 1, .extra_yaml = "workers:\n  replay: 1\n"});
    h_svc_start(e);
    pid_t workers[8];
    int n = h_svc_workers(e, workers, 8);
    cr_assert_eq(n, 4, "expected 2 API, 1 processor and 1 replay worker, found %d", n);
    cr_assert(h_svc_stop(e, SIGKILL, 10000), "the master did not die of SIGKILL");
    cr_assert(H_WAIT(15000, none_alive(workers, n)),
              "workers still running 15 s after the master died");
}
