-- tailhook schema, version 14: per-endpoint transforms. Plain SQL, safe to re-run.
--
-- `transform` is a script (Rhai) that sees the event as the variable `event`
-- ({id, type, timestamp, data, tenant}); its last expression is the JSON body
-- this endpoint receives. NULL: the envelope as is. tailhook compiles it when
-- it loads the row; one that does not compile makes the endpoint invalid
-- (see invalid_reason), and one that fails at run time fails only its own
-- delivery, with error_kind 'transform'.
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS transform text;

-- At most 64 KiB (src/pipeline/transform.rs checks the same). NOT VALID like
-- the bounds of version 4: an existing row is marked invalid, not refused.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = 'tailhook.endpoints'::regclass AND conname = 'endpoints_transform_length') THEN
        ALTER TABLE tailhook.endpoints
            ADD CONSTRAINT endpoints_transform_length CHECK (octet_length(transform) <= 65536) NOT VALID;
    END IF;
END
$$;

-- A failed transform is recorded as an attempt with error_kind 'transform'.
-- The constraint is replaced NOT VALID: existing rows all hold older kinds,
-- and no scan of the attempts table is needed.
ALTER TABLE tailhook.attempts DROP CONSTRAINT IF EXISTS attempts_error_kind_known;
ALTER TABLE tailhook.attempts ADD CONSTRAINT attempts_error_kind_known CHECK (error_kind IN (
    'timeout', 'connect', 'dns', 'tls', 'http_status', 'redirect',
    'blocked_address', 'invalid_request', 'payload_too_large', 'body_read', 'transform')) NOT VALID;
