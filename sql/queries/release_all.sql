-- At shutdown: give back every lease this replica still holds.
-- $1 replica id
UPDATE tailhook.deliveries
   SET locked_until = NULL, locked_by = NULL, lease = NULL, transform_claims = 0, updated_at = now()
 WHERE locked_by = $1::text
   AND status IN ('pending', 'retrying')
