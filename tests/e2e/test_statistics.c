/* GET /api/v1/events/statistics: every field reflects what was stored, and
 * ?user_id= restricts it to one user. */
#include "harness.h"

#include "common/timeutil.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define DAY_US (86400LL * 1000000)

static void create_at(h_env_t *e, int count, const char *type, const char *source,
                      const char *category, const char *user, int days_ago)
{
    char ts[ES_TIME_BUFLEN] = "";
    if (days_ago > 0)
        es_time_format(es_time_now_us() - days_ago * DAY_US, ts);
    for (int i = 0; i < count; i++)
        free(h_create(e,
                      "{\"event_type\":\"%s\",\"event_source\":\"%s\",\"event_category\":\"%s\","
                      "\"user_id\":\"%s\",\"data\":{\"n\":%d}%s%s%s}",
                      type, source, category, user, i, ts[0] ? ",\"timestamp\":\"" : "", ts,
                      ts[0] ? "\"" : ""));
}

static double num(const json_t *v, const char *path)
{
    json_t *x = h_jget(v, path);
    return json_is_number(x) ? json_number_value(x) : NAN;
}

static void assert_count(const json_t *doc, const char *path, int64_t want, const char *body)
{
    double got = num(doc, path);
    cr_assert(got == (double)want, "%s is %g, expected %lld in %s", path, got, (long long)want,
              body);
}

/* The top_event_types entry at index i is {event_type: type, count: n}. */
static void assert_top(const json_t *doc, int i, const char *type, int n, const char *body)
{
    char path[64];
    snprintf(path, sizeof(path), "top_event_types.%d.event_type", i);
    const char *t = h_jstr(doc, path);
    cr_assert(t && strcmp(t, type) == 0, "%s is %s, expected %s in %s", path, t ? t : "(none)",
              type, body);
    snprintf(path, sizeof(path), "top_event_types.%d.count", i);
    assert_count(doc, path, n, body);
}

static char *utc_day(h_env_t *e)
{
    PGresult *r = h_sql(e, "SELECT (now() AT TIME ZONE 'UTC')::date::text");
    char *d = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return d;
}

/* Totals, status counts, the today/week/month windows (UTC days), rates in
 * percent, and the breakdowns by source, category and type; with
 * ?user_id= only that user's events. Then, once processor workers have
 * processed every event, the status counts and rates follow. */
H_TEST(statistics, reflects_stored_events)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    char *day_before = utc_day(e);
    create_at(e, 2, "login", "backend", "user_action", "u1", 0);
    create_at(e, 2, "login", "backend", "user_action", "u2", 0);
    create_at(e, 3, "purchase", "frontend", "payment", "u1", 3);
    create_at(e, 2, "purchase", "iot_device", "device", "u2", 10);
    create_at(e, 1, "logout", "system", "system", "u3", 45);

    h_resp_t r = h_get(e, "/api/v1/events/statistics");
    char *day_after = utc_day(e);
    if (strcmp(day_before, day_after) != 0)
        cr_skip_test("the UTC day changed during the test");
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *s = r.json;
    assert_count(s, "total_events", 10, r.body);
    assert_count(s, "pending_events", 10, r.body);
    assert_count(s, "processed_events", 0, r.body);
    assert_count(s, "failed_events", 0, r.body);
    assert_count(s, "events_today", 4, r.body);
    assert_count(s, "events_this_week", 7, r.body);
    assert_count(s, "events_this_month", 9, r.body);
    assert_count(s, "processing_rate", 0, r.body);
    assert_count(s, "error_rate", 0, r.body);
    assert_count(s, "events_by_source.backend", 4, r.body);
    assert_count(s, "events_by_source.frontend", 3, r.body);
    assert_count(s, "events_by_source.iot_device", 2, r.body);
    assert_count(s, "events_by_source.system", 1, r.body);
    cr_assert_eq(json_object_size(h_jget(s, "events_by_source")), 4, "%s", r.body);
    assert_count(s, "events_by_category.user_action", 4, r.body);
    assert_count(s, "events_by_category.payment", 3, r.body);
    assert_count(s, "events_by_category.device", 2, r.body);
    assert_count(s, "events_by_category.system", 1, r.body);
    cr_assert_eq(json_array_size(h_jget(s, "top_event_types")), 3, "%s", r.body);
    assert_top(s, 0, "purchase", 5, r.body);
    assert_top(s, 1, "login", 4, r.body);
    assert_top(s, 2, "logout", 1, r.body);
    h_resp_free(&r);

    r = h_get(e, "/api/v1/events/statistics?user_id=u1");
    cr_assert_eq(r.status, 200, "%s", r.body);
    s = r.json;
    assert_count(s, "total_events", 5, r.body);
    assert_count(s, "pending_events", 5, r.body);
    assert_count(s, "events_today", 2, r.body);
    assert_count(s, "events_this_week", 5, r.body);
    assert_count(s, "events_this_month", 5, r.body);
    assert_count(s, "events_by_source.backend", 2, r.body);
    assert_count(s, "events_by_source.frontend", 3, r.body);
    cr_assert_eq(json_object_size(h_jget(s, "events_by_source")), 2, "%s", r.body);
    assert_top(s, 0, "purchase", 3, r.body);
    assert_top(s, 1, "login", 2, r.body);
    cr_assert_eq(json_array_size(h_jget(s, "top_event_types")), 2, "%s", r.body);
    h_resp_free(&r);

    /* Restart with a processor worker (no processors registered: every event
     * is processed) and wait until all of them are. */
    cr_assert(h_svc_stop(e, SIGTERM, 20000));
    e->opts.processors = 1;
    h_svc_write_config(e);
    h_svc_start(e);
    cr_assert(H_WAIT(30000, h_sql_int(e, "SELECT count(*) FROM event.events "
                                         "WHERE status = 'processed'") == 10),
              "the processor worker did not process the 10 events within 30 s");
    r = h_get(e, "/api/v1/events/statistics");
    cr_assert_eq(r.status, 200, "%s", r.body);
    s = r.json;
    assert_count(s, "total_events", 10, r.body);
    assert_count(s, "pending_events", 0, r.body);
    assert_count(s, "processed_events", 10, r.body);
    assert_count(s, "failed_events", 0, r.body);
    cr_assert(fabs(num(s, "processing_rate") - 100.0) < 0.01, "processing_rate in %s", r.body);
    assert_count(s, "error_rate", 0, r.body);
    assert_count(s, "events_this_month", 9, r.body);
    h_resp_free(&r);
    r = h_get(e, "/api/v1/events/statistics?user_id=u2");
    cr_assert_eq(r.status, 200, "%s", r.body);
    assert_count(r.json, "total_events", 4, r.body);
    assert_count(r.json, "processed_events", 4, r.body);
    h_resp_free(&r);
    free(day_before);
    free(day_after);
}

/* An empty store: zeros, rates 0, empty breakdowns; an unknown user too. */
H_TEST(statistics, empty)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    const char *paths[] = {"/api/v1/events/statistics", "/api/v1/events/statistics?user_id=x"};
    for (int i = 0; i < 2; i++) {
        h_resp_t r = h_get(e, "%s", paths[i]);
        cr_assert_eq(r.status, 200, "%s", r.body);
        static const char *zero[] = {"total_events",      "pending_events",  "processed_events",
                                     "failed_events",     "events_today",    "events_this_week",
                                     "events_this_month", "processing_rate", "error_rate"};
        for (size_t k = 0; k < sizeof(zero) / sizeof(zero[0]); k++)
            assert_count(r.json, zero[k], 0, r.body);
        cr_assert(json_is_object(h_jget(r.json, "events_by_source")), "%s", r.body);
        cr_assert_eq(json_object_size(h_jget(r.json, "events_by_category")), 0, "%s", r.body);
        cr_assert(json_is_array(h_jget(r.json, "top_event_types")), "%s", r.body);
        cr_assert_eq(json_array_size(h_jget(r.json, "top_event_types")), 0, "%s", r.body);
        h_resp_free(&r);
    }
}
