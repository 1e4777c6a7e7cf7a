-- tailhook schema, version 3: per-key ordering for endpoints with ordered = true.
-- Plain SQL, safe to re-run.

-- The event's ordering_key, copied only for deliveries to ordered endpoints.
ALTER TABLE tailhook.deliveries ADD COLUMN IF NOT EXISTS ordering_key text;

-- The head of each key (its oldest unfinished delivery) in one index probe.
CREATE INDEX IF NOT EXISTS deliveries_ordered
    ON tailhook.deliveries (endpoint_id, ordering_key, outbox_id)
    WHERE status IN ('pending', 'retrying') AND ordering_key IS NOT NULL;
