-- The API's create: the fields given as a JSON object, the rest their
-- defaults; one secret, generated. The endpoints_validate trigger checks
-- the row (the same rules as every other writer).
-- $1 the fields (JSON text), $2 the secret
INSERT INTO tailhook.endpoints
       (name, url, tenant, event_types, filter, filter_path, secrets, headers, enabled,
        max_attempts, timeout_ms, rate_limit_per_sec, max_in_flight, ordered, transform,
        standard_signature, backoff_initial_ms, backoff_max_ms, legacy_signature, legacy_secret, managed_by)
SELECT r.name, r.url, r.tenant, coalesce(r.event_types, '{*}'), r.filter, r.filter_path,
       ARRAY[$2::text], coalesce(r.headers, '{}'), coalesce(r.enabled, true),
       r.max_attempts, r.timeout_ms, r.rate_limit_per_sec, r.max_in_flight, coalesce(r.ordered, false),
       r.transform, coalesce(r.standard_signature, true), r.backoff_initial_ms, r.backoff_max_ms,
       r.legacy_signature, r.legacy_secret, 'sql'
  FROM pg_catalog.jsonb_populate_record(NULL::tailhook.endpoints, $1::text::jsonb) AS r
RETURNING id
