-- Give back leases this replica will not use (not sent: endpoint disabled
-- meanwhile, or too little lease left). Only the same claim's lease is released.
-- Found by (id, event_at), one partition's key (see record_results.sql); a
-- delivery retention moved meanwhile is not found: its lease runs out instead.
-- $1 replica id, $2 delivery ids, $3 their lease tokens, $4 their event_at
UPDATE tailhook.deliveries d
   SET locked_until = NULL, locked_by = NULL, lease = NULL, transform_claims = 0, updated_at = now()
  FROM unnest($2::bigint[], $3::bigint[], $4::timestamptz[]) AS r(id, lease, event_at)
 WHERE d.id = r.id
   AND d.event_at = r.event_at
   AND d.locked_by = $1::text
   AND d.lease = r.lease
   AND d.status NOT IN ('succeeded', 'failed', 'cancelled') -- by primary key: see record_results.sql
