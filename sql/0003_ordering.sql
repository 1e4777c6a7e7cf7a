-- tailhook schema, version 3: per-key ordering for endpoints with ordered = true.
-- Plain SQL, safe to re-run.

-- The event's ordering_key, copied only for deliveries to ordered endpoints.
ALTER TABLE tailhook.deliveries ADD COLUMN IF NOT EXISTS ordering_key text;

-- The head of each key (its oldest unfinished delivery) is found with the
-- index deliveries_ordered, built without blocking writes by 0010_concurrent_indexes.sql.

-- Redelivery never touches a delivery that is being sent right now, and
-- clears the claim token along with the lease.
CREATE OR REPLACE FUNCTION tailhook.redeliver(delivery_id bigint) RETURNS boolean
LANGUAGE sql AS $$
    WITH r AS (
        UPDATE tailhook.deliveries d
           SET status = CASE WHEN d.attempts = 0 THEN 'pending' ELSE 'retrying' END,
               next_attempt_at = now(), locked_until = NULL, locked_by = NULL, lease = NULL,
               completed_at = NULL, updated_at = now()
         WHERE d.id = redeliver.delivery_id
           AND (d.locked_until IS NULL OR d.locked_until < now())
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM r)
$$;

CREATE OR REPLACE FUNCTION tailhook.redeliver_failed(endpoint_name text, since timestamptz)
RETURNS bigint
LANGUAGE sql AS $$
    WITH r AS (
        UPDATE tailhook.deliveries d
           SET status = 'retrying', next_attempt_at = now(), locked_until = NULL,
               locked_by = NULL, lease = NULL, completed_at = NULL, updated_at = now()
          FROM tailhook.endpoints e
         WHERE e.name = redeliver_failed.endpoint_name
           AND d.endpoint_id = e.id
           AND d.status = 'failed'
           AND d.completed_at >= redeliver_failed.since
        RETURNING 1
    )
    SELECT count(*) FROM r
$$;
