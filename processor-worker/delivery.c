#include "processor-worker/delivery.h"

#include "common/buf.h"
#include "common/event_row.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/pgsync.h"
#include "common/timeutil.h"
#include "common/webhook.h"

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* Columns of event.claim_deliveries(): 8 delivery/subscription columns, then
 * the event in ES_EVENT_COLUMNS order. */
enum {
    C_DELIVERY_ID,
    C_ATTEMPTS,
    C_MANUAL,
    C_SUBSCRIPTION_ID,
    C_URL,
    C_SECRET,
    C_PREVIOUS_SECRET,
    C_POLICY,
    C_EVENT
};

/* Outcomes flushed at least this often, and at this many. */
#define FLUSH_MS 25
#define FLUSH_COUNT 500

/* After a claim that found some but not a full batch, the next one this soon. */
#define RECLAIM_MS 50

typedef struct claim claim_t;

/* One claim call: its token, and the outcomes not yet recorded. */
struct claim {
    char token[96];
    json_t *outcomes;
    int outstanding; /* transfers of this claim still running */
    claim_t *next;
};

typedef struct xfer {
    struct es_delivery *d;
    claim_t *claim;
    char *delivery_id;
    char *subscription_id;
    char *policy;
    int attempt;
    bool manual;
    bool refused; /* connect refused: the target resolved to an internal address */
    char *body;
    struct curl_slist *headers;
    es_buf_t response;
    bool truncated;
    int64_t retry_after_s; /* -1: none */
    int64_t started_us;
} xfer_t;

struct es_delivery {
    const es_config_t *cfg;
    es_pgsync_t db;
    CURLM *multi;
    pthread_t thread;
    atomic_bool stopping;
    atomic_bool woken;
    int inflight;
    claim_t *claims;
    int pending_outcomes;
    int64_t oldest_pending_ms;
    int64_t batches;
    char id[64];
};

static PGresult *query(es_delivery_t *d, const char *what, const char *sql, int n,
                       const char *const *params)
{
    return es_pgsync_query(&d->db, what, sql, n, params);
}

int64_t es_delivery_retry_delay_s(const es_config_t *cfg, const char *policy_json, int attempt)
{
    const es_intlist_t *def = &cfg->delivery.retry_schedule_seconds;
    json_t *policy = policy_json ? json_loads(policy_json, 0, NULL) : NULL;
    const json_t *mr = json_object_get(policy, "max_retries");
    const json_t *bs = json_object_get(policy, "backoff_seconds");
    int64_t max_retries = json_is_integer(mr) ? json_integer_value(mr) : (int64_t)def->len;
    int64_t delay = -1;
    if (attempt <= max_retries) {
        size_t i = (size_t)attempt - 1;
        if (json_is_array(bs) && json_array_size(bs) > 0) {
            size_t k = ES_MIN(i, json_array_size(bs) - 1);
            const json_t *v = json_array_get(bs, k);
            delay = json_is_number(v) ? (int64_t)json_number_value(v) : 60;
        } else if (def->len > 0) {
            delay = def->items[ES_MIN(i, def->len - 1)];
        } else {
            delay = 60;
        }
        if (delay < 0)
            delay = 0;
    }
    json_decref(policy);
    return delay;
}

/* Refuses, at connect time and after DNS, targets on internal addresses. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    xfer_t *x = clientp;
    if (!x->d->cfg->delivery.allow_private && es_addr_is_internal(&a->addr)) {
        x->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    xfer_t *x = userdata;
    size_t n = size * nmemb;
    size_t limit = (size_t)x->d->cfg->delivery.max_response_bytes;
    if (x->response.len + n > limit) {
        es_buf_append(&x->response, ptr, limit - x->response.len);
        x->truncated = true;
        return 0; /* stop reading: the status line and headers are enough */
    }
    es_buf_append(&x->response, ptr, n);
    return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    xfer_t *x = userdata;
    size_t n = size * nitems;
    if (n > 12 && strncasecmp(buf, "retry-after:", 12) == 0) {
        char value[128];
        size_t vlen = ES_MIN(n - 12, sizeof(value) - 1);
        memcpy(value, buf + 12, vlen);
        value[vlen] = '\0';
        char *v = value + strspn(value, " \t");
        v[strcspn(v, "\r\n")] = '\0';
        int64_t secs = 0;
        if (es_parse_int64(v, strlen(v), &secs)) {
            x->retry_after_s = secs;
        } else {
            time_t when = curl_getdate(v, NULL);
            if (when > 0)
                x->retry_after_s = (int64_t)when - (int64_t)time(NULL);
        }
    }
    return n;
}

static void xfer_free(xfer_t *x)
{
    free(x->delivery_id);
    free(x->subscription_id);
    free(x->policy);
    free(x->body);
    curl_slist_free_all(x->headers);
    es_buf_free(&x->response);
    free(x);
}

/* Starts the POST of claim row i. */
static void start(es_delivery_t *d, claim_t *c, const PGresult *r, int i)
{
    xfer_t *x = es_xcalloc(1, sizeof(*x));
    x->d = d;
    x->claim = c;
    x->delivery_id = es_xstrdup(PQgetvalue(r, i, C_DELIVERY_ID));
    x->subscription_id = es_xstrdup(PQgetvalue(r, i, C_SUBSCRIPTION_ID));
    x->policy = PQgetisnull(r, i, C_POLICY) ? NULL : es_xstrdup(PQgetvalue(r, i, C_POLICY));
    x->attempt = (int)es_pg_int(r, i, C_ATTEMPTS);
    x->manual = strcmp(PQgetvalue(r, i, C_MANUAL), "t") == 0;
    x->retry_after_s = -1;
    c->outstanding++;

    if (PQgetisnull(r, i, C_EVENT + ES_COL_EVENT_ID)) { /* the event is gone */
        json_array_append_new(c->outcomes, json_pack("{ss ss ss si}", "delivery_id", x->delivery_id,
                                                     "subscription_id", x->subscription_id,
                                                     "outcome", "gone", "attempt", x->attempt));
        c->outstanding--;
        d->pending_outcomes++;
        xfer_free(x);
        return;
    }
    es_buf_t body = ES_BUF_INIT;
    es_event_row_render(&body, r, i, C_EVENT);
    x->body = es_buf_take(&body);

    /* Standard Webhooks headers; during a rotation both secrets sign. */
    long long ts = (long long)time(NULL);
    char line[512], sig[128];
    x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
    x->headers = curl_slist_append(x->headers, "User-Agent: event_service/" ES_VERSION);
    x->headers = curl_slist_append(x->headers, "Expect:");
    snprintf(line, sizeof(line), "webhook-id: %s", x->delivery_id);
    x->headers = curl_slist_append(x->headers, line);
    snprintf(line, sizeof(line), "webhook-timestamp: %lld", ts);
    x->headers = curl_slist_append(x->headers, line);
    es_buf_t sigs = ES_BUF_INIT;
    const int secret_cols[2] = {C_SECRET, C_PREVIOUS_SECRET};
    for (int k = 0; k < 2; k++) {
        if (PQgetisnull(r, i, secret_cols[k]) || PQgetlength(r, i, secret_cols[k]) == 0)
            continue;
        if (es_webhook_sign(PQgetvalue(r, i, secret_cols[k]), x->delivery_id, ts, x->body,
                            strlen(x->body), sig, sizeof(sig)))
            es_buf_printf(&sigs, "%s%s", sigs.len ? " " : "", sig);
    }
    if (sigs.len > 0) {
        char *h = es_xasprintf("webhook-signature: %s", sigs.data);
        x->headers = curl_slist_append(x->headers, h);
        free(h);
    }
    es_buf_free(&sigs);

    const es_config_t *cfg = d->cfg;
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, PQgetvalue(r, i, C_URL));
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->delivery.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ES_MIN(cfg->delivery.timeout_ms, 10000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    x->started_us = es_time_now_us();
    if (curl_multi_add_handle(d->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        c->outstanding--;
        es_warn("delivery %s: cannot start the request", x->delivery_id);
        xfer_free(x); /* the lease runs out and it is claimed again */
        return;
    }
    d->inflight++;
}

static void add_outcome(es_delivery_t *d, xfer_t *x, CURLcode result, long status)
{
    const es_config_t *cfg = d->cfg;
    int64_t latency_ms = (es_time_now_us() - x->started_us) / 1000;
    bool got_status =
        status > 0 && (result == CURLE_OK || (result == CURLE_WRITE_ERROR && x->truncated));
    json_t *o = json_pack("{ss ss si sI ss}", "delivery_id", x->delivery_id, "subscription_id",
                          x->subscription_id, "attempt", x->attempt, "latency_ms",
                          (json_int_t)latency_ms, "trigger", x->manual ? "manual" : "scheduled");
    if (status > 0)
        json_object_set_new(o, "status_code", json_integer(status));
    if (x->response.len > 0) {
        /* As text that is valid UTF-8 whatever the endpoint sent. */
        json_object_set_new(o, "response", es_json_lossy_string(x->response.data, x->response.len));
    }

    if (got_status && status >= 200 && status < 300) {
        json_object_set_new(o, "outcome", json_string("delivered"));
    } else {
        char error[300];
        if (x->refused)
            snprintf(error, sizeof(error),
                     "refused: the target resolves to an internal address "
                     "(delivery.allow_private is off)");
        else if (got_status)
            snprintf(error, sizeof(error), "HTTP %ld", status);
        else
            snprintf(error, sizeof(error), "%s", curl_easy_strerror(result));
        json_object_set_new(o, "error", json_string(error));
        int64_t delay = es_delivery_retry_delay_s(cfg, x->policy, x->attempt);
        if (got_status && status == 410) {
            json_object_set_new(o, "outcome", json_string("dead"));
            json_object_set_new(o, "disable_reason",
                                json_string("endpoint answered 410 Gone; subscription disabled"));
        } else if (x->manual || delay < 0) {
            json_object_set_new(o, "outcome", json_string("dead"));
        } else {
            unsigned char rnd;
            es_random_bytes(&rnd, 1);
            double jittered = (double)delay * 1000.0 * (0.8 + 0.4 * rnd / 255.0); /* +-20% */
            /* Retry-After is honoured, up to twice the scheduled delay (never
             * jittered below what the endpoint asked for). */
            if (x->retry_after_s * 1000.0 > jittered)
                jittered = 1000.0 * (double)ES_MIN(x->retry_after_s, ES_MAX(delay * 2, delay + 1));
            char when[ES_TIME_BUFLEN];
            es_time_format(es_time_now_us() + (int64_t)jittered * 1000, when);
            json_object_set_new(o, "outcome", json_string("retry"));
            json_object_set_new(o, "next_attempt_at", json_string(when));
        }
    }
    const char *outcome = json_string_value(json_object_get(o, "outcome"));
    es_metrics_delivery(strcmp(outcome, "delivered") == 0 ? ES_DLV_DELIVERED
                        : strcmp(outcome, "retry") == 0   ? ES_DLV_RETRY
                                                          : ES_DLV_DEAD,
                        1);
    json_array_append_new(x->claim->outcomes, o);
    x->claim->outstanding--;
    if (d->pending_outcomes++ == 0)
        d->oldest_pending_ms = es_time_mono_ms();
}

static void collect(es_delivery_t *d)
{
    CURLcode result;
    long status;
    xfer_t *x;
    while ((x = es_curl_next_done(d->multi, &result, &status)) != NULL) {
        d->inflight--;
        add_outcome(d, x, result, status);
        xfer_free(x);
    }
}

/* Records the outcomes gathered so far; drops claims that are finished. */
static void flush(es_delivery_t *d)
{
    char disable[24];
    snprintf(disable, sizeof(disable), "%d", d->cfg->delivery.disable_after_hours * 3600);
    claim_t **pp = &d->claims;
    while (*pp != NULL) {
        claim_t *c = *pp;
        if (json_array_size(c->outcomes) > 0) {
            char *outcomes = json_dumps(c->outcomes, JSON_COMPACT);
            const char *params[3] = {c->token, outcomes, disable};
            PGresult *r = query(d, "record deliveries",
                                "SELECT count(*) FROM event.complete_deliveries($1, $2::jsonb, "
                                "$3::int)",
                                3, params);
            if (r == NULL)
                es_warn("delivery outcomes not recorded; their leases run out and they are sent "
                        "again");
            PQclear(r);
            free(outcomes);
            json_array_clear(c->outcomes);
        }
        if (c->outstanding == 0) {
            *pp = c->next;
            json_decref(c->outcomes);
            free(c);
        } else {
            pp = &c->next;
        }
    }
    d->pending_outcomes = 0;
}

/* Claims up to limit due deliveries and starts them; returns how many. */
static int claim(es_delivery_t *d, int limit)
{
    claim_t *c = es_xcalloc(1, sizeof(*c));
    snprintf(c->token, sizeof(c->token), "%s:d%lld", d->id, (long long)++d->batches);
    c->outcomes = json_array();
    char lim[16], lease[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    snprintf(lease, sizeof(lease), "%d", d->cfg->delivery.lease_seconds);
    const char *params[3] = {lim, lease, c->token};
    PGresult *r = query(d, "claim deliveries",
                        "SELECT * FROM event.claim_deliveries($1::int, $2::int, $3)", 3, params);
    int n = r ? PQntuples(r) : 0;
    for (int i = 0; i < n; i++)
        start(d, c, r, i);
    PQclear(r);
    c->next = d->claims;
    d->claims = c;
    return n;
}

/* Milliseconds until the next claimable delivery is due (1 s when none). */
static int64_t next_due_ms(es_delivery_t *d)
{
    PGresult *r =
        query(d, "next due",
              "SELECT ceil(extract(epoch FROM min(d.next_attempt_at) - clock_timestamp()) "
              "* 1000)::bigint FROM event.deliveries d JOIN event.event_subscriptions s "
              "ON s.subscription_id = d.subscription_id AND s.enabled "
              "WHERE d.status IN ('pending', 'failed')",
              0, NULL);
    int64_t ms = 1000;
    if (r != NULL && !PQgetisnull(r, 0, 0))
        ms = es_pg_int(r, 0, 0);
    PQclear(r);
    /* Due already: it became due since the claim looked, or another worker
     * holds it; look again shortly. */
    return ES_MAX(ES_MIN(ms, 1000), 10);
}

static void *run(void *arg)
{
    es_delivery_t *d = arg;
    const es_config_t *cfg = d->cfg;
    int64_t next_claim_ms = 0;
    for (;;) {
        bool stopping = atomic_load(&d->stopping);
        if (stopping && d->inflight == 0 && d->pending_outcomes == 0)
            break;
        int64_t now = es_time_mono_ms();
        int free_slots = cfg->delivery.concurrency - d->inflight;
        if (!stopping && free_slots > 0 &&
            (atomic_exchange(&d->woken, false) || now >= next_claim_ms)) {
            int limit = ES_MIN(cfg->delivery.batch_size, free_slots);
            int n = claim(d, limit);
            /* More may be due at once (a full claim), or soon (some found:
             * look again shortly rather than ask when); none: sleep until the
             * next one is due. */
            next_claim_ms = n == limit ? now
                            : n > 0    ? now + RECLAIM_MS
                                       : next_due_ms(d) + es_time_mono_ms();
        }
        int running = 0;
        curl_multi_perform(d->multi, &running);
        collect(d);
        now = es_time_mono_ms();
        if (d->pending_outcomes > 0 && (d->pending_outcomes >= FLUSH_COUNT || d->inflight == 0 ||
                                        now - d->oldest_pending_ms >= FLUSH_MS))
            flush(d);
        else if (d->pending_outcomes == 0 && d->claims != NULL)
            flush(d); /* frees finished claims */
        int wait = d->inflight > 0 || d->pending_outcomes > 0
                       ? FLUSH_MS
                       : (int)ES_MAX(0, ES_MIN(next_claim_ms - now, 1000));
        if (wait > 0)
            curl_multi_poll(d->multi, NULL, 0, wait, NULL);
    }
    return NULL;
}

es_delivery_t *es_delivery_start(const es_config_t *cfg, const char *conninfo)
{
    es_delivery_t *d = es_xcalloc(1, sizeof(*d));
    d->cfg = cfg;
    es_pgsync_init(&d->db, conninfo, "delivery");
    d->multi = curl_multi_init();
    curl_multi_setopt(d->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cfg->delivery.concurrency);
    curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    /* Keep idle connections for reuse (TLS handshakes are dear); libcurl's
     * default cache is 4 x the transfers in flight, which a lull shrinks. */
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)cfg->delivery.concurrency);
    char host[32] = "host";
    gethostname(host, sizeof(host) - 1);
    snprintf(d->id, sizeof(d->id), "%s:%d", host, (int)getpid());
    if (pthread_create(&d->thread, NULL, run, d) != 0) {
        es_error("cannot start the delivery thread");
        abort();
    }
    return d;
}

void es_delivery_wake(es_delivery_t *d)
{
    atomic_store(&d->woken, true);
    curl_multi_wakeup(d->multi);
}

void es_delivery_stop(es_delivery_t *d)
{
    if (d == NULL)
        return;
    atomic_store(&d->stopping, true);
    curl_multi_wakeup(d->multi);
    pthread_join(d->thread, NULL);
    for (claim_t *c = d->claims, *next; c != NULL; c = next) {
        next = c->next;
        json_decref(c->outcomes);
        free(c);
    }
    curl_multi_cleanup(d->multi);
    es_pgsync_close(&d->db);
    free(d);
}
