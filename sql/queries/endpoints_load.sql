-- What the sender needs to know about each endpoint. Rows people write may
-- hold shapes tailhook cannot use; each column is decoded on its own, so one
-- bad value makes only its own endpoint invalid.
SELECT id, name, enabled, invalid_reason, url, secrets, headers::text AS headers, timeout_ms,
       max_attempts, max_in_flight, rate_limit_per_sec, backoff_initial_ms, backoff_max_ms, ordered, event_types, transform,
       filter::text AS filter, filter_path::text AS filter_path,
       legacy_signature::text AS legacy_signature, legacy_secret, standard_signature,
       tls_client_cert, tls_client_key, tls_ca_bundle, propagate_trace
  FROM tailhook.endpoints
