-- Record why endpoints cannot be used (NULL: they can again), so it shows in
-- SQL. Rows locked right now (an operator's open transaction) are skipped,
-- never waited for; tailhook tries them again at its next reload.
-- Returns the ids written.
-- $1 endpoint ids, $2 their reasons
UPDATE tailhook.endpoints e
   SET invalid_reason = r.reason
  FROM unnest($1::bigint[], $2::text[]) AS r(id, reason)
 WHERE e.id = r.id
   AND e.id IN (SELECT l.id FROM tailhook.endpoints l WHERE l.id = ANY ($1::bigint[]) FOR NO KEY UPDATE SKIP LOCKED)
RETURNING e.id
