-- pgbench: the SQL GET /api/v1/events/statistics sends (api-worker/stats.c).
SELECT event.statistics(NULL)::text;
