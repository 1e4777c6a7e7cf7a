-- Lease a batch of due deliveries (first attempts whose replica died, and retries)
-- whose endpoint is enabled and not paused. Expired leases are due again.
-- $1 max rows, $2 replica id, $3 default timeout ms, $4 lease margin ms
WITH due AS (
    SELECT d.id
      FROM tailhook.deliveries d
      JOIN tailhook.endpoints e ON e.id = d.endpoint_id
     WHERE d.status IN ('pending', 'retrying')
       AND d.next_attempt_at <= now()
       AND (d.locked_until IS NULL OR d.locked_until < now())
       AND e.enabled
       AND (e.paused_until IS NULL OR e.paused_until <= now())
     ORDER BY d.next_attempt_at
     LIMIT $1
       FOR NO KEY UPDATE OF d SKIP LOCKED
), leased AS (
    UPDATE tailhook.deliveries d
       SET locked_until = now() + make_interval(secs => (coalesce(e.timeout_ms, $3::int) + $4::int) / 1000.0),
           locked_by = $2::text,
           updated_at = now()
      FROM due, tailhook.endpoints e
     WHERE d.id = due.id AND e.id = d.endpoint_id
    RETURNING d.id, d.endpoint_id, d.attempts, d.outbox_id
)
SELECT l.id AS delivery_id,
       l.endpoint_id,
       l.attempts,
       o.id AS outbox_id,
       o.event_id::text AS event_id,
       o.event_type,
       to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
       o.payload::text AS payload
  FROM leased l
  JOIN tailhook.outbox o ON o.id = l.outbox_id
 ORDER BY l.outbox_id, l.endpoint_id
