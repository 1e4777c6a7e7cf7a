-- The console's Pause: deliveries to the endpoint wait until then (the
-- circuit breaker's `paused_until`); when it passes one probe goes, and a
-- success resumes the endpoint. Re-enabling clears it at once.
-- $1 endpoint name, $2 seconds; returns the new paused_until (UTC), no row for an unknown name
UPDATE tailhook.endpoints
   SET paused_until = now() + pg_catalog.make_interval(secs => $2::int::float8)
 WHERE name = $1::text
RETURNING to_char(paused_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
