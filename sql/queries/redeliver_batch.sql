-- One batch of `tailhook redeliver`: the next deliveries (by id, after $7)
-- matching the filters, put back to be sent now unless $9 (dry run).
-- Attempt history and counts are kept. Deliveries leased right now (being
-- sent) are left alone, so nothing is sent twice at once.
-- $1 delivery ids (NULL: any), $2 endpoint name, $3 event type, $4 status (NULL: any),
-- $5 created since, $6 created before, $7 after this id, $8 batch size, $9 dry run,
-- $10 who asked (recorded on the delivery, then on the attempts it makes)
WITH picked AS (
    SELECT d.id
      FROM tailhook.deliveries d
      JOIN tailhook.endpoints e ON e.id = d.endpoint_id
      JOIN tailhook.outbox o ON o.id = d.outbox_id
     WHERE d.id > $7::bigint
       AND ($1::bigint[] IS NULL OR d.id = ANY ($1::bigint[]))
       AND ($2::text IS NULL OR e.name = $2::text)
       AND ($3::text IS NULL OR o.event_type = $3::text)
       AND ($4::text IS NULL OR d.status = $4::text)
       AND ($5::text IS NULL OR d.created_at >= $5::text::timestamptz)
       AND ($6::text IS NULL OR d.created_at < $6::text::timestamptz)
       AND (d.locked_until IS NULL OR d.locked_until < now())
     ORDER BY d.id
     LIMIT $8::bigint
       FOR NO KEY UPDATE OF d
), redelivered AS (
    UPDATE tailhook.deliveries d
       SET status = CASE WHEN d.attempts = 0 THEN 'pending' ELSE 'retrying' END,
           next_attempt_at = now(), locked_until = NULL, locked_by = NULL, lease = NULL,
           completed_at = NULL, updated_at = now(),
           redelivered_by = left($10::text, 200), redelivered_at = now()
      FROM picked
     WHERE d.id = picked.id AND NOT $9::boolean
)
SELECT count(*), coalesce(max(id), 0) FROM picked
