-- Give back leases this replica will not use (not sent: endpoint disabled
-- meanwhile, or too little lease left). Only the same claim's lease is released.
-- $1 replica id, $2 delivery ids, $3 their lease tokens
UPDATE tailhook.deliveries d
   SET locked_until = NULL, locked_by = NULL, lease = NULL, transform_claims = 0, updated_at = now()
  FROM unnest($2::bigint[], $3::bigint[]) AS r(id, lease)
 WHERE d.id = r.id
   AND d.locked_by = $1::text
   AND d.lease = r.lease
   AND d.status NOT IN ('succeeded', 'failed', 'cancelled') -- by primary key: see record_results.sql
