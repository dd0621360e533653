-- pgbench: the raw drain of event.processing_queue, the ceiling for the
-- processor workers (bench/processing.sh). Each transaction claims up to
-- :claim due rows (oldest due first, then by position, as
-- event.claim_events orders them) with FOR UPDATE SKIP LOCKED, so
-- concurrent clients never wait on each other, and deletes them in the
-- same statement. Nothing else: no event is read, no status written, no
-- result recorded. Run with -M prepared -D claim=50.
DELETE FROM event.processing_queue
WHERE position IN (SELECT q.position FROM event.processing_queue q
                   WHERE q.run_at <= now()
                   ORDER BY q.run_at, q.position
                   LIMIT :claim
                   FOR UPDATE SKIP LOCKED);
