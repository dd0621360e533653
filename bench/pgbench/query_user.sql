-- pgbench: the SQL POST /api/v1/events/query {"user_id": "user_N", "limit": 50}
-- sends (api-worker/query.c: the total, then limit + 1 rows newest first).
-- Run with -M extended: the service sends it with PQsendQueryParams (unnamed
-- statement, planned for the actual value each time).
\set u random(0, 49999)
SELECT t.total, p.*
FROM (SELECT count(*) FROM event.events e WHERE true AND e.user_id = 'user_' || :u) t(total)
LEFT JOIN LATERAL (
    SELECT e.event_id, e.event_type, e.event_source, e.event_category, e.user_id, e.session_id,
           e.organization_id, e.device_id, e.correlation_id, e.data, e.metadata, e.context,
           e.properties, e.status, e.processed_at, to_json(e.processors), e.error_message,
           e.retry_count, e.timestamp, e.created_at, e.updated_at, e.version, e.schema_version,
           e.stream_id, e.stream_version, e.position
    FROM event.events e WHERE true AND e.user_id = 'user_' || :u
    ORDER BY e.timestamp DESC, e.position DESC LIMIT 51 OFFSET 0) p ON true
ORDER BY p.timestamp DESC NULLS LAST, p.position DESC;
