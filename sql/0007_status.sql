-- tailhook schema, version 7: finished deliveries by endpoint and completion
-- time, so `tailhook status` counts an endpoint's recent outcomes with an
-- index-only range scan instead of reading every delivery it ever had.
-- Partial, one per outcome (deliveries_succeeded, deliveries_failed): a
-- delivery gets one entry, when it finishes (unfinished rows, the hot ones,
-- have none), and the status is in the predicate rather than the key, which
-- keeps entries small (about 30 bytes). Both are built without blocking
-- writes by 0010_concurrent_indexes.sql; this version only reserves the number.
SELECT 1;
