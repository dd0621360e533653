-- pgbench: one event per transaction, the row POST /api/v1/events/create
-- stores for bench/create_event.lua's body (same columns, value shapes and
-- payload sizes; context and properties take their '{}' defaults, as the
-- service writes them). The statement trigger fills event.processing_queue
-- and event.event_counters, as for the service. Run with -M prepared.
-- The id is a random UUID (version 4), not a time-ordered one (version 7)
-- as the service makes: with 64 clients each inserting one row per
-- transaction, version-7 ids all land on the rightmost leaf of the
-- event_id index, and pgbench ran about 15 % slower with them (mean of 4
-- interleaved 10 s runs: 8,280 tps with version 4, 7,070 with version 7).
-- The baseline takes the faster kind. The batch and COPY references take
-- version 7, which is faster for them.
\set t random(1, 5)
\set u random(0, 49999)
\set s random(0, 19999)
\set a random(0, 999)
\set k random(0, 299)
\set ip random(0, 249)
INSERT INTO event.events (event_id, event_type, event_source, event_category, user_id,
                          session_id, data, metadata, timestamp, created_at, updated_at)
VALUES (gen_random_uuid()::text,
        (ARRAY['user.login', 'user.logout', 'order.created', 'payment.succeeded', 'page.viewed'])[:t::int],
        'backend', 'user_action', 'user_' || :u::int, 'sess_' || :s::int,
        jsonb_build_object('amount', :a::int, 'currency', 'EUR',
                           'items', jsonb_build_array(jsonb_build_object('sku', 'sku-' || :k::int, 'qty', 2)),
                           'note', 'benchmark event'),
        jsonb_build_object('ip_address', '10.0.0.' || :ip::int, 'user_agent', 'bench/1.0'),
        now(), now(), now());
