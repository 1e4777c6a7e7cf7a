-- An endpoint that answered 410 Gone is disabled; its deliveries stay
-- pending/retrying and are sent if it is re-enabled.
-- $1 endpoint ids
UPDATE tailhook.endpoints
   SET enabled = false,
       disabled_reason = 'answered 410 Gone at ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
 WHERE id = ANY ($1::bigint[]) AND enabled
