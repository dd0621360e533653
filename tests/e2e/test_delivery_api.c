/* The subscriptions API (SPEC 6, 10): create (the secret returned only when
 * the service generated it, never afterwards), 409 for a duplicate
 * subscriber_name, 422 naming the field for every invalid input (with
 * delivery.allow_private off: literal internal addresses), GET one, list,
 * 404s, disable/enable. No processor workers: nothing is delivered here. */
#include "harness.h"

#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBS "/api/v1/events/subscriptions"

static h_resp_t post_sub(h_env_t *e, const char *body)
{
    return h_http(e->svc.port, "POST", SUBS, body, strlen(body), NULL, 0);
}

static int64_t subscription_rows(h_env_t *e)
{
    return h_sql_int(e, "SELECT count(*) FROM event.event_subscriptions");
}

/* Length of the key a whsec_ secret stands for, -1 if it is not one. */
static int whsec_key_len(const char *s)
{
    if (s == NULL || strncmp(s, "whsec_", 6) != 0)
        return -1;
    size_t n = strlen(s + 6);
    if (n == 0 || n % 4 != 0)
        return -1;
    unsigned char out[256];
    if (n / 4 * 3 > sizeof(out))
        return -1;
    int len = EVP_DecodeBlock(out, (const unsigned char *)s + 6, (int)n);
    if (len < 0)
        return -1;
    for (size_t i = n; i > 0 && s[6 + i - 1] == '='; i--)
        len--;
    return len;
}

/* No key holding a secret anywhere in v. */
static bool no_secret_keys(const json_t *v)
{
    return json_object_get(v, "webhook_secret") == NULL &&
           json_object_get(v, "previous_secret") == NULL && json_object_get(v, "secret") == NULL;
}

/* Create with and without a client secret, then read back: the generated
 * secret is a whsec_ key of 24 to 64 bytes returned once; a client's secret
 * is never echoed; GET and the list never show either. */
H_TEST(delivery_api, create_get_list_and_secret_handling)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    h_resp_t a = post_sub(e, "{\"subscriber_name\":\"billing\",\"subscriber_type\":\"service\","
                             "\"event_types\":[\"order.*\",\"payment.>\"],"
                             "\"event_sources\":[\"backend\"],\"event_categories\":[\"order\","
                             "\"payment\"],\"callback_url\":\"https://hooks.example.com/billing\","
                             "\"retry_policy\":{\"max_retries\":3,\"backoff_seconds\":[1,10,60]}}");
    cr_assert_eq(a.status, 201, "%s", a.body);
    const char *id = h_jstr(a.json, "subscription_id");
    cr_assert(id && strlen(id) > 0, "%s", a.body);
    const char *generated = h_jstr(a.json, "webhook_secret");
    int klen = whsec_key_len(generated);
    cr_assert(klen >= 24 && klen <= 64, "generated secret %s: key of %d bytes",
              generated ? generated : "(none)", klen);
    cr_assert_str_eq(h_jstr(a.json, "subscriber_name"), "billing");
    cr_assert_str_eq(h_jstr(a.json, "subscriber_type"), "service");
    cr_assert_str_eq(h_jstr(a.json, "event_types.0"), "order.*", "%s", a.body);
    cr_assert_str_eq(h_jstr(a.json, "event_types.1"), "payment.>", "%s", a.body);
    cr_assert_str_eq(h_jstr(a.json, "event_sources.0"), "backend", "%s", a.body);
    cr_assert_str_eq(h_jstr(a.json, "event_categories.1"), "payment", "%s", a.body);
    cr_assert_str_eq(h_jstr(a.json, "callback_url"), "https://hooks.example.com/billing");
    cr_assert(json_is_true(h_jget(a.json, "enabled")), "%s", a.body);
    cr_assert_eq(h_jint(a.json, "retry_policy.max_retries"), 3, "%s", a.body);
    cr_assert_eq(h_jint(a.json, "retry_policy.backoff_seconds.2"), 60, "%s", a.body);
    cr_assert(h_jstr(a.json, "created_at") != NULL, "%s", a.body);

    const char *client_secret = "client chosen secret 123";
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"subscriber_name\":\"crm\",\"event_types\":[\"user.created\"],"
             "\"callback_url\":\"http://crm.example.com/hook\",\"webhook_secret\":\"%s\","
             "\"enabled\":false}",
             client_secret);
    h_resp_t b = post_sub(e, body);
    cr_assert_eq(b.status, 201, "%s", b.body);
    cr_assert(no_secret_keys(b.json), "a client's secret is echoed: %s", b.body);
    cr_assert(strstr(b.body, client_secret) == NULL, "%s", b.body);
    cr_assert(json_is_false(h_jget(b.json, "enabled")), "%s", b.body);
    const char *id2 = h_jstr(b.json, "subscription_id");

    h_resp_t g = h_get(e, SUBS "/%s", id);
    cr_assert_eq(g.status, 200, "%s", g.body);
    cr_assert(no_secret_keys(g.json), "GET shows a secret: %s", g.body);
    cr_assert(strstr(g.body, generated + 6) == NULL, "GET shows the secret: %s", g.body);
    json_t *created = json_deep_copy(a.json);
    json_object_del(created, "webhook_secret");
    cr_assert(json_equal(g.json, created), "GET differs from the create answer:\n%s\n%s", g.body,
              a.body);
    json_decref(created);
    h_resp_free(&g);

    h_resp_t l = h_get(e, SUBS);
    cr_assert_eq(l.status, 200, "%s", l.body);
    cr_assert(json_is_array(l.json) && json_array_size(l.json) == 2, "%s", l.body);
    bool seen[2] = {false, false};
    for (size_t i = 0; i < 2; i++) {
        const json_t *s = json_array_get(l.json, i);
        cr_assert(no_secret_keys(s), "the list shows a secret: %s", l.body);
        const char *sid = h_jstr(s, "subscription_id");
        seen[0] = seen[0] || strcmp(sid, id) == 0;
        seen[1] = seen[1] || strcmp(sid, id2) == 0;
    }
    cr_assert(seen[0] && seen[1], "%s", l.body);
    cr_assert(strstr(l.body, generated + 6) == NULL && strstr(l.body, client_secret) == NULL,
              "the list shows a secret: %s", l.body);
    h_resp_free(&l);

    /* A duplicate subscriber_name: 409 naming the field; nothing written. */
    h_resp_t d = post_sub(e, "{\"subscriber_name\":\"billing\",\"event_types\":[\"x.y\"],"
                             "\"callback_url\":\"https://other.example.com/\"}");
    cr_assert_eq(d.status, 409, "duplicate name: %ld %s", d.status, d.body);
    cr_assert(h_jstr(d.json, "detail") && strstr(h_jstr(d.json, "detail"), "subscriber_name"), "%s",
              d.body);
    h_resp_free(&d);
    cr_assert_eq(subscription_rows(e), 2);

    /* A client's subscription_id is kept. */
    h_resp_t c =
        post_sub(e, "{\"subscription_id\":\"sub-custom-1\",\"subscriber_name\":\"c\","
                    "\"event_types\":[\"x.y\"],\"callback_url\":\"https://c.example.com/\"}");
    cr_assert_eq(c.status, 201, "%s", c.body);
    cr_assert_str_eq(h_jstr(c.json, "subscription_id"), "sub-custom-1");
    h_resp_free(&c);

    h_resp_t n = h_get(e, SUBS "/no-such-subscription");
    cr_assert_eq(n.status, 404, "%ld %s", n.status, n.body);
    cr_assert(h_jstr(n.json, "detail") && strstr(h_jstr(n.json, "detail"), "no-such-subscription"),
              "%s", n.body);
    h_resp_free(&n);
    n = h_http(e->svc.port, "DELETE", SUBS "/no-such-subscription", NULL, 0, NULL, 0);
    cr_assert_eq(n.status, 404, "%ld %s", n.status, n.body);
    h_resp_free(&n);
    n = h_http(e->svc.port, "POST", SUBS "/no-such-subscription/enable", NULL, 0, NULL, 0);
    cr_assert_eq(n.status, 404, "%ld %s", n.status, n.body);
    h_resp_free(&n);

    /* disable / enable through the API. */
    char path[256];
    snprintf(path, sizeof(path), SUBS "/%s/disable", id);
    h_resp_t x = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(x.status, 200, "%s", x.body);
    cr_assert(json_is_false(h_jget(x.json, "enabled")), "%s", x.body);
    cr_assert(h_jstr(x.json, "disabled_reason") != NULL, "%s", x.body);
    cr_assert(no_secret_keys(x.json), "%s", x.body);
    h_resp_free(&x);
    snprintf(path, sizeof(path), SUBS "/%s/enable", id);
    x = h_http(e->svc.port, "POST", path, NULL, 0, NULL, 0);
    cr_assert_eq(x.status, 200, "%s", x.body);
    cr_assert(json_is_true(h_jget(x.json, "enabled")), "%s", x.body);
    cr_assert(json_is_null(h_jget(x.json, "disabled_reason")), "%s", x.body);
    h_resp_free(&x);

    h_resp_free(&a);
    h_resp_free(&b);
}

/* Every invalid subscription is answered 422 with a detail naming the
 * field, and writes nothing; delivery.allow_private is off (the default),
 * so literal internal addresses are refused at creation. */
H_TEST(delivery_api, invalid_subscriptions_422)
{
    h_env_t *e = h_setup(NULL);
    h_svc_start(e);
    static const struct {
        const char *fields; /* after "subscriber_name" */
        const char *field;  /* what the detail must name */
    } cases[] = {
        {"\"callback_url\":\"https://a.example.com/\"", "event_types"},
        {"\"event_types\":[],\"callback_url\":\"https://a.example.com/\"", "event_types"},
        {"\"event_types\":null,\"callback_url\":\"https://a.example.com/\"", "event_types"},
        {"\"event_types\":\"user.*\",\"callback_url\":\"https://a.example.com/\"", "event_types"},
        {"\"event_types\":[\"user..created\"],\"callback_url\":\"https://a.example.com/\"",
         "event_types"},
        {"\"event_types\":[\"order.>.eu\"],\"callback_url\":\"https://a.example.com/\"",
         "event_types"},
        {"\"event_types\":[\".user\"],\"callback_url\":\"https://a.example.com/\"", "event_types"},
        {"\"event_types\":[\"user.\"],\"callback_url\":\"https://a.example.com/\"", "event_types"},
        {"\"event_types\":[\"\"],\"callback_url\":\"https://a.example.com/\"", "event_types"},
        {"\"event_types\":[\"user created\"],\"callback_url\":\"https://a.example.com/\"",
         "event_types"},
        {"\"event_types\":[\"ok.type\",7],\"callback_url\":\"https://a.example.com/\"",
         "event_types"},
        {"\"event_types\":[\"a.b\"],\"event_sources\":[\"mobile\"],"
         "\"callback_url\":\"https://a.example.com/\"",
         "event_sources"},
        {"\"event_types\":[\"a.b\"],\"event_sources\":[\"backend\",\"Backend\"],"
         "\"callback_url\":\"https://a.example.com/\"",
         "event_sources"},
        {"\"event_types\":[\"a.b\"],\"event_categories\":[\"shopping\"],"
         "\"callback_url\":\"https://a.example.com/\"",
         "event_categories"},
        {"\"event_types\":[\"a.b\"],\"event_categories\":\"order\","
         "\"callback_url\":\"https://a.example.com/\"",
         "event_categories"},
        {"\"event_types\":[\"a.b\"]", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"\"", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"ftp://files.example.com/hook\"",
         "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"file:///etc/passwd\"", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"gopher://a.example.com/\"", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"not a url\"", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":42", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"http://127.0.0.1:9/hook\"", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"http://127.1/hook\"", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"http://2130706433/hook\"", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"http://10.1.2.3/hook\"", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"https://192.168.1.20/hook\"",
         "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"http://172.20.0.5:8080/hook\"",
         "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"http://169.254.169.254/latest/meta-data/\"",
         "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"http://0.0.0.0:8208/\"", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"http://[::1]:8080/hook\"", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"http://[fd00::1]/hook\"", "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"http://[::ffff:127.0.0.1]/hook\"",
         "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"http://localhost:8080/hook\"",
         "callback_url"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
         "\"retry_policy\":{\"max_retries\":-1}",
         "max_retries"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
         "\"retry_policy\":{\"max_retries\":\"3\"}",
         "max_retries"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
         "\"retry_policy\":{\"max_retries\":101}",
         "max_retries"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
         "\"retry_policy\":{\"max_retries\":2.5}",
         "max_retries"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
         "\"retry_policy\":{\"backoff_seconds\":[]}",
         "backoff_seconds"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
         "\"retry_policy\":{\"backoff_seconds\":[\"5\"]}",
         "backoff_seconds"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
         "\"retry_policy\":{\"backoff_seconds\":[5,-1]}",
         "backoff_seconds"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
         "\"retry_policy\":{\"backoff_seconds\":5}",
         "backoff_seconds"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
         "\"retry_policy\":\"fast\"",
         "retry_policy"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
         "\"webhook_secret\":\"\"",
         "webhook_secret"},
        {"\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
         "\"enabled\":\"yes\"",
         "enabled"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[1024];
        snprintf(body, sizeof(body), "{\"subscriber_name\":\"bad-%zu\",%s}", i, cases[i].fields);
        h_resp_t r = post_sub(e, body);
        cr_assert_eq(r.status, 422, "%s -> %ld %s", body, r.status, r.body);
        const char *detail = h_jstr(r.json, "detail");
        cr_assert(detail && strstr(detail, cases[i].field), "%s -> detail does not name %s: %s",
                  body, cases[i].field, r.body);
        h_resp_free(&r);
    }
    const char *no_name[] = {
        "{\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\"}",
        "{\"subscriber_name\":\"\",\"event_types\":[\"a.b\"],"
        "\"callback_url\":\"https://a.example.com/\"}"};
    for (int i = 0; i < 2; i++) {
        h_resp_t r = post_sub(e, no_name[i]);
        cr_assert_eq(r.status, 422, "%s -> %ld %s", no_name[i], r.status, r.body);
        cr_assert(h_jstr(r.json, "detail") && strstr(h_jstr(r.json, "detail"), "subscriber_name"),
                  "%s", r.body);
        h_resp_free(&r);
    }
    h_resp_t r = post_sub(e, "{\"subscriber_name\":\"x\",");
    cr_assert_eq(r.status, 400, "malformed JSON: %ld %s", r.status, r.body);
    h_resp_free(&r);
    r = post_sub(e, "[1,2]");
    cr_assert_eq(r.status, 422, "an array body: %ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(subscription_rows(e), 0, "an invalid subscription was stored");

    /* The valid neighbours of those cases are accepted: public host names
     * (resolved only at delivery time), patterns, every source and category. */
    static const char *const good[] = {
        "\"event_types\":[\"user.*\",\"order.>\",\">\",\"*\",\"a.*.c\"],"
        "\"callback_url\":\"https://hooks.example.com/a?x=1\"",
        "\"event_types\":[\"a.b\"],\"event_sources\":[\"frontend\",\"backend\",\"system\","
        "\"iot_device\",\"external_api\",\"scheduled\"],\"callback_url\":\"http://8.8.8.8/h\"",
        "\"event_types\":[\"a.b\"],\"event_categories\":[\"user_action\",\"telemetry\",\"alert\"],"
        "\"callback_url\":\"http://[2606:4700::1111]:8443/h\"",
        "\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
        "\"retry_policy\":{\"max_retries\":0}",
        "\"event_types\":[\"a.b\"],\"callback_url\":\"https://a.example.com/\","
        "\"retry_policy\":{\"max_retries\":100,\"backoff_seconds\":[0,0.5,31536000]}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char body[1024];
        snprintf(body, sizeof(body), "{\"subscriber_name\":\"good-%zu\",%s}", i, good[i]);
        h_resp_t g = post_sub(e, body);
        cr_assert_eq(g.status, 201, "%s -> %ld %s", body, g.status, g.body);
        h_resp_free(&g);
    }
    cr_assert_eq(subscription_rows(e), (int64_t)(sizeof(good) / sizeof(good[0])));
}

/* With delivery.allow_private on, a literal loopback or private callback_url
 * is accepted (it is how the tests' receivers are reached). */
H_TEST(delivery_api, private_targets_allowed_by_config)
{
    h_env_t *e = h_setup(&(h_opts_t){.extra_yaml = "delivery:\n  allow_private: true\n"});
    h_svc_start(e);
    const char *urls[] = {"http://127.0.0.1:9/hook", "http://10.1.2.3/hook",
                          "http://[::1]:8080/hook", "http://localhost:8080/hook"};
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"subscriber_name\":\"p%zu\",\"event_types\":[\"a.b\"],\"callback_url\":\"%s\"}",
                 i, urls[i]);
        h_resp_t r = post_sub(e, body);
        cr_assert_eq(r.status, 201, "%s -> %ld %s", body, r.status, r.body);
        h_resp_free(&r);
    }
    h_resp_t r = post_sub(e, "{\"subscriber_name\":\"ftp\",\"event_types\":[\"a.b\"],"
                             "\"callback_url\":\"ftp://127.0.0.1/x\"}");
    cr_assert_eq(r.status, 422, "allow_private does not allow other schemes: %ld %s", r.status,
                 r.body);
    h_resp_free(&r);
}
