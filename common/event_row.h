/*
 * event_row.h - reading events back: the one select list every query of
 * event.events uses, and the renderer of such a row as the API's
 * EventResponse JSON. event.ingest() returns the same columns in the same
 * order (schema/002_ingest.sql), so a created event and the same event read
 * back later render identically.
 */
#ifndef ES_EVENT_ROW_H
#define ES_EVENT_ROW_H

#include "common/buf.h"
#include "common/event.h"

#include <libpq-fe.h>

/* Select list over event.events aliased "e"; ES_EVENT_NCOLS columns. */
#define ES_EVENT_COLUMNS                                                                           \
    "e.event_id, e.event_type, e.event_source, e.event_category, e.user_id, e.session_id, "        \
    "e.organization_id, e.device_id, e.correlation_id, e.data, e.metadata, e.context, "            \
    "e.properties, e.status, e.processed_at, to_json(e.processors), e.error_message, "             \
    "e.retry_count, e.timestamp, e.created_at, e.updated_at, e.version, e.schema_version, "        \
    "e.stream_id, e.stream_version, e.position"
#define ES_EVENT_NCOLS 26

/* Column offsets within the select list. */
enum {
    ES_COL_EVENT_ID = 0,
    ES_COL_EVENT_TYPE = 1,
    ES_COL_SOURCE = 2,
    ES_COL_CATEGORY = 3,
    ES_COL_USER_ID = 4,
    ES_COL_ORGANIZATION_ID = 6,
    ES_COL_DATA = 9,
    ES_COL_STATUS = 13,
    ES_COL_TIMESTAMP = 18,
    ES_COL_STREAM_ID = 23,
    ES_COL_STREAM_VERSION = 24,
    ES_COL_POSITION = 25,
};

/* Appends the row (columns col0 .. col0+ES_EVENT_NCOLS-1 of res) as an
 * EventResponse object. */
void es_event_row_render(es_buf_t *b, const PGresult *res, int row, int col0);

/* Appends the EventResponse of an event this process just stored (status
 * pending, not in a stream), from the values it sent: the same fields as
 * es_event_row_render gives when the row is read back. */
void es_event_render_new(es_buf_t *b, es_event_t *ev, int64_t position);

/* Appends a PostgreSQL timestamptz text value as ISO 8601 UTC ("...Z"), or
 * null when the value is NULL. */
void es_render_pg_time(es_buf_t *b, const PGresult *res, int row, int col);

/* Appends a JSON array of every row of res, each rendered from column 0 by
 * render. */
typedef void (*es_row_render_fn)(es_buf_t *b, const PGresult *res, int row, int col);
void es_render_rows(es_buf_t *b, const PGresult *res, es_row_render_fn render);

/* An integer column (our own SQL's output); 0 when NULL or not an integer. */
int64_t es_pg_int(const PGresult *res, int row, int col);

/* Parses a timestamptz text value into microseconds; false if NULL/unparseable. */
bool es_pg_time_us(const PGresult *res, int row, int col, int64_t *us);

#endif
