/* Scheduled replays (replay.schedules): a schedule fires once per due time
 * across every instance of the service on one database, its runs replay
 * what they select, and GET /api/v1/events/replay lists the schedules with
 * their next fire time; a bad cron expression is refused by -t naming its
 * line. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY "/api/v1/events/replay"

#define SCHEDULE_YAML                                                                              \
    "workers:\n"                                                                                   \
    "  replay: 2\n"                                                                                \
    "replay:\n"                                                                                    \
    "  schedules:\n"                                                                               \
    "    - name: every-minute\n"                                                                   \
    "      cron: \"* * * * *\"\n"                                                                  \
    "      mode: republish\n"                                                                      \
    "      target_service: minutely\n"                                                             \
    "      select:\n"                                                                              \
    "        event_type: tick\n"                                                                   \
    "        window_seconds: 3600\n"

/* How many times needle occurs in the file at path. */
static int occurrences(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    size_t got;
    while ((got = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 == cap)
            text = realloc(text, cap *= 2);
    }
    fclose(f);
    text[len] = '\0';
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(text);
    return n;
}

/* The jobs of the schedule with fire_time in [from, to] (epoch seconds). */
static int64_t runs_between(h_env_t *e, int64_t from, int64_t to)
{
    char a[24], b[24];
    snprintf(a, sizeof(a), "%lld", (long long)from);
    snprintf(b, sizeof(b), "%lld", (long long)to);
    return h_sql_int(e,
                     "SELECT count(*) FROM event.replay_jobs WHERE schedule_name = "
                     "'every-minute' AND fire_time BETWEEN to_timestamp($1::bigint) AND "
                     "to_timestamp($2::bigint)",
                     a, b);
}

/* The schedule as GET /api/v1/events/replay on port lists it: next_fire_at
 * is the next whole minute. */
static void assert_listed(h_env_t *e, int port)
{
    h_resp_t r = h_http(port, "GET", REPLAY, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *schedules = h_jget(r.json, "schedules");
    cr_assert_eq(json_array_size(schedules), 1, "%s", r.body);
    json_t *s = json_array_get(schedules, 0);
    cr_assert_str_eq(h_jstr(s, "name"), "every-minute", "%s", r.body);
    cr_assert_str_eq(h_jstr(s, "cron"), "* * * * *", "%s", r.body);
    cr_assert_str_eq(h_jstr(s, "mode"), "republish", "%s", r.body);
    cr_assert_str_eq(h_jstr(s, "target_service"), "minutely", "%s", r.body);
    const char *next = h_jstr(s, "next_fire_at");
    cr_assert(next != NULL, "no next_fire_at: %s", r.body);
    cr_assert_eq(h_sql_int(e, "SELECT extract(second FROM $1::timestamptz)::int", next), 0,
                 "next_fire_at %s is not a whole minute", next);
    /* Within the next minute (the service's clock and the database's may
     * disagree by a second). */
    int64_t ahead = h_sql_int(e,
                              "SELECT (extract(epoch FROM $1::timestamptz) - "
                              "extract(epoch FROM now()))::bigint",
                              next);
    cr_assert(ahead >= -1 && ahead <= 61, "next_fire_at %s is %lld s ahead", next,
              (long long)ahead);
    int scheduled = 0;
    json_t *replays = h_jget(r.json, "replays");
    for (size_t i = 0; i < json_array_size(replays); i++) {
        const char *name = h_jstr(json_array_get(replays, i), "schedule");
        if (name && strcmp(name, "every-minute") == 0) {
            scheduled++;
            cr_assert(h_jstr(json_array_get(replays, i), "fire_time") != NULL, "%s", r.body);
        }
    }
    cr_assert(scheduled >= 2, "%d scheduled runs listed: %s", scheduled, r.body);
    h_resp_free(&r);
}

/* Two instances of the service (two replay workers each) against one
 * database and one nats-server, a schedule every minute: over two minutes
 * exactly one run per minute, announced by exactly one worker; each run
 * replays the events of its window. */
H_TEST(replay_schedule, one_run_per_minute_across_instances)
{
    h_env_t *e = h_setup(&(h_opts_t){.api_workers = 1, .extra_yaml = SCHEDULE_YAML});
    h_svc_start(e);
    h_svc_t *other = h_svc_start_other(e, "second", NULL);
    enum { TICKS = 3 };
    char *ticks[TICKS];
    for (int i = 0; i < TICKS; i++)
        ticks[i] = h_create(e, "{\"event_type\":\"tick\",\"data\":{\"i\":%d}}", i);
    free(h_create(e, "{\"event_type\":\"tock\"}"));
    h_nc_t *sub = h_nc_open(e);
    cr_assert(h_nc_subscribe(sub, "event.replay.minutely"));

    /* Both instances are up from here: the next two due times are f1, f2. */
    int64_t t0 = h_sql_int(e, "SELECT extract(epoch FROM now())::bigint");
    int64_t f1 = t0 - t0 % 60 + 60, f2 = f1 + 60;
    cr_assert(H_WAIT((f2 - t0 + 30) * 1000, runs_between(e, f2, f2) == 1),
              "no run for the due time %lld within %lld s", (long long)f2,
              (long long)(f2 - t0 + 30));
    cr_assert_eq(runs_between(e, f1, f2), 2, "runs for the two minutes after the start");
    /* Every run of the schedule, from either instance: whole minutes, one
     * each, none skipped between the first and the last. */
    PGresult *res = h_sql(e, "SELECT count(*), count(DISTINCT fire_time), "
                             "count(*) FILTER (WHERE extract(second FROM fire_time) <> 0), "
                             "extract(epoch FROM max(fire_time) - min(fire_time))::bigint "
                             "FROM event.replay_jobs WHERE schedule_name = 'every-minute'");
    int64_t count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    int64_t distinct = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    int64_t odd = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    int64_t span = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    PQclear(res);
    cr_assert_eq(count, distinct, "%lld runs for %lld due times", (long long)count,
                 (long long)distinct);
    cr_assert_eq(odd, 0, "a run at a time that is not a whole minute");
    cr_assert_eq(span, (count - 1) * 60, "%lld runs over %lld s: a minute was skipped",
                 (long long)count, (long long)span);
    cr_assert(count <= 3, "%lld runs: more than the minutes since the start", (long long)count);

    /* Each due time was announced by exactly one worker of one instance. */
    for (int64_t f = f1; f <= f2; f += 60) {
        char when[24], needle[80];
        snprintf(when, sizeof(when), "%lld", (long long)f);
        PGresult *t = h_sql(e,
                            "SELECT to_char(to_timestamp($1::bigint) AT TIME ZONE 'UTC', "
                            "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                            when);
        snprintf(needle, sizeof(needle), "schedule every-minute fired for %s", PQgetvalue(t, 0, 0));
        PQclear(t);
        int a = occurrences(e->svc.log, needle), b = occurrences(other->log, needle);
        cr_assert_eq(a + b, 1, "\"%s\": %d times in the first instance's log, %d in the second's",
                     needle, a, b);
    }

    /* Both runs complete and replay the ticks of their window. */
    char a[24], b[24];
    snprintf(a, sizeof(a), "%lld", (long long)f1);
    snprintf(b, sizeof(b), "%lld", (long long)f2);
    res = h_sql(e,
                "SELECT replay_id FROM event.replay_jobs WHERE schedule_name = 'every-minute' "
                "AND fire_time BETWEEN to_timestamp($1::bigint) AND to_timestamp($2::bigint) "
                "ORDER BY fire_time",
                a, b);
    cr_assert_eq(PQntuples(res), 2);
    for (int j = 0; j < 2; j++) {
        const char *rid = PQgetvalue(res, j, 0);
        cr_assert(H_WAIT(60000, h_sql_int(e,
                                          "SELECT count(*) FROM event.replay_jobs WHERE "
                                          "replay_id = $1 AND status = 'completed'",
                                          rid) == 1),
                  "scheduled run %s did not complete", rid);
        cr_assert_eq(h_sql_int(e, "SELECT total FROM event.replay_jobs WHERE replay_id = $1", rid),
                     TICKS);
    }
    /* TICKS messages per run on the subject, in order, each run's own. */
    for (int j = 0; j < 2; j++) {
        for (int i = 0; i < TICKS; i++) {
            h_msg_t m;
            cr_assert(h_nc_next(sub, 20000, &m), "message %d of run %d did not come", i, j);
            char want[200];
            snprintf(want, sizeof(want), "%s:%s", PQgetvalue(res, j, 0), ticks[i]);
            cr_assert(m.msg_id && strcmp(m.msg_id, want) == 0, "run %d message %d: %s, expected %s",
                      j, i, m.msg_id ? m.msg_id : "(none)", want);
            h_msg_clear(&m);
        }
    }
    PQclear(res);
    cr_assert(h_sql_int(e,
                        "SELECT count(*) FROM event.replay_schedules WHERE name = "
                        "'every-minute' AND last_fire >= to_timestamp($1::bigint)",
                        b) == 1,
              "the schedule's state is behind its runs");
    assert_listed(e, e->svc.port);
    assert_listed(e, other->port);
    h_nc_close(sub);
    for (int i = 0; i < TICKS; i++)
        free(ticks[i]);
}

/* `event-service -t -c FILE` (and a plain start) refuses a schedule whose
 * cron expression is bad, with the file, the line of the expression, and
 * why; a good one passes. */
H_TEST(replay_schedule, bad_cron_fails_config_test)
{
    h_env_t *e = h_setup(&(h_opts_t){.no_nats = true});
    static const struct {
        const char *cron, *why;
    } bad[] = {
        {"\"61 * * * *\"", "minute"},          {"\"* * * *\"", "5 fields"},
        {"\"0 0 * * funday\"", "day-of-week"}, {"\"*/0 * * * *\"", "minute"},
        {"\"@fortnightly\"", "5 fields"},      {"\"0 24 * * *\"", "hour"},
        {"0 0 32 * *", "day-of-month"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text),
                 "service:\n"                  /* 1 */
                 "  port: 8208\n"              /* 2 */
                 "replay:\n"                   /* 3 */
                 "  schedules:\n"              /* 4 */
                 "    - name: nightly\n"       /* 5 */
                 "      cron: \"0 3 * * *\"\n" /* 6 */
                 "      mode: reprocess\n"     /* 7 */
                 "    - name: broken\n"        /* 8 */
                 "      mode: republish\n"     /* 9 */
                 "      cron: %s\n"            /* 10 */
                 "      target_service: x\n",
                 bad[i].cron);
        h_svc_write_config_text(e, text);
        const char *args[] = {"-t", "-c", e->svc.conf, NULL};
        char *out = NULL;
        int rc = h_run_binary(e, args, NULL, &out);
        cr_assert_eq(rc, 1, "cron %s: -t exited %d: %s", bad[i].cron, rc, out);
        char where[400];
        snprintf(where, sizeof(where), "%s:10", e->svc.conf);
        cr_assert(strstr(out, where) != NULL, "cron %s: no \"%s\" in: %s", bad[i].cron, where, out);
        cr_assert(strstr(out, "cron") != NULL && strstr(out, bad[i].why) != NULL,
                  "cron %s: the message does not say cron and \"%s\": %s", bad[i].cron, bad[i].why,
                  out);
        free(out);
        if (i == 0) { /* A plain start refuses it too. */
            const char *run[] = {"-c", e->svc.conf, NULL};
            rc = h_run_binary(e, run, NULL, &out);
            cr_assert(rc != 0 && rc != -1, "a start with a bad cron exited %d: %s", rc, out);
            cr_assert(strstr(out, where) != NULL, "the start does not name %s: %s", where, out);
            free(out);
        }
    }
    h_svc_write_config_text(e, "replay:\n"
                               "  schedules:\n"
                               "    - name: nightly\n"
                               "      cron: \"30 2 * * mon-fri\"\n"
                               "      mode: reprocess\n"
                               "      select:\n"
                               "        status: failed\n"
                               "        window_seconds: 86400\n"
                               "    - name: hourly\n"
                               "      cron: \"@hourly\"\n"
                               "      mode: republish\n"
                               "      target_service: warehouse\n");
    const char *args[] = {"-t", "-c", e->svc.conf, NULL};
    char *out = NULL;
    int rc = h_run_binary(e, args, NULL, &out);
    cr_assert_eq(rc, 0, "a valid schedule: -t exited %d: %s", rc, out);
    free(out);
}
