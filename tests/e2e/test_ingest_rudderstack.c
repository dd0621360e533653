/* POST /webhooks/rudderstack: what a RudderStack webhook destination sends.
 * The X-Signature check when a secret is configured, the three body shapes,
 * the seed's categorisation and field mapping, and messageId idempotency. */
#include "harness.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEBHOOK "/webhooks/rudderstack"
#define SECRET "rs-secret-0123456789"
#define SECRET_YAML "rudderstack:\n  webhook_secret: \"" SECRET "\"\n"

/* POSTs body to the webhook with X-Signature sig (NULL: none). */
static h_resp_t post_sig(h_env_t *e, const char *body, const char *sig)
{
    char hdr[300];
    const char *hdrs[] = {hdr, NULL};
    if (sig != NULL)
        snprintf(hdr, sizeof(hdr), "X-Signature: %s", sig);
    return h_http(e->svc.port, "POST", WEBHOOK, body, strlen(body), sig ? hdrs : NULL, 0);
}

/* "sha256=<hex HMAC-SHA256 of body under key>" into out. */
static void hmac_sig(const char *key, const char *body, char *out, size_t cap)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)body, strlen(body), mac, &len);
    size_t o = (size_t)snprintf(out, cap, "sha256=");
    for (unsigned int i = 0; i < len && o + 2 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", mac[i]);
}

/* Asserts that the event stored for messageId mid has expr equal to want. */
#define ASSERT_MSG(e, mid, expr, want)                                                             \
    H_ASSERT_EVENT_TEXT(e, "metadata->>'messageId' = $1", mid, expr, want, "message ")

/* A track message with this messageId. */
static void track_msg(char *out, size_t cap, const char *mid)
{
    snprintf(out, cap,
             "{\"type\":\"track\",\"event\":\"Product Viewed\",\"userId\":\"u-sig\","
             "\"messageId\":\"%s\",\"properties\":{\"sku\":\"A1\"}}",
             mid);
}

/* With rudderstack.webhook_secret set: no X-Signature, a wrong one, a wrong
 * HMAC, an HMAC of other bytes, an empty or truncated one -> 401 (never 400
 * or 500, whatever the body), and nothing stored; the secret itself or
 * "sha256=<hex HMAC of the raw body>" -> 200. */
H_TEST(ingest_rudderstack, signature_checked)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = SECRET_YAML});
    h_svc_start(e);
    char body[512], sig[200];
    track_msg(body, sizeof(body), "sig-refused");

    struct {
        const char *what;
        const char *sig;
    } refused[] = {
        {"no X-Signature", NULL},
        {"a wrong secret", "not-the-secret"},
        {"the secret with a suffix", SECRET "x"},
        {"a prefix of the secret", "rs-secret"},
        {"an empty value", ""},
        {"sha256= and nothing", "sha256="},
        {"a wrong HMAC", "sha256=0000000000000000000000000000000000000000000000000000000000000000"},
        {"not hex", "sha256=zz"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        h_resp_t r = post_sig(e, body, refused[i].sig);
        cr_assert_eq(r.status, 401, "%s: %ld %s", refused[i].what, r.status, r.body);
        cr_assert(h_jstr(r.json, "detail") != NULL, "%s: %s", refused[i].what, r.body);
        h_resp_free(&r);
    }
    /* The HMAC of other bytes (the body re-serialised, say). */
    hmac_sig(SECRET, "{\"type\":\"track\"}", sig, sizeof(sig));
    h_resp_t r = post_sig(e, body, sig);
    cr_assert_eq(r.status, 401, "HMAC of another body: %ld %s", r.status, r.body);
    h_resp_free(&r);
    /* The HMAC under another key. */
    hmac_sig("other-key", body, sig, sizeof(sig));
    r = post_sig(e, body, sig);
    cr_assert_eq(r.status, 401, "HMAC under another key: %ld %s", r.status, r.body);
    h_resp_free(&r);
    /* A truncated HMAC. */
    hmac_sig(SECRET, body, sig, sizeof(sig));
    sig[strlen(sig) - 2] = '\0';
    r = post_sig(e, body, sig);
    cr_assert_eq(r.status, 401, "truncated HMAC: %ld %s", r.status, r.body);
    h_resp_free(&r);
    /* The signature is checked before the body is looked at. */
    r = post_sig(e, "{not json", NULL);
    cr_assert_eq(r.status, 401, "malformed body without signature: %ld %s", r.status, r.body);
    h_resp_free(&r);
    r = post_sig(e, "", "wrong");
    cr_assert_eq(r.status, 401, "empty body, wrong signature: %ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0,
                 "a refused request stored something");

    /* The secret itself. */
    track_msg(body, sizeof(body), "sig-plain");
    r = post_sig(e, body, SECRET);
    cr_assert_eq(r.status, 200, "X-Signature = secret: %ld %s", r.status, r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "accepted", "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(h_events_with_message_id(e, "sig-plain"), 1);

    /* sha256=<hex HMAC of the raw body>. */
    track_msg(body, sizeof(body), "sig-hmac");
    hmac_sig(SECRET, body, sig, sizeof(sig));
    r = post_sig(e, body, sig);
    cr_assert_eq(r.status, 200, "X-Signature %s: %ld %s", sig, r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_events_with_message_id(e, "sig-hmac"), 1);

    /* A well-signed malformed body is a client error, not a signature one. */
    hmac_sig(SECRET, "{not json", sig, sizeof(sig));
    r = post_sig(e, "{not json", sig);
    cr_assert_eq(r.status, 400, "signed malformed JSON: %ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 2);
}

/* Without a secret configured, messages are accepted with or without an
 * X-Signature header. */
H_TEST(ingest_rudderstack, no_secret_accepts)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    char body[512];
    track_msg(body, sizeof(body), "nosecret-1");
    h_resp_t r = post_sig(e, body, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    track_msg(body, sizeof(body), "nosecret-2");
    r = post_sig(e, body, "anything");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(h_events_with_message_id(e, "nosecret-1"), 1);
    cr_assert_eq(h_events_with_message_id(e, "nosecret-2"), 1);
}

/* A single message answers {status, event_id}; {"batch": [...]} and a bare
 * array answer {status, event_ids}; each message is one row, with the
 * returned id, and queued for processing. */
H_TEST(ingest_rudderstack, single_batch_and_array)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_post(e, WEBHOOK,
                        "{\"type\":\"track\",\"event\":\"Signed Up\",\"userId\":\"u-1\","
                        "\"messageId\":\"shape-single\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "accepted", "%s", r.body);
    const char *id = h_jstr(r.json, "event_id");
    cr_assert(id != NULL, "%s", r.body);
    ASSERT_MSG(e, "shape-single", "event_id", id);
    ASSERT_MSG(e, "shape-single", "event_source", "frontend");
    cr_assert_eq(
        h_sql_int(e, "SELECT count(*) FROM event.processing_queue WHERE event_id = $1", id), 1);
    h_resp_free(&r);

    r = h_post(e, WEBHOOK,
               "{\"batch\":[{\"type\":\"track\",\"event\":\"A\",\"userId\":\"u-1\","
               "\"messageId\":\"shape-b1\"},{\"type\":\"page\",\"name\":\"Home\","
               "\"anonymousId\":\"anon-1\",\"messageId\":\"shape-b2\"}]}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(h_jstr(r.json, "status"), "accepted", "%s", r.body);
    json_t *ids = h_jget(r.json, "event_ids");
    cr_assert(json_is_array(ids) && json_array_size(ids) == 2, "%s", r.body);
    ASSERT_MSG(e, "shape-b1", "event_id", json_string_value(json_array_get(ids, 0)));
    ASSERT_MSG(e, "shape-b2", "event_id", json_string_value(json_array_get(ids, 1)));
    h_resp_free(&r);

    r = h_post(e, WEBHOOK,
               "[{\"type\":\"identify\",\"userId\":\"u-3\",\"messageId\":\"shape-a1\"},"
               "{\"type\":\"track\",\"event\":\"B\",\"userId\":\"u-3\","
               "\"messageId\":\"shape-a2\"}]");
    cr_assert_eq(r.status, 200, "%s", r.body);
    ids = h_jget(r.json, "event_ids");
    cr_assert(json_is_array(ids) && json_array_size(ids) == 2, "%s", r.body);
    ASSERT_MSG(e, "shape-a1", "event_id", json_string_value(json_array_get(ids, 0)));
    ASSERT_MSG(e, "shape-a2", "event_id", json_string_value(json_array_get(ids, 1)));
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 5);
}

/* Every categorisation branch of the seed, the event_type, user_id (userId,
 * else anonymousId), data, context and the metadata kept. */
H_TEST(ingest_rudderstack, categorisation_and_mapping)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r =
        h_post(e, WEBHOOK,
               "{\"batch\":["
               "{\"type\":\"page\",\"name\":\"Home\",\"userId\":\"u-1\",\"anonymousId\":\"a-1\","
               "\"messageId\":\"cat-page\",\"properties\":{\"path\":\"/\"}},"
               "{\"type\":\"track\",\"event\":\"Signup Form Submitted\",\"anonymousId\":\"a-2\","
               "\"messageId\":\"cat-form\"},"
               "{\"type\":\"track\",\"event\":\"Button Click\",\"userId\":\"u-3\","
               "\"messageId\":\"cat-click\"},"
               "{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"u-4\","
               "\"messageId\":\"cat-track\",\"properties\":{\"total\":12.5}},"
               "{\"type\":\"identify\",\"userId\":\"u-5\",\"messageId\":\"cat-identify\","
               "\"traits\":{\"email\":\"x@example.com\"}},"
               "{\"type\":\"screen\",\"name\":\"Settings\",\"userId\":\"u-6\","
               "\"messageId\":\"cat-screen\"},"
               "{\"type\":\"track\",\"event\":\"FORM clicked\",\"userId\":\"u-7\","
               "\"messageId\":\"cat-both\"},"
               "{\"type\":\"track\",\"event\":\"Double CLICK\",\"userId\":\"u-8\","
               "\"messageId\":\"cat-upper\"}"
               "]}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);

    static const struct {
        const char *mid, *category, *event_type, *user_id, *type;
    } want[] = {
        {"cat-page", "page_view", "Home", "u-1", "page"},
        {"cat-form", "form_submit", "Signup Form Submitted", "a-2", "track"},
        {"cat-click", "click", "Button Click", "u-3", "track"},
        {"cat-track", "user_action", "Order Completed", "u-4", "track"},
        {"cat-identify", "user_action", "identify", "u-5", "identify"},
        {"cat-screen", "user_action", "Settings", "u-6", "screen"},
        {"cat-both", "form_submit", "FORM clicked", "u-7", "track"},
        {"cat-upper", "click", "Double CLICK", "u-8", "track"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ASSERT_MSG(e, want[i].mid, "event_category", want[i].category);
        ASSERT_MSG(e, want[i].mid, "event_type", want[i].event_type);
        ASSERT_MSG(e, want[i].mid, "user_id", want[i].user_id);
        ASSERT_MSG(e, want[i].mid, "event_source", "frontend");
        ASSERT_MSG(e, want[i].mid, "metadata->>'original_type'", want[i].type);
        ASSERT_MSG(e, want[i].mid, "data->>'type'", want[i].type);
    }
    ASSERT_MSG(e, "cat-page", "metadata->>'anonymousId'", "a-1");
    ASSERT_MSG(e, "cat-page", "data->'properties'->>'path'", "/");
    ASSERT_MSG(e, "cat-track", "data->'properties'->>'total'", "12.5");
    ASSERT_MSG(e, "cat-identify", "data->'traits'->>'email'", "x@example.com");
}

/* The message's context is kept as the event's context; messageId,
 * anonymousId, sentAt and the original type are kept in metadata; the
 * timestamp is corrected by the client's clock skew. */
H_TEST(ingest_rudderstack, metadata_and_context_kept)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_post(e, WEBHOOK,
                        "{\"type\":\"track\",\"event\":\"Video Played\",\"userId\":\"u-9\","
                        "\"anonymousId\":\"anon-9\",\"messageId\":\"meta-1\","
                        "\"channel\":\"web\",\"sentAt\":\"2024-03-01T10:00:30Z\","
                        "\"originalTimestamp\":\"2024-03-01T10:00:00Z\","
                        "\"context\":{\"ip\":\"203.0.113.9\",\"library\":{\"name\":\"rs-js\"}},"
                        "\"properties\":{\"video\":\"v1\"}}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);
    ASSERT_MSG(e, "meta-1", "metadata->>'messageId'", "meta-1");
    ASSERT_MSG(e, "meta-1", "metadata->>'anonymousId'", "anon-9");
    ASSERT_MSG(e, "meta-1", "metadata->>'sentAt'", "2024-03-01T10:00:30Z");
    ASSERT_MSG(e, "meta-1", "metadata->>'original_type'", "track");
    ASSERT_MSG(e, "meta-1", "metadata->>'channel'", "web");
    ASSERT_MSG(e, "meta-1", "context->>'ip'", "203.0.113.9");
    ASSERT_MSG(e, "meta-1", "context->'library'->>'name'", "rs-js");
    /* receivedAt - (sentAt - originalTimestamp): 30 s before the receipt. */
    ASSERT_MSG(e, "meta-1",
               "(abs(extract(epoch FROM (e.created_at - e.timestamp)) - 30) < 5)::text", "true");
}

/* The same messageId twice (a RudderStack retry, with a later sentAt): both
 * answered 200 with the same event_id, one row, the first content kept. */
H_TEST(ingest_rudderstack, same_message_id_once)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    const char *fmt = "{\"type\":\"track\",\"event\":\"Checkout\",\"userId\":\"u-1\","
                      "\"messageId\":\"dup-1\",\"sentAt\":\"%s\"}";
    h_resp_t r1 = h_post(e, WEBHOOK, fmt, "2024-05-01T00:00:00Z");
    cr_assert_eq(r1.status, 200, "%s", r1.body);
    h_resp_t r2 = h_post(e, WEBHOOK, fmt, "2024-05-01T00:05:00Z");
    cr_assert_eq(r2.status, 200, "the retry: %ld %s", r2.status, r2.body);
    const char *id1 = h_jstr(r1.json, "event_id"), *id2 = h_jstr(r2.json, "event_id");
    cr_assert(id1 && id2 && strcmp(id1, id2) == 0, "event ids %s and %s", id1 ? id1 : "-",
              id2 ? id2 : "-");
    cr_assert_eq(h_events_with_message_id(e, "dup-1"), 1);
    ASSERT_MSG(e, "dup-1", "metadata->>'sentAt'", "2024-05-01T00:00:00Z");
    cr_assert_eq(
        h_sql_int(e, "SELECT count(*) FROM event.processing_queue WHERE event_id = $1", id1), 1);
    /* In a batch, next to a new message: the new one is stored, the old one
     * answered with its id. */
    h_resp_t r3 = h_post(e, WEBHOOK,
                         "{\"batch\":[{\"type\":\"track\",\"event\":\"Checkout\","
                         "\"userId\":\"u-1\",\"messageId\":\"dup-1\"},"
                         "{\"type\":\"track\",\"event\":\"Paid\",\"userId\":\"u-1\","
                         "\"messageId\":\"dup-2\"}]}");
    cr_assert_eq(r3.status, 200, "%s", r3.body);
    const char *id3 = h_jstr(r3.json, "event_ids.0");
    cr_assert(id3 && strcmp(id3, id1) == 0, "%s", r3.body);
    cr_assert_eq(h_events_with_message_id(e, "dup-1"), 1);
    cr_assert_eq(h_events_with_message_id(e, "dup-2"), 1);
    h_resp_free(&r1);
    h_resp_free(&r2);
    h_resp_free(&r3);
}

/* The same messageId twice in ONE batch (an SDK that re-queued a message it
 * had already put in the batch): one row, 200. */
H_TEST(ingest_rudderstack, same_message_id_within_one_batch)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_post(e, WEBHOOK,
                        "{\"batch\":[{\"type\":\"track\",\"event\":\"Twice\",\"userId\":\"u-1\","
                        "\"messageId\":\"dup-in-batch\"},"
                        "{\"type\":\"track\",\"event\":\"Twice\",\"userId\":\"u-1\","
                        "\"messageId\":\"dup-in-batch\"}]}");
    cr_assert_eq(r.status, 200, "a batch repeating a messageId: %ld %s", r.status, r.body);
    const char *a = h_jstr(r.json, "event_ids.0"), *b = h_jstr(r.json, "event_ids.1");
    cr_assert(a && b && strcmp(a, b) == 0, "%s", r.body);
    cr_assert_eq(h_events_with_message_id(e, "dup-in-batch"), 1);
    h_resp_free(&r);
}

/* Malformed bodies: bad JSON 400; no userId nor anonymousId, no type, a
 * batch that is not an array, an empty batch: 422 naming the field; nothing
 * stored. */
H_TEST(ingest_rudderstack, invalid_messages)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t r = h_post(e, WEBHOOK, "{\"type\":");
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{\"type\":\"track\",\"event\":\"X\",\"messageId\":\"m\"}", "userId"},
        {"{\"event\":\"X\",\"userId\":\"u\"}", "type"},
        {"{\"batch\":\"nope\"}", "batch"},
        {"{\"batch\":[]}", "batch"},
        {"{\"batch\":[{\"type\":\"track\",\"userId\":\"u\"},{\"type\":\"track\"}]}", "batch[1]"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = h_post(e, WEBHOOK, "%s", bad[i].body);
        cr_assert_eq(r.status, 422, "%s: %ld %s", bad[i].body, r.status, r.body);
        const char *detail = h_jstr(r.json, "detail");
        cr_assert(detail && strstr(detail, bad[i].field), "%s: detail %s does not name %s",
                  bad[i].body, r.body, bad[i].field);
        h_resp_free(&r);
    }
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);
}

/* A userId or anonymousId longer than the user_id column (255) is a
 * validation error naming the field, not a database error; the request next
 * to it in time is not disturbed. */
H_TEST(ingest_rudderstack, overlong_user_id_named)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    char id[301];
    memset(id, 'u', 300);
    id[300] = '\0';
    h_resp_t r = h_post(e, WEBHOOK,
                        "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"%s\","
                        "\"messageId\":\"long-user\"}",
                        id);
    cr_assert_eq(r.status, 422, "a 300-character userId: %ld %s", r.status, r.body);
    const char *detail = h_jstr(r.json, "detail");
    cr_assert(detail && strstr(detail, "userId"), "the detail does not name userId: %s", r.body);
    h_resp_free(&r);
    r = h_post(e, WEBHOOK,
               "{\"type\":\"track\",\"event\":\"E\",\"anonymousId\":\"%s\","
               "\"messageId\":\"long-anon\"}",
               id);
    cr_assert_eq(r.status, 422, "a 300-character anonymousId: %ld %s", r.status, r.body);
    detail = h_jstr(r.json, "detail");
    cr_assert(detail && strstr(detail, "anonymousId"), "the detail does not name anonymousId: %s",
              r.body);
    h_resp_free(&r);
    cr_assert_eq(h_sql_int(e, "SELECT count(*) FROM event.events"), 0);
}

/* RudderStack retrying while the first delivery is still in flight: the
 * same message sent 8 times at once (both API workers) gives 8 answers of
 * 200 with the same event_id and one row. */
H_TEST(ingest_rudderstack, concurrent_repeats_once)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    const char *body = "{\"type\":\"track\",\"event\":\"Race\",\"userId\":\"u-r\","
                       "\"messageId\":\"race-1\"}";
    const char *bodies[8];
    for (int i = 0; i < 8; i++)
        bodies[i] = body;
    h_resp_t out[8];
    h_http_multi(e->svc.port, 8, "POST", WEBHOOK, bodies, out, 30000);
    const char *first = NULL;
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(out[i].status, 200, "request %d: %ld %s", i, out[i].status, out[i].body);
        const char *id = h_jstr(out[i].json, "event_id");
        cr_assert(id != NULL, "%s", out[i].body);
        if (first == NULL)
            first = id;
        cr_assert_str_eq(id, first, "request %d", i);
    }
    cr_assert_eq(h_events_with_message_id(e, "race-1"), 1);
    for (int i = 0; i < 8; i++)
        h_resp_free(&out[i]);
}
