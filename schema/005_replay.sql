-- 005_replay: replay jobs, schedules, and projections built from streams.
--
-- The seed replayed inline in the request (and in fact did nothing). Here a
-- replay is a row that replay workers claim with FOR UPDATE SKIP LOCKED under
-- a lease, and work through in pages from a checkpoint: a replay of millions
-- of events keeps bounded memory, and after a crash it resumes from the last
-- page recorded (each page's effect and its checkpoint move in one
-- transaction, or, for NATS, are deduplicated by message id).
--  * upper_position bounds a replay to what had committed when it started
--    (taken over a settled snapshot, see event.position_mark), so it never
--    steps past an event a still-open transaction may add below it.
--  * (schedule_name, fire_time) is unique: a scheduled run fires once per due
--    time across every instance.

CREATE TABLE event.replay_jobs (
    replay_id       varchar(64) PRIMARY KEY,
    status          varchar(20) NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    mode            varchar(20) NOT NULL CHECK (mode IN ('republish', 'reprocess', 'redeliver')),
    target_service  varchar(255),
    subscription_id varchar(255),
    selector        jsonb NOT NULL,    -- event_ids | stream_id | start_time/end_time + filters
    total           bigint,
    replayed        bigint NOT NULL DEFAULT 0,
    failed          bigint NOT NULL DEFAULT 0,
    checkpoint      bigint NOT NULL DEFAULT 0, -- last position (or stream_version) done
    upper_position  bigint,
    run_at          timestamptz NOT NULL DEFAULT now(), -- claimable from (lease)
    claim           text,
    error           text,
    schedule_name   text,
    fire_time       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    UNIQUE (schedule_name, fire_time)
);
CREATE INDEX replay_jobs_due ON event.replay_jobs (run_at) WHERE status IN ('pending', 'running');
CREATE INDEX replay_jobs_recent ON event.replay_jobs (created_at DESC);

-- The last due time each schedule was considered up to (any instance).
CREATE TABLE event.replay_schedules (
    name       text PRIMARY KEY,
    last_fire  timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Builds (or rebuilds) a projection from its stream: state[event_type] = data
-- for each event in stream order, version = the last stream_version,
-- last_event_id = the last event. Returns the projection; NULL fields when the
-- stream has no event. p_rebuild replaces an existing projection; otherwise an
-- existing one is returned as it is (and created = false).
CREATE FUNCTION event.build_projection(p_entity_type text, p_entity_id text, p_name text,
                                       p_rebuild boolean, OUT created boolean,
                                       OUT projection event.event_projections)
LANGUAGE plpgsql AS $$
DECLARE
    v_stream text := p_entity_type || ':' || p_entity_id;
    v_state jsonb;
    v_version int;
    v_last text;
    v_id text;
BEGIN
    created := false;
    SELECT * INTO projection FROM event.event_projections p
    WHERE p.entity_type = p_entity_type AND p.entity_id = p_entity_id
      AND p.projection_name = p_name;
    IF FOUND AND NOT p_rebuild THEN
        RETURN;
    END IF;
    SELECT f.state, f.version, f.last_event_id INTO v_state, v_version, v_last
    FROM event.fold_stream(v_stream, NULL) f;
    IF v_version IS NULL THEN
        projection := NULL;
        RETURN;
    END IF;
    INSERT INTO event.event_projections AS p
        (projection_id, projection_name, entity_id, entity_type, state, version, last_event_id)
    VALUES (gen_random_uuid()::text, p_name, p_entity_id, p_entity_type, v_state, v_version, v_last)
    ON CONFLICT (entity_type, entity_id, projection_name) DO UPDATE
        SET state = excluded.state, version = excluded.version,
            last_event_id = excluded.last_event_id, updated_at = now()
        WHERE p_rebuild
    RETURNING p.projection_id, (p.xmax = 0) INTO v_id, created;
    IF FOUND THEN
        SELECT * INTO projection FROM event.event_projections p WHERE p.projection_id = v_id;
    ELSE /* created meanwhile by the projection processor */
        SELECT * INTO projection FROM event.event_projections p
        WHERE p.entity_type = p_entity_type AND p.entity_id = p_entity_id
          AND p.projection_name = p_name;
        created := false;
        RETURN;
    END IF;
    IF created THEN
        PERFORM event.publish_later('event.projection.created',
            'projection.created:' || (projection).projection_id,
            jsonb_build_object('projection_id', (projection).projection_id,
                               'projection_name', p_name, 'entity_type', p_entity_type,
                               'entity_id', p_entity_id, 'version', v_version));
    END IF;
END $$;

-- Claims the oldest due replay job under a lease (a running job whose worker
-- died is due again once its lease ran out). The first claim marks it running
-- and queues event.replay.started.
CREATE FUNCTION event.claim_replay(p_token text, p_lease_seconds int)
RETURNS SETOF event.replay_jobs
LANGUAGE plpgsql AS $$
DECLARE
    j event.replay_jobs;
BEGIN
    SELECT * INTO j FROM event.replay_jobs r
    WHERE r.status IN ('pending', 'running') AND r.run_at <= now()
    ORDER BY r.created_at LIMIT 1
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF j.status = 'pending' THEN
        PERFORM event.publish_later('event.replay.started', 'replay.started:' || j.replay_id,
            jsonb_build_object('replay_id', j.replay_id, 'mode', j.mode,
                               'target_service', j.target_service, 'selector', j.selector,
                               'schedule', j.schedule_name));
    END IF;
    UPDATE event.replay_jobs r
    SET status = 'running', claim = p_token,
        run_at = now() + make_interval(secs => p_lease_seconds),
        started_at = coalesce(r.started_at, now())
    WHERE r.replay_id = j.replay_id
    RETURNING * INTO j;
    RETURN NEXT j;
END $$;

-- Ends a job this claim holds: completed (queues event.replay.completed) or
-- failed with a reason.
CREATE FUNCTION event.finish_replay(p_replay_id text, p_token text, p_status text, p_error text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    j event.replay_jobs;
BEGIN
    UPDATE event.replay_jobs r
    SET status = p_status, error = p_error, finished_at = now(), claim = NULL
    WHERE r.replay_id = p_replay_id AND r.claim = p_token AND r.status = 'running'
    RETURNING * INTO j;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM event.publish_later('event.replay.completed', 'replay.completed:' || j.replay_id,
        jsonb_build_object('replay_id', j.replay_id, 'status', j.status, 'mode', j.mode,
                           'target_service', j.target_service, 'total', j.total,
                           'replayed', j.replayed, 'failed', j.failed, 'error', j.error));
    RETURN true;
END $$;

-- Reprocessing: puts events back to pending and into the processing queue
-- marked rerun (every matching processor runs again). Counts the status change.
CREATE FUNCTION event.requeue_events(p_positions bigint[]) RETURNS integer
LANGUAGE sql AS $$
    WITH old AS (
        SELECT e.position, e.event_id, e.status, e.timestamp, e.event_source,
               e.event_category, e.event_type
        FROM event.events e WHERE e.position = ANY (p_positions)
        FOR UPDATE
    ), upd AS (
        UPDATE event.events e SET status = 'pending', updated_at = now()
        FROM old WHERE e.position = old.position AND old.status <> 'pending'
        RETURNING 1
    ), counted AS (
        INSERT INTO event.event_counters AS c
            (shard, day, event_source, event_category, event_type, status, n)
        SELECT pg_backend_pid(), (o.timestamp AT TIME ZONE 'UTC')::date, o.event_source,
               o.event_category, o.event_type, x.status, sum(x.delta)
        FROM old o CROSS JOIN LATERAL (VALUES (o.status, -1), ('pending', 1)) x(status, delta)
        WHERE o.status <> 'pending'
        GROUP BY 2, 3, 4, 5, 6
        ON CONFLICT (shard, day, event_source, event_category, event_type, status)
        DO UPDATE SET n = c.n + excluded.n
        RETURNING 1
    ), queued AS (
        INSERT INTO event.processing_queue (position, event_id, rerun)
        SELECT o.position, o.event_id, true FROM old o
        ON CONFLICT (position) DO UPDATE
            SET run_at = now(), attempts = 0, claim = NULL, rerun = true
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM queued)::integer
           + 0 * ((SELECT count(*) FROM upd) + (SELECT count(*) FROM counted))::integer
$$;

-- Redelivery of events to one subscription: a new delivery, or one more
-- attempt of the existing one (same webhook-id). Returns how many.
CREATE FUNCTION event.redeliver_events(p_subscription_id text, p_event_ids text[])
RETURNS integer
LANGUAGE sql AS $$
    WITH prior AS (
        SELECT d.delivery_id, d.status FROM event.deliveries d
        WHERE d.subscription_id = p_subscription_id AND d.event_id = ANY (p_event_ids)
        FOR UPDATE
    ), ins AS (
        INSERT INTO event.deliveries AS d (delivery_id, subscription_id, event_id, manual)
        SELECT 'dlv_' || replace(gen_random_uuid()::text, '-', ''), p_subscription_id, x.id, true
        FROM unnest(p_event_ids) x(id)
        ON CONFLICT (subscription_id, event_id) DO UPDATE
            SET status = 'pending', next_attempt_at = now(), manual = true, claim = NULL,
                updated_at = now()
        RETURNING 1
    ), undead AS (
        UPDATE event.event_subscriptions s
        SET dead_count = s.dead_count - (SELECT count(*) FROM prior WHERE prior.status = 'dead')
        WHERE s.subscription_id = p_subscription_id
          AND EXISTS (SELECT 1 FROM prior WHERE prior.status = 'dead')
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM ins)::integer + 0 * (SELECT count(*) FROM undead)::integer
$$;

-- The events a replay selector names, after p_after and up to p_upper (global
-- positions; stream versions for a stream selector), in replay order, at most
-- p_limit. Selectors: {"event_ids": [...]}, {"stream_id": "..."}, or
-- {"start_time", "end_time", "filters": {user_id, event_type, event_source,
-- event_category, status}}. Used by the replay workers page by page and by
-- the API's dry run.
CREATE FUNCTION event.replay_select(p_selector jsonb, p_after bigint, p_upper bigint,
                                    p_limit int)
RETURNS SETOF event.events
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_sql text;
    v_f jsonb := coalesce(p_selector -> 'filters', '{}');
    v_key text;
BEGIN
    IF p_selector ? 'event_ids' THEN
        RETURN QUERY
        SELECT e.* FROM event.events e
        WHERE e.event_id = ANY (ARRAY(SELECT jsonb_array_elements_text(p_selector -> 'event_ids')))
          AND e.position > p_after AND e.position <= p_upper
        ORDER BY e.position LIMIT p_limit;
    ELSIF p_selector ? 'stream_id' THEN
        RETURN QUERY
        SELECT e.* FROM event.events e
        WHERE e.stream_id = p_selector ->> 'stream_id'
          AND e.stream_version > p_after AND e.stream_version <= p_upper
        ORDER BY e.stream_version LIMIT p_limit;
    ELSE
        -- Only the filters present become conditions (a plan per shape).
        v_sql := 'SELECT e.* FROM event.events e WHERE e.timestamp >= ($1 ->> ''start_time'')::timestamptz'
                 ' AND e.timestamp <= ($1 ->> ''end_time'')::timestamptz'
                 ' AND e.position > $2 AND e.position <= $3';
        FOREACH v_key IN ARRAY ARRAY['user_id', 'event_type', 'event_source', 'event_category', 'status']
        LOOP
            IF v_f ? v_key THEN
                v_sql := v_sql || format(' AND e.%I = $1 -> ''filters'' ->> %L', v_key, v_key);
            END IF;
        END LOOP;
        v_sql := v_sql || ' ORDER BY e.position LIMIT $4';
        RETURN QUERY EXECUTE v_sql USING p_selector, p_after, p_upper, p_limit;
    END IF;
END $$;
