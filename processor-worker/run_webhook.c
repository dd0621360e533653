/* The "webhook" processor: POST the event JSON to config.url; a 2xx answer
 * within config.timeout_ms (default 10 s) is success. Transfers of a batch run
 * concurrently on the worker's curl multi handle. Redirects are not followed. */
#include "common/log.h"
#include "common/proctypes.h"
#include "common/webhook.h"
#include "processor-worker/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    es_job_t *job;
    struct curl_slist *headers;
} xfer_t;

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    return size * nmemb;
}

static es_rc_t start(es_job_t *job, const es_proc_t *proc, bool *ok, char **message)
{
    const json_t *cfg = proc->config;
    const char *url = json_string_value(json_object_get(cfg, "url"));
    json_int_t timeout = ES_WEBHOOK_DEFAULT_TIMEOUT_MS;
    if (json_is_integer(json_object_get(cfg, "timeout_ms")))
        timeout = json_integer_value(json_object_get(cfg, "timeout_ms"));
    if (url == NULL) {
        *ok = false;
        *message = es_xstrdup("config.url missing");
        return ES_OK;
    }
    xfer_t *x = es_xcalloc(1, sizeof(*x));
    x->job = job;
    x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
    x->headers = curl_slist_append(x->headers, "User-Agent: event_service/" ES_VERSION);
    x->headers = curl_slist_append(x->headers, "Expect:");
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)json_object_get(cfg, "headers"), k, v)
    {
        if (!json_is_string(v))
            continue;
        char *line = es_xasprintf("%s: %s", k, json_string_value(v));
        x->headers = curl_slist_append(x->headers, line);
        free(line);
    }
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    const char *body = es_job_event_json(job);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ES_MIN(timeout, 5000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (curl_multi_add_handle(job->batch->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(x->headers);
        free(x);
        *ok = false;
        *message = es_xstrdup("cannot start the HTTP request");
        return ES_OK;
    }
    job->batch->pending_async++;
    return ES_AGAIN;
}

void es_webhook_collect(es_batch_t *b)
{
    CURLcode result;
    long status;
    xfer_t *x;
    while ((x = es_curl_next_done(b->multi, &result, &status)) != NULL) {
        curl_slist_free_all(x->headers);
        es_job_t *job = x->job;
        free(x);
        b->pending_async--;
        if (result != CURLE_OK)
            es_job_finished(job, false, es_xasprintf("%s", curl_easy_strerror(result)));
        else if (status >= 200 && status < 300)
            es_job_finished(job, true, es_xasprintf("HTTP %ld", status));
        else
            es_job_finished(job, false, es_xasprintf("HTTP %ld", status));
    }
}

const es_runner_t es_runner_webhook = {"webhook", start, false, true};
