-- 001_events: the event store, stream heads, the processing queue and the
-- statistics counters.
--
-- Where this departs from the seed's schema, and why:
--  * event.events keeps the seed's columns and adds stream_id/stream_version
--    (event sourcing, unique per stream: the final guard against two racing
--    appends), position (a global order for replay and the outbox) and
--    request_hash (fingerprint of a client-supplied event_id's content, so a
--    repeat is told apart from a different event reusing the id).
--  * Indexes: the seed had 18 (two GIN on JSONB); every index is paid on every
--    insert. We keep the ones an API query uses:
--      events_pkey (event_id)                GET /events/{id}, idempotency
--      events_position_key (position)        replay, outbox, stable keyset tie-break
--      events_stream_version_key             GET /stream/{id}, append guard
--      idx_events_timestamp                  /query newest first, time ranges
--      idx_events_user_timestamp             /query by user (the common case)
--      idx_events_type_timestamp             /query by event_type
--      idx_events_correlation_id             /query by correlation_id
--    No index mentions status, processed_at, processors, error_message,
--    retry_count or updated_at, and the table leaves 15% free per page, so
--    processing's status updates are HOT (no index writes).
--  * event_streams keeps one head row (version) per stream instead of a JSONB
--    array of every event; the events are in event.events by stream_version.
--    The seed's UNIQUE (entity_type, entity_id) is dropped: "a:b:c" and
--    "a:b" would collide once split, and stream_id is the key.
--  * The processing queue is its own small, hot table (one row per event still
--    to process), filled by a statement trigger in the same transaction that
--    stores the events, so no write path can forget it.
--  * Statistics come from event_counters (per day, source, category, type and
--    status), so /statistics never scans events. Inserts and deletes keep them
--    by statement triggers; a status change is counted by the statement that
--    makes it (event.complete_events, the admin retry), which knows the old
--    and new status without a transition table of whole rows.
--    Each connection writes its own shard (its backend pid): concurrent
--    writers never wait on each other's counter rows.

CREATE SCHEMA IF NOT EXISTS event;

CREATE SEQUENCE event.events_position_seq AS bigint;

CREATE TABLE event.events (
    event_id        varchar(255) PRIMARY KEY,
    event_type      varchar(255) NOT NULL CHECK (event_type <> ''),
    event_source    varchar(50)  NOT NULL CHECK (event_source IN
                        ('frontend', 'backend', 'system', 'iot_device', 'external_api', 'scheduled')),
    event_category  varchar(50)  NOT NULL CHECK (event_category IN
                        ('user_action', 'page_view', 'form_submit', 'click', 'user_lifecycle',
                         'payment', 'order', 'task', 'system', 'security', 'performance', 'error',
                         'device', 'device_status', 'telemetry', 'command', 'alert')),
    user_id         varchar(255),
    session_id      varchar(255),
    organization_id varchar(255),
    device_id       varchar(255),
    correlation_id  varchar(255),
    data            jsonb DEFAULT '{}',
    metadata        jsonb DEFAULT '{}',
    context         jsonb DEFAULT '{}',
    properties      jsonb DEFAULT '{}',
    status          varchar(20) NOT NULL DEFAULT 'pending' CHECK (status IN
                        ('pending', 'processing', 'processed', 'failed', 'archived')),
    processed_at    timestamptz,
    processors      text[],
    error_message   text,
    retry_count     integer DEFAULT 0,
    timestamp       timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         varchar(20) DEFAULT '1.0.0',
    schema_version  varchar(20) DEFAULT '1.0.0',
    stream_id       varchar(255),
    stream_version  integer CHECK (stream_version > 0),
    position        bigint NOT NULL DEFAULT nextval('event.events_position_seq'),
    request_hash    text,
    CHECK ((stream_id IS NULL) = (stream_version IS NULL))
) WITH (fillfactor = 85);

ALTER SEQUENCE event.events_position_seq OWNED BY event.events.position;

CREATE UNIQUE INDEX events_position_key ON event.events (position);
CREATE UNIQUE INDEX events_stream_version_key ON event.events (stream_id, stream_version)
    WHERE stream_id IS NOT NULL;
CREATE INDEX idx_events_timestamp ON event.events (timestamp DESC, position DESC);
CREATE INDEX idx_events_user_timestamp ON event.events (user_id, timestamp DESC, position DESC)
    WHERE user_id IS NOT NULL;
CREATE INDEX idx_events_type_timestamp ON event.events (event_type, timestamp DESC, position DESC);
CREATE INDEX idx_events_correlation_id ON event.events (correlation_id)
    WHERE correlation_id IS NOT NULL;

CREATE TABLE event.event_streams (
    stream_id   varchar(255) PRIMARY KEY,
    stream_type varchar(100) NOT NULL,
    entity_id   varchar(255) NOT NULL,
    entity_type varchar(100) NOT NULL,
    version     integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per stored event still to be processed. A processor worker claims
-- due rows (run_at <= now()) with FOR UPDATE SKIP LOCKED and pushes run_at
-- one lease ahead; a worker that dies simply lets the lease run out and the
-- row becomes due again. A row is deleted when its event reaches a final
-- status, so the table stays as small as the backlog. A failed attempt sets
-- run_at to the next retry time (backoff).
CREATE TABLE event.processing_queue (
    position bigint PRIMARY KEY,
    event_id varchar(255) NOT NULL,
    run_at   timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    claim    text,         -- token of the claim that holds the row
    rerun    boolean NOT NULL DEFAULT false, -- reprocessing: run even processors that succeeded
    resume   boolean NOT NULL DEFAULT false  -- admin retry: skip processors that succeeded
);
CREATE INDEX processing_queue_due ON event.processing_queue (run_at, position);
-- Small and churned (rows inserted, claimed, deleted): vacuumed early and
-- without throttling so claims do not walk dead index entries.
ALTER TABLE event.processing_queue SET (autovacuum_vacuum_scale_factor = 0,
                                        autovacuum_vacuum_threshold = 5000,
                                        autovacuum_vacuum_insert_threshold = 5000,
                                        autovacuum_vacuum_cost_delay = 0);

CREATE TABLE event.event_counters (
    shard          integer NOT NULL,      -- writer's backend pid; 0 = compacted
    day            date NOT NULL,         -- UTC day of the event's timestamp; -infinity = older history
    event_source   varchar(50) NOT NULL,
    event_category varchar(50) NOT NULL,
    event_type     varchar(255) NOT NULL,
    status         varchar(20) NOT NULL,
    n              bigint NOT NULL,
    PRIMARY KEY (shard, day, event_source, event_category, event_type, status)
);

CREATE FUNCTION event.events_counted_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event.processing_queue (position, event_id)
    SELECT n.position, n.event_id FROM new_rows n WHERE n.status = 'pending';

    INSERT INTO event.event_counters AS c
        (shard, day, event_source, event_category, event_type, status, n)
    SELECT pg_backend_pid(), (n.timestamp AT TIME ZONE 'UTC')::date, n.event_source,
           n.event_category, n.event_type, n.status, count(*)
    FROM new_rows n
    GROUP BY 2, 3, 4, 5, 6
    ON CONFLICT (shard, day, event_source, event_category, event_type, status)
    DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION event.events_counted_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event.event_counters AS c
        (shard, day, event_source, event_category, event_type, status, n)
    SELECT pg_backend_pid(), (o.timestamp AT TIME ZONE 'UTC')::date, o.event_source,
           o.event_category, o.event_type, o.status, -count(*)
    FROM old_rows o
    GROUP BY 2, 3, 4, 5, 6
    ON CONFLICT (shard, day, event_source, event_category, event_type, status)
    DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE TRIGGER events_counted_insert AFTER INSERT ON event.events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION event.events_counted_insert();
CREATE TRIGGER events_counted_delete AFTER DELETE ON event.events
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION event.events_counted_delete();

-- Folds counter rows into shard 0 so the table stays small: every row of a
-- connection that is gone, every row of a day before today (writers touch
-- those only for late events), and days older than the statistics window
-- into one "-infinity" row per type. Skips rows a live writer holds; safe to
-- run from any instance at any time.
CREATE FUNCTION event.compact_counters() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_moved bigint;
    v_horizon date := (now() AT TIME ZONE 'UTC')::date - 40;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('event.compact_counters')) THEN
        RETURN 0;
    END IF;
    WITH victims AS (
        SELECT c.ctid FROM event.event_counters c
        WHERE (c.shard <> 0
               AND (c.day < (now() AT TIME ZONE 'UTC')::date
                    OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = c.shard)))
           OR (c.shard = 0 AND c.day > '-infinity' AND c.day < v_horizon)
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        DELETE FROM event.event_counters c USING victims v WHERE c.ctid = v.ctid
        RETURNING c.*
    ), ins AS (
        INSERT INTO event.event_counters AS c
            (shard, day, event_source, event_category, event_type, status, n)
        SELECT 0, CASE WHEN m.day < v_horizon THEN '-infinity'::date ELSE m.day END,
               m.event_source, m.event_category, m.event_type, m.status, sum(m.n)
        FROM moved m
        GROUP BY 2, 3, 4, 5, 6
        ON CONFLICT (shard, day, event_source, event_category, event_type, status)
        DO UPDATE SET n = c.n + excluded.n
        RETURNING 1
    )
    SELECT count(*) INTO v_moved FROM moved;
    DELETE FROM event.event_counters WHERE shard = 0 AND n = 0;
    RETURN v_moved;
END $$;
