-- 002_ingest: the one write path for new events, and statistics.
--
-- event.ingest(requests) stores a group of independent create requests in the
-- caller's single transaction (group commit: one round trip, one fsync for
-- many HTTP requests). It never raises for a per-request problem: a request
-- whose stream version does not match, or that reuses an event_id for
-- different content, gets a 409 verdict and writes nothing, while the others
-- are stored. It raises only for what it cannot decide alone (a deadlock, or a
-- concurrent transaction creating the same new stream or event_id); the
-- caller then retries each request in a transaction of its own.
--
-- Input: [{"req": n, "check": bool, "events": [event, ...]}, ...]. Every event
-- carries every column (the caller fills defaults), plus "req" and "seq" (its
-- order in the group). "check" is true when a request has client-supplied
-- event_ids ("request_hash" set) or stream appends; other requests take the
-- set-based path with no per-event work.
--
-- Output rows: (req, code, detail, <event columns as text>...). A row with a
-- NULL event_id is a verdict (code 200: every event already existed; 409: see
-- detail); requests without a verdict row were created (201). Other rows are
-- the stored events of request req: code 1 when this call inserted the row,
-- 2 when it existed already (or an earlier request of this call inserted it).

CREATE FUNCTION event.ingest(p_reqs jsonb)
RETURNS TABLE (req int, code int, detail text,
               event_id text, event_type text, event_source text, event_category text,
               user_id text, session_id text, organization_id text, device_id text,
               correlation_id text, data text, metadata text, context text, properties text,
               status text, processed_at text, processors text, error_message text,
               retry_count text, "timestamp" text, created_at text, updated_at text,
               version text, schema_version text, stream_id text, stream_version text,
               "position" text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_req        jsonb;
    v_ev         jsonb;
    v_ri         int;
    v_ok         boolean;
    v_all_old    boolean;
    v_detail     text;
    v_id         text;
    v_hash       text;
    v_stored     text;
    v_found      boolean;
    v_stream     text;
    v_cur        int;
    v_streams    text[];
    v_heads0     jsonb := '{}';   -- stream_id -> version when locked
    v_heads      jsonb := '{}';   -- stream_id -> version after accepted requests
    v_local      jsonb;
    v_seen       jsonb := '{}';   -- event_id -> request_hash of events accepted in this call
    v_rseen      jsonb;           -- the same, with the request being checked
    v_new        jsonb[];
    v_acc        jsonb[] := '{}'; -- accepted new events of checked requests
    v_old_req    int[] := '{}';   -- (req, id): events that existed before this call
    v_old_id     text[] := '{}';
    v_dup_req    int[] := '{}';   -- (req, id): events accepted earlier in this call
    v_dup_id     text[] := '{}';
    v_tmp_old    text[];
    v_tmp_dup    text[];
    v_ver_req    int[] := '{}';
    v_ver_code   int[] := '{}';
    v_ver_detail text[] := '{}';
BEGIN
    -- Take an xid before any position is drawn from the sequence: readers of
    -- the global order rely on it (see event.position_horizon in 003).
    PERFORM pg_current_xact_id();

    -- Lock every existing stream head this group appends to, in one fixed
    -- order, so two groups never wait on each other in a cycle.
    SELECT array_agg(DISTINCT s.sid ORDER BY s.sid) INTO v_streams
    FROM jsonb_array_elements(p_reqs) r,
         LATERAL jsonb_array_elements(r -> 'events') e,
         LATERAL (SELECT e ->> 'stream_id') s(sid)
    WHERE (r ->> 'check')::boolean AND s.sid IS NOT NULL;
    IF v_streams IS NOT NULL THEN
        SELECT coalesce(jsonb_object_agg(h.stream_id, h.version), '{}') INTO v_heads0
        FROM (SELECT s.stream_id, s.version FROM event.event_streams s
              WHERE s.stream_id = ANY (v_streams) ORDER BY s.stream_id FOR NO KEY UPDATE) h;
        v_heads := v_heads0;
    END IF;

    FOR v_req IN SELECT r FROM jsonb_array_elements(p_reqs) r WHERE (r ->> 'check')::boolean
    LOOP
        v_ri := (v_req ->> 'req')::int;
        v_ok := true;
        v_all_old := true;
        v_detail := NULL;
        v_local := v_heads;
        v_new := '{}';
        v_tmp_old := '{}';
        v_tmp_dup := '{}';
        v_rseen := v_seen;
        FOR v_ev IN SELECT e FROM jsonb_array_elements(v_req -> 'events') e
        LOOP
            v_id := v_ev ->> 'event_id';
            v_hash := v_ev ->> 'request_hash';
            IF v_hash IS NOT NULL THEN
                IF v_rseen ? v_id THEN     -- earlier in this call, or in this request
                    IF (v_rseen ->> v_id) IS DISTINCT FROM v_hash THEN
                        v_ok := false;
                        v_detail := format('event_id: %s already exists with different content', v_id);
                        EXIT;
                    END IF;
                    v_tmp_dup := v_tmp_dup || v_id;
                    CONTINUE;
                END IF;
                SELECT e.request_hash, true INTO v_stored, v_found
                FROM event.events e WHERE e.event_id = v_id;
                IF v_found THEN
                    v_found := false;
                    IF v_stored IS DISTINCT FROM v_hash THEN
                        v_ok := false;
                        v_detail := format('event_id: %s already exists with different content', v_id);
                        EXIT;
                    END IF;
                    v_tmp_old := v_tmp_old || v_id;
                    v_rseen := v_rseen || jsonb_build_object(v_id, v_hash);
                    CONTINUE;
                END IF;
                v_rseen := v_rseen || jsonb_build_object(v_id, v_hash);
            END IF;
            v_all_old := false;
            v_stream := v_ev ->> 'stream_id';
            IF v_stream IS NOT NULL THEN
                v_cur := coalesce((v_local ->> v_stream)::int, 0);
                IF v_ev ? 'expected_version' AND (v_ev ->> 'expected_version')::int <> v_cur THEN
                    v_ok := false;
                    v_detail := format('expected_version: stream %s is at version %s, not %s',
                                       v_stream, v_cur, v_ev ->> 'expected_version');
                    EXIT;
                END IF;
                v_local := v_local || jsonb_build_object(v_stream, v_cur + 1);
                v_ev := v_ev || jsonb_build_object('stream_version', v_cur + 1);
            END IF;
            v_new := v_new || v_ev;
        END LOOP;

        IF v_ok THEN
            v_heads := v_local;
            v_acc := v_acc || v_new;
            SELECT v_seen || coalesce(jsonb_object_agg(x ->> 'event_id', x -> 'request_hash'), '{}')
            INTO v_seen FROM unnest(v_new) x;
            v_old_req := v_old_req || array_fill(v_ri, ARRAY[cardinality(v_tmp_old)]);
            v_old_id := v_old_id || v_tmp_old;
            v_dup_req := v_dup_req || array_fill(v_ri, ARRAY[cardinality(v_tmp_dup)]);
            v_dup_id := v_dup_id || v_tmp_dup;
            IF v_all_old THEN
                v_ver_req := v_ver_req || v_ri;
                v_ver_code := v_ver_code || 200;
                v_ver_detail := v_ver_detail || NULL::text;
            END IF;
        ELSE
            v_ver_req := v_ver_req || v_ri;
            v_ver_code := v_ver_code || 409;
            v_ver_detail := v_ver_detail || v_detail;
        END IF;
    END LOOP;

    -- Move the heads of the streams that grew. A stream created concurrently
    -- by another transaction makes the events insert below fail on
    -- events_stream_version_key, and the caller retries request by request.
    INSERT INTO event.event_streams AS s
        (stream_id, stream_type, entity_id, entity_type, version)
    SELECT h.key, split_part(h.key, ':', 1),
           CASE WHEN strpos(h.key, ':') > 0 THEN substr(h.key, strpos(h.key, ':') + 1) ELSE h.key END,
           split_part(h.key, ':', 1), h.value::int
    FROM jsonb_each_text(v_heads) h
    WHERE h.value::int > coalesce((v_heads0 ->> h.key)::int, 0)
    ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, updated_at = now();

    RETURN QUERY
    WITH src AS (
        SELECT x.*
        FROM jsonb_array_elements(p_reqs) r,
             LATERAL jsonb_to_recordset(r -> 'events') AS x(
                 req int, seq int, event_id text, event_type text, event_source text,
                 event_category text, user_id text, session_id text, organization_id text,
                 device_id text, correlation_id text, data jsonb, metadata jsonb, context jsonb,
                 properties jsonb, "timestamp" timestamptz, created_at timestamptz,
                 stream_id text, stream_version int, request_hash text)
        WHERE NOT (r ->> 'check')::boolean
        UNION ALL
        SELECT x.*
        FROM jsonb_to_recordset(to_jsonb(v_acc)) AS x(
                 req int, seq int, event_id text, event_type text, event_source text,
                 event_category text, user_id text, session_id text, organization_id text,
                 device_id text, correlation_id text, data jsonb, metadata jsonb, context jsonb,
                 properties jsonb, "timestamp" timestamptz, created_at timestamptz,
                 stream_id text, stream_version int, request_hash text)
    ), ins AS (
        INSERT INTO event.events AS t
            (event_id, event_type, event_source, event_category, user_id, session_id,
             organization_id, device_id, correlation_id, data, metadata, context, properties,
             timestamp, created_at, updated_at, stream_id, stream_version, request_hash)
        SELECT s.event_id, s.event_type, s.event_source, s.event_category, s.user_id,
               s.session_id, s.organization_id, s.device_id, s.correlation_id, s.data,
               s.metadata, s.context, s.properties, s.timestamp, s.created_at, s.created_at,
               s.stream_id, s.stream_version, s.request_hash
        FROM src s ORDER BY s.seq
        RETURNING t.*
    ), m AS (
        SELECT s.req, s.event_id, 1 AS code FROM src s
        UNION ALL
        SELECT d.req, d.id, 2 FROM unnest(v_dup_req, v_dup_id) d(req, id)
    )
    SELECT m.req, m.code, NULL::text,
           i.event_id::text, i.event_type::text, i.event_source::text, i.event_category::text,
           i.user_id::text, i.session_id::text, i.organization_id::text, i.device_id::text,
           i.correlation_id::text, i.data::text, i.metadata::text, i.context::text,
           i.properties::text, i.status::text, i.processed_at::text, to_json(i.processors)::text,
           i.error_message, i.retry_count::text, i.timestamp::text, i.created_at::text,
           i.updated_at::text, i.version::text, i.schema_version::text, i.stream_id::text,
           i.stream_version::text, i.position::text
    FROM ins i JOIN m ON m.event_id = i.event_id
    UNION ALL
    SELECT o.req, 2, NULL::text,
           e.event_id::text, e.event_type::text, e.event_source::text, e.event_category::text,
           e.user_id::text, e.session_id::text, e.organization_id::text, e.device_id::text,
           e.correlation_id::text, e.data::text, e.metadata::text, e.context::text,
           e.properties::text, e.status::text, e.processed_at::text, to_json(e.processors)::text,
           e.error_message, e.retry_count::text, e.timestamp::text, e.created_at::text,
           e.updated_at::text, e.version::text, e.schema_version::text, e.stream_id::text,
           e.stream_version::text, e.position::text
    FROM unnest(v_old_req, v_old_id) o(req, id) JOIN event.events e ON e.event_id = o.id
    UNION ALL
    SELECT v.req, v.code, v.detail,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM unnest(v_ver_req, v_ver_code, v_ver_detail) v(req, code, detail);
END $$;

-- The statistics document of GET /api/v1/events/statistics. Without a user it
-- reads only event_counters (a few rows per day and type); with one it counts
-- that user's events through idx_events_user_timestamp. Periods are UTC days,
-- as the seed's SQL: today = since 00:00 today, week = since 00:00 seven days
-- ago, month = since 00:00 thirty days ago.
CREATE FUNCTION event.statistics(p_user_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_today date := (now() AT TIME ZONE 'UTC')::date;
    v_doc jsonb;
BEGIN
    -- One pass over the source rows: the totals and the three breakdowns are
    -- grouping sets of the same aggregation.
    WITH c AS (
        SELECT k.day, k.event_source, k.event_category, k.event_type, k.status, k.n
        FROM event.event_counters k
        WHERE p_user_id IS NULL
        UNION ALL
        SELECT (e.timestamp AT TIME ZONE 'UTC')::date, e.event_source, e.event_category,
               e.event_type, e.status, 1
        FROM event.events e
        WHERE p_user_id IS NOT NULL AND e.user_id = p_user_id
    ), g AS (
        SELECT c.event_source, c.event_category, c.event_type,
               GROUPING(c.event_source, c.event_category, c.event_type) AS gs,
               coalesce(sum(c.n), 0) AS total,
               coalesce(sum(c.n) FILTER (WHERE c.status = 'pending'), 0) AS pending,
               coalesce(sum(c.n) FILTER (WHERE c.status = 'processed'), 0) AS processed,
               coalesce(sum(c.n) FILTER (WHERE c.status = 'failed'), 0) AS failed,
               coalesce(sum(c.n) FILTER (WHERE c.day >= v_today), 0) AS today,
               coalesce(sum(c.n) FILTER (WHERE c.day >= v_today - 7), 0) AS week,
               coalesce(sum(c.n) FILTER (WHERE c.day >= v_today - 30), 0) AS month
        FROM c
        GROUP BY GROUPING SETS ((), (c.event_source), (c.event_category), (c.event_type))
    )
    SELECT jsonb_build_object(
        'total_events', t.total,
        'pending_events', t.pending,
        'processed_events', t.processed,
        'failed_events', t.failed,
        'events_today', t.today,
        'events_this_week', t.week,
        'events_this_month', t.month,
        'processing_rate', CASE WHEN t.total > 0 THEN round(t.processed * 100.0 / t.total, 2) ELSE 0 END,
        'error_rate', CASE WHEN t.total > 0 THEN round(t.failed * 100.0 / t.total, 2) ELSE 0 END,
        'events_by_source', (SELECT coalesce(jsonb_object_agg(g.event_source, g.total), '{}')
                             FROM g WHERE g.gs = 3 AND g.total <> 0),
        'events_by_category', (SELECT coalesce(jsonb_object_agg(g.event_category, g.total), '{}')
                               FROM g WHERE g.gs = 5 AND g.total <> 0),
        'top_event_types', (SELECT coalesce(jsonb_agg(jsonb_build_object('event_type', x.event_type,
                                                                         'count', x.total)
                                                      ORDER BY x.total DESC, x.event_type), '[]')
                            FROM (SELECT g.event_type, g.total FROM g WHERE g.gs = 6 AND g.total <> 0
                                  ORDER BY g.total DESC, g.event_type LIMIT 10) x))
    INTO v_doc
    FROM g t WHERE t.gs = 7;
    RETURN v_doc;
END $$;
