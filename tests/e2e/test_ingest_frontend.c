/* Public frontend collection: POST /api/v1/events/frontend and /batch, the
 * health route, server-derived client info (peer, trusted proxies), the
 * events.frontend.{category}.{event_type} publication, the per-client rate
 * limit and the body and batch limits. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* POST body to path on the test's service with extra headers (or NULL). */
static h_resp_t post_with(h_env_t *e, const char *path, const char *body,
                          const char *const *headers)
{
    return h_http(e->svc.port, "POST", path, body, strlen(body), headers, 0);
}

/* Asserts that the stored event id has column expr (SQL over the row "e")
 * equal to want. */
#define ASSERT_COL(e, id, expr, want)                                                              \
    H_ASSERT_EVENT_TEXT(e, "event_id = $1", id, expr, want, "event ")

/* Waits for the next message of the subscription and checks its subject and
 * that it carries event id. */
static void expect_publication(h_nc_t *nc, const char *subject, const char *id)
{
    h_msg_t m;
    cr_assert(h_nc_next(nc, 10000, &m), "nothing published on %s within 10 s (event %s)", subject,
              id);
    cr_assert_str_eq(m.subject, subject, "published on %s, expected %s", m.subject, subject);
    json_t *doc = json_loads(m.data, 0, NULL);
    cr_assert(doc != NULL, "the publication is not JSON: %s", m.data);
    const char *got = h_jstr(doc, "event_id");
    cr_assert(got && strcmp(got, id) == 0, "publication on %s carries event_id %s, expected %s",
              subject, got ? got : "(none)", id);
    json_decref(doc);
    h_msg_clear(&m);
}

/* GET /api/v1/events/frontend/health answers 200 "healthy" with the
 * database check. */
H_TEST(ingest_frontend, health)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_get(e, "/api/v1/events/frontend/health");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "healthy", "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "database"), "ok", "%s", r.body);
    h_resp_free(&r);
}

/* One event: 200 {status: accepted, event_id}, stored with source frontend,
 * the enum category, the client's fields, client info from the connection
 * and headers, and published on events.frontend.{category}.{event_type}. */
H_TEST(ingest_frontend, single_event_stored_and_published)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_nc_t *nc = h_nc_open(e);
    cr_assert(h_nc_subscribe(nc, "events.frontend.>"));
    const char *hdrs[] = {"User-Agent: ua-test/1.0 (frontend)",
                          "Referer: https://ref.example/page?x=1", NULL};
    h_resp_t r = post_with(e, "/api/v1/events/frontend",
                           "{\"event_type\":\"button_click\",\"category\":\"click\","
                           "\"page_url\":\"https://app.example.com/dash\",\"user_id\":\"u-1\","
                           "\"session_id\":\"s-1\",\"data\":{\"button_id\":\"buy\"},"
                           "\"metadata\":{\"device\":\"desktop\"}}",
                           hdrs);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "accepted", "%s", r.body);
    const char *id = h_jstr(r.json, "event_id");
    cr_assert(h_is_uuid(id), "event_id in %s", r.body);
    cr_assert(h_jstr(r.json, "message") != NULL, "no message in %s", r.body);

    ASSERT_COL(e, id, "event_type", "button_click");
    ASSERT_COL(e, id, "event_source", "frontend");
    ASSERT_COL(e, id, "event_category", "click");
    ASSERT_COL(e, id, "user_id", "u-1");
    ASSERT_COL(e, id, "session_id", "s-1");
    ASSERT_COL(e, id, "data->>'button_id'", "buy");
    ASSERT_COL(e, id, "metadata->>'device'", "desktop");
    ASSERT_COL(e, id, "metadata->>'frontend_category'", "click");
    ASSERT_COL(e, id, "metadata->>'page_url'", "https://app.example.com/dash");
    ASSERT_COL(e, id, "context->'client'->>'ip'", "127.0.0.1");
    ASSERT_COL(e, id, "context->'client'->>'user_agent'", "ua-test/1.0 (frontend)");
    ASSERT_COL(e, id, "context->'client'->>'referer'", "https://ref.example/page?x=1");
    cr_assert_eq(
        h_sql_int(e, "SELECT count(*) FROM event.processing_queue WHERE event_id = $1", id), 1,
        "a frontend event is queued for processing like every other");

    h_resp_t g = h_get(e, "/api/v1/events/%s", id);
    cr_assert_eq(g.status, 200, "%s", g.body);
    cr_assert_str_eq(h_jstr(g.json, "event_source"), "frontend", "%s", g.body);
    h_resp_free(&g);

    expect_publication(nc, "events.frontend.click.button_click", id);
    h_nc_close(nc);
    h_resp_free(&r);
}

/* A category that is an enum value maps to it; another string maps to
 * user_action and is kept in metadata.frontend_category (and names the
 * subject); no category at all is user_action. */
H_TEST(ingest_frontend, category_mapping)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_nc_t *nc = h_nc_open(e);
    cr_assert(h_nc_subscribe(nc, "events.frontend.>"));

    h_resp_t r = h_post(e, "/api/v1/events/frontend",
                        "{\"event_type\":\"page_loaded\",\"category\":\"page_view\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    const char *id = h_jstr(r.json, "event_id");
    ASSERT_COL(e, id, "event_category", "page_view");
    expect_publication(nc, "events.frontend.page_view.page_loaded", id);
    h_resp_free(&r);

    r = h_post(e, "/api/v1/events/frontend",
               "{\"event_type\":\"widget_used\",\"category\":\"user_interaction\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    id = h_jstr(r.json, "event_id");
    ASSERT_COL(e, id, "event_category", "user_action");
    ASSERT_COL(e, id, "metadata->>'frontend_category'", "user_interaction");
    expect_publication(nc, "events.frontend.user_interaction.widget_used", id);
    h_resp_free(&r);

    r = h_post(e, "/api/v1/events/frontend", "{\"event_type\":\"no_category\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    id = h_jstr(r.json, "event_id");
    ASSERT_COL(e, id, "event_category", "user_action");
    cr_assert_eq(h_sql_int(e,
                           "SELECT count(*) FROM event.events WHERE event_id = $1 AND "
                           "metadata ? 'frontend_category'",
                           id),
                 0, "no category was sent, yet metadata.frontend_category is set");
    expect_publication(nc, "events.frontend.user_action.no_category", id);
    h_resp_free(&r);

    /* Not a string: 422 naming the field. */
    r = h_post(e, "/api/v1/events/frontend", "{\"event_type\":\"x\",\"category\":7}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(h_jstr(r.json, "detail"), "category") != NULL, "%s", r.body);
    h_resp_free(&r);
    h_nc_close(nc);
}

/* Spaces, dots and the wildcards '*' and '>' in the category and event_type
 * never reach the subject as such: each becomes '_' (one token each), and
 * the stored event keeps the original strings. */
H_TEST(ingest_frontend, subject_tokens_sanitised)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_nc_t *nc = h_nc_open(e);
    cr_assert(h_nc_subscribe(nc, "events.frontend.>"));
    h_resp_t r = h_post(e, "/api/v1/events/frontend",
                        "{\"event_type\":\"clicked a.b*c>d\",\"category\":\"my cat.v1 *>\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    const char *id = h_jstr(r.json, "event_id");
    ASSERT_COL(e, id, "event_type", "clicked a.b*c>d");
    ASSERT_COL(e, id, "metadata->>'frontend_category'", "my cat.v1 *>");
    expect_publication(nc, "events.frontend.my_cat_v1___.clicked_a_b_c_d", id);
    h_msg_t extra;
    cr_assert(!h_nc_next(nc, 300, &extra), "a second publication on %s", extra.subject);
    h_resp_free(&r);
    h_nc_close(nc);
}

/* /frontend/batch takes {"events": [...]} and a bare array: 200 with every
 * event_id, all stored with source frontend, each published. */
H_TEST(ingest_frontend, batch_object_and_bare_array)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_nc_t *nc = h_nc_open(e);
    cr_assert(h_nc_subscribe(nc, "events.frontend.>"));

    h_resp_t r = h_post(e, "/api/v1/events/frontend/batch",
                        "{\"events\":[{\"event_type\":\"a1\",\"category\":\"click\"},"
                        "{\"event_type\":\"a2\",\"category\":\"form_submit\",\"user_id\":\"u-2\"},"
                        "{\"event_type\":\"a3\"}]}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "accepted", "%s", r.body);
    json_t *ids = h_jget(r.json, "event_ids");
    cr_assert(json_is_array(ids) && json_array_size(ids) == 3, "%s", r.body);
    static const char *const cats[] = {"click", "form_submit", "user_action"};
    static const char *const subjects[] = {"events.frontend.click.a1",
                                           "events.frontend.form_submit.a2",
                                           "events.frontend.user_action.a3"};
    for (size_t i = 0; i < 3; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        cr_assert(h_is_uuid(id), "%s", r.body);
        ASSERT_COL(e, id, "event_source", "frontend");
        ASSERT_COL(e, id, "event_category", cats[i]);
        ASSERT_COL(e, id, "context->'client'->>'ip'", "127.0.0.1");
    }
    /* Publications, in any order. */
    bool seen[3] = {false, false, false};
    for (int k = 0; k < 3; k++) {
        h_msg_t m;
        cr_assert(h_nc_next(nc, 10000, &m), "only %d of 3 batch events published", k);
        for (int i = 0; i < 3; i++)
            if (strcmp(m.subject, subjects[i]) == 0)
                seen[i] = true;
        h_msg_clear(&m);
    }
    for (int i = 0; i < 3; i++)
        cr_assert(seen[i], "nothing published on %s", subjects[i]);
    h_resp_free(&r);

    r = h_post(e, "/api/v1/events/frontend/batch",
               "[{\"event_type\":\"b1\"},{\"event_type\":\"b2\",\"category\":\"page_view\"}]");
    cr_assert_eq(r.status, 200, "%s", r.body);
    ids = h_jget(r.json, "event_ids");
    cr_assert(json_is_array(ids) && json_array_size(ids) == 2, "%s", r.body);
    for (size_t i = 0; i < 2; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        ASSERT_COL(e, id, "event_source", "frontend");
    }
    ASSERT_COL(e, json_string_value(json_array_get(ids, 1)), "event_category", "page_view");
    h_resp_free(&r);

    /* All or nothing: one bad element writes nothing. */
    int64_t before = h_sql_int(e, "SELECT count(*) FROM event.events");
    r = h_post(e, "/api/v1/events/frontend/batch",
               "{\"events\":[{\"event_type\":\"ok\"},{\"category\":\"click\"}]}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(h_jstr(r.json, "detail"), "events[1]") != NULL, "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), before);
    h_nc_close(nc);
}

/* Client info is the server's: a client-supplied context (client.ip and
 * all), event_source and event_category are ignored, and X-Forwarded-For /
 * X-Real-IP from a peer that is not a trusted proxy are ignored. */
H_TEST(ingest_frontend, client_info_not_spoofable)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    const char *hdrs[] = {"X-Forwarded-For: 6.6.6.6", "X-Real-IP: 7.7.7.7",
                          "User-Agent: real-agent", NULL};
    h_resp_t r = post_with(e, "/api/v1/events/frontend",
                           "{\"event_type\":\"spoof\",\"event_source\":\"backend\","
                           "\"event_category\":\"payment\","
                           "\"context\":{\"client\":{\"ip\":\"6.6.6.6\",\"user_agent\":\"fake\","
                           "\"referer\":\"https://fake\"},\"other\":1}}",
                           hdrs);
    cr_assert_eq(r.status, 200, "%s", r.body);
    const char *id = h_jstr(r.json, "event_id");
    ASSERT_COL(e, id, "event_source", "frontend");
    ASSERT_COL(e, id, "event_category", "user_action");
    ASSERT_COL(e, id, "context->'client'->>'ip'", "127.0.0.1");
    ASSERT_COL(e, id, "context->'client'->>'user_agent'", "real-agent");
    ASSERT_COL(e, id, "coalesce(context->'client'->>'referer', 'null')", "null");
    cr_assert_eq(h_sql_int(e,
                           "SELECT count(*) FROM event.events WHERE event_id = $1 AND "
                           "context::text LIKE '%6.6.6.6%'",
                           id),
                 0, "the client's context was stored");
    h_resp_free(&r);

    /* The batch route derives it the same way. */
    r = post_with(e, "/api/v1/events/frontend/batch",
                  "[{\"event_type\":\"spoof2\",\"context\":{\"client\":{\"ip\":\"6.6.6.6\"}}}]",
                  hdrs);
    cr_assert_eq(r.status, 200, "%s", r.body);
    const char *id2 = h_jstr(r.json, "event_ids.0");
    cr_assert(id2 != NULL, "%s", r.body);
    ASSERT_COL(e, id2, "context->'client'->>'ip'", "127.0.0.1");
    h_resp_free(&r);
}

/* With service.trusted_proxies ["127.0.0.1"], the client is the rightmost
 * X-Forwarded-For entry that is not a trusted proxy; X-Real-IP is used when
 * there is no X-Forwarded-For; entries that are not addresses are never
 * taken. */
H_TEST(ingest_frontend, trusted_proxy_forwarded_for)
{
    h_env_t *e = h_setup(&(h_opts_t){
        .extra_yaml = "service:\n  trusted_proxies: [\"127.0.0.1\", \"10.0.0.0/8\"]\n"});
    h_svc_start(e);
    static const struct {
        const char *header;
        const char *want;
    } cases[] = {
        {"X-Forwarded-For: 203.0.113.5", "203.0.113.5"},
        /* the leftmost entries are the client's to write: not believed */
        {"X-Forwarded-For: 1.1.1.1, 198.51.100.7", "198.51.100.7"},
        /* our own proxies (trusted) are skipped from the right */
        {"X-Forwarded-For: 1.1.1.1, 198.51.100.8, 10.1.2.3, 127.0.0.1", "198.51.100.8"},
        {"X-Forwarded-For: 2001:db8::7", "2001:db8::7"},
        {"X-Real-IP: 192.0.2.44", "192.0.2.44"},
        /* garbage is not an address: the peer stays the client */
        {"X-Forwarded-For: not-an-ip", "127.0.0.1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *hdrs[] = {cases[i].header, NULL};
        h_resp_t r =
            post_with(e, "/api/v1/events/frontend", "{\"event_type\":\"via.proxy\"}", hdrs);
        cr_assert_eq(r.status, 200, "%s: %s", cases[i].header, r.body);
        const char *id = h_jstr(r.json, "event_id");
        char *ip = h_sql_text(e,
                              "SELECT context->'client'->>'ip' FROM event.events "
                              "WHERE event_id = $1",
                              id);
        cr_assert(ip && strcmp(ip, cases[i].want) == 0, "%s: client ip %s, expected %s",
                  cases[i].header, ip ? ip : "NULL", cases[i].want);
        free(ip);
        h_resp_free(&r);
    }
}

/* frontend.rate_limit_per_minute / rate_limit_burst: past the burst a client
 * gets 429 with Retry-After and nothing is written; another client (another
 * address, through the trusted proxy) is not affected. */
H_TEST(ingest_frontend, rate_limit_429)
{
    h_env_t *e = h_setup(&(h_opts_t){
        .api_workers = 1,
        .extra_yaml = "service:\n  trusted_proxies: [\"127.0.0.1\"]\n"
                      "frontend:\n  rate_limit_per_minute: 1\n  rate_limit_burst: 3\n"});
    h_svc_start(e);
    const char *client_a[] = {"X-Forwarded-For: 198.51.100.10", NULL};
    const char *client_b[] = {"X-Forwarded-For: 198.51.100.11", NULL};
    for (int i = 0; i < 3; i++) {
        h_resp_t r =
            post_with(e, "/api/v1/events/frontend", "{\"event_type\":\"limited\"}", client_a);
        cr_assert_eq(r.status, 200, "request %d within the burst: %s", i, r.body);
        h_resp_free(&r);
    }
    char *head = NULL;
    const char *body = "{\"event_type\":\"limited\"}";
    h_resp_t r = h_http_head(e->svc.port, "POST", "/api/v1/events/frontend", body, strlen(body),
                             client_a, 0, &head);
    cr_assert_eq(r.status, 429, "past the burst: %ld %s", r.status, r.body);
    cr_assert(h_jstr(r.json, "detail") != NULL, "429 without a detail: %s", r.body);
    char ra[32] = "";
    cr_assert(h_head_get(head, "Retry-After", ra, sizeof(ra)), "429 without Retry-After:\n%s",
              head);
    long secs = strtol(ra, NULL, 10);
    cr_assert(secs >= 1 && secs <= 60, "Retry-After: %s (one token a minute)", ra);
    free(head);
    h_resp_free(&r);

    /* The batch route shares the budget. */
    r = post_with(e, "/api/v1/events/frontend/batch", "[{\"event_type\":\"limited\"}]", client_a);
    cr_assert_eq(r.status, 429, "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events WHERE event_type = 'limited' "
                              "AND context->'client'->>'ip' = '198.51.100.10'"),
                 3, "refused requests were written");

    r = post_with(e, "/api/v1/events/frontend", "{\"event_type\":\"other.client\"}", client_b);
    cr_assert_eq(r.status, 200, "another client is limited too: %s", r.body);
    h_resp_free(&r);
    /* The health route is not limited. */
    r = h_get(e, "/api/v1/events/frontend/health");
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);
}

/* frontend.max_body_bytes: a larger body gets 413; frontend.max_batch: more
 * events get 422 naming events; an empty batch 422; malformed JSON 400. */
H_TEST(ingest_frontend, body_and_batch_limits)
{
    h_env_t *e =
        h_setup(&(h_opts_t){.extra_yaml = "frontend:\n  max_body_bytes: 2048\n  max_batch: 3\n"});
    h_svc_start(e);
    char big[4096];
    int n = snprintf(big, sizeof(big), "{\"event_type\":\"big\",\"data\":{\"pad\":\"");
    memset(big + n, 'x', 3000);
    snprintf(big + n + 3000, sizeof(big) - (size_t)n - 3000, "\"}}");
    h_resp_t r = h_post(e, "/api/v1/events/frontend", "%s", big);
    cr_assert_eq(r.status, 413, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    r = h_post(e, "/api/v1/events/frontend/batch", "[%s]", big);
    cr_assert_eq(r.status, 413, "%ld %s", r.status, r.body);
    h_resp_free(&r);

    r = h_post(e, "/api/v1/events/frontend/batch",
               "[{\"event_type\":\"a\"},{\"event_type\":\"b\"},{\"event_type\":\"c\"},"
               "{\"event_type\":\"d\"}]");
    cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
    cr_assert(strstr(h_jstr(r.json, "detail"), "events") != NULL, "%s", r.body);
    h_resp_free(&r);
    r = h_post(e, "/api/v1/events/frontend/batch", "{\"events\":[]}");
    cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    r = h_post(e, "/api/v1/events/frontend", "{\"event_type\": ");
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);

    /* At the limits it is accepted. */
    r = h_post(e, "/api/v1/events/frontend/batch",
               "[{\"event_type\":\"a\"},{\"event_type\":\"b\"},{\"event_type\":\"c\"}]");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 3);
}
