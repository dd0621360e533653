/* The Segment/RudderStack HTTP tracking API: POST /v1/track, /v1/page,
 * /v1/identify, /v1/screen, /v1/group, /v1/alias, /v1/batch. Write keys as
 * the HTTP Basic user, gzip bodies, Segment's size limits, batch context,
 * the sentAt clock correction, server-filled context, messageId dedup. */
#include "harness.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define KEY1 "wk_test_1"
#define KEY2 "wk_test_2"
#define KEYS_YAML "tracking:\n  write_keys: [\"" KEY1 "\", \"" KEY2 "\"]\n"

/* "Authorization: Basic base64(user:pass)" into out. */
static void basic(char *out, size_t cap, const char *userpass)
{
    unsigned char b64[200];
    EVP_EncodeBlock(b64, (const unsigned char *)userpass, (int)strlen(userpass));
    snprintf(out, cap, "Authorization: Basic %s", b64);
}

/* POSTs body (len bytes) to path with the write key KEY1 and extra headers
 * (one, or NULL). */
static h_resp_t post_key(h_env_t *e, const char *path, const char *body, size_t len,
                         const char *extra)
{
    char auth[256];
    basic(auth, sizeof(auth), KEY1 ":");
    const char *hdrs[] = {auth, extra, NULL};
    return h_http(e->svc.port, "POST", path, body, len, hdrs, 0);
}

static h_resp_t track(h_env_t *e, const char *path, const char *body)
{
    return post_key(e, path, body, strlen(body), NULL);
}

/* gzip (RFC 1952) of data; *out_len gets the size. Caller frees. */
static char *gzip_of(const char *data, size_t len, size_t *out_len)
{
    z_stream z = {0};
    cr_assert_eq(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY),
                 Z_OK);
    size_t cap = deflateBound(&z, (uLong)len) + 64;
    char *out = malloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

#define ASSERT_MSG(e, mid, expr, want)                                                             \
    H_ASSERT_EVENT_TEXT(e, "metadata->>'messageId' = $1", mid, expr, want, "message ")

static void assert_success(const h_resp_t *r, const char *what)
{
    cr_assert_eq(r->status, 200, "%s: %ld %s", what, r->status, r->body);
    cr_assert(json_is_true(h_jget(r->json, "success")), "%s: %s", what, r->body);
}

/* No Authorization, a wrong key, a Bearer token, a key as the password:
 * 401 and nothing stored. Basic "<key>:" (either configured key), a Basic
 * user without the colon, or "writeKey" in the body: 200 {"success":true}. */
H_TEST(ingest_tracking, write_key_required)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = KEYS_YAML});
    h_svc_start(e);
    const char *body = "{\"userId\":\"u-1\",\"event\":\"Auth Test\",\"messageId\":\"auth-%d\"}";
    char text[200], wrong[256], as_pass[256], good2[256], nocolon[256];
    basic(wrong, sizeof(wrong), "wk_nope:");
    basic(as_pass, sizeof(as_pass), ":" KEY1);
    basic(good2, sizeof(good2), KEY2 ":");
    basic(nocolon, sizeof(nocolon), KEY1);
    const char *refused[] = {NULL, wrong, as_pass, "Authorization: Bearer " KEY1,
                             "Authorization: Basic !!!notbase64"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        snprintf(text, sizeof(text), body, 100 + (int)i);
        const char *hdrs[] = {refused[i], NULL};
        h_resp_t r = h_http(e->svc.port, "POST", "/v1/track", text, strlen(text),
                            refused[i] ? hdrs : NULL, 0);
        cr_assert_eq(r.status, 401, "%s: %ld %s", refused[i] ? refused[i] : "no Authorization",
                     r.status, r.body);
        h_resp_free(&r);
    }
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);

    snprintf(text, sizeof(text), body, 1);
    h_resp_t r = track(e, "/v1/track", text);
    assert_success(&r, "Basic " KEY1 ":");
    h_resp_free(&r);
    snprintf(text, sizeof(text), body, 2);
    const char *h2[] = {good2, NULL};
    r = h_http(e->svc.port, "POST", "/v1/track", text, strlen(text), h2, 0);
    assert_success(&r, "Basic " KEY2 ":");
    h_resp_free(&r);
    snprintf(text, sizeof(text), body, 3);
    const char *h3[] = {nocolon, NULL};
    r = h_http(e->svc.port, "POST", "/v1/track", text, strlen(text), h3, 0);
    assert_success(&r, "Basic without a colon");
    h_resp_free(&r);
    const char *in_body =
        "{\"writeKey\":\"" KEY1 "\",\"userId\":\"u\",\"event\":\"E\",\"messageId\":\"auth-4\"}";
    r = h_http(e->svc.port, "POST", "/v1/track", in_body, strlen(in_body), NULL, 0);
    assert_success(&r, "writeKey in the body");
    h_resp_free(&r);
    for (int i = 1; i <= 4; i++) {
        char mid[32];
        snprintf(mid, sizeof(mid), "auth-%d", i);
        cr_assert_eq(h_events_with_message_id(e, mid), 1, "%s not stored", mid);
    }
}

/* With no write key configured the API is closed: 401 even with a key. */
H_TEST(ingest_tracking, no_keys_configured_refuses)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = track(e, "/v1/track", "{\"userId\":\"u-1\",\"event\":\"E\"}");
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);
}

/* Each call type, with the type implied by the path: stored with source
 * external_api, the path's type, the mapped event_type and category. */
H_TEST(ingest_tracking, every_endpoint)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = KEYS_YAML});
    h_svc_start(e);
    static const struct {
        const char *path, *body, *mid, *type, *event_type, *category;
    } calls[] = {
        {"/v1/track",
         "{\"userId\":\"u-1\",\"event\":\"Contact Form Sent\",\"messageId\":\"ep-track\"}",
         "ep-track", "track", "Contact Form Sent", "form_submit"},
        {"/v1/page",
         "{\"userId\":\"u-1\",\"name\":\"Pricing\",\"messageId\":\"ep-page\","
         "\"properties\":{\"url\":\"https://x/pricing\"}}",
         "ep-page", "page", "Pricing", "page_view"},
        {"/v1/identify",
         "{\"userId\":\"u-1\",\"traits\":{\"plan\":\"pro\"},\"messageId\":\"ep-identify\"}",
         "ep-identify", "identify", "identify", "user_action"},
        {"/v1/screen", "{\"anonymousId\":\"a-1\",\"name\":\"Home\",\"messageId\":\"ep-screen\"}",
         "ep-screen", "screen", "Home", "user_action"},
        {"/v1/group", "{\"userId\":\"u-1\",\"groupId\":\"g-1\",\"messageId\":\"ep-group\"}",
         "ep-group", "group", "group", "user_action"},
        {"/v1/alias", "{\"userId\":\"u-1\",\"previousId\":\"a-1\",\"messageId\":\"ep-alias\"}",
         "ep-alias", "alias", "alias", "user_action"},
    };
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        h_resp_t r = track(e, calls[i].path, calls[i].body);
        assert_success(&r, calls[i].path);
        h_resp_free(&r);
        cr_assert_eq(h_events_with_message_id(e, calls[i].mid), 1, "%s: not stored", calls[i].path);
        ASSERT_MSG(e, calls[i].mid, "event_source", "external_api");
        ASSERT_MSG(e, calls[i].mid, "metadata->>'original_type'", calls[i].type);
        ASSERT_MSG(e, calls[i].mid, "data->>'type'", calls[i].type);
        ASSERT_MSG(e, calls[i].mid, "event_type", calls[i].event_type);
        ASSERT_MSG(e, calls[i].mid, "event_category", calls[i].category);
    }
    ASSERT_MSG(e, "ep-screen", "user_id", "a-1");
    ASSERT_MSG(e, "ep-group", "data->>'groupId'", "g-1");
    ASSERT_MSG(e, "ep-alias", "data->>'previousId'", "a-1");
    ASSERT_MSG(e, "ep-identify", "data->'traits'->>'plan'", "pro");
    ASSERT_MSG(e, "ep-page", "data->'properties'->>'url'", "https://x/pricing");

    /* /v1/batch: each message carries its type. */
    h_resp_t r =
        track(e, "/v1/batch",
              "{\"batch\":[{\"type\":\"track\",\"event\":\"Link Click\",\"userId\":\"u-2\","
              "\"messageId\":\"ep-b1\"},{\"type\":\"page\",\"name\":\"About\","
              "\"userId\":\"u-2\",\"messageId\":\"ep-b2\"}]}");
    assert_success(&r, "/v1/batch");
    h_resp_free(&r);
    ASSERT_MSG(e, "ep-b1", "event_category", "click");
    ASSERT_MSG(e, "ep-b2", "event_category", "page_view");
    ASSERT_MSG(e, "ep-b2", "event_source", "external_api");
}

/* Content-Encoding: gzip bodies (what rudder-sdk-node sends) are accepted on
 * single calls and batches; a body that is not gzip is 400. */
H_TEST(ingest_tracking, gzip_bodies)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = KEYS_YAML});
    h_svc_start(e);
    const char *one = "{\"userId\":\"u-gz\",\"event\":\"Zipped\",\"messageId\":\"gz-1\"}";
    size_t zlen;
    char *z = gzip_of(one, strlen(one), &zlen);
    h_resp_t r = post_key(e, "/v1/track", z, zlen, "Content-Encoding: gzip");
    assert_success(&r, "gzip /v1/track");
    h_resp_free(&r);
    free(z);
    ASSERT_MSG(e, "gz-1", "event_type", "Zipped");

    const char *batch = "{\"batch\":[{\"type\":\"track\",\"userId\":\"u-gz\",\"event\":\"Z1\","
                        "\"messageId\":\"gz-2\"},{\"type\":\"identify\",\"userId\":\"u-gz\","
                        "\"messageId\":\"gz-3\"}]}";
    z = gzip_of(batch, strlen(batch), &zlen);
    r = post_key(e, "/v1/batch", z, zlen, "Content-Encoding: gzip");
    assert_success(&r, "gzip /v1/batch");
    h_resp_free(&r);
    free(z);
    cr_assert_eq(h_events_with_message_id(e, "gz-2"), 1);
    cr_assert_eq(h_events_with_message_id(e, "gz-3"), 1);

    r = post_key(e, "/v1/track", "this is not gzip", 16, "Content-Encoding: gzip");
    cr_assert_eq(r.status, 400, "a corrupt gzip body: %ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 3);
}

/* A message of padding bytes (JSON) with messageId mid. Caller frees. */
static char *padded_message(const char *mid, size_t pad, bool typed)
{
    char *s = malloc(pad + 256);
    int n = snprintf(s, 256,
                     "{%s\"userId\":\"u-big\",\"event\":\"Big\",\"messageId\":\"%s\","
                     "\"properties\":{\"pad\":\"",
                     typed ? "\"type\":\"track\"," : "", mid);
    memset(s + n, 'x', pad);
    memcpy(s + n + pad, "\"}}", 4);
    return s;
}

/* Segment's limits: a call over 32 KB is 413, a batch over 500 KB is 413, a
 * batch message over 32 KB is 413; just under them is accepted; a gzip body
 * that inflates over the limit is 413. Nothing of a refused call is stored. */
H_TEST(ingest_tracking, size_limits)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = KEYS_YAML});
    h_svc_start(e);
    char *big = padded_message("size-big", 33 * 1024, false);
    h_resp_t r = track(e, "/v1/track", big);
    cr_assert_eq(r.status, 413, "a 33 KB call: %ld %s", r.status, r.body);
    h_resp_free(&r);
    size_t zlen;
    char *z = gzip_of(big, strlen(big), &zlen);
    cr_assert(zlen < 4096);
    r = post_key(e, "/v1/track", z, zlen, "Content-Encoding: gzip");
    cr_assert_eq(r.status, 413, "a 33 KB call, gzipped to %zu bytes: %ld %s", zlen, r.status,
                 r.body);
    h_resp_free(&r);
    free(z);
    free(big);

    char *fits = padded_message("size-fits", 31 * 1024, false);
    r = track(e, "/v1/track", fits);
    assert_success(&r, "a 31 KB call");
    h_resp_free(&r);
    free(fits);

    /* 20 messages of 30 KB: each fits, the batch (600 KB) does not. */
    size_t cap = 20 * (30 * 1024 + 300) + 64;
    char *batch = malloc(cap);
    size_t len = (size_t)snprintf(batch, cap, "{\"batch\":[");
    for (int i = 0; i < 20; i++) {
        char mid[32];
        snprintf(mid, sizeof(mid), "size-b%d", i);
        char *m = padded_message(mid, 30 * 1024, true);
        len += (size_t)snprintf(batch + len, cap - len, "%s%s", i ? "," : "", m);
        free(m);
    }
    len += (size_t)snprintf(batch + len, cap - len, "]}");
    r = track(e, "/v1/batch", batch);
    cr_assert_eq(r.status, 413, "a %zu-byte batch: %ld %s", len, r.status, r.body);
    h_resp_free(&r);
    free(batch);

    /* One message over 32 KB inside a small batch. */
    char *m = padded_message("size-inner", 33 * 1024, true);
    cap = strlen(m) + 64;
    batch = malloc(cap);
    snprintf(batch, cap, "{\"batch\":[%s]}", m);
    r = track(e, "/v1/batch", batch);
    cr_assert_eq(r.status, 413, "a batch with a 33 KB message: %ld %s", r.status, r.body);
    h_resp_free(&r);
    free(batch);
    free(m);

    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 1,
                 "only the 31 KB call should be stored");
}

/* /v1/batch: the top-level context is merged into each message's (the
 * message's own keys win). */
H_TEST(ingest_tracking, batch_context_merged)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = KEYS_YAML});
    h_svc_start(e);
    h_resp_t r = track(
        e, "/v1/batch",
        "{\"context\":{\"library\":{\"name\":\"analytics-node\"},\"app\":{\"name\":\"shop\"},"
        "\"locale\":\"en-US\"},"
        "\"batch\":[{\"type\":\"track\",\"event\":\"A\",\"userId\":\"u\",\"messageId\":\"ctx-1\","
        "\"context\":{\"locale\":\"fr-FR\",\"page\":{\"path\":\"/a\"}}},"
        "{\"type\":\"track\",\"event\":\"B\",\"userId\":\"u\",\"messageId\":\"ctx-2\"}]}");
    assert_success(&r, "/v1/batch");
    h_resp_free(&r);
    ASSERT_MSG(e, "ctx-1", "context->'library'->>'name'", "analytics-node");
    ASSERT_MSG(e, "ctx-1", "context->'app'->>'name'", "shop");
    ASSERT_MSG(e, "ctx-1", "context->>'locale'", "fr-FR");
    ASSERT_MSG(e, "ctx-1", "context->'page'->>'path'", "/a");
    ASSERT_MSG(e, "ctx-2", "context->'library'->>'name'", "analytics-node");
    ASSERT_MSG(e, "ctx-2", "context->>'locale'", "en-US");
}

/* Seconds since the epoch of the stored timestamp of message mid. */
static double stored_epoch(h_env_t *e, const char *mid)
{
    char *v = h_sql_text(e,
                         "SELECT extract(epoch FROM timestamp)::text FROM event.events "
                         "WHERE metadata->>'messageId' = $1",
                         mid);
    cr_assert(v != NULL, "message %s not stored", mid);
    double d = strtod(v, NULL);
    free(v);
    return d;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* timestamp = receivedAt - (sentAt - timestamp): a client whose clock is
 * years off, sending timestamp T and sentAt T+60 s, gets an event 60 s
 * before the receipt. originalTimestamp serves when timestamp is absent;
 * without sentAt the client's timestamp is taken as it is. */
H_TEST(ingest_tracking, timestamp_corrected_by_sent_at)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = KEYS_YAML});
    h_svc_start(e);
    double t0 = wall_now();
    h_resp_t r = track(e, "/v1/track",
                       "{\"userId\":\"u\",\"event\":\"Skewed\",\"messageId\":\"ts-1\","
                       "\"timestamp\":\"2020-01-01T00:00:00Z\","
                       "\"sentAt\":\"2020-01-01T00:01:00Z\"}");
    double t1 = wall_now();
    assert_success(&r, "skewed clock");
    h_resp_free(&r);
    double ts = stored_epoch(e, "ts-1");
    cr_assert(ts >= t0 - 60 - 1 && ts <= t1 - 60 + 1,
              "stored timestamp %.3f, expected 60 s before the receipt (%.3f .. %.3f)", ts, t0, t1);
    ASSERT_MSG(e, "ts-1", "(abs(extract(epoch FROM (e.created_at - e.timestamp)) - 60) < 2)::text",
               "true");

    t0 = wall_now();
    r = track(e, "/v1/track",
              "{\"userId\":\"u\",\"event\":\"Skewed\",\"messageId\":\"ts-2\","
              "\"originalTimestamp\":\"2030-06-01T12:00:00Z\","
              "\"sentAt\":\"2030-06-01T12:00:10Z\"}");
    t1 = wall_now();
    assert_success(&r, "originalTimestamp");
    h_resp_free(&r);
    ts = stored_epoch(e, "ts-2");
    cr_assert(ts >= t0 - 10 - 1 && ts <= t1 - 10 + 1,
              "stored timestamp %.3f, expected 10 s before the receipt (%.3f .. %.3f)", ts, t0, t1);

    r = track(e, "/v1/track",
              "{\"userId\":\"u\",\"event\":\"Plain\",\"messageId\":\"ts-3\","
              "\"timestamp\":\"2021-02-03T04:05:06Z\"}");
    assert_success(&r, "no sentAt");
    h_resp_free(&r);
    ts = stored_epoch(e, "ts-3");
    cr_assert(ts > 1612325105.5 && ts < 1612325106.5, "stored %.3f, sent 2021-02-03T04:05:06Z", ts);
}

/* context.ip is filled from the peer when the client did not send one (and
 * kept when it did); context.userAgent from the User-Agent header. */
H_TEST(ingest_tracking, context_ip_filled)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = KEYS_YAML});
    h_svc_start(e);
    char auth[256];
    basic(auth, sizeof(auth), KEY1 ":");
    const char *hdrs[] = {auth, "User-Agent: analytics-node/6.0", NULL};
    const char *b1 = "{\"userId\":\"u\",\"event\":\"E\",\"messageId\":\"ip-1\"}";
    h_resp_t r = h_http(e->svc.port, "POST", "/v1/track", b1, strlen(b1), hdrs, 0);
    assert_success(&r, "no context");
    h_resp_free(&r);
    ASSERT_MSG(e, "ip-1", "context->>'ip'", "127.0.0.1");
    ASSERT_MSG(e, "ip-1", "context->>'userAgent'", "analytics-node/6.0");

    const char *b2 = "{\"userId\":\"u\",\"event\":\"E\",\"messageId\":\"ip-2\","
                     "\"context\":{\"ip\":\"203.0.113.50\",\"userAgent\":\"browser/1\"}}";
    r = h_http(e->svc.port, "POST", "/v1/track", b2, strlen(b2), hdrs, 0);
    assert_success(&r, "own context");
    h_resp_free(&r);
    ASSERT_MSG(e, "ip-2", "context->>'ip'", "203.0.113.50");
    ASSERT_MSG(e, "ip-2", "context->>'userAgent'", "browser/1");

    r = track(e, "/v1/batch",
              "{\"batch\":[{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\","
              "\"messageId\":\"ip-3\"}]}");
    assert_success(&r, "batch");
    h_resp_free(&r);
    ASSERT_MSG(e, "ip-3", "context->>'ip'", "127.0.0.1");
}

/* The same messageId twice (a client retry): both 200, one row. */
H_TEST(ingest_tracking, same_message_id_once)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = KEYS_YAML});
    h_svc_start(e);
    h_resp_t r = track(e, "/v1/track",
                       "{\"userId\":\"u\",\"event\":\"Paid\",\"messageId\":\"tr-dup\","
                       "\"sentAt\":\"2024-01-01T00:00:00Z\"}");
    assert_success(&r, "first");
    h_resp_free(&r);
    r = track(e, "/v1/track",
              "{\"userId\":\"u\",\"event\":\"Paid\",\"messageId\":\"tr-dup\","
              "\"sentAt\":\"2024-01-01T00:00:09Z\"}");
    assert_success(&r, "retry");
    h_resp_free(&r);
    r = track(e, "/v1/batch",
              "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"Paid\","
              "\"messageId\":\"tr-dup\"}]}");
    assert_success(&r, "retry in a batch");
    h_resp_free(&r);
    cr_assert_eq(h_events_with_message_id(e, "tr-dup"), 1);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 1);
}

/* Client errors are 400 (Segment's status): neither userId nor anonymousId
 * (also inside a batch), malformed JSON, a batch that is not a non-empty
 * array. Nothing is stored. */
H_TEST(ingest_tracking, bad_requests_400)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = KEYS_YAML});
    h_svc_start(e);
    static const struct {
        const char *path, *body;
    } bad[] = {
        {"/v1/track", "{\"event\":\"No One\",\"messageId\":\"bad-1\"}"},
        {"/v1/identify", "{\"traits\":{\"a\":1}}"},
        {"/v1/track", "{\"userId\":\"\",\"anonymousId\":\"\",\"event\":\"Empty Ids\"}"},
        {"/v1/batch", "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"ok\"},"
                      "{\"type\":\"track\",\"event\":\"anonymous\"}]}"},
        {"/v1/track", "{\"userId\":"},
        {"/v1/batch", "{\"batch\":[]}"},
        {"/v1/batch", "{\"batch\":{}}"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        h_resp_t r = track(e, bad[i].path, bad[i].body);
        cr_assert_eq(r.status, 400, "%s %s: %ld %s", bad[i].path, bad[i].body, r.status, r.body);
        h_resp_free(&r);
    }
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);
}

/* The same messageId twice in one /v1/batch (an SDK that re-queued a
 * message into the batch it is flushing): 200 and one row. A 4xx here makes
 * the SDK drop the whole batch, the other messages with it. */
H_TEST(ingest_tracking, same_message_id_within_one_batch)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = KEYS_YAML});
    h_svc_start(e);
    h_resp_t r = track(e, "/v1/batch",
                       "{\"batch\":[{\"type\":\"track\",\"userId\":\"u\",\"event\":\"Paid\","
                       "\"messageId\":\"tr-twice\"},{\"type\":\"track\",\"userId\":\"u\","
                       "\"event\":\"Other\",\"messageId\":\"tr-other\"},{\"type\":\"track\","
                       "\"userId\":\"u\",\"event\":\"Paid\",\"messageId\":\"tr-twice\"}]}");
    assert_success(&r, "a batch repeating a messageId");
    h_resp_free(&r);
    cr_assert_eq(h_events_with_message_id(e, "tr-twice"), 1);
    cr_assert_eq(h_events_with_message_id(e, "tr-other"), 1);
}

/* A message nested deeper than service.json_max_depth (64) is refused like
 * every other bad input (400), as the webhook and the API refuse it. */
H_TEST(ingest_tracking, deep_json_refused)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = KEYS_YAML});
    h_svc_start(e);
    char body[2048];
    int n = snprintf(body, sizeof(body),
                     "{\"userId\":\"u\",\"event\":\"Deep\",\"messageId\":\"deep-1\","
                     "\"properties\":");
    for (int i = 0; i < 100; i++)
        body[n++] = '[';
    for (int i = 0; i < 100; i++)
        body[n++] = ']';
    snprintf(body + n, sizeof(body) - (size_t)n, "}");
    h_resp_t r = track(e, "/v1/track", body);
    cr_assert(r.status == 400 || r.status == 422, "JSON 100 levels deep: %ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_events_with_message_id(e, "deep-1"), 0);
}
