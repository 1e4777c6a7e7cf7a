-- What the sender needs to know about each endpoint.
SELECT id, name, url, secrets, headers::text AS headers, enabled, timeout_ms, max_attempts,
       max_in_flight, rate_limit_per_sec, ordered
  FROM tailhook.endpoints
