-- 004_delivery: subscriptions and durable, signed webhook deliveries.
--
-- Departures from the seed, and why:
--  * event_subscriptions keeps the seed's columns; webhook_secret is never
--    returned by the API. Added: the previous secret and until when it still
--    signs (rotation without downtime), why the subscription was disabled,
--    since when its endpoint has been failing (auto-disable window), and
--    counters of delivered and dead deliveries kept by the statements that
--    change them (so the API never counts a subscription's whole history).
--  * deliveries: one row per (subscription, event), created in the
--    transaction that completes the event's processing, so no delivery is lost
--    between processing and fan-out. delivery_id is the webhook-id: it stays
--    the same across retries so receivers can deduplicate. Claimed with FOR
--    UPDATE SKIP LOCKED through a partial index on exactly the claim
--    condition (status pending or failed, due now).
--  * delivery_attempts: every attempt, with status code, latency, error and
--    the response truncated to a few KB.

CREATE TABLE event.event_subscriptions (
    subscription_id    varchar(255) PRIMARY KEY,
    subscriber_name    varchar(255) NOT NULL UNIQUE,
    subscriber_type    varchar(100) NOT NULL,
    event_types        text[],
    event_sources      text[],
    event_categories   text[],
    callback_url       text,
    webhook_secret     text,
    enabled            boolean DEFAULT true,
    retry_policy       jsonb DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    previous_secret    text,
    previous_secret_until timestamptz,
    disabled_reason    text,
    failing_since      timestamptz,
    last_success_at    timestamptz,
    delivered_count    bigint NOT NULL DEFAULT 0,
    dead_count         bigint NOT NULL DEFAULT 0
);

CREATE TABLE event.deliveries (
    delivery_id      varchar(64) PRIMARY KEY,
    subscription_id  varchar(255) NOT NULL
                     REFERENCES event.event_subscriptions ON DELETE CASCADE,
    event_id         varchar(255) NOT NULL,
    status           varchar(20) NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    manual           boolean NOT NULL DEFAULT false, -- a resend: one attempt, not rescheduled
    claim            text,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX deliveries_due ON event.deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_by_subscription ON event.deliveries (subscription_id, created_at DESC, delivery_id DESC);
CREATE INDEX deliveries_by_subscription_status ON event.deliveries (subscription_id, status);
-- Subscriptions are part of what processor workers cache (schema 003); not
-- their health and counters, which deliveries move.
CREATE TRIGGER subscriptions_added_or_removed AFTER INSERT OR DELETE ON event.event_subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION event.bump_routing_version();
CREATE TRIGGER subscriptions_changed AFTER UPDATE ON event.event_subscriptions
    FOR EACH ROW WHEN ((OLD.enabled, OLD.event_types, OLD.event_sources, OLD.event_categories)
                       IS DISTINCT FROM (NEW.enabled, NEW.event_types, NEW.event_sources,
                                         NEW.event_categories))
    EXECUTE FUNCTION event.bump_routing_version();

-- Every delivery is updated when claimed and when done: vacuum early and
-- without throttling, or the claim's index scan walks ever more dead entries.
ALTER TABLE event.deliveries SET (autovacuum_vacuum_scale_factor = 0.02,
                                  autovacuum_vacuum_threshold = 2000,
                                  autovacuum_vacuum_cost_delay = 0);
ALTER TABLE event.event_subscriptions SET (autovacuum_vacuum_scale_factor = 0,
                                           autovacuum_vacuum_threshold = 1000,
                                           autovacuum_vacuum_cost_delay = 0);

CREATE TABLE event.delivery_attempts (
    attempt_id   bigserial PRIMARY KEY,
    delivery_id  varchar(64) NOT NULL REFERENCES event.deliveries ON DELETE CASCADE,
    attempt      integer NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    status_code  integer,
    latency_ms   integer,
    error        text,
    response     text,
    trigger      varchar(20) NOT NULL DEFAULT 'scheduled'
);
CREATE INDEX idx_delivery_attempts_delivery ON event.delivery_attempts (delivery_id, attempt);

-- Creates the deliveries of processed events (p_deliveries: [{event_id,
-- subscription_id}]) for the subscriptions still enabled right now.
CREATE FUNCTION event.fan_out(p_deliveries jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    IF p_deliveries IS NULL THEN /* nothing matched */
        RETURN 0;
    END IF;
    WITH ins AS (
        INSERT INTO event.deliveries (delivery_id, subscription_id, event_id)
        SELECT 'dlv_' || replace(gen_random_uuid()::text, '-', ''), d.subscription_id, d.event_id
        FROM jsonb_to_recordset(p_deliveries) AS d(event_id text, subscription_id text)
        JOIN event.event_subscriptions s ON s.subscription_id = d.subscription_id AND s.enabled
        ON CONFLICT (subscription_id, event_id) DO NOTHING
        RETURNING 1
    ) SELECT count(*)::integer INTO v_n FROM ins;
    RETURN v_n;
END $$;

-- Claims up to p_limit due deliveries of enabled subscriptions, one lease
-- ahead; returns what the sender needs, the event rendered by the caller.
CREATE FUNCTION event.claim_deliveries(p_limit int, p_lease_seconds int, p_token text)
RETURNS TABLE (delivery_id text, attempts int, manual boolean, subscription_id text,
               callback_url text, webhook_secret text, previous_secret text,
               retry_policy text, event_id text, event_type text, event_source text,
               event_category text, user_id text, session_id text, organization_id text,
               device_id text, correlation_id text, data text, metadata text, context text,
               properties text, status text, processed_at text, processors text,
               error_message text, retry_count text, "timestamp" text, created_at text,
               updated_at text, version text, schema_version text, stream_id text,
               stream_version text, "position" text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    -- A claim need not wait for its commit to reach the disk: a claim lost in
    -- a crash leaves its rows unclaimed (claimed again, as when a lease runs
    -- out), and the completion's own commit flushes it anyway.
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY WITH c AS (
        SELECT d.delivery_id FROM event.deliveries d
        JOIN event.event_subscriptions s ON s.subscription_id = d.subscription_id AND s.enabled
        WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= now()
        ORDER BY d.next_attempt_at
        LIMIT p_limit
        FOR UPDATE OF d SKIP LOCKED
    ), u AS (
        UPDATE event.deliveries d
        SET next_attempt_at = now() + make_interval(secs => p_lease_seconds),
            attempts = d.attempts + 1, claim = p_token
        WHERE d.delivery_id = ANY (ARRAY(SELECT c.delivery_id FROM c))
        RETURNING d.delivery_id, d.attempts, d.manual, d.subscription_id, d.event_id
    )
    SELECT u.delivery_id::text, u.attempts, u.manual, u.subscription_id::text, s.callback_url,
           s.webhook_secret,
           CASE WHEN s.previous_secret_until > now() THEN s.previous_secret END,
           s.retry_policy::text,
           e.event_id::text, e.event_type::text, e.event_source::text, e.event_category::text,
           e.user_id::text, e.session_id::text, e.organization_id::text, e.device_id::text,
           e.correlation_id::text, e.data::text, e.metadata::text, e.context::text,
           e.properties::text, e.status::text, e.processed_at::text, to_json(e.processors)::text,
           e.error_message, e.retry_count::text, e.timestamp::text, e.created_at::text,
           e.updated_at::text, e.version::text, e.schema_version::text, e.stream_id::text,
           e.stream_version::text, e.position::text
    FROM u JOIN event.event_subscriptions s ON s.subscription_id = u.subscription_id
    LEFT JOIN event.events e ON e.event_id = u.event_id
    ORDER BY u.delivery_id;
END $$;

-- Records attempts of a claimed batch, for the deliveries this claim still
-- holds: p_outcomes [{delivery_id, subscription_id, outcome: delivered|retry|
-- dead|gone, next_attempt_at, status_code, latency_ms, error, response,
-- attempt, trigger, disable_reason}]. Updates the subscriptions' health:
-- last success, failing since, and disables one that answered 410 or kept
-- failing for longer than p_disable_after_seconds.
CREATE FUNCTION event.complete_deliveries(p_token text, p_outcomes jsonb,
                                          p_disable_after_seconds int)
RETURNS TABLE (done_delivery_id text)
LANGUAGE plpgsql AS $$
DECLARE
    v_held text[];
    v_count bigint;
BEGIN
    SELECT array_agg(h.delivery_id ORDER BY h.delivery_id) INTO v_held
    FROM (SELECT d.delivery_id FROM event.deliveries d
          WHERE d.delivery_id IN (SELECT o ->> 'delivery_id' FROM jsonb_array_elements(p_outcomes) o)
            AND d.claim = p_token
          ORDER BY d.delivery_id
          FOR NO KEY UPDATE OF d) h;
    IF v_held IS NULL THEN
        RETURN;
    END IF;

    WITH o AS (
        SELECT x.* FROM jsonb_to_recordset(p_outcomes) AS x(
            delivery_id text, subscription_id text, outcome text, next_attempt_at timestamptz,
            status_code int, latency_ms int, error text, response text, attempt int,
            trigger text, disable_reason text)
        WHERE x.delivery_id IN (SELECT unnest(v_held))
    ), att AS (
        INSERT INTO event.delivery_attempts
            (delivery_id, attempt, status_code, latency_ms, error, response, trigger)
        SELECT o.delivery_id, o.attempt, o.status_code, o.latency_ms, o.error, o.response,
               coalesce(o.trigger, 'scheduled')
        FROM o WHERE o.outcome <> 'gone'
        RETURNING 1
    ), upd AS (
        UPDATE event.deliveries d
        SET status = CASE o.outcome WHEN 'delivered' THEN 'delivered'
                                    WHEN 'retry' THEN 'failed' ELSE 'dead' END,
            next_attempt_at = coalesce(o.next_attempt_at, d.next_attempt_at),
            last_status_code = o.status_code,
            last_error = CASE WHEN o.outcome = 'delivered' THEN NULL ELSE o.error END,
            delivered_at = CASE WHEN o.outcome = 'delivered' THEN now() ELSE d.delivered_at END,
            manual = false, claim = NULL, updated_at = now()
        FROM o WHERE d.delivery_id = o.delivery_id
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM att) + (SELECT count(*) FROM upd) INTO v_count;

    -- Subscription health, rows locked in one order. NO KEY UPDATE: the
    -- foreign-key checks of deliveries being created (KEY SHARE, held by a
    -- fan-out until it commits) neither block it nor deadlock with it.
    PERFORM 1 FROM event.event_subscriptions s
    WHERE s.subscription_id IN (SELECT x ->> 'subscription_id' FROM jsonb_array_elements(p_outcomes) x)
    ORDER BY s.subscription_id FOR NO KEY UPDATE;
    UPDATE event.event_subscriptions s
    SET last_success_at = CASE WHEN h.ok THEN now() ELSE s.last_success_at END,
        delivered_count = s.delivered_count + h.delivered,
        dead_count = s.dead_count + h.dead,
        failing_since = CASE WHEN h.ok THEN NULL
                             ELSE coalesce(s.failing_since, now()) END,
        enabled = CASE WHEN h.gone_reason IS NOT NULL THEN false
                       WHEN NOT h.ok AND s.failing_since IS NOT NULL
                            AND s.failing_since < now() - make_interval(secs => p_disable_after_seconds)
                       THEN false
                       ELSE s.enabled END,
        disabled_reason = CASE
            WHEN h.gone_reason IS NOT NULL THEN h.gone_reason
            WHEN NOT h.ok AND s.failing_since IS NOT NULL
                 AND s.failing_since < now() - make_interval(secs => p_disable_after_seconds)
            THEN format('endpoint failing since %s', s.failing_since)
            ELSE s.disabled_reason END,
        updated_at = now()
    FROM (SELECT x.subscription_id,
                 bool_or(x.outcome = 'delivered') AS ok,
                 count(*) FILTER (WHERE x.outcome = 'delivered') AS delivered,
                 count(*) FILTER (WHERE x.outcome = 'dead') AS dead,
                 max(x.disable_reason) AS gone_reason
          FROM jsonb_to_recordset(p_outcomes) AS x(delivery_id text, subscription_id text,
               outcome text, disable_reason text)
          WHERE x.delivery_id IN (SELECT unnest(v_held)) AND x.outcome <> 'gone'
          GROUP BY x.subscription_id) h
    WHERE s.subscription_id = h.subscription_id;

    RETURN QUERY SELECT unnest(v_held);
END $$;

-- Queues a publication of the service (the seed's envelope) to be sent by the
-- processor workers' publisher: made in the caller's transaction, it survives
-- a NATS outage and a crash.
CREATE FUNCTION event.publish_later(p_subject text, p_msg_id text, p_data jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO event.outbox (subject, msg_id, payload)
    VALUES (p_subject, p_msg_id,
            jsonb_build_object(
                'id', gen_random_uuid()::text,
                'type', p_subject,
                'source', 'event_service',
                'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'data', p_data)::text)
$$;

-- Schedules one more attempt, now, of the given deliveries of a subscription
-- (p_ids), or of its dead deliveries created since p_since (recover). A
-- resend that fails is not rescheduled (it becomes dead again). Returns the
-- deliveries scheduled.
CREATE FUNCTION event.resend_deliveries(p_subscription_id text, p_ids text[],
                                        p_since timestamptz)
RETURNS SETOF event.deliveries
LANGUAGE sql AS $$
    WITH pick AS (
        SELECT d.delivery_id, d.status FROM event.deliveries d
        WHERE d.subscription_id = p_subscription_id
          AND ((p_ids IS NOT NULL AND d.delivery_id = ANY (p_ids))
               OR (p_ids IS NULL AND d.status = 'dead' AND d.created_at >= p_since))
        FOR UPDATE
    ), upd AS (
        UPDATE event.deliveries d
        SET status = 'pending', next_attempt_at = now(), manual = true, claim = NULL,
            updated_at = now()
        FROM pick WHERE d.delivery_id = pick.delivery_id
        RETURNING d.*
    ), undead AS (
        UPDATE event.event_subscriptions s
        SET dead_count = s.dead_count - (SELECT count(*) FROM pick WHERE pick.status = 'dead')
        WHERE s.subscription_id = p_subscription_id
          AND EXISTS (SELECT 1 FROM pick WHERE pick.status = 'dead')
        RETURNING 1
    )
    SELECT u.* FROM upd u
$$;
