-- The API's pause (for $3 seconds) and resume ($3 NULL), as the console's
-- Pause: deliveries wait until paused_until.
-- $1 name, $2 the token's tenant (NULL: any), $3 seconds (NULL: resume)
UPDATE tailhook.endpoints e
   SET paused_until = now() + pg_catalog.make_interval(secs => $3::int::float8)
 WHERE e.name = $1::text AND ($2::text IS NULL OR e.tenant = $2::text)
RETURNING e.id
