-- Create or update an endpoint declared in the config file, by name. One that
-- tailhook disabled itself (auto_disabled: 410 Gone, failing for days) stays
-- disabled, with its reason, while its configuration is unchanged: a restart
-- must not send to a gone endpoint again. Any change to it re-enables it.
-- $1 name, $2 url, $3 tenant, $4 event_types, $5 filter, $6 filter_path,
-- $7 secrets, $8 headers, $9 enabled, $10 max_attempts, $11 timeout_ms,
-- $12 rate_limit_per_sec, $13 max_in_flight, $14 ordered, $15 transform,
-- $16 legacy_signature (JSON text), $17 legacy_secret, $18 standard_signature,
-- $19 backoff_initial_ms, $20 backoff_max_ms, $21 tls_client_cert,
-- $22 tls_client_key (sealed when secrets.keys is set), $23 tls_ca_bundle,
-- $24 propagate_trace
INSERT INTO tailhook.endpoints AS e
       (name, url, tenant, event_types, filter, filter_path, secrets, headers, enabled,
        max_attempts, timeout_ms, rate_limit_per_sec, max_in_flight, ordered, transform,
        legacy_signature, legacy_secret, standard_signature, backoff_initial_ms, backoff_max_ms,
        tls_client_cert, tls_client_key, tls_ca_bundle, propagate_trace, managed_by)
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonpath, $7, $8::text::jsonb, $9,
        $10, $11, $12, $13, $14, $15, $16::text::jsonb, $17::text, $18::boolean, $19, $20,
        $21::text, $22::text, $23::text, $24::boolean, 'config')
ON CONFLICT (name) DO UPDATE
   SET url = EXCLUDED.url, tenant = EXCLUDED.tenant, event_types = EXCLUDED.event_types,
       filter = EXCLUDED.filter, filter_path = EXCLUDED.filter_path, secrets = EXCLUDED.secrets,
       headers = EXCLUDED.headers,
       max_attempts = EXCLUDED.max_attempts, timeout_ms = EXCLUDED.timeout_ms,
       rate_limit_per_sec = EXCLUDED.rate_limit_per_sec, max_in_flight = EXCLUDED.max_in_flight,
       ordered = EXCLUDED.ordered, transform = EXCLUDED.transform, managed_by = 'config',
       legacy_signature = EXCLUDED.legacy_signature, legacy_secret = EXCLUDED.legacy_secret,
       standard_signature = EXCLUDED.standard_signature,
       backoff_initial_ms = EXCLUDED.backoff_initial_ms, backoff_max_ms = EXCLUDED.backoff_max_ms,
       tls_client_cert = EXCLUDED.tls_client_cert, tls_client_key = EXCLUDED.tls_client_key,
       tls_ca_bundle = EXCLUDED.tls_ca_bundle, propagate_trace = EXCLUDED.propagate_trace,
       (enabled, auto_disabled, disabled_reason) = (
           SELECT EXCLUDED.enabled AND NOT k.keep, k.keep,
                  CASE WHEN EXCLUDED.enabled AND NOT k.keep THEN NULL ELSE e.disabled_reason END
             FROM (SELECT e.auto_disabled AND NOT e.enabled AND EXCLUDED.enabled
                          AND (e.url, e.tenant, e.event_types, e.filter, e.filter_path::text, e.secrets, e.headers,
                               e.max_attempts, e.timeout_ms, e.rate_limit_per_sec, e.max_in_flight, e.ordered, e.transform,
                               e.legacy_signature, e.legacy_secret, e.standard_signature,
                               e.backoff_initial_ms, e.backoff_max_ms,
                               e.tls_client_cert, e.tls_client_key, e.tls_ca_bundle, e.propagate_trace)
                              IS NOT DISTINCT FROM
                              (EXCLUDED.url, EXCLUDED.tenant, EXCLUDED.event_types, EXCLUDED.filter,
                               EXCLUDED.filter_path::text, EXCLUDED.secrets, EXCLUDED.headers,
                               EXCLUDED.max_attempts, EXCLUDED.timeout_ms, EXCLUDED.rate_limit_per_sec,
                               EXCLUDED.max_in_flight, EXCLUDED.ordered, EXCLUDED.transform,
                               EXCLUDED.legacy_signature, EXCLUDED.legacy_secret, EXCLUDED.standard_signature,
                               EXCLUDED.backoff_initial_ms, EXCLUDED.backoff_max_ms,
                               EXCLUDED.tls_client_cert, EXCLUDED.tls_client_key, EXCLUDED.tls_ca_bundle,
                               EXCLUDED.propagate_trace)
                              AS keep) k)
