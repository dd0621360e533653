#include "common/webhook.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* The Standard Webhooks golden vector (libraries/go/webhook_test.go TestWebhookSign). */
Test(webhook, standard_webhooks_test_vector)
{
    const char *body = "{\"test\": 2432232314}";
    char sig[128];
    cr_assert(es_webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                              "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig,
                              sizeof(sig)));
    cr_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

Test(webhook, signature_depends_on_every_part)
{
    const char *body = "{\"test\": 2432232314}";
    const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    char a[128], b[128];
    cr_assert(es_webhook_sign(secret, "msg_1", 1614265330, body, strlen(body), a, sizeof(a)));
    cr_assert(es_webhook_sign(secret, "msg_2", 1614265330, body, strlen(body), b, sizeof(b)));
    cr_assert_str_neq(a, b, "the id is signed");
    cr_assert(es_webhook_sign(secret, "msg_1", 1614265331, body, strlen(body), b, sizeof(b)));
    cr_assert_str_neq(a, b, "the timestamp is signed");
    cr_assert(es_webhook_sign(secret, "msg_1", 1614265330, body, strlen(body) - 1, b, sizeof(b)));
    cr_assert_str_neq(a, b, "every byte of the body is signed");
    cr_assert(es_webhook_sign("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "msg_1", 1614265330, body,
                              strlen(body), b, sizeof(b)));
    cr_assert_str_neq(a, b, "the key is the secret");
}

Test(webhook, key_of_plain_and_whsec_secrets)
{
    size_t len = 0;
    unsigned char *k = es_webhook_key("whsec_aGVsbG8=", &len); /* base64("hello") */
    cr_assert_eq(len, 5);
    cr_assert(memcmp(k, "hello", 5) == 0);
    free(k);
    k = es_webhook_key("plain-secret", &len);
    cr_assert_eq(len, strlen("plain-secret"));
    cr_assert(memcmp(k, "plain-secret", len) == 0);
    free(k);
}

Test(webhook, new_secrets_are_whsec_and_distinct)
{
    char *a = es_webhook_new_secret(), *b = es_webhook_new_secret();
    cr_assert(strncmp(a, "whsec_", 6) == 0);
    size_t len = 0;
    unsigned char *k = es_webhook_key(a, &len);
    cr_assert_eq(len, 24, "24 random bytes");
    cr_assert_str_neq(a, b);
    free(k);
    free(a);
    free(b);
}

static bool internal4(const char *ip)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return es_addr_is_internal((struct sockaddr *)&sin);
}

static bool internal6(const char *ip)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    cr_assert_eq(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
    return es_addr_is_internal((struct sockaddr *)&sin6);
}

Test(webhook, internal_addresses)
{
    const char *internal[] = {"127.0.0.1",   "10.1.2.3",      "172.16.0.1", "172.31.255.255",
                              "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
                              "224.0.0.1",   "255.255.255.255", "192.0.2.5", "198.18.0.1"};
    for (size_t i = 0; i < sizeof(internal) / sizeof(internal[0]); i++)
        cr_assert(internal4(internal[i]), "%s is internal", internal[i]);
    const char *external[] = {"8.8.8.8", "172.32.0.1", "100.128.0.1", "1.1.1.1", "93.184.216.34"};
    for (size_t i = 0; i < sizeof(external) / sizeof(external[0]); i++)
        cr_assert(!internal4(external[i]), "%s is external", external[i]);
    cr_assert(internal6("::1"));
    cr_assert(internal6("fe80::1"));
    cr_assert(internal6("fd00::1"));
    cr_assert(internal6("::ffff:127.0.0.1"), "v4-mapped loopback");
    cr_assert(internal6("::ffff:169.254.169.254"), "v4-mapped metadata");
    cr_assert(!internal6("2606:4700:4700::1111"));
}

Test(webhook, callback_url_checks)
{
    char why[160];
    cr_assert(es_webhook_url_ok("https://hooks.example.com/x", false, why, sizeof(why)));
    cr_assert(es_webhook_url_ok("http://hooks.example.com:8080/x?y=1", false, why, sizeof(why)));
    cr_assert(!es_webhook_url_ok("ftp://hooks.example.com/x", false, why, sizeof(why)));
    cr_assert(strstr(why, "http") != NULL, "%s", why);
    cr_assert(!es_webhook_url_ok("not a url", false, why, sizeof(why)));
    cr_assert(!es_webhook_url_ok("http://127.0.0.1:9000/x", false, why, sizeof(why)));
    cr_assert(strstr(why, "internal") != NULL, "%s", why);
    cr_assert(!es_webhook_url_ok("http://[::1]:9000/x", false, why, sizeof(why)));
    cr_assert(!es_webhook_url_ok("http://169.254.169.254/latest", false, why, sizeof(why)));
    cr_assert(!es_webhook_url_ok("http://localhost/x", false, why, sizeof(why)));
    cr_assert(es_webhook_url_ok("http://127.0.0.1:9000/x", true, why, sizeof(why)),
              "allowed with allow_private");
}
