-- Deliveries of an endpoint that no longer exists can never be sent (a
-- fan-out that still saw the endpoint inserted them after its delete's
-- cascade ran): cancelled with a reason. The endpoints that have unfinished
-- deliveries are found by a skip scan over deliveries_due, one index probe
-- each, so this stays cheap however large the backlog. Returns the number
-- cancelled.
WITH RECURSIVE waiting AS (
    (SELECT d.endpoint_id FROM tailhook.deliveries d
      WHERE d.status IN ('pending', 'retrying') ORDER BY d.endpoint_id LIMIT 1)
    UNION ALL
    SELECT (SELECT d.endpoint_id FROM tailhook.deliveries d
             WHERE d.status IN ('pending', 'retrying') AND d.endpoint_id > w.endpoint_id
             ORDER BY d.endpoint_id LIMIT 1)
      FROM waiting w
     WHERE w.endpoint_id IS NOT NULL
), gone AS (
    SELECT w.endpoint_id FROM waiting w
     WHERE w.endpoint_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM tailhook.endpoints e WHERE e.id = w.endpoint_id)
), cancelled AS (
    UPDATE tailhook.deliveries d
       SET status = 'cancelled', completed_at = now(), updated_at = now(),
           locked_until = NULL, locked_by = NULL, lease = NULL,
           last_error = 'cancelled: its endpoint no longer exists'
      FROM gone
     WHERE d.endpoint_id = gone.endpoint_id AND d.status IN ('pending', 'retrying')
    RETURNING 1
)
SELECT count(*) FROM cancelled
