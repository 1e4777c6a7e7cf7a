-- The API's delivery (to one of the token's tenant's endpoints), as JSON,
-- without its attempts (console_attempts.sql reads those).
-- $1 delivery id, $2 the token's tenant (NULL: any)
SELECT pg_catalog.jsonb_build_object(
           'id', d.id, 'event_id', o.event_id, 'event_type', o.event_type, 'tenant', o.tenant,
           'endpoint', e.name, 'status', d.status, 'attempts', d.attempts,
           'in_flight', coalesce(d.locked_until > now(), false),
           'next_attempt_at', CASE WHEN d.status IN ('pending', 'retrying') THEN d.next_attempt_at END,
           'last_status_code', d.last_status_code, 'last_error', d.last_error,
           'created_at', d.created_at, 'completed_at', d.completed_at)::text
  FROM tailhook.deliveries d
  JOIN tailhook.outbox o ON o.id = d.outbox_id
  JOIN tailhook.endpoints e ON e.id = d.endpoint_id
 WHERE d.id = $1::bigint AND ($2::text IS NULL OR e.tenant = $2::text)
