-- The API's event, with its deliveries (to the token's tenant's endpoints
-- only, at most 1,000), as JSON; also whether it matches a publish request
-- ($3..$6, to tell a repeated publish from a conflicting one).
-- $1 event id, $2 the token's tenant (NULL: any), $3 type, $4 payload (JSON text), $5 tenant, $6 ordering key
SELECT pg_catalog.jsonb_build_object(
           'event_id', o.event_id, 'event_type', o.event_type, 'payload', o.payload, 'tenant', o.tenant,
           'ordering_key', o.ordering_key, 'published_at', o.created_at, 'dispatched_at', o.dispatched_at,
           'deliveries', coalesce((
               SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                          'id', d.id, 'endpoint', e.name, 'status', d.status, 'attempts', d.attempts,
                          'last_status_code', d.last_status_code, 'created_at', d.created_at,
                          'completed_at', d.completed_at,
                          'next_attempt_at', CASE WHEN d.status IN ('pending', 'retrying') THEN d.next_attempt_at END)
                          ORDER BY d.id)
                 FROM (SELECT d.* FROM tailhook.deliveries d WHERE d.outbox_id = o.id ORDER BY d.id LIMIT 1000) d
                 JOIN tailhook.endpoints e ON e.id = d.endpoint_id
                WHERE $2::text IS NULL OR e.tenant = $2::text), '[]'))::text,
       (o.event_type, o.payload, o.tenant, o.ordering_key)
           IS NOT DISTINCT FROM ($3::text, $4::text::jsonb, $5::text, $6::text)
  FROM tailhook.outbox o
 WHERE o.event_id = $1::text::uuid AND ($2::text IS NULL OR o.tenant = $2::text)
