-- pgbench: a drain that does per event the row work a noop processor run
-- leaves behind (bench/processing.sh), in one statement and one transaction
-- per :claim events: claim due rows with FOR UPDATE SKIP LOCKED, delete
-- them from the queue, mark their events processed (as
-- event.complete_events does for a success) and insert one
-- processing_results row each. What the service does on top (the separate
-- claim transaction with its lease, reading the events and rendering them,
-- the status counters, the processor's counters, the NATS publications) is
-- not here. Run with -M prepared -D claim=50.
WITH c AS (
    SELECT q.position FROM event.processing_queue q
    WHERE q.run_at <= now()
    ORDER BY q.run_at, q.position
    LIMIT :claim
    FOR UPDATE SKIP LOCKED
), d AS (
    DELETE FROM event.processing_queue q USING c
    WHERE q.position = c.position
    RETURNING q.event_id
), u AS (
    UPDATE event.events e
    SET status = 'processed', processed_at = now(), processors = ARRAY['noop'],
        error_message = NULL, updated_at = now()
    FROM d
    WHERE e.event_id = d.event_id AND e.status = 'pending'
    RETURNING e.event_id
)
INSERT INTO event.processing_results (event_id, processor_name, status, duration_ms)
SELECT u.event_id, 'noop', 'success', 0 FROM u;
