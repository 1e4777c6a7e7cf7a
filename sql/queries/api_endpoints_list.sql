-- The API's endpoint list, by name, keyset-paged (names after $2), as
-- JSON: what endpoint_config shows (URL as scheme, host and port; header
-- names, no values; the number of secrets) and the endpoint's own settings.
-- $1 the token's tenant (NULL: any), $2 names after this ('' from the
-- first), $3 rows at most, $4 tenant filter, $5 enabled filter,
-- $6 only endpoints taking this event type, $7 one endpoint by name
SELECT (pg_catalog.to_jsonb(c) - 'id' - 'filter_path'
        || pg_catalog.jsonb_build_object(
               'filter_path', c.filter_path::text,
               'standard_signature', e.standard_signature,
               'legacy_signature', e.legacy_signature,
               'backoff_initial_ms', e.backoff_initial_ms,
               'backoff_max_ms', e.backoff_max_ms,
               'auto_disabled', e.auto_disabled,
               'consecutive_failures', e.consecutive_failures,
               'secrets_retire_at', r.retire_at))::text,
       e.name
  FROM tailhook.endpoints e
  JOIN tailhook.endpoint_config c ON c.id = e.id
  LEFT JOIN tailhook.secret_retirements r ON r.endpoint_id = e.id
 WHERE ($1::text IS NULL OR e.tenant = $1::text)
   AND e.name > $2::text
   AND ($4::text IS NULL OR e.tenant = $4::text)
   AND ($5::boolean IS NULL OR e.enabled = $5::boolean)
   AND ($6::text IS NULL OR tailhook.event_type_matches(e.event_types, $6::text))
   AND ($7::text IS NULL OR e.name = $7::text)
 ORDER BY e.name
 LIMIT $3::bigint
