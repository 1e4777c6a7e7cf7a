-- tailhook schema, version 4: what an endpoint row may hold, and why a row
-- tailhook cannot use is refused. Plain SQL, safe to re-run.
--
-- The same bounds are checked by tailhook itself (for the config file, and
-- for rows written before these constraints existed); keep the numbers in
-- step with src/rules.rs.

-- Set by tailhook when a row cannot be used (a malformed value written with
-- SQL); NULL when the row is fine. Its deliveries fail with this reason.
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS invalid_reason text;

-- `whsec_` followed by the padded base64 of 24 to 64 bytes (Standard
-- Webhooks), at most 10 secrets, one-dimensional, no NULL element.
CREATE OR REPLACE FUNCTION tailhook.secrets_valid(secrets text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_ndims(secrets), 1) = 1
       AND coalesce(cardinality(secrets), 0) <= 10
       AND NOT EXISTS (
           SELECT 1 FROM unnest(secrets) AS s
            WHERE s IS NULL
               OR s !~ '^whsec_[A-Za-z0-9+/]+={0,2}$'
               OR (length(s) - 6) % 4 <> 0
               -- decoded length: 3 bytes per 4 characters, less the padding
               OR (length(s) - 6) / 4 * 3 - (length(s) - length(rtrim(s, '='))) NOT BETWEEN 24 AND 64)
$$;

-- One-dimensional, 1 to 100 non-empty patterns.
CREATE OR REPLACE FUNCTION tailhook.event_types_valid(patterns text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_ndims(patterns) = 1
       AND cardinality(patterns) BETWEEN 1 AND 100
       AND NOT EXISTS (SELECT 1 FROM unnest(patterns) AS p WHERE p IS NULL OR p = '')
$$;

-- At most 32 headers, string values, each name and value at most 4 KiB,
-- all of them together at most 16 KiB.
CREATE OR REPLACE FUNCTION tailhook.headers_valid(headers jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_typeof(headers) = 'object'
       AND (SELECT count(*) <= 32
                   AND coalesce(bool_and(jsonb_typeof(h.value) = 'string'
                                         AND octet_length(h.key) <= 4096
                                         AND octet_length(h.value #>> '{}') <= 4096), true)
                   AND coalesce(sum(octet_length(h.key) + octet_length(h.value #>> '{}')), 0) <= 16384
              FROM jsonb_each(CASE WHEN jsonb_typeof(headers) = 'object' THEN headers ELSE '{}' END) AS h)
$$;

-- Constraints are added NOT VALID: they hold for every row written from now
-- on, and an existing row that breaks one is not refused by the migration
-- (tailhook marks it invalid instead, see invalid_reason).
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('endpoints_secrets_valid', 'CHECK (tailhook.secrets_valid(secrets))'),
        ('endpoints_event_types_valid', 'CHECK (tailhook.event_types_valid(event_types))'),
        ('endpoints_headers_valid', 'CHECK (tailhook.headers_valid(headers))'),
        ('endpoints_url_length', 'CHECK (length(url) <= 2048)'),
        ('endpoints_max_attempts_max', 'CHECK (max_attempts <= 1000)'),
        ('endpoints_timeout_ms_max', 'CHECK (timeout_ms <= 60000)'),
        ('endpoints_rate_limit_max', 'CHECK (rate_limit_per_sec <= 10000)'),
        ('endpoints_max_in_flight_max', 'CHECK (max_in_flight <= 1000)')
    ) AS v(name, def)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_constraint
                        WHERE conrelid = 'tailhook.endpoints'::regclass AND conname = c.name) THEN
            EXECUTE format('ALTER TABLE tailhook.endpoints ADD CONSTRAINT %I %s NOT VALID', c.name, c.def);
        END IF;
    END LOOP;
END
$$;

-- invalid_reason is tailhook's bookkeeping, like the breaker's columns:
-- writing it does not count as a configuration change.
CREATE OR REPLACE FUNCTION tailhook.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    health CONSTANT text[] := ARRAY['paused_until', 'consecutive_failures', 'failing_since', 'invalid_reason', 'updated_at'];
BEGIN
    IF to_jsonb(NEW) - health IS DISTINCT FROM to_jsonb(OLD) - health THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;
