-- The console's endpoint page: what the API's endpoint (api_endpoints_list.sql)
-- does not say, as JSON: times in UTC as text, whether a pause is on now and
-- for how long, how long it has been failing, and which TLS columns, legacy
-- signature and transform are set (presence and kind only: no key, no
-- certificate, no secret, no script).
-- $1 name, $2 the scope's tenant (NULL: any)
SELECT pg_catalog.jsonb_build_object(
           'paused_until', CASE WHEN e.paused_until > now()
                                THEN to_char(e.paused_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END,
           'failing_since', to_char(e.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'),
           'failing_secs', floor(extract(epoch FROM now() - e.failing_since))::bigint,
           'tls_client_cert', e.tls_client_cert IS NOT NULL,
           'tls_ca_bundle', e.tls_ca_bundle IS NOT NULL,
           'legacy_header', e.legacy_signature ->> 'header',
           'legacy_algorithm', e.legacy_signature ->> 'algorithm',
           'transform_bytes', octet_length(e.transform),
           'propagate_trace', e.propagate_trace,
           'secrets_retire_at', to_char(r.retire_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'),
           'created_at', to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'),
           'updated_at', to_char(e.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'))::text
  FROM tailhook.endpoints e
  LEFT JOIN tailhook.secret_retirements r ON r.endpoint_id = e.id
 WHERE e.name = $1::text AND ($2::text IS NULL OR e.tenant = $2::text)
