-- The API's update: the fields given replace the row's, the others stay
-- (jsonb_populate_record over the row itself). The endpoints_validate
-- trigger checks the result.
-- $1 name, $2 the token's tenant (NULL: any), $3 the fields (JSON text)
UPDATE tailhook.endpoints e
   SET (url, tenant, event_types, filter, filter_path, headers, enabled, max_attempts, timeout_ms,
        rate_limit_per_sec, max_in_flight, ordered, transform, standard_signature,
        backoff_initial_ms, backoff_max_ms, legacy_signature, legacy_secret) =
       (SELECT r.url, r.tenant, r.event_types, r.filter, r.filter_path, r.headers, r.enabled, r.max_attempts,
               r.timeout_ms, r.rate_limit_per_sec, r.max_in_flight, r.ordered, r.transform, r.standard_signature,
               r.backoff_initial_ms, r.backoff_max_ms, r.legacy_signature, r.legacy_secret
          FROM pg_catalog.jsonb_populate_record(e, $3::text::jsonb) AS r),
       updated_at = now()
 WHERE e.name = $1::text AND ($2::text IS NULL OR e.tenant = $2::text)
RETURNING e.id
