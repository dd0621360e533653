/*
 * rudder.h - RudderStack / Segment messages (the webhook destination's body
 * and the HTTP tracking API's calls) mapped onto our event model, as the
 * seed's logic contract does:
 *   event_type     = event (track), else name (page, screen), else the type
 *   event_category = page -> page_view; track whose event contains "form" ->
 *                    form_submit, "click" -> click; anything else user_action
 *   user_id        = userId, else anonymousId
 *   data           = {"properties": ..., "type": ...} (+ traits, name, groupId,
 *                    previousId when present)
 *   context        = the message's context
 *   metadata       = messageId, anonymousId, userId, sentAt, originalTimestamp,
 *                    receivedAt, channel, rudderId, integrations, original_type
 * The messageId names the event: a redelivery (RudderStack retries for hours)
 * maps to the same event_id and is answered with the stored event, writing
 * nothing.
 */
#ifndef ES_RUDDER_H
#define ES_RUDDER_H

#include "common/event.h"

#include <jansson.h>

/* The category of a message of this type and event name. */
es_category_t es_rudder_category(const char *type, const char *event);

/* Fills ev (es_event_init-ed) from msg. type_hint, when not NULL, is the type
 * the endpoint implies (/v1/track) and is used when msg has none. source is
 * the event_source to record. received_us: the server clock at receipt, for
 * the timestamp correction timestamp = receivedAt - (sentAt - timestamp).
 * Returns ES_INVALID with err (field under prefix) when the message is not an
 * object, has no type, or has neither userId nor anonymousId. */
es_rc_t es_rudder_to_event(es_event_t *ev, const json_t *msg, const char *type_hint,
                           es_source_t source, int64_t received_us, const char *prefix,
                           es_field_error_t *err) ES_MUST_CHECK;

#endif
