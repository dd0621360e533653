/* A replay worker killed (kill -9) in the middle of a long replay: the master
 * starts a new one, the job is claimed again once its lease ran out, resumes
 * from its checkpoint and completes; every event reaches the subscriber at
 * least once and in order (only the page in flight at the kill comes again),
 * and JetStream holds each event once (Nats-Msg-Id de-duplication). */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REPLAY "/api/v1/events/replay"
#define N 20000
#define PAGE 50

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
    int64_t *pos; /* position of each message received, in order */
    int n, cap;
    int64_t max_pos;
} seen_t;

/* Moves what the subscription has now into s (waits up to wait_ms for the
 * first message). */
static void drain(h_nc_t *c, seen_t *s, const char *replay_id, int wait_ms)
{
    h_msg_t m;
    while (h_nc_next(c, wait_ms, &m)) {
        wait_ms = 0;
        json_t *ev = json_loads(m.data, 0, NULL);
        int64_t pos = h_jint(ev, "position");
        const char *eid = h_jstr(ev, "event_id");
        char want[200];
        snprintf(want, sizeof(want), "%s:%s", replay_id, eid ? eid : "?");
        cr_assert(pos > 0 && eid != NULL, "a message without position or id: %.200s", m.data);
        cr_assert(m.msg_id && strcmp(m.msg_id, want) == 0, "Nats-Msg-Id %s, expected %s",
                  m.msg_id ? m.msg_id : "(none)", want);
        json_decref(ev);
        h_msg_clear(&m);
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 4096;
            s->pos = realloc(s->pos, (size_t)s->cap * sizeof(int64_t));
        }
        s->pos[s->n++] = pos;
        if (pos > s->max_pos)
            s->max_pos = pos;
    }
}

/* The server side's unread bytes (receive queue) of the TCP connection
 * between process pid and the nats-server on nats_port; -1 when not found. */
static long nats_unread_from(pid_t pid, int nats_port)
{
    /* The inodes of pid's sockets. */
    unsigned long inodes[64];
    int ninodes = 0;
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    for (int fd = 0; fd < 1024 && ninodes < 64; fd++) {
        char path[96], link[64];
        snprintf(path, sizeof(path), "%s/%d", dir, fd);
        ssize_t n = readlink(path, link, sizeof(link) - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        unsigned long ino;
        if (sscanf(link, "socket:[%lu]", &ino) == 1)
            inodes[ninodes++] = ino;
    }
    /* Two passes over /proc/net/tcp (which holds every TCP socket of the
     * host, thousands in TIME_WAIT during a full run): pid's end of the
     * connection to nats_port, then the server's end of it. */
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL)
        return -1;
    unsigned worker_port = 0;
    long unread = -1;
    char line[512];
    for (int pass = 0; pass < 2 && unread < 0; pass++) {
        rewind(f);
        while (fgets(line, sizeof(line), f)) {
            unsigned laddr, lport, raddr, rport, st;
            unsigned long tx, rx, ino;
            if (sscanf(line, " %*d: %x:%x %x:%x %x %lx:%lx %*x:%*x %*x %*u %*u %lu", &laddr, &lport,
                       &raddr, &rport, &st, &tx, &rx, &ino) != 8)
                continue;
            if (pass == 0 && rport == (unsigned)nats_port) {
                for (int k = 0; k < ninodes; k++)
                    if (ino == inodes[k])
                        worker_port = lport;
            } else if (pass == 1 && worker_port != 0 && lport == (unsigned)nats_port &&
                       rport == worker_port) {
                unread = (long)rx;
                break;
            }
        }
        if (worker_port == 0)
            break;
    }
    fclose(f);
    return unread;
}

/* kill -9 of the replay worker once it has replayed 2000 events. With
 * page_in_flight, nats-server is first held (SIGSTOP) until part of the
 * worker's next page waits unread on its connection, so that the server
 * stores (and delivers) that part after the worker died and the resumed job
 * publishes it again: JetStream must drop the repeats by Nats-Msg-Id. */
static void kill_mid_replay(bool page_in_flight)
{
    h_env_t *e = h_setup(&(h_opts_t){
        .api_workers = 1,
        .processors = 1, /* publishes event.replay.started/completed */
        .extra_yaml = "workers:\n  replay: 1\nreplay:\n  page_size: 50\n  lease_seconds: 5\n"});
    e->expect_worker_deaths = true;
    h_svc_start(e);
    h_preload_events(e, N);
    int64_t first_pos = h_sql_int(e, "SELECT min(position) FROM event.events");
    int64_t last_pos = h_sql_int(e, "SELECT max(position) FROM event.events");
    cr_assert_eq(last_pos - first_pos + 1, N, "the preload's positions are not contiguous");

    h_nc_t *sub = h_nc_open(e);
    cr_assert(h_nc_subscribe(sub, "event.replay.audit"));
    h_resp_t r = h_post(e, REPLAY,
                        "{\"start_time\":\"2024-12-31T00:00:00Z\","
                        "\"end_time\":\"2025-12-31T00:00:00Z\",\"target_service\":\"audit\"}");
    cr_assert_eq(r.status, 202, "%s", r.body);
    char *rid = strdup(h_jstr(r.json, "replay_id"));
    h_resp_free(&r);

    seen_t seen = {0};
    /* Kill the worker once it has made progress, well before the end. */
    int64_t replayed = 0;
    pid_t victim = 0;
    int64_t deadline = h_now_ms() + 60000;
    while (h_now_ms() < deadline) {
        drain(sub, &seen, rid, 0);
        PGresult *res = h_sql(e,
                              "SELECT replayed, claim, status FROM event.replay_jobs WHERE "
                              "replay_id = $1",
                              rid);
        replayed = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        bool running = strcmp(PQgetvalue(res, 0, 2), "running") == 0;
        cr_assert_str_neq(PQgetvalue(res, 0, 2), "completed",
                          "the replay of %d events ended before the kill", N);
        if (running && replayed >= 2000 && !PQgetisnull(res, 0, 1)) {
            victim = h_claim_pid(PQgetvalue(res, 0, 1));
            PQclear(res);
            break;
        }
        PQclear(res);
        h_pause_ms(2);
    }
    cr_assert(victim > 0, "the replay made no progress in 60 s (replayed %lld)",
              (long long)replayed);
    cr_assert(h_svc_is_worker(e, victim), "claim holder %d is not a worker of the master",
              (int)victim);
    long unread = 0;
    if (page_in_flight) {
        cr_assert_eq(kill(e->nats.pid, SIGSTOP), 0);
        /* Part of a page waits unread when the queue is not empty and has
         * stopped growing (the worker waits for the acknowledgements). */
        long prev = -2;
        bool settled = H_WAIT(20000, ({
                                  long now = nats_unread_from(victim, e->nats.port);
                                  bool ok = now > 0 && now == prev;
                                  prev = now;
                                  if (!ok)
                                      h_pause_ms(50);
                                  ok;
                              }));
        unread = prev;
        if (!settled)
            kill(e->nats.pid, SIGCONT);
        cr_assert(settled, "no part of a page waited on the held nats-server (queue %ld)", prev);
    }
    cr_assert_eq(kill(victim, SIGKILL), 0);
    char reaped[64];
    snprintf(reaped, sizeof(reaped), "(pid %d) was killed by signal 9", (int)victim);
    bool gone = H_WAIT(10000, h_svc_log_contains(e, reaped, 0));
    if (page_in_flight)
        kill(e->nats.pid, SIGCONT);
    cr_assert(gone, "the master did not reap the killed worker %d", (int)victim);
    int64_t at_kill =
        h_sql_int(e, "SELECT replayed FROM event.replay_jobs WHERE replay_id = $1", rid);
    fprintf(stderr, "kill_mid_replay: killed replay worker %d at %lld of %d (%ld bytes unread)\n",
            (int)victim, (long long)at_kill, N, unread);
    cr_assert(at_kill < N, "the replay ended before the kill");

    /* The master restarts it; the job is due again after its lease. */
    deadline = h_now_ms() + 120000;
    char status[32] = "";
    while (h_now_ms() < deadline) {
        drain(sub, &seen, rid, 0);
        PGresult *res = h_sql(e, "SELECT status FROM event.replay_jobs WHERE replay_id = $1", rid);
        snprintf(status, sizeof(status), "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        if (strcmp(status, "running") != 0 && strcmp(status, "pending") != 0)
            break;
        h_pause_ms(20);
    }
    cr_assert_str_eq(status, "completed", "the replay is %s 120 s after the kill", status);
    cr_assert(h_svc_log_contains(e, "was killed by signal 9", 0), "the master did not log it");
    r = h_get(e, REPLAY "/%s", rid);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(h_jint(r.json, "total"), N, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "replayed"), N, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "failed"), 0, "%s", r.body);
    h_resp_free(&r);

    /* Every event at least once, in order: the positions received rise by
     * one at a time, except where the resumed worker went back to its
     * checkpoint and sent again what it had sent after it. */
    int64_t drain_deadline = h_now_ms() + 60000;
    while (seen.max_pos < last_pos && h_now_ms() < drain_deadline)
        drain(sub, &seen, rid, 200);
    drain(sub, &seen, rid, 200);
    cr_assert(seen.n >= N, "%d messages for %d events", seen.n, N);
    int64_t next = first_pos; /* the next position never received before */
    int repeats = 0, rewinds = 0;
    for (int i = 0; i < seen.n; i++) {
        int64_t p = seen.pos[i];
        if (p == next) {
            next++;
            continue;
        }
        cr_assert(p < next, "message %d: position %lld arrived before %lld", i, (long long)p,
                  (long long)next);
        /* A repeat: the start of a rewind, or the one after the previous. */
        if (i == 0 || p != seen.pos[i - 1] + 1)
            rewinds++;
        cr_assert(i > 0 && (p == seen.pos[i - 1] + 1 || p <= seen.pos[i - 1]),
                  "message %d: position %lld after %lld", i, (long long)p,
                  (long long)seen.pos[i - 1]);
        repeats++;
    }
    cr_assert_eq(next, last_pos + 1, "positions up to %lld received, not up to %lld",
                 (long long)next - 1, (long long)last_pos);
    fprintf(stderr, "kill_mid_replay: %d messages, %d repeats in %d rewinds\n", seen.n, repeats,
            rewinds);
    if (page_in_flight)
        cr_assert(repeats > 0, "the page in flight at the kill never came again");
    cr_assert(rewinds <= 1, "%d rewinds for one kill", rewinds);
    cr_assert(repeats <= PAGE, "%d events sent again: more than the page in flight (%d)", repeats,
              PAGE);

    /* JetStream: each event once on event.replay.audit, and the replay's
     * start and end announced once each. */
    char done_id[200];
    snprintf(done_id, sizeof(done_id), "replay.completed:%s", rid);
    cr_assert(h_js_wait_msg(e, done_id, 20000, NULL), "no %s on JetStream", done_id);
    h_msg_t *msgs = NULL;
    int n = h_js_snapshot(e, &msgs);
    cr_assert(n > 0, "cannot read the stream");
    char **ids = calloc((size_t)n, sizeof(char *));
    int k = 0, started = 0, completed = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(msgs[i].subject, "event.replay.audit") == 0) {
            cr_assert(msgs[i].msg_id != NULL, "a replayed message without Nats-Msg-Id");
            ids[k++] = msgs[i].msg_id;
        } else if (strcmp(msgs[i].subject, "event.replay.started") == 0)
            started++;
        else if (strcmp(msgs[i].subject, "event.replay.completed") == 0)
            completed++;
    }
    cr_assert_eq(k, N, "%d messages on event.replay.audit in JetStream for %d events", k, N);
    qsort(ids, (size_t)k, sizeof(char *), by_string);
    for (int i = 1; i < k; i++)
        cr_assert_str_neq(ids[i - 1], ids[i], "Nats-Msg-Id %s twice in the stream", ids[i]);
    cr_assert_eq(started, 1, "event.replay.started published %d times", started);
    cr_assert_eq(completed, 1, "event.replay.completed published %d times", completed);
    free(ids);
    h_msgs_free(msgs, n);
    h_nc_close(sub);
    free(seen.pos);
    free(rid);
}

H_TEST(replay_faults, worker_killed_mid_replay)
{
    kill_mid_replay(false);
}

H_TEST(replay_faults, worker_killed_with_a_page_in_flight)
{
    kill_mid_replay(true);
}
