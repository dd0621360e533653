-- 006_held_claims: claim and complete in one transaction when every processor
-- finishes at once.
--
-- A claim loop whose enabled processors all finish at once (noop, nats,
-- projection: none waits on a remote host), and for which no subscription
-- wants deliveries, need not lease its rows: it
-- claims them with FOR UPDATE SKIP LOCKED inside a transaction
-- (event.claim_events with a NULL lease, a "hold"), runs the processors and
-- records the outcome with event.complete_events(NULL, ...) in that same
-- transaction. That saves per event the lease's UPDATE of the queue row (a
-- new row version and its index entries), its locking again at completion,
-- and one commit per batch. The transaction is open for the claim's round
-- trip, the processors' few microseconds, the completion, and the wait for
-- the stream to acknowledge the runs' publications; a worker killed during
-- it leaves the rows as they were, claimable at once. A batch with a webhook processor
-- leases its rows as before, so no transaction is open while a webhook runs;
-- so does a batch that fans out, whose deliveries are committed chunk by
-- chunk and go out while the rest are written.

-- As in 003, and:
--  * p_lease_seconds NULL holds the rows (locked by this transaction, not
--    leased; attempts is the attempt being made, counted in the queue only if
--    the completion reschedules the event);
--  * p_full false leaves out what only a processor that sends the event needs
--    (webhook, nats): every column but event_id, event_type, event_source,
--    event_category and stream_id is NULL, which saves rendering them.
DROP FUNCTION event.claim_events(int, int, text);
CREATE FUNCTION event.claim_events(p_limit int, p_lease_seconds int, p_token text,
                                   p_full boolean DEFAULT true)
RETURNS TABLE (queue_position bigint, attempts int, done_processors text,
               routing_version bigint, event_id text, event_type text, event_source text,
               event_category text, user_id text, session_id text, organization_id text, device_id text,
               correlation_id text, data text, metadata text, context text, properties text,
               status text, processed_at text, processors text, error_message text,
               retry_count text, "timestamp" text, created_at text, updated_at text,
               version text, schema_version text, stream_id text, stream_version text,
               "position" text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    -- A claim need not wait for its commit to reach the disk: a claim lost in
    -- a crash leaves its rows unclaimed (claimed again, as when a lease runs
    -- out), and the completion's own commit flushes it anyway. A hold commits
    -- with its completion, which must reach the disk.
    IF p_lease_seconds IS NOT NULL THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    RETURN QUERY WITH c AS (
        SELECT q.position, q.event_id, q.attempts, q.rerun, q.resume
        FROM event.processing_queue q
        WHERE q.run_at <= now()
        ORDER BY q.run_at, q.position
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), u AS (
        UPDATE event.processing_queue q
        SET run_at = now() + make_interval(secs => p_lease_seconds),
            attempts = q.attempts + 1,
            claim = p_token
        WHERE p_lease_seconds IS NOT NULL
          AND q.position = ANY (ARRAY(SELECT c.position FROM c)) -- index probes, never a scan
        RETURNING q.position, q.event_id, q.attempts, q.rerun, q.resume
    ), claimed AS (
        SELECT u.position, u.event_id, u.attempts, u.rerun, u.resume FROM u
        UNION ALL
        SELECT c.position, c.event_id, c.attempts + 1, c.rerun, c.resume FROM c
        WHERE p_lease_seconds IS NULL
    )
    SELECT u.position, u.attempts,
           CASE WHEN (u.attempts > 1 OR u.resume) AND NOT u.rerun THEN
               (SELECT to_json(array_agg(DISTINCT r.processor_name))::text
                FROM event.processing_results r
                WHERE r.event_id = u.event_id AND r.status = 'success')
           END,
           (SELECT v.version FROM event.routing_version v),
           e.event_id::text, e.event_type::text, e.event_source::text, e.event_category::text,
           CASE WHEN p_full THEN e.user_id::text END,
           CASE WHEN p_full THEN e.session_id::text END,
           CASE WHEN p_full THEN e.organization_id::text END,
           CASE WHEN p_full THEN e.device_id::text END,
           CASE WHEN p_full THEN e.correlation_id::text END,
           CASE WHEN p_full THEN e.data::text END,
           CASE WHEN p_full THEN e.metadata::text END,
           CASE WHEN p_full THEN e.context::text END,
           CASE WHEN p_full THEN e.properties::text END,
           CASE WHEN p_full THEN e.status::text END,
           CASE WHEN p_full THEN e.processed_at::text END,
           CASE WHEN p_full THEN to_json(e.processors)::text END,
           CASE WHEN p_full THEN e.error_message END,
           CASE WHEN p_full THEN e.retry_count::text END,
           CASE WHEN p_full THEN e.timestamp::text END,
           CASE WHEN p_full THEN e.created_at::text END,
           CASE WHEN p_full THEN e.updated_at::text END,
           CASE WHEN p_full THEN e.version::text END,
           CASE WHEN p_full THEN e.schema_version::text END,
           e.stream_id::text,
           CASE WHEN p_full THEN e.stream_version::text END,
           CASE WHEN p_full THEN e.position::text END
    FROM claimed u LEFT JOIN event.events e ON e.event_id = u.event_id
    ORDER BY u.position;
END $$;

-- As in 003, and: p_token NULL records the rows that event.claim_events held
-- in this same transaction (a retry then counts the attempt).
CREATE OR REPLACE FUNCTION event.complete_events(p_token text, p_outcomes jsonb, p_results jsonb,
                                      p_deliveries jsonb)
RETURNS TABLE (done_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_held bigint[];
    v_count bigint;
    r record;
BEGIN
    -- Without a token the rows were held by event.claim_events in this same
    -- transaction, which must then have an xid (its row locks took one): a
    -- completion in a transaction of its own holds nothing and records nothing.
    IF p_token IS NULL AND pg_current_xact_id_if_assigned() IS NULL THEN
        RAISE EXCEPTION 'event.complete_events without a claim token outside the transaction that holds the rows';
    END IF;
    IF p_token IS NULL THEN
        -- Every row the hold returned is locked by this transaction until it
        -- ends: none can be gone or taken.
        SELECT array_agg(DISTINCT (o ->> 'position')::bigint) INTO v_held
        FROM jsonb_array_elements(p_outcomes) o;
    ELSE
        SELECT array_agg(h.position ORDER BY h.position) INTO v_held
        FROM (SELECT q.position FROM event.processing_queue q
              WHERE q.position IN (SELECT (o ->> 'position')::bigint
                                   FROM jsonb_array_elements(p_outcomes) o)
                AND q.claim = p_token
              ORDER BY q.position
              FOR UPDATE OF q) h;
    END IF;
    IF v_held IS NULL THEN
        RETURN;
    END IF;

    WITH o AS (
        SELECT x.position, x.event_id, x.outcome, x.run_at, x.error_message,
               ARRAY(SELECT jsonb_array_elements_text(coalesce(x.processors, '[]'))) AS processors,
               x.retry_count
        FROM jsonb_to_recordset(p_outcomes) AS x(position bigint, event_id text, outcome text,
             run_at timestamptz, error_message text, processors jsonb, retry_count int)
        WHERE x.position IN (SELECT unnest(v_held))
    ), finished AS (
        DELETE FROM event.processing_queue q USING o
        WHERE q.position = o.position AND o.outcome <> 'retry'
        RETURNING 1
    ), rescheduled AS (
        UPDATE event.processing_queue q
        SET run_at = o.run_at, claim = NULL,
            attempts = q.attempts + (p_token IS NULL)::int -- a hold did not count its attempt
        FROM o WHERE q.position = o.position AND o.outcome = 'retry'
        RETURNING 1
    ), updated AS (
        -- Events being processed are pending; a retry keeps them pending.
        UPDATE event.events e
        SET status = CASE o.outcome WHEN 'retry' THEN 'pending' ELSE o.outcome END,
            processed_at = CASE WHEN o.outcome = 'processed' THEN now() ELSE e.processed_at END,
            processors = CASE WHEN o.outcome = 'processed' THEN o.processors ELSE e.processors END,
            error_message = CASE WHEN o.outcome = 'processed' THEN NULL ELSE o.error_message END,
            retry_count = coalesce(o.retry_count, e.retry_count),
            updated_at = now()
        FROM o
        WHERE e.event_id = o.event_id AND o.outcome <> 'gone' AND e.status = 'pending'
        RETURNING e.timestamp, e.event_source, e.event_category, e.event_type, e.status
    ), counted AS (
        -- Status counters (see event.event_counters): pending -> final status.
        INSERT INTO event.event_counters AS c
            (shard, day, event_source, event_category, event_type, status, n)
        SELECT pg_backend_pid(), d.day, d.event_source, d.event_category, d.event_type, d.status,
               sum(d.delta)
        FROM (SELECT (u.timestamp AT TIME ZONE 'UTC')::date AS day, u.event_source,
                     u.event_category, u.event_type, x.status, x.delta
              FROM updated u
              CROSS JOIN LATERAL (VALUES ('pending', -1), (u.status, 1)) x(status, delta)
              WHERE u.status <> 'pending') d
        GROUP BY 2, 3, 4, 5, 6
        ON CONFLICT (shard, day, event_source, event_category, event_type, status)
        DO UPDATE SET n = c.n + excluded.n
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM finished) + (SELECT count(*) FROM rescheduled)
           + (SELECT count(*) FROM updated) + (SELECT count(*) FROM counted)
    INTO v_count;

    -- Per event, in the order the processors ran ("ord": when each ended).
    INSERT INTO event.processing_results (event_id, processor_name, status, message, duration_ms)
    SELECT x.event_id, x.processor_name, x.status, x.message, x.duration_ms
    FROM jsonb_to_recordset(p_results) AS x(position bigint, event_id text,
         processor_name text, status text, message text, duration_ms int, ord int)
    WHERE x.position IN (SELECT unnest(v_held))
    ORDER BY x.position, x.ord;

    -- Projections: in position order, in this same transaction.
    FOR r IN SELECT x.projection, x.event_id
             FROM jsonb_to_recordset(p_results) AS x(position bigint, event_id text,
                  projection text, status text)
             WHERE x.position IN (SELECT unnest(v_held))
               AND x.projection IS NOT NULL AND x.status = 'success'
             ORDER BY x.position
    LOOP
        PERFORM event.apply_to_projection(r.projection, r.event_id);
    END LOOP;

    -- Processor counters; rows locked in one order so completions never deadlock.
    PERFORM 1 FROM event.event_processors p
    WHERE p.processor_id IN (SELECT x ->> 'processor_id' FROM jsonb_array_elements(p_results) x)
    ORDER BY p.processor_id FOR NO KEY UPDATE;
    UPDATE event.event_processors p
    SET error_count = p.error_count + s.errors,
        last_error = coalesce(s.last_error, p.last_error),
        last_processed_at = CASE WHEN s.ok > 0 THEN now() ELSE p.last_processed_at END,
        updated_at = now()
    FROM (SELECT x.processor_id,
                 count(*) FILTER (WHERE x.status IN ('failed', 'retry')) AS errors,
                 count(*) FILTER (WHERE x.status = 'success') AS ok,
                 (array_agg(x.message ORDER BY x.position DESC)
                     FILTER (WHERE x.status IN ('failed', 'retry')))[1] AS last_error
          FROM jsonb_to_recordset(p_results) AS x(position bigint, processor_id text,
               status text, message text)
          WHERE x.position IN (SELECT unnest(v_held))
          GROUP BY x.processor_id) s
    WHERE p.processor_id = s.processor_id;

    PERFORM event.fan_out(
        (SELECT jsonb_agg(d) FROM jsonb_array_elements(p_deliveries) d
         WHERE (d ->> 'position')::bigint IN (SELECT unnest(v_held))));

    RETURN QUERY SELECT unnest(v_held);
END $$;

