-- pgbench: 100 events per transaction (one multi-row INSERT), the rows
-- POST /api/v1/events/batch stores for bench/batch_events.lua's body (ids:
-- time-ordered UUIDs, as the service's; see create_event.sql).
INSERT INTO event.events (event_id, event_type, event_source, event_category, user_id,
                          session_id, data, metadata, timestamp, created_at, updated_at)
SELECT public.bench_uuid_v7(),
       (ARRAY['user.login', 'user.logout', 'order.created', 'payment.succeeded', 'page.viewed'])[1 + floor(random() * 5)::int],
       'backend', 'user_action', 'user_' || floor(random() * 50000)::int,
       'sess_' || floor(random() * 20000)::int,
       jsonb_build_object('amount', floor(random() * 1000)::int, 'currency', 'EUR',
                          'items', jsonb_build_array(jsonb_build_object('sku', 'sku-' || floor(random() * 300)::int, 'qty', 2)),
                          'note', 'benchmark event'),
       jsonb_build_object('ip_address', '10.0.0.' || floor(random() * 250)::int, 'user_agent', 'bench/1.0'),
       now(), now(), now()
FROM generate_series(1, 100);
