-- The console's search by event id (the receiver's `webhook-id`): the
-- event's deliveries, one per endpoint, through the outbox's unique index on
-- event_id and the deliveries' unique index on (outbox_id, endpoint_id).
-- The other filters narrow it; the columns are console_search.sql's.
-- $1 event id (text, a UUID), $2 endpoint name, $3 event type, $4 tenant, $5 status,
-- $6 created since, $7 created before, $8 the endpoints' tenant (a tenant-bound scope's)
SELECT d.id, o.event_id::text, o.event_type, o.tenant, e.name, d.status, d.attempts, d.last_status_code,
       to_char(d.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS created_at,
       CASE WHEN d.status IN ('pending', 'retrying')
            THEN to_char(d.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') END AS next_attempt_at
  FROM tailhook.outbox o
  JOIN tailhook.deliveries d ON d.outbox_id = o.id
  JOIN tailhook.endpoints e ON e.id = d.endpoint_id
 WHERE o.event_id = $1::text::uuid
   AND ($2::text IS NULL OR e.name = $2::text)
   AND ($3::text IS NULL OR o.event_type = $3::text)
   AND ($4::text IS NULL OR o.tenant = $4::text)
   AND ($8::text IS NULL OR e.tenant = $8::text)
   AND ($5::text IS NULL OR d.status = $5::text)
   AND ($6::text IS NULL OR d.created_at >= $6::text::timestamptz)
   AND ($7::text IS NULL OR d.created_at < $7::text::timestamptz)
 ORDER BY d.id DESC
 LIMIT 1000
