/* POST /api/v1/events/query: filters, order, offset paging, validation and
 * keyset (cursor) paging. */
#include "harness.h"

#include "common/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUERY "/api/v1/events/query"
#define NEVENTS 30

/* Stores NEVENTS events in one batch. Event i: user alice/bob/carol by
 * i % 3; type page.viewed (category page_view) for even i, item.bought
 * (order) for odd i; source frontend when i % 5 == 0, else backend;
 * timestamp 2025-03-01T00:00Z + i/2 hours (so pairs share a timestamp). */
static void seed_events(h_env_t *e)
{
    static const char *users[] = {"alice", "bob", "carol"};
    char *body = malloc(NEVENTS * 256 + 16);
    size_t len = (size_t)sprintf(body, "[");
    for (int i = 0; i < NEVENTS; i++)
        len += (size_t)sprintf(body + len,
                               "%s{\"event_type\":\"%s\",\"event_category\":\"%s\","
                               "\"event_source\":\"%s\",\"user_id\":\"%s\","
                               "\"correlation_id\":\"corr-%d\",\"data\":{\"i\":%d},"
                               "\"timestamp\":\"2025-03-01T%02d:00:00Z\"}",
                               i ? "," : "", i % 2 ? "item.bought" : "page.viewed",
                               i % 2 ? "order" : "page_view", i % 5 ? "backend" : "frontend",
                               users[i % 3], i % 4, i, i / 2);
    sprintf(body + len, "]");
    h_resp_t r = h_http(e->svc.port, "POST", "/api/v1/events/batch", body, strlen(body), NULL, 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);
    free(body);
}

/* The event_ids matching a SQL condition, newest first (timestamp, then
 * position, descending), joined by ','. */
static char *expected_ids(h_env_t *e, const char *where)
{
    char sql[512];
    snprintf(
        sql, sizeof(sql),
        "SELECT coalesce(string_agg(event_id, ',' ORDER BY timestamp DESC, position DESC), '') "
        "FROM event.events WHERE %s",
        where);
    PGresult *res = h_sql(e, sql);
    char *s = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return s;
}

/* Appends the event_ids of a query answer to ids (comma-separated). */
static void collect_ids(const json_t *answer, char *ids, size_t cap)
{
    json_t *events = h_jget(answer, "events");
    for (size_t i = 0; i < json_array_size(events); i++) {
        const char *id = h_jstr(json_array_get(events, i), "event_id");
        size_t len = strlen(ids);
        snprintf(ids + len, cap - len, "%s%s", len ? "," : "", id ? id : "?");
    }
}

/* Runs a filter query and checks total, the exact ids in order, and that
 * has_more is false (the limit covers them all). */
static void check_filter(h_env_t *e, const char *filter, const char *where, int count)
{
    h_resp_t r = h_post(e, QUERY, "{%s%s\"limit\":1000}", filter, filter[0] ? "," : "");
    cr_assert_eq(r.status, 200, "%s -> %s", filter, r.body);
    cr_assert_eq(h_jint(r.json, "total"), count, "%s -> total in %s", filter, r.body);
    cr_assert(json_is_false(h_jget(r.json, "has_more")), "%s -> %s", filter, r.body);
    char got[8192] = "";
    collect_ids(r.json, got, sizeof(got));
    char *want = expected_ids(e, where);
    cr_assert_str_eq(got, want, "%s: wrong events or order", filter);
    cr_assert_eq(json_array_size(h_jget(r.json, "events")), (size_t)count, "%s", filter);
    free(want);
    h_resp_free(&r);
}

/* Each filter alone and combined returns exactly the matching events,
 * newest first, with the right total. */
H_TEST(query, filters)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    seed_events(e);
    check_filter(e, "", "true", NEVENTS);
    check_filter(e, "\"user_id\":\"alice\"", "user_id = 'alice'", 10);
    check_filter(e, "\"event_type\":\"page.viewed\"", "event_type = 'page.viewed'", 15);
    check_filter(e, "\"event_source\":\"frontend\"", "event_source = 'frontend'", 6);
    check_filter(e, "\"event_category\":\"order\"", "event_category = 'order'", 15);
    /* No processor workers here: everything stays pending. */
    check_filter(e, "\"status\":\"pending\"", "status = 'pending'", NEVENTS);
    check_filter(e, "\"status\":\"processed\"", "false", 0);
    check_filter(e, "\"status\":\"pending\",\"event_source\":\"frontend\"",
                 "event_source = 'frontend'", 6);
    check_filter(e, "\"correlation_id\":\"corr-1\"", "correlation_id = 'corr-1'", 8);
    check_filter(e, "\"user_id\":\"alice\",\"event_type\":\"page.viewed\"",
                 "user_id = 'alice' AND event_type = 'page.viewed'", 5);
    /* Times are inclusive: 02:00 .. 04:00 are events 4..9. */
    check_filter(e, "\"start_time\":\"2025-03-01T02:00:00Z\",\"end_time\":\"2025-03-01T04:00:00Z\"",
                 "(data->>'i')::int BETWEEN 4 AND 9", 6);
    check_filter(e, "\"start_time\":\"2025-03-01T13:00:00Z\"", "(data->>'i')::int >= 26", 4);
    check_filter(e, "\"end_time\":\"2025-03-01T00:30:00+00:00\"", "(data->>'i')::int <= 1", 2);
    check_filter(e, "\"user_id\":\"nobody\"", "false", 0);
}

/* limit/offset: pages of 7 are consecutive slices of the full order, with
 * total and has_more right; past the end an empty page. */
H_TEST(query, limit_offset_paging)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    seed_events(e);
    char got[8192] = "";
    for (int offset = 0; offset < NEVENTS; offset += 7) {
        h_resp_t r = h_post(e, QUERY, "{\"limit\":7,\"offset\":%d}", offset);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert_eq(h_jint(r.json, "total"), NEVENTS, "%s", r.body);
        cr_assert_eq(h_jint(r.json, "limit"), 7, "%s", r.body);
        cr_assert_eq(h_jint(r.json, "offset"), offset, "%s", r.body);
        int expect = NEVENTS - offset < 7 ? NEVENTS - offset : 7;
        cr_assert_eq(json_array_size(h_jget(r.json, "events")), (size_t)expect, "%s", r.body);
        cr_assert_eq(json_is_true(h_jget(r.json, "has_more")), offset + 7 < NEVENTS,
                     "offset %d: %s", offset, r.body);
        collect_ids(r.json, got, sizeof(got));
        h_resp_free(&r);
    }
    char *want = expected_ids(e, "true");
    cr_assert_str_eq(got, want, "pages do not concatenate to the full order");
    free(want);

    h_resp_t r = h_post(e, QUERY, "{\"limit\":5,\"offset\":100}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_array_size(h_jget(r.json, "events")), 0, "%s", r.body);
    cr_assert(json_is_false(h_jget(r.json, "has_more")), "%s", r.body);
    h_resp_free(&r);

    r = h_post(e, QUERY, "{}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "limit"), 100, "default limit: %s", r.body);
    cr_assert_eq(h_jint(r.json, "offset"), 0, "%s", r.body);
    h_resp_free(&r);
}

/* Out-of-range paging and contradictory times are 422 naming the field. */
H_TEST(query, validation)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"limit\":0}", "limit"},
        {"{\"limit\":1001}", "limit"},
        {"{\"limit\":\"ten\"}", "limit"},
        {"{\"offset\":-1}", "offset"},
        {"{\"start_time\":\"2025-03-02T00:00:00Z\",\"end_time\":\"2025-03-01T00:00:00Z\"}",
         "end_time"},
        {"{\"start_time\":\"not a time\"}", "start_time"},
        {"{\"event_source\":\"mars\"}", "event_source"},
        {"{\"status\":\"done\"}", "status"},
        {"{\"cursor\":\"!!!\"}", "cursor"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        h_resp_t r = h_post(e, QUERY, "%s", cases[i].body);
        cr_assert_eq(r.status, 422, "%s -> %ld %s", cases[i].body, r.status, r.body);
        const char *detail = h_jstr(r.json, "detail");
        cr_assert(detail && strstr(detail, cases[i].field), "%s -> %s", cases[i].body, r.body);
        h_resp_free(&r);
    }
    h_resp_t r = h_post(e, QUERY, "{\"limit\":1000}");
    cr_assert_eq(r.status, 200, "limit 1000: %s", r.body);
    h_resp_free(&r);
    r = h_post(e, QUERY, "{\"limit\":1");
    cr_assert_eq(r.status, 400, "malformed: %s", r.body);
    h_resp_free(&r);
}

/* Walks next_cursor from the first page to the end; returns the ids seen.
 * When interleave is set, newer events are stored between pages. */
static char *walk(h_env_t *e, const char *filter, int limit, bool interleave)
{
    char *seen = calloc(1, 16384);
    char *cursor = NULL;
    for (int page = 0; page < 100; page++) {
        h_resp_t r;
        if (cursor)
            r = h_post(e, QUERY, "{%s%s\"limit\":%d,\"cursor\":\"%s\"}", filter,
                       filter[0] ? "," : "", limit, cursor);
        else
            r = h_post(e, QUERY, "{%s%s\"limit\":%d}", filter, filter[0] ? "," : "", limit);
        cr_assert_eq(r.status, 200, "page %d: %s", page, r.body);
        size_t n = json_array_size(h_jget(r.json, "events"));
        cr_assert(n <= (size_t)limit, "%s", r.body);
        collect_ids(r.json, seen, 16384);
        free(cursor);
        const char *next = h_jstr(r.json, "next_cursor");
        cursor = next ? strdup(next) : NULL;
        if (next == NULL)
            cr_assert(json_is_null(h_jget(r.json, "next_cursor")), "last page: %s", r.body);
        h_resp_free(&r);
        if (cursor == NULL)
            return seen;
        if (interleave)
            free(h_create(e,
                          "{\"event_type\":\"page.viewed\",\"user_id\":\"bob\","
                          "\"timestamp\":\"2025-04-01T00:00:%02dZ\"}",
                          page));
    }
    cr_assert_fail("next_cursor never ended");
    return seen;
}

/* Following next_cursor visits every matching event exactly once, in
 * order, even when newer events arrive while paging. */
H_TEST(query, cursor_paging)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    seed_events(e);
    char *want = expected_ids(e, "true");
    char *got = walk(e, "", 7, false);
    cr_assert_str_eq(got, want, "cursor walk (limit 7) differs from the full order");
    free(got);
    got = walk(e, "", 1, false);
    cr_assert_str_eq(got, want, "cursor walk (limit 1) differs from the full order");
    free(got);
    free(want);

    want = expected_ids(e, "user_id = 'bob'");
    got = walk(e, "\"user_id\":\"bob\"", 3, true);
    cr_assert_str_eq(got, want, "cursor walk over bob's events, with inserts, differs");
    free(got);
    free(want);
}
