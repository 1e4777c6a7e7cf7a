-- How many of the given delivery ids a tenant-bound token cannot see (no
-- such delivery, or one to an endpoint not the tenant's): one statement for
-- a whole selection, each id through the primary key.
-- $1 delivery ids, $2 the token's tenant
SELECT count(*)
  FROM unnest($1::bigint[]) AS wanted (id)
 WHERE NOT EXISTS (SELECT 1
                     FROM tailhook.deliveries d
                     JOIN tailhook.endpoints e ON e.id = d.endpoint_id
                    WHERE d.id = wanted.id AND e.tenant = $2::text)
