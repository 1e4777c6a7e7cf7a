-- every attempt, with its event and endpoint
SELECT o.event_id::text AS event_id, o.event_type, e.name AS endpoint, d.status,
       a.attempt, a.status_code, a.error_kind, a.duration_ms
  FROM tailhook.attempts a
  JOIN tailhook.deliveries d ON d.id = a.delivery_id
  JOIN tailhook.endpoints e ON e.id = d.endpoint_id
  JOIN tailhook.outbox o ON o.id = d.outbox_id
 ORDER BY o.id, e.name, a.attempt
