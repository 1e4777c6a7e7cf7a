-- tailhook schema, version 7: finished deliveries by endpoint and completion
-- time, so `tailhook status` counts an endpoint's recent outcomes with an
-- index-only range scan instead of reading every delivery it ever had.
-- Partial, one per outcome: a delivery gets one entry, when it finishes
-- (unfinished rows, the hot ones, have none), and the status is in the
-- predicate rather than the key, which keeps entries small (about 30 bytes).
CREATE INDEX IF NOT EXISTS deliveries_succeeded
    ON tailhook.deliveries (endpoint_id, completed_at)
    WHERE status = 'succeeded';
CREATE INDEX IF NOT EXISTS deliveries_failed
    ON tailhook.deliveries (endpoint_id, completed_at)
    WHERE status = 'failed';
