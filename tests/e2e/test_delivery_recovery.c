/* A subscription's deliveries through the API (SPEC 10): the list with its
 * status filter and keyset paging, one delivery with its attempt_log, resend
 * of a dead delivery (same webhook-id; a resend that fails is not
 * rescheduled) and recover {"since": time} for the dead ones since then. */
#include "harness.h"
#include "receiver.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBS "/api/v1/events/subscriptions"
#define YAML_PRIVATE_OK "delivery:\n  allow_private: true\n"

/* Creates n events of type `type` in one batch request. */
static void create_batch(h_env_t *e, const char *type, int n)
{
    size_t cap = 64 + (size_t)n * 64;
    char *body = malloc(cap);
    snprintf(body, cap, "{\"events\":[");
    for (int i = 0; i < n; i++)
        snprintf(body + strlen(body), cap - strlen(body), "%s{\"event_type\":\"%s\"}", i ? "," : "",
                 type);
    strcat(body, "]}");
    h_resp_t r = h_http(e->svc.port, "POST", "/api/v1/events/batch", body, strlen(body), NULL, 0);
    cr_assert_eq(r.status, 201, "batch: %ld %s", r.status, r.body);
    h_resp_free(&r);
    free(body);
}

/* Walks the deliveries list of sub with `query` ("status=dead&" or "") and
 * page size limit, following next_cursor; returns every delivery_id seen
 * (a JSON array, in order; caller decrefs) and the page count in *pages.
 * Asserts each page is full but the last, and ordered newest first. */
static json_t *walk(h_env_t *e, const char *sub, const char *query, int limit, int *pages)
{
    json_t *seen = json_array();
    char *cursor = NULL;
    *pages = 0;
    char prev_created[64] = "";
    for (;;) {
        h_resp_t r =
            cursor ? h_get(e, SUBS "/%s/deliveries?%slimit=%d&cursor=%s", sub, query, limit, cursor)
                   : h_get(e, SUBS "/%s/deliveries?%slimit=%d", sub, query, limit);
        cr_assert_eq(r.status, 200, "page %d: %ld %s", *pages, r.status, r.body);
        (*pages)++;
        cr_assert(*pages <= 100, "next_cursor never ends");
        const json_t *items = json_object_get(r.json, "deliveries");
        cr_assert(json_is_array(items), "%s", r.body);
        const char *next = h_jstr(r.json, "next_cursor");
        if (next != NULL)
            cr_assert_eq(json_array_size(items), (size_t)limit,
                         "a page before the last is short: %s", r.body);
        for (size_t i = 0; i < json_array_size(items); i++) {
            const json_t *d = json_array_get(items, i);
            json_array_append_new(seen, json_string(h_jstr(d, "delivery_id")));
            const char *created = h_jstr(d, "created_at");
            cr_assert(created != NULL, "%s", h_jdump(d));
            if (prev_created[0])
                cr_assert(strcmp(created, prev_created) <= 0, "not newest first: %s after %s",
                          created, prev_created);
            snprintf(prev_created, sizeof(prev_created), "%s", created);
        }
        free(cursor);
        cursor = NULL;
        if (next == NULL) {
            cr_assert(json_is_null(json_object_get(r.json, "next_cursor")),
                      "the last page has no \"next_cursor\": null: %s", r.body);
            h_resp_free(&r);
            break;
        }
        /* The cursor is opaque: passed back URL-encoded. */
        CURL *c = curl_easy_init();
        char *esc = curl_easy_escape(c, next, 0);
        cursor = strdup(esc);
        curl_free(esc);
        curl_easy_cleanup(c);
        h_resp_free(&r);
    }
    return seen;
}

/* Every delivery_id of sub with status (NULL: any), from SQL (caller
 * decrefs). */
static json_t *ids_in_db(h_env_t *e, const char *sub, const char *status)
{
    PGresult *r = h_sql(e,
                        "SELECT delivery_id FROM event.deliveries WHERE subscription_id = $1 "
                        "AND ($2 = '' OR status = $2) ORDER BY delivery_id",
                        sub, status ? status : "");
    json_t *out = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(out, json_string(PQgetvalue(r, i, 0)));
    PQclear(r);
    return out;
}

/* Asserts seen holds exactly the ids of want, each once. */
static void assert_same_set(const json_t *seen, const json_t *want, const char *what)
{
    cr_assert_eq(json_array_size(seen), json_array_size(want), "%s: %zu listed, %zu exist: %s",
                 what, json_array_size(seen), json_array_size(want), h_jdump(seen));
    for (size_t i = 0; i < json_array_size(want); i++) {
        const char *id = json_string_value(json_array_get(want, i));
        int times = 0;
        for (size_t k = 0; k < json_array_size(seen); k++)
            times += strcmp(json_string_value(json_array_get(seen, k)), id) == 0;
        cr_assert_eq(times, 1, "%s: %s listed %d times", what, id, times);
    }
}

/* ?status= keeps only deliveries in that state; keyset paging through
 * next_cursor visits every delivery exactly once, newest first, also when
 * many were created in the same transaction (same created_at). */
H_TEST(delivery_recovery, list_status_filter_and_paging)
{
    enum { N = 11, DEAD = 4 };
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    wr_push(rcv, "/mix", DEAD, (wr_answer_t){.status = 500});
    char url[128];
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"mix\",\"event_types\":[\"list.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":0}}",
                            wr_url(rcv, "/mix", url, sizeof(url)));
    const char *sid = h_jstr(s, "subscription_id");
    create_batch(e, "list.item", N);
    cr_assert(H_WAIT(30000, h_deliveries_with_status(e, sid, "dead") == DEAD &&
                                h_deliveries_with_status(e, sid, "delivered") == N - DEAD),
              "%lld dead, %lld delivered", (long long)h_deliveries_with_status(e, sid, "dead"),
              (long long)h_deliveries_with_status(e, sid, "delivered"));
    int64_t distinct_times = h_sql_int(e,
                                       "SELECT count(DISTINCT created_at) FROM "
                                       "event.deliveries WHERE subscription_id = $1",
                                       sid);
    fprintf(stderr, "list_status_filter_and_paging: %lld distinct created_at among %d\n",
            (long long)distinct_times, N);

    const char *states[4] = {"dead", "delivered", "failed", "pending"};
    int want[4] = {DEAD, N - DEAD, 0, 0};
    for (int i = 0; i < 4; i++) {
        h_resp_t r = h_get(e, SUBS "/%s/deliveries?status=%s", sid, states[i]);
        cr_assert_eq(r.status, 200, "%s", r.body);
        const json_t *items = json_object_get(r.json, "deliveries");
        cr_assert_eq(json_array_size(items), (size_t)want[i], "?status=%s: %s", states[i], r.body);
        for (size_t k = 0; k < json_array_size(items); k++)
            cr_assert_str_eq(h_jstr(json_array_get(items, k), "status"), states[i], "%s", r.body);
        cr_assert(json_is_null(json_object_get(r.json, "next_cursor")), "%s", r.body);
        h_resp_free(&r);
    }

    int pages = 0;
    json_t *all = walk(e, sid, "", 3, &pages);
    json_t *db_all = ids_in_db(e, sid, NULL);
    assert_same_set(all, db_all, "limit=3");
    cr_assert_eq(pages, (N + 2) / 3, "%d pages of 3 for %d deliveries", pages, N);
    json_decref(all);
    all = walk(e, sid, "", 1, &pages);
    assert_same_set(all, db_all, "limit=1");
    json_decref(all);
    all = walk(e, sid, "", N, &pages);
    assert_same_set(all, db_all, "limit=N");
    cr_assert(pages <= 2, "%d pages", pages);
    json_decref(all);
    json_t *delivered = walk(e, sid, "status=delivered&", 2, &pages);
    json_t *db_delivered = ids_in_db(e, sid, "delivered");
    assert_same_set(delivered, db_delivered, "status=delivered, limit=2");
    json_decref(delivered);
    json_decref(db_delivered);
    json_decref(db_all);

    const char *bad[] = {"status=bogus", "limit=0", "limit=1001", "limit=x", "cursor=%25%25%25"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        h_resp_t r = h_get(e, SUBS "/%s/deliveries?%s", sid, bad[i]);
        cr_assert_eq(r.status, 422, "?%s: %ld %s", bad[i], r.status, r.body);
        cr_assert(h_jstr(r.json, "detail") != NULL, "%s", r.body);
        h_resp_free(&r);
    }
    h_resp_t r = h_get(e, SUBS "/no-such-subscription/deliveries");
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    r = h_get(e, SUBS "/%s/deliveries/dlv_does_not_exist", sid);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    json_decref(s);
    wr_stop_all(e, rcv);
}

/* Resend of a dead delivery: 202, one more attempt at once with the same
 * webhook-id, trigger "manual"; a resend that fails is dead again and not
 * rescheduled; the next resend that succeeds is delivered. The counters
 * follow. */
H_TEST(delivery_recovery, resend_dead_delivery)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    wr_push(rcv, "/rs", 2, (wr_answer_t){.status = 500});
    char url[128], path[256];
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"rs\",\"event_types\":[\"rs.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":0,"
                            "\"backoff_seconds\":[1]}}",
                            wr_url(rcv, "/rs", url, sizeof(url)));
    const char *sid = h_jstr(s, "subscription_id");
    wr_secret(rcv, "/rs", h_jstr(s, "webhook_secret"));
    char *ev = h_create(e, "{\"event_type\":\"rs.one\"}");
    cr_assert(wr_wait_count(rcv, "/rs", 1, 30000));
    cr_assert(H_WAIT(30000, h_deliveries_with_status(e, sid, "dead") == 1));
    PGresult *pr =
        h_sql(e, "SELECT delivery_id FROM event.deliveries WHERE subscription_id = $1", sid);
    char *did = strdup(PQgetvalue(pr, 0, 0));
    PQclear(pr);

    /* The first resend fails: dead again, once, and not retried. */
    snprintf(path, sizeof(path), SUBS "/%s/deliveries/%s/resend", sid, did);
    h_resp_t r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
    cr_assert_str_eq(h_jstr(r.json, "delivery_id"), did, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "pending", "%s", r.body);
    h_resp_free(&r);
    cr_assert(wr_wait_count(rcv, "/rs", 2, 30000), "the resend was not sent");
    cr_assert(H_WAIT(15000, h_delivery_status_is(e, did, "dead")),
              "a failed resend is not dead again");
    r = h_get(e, SUBS "/%s/deliveries/%s", sid, did);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(h_jget(r.json, "attempt_log")), 2, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "attempt_log.1.trigger"), "manual", "%s", r.body);
    cr_assert(json_is_null(h_jget(r.json, "next_attempt_at")), "rescheduled: %s", r.body);
    h_resp_free(&r);
    r = h_get(e, SUBS "/%s", sid);
    cr_assert_eq(h_jint(r.json, "stats.dead"), 1, "%s", r.body);
    h_resp_free(&r);

    /* The second resend is delivered. */
    r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert(wr_wait_count(rcv, "/rs", 3, 30000), "the second resend was not sent");
    cr_assert(H_WAIT(15000, h_delivery_status_is(e, did, "delivered")),
              "the resend was not delivered");
    cr_assert_eq(wr_count(rcv, "/rs"), 3, "a failed resend was retried on its own");
    wr_req_t *q = NULL;
    int n = wr_requests(rcv, "/rs", &q);
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(wr_header(&q[i], "webhook-id"), did, "request %d", i);
        cr_assert_str_eq(h_jstr(q[i].json, "event_id"), ev);
        cr_assert_eq(q[i].sig, WR_SIG_OK, "request %d is not signed", i);
    }
    wr_reqs_free(q, n);
    r = h_get(e, SUBS "/%s/deliveries/%s", sid, did);
    cr_assert_eq(json_array_size(h_jget(r.json, "attempt_log")), 3, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "attempt_log.2.status_code"), 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "attempt_log.2.trigger"), "manual", "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "attempt_log.0.trigger"), "scheduled", "%s", r.body);
    h_resp_free(&r);
    r = h_get(e, SUBS "/%s", sid);
    cr_assert_eq(h_jint(r.json, "stats.dead"), 0, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "stats.delivered"), 1, "%s", r.body);
    h_resp_free(&r);

    r = h_http(e->svc.port, "POST", SUBS "/no-such-subscription/deliveries/x/resend", NULL, 0, NULL,
               0);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    snprintf(path, sizeof(path), SUBS "/%s/deliveries/dlv_nope/resend", sid);
    r = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    free(did);
    free(ev);
    json_decref(s);
    wr_stop_all(e, rcv);
}

/* recover {"since": T} resends the subscription's dead deliveries created
 * since T, and only those; each arrives with its own webhook-id again. */
H_TEST(delivery_recovery, recover_since)
{
    h_env_t *e = h_start(1, YAML_PRIVATE_OK);
    wr_t *rcv = wr_start();
    wr_default(rcv, "/rc", (wr_answer_t){.status = 500});
    char url[128], path[256];
    json_t *s = h_subscribe(e,
                            "{\"subscriber_name\":\"rc\",\"event_types\":[\"rc.*\"],"
                            "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":0}}",
                            wr_url(rcv, "/rc", url, sizeof(url)));
    json_t *other = h_subscribe(e,
                                "{\"subscriber_name\":\"rc-other\",\"event_types\":[\"rc.*\"],"
                                "\"callback_url\":\"%s\",\"retry_policy\":{\"max_retries\":0}}",
                                wr_url(rcv, "/rc-other", url, sizeof(url)));
    wr_default(rcv, "/rc-other", (wr_answer_t){.status = 500});
    const char *sid = h_jstr(s, "subscription_id"), *oid = h_jstr(other, "subscription_id");
    create_batch(e, "rc.old", 2);
    cr_assert(H_WAIT(30000, h_deliveries_with_status(e, sid, "dead") == 2 &&
                                h_deliveries_with_status(e, oid, "dead") == 2));
    PGresult *t = h_sql(e, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                           "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    char since[64];
    snprintf(since, sizeof(since), "%s", PQgetvalue(t, 0, 0));
    PQclear(t);
    create_batch(e, "rc.new", 3);
    cr_assert(H_WAIT(30000, h_deliveries_with_status(e, sid, "dead") == 5 &&
                                h_deliveries_with_status(e, oid, "dead") == 5));
    json_t *old_ids = json_array(), *new_ids = json_array();
    PGresult *r0 = h_sql(e,
                         "SELECT d.delivery_id, e.event_type FROM event.deliveries d JOIN "
                         "event.events e USING (event_id) WHERE d.subscription_id = $1",
                         sid);
    for (int i = 0; i < PQntuples(r0); i++)
        json_array_append_new(strcmp(PQgetvalue(r0, i, 1), "rc.old") == 0 ? old_ids : new_ids,
                              json_string(PQgetvalue(r0, i, 0)));
    PQclear(r0);
    cr_assert_eq(json_array_size(new_ids), 3);

    wr_default(rcv, "/rc", (wr_answer_t){.status = 200});
    snprintf(path, sizeof(path), SUBS "/%s/recover", sid);
    h_resp_t r = h_post(e, path, "{\"since\":\"%s\"}", since);
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
    cr_assert_eq(h_jint(r.json, "recovered"), 3, "%s", r.body);
    assert_same_set(h_jget(r.json, "delivery_ids"), new_ids, "recover's delivery_ids");
    h_resp_free(&r);
    cr_assert(wr_wait_count(rcv, "/rc", 5 + 3, 30000), "the recovered deliveries were not sent");
    cr_assert(H_WAIT(15000, h_deliveries_with_status(e, sid, "delivered") == 3));
    cr_assert_eq(h_deliveries_with_status(e, sid, "dead"), 2,
                 "deliveries older than since were resent");
    for (size_t i = 0; i < json_array_size(old_ids); i++)
        cr_assert(h_delivery_status_is(e, json_string_value(json_array_get(old_ids, i)), "dead"));
    cr_assert_eq(h_deliveries_with_status(e, oid, "dead"), 5,
                 "another subscription's deliveries were resent");
    cr_assert_eq(wr_count(rcv, "/rc-other"), 5);
    wr_req_t *q = NULL;
    int n = wr_requests(rcv, "/rc", &q);
    cr_assert_eq(n, 8);
    json_t *resent = json_array();
    for (int i = 5; i < n; i++)
        json_array_append_new(resent, json_string(wr_header(&q[i], "webhook-id")));
    assert_same_set(resent, new_ids, "webhook-ids of the recovered deliveries");
    json_decref(resent);
    wr_reqs_free(q, n);

    /* Everything since long ago: the two older ones. */
    r = h_post(e, path, "{\"since\":\"2000-01-01T00:00:00Z\"}");
    cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
    cr_assert_eq(h_jint(r.json, "recovered"), 2, "%s", r.body);
    h_resp_free(&r);
    cr_assert(H_WAIT(30000, h_deliveries_with_status(e, sid, "delivered") == 5));
    r = h_get(e, SUBS "/%s", sid);
    cr_assert_eq(h_jint(r.json, "stats.dead"), 0, "%s", r.body);
    cr_assert_eq(h_jint(r.json, "stats.delivered"), 5, "%s", r.body);
    h_resp_free(&r);

    r = h_post(e, path, "{}");
    cr_assert_eq(r.status, 422, "recover without since: %ld %s", r.status, r.body);
    h_resp_free(&r);
    r = h_post(e, path, "{\"since\":\"yesterday-ish\"}");
    cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    r = h_post(e, SUBS "/no-such-subscription/recover", "{\"since\":\"2000-01-01T00:00:00Z\"}");
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    json_decref(old_ids);
    json_decref(new_ids);
    json_decref(s);
    json_decref(other);
    wr_stop_all(e, rcv);
}
