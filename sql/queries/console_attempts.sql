-- The console's delivery page: the delivery's attempts, newest first, at
-- most $2 (`attempts_delivery`). The response body is stored already cut
-- to `delivery.max_response_bytes`. requested_by: who redelivered the
-- delivery by hand before this attempt (NULL: the schedule's attempt).
-- $1 delivery id, $2 attempts at most
SELECT a.attempt,
       to_char(a.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS started_at,
       a.duration_ms, a.status_code, a.error_kind, a.error, a.response_body, a.requested_by
  FROM tailhook.attempts a
 WHERE a.delivery_id = $1::bigint
 ORDER BY a.attempt DESC, a.id DESC
 LIMIT $2::bigint
