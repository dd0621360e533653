-- pgbench: one event per transaction, the row POST /api/v1/events/create
-- stores for bench/create_event.lua's body (same columns, value shapes and
-- payload sizes; context and properties take their '{}' defaults, as the
-- service writes them). The statement trigger fills event.processing_queue
-- and event.event_counters, as for the service. The id is a time-ordered
-- UUID (version 7) like the service's, from public.bench_uuid_v7(), which
-- bench/ingest.sh creates. Run with -M prepared.
\set t random(1, 5)
\set u random(0, 49999)
\set s random(0, 19999)
\set a random(0, 999)
\set k random(0, 299)
\set ip random(0, 249)
INSERT INTO event.events (event_id, event_type, event_source, event_category, user_id,
                          session_id, data, metadata, timestamp, created_at, updated_at)
VALUES (public.bench_uuid_v7(),
        (ARRAY['user.login', 'user.logout', 'order.created', 'payment.succeeded', 'page.viewed'])[:t::int],
        'backend', 'user_action', 'user_' || :u::int, 'sess_' || :s::int,
        jsonb_build_object('amount', :a::int, 'currency', 'EUR',
                           'items', jsonb_build_array(jsonb_build_object('sku', 'sku-' || :k::int, 'qty', 2)),
                           'note', 'benchmark event'),
        jsonb_build_object('ip_address', '10.0.0.' || :ip::int, 'user_agent', 'bench/1.0'),
        now(), now(), now());
