/*
 * delivery.h - the webhook sender of a processor worker: a thread with its
 * own PostgreSQL connection and curl multi handle that keeps up to
 * delivery.concurrency signed POSTs in flight. It claims due deliveries
 * (FOR UPDATE SKIP LOCKED, under a lease) as slots free up, signs them
 * (Standard Webhooks), records every attempt and the outcome in small batches,
 * and schedules retries (the subscription's retry_policy, or the configured
 * schedule, with jitter, honouring Retry-After within bounds). Targets that
 * resolve to internal addresses are refused at connect time unless
 * delivery.allow_private; redirects are not followed; response bodies are read
 * only up to delivery.max_response_bytes.
 */
#ifndef ES_PROC_DELIVERY_H
#define ES_PROC_DELIVERY_H

#include "common/config.h"

typedef struct es_delivery es_delivery_t;

/* Starts the sender thread. conninfo is copied. */
es_delivery_t *es_delivery_start(const es_config_t *cfg, const char *conninfo);
/* New deliveries may be due: look now. Thread-safe. */
void es_delivery_wake(es_delivery_t *d);
/* Finishes the transfers in flight (bounded by delivery.timeout_ms), records
 * them, and joins the thread. */
void es_delivery_stop(es_delivery_t *d);

/* The delay before retry number `attempt` (1 = after the first attempt) under
 * policy (NULL or {} = the configured schedule), without jitter; -1 when the
 * policy allows no further retry. Exposed for tests. */
int64_t es_delivery_retry_delay_s(const es_config_t *cfg, const char *policy_json, int attempt);

#endif
