-- 003_processing: processors, their results, projections, and the functions
-- processor workers claim and complete work with.
--
-- Departures from the seed, and why:
--  * processing_results.result_id is bigserial (a busy hub passes 2^31 runs),
--    and results are indexed by event_id: a retried event skips the
--    processors that already succeeded for it.
--  * event_projections gains nothing but an index-backed unique key; its
--    version equals the stream_version of the last event applied, so an
--    event is applied at most once even when a projection was first built
--    from the stream on read.
--  * outbox_state holds the checkpoint of the event.stored publisher, which
--    walks event.events by position over a committed prefix only.

CREATE TABLE event.event_processors (
    processor_id      varchar(255) PRIMARY KEY,
    processor_name    varchar(255) NOT NULL UNIQUE,
    processor_type    varchar(100) NOT NULL,
    enabled           boolean DEFAULT true,
    priority          integer DEFAULT 0,
    filters           jsonb DEFAULT '{}',
    config            jsonb DEFAULT '{}',
    error_count       integer DEFAULT 0,
    last_error        text,
    last_processed_at timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- What processor workers cache (the enabled processors and subscriptions,
-- their filters and settings) changed when this moved. Transactional, so a
-- worker that reads a version and then loads has at least that version's data.
CREATE TABLE event.routing_version (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version  bigint NOT NULL
);
INSERT INTO event.routing_version (version) VALUES (1);

CREATE FUNCTION event.bump_routing_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE event.routing_version SET version = version + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER processors_added_or_removed AFTER INSERT OR DELETE ON event.event_processors
    FOR EACH STATEMENT EXECUTE FUNCTION event.bump_routing_version();
-- Not for the counters that every completed batch moves.
CREATE TRIGGER processors_changed AFTER UPDATE ON event.event_processors
    FOR EACH ROW WHEN ((OLD.processor_name, OLD.processor_type, OLD.enabled, OLD.priority,
                        OLD.filters, OLD.config)
                       IS DISTINCT FROM (NEW.processor_name, NEW.processor_type, NEW.enabled,
                                         NEW.priority, NEW.filters, NEW.config))
    EXECUTE FUNCTION event.bump_routing_version();

CREATE TABLE event.processing_results (
    result_id      bigserial PRIMARY KEY,
    event_id       varchar(255) NOT NULL,
    processor_name varchar(255) NOT NULL,
    status         varchar(20) NOT NULL CHECK (status IN ('success', 'failed', 'skipped', 'retry')),
    message        text,
    processed_at   timestamptz NOT NULL DEFAULT now(),
    duration_ms    integer
);
CREATE INDEX idx_processing_results_event ON event.processing_results (event_id);

CREATE TABLE event.event_projections (
    projection_id   varchar(255) PRIMARY KEY,
    projection_name varchar(255) NOT NULL,
    entity_id       varchar(255) NOT NULL,
    entity_type     varchar(100) NOT NULL,
    state           jsonb DEFAULT '{}',
    version         integer DEFAULT 0,
    last_event_id   varchar(255),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (entity_type, entity_id, projection_name)
);

CREATE TABLE event.outbox_state (
    name       text PRIMARY KEY,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Events stored before this migration are not announced again.
INSERT INTO event.outbox_state (name, position)
SELECT 'event.stored', coalesce(max(position), 0) FROM event.events;

-- Publications that could not reach NATS when they were made (processing
-- outcomes while NATS was down); the processor workers publish and delete them.
CREATE TABLE event.outbox (
    id         bigserial PRIMARY KEY,
    subject    text NOT NULL,
    msg_id     text NOT NULL,
    payload    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Claims up to p_limit due events (oldest due first, then by position), pushes
-- them one lease ahead and returns them in position order with the attempt
-- number and, on a retry or after an admin retry (resume), the processors that
-- already succeeded for the event (JSON array); a first attempt skips that
-- lookup.
-- A queue row whose event is gone comes back with a NULL event_id.
-- PL/pgSQL rather than SQL on the hot paths: PostgreSQL plans the body of a SQL
-- function that it cannot inline at every call, PL/pgSQL keeps its plans.
CREATE FUNCTION event.claim_events(p_limit int, p_lease_seconds int, p_token text)
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
    -- out), and the completion's own commit flushes it anyway.
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY WITH c AS (
        SELECT q.position FROM event.processing_queue q
        WHERE q.run_at <= now()
        ORDER BY q.run_at, q.position
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), u AS (
        UPDATE event.processing_queue q
        SET run_at = now() + make_interval(secs => p_lease_seconds),
            attempts = q.attempts + 1,
            claim = p_token
        WHERE q.position = ANY (ARRAY(SELECT c.position FROM c)) -- index probes, never a scan
        RETURNING q.position, q.event_id, q.attempts, q.rerun, q.resume
    )
    SELECT u.position, u.attempts,
           CASE WHEN (u.attempts > 1 OR u.resume) AND NOT u.rerun THEN
               (SELECT to_json(array_agg(DISTINCT r.processor_name))::text
                FROM event.processing_results r
                WHERE r.event_id = u.event_id AND r.status = 'success')
           END,
           (SELECT v.version FROM event.routing_version v),
           e.event_id::text, e.event_type::text, e.event_source::text, e.event_category::text,
           e.user_id::text, e.session_id::text, e.organization_id::text, e.device_id::text,
           e.correlation_id::text, e.data::text, e.metadata::text, e.context::text,
           e.properties::text, e.status::text, e.processed_at::text, to_json(e.processors)::text,
           e.error_message, e.retry_count::text, e.timestamp::text, e.created_at::text,
           e.updated_at::text, e.version::text, e.schema_version::text, e.stream_id::text,
           e.stream_version::text, e.position::text
    FROM u LEFT JOIN event.events e ON e.event_id = u.event_id
    ORDER BY u.position;
END $$;

-- Extends the lease of every row a claim still holds (long batches).
CREATE FUNCTION event.renew_claim(p_token text, p_lease_seconds int) RETURNS integer
LANGUAGE sql AS $$
    WITH r AS (
        UPDATE event.processing_queue SET run_at = now() + make_interval(secs => p_lease_seconds)
        WHERE claim = p_token RETURNING 1
    ) SELECT count(*)::integer FROM r
$$;

-- The state of a stream up to a version: state[event_type] = data of the
-- latest event of each type, version = the last stream_version, last_event_id
-- = the last event (NULL version when the stream has none).
CREATE FUNCTION event.fold_stream(p_stream text, p_upto int, OUT state jsonb,
                                  OUT version int, OUT last_event_id text)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(x.event_type, x.data), '{}'), max(x.stream_version),
           (array_agg(x.event_id ORDER BY x.stream_version DESC))[1]
    FROM (SELECT DISTINCT ON (e.event_type) e.event_type, coalesce(e.data, '{}') AS data,
                 e.stream_version, e.event_id
          FROM event.events e
          WHERE e.stream_id = p_stream AND (p_upto IS NULL OR e.stream_version <= p_upto)
          ORDER BY e.event_type, e.stream_version DESC) x
$$;

-- Applies an event to a projection (state[event_type] = data), at most once:
-- only an event newer than the projection's version moves it, and the
-- projection never skips a stream version (events processed out of order, or a
-- first event on a stream with history, fold in what lies before them).
CREATE FUNCTION event.apply_to_projection(p_name text, p_event_id text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    e event.events;
    p event.event_projections;
    f record;
    v_type text;
    v_id text;
    v_pid text;
BEGIN
    SELECT * INTO e FROM event.events WHERE event_id = p_event_id;
    IF NOT FOUND OR e.stream_id IS NULL OR e.stream_version IS NULL THEN
        RETURN false;
    END IF;
    v_type := split_part(e.stream_id, ':', 1);
    v_id := CASE WHEN strpos(e.stream_id, ':') > 0
                 THEN substr(e.stream_id, strpos(e.stream_id, ':') + 1) ELSE e.stream_id END;
    SELECT * INTO p FROM event.event_projections x
    WHERE x.entity_type = v_type AND x.entity_id = v_id AND x.projection_name = p_name
    FOR NO KEY UPDATE;
    IF FOUND THEN
        IF p.version >= e.stream_version THEN
            RETURN false;               -- already reflects this event
        END IF;
        IF p.version = e.stream_version - 1 THEN
            UPDATE event.event_projections
            SET state = p.state || jsonb_build_object(e.event_type, coalesce(e.data, '{}')),
                version = e.stream_version, last_event_id = e.event_id, updated_at = now()
            WHERE projection_id = p.projection_id;
        ELSE                            -- events in between not applied yet: fold them in
            SELECT * INTO f FROM event.fold_stream(e.stream_id, e.stream_version);
            UPDATE event.event_projections
            SET state = f.state, version = f.version, last_event_id = f.last_event_id,
                updated_at = now()
            WHERE projection_id = p.projection_id;
        END IF;
        RETURN true;
    END IF;
    -- First event seen for this entity: build from the stream's history.
    SELECT * INTO f FROM event.fold_stream(e.stream_id, e.stream_version);
    INSERT INTO event.event_projections
        (projection_id, projection_name, entity_id, entity_type, state, version, last_event_id)
    VALUES (gen_random_uuid()::text, p_name, v_id, v_type, f.state, f.version, f.last_event_id)
    ON CONFLICT (entity_type, entity_id, projection_name) DO NOTHING
    RETURNING projection_id INTO v_pid;
    IF v_pid IS NULL THEN               -- created meanwhile: apply to that one
        RETURN event.apply_to_projection(p_name, p_event_id);
    END IF;
    -- publish_later is defined in schema/004 (resolved when called).
    PERFORM event.publish_later('event.projection.created', 'projection.created:' || v_pid,
        jsonb_build_object('projection_id', v_pid, 'projection_name', p_name,
                           'entity_type', v_type, 'entity_id', v_id, 'version', f.version));
    RETURN true;
END $$;

-- Records the outcome of a claimed batch in one transaction, for the rows the
-- claim still holds (a claim whose lease ran out and was taken over by another
-- worker records nothing, so no run is recorded twice), and creates the
-- webhook deliveries of the events now processed in that same transaction
-- (event.fan_out, schema/004; resolved when called):
--   p_outcomes: [{position, event_id, outcome: processed|retry|failed|gone,
--                 run_at, error_message, processors: [names], retry_count}]
--   p_results:  [{position, event_id, processor_id, processor_name, status,
--                 message, duration_ms, ord, projection}]  (ord: the run order;
--                 projection: the projection to apply the event to)
--   p_deliveries: [{position, event_id, subscription_id}] for processed events
-- Returns the positions that were held and recorded.
CREATE FUNCTION event.complete_events(p_token text, p_outcomes jsonb, p_results jsonb,
                                      p_deliveries jsonb)
RETURNS TABLE (done_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_held bigint[];
    v_count bigint;
    r record;
BEGIN
    SELECT array_agg(h.position ORDER BY h.position) INTO v_held
    FROM (SELECT q.position FROM event.processing_queue q
          WHERE q.position IN (SELECT (o ->> 'position')::bigint
                               FROM jsonb_array_elements(p_outcomes) o)
            AND q.claim = p_token
          ORDER BY q.position
          FOR UPDATE OF q) h;
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
        UPDATE event.processing_queue q SET run_at = o.run_at, claim = NULL
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

-- Where the event.stored publisher may read up to. Writers take an xid before
-- drawing positions (event.ingest), so every transaction that drew a position
-- <= the sequence value read by position_mark() was already running, or done,
-- when the snapshot taken by the next statement was; once none of that
-- snapshot's running transactions is still in progress, every position <= the
-- mark is final (committed or never to appear).
CREATE FUNCTION event.position_mark() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(pg_sequence_last_value('event.events_position_seq'::regclass), 0)
$$;

CREATE FUNCTION event.snapshot_settled(p_snapshot text) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT NOT EXISTS (
        SELECT 1 FROM pg_snapshot_xip(p_snapshot::pg_snapshot) x
        WHERE pg_xact_status(x) = 'in progress')
$$;

-- Puts failed events back to pending and into the processing queue (the admin
-- retry); returns them as they are now. Counts the status change.
CREATE FUNCTION event.requeue_failed(p_event_ids text[]) RETURNS SETOF event.events
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH upd AS (
        UPDATE event.events e
        SET status = 'pending', error_message = NULL, updated_at = now()
        WHERE e.event_id = ANY (p_event_ids) AND e.status = 'failed'
        RETURNING e.*
    ), queued AS (
        INSERT INTO event.processing_queue (position, event_id, resume)
        SELECT u.position, u.event_id, true FROM upd u
        ON CONFLICT (position) DO UPDATE
            SET run_at = now(), attempts = 0, claim = NULL, resume = true
        RETURNING 1
    ), counted AS (
        INSERT INTO event.event_counters AS c
            (shard, day, event_source, event_category, event_type, status, n)
        SELECT pg_backend_pid(), (u.timestamp AT TIME ZONE 'UTC')::date, u.event_source,
               u.event_category, u.event_type, x.status, sum(x.delta)
        FROM upd u CROSS JOIN LATERAL (VALUES ('failed', -1), ('pending', 1)) x(status, delta)
        GROUP BY 2, 3, 4, 5, 6
        ON CONFLICT (shard, day, event_source, event_category, event_type, status)
        DO UPDATE SET n = c.n + excluded.n
        RETURNING 1
    )
    SELECT u.* FROM upd u
    WHERE (SELECT count(*) FROM queued) >= 0 AND (SELECT count(*) FROM counted) >= 0;
END $$;
