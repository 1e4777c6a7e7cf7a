-- `tailhook demo`: every delivery's state, to show changes as they happen.
SELECT d.id, o.event_type, e.name, d.status, d.attempts, d.last_status_code, d.last_error,
       CASE WHEN d.status = 'retrying'
            THEN greatest(0, (extract(epoch FROM d.next_attempt_at - now()) * 1000::numeric)::bigint) END AS retry_in_ms
  FROM tailhook.deliveries d
  JOIN tailhook.endpoints e ON e.id = d.endpoint_id
  JOIN tailhook.outbox o ON o.id = d.outbox_id
 ORDER BY d.id
