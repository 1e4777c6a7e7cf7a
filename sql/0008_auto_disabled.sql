-- tailhook schema, version 8: an endpoint tailhook disabled itself (410 Gone,
-- failing for days) stays disabled across restarts until an operator
-- re-enables it or its configuration changes. Plain SQL, safe to re-run.

ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS auto_disabled boolean NOT NULL DEFAULT false;

-- Endpoints tailhook disabled before this column existed.
UPDATE tailhook.endpoints
   SET auto_disabled = true
 WHERE NOT enabled AND NOT auto_disabled
   AND (disabled_reason LIKE 'answered 410 Gone at %' OR disabled_reason LIKE 'failing since % without a success');

-- Re-enable an endpoint (whatever disabled it) and forget its failures.
CREATE OR REPLACE FUNCTION tailhook.enable_endpoint(endpoint_name text) RETURNS boolean
LANGUAGE sql AS $$
    WITH e AS (
        UPDATE tailhook.endpoints
           SET enabled = true, disabled_reason = NULL, auto_disabled = false, paused_until = NULL,
               consecutive_failures = 0, failing_since = NULL
         WHERE name = enable_endpoint.endpoint_name
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM e)
$$;
