/*
 * metrics.h - the service's Prometheus counters, shared by every process.
 *
 * The master maps one anonymous shared memory region before it forks; every
 * worker (and every later generation) inherits it and updates it with atomic
 * adds, so whichever API worker answers GET /metrics shows the whole
 * instance. Counters start at zero when the master starts.
 */
#ifndef ES_METRICS_H
#define ES_METRICS_H

#include "common/buf.h"
#include "common/event.h"

#define ES_METRICS_MAX_ROUTES 64

typedef enum { ES_OUT_PROCESSED, ES_OUT_RETRY, ES_OUT_FAILED, ES_OUT_COUNT } es_proc_outcome_t;
typedef enum { ES_DLV_DELIVERED, ES_DLV_RETRY, ES_DLV_DEAD, ES_DLV_COUNT } es_dlv_outcome_t;

/* Maps the region; in the master, before the first fork. Idempotent. */
void es_metrics_init(void);

/* route: index in the route table, or -1 for a path no route serves. */
void es_metrics_http(int route, int status, double seconds);
void es_metrics_ingested(es_source_t source, int n);
/* One group-commit transaction of the ingest path, with the requests and
 * events it carried. */
void es_metrics_ingest_group(int nreqs, int nevents);
void es_metrics_processed(es_proc_outcome_t outcome, int n);
void es_metrics_delivery(es_dlv_outcome_t outcome, int n);
/* role: 0 api, 1 processor, 2 replay. */
void es_metrics_restart(int role);

/* Appends the exposition (text format 0.0.4). route_names has nroutes
 * labels; depth_names/depths the queue depths read at scrape time. */
void es_metrics_render(es_buf_t *b, const char *const *route_names, int nroutes,
                       const char *const *depth_names, const int64_t *depths, int ndepths);

#endif
