-- Bulk history for the query benchmarks: :n events (psql variable) over the
-- last 60 days, in one INSERT ... SELECT (run it several times for more).
--  * users: 'user_0' .. 'user_<:users - 1>', skewed like real traffic (user k
--    has a share proportional to about 1/sqrt(k): user_0 a few thousand
--    events, the median user a dozen);
--  * 20 event types with their category and source, the common ones first
--    (page views and clicks dominate, alerts are rare);
--  * status: 99 % processed, 1 % failed (with an error message), as a
--    history processed long ago would be;
--  * created_at a few seconds after the event's timestamp.
-- The statement trigger keeps event.event_counters right (no pending rows, so
-- nothing joins event.processing_queue).
INSERT INTO event.events (event_id, event_type, event_source, event_category, user_id,
                          session_id, device_id, data, metadata, status, processed_at,
                          error_message, timestamp, created_at, updated_at)
SELECT gen_random_uuid()::text,
       (ARRAY['page.viewed', 'button.clicked', 'user.login', 'api.request', 'cart.updated',
              'order.created', 'form.submitted', 'payment.succeeded', 'sensor.reading',
              'device.heartbeat', 'user.logout', 'order.shipped', 'task.completed',
              'report.generated', 'user.signup', 'payment.failed', 'error.raised',
              'security.login_failed', 'device.command', 'alert.raised'])[x.k],
       (ARRAY['frontend', 'frontend', 'backend', 'external_api', 'frontend', 'backend',
              'frontend', 'backend', 'iot_device', 'iot_device', 'backend', 'backend',
              'system', 'scheduled', 'backend', 'backend', 'system', 'backend', 'iot_device',
              'system'])[x.k],
       (ARRAY['page_view', 'click', 'user_lifecycle', 'performance', 'user_action', 'order',
              'form_submit', 'payment', 'telemetry', 'device_status', 'user_lifecycle', 'order',
              'task', 'system', 'user_lifecycle', 'payment', 'error', 'security', 'command',
              'alert'])[x.k],
       'user_' || x.u,
       'sess_' || (x.u * 7 + floor(x.ts_epoch / 1800)::bigint % 7),
       CASE WHEN x.k IN (9, 10, 19) THEN 'dev_' || (x.u % 5000) END,
       jsonb_build_object('amount', floor(random() * 1000)::int, 'currency', 'EUR',
                          'items', jsonb_build_array(jsonb_build_object('sku', 'sku-' || floor(random() * 300)::int, 'qty', 1 + floor(random() * 3)::int)),
                          'page', '/products/' || floor(random() * 2000)::int),
       jsonb_build_object('ip_address', '10.' || floor(random() * 250)::int || '.' || floor(random() * 250)::int || '.' || floor(random() * 250)::int,
                          'user_agent', 'Mozilla/5.0 (X11; Linux x86_64) bench/1.0'),
       CASE WHEN x.failed THEN 'failed' ELSE 'processed' END,
       x.ts + interval '2 seconds',
       CASE WHEN x.failed THEN 'webhook: HTTP 500 from subscriber' END,
       x.ts, x.ts + interval '1 second', x.ts + interval '2 seconds'
FROM (SELECT least(:users - 1, floor(:users * r.ru * r.ru))::int AS u,
             least(20, 1 + floor(20 * power(r.rk, 2.2)))::int AS k,
             r.ts, extract(epoch FROM r.ts) AS ts_epoch,
             random() < 0.01 AS failed
      FROM (SELECT random() AS ru, random() AS rk,
                   now() - random() * interval '60 days' AS ts
            FROM generate_series(1, :n)) r) x;
