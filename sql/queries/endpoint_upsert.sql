-- Create or update an endpoint declared in the config file, by name.
-- $1 name, $2 url, $3 tenant, $4 event_types, $5 filter, $6 filter_path,
-- $7 secrets, $8 headers, $9 enabled, $10 max_attempts, $11 timeout_ms,
-- $12 rate_limit_per_sec, $13 max_in_flight, $14 ordered
INSERT INTO tailhook.endpoints AS e
       (name, url, tenant, event_types, filter, filter_path, secrets, headers, enabled,
        max_attempts, timeout_ms, rate_limit_per_sec, max_in_flight, ordered, managed_by)
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonpath, $7, $8::text::jsonb, $9,
        $10, $11, $12, $13, $14, 'config')
ON CONFLICT (name) DO UPDATE
   SET url = EXCLUDED.url, tenant = EXCLUDED.tenant, event_types = EXCLUDED.event_types,
       filter = EXCLUDED.filter, filter_path = EXCLUDED.filter_path, secrets = EXCLUDED.secrets,
       headers = EXCLUDED.headers, enabled = EXCLUDED.enabled,
       disabled_reason = CASE WHEN EXCLUDED.enabled THEN NULL ELSE e.disabled_reason END,
       max_attempts = EXCLUDED.max_attempts, timeout_ms = EXCLUDED.timeout_ms,
       rate_limit_per_sec = EXCLUDED.rate_limit_per_sec, max_in_flight = EXCLUDED.max_in_flight,
       ordered = EXCLUDED.ordered, managed_by = 'config'
