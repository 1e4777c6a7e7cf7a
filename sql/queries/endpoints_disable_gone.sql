-- An endpoint that answered 410 Gone is disabled; its deliveries stay
-- pending/retrying and are sent if it is re-enabled. Rows locked by someone
-- else are skipped, never waited for; they come back (still enabled) so the
-- caller tries them with its next batch.
-- $1 endpoint ids
WITH locked AS (
    SELECT e.id FROM tailhook.endpoints e
     WHERE e.id = ANY ($1::bigint[]) AND e.enabled
       FOR NO KEY UPDATE SKIP LOCKED
), disabled AS (
    UPDATE tailhook.endpoints e
       SET enabled = false, auto_disabled = true,
           disabled_reason = 'answered 410 Gone at ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
      FROM locked l
     WHERE e.id = l.id
    RETURNING e.id, e.disabled_reason
), emitted AS (
    -- tailhook.endpoint.disabled (sql/0013_operational_events.sql), written
    -- only if some other endpoint subscribes to it.
    SELECT tailhook.emit_endpoint_event('tailhook.endpoint.disabled', d.id,
               jsonb_build_object('reason', d.disabled_reason, 'cause', 'gone')) AS written
      FROM disabled d
)
SELECT e.id FROM tailhook.endpoints e
 WHERE e.id = ANY ($1::bigint[]) AND e.enabled AND e.id NOT IN (SELECT id FROM locked)
   -- (referenced so that the events are written)
   AND (SELECT count(*) FROM emitted) >= 0
