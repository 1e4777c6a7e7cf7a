-- tailhook schema, version 29: who asked for a delivery to be sent again
-- (issue 25). Plain SQL, safe to re-run and to run while replicas work.
--
-- deliveries.redelivered_by, redelivered_at: the latest manual redelivery
-- (`tailhook redeliver`, the console's Redeliver, the API's redeliver,
-- tailhook.redeliver and tailhook.redeliver_failed) and who asked, as the
-- requester describes itself: `cli (user alice)`, `console (admin token)
-- from 10.0.0.5`, `api token #7`, `sql (role app)`; NULL: never
-- redelivered. At most 200 characters, never a secret.
-- attempts.requested_by: the delivery's redelivered_by when the attempt was
-- made, so the attempts a redelivery brings are marked with who asked; NULL
-- for attempts of a delivery never redelivered.
ALTER TABLE tailhook.deliveries ADD COLUMN IF NOT EXISTS redelivered_by text;
ALTER TABLE tailhook.deliveries ADD COLUMN IF NOT EXISTS redelivered_at timestamptz;
ALTER TABLE tailhook.attempts ADD COLUMN IF NOT EXISTS requested_by text;

-- The SQL functions record who asked too: the database role.
CREATE OR REPLACE FUNCTION tailhook.redeliver(delivery_id bigint) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH r AS (
        UPDATE tailhook.deliveries d
           SET status = CASE WHEN d.attempts = 0 THEN 'pending' ELSE 'retrying' END,
               next_attempt_at = now(), locked_until = NULL, locked_by = NULL, lease = NULL,
               completed_at = NULL, updated_at = now(),
               redelivered_by = left('sql (role ' || session_user || ')', 200), redelivered_at = now()
         WHERE d.id = redeliver.delivery_id
           AND (d.locked_until IS NULL OR d.locked_until < now())
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM r)
$$;

CREATE OR REPLACE FUNCTION tailhook.redeliver_failed(endpoint_name text, since timestamptz) RETURNS bigint
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH r AS (
        UPDATE tailhook.deliveries d
           SET status = 'retrying', next_attempt_at = now(), locked_until = NULL,
               locked_by = NULL, lease = NULL, completed_at = NULL, updated_at = now(),
               redelivered_by = left('sql (role ' || session_user || ')', 200), redelivered_at = now()
          FROM tailhook.endpoints e
         WHERE e.name = redeliver_failed.endpoint_name
           AND d.endpoint_id = e.id
           AND d.status = 'failed'
           AND d.completed_at >= redeliver_failed.since
        RETURNING 1
    )
    SELECT count(*) FROM r
$$;
