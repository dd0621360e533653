/*
 * pattern.h - NATS-style subject patterns, used for event_type filters of
 * processors and subscriptions: tokens are separated by '.', "*" matches
 * exactly one token, ">" as the last token matches one or more tokens; any
 * other token matches itself exactly.
 */
#ifndef ES_PATTERN_H
#define ES_PATTERN_H

#include "common/es.h"

/* True when subject matches pattern. */
bool es_pattern_match(const char *pattern, const char *subject);

/* True when p is a well-formed pattern: non-empty tokens, ">" only last. */
bool es_pattern_valid(const char *p);

#endif
