/*
 * proctypes.h - the built-in processor types and what their config must hold.
 * The API checks a registration here (unknown type or bad config: 422); the
 * processor workers run them (processor-worker/run_*.c). A new type is one
 * entry here and one file there.
 */
#ifndef ES_PROCTYPES_H
#define ES_PROCTYPES_H

#include "common/event.h"

#include <jansson.h>

typedef struct {
    const char *name;
    /* Checks config (an object, never NULL); fills err under "config.". */
    es_rc_t (*validate)(const json_t *config, es_field_error_t *err);
} es_proctype_t;

/* The type called name, or NULL. */
const es_proctype_t *es_proctype_find(const char *name);

/* "webhook, nats, projection, noop" for error messages. */
const char *es_proctype_list(void);

/* Webhook timeout when config.timeout_ms is absent. */
#define ES_WEBHOOK_DEFAULT_TIMEOUT_MS 10000

#endif
