#include "common/metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* Status codes with a histogram of their own; anything else is "other". */
static const int statuses[] = {200, 201, 202, 400, 401, 403, 404, 405,
                               409, 413, 415, 422, 429, 500, 503};
#define NSTATUS (ES_ARRAY_LEN(statuses) + 1)
static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,   0.25,   0.5,   1.0,  2.5,   5.0};
#define NBOUNDS ES_ARRAY_LEN(bounds)
#define NROUTES (ES_METRICS_MAX_ROUTES + 1) /* the last: no route */

typedef struct {
    atomic_uint_fast64_t buckets[NBOUNDS + 1]; /* cumulative at render; +Inf last */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_us;
} histo_t;

typedef struct {
    histo_t http[NROUTES][NSTATUS];
    atomic_uint_fast64_t ingested[ES_SOURCE_COUNT];
    atomic_uint_fast64_t processed[ES_OUT_COUNT];
    atomic_uint_fast64_t deliveries[ES_DLV_COUNT];
    atomic_uint_fast64_t restarts[3];
    atomic_uint_fast64_t groups, group_reqs, group_events;
} shm_t;

static shm_t *shm;
static shm_t local; /* when init was not called (unit tests, tools) */

void es_metrics_init(void)
{
    if (shm != NULL)
        return;
    void *p = mmap(NULL, sizeof(shm_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    shm = p == MAP_FAILED ? &local : p; /* zero-filled */
}

static shm_t *m(void)
{
    return shm ? shm : &local;
}

void es_metrics_http(int route, int status, double seconds)
{
    size_t r = route >= 0 && route < ES_METRICS_MAX_ROUTES ? (size_t)route : NROUTES - 1;
    size_t s = NSTATUS - 1;
    for (size_t i = 0; i < ES_ARRAY_LEN(statuses); i++)
        if (statuses[i] == status)
            s = i;
    histo_t *h = &m()->http[r][s];
    size_t b = 0;
    while (b < NBOUNDS && seconds > bounds[b])
        b++;
    atomic_fetch_add(&h->buckets[b], 1);
    atomic_fetch_add(&h->count, 1);
    atomic_fetch_add(&h->sum_us, (uint_fast64_t)(seconds * 1e6));
}

void es_metrics_ingested(es_source_t source, int n)
{
    atomic_fetch_add(&m()->ingested[source], (uint_fast64_t)n);
}

void es_metrics_ingest_group(int nreqs, int nevents)
{
    atomic_fetch_add(&m()->groups, 1);
    atomic_fetch_add(&m()->group_reqs, (uint_fast64_t)nreqs);
    atomic_fetch_add(&m()->group_events, (uint_fast64_t)nevents);
}

void es_metrics_processed(es_proc_outcome_t outcome, int n)
{
    atomic_fetch_add(&m()->processed[outcome], (uint_fast64_t)n);
}

void es_metrics_delivery(es_dlv_outcome_t outcome, int n)
{
    atomic_fetch_add(&m()->deliveries[outcome], (uint_fast64_t)n);
}

void es_metrics_restart(int role)
{
    if (role >= 0 && role < 3)
        atomic_fetch_add(&m()->restarts[role], 1);
}

static void status_label(size_t s, char *out, size_t cap)
{
    if (s < ES_ARRAY_LEN(statuses))
        snprintf(out, cap, "%d", statuses[s]);
    else
        snprintf(out, cap, "other");
}

void es_metrics_render(es_buf_t *b, const char *const *route_names, int nroutes,
                       const char *const *depth_names, const int64_t *depths, int ndepths)
{
    shm_t *x = m();
    es_buf_puts(b, "# HELP event_service_events_ingested_total Events stored, by source.\n"
                   "# TYPE event_service_events_ingested_total counter\n");
    for (int i = 0; i < ES_SOURCE_COUNT; i++)
        es_buf_printf(b, "event_service_events_ingested_total{source=\"%s\"} %llu\n",
                      es_source_names[i], (unsigned long long)atomic_load(&x->ingested[i]));

    es_buf_printf(b,
                  "# HELP event_service_ingest_transactions_total Group-commit transactions of "
                  "the ingest path.\n"
                  "# TYPE event_service_ingest_transactions_total counter\n"
                  "event_service_ingest_transactions_total %llu\n"
                  "# HELP event_service_ingest_transaction_requests_total Requests written by "
                  "those transactions.\n"
                  "# TYPE event_service_ingest_transaction_requests_total counter\n"
                  "event_service_ingest_transaction_requests_total %llu\n"
                  "# HELP event_service_ingest_transaction_events_total Events written by those "
                  "transactions.\n"
                  "# TYPE event_service_ingest_transaction_events_total counter\n"
                  "event_service_ingest_transaction_events_total %llu\n",
                  (unsigned long long)atomic_load(&x->groups),
                  (unsigned long long)atomic_load(&x->group_reqs),
                  (unsigned long long)atomic_load(&x->group_events));

    static const char *const proc[ES_OUT_COUNT] = {"processed", "retry", "failed"};
    es_buf_puts(b, "# HELP event_service_events_processed_total Processing outcomes.\n"
                   "# TYPE event_service_events_processed_total counter\n");
    for (int i = 0; i < ES_OUT_COUNT; i++)
        es_buf_printf(b, "event_service_events_processed_total{outcome=\"%s\"} %llu\n", proc[i],
                      (unsigned long long)atomic_load(&x->processed[i]));

    static const char *const dlv[ES_DLV_COUNT] = {"delivered", "retry", "dead"};
    es_buf_puts(b, "# HELP event_service_deliveries_total Webhook delivery attempts by outcome.\n"
                   "# TYPE event_service_deliveries_total counter\n");
    for (int i = 0; i < ES_DLV_COUNT; i++)
        es_buf_printf(b, "event_service_deliveries_total{outcome=\"%s\"} %llu\n", dlv[i],
                      (unsigned long long)atomic_load(&x->deliveries[i]));

    static const char *const roles[3] = {"api", "processor", "replay"};
    es_buf_puts(b, "# HELP event_service_worker_restarts_total Workers restarted by the master.\n"
                   "# TYPE event_service_worker_restarts_total counter\n");
    for (int i = 0; i < 3; i++)
        es_buf_printf(b, "event_service_worker_restarts_total{role=\"%s\"} %llu\n", roles[i],
                      (unsigned long long)atomic_load(&x->restarts[i]));

    es_buf_puts(b, "# HELP event_service_queue_depth Work waiting, by queue.\n"
                   "# TYPE event_service_queue_depth gauge\n");
    for (int i = 0; i < ndepths; i++)
        es_buf_printf(b, "event_service_queue_depth{queue=\"%s\"} %lld\n", depth_names[i],
                      (long long)depths[i]);

    es_buf_puts(b, "# HELP event_service_http_request_duration_seconds HTTP request latency.\n"
                   "# TYPE event_service_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < NROUTES; r++) {
        const char *route = r < (size_t)nroutes ? route_names[r]
                            : r == NROUTES - 1  ? "unmatched"
                                                : NULL;
        if (route == NULL)
            continue;
        for (size_t s = 0; s < NSTATUS; s++) {
            histo_t *h = &x->http[r][s];
            uint64_t count = atomic_load(&h->count);
            if (count == 0)
                continue;
            char st[16];
            status_label(s, st, sizeof(st));
            uint64_t cumulative = 0;
            for (size_t k = 0; k <= NBOUNDS; k++) {
                cumulative += atomic_load(&h->buckets[k]);
                if (k < NBOUNDS)
                    es_buf_printf(b,
                                  "event_service_http_request_duration_seconds_bucket{route=\"%s\","
                                  "status=\"%s\",le=\"%g\"} %llu\n",
                                  route, st, bounds[k], (unsigned long long)cumulative);
                else
                    es_buf_printf(b,
                                  "event_service_http_request_duration_seconds_bucket{route=\"%s\","
                                  "status=\"%s\",le=\"+Inf\"} %llu\n",
                                  route, st, (unsigned long long)cumulative);
            }
            es_buf_printf(b,
                          "event_service_http_request_duration_seconds_sum{route=\"%s\",status="
                          "\"%s\"} %.6f\n",
                          route, st, (double)atomic_load(&h->sum_us) / 1e6);
            es_buf_printf(b,
                          "event_service_http_request_duration_seconds_count{route=\"%s\",status="
                          "\"%s\"} %llu\n",
                          route, st, (unsigned long long)count);
        }
    }
}
