-- Deliveries a user cancelled (UPDATE ... SET status = 'cancelled') carry no
-- completed_at; retention stamps it when it first sees them, and their age
-- counts from then. Leased rows (a request in flight) are left until the
-- lease ends. Uses the deliveries_finished index (NULLs are in it).
-- $1 batch size
WITH stamped AS (
    SELECT d.id
      FROM tailhook.deliveries d
     WHERE d.status = 'cancelled' AND d.completed_at IS NULL
       AND (d.locked_until IS NULL OR d.locked_until < now())
     LIMIT $1::bigint
       FOR NO KEY UPDATE SKIP LOCKED
)
UPDATE tailhook.deliveries d
   SET completed_at = now()
  FROM stamped s
 WHERE d.id = s.id
