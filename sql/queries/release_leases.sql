-- Give back leases this replica holds but will not use (not sent, or shutting down).
-- $1 replica id, $2 delivery ids (NULL: every lease of this replica)
UPDATE tailhook.deliveries
   SET locked_until = NULL, locked_by = NULL, updated_at = now()
 WHERE locked_by = $1::text
   AND status IN ('pending', 'retrying')
   AND ($2::bigint[] IS NULL OR id = ANY ($2::bigint[]))
