-- This replica is alive. A gap longer than $2 ms since its last heartbeat
-- starts a new unbroken run (alive_since). Rows of replicas silent for ten
-- minutes are removed (their leases expired long ago).
-- $1 replica id, $2 replica timeout ms
WITH pruned AS (
    DELETE FROM tailhook.replicas
     WHERE heartbeat_at < now() - interval '10 minutes' AND name <> $1::text
)
INSERT INTO tailhook.replicas AS r (name) VALUES ($1::text)
ON CONFLICT (name) DO UPDATE
   SET heartbeat_at = now(),
       alive_since = CASE WHEN r.heartbeat_at < now() - $2::int::float8 * interval '1 millisecond'
                          THEN now() ELSE r.alive_since END
