/*
 * consul.c - registration of this instance in Consul (service
 * "event_service", tags, meta, an HTTP check on /health) when
 * consul.enabled, and deregistration on stop. Done by the master with short
 * blocking calls (1 s timeout); a failed registration is retried every
 * consul.check_interval_seconds.
 */
#include "master/master.h"

#include "common/buf.h"
#include "common/log.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char service_id[200];

static size_t sink(char *p, size_t s, size_t n, void *u)
{
    return s * n;
}

static bool consul_put(const es_config_t *cfg, const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof(url), "http://%s:%d%s", cfg->consul.host, cfg->consul.port, path);
    CURL *e = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK || status < 200 || status >= 300) {
        es_warn("consul %s: %s", path, rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP error");
        return false;
    }
    return true;
}

bool es_consul_register(const es_config_t *cfg)
{
    char host[128] = "localhost";
    gethostname(host, sizeof(host) - 1);
    const char *addr = strcmp(cfg->service.bind, "0.0.0.0") == 0 || cfg->service.bind[0] == '\0'
                           ? host
                           : cfg->service.bind;
    snprintf(service_id, sizeof(service_id), "%s-%s-%d", cfg->service.name, host,
             cfg->service.port);
    es_buf_t b = ES_BUF_INIT;
    es_buf_puts(&b, "{\"ID\":");
    es_buf_json_cstr(&b, service_id);
    es_buf_puts(&b, ",\"Name\":");
    es_buf_json_cstr(&b, cfg->service.name);
    es_buf_puts(&b, ",\"Tags\":[\"v1\",\"event-management\",\"event-sourcing\",\"webhooks\"],"
                    "\"Address\":");
    es_buf_json_cstr(&b, addr);
    es_buf_printf(&b, ",\"Port\":%d,\"Meta\":{\"version\":\"" ES_VERSION "\",\"base_path\":"
                      "\"/api/v1/events\",\"capabilities\":\"event_creation,event_query,"
                      "event_streaming,event_replay,event_subscriptions,event_processors,"
                      "frontend_collection,rudderstack_integration,tracking_api\"},",
                  cfg->service.port);
    char check[300];
    snprintf(check, sizeof(check), "http://%s:%d/health", addr, cfg->service.port);
    es_buf_puts(&b, "\"Check\":{\"HTTP\":");
    es_buf_json_cstr(&b, check);
    es_buf_printf(&b, ",\"Interval\":\"%ds\",\"Timeout\":\"5s\","
                      "\"DeregisterCriticalServiceAfter\":\"10m\"}}",
                  cfg->consul.check_interval_seconds);
    bool ok = consul_put(cfg, "/v1/agent/service/register", b.data);
    es_buf_free(&b);
    if (ok)
        es_info("registered in Consul as %s", service_id);
    return ok;
}

void es_consul_deregister(const es_config_t *cfg)
{
    if (service_id[0] == '\0')
        return;
    char path[300];
    snprintf(path, sizeof(path), "/v1/agent/service/deregister/%s", service_id);
    if (consul_put(cfg, path, NULL))
        es_info("deregistered %s from Consul", service_id);
    service_id[0] = '\0';
}
