/*
 * filters.h - which events a processor (or subscription) wants: event_type
 * patterns, event_source and event_category sets. Parsed once from the JSON
 * the API accepted ({"event_type": "user.*" or [...], "event_source": ...,
 * "event_category": ...}; the plural keys event_types / event_sources /
 * event_categories are accepted too), validated at registration, matched per
 * event by the processor workers.
 */
#ifndef ES_FILTERS_H
#define ES_FILTERS_H

#include "common/event.h"

#include <jansson.h>

typedef struct {
    char **types; /* patterns; none = any type */
    size_t ntypes;
    uint32_t sources;    /* bit per es_source_t; 0 = any */
    uint32_t categories; /* bit per es_category_t; 0 = any */
} es_filters_t;

/* Parses filters (object or null). On failure returns ES_INVALID and fills
 * err with the field under prefix (e.g. "filters."). */
es_rc_t es_filters_parse(const json_t *filters, const char *prefix, es_filters_t *out,
                         es_field_error_t *err) ES_MUST_CHECK;
void es_filters_free(es_filters_t *f);

/* True when an event of this type, source and category passes. */
bool es_filters_match(const es_filters_t *f, const char *event_type, const char *source,
                      const char *category);

#endif
