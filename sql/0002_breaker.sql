-- tailhook schema, version 2: circuit-breaker state per endpoint.
-- Plain SQL, safe to re-run.

-- Failures since the endpoint's last success (retryable ones only), and when
-- the first of them happened. The breaker is open while both pass their
-- thresholds; paused_until then says until when nothing is sent.
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS consecutive_failures int NOT NULL DEFAULT 0;
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS failing_since timestamptz;

-- updated_at (which running replicas watch to reload endpoints) moves only
-- when configuration changes, not on every health update.
CREATE OR REPLACE FUNCTION tailhook.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    health CONSTANT text[] := ARRAY['paused_until', 'consecutive_failures', 'failing_since', 'updated_at'];
BEGIN
    IF to_jsonb(NEW) - health IS DISTINCT FROM to_jsonb(OLD) - health THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;
