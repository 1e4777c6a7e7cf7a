-- The console's overview chart: deliveries finished per minute over the last
-- hour, per endpoint and outcome. Each half is an index-only range scan of
-- the partial index of its outcome on (endpoint_id, completed_at)
-- (`deliveries_succeeded`, `deliveries_failed`, migration 0007), so the cost
-- follows the last hour's traffic of the endpoints shown, never the history
-- retained. Minute 0 is the oldest, 59 the one running now (a delivery
-- completed after this statement began counts in 59). date_part, not
-- extract: float arithmetic, several times cheaper per row than numeric.
-- $1 endpoint ids (one page of the overview)
SELECT endpoint_id, minute, sum(succeeded)::bigint AS succeeded, sum(failed)::bigint AS failed
  FROM (
      SELECT d.endpoint_id,
             59 - least(59, floor(date_part('epoch', now() - d.completed_at) / 60::float8)::int) AS minute,
             1 AS succeeded, 0 AS failed
        FROM tailhook.deliveries d
       WHERE d.endpoint_id = ANY ($1::bigint[]) AND d.status = 'succeeded'
         AND d.completed_at > now() - interval '1 hour'
      UNION ALL
      SELECT d.endpoint_id,
             59 - least(59, floor(date_part('epoch', now() - d.completed_at) / 60::float8)::int),
             0, 1
        FROM tailhook.deliveries d
       WHERE d.endpoint_id = ANY ($1::bigint[]) AND d.status = 'failed'
         AND d.completed_at > now() - interval '1 hour'
  ) finished
 GROUP BY endpoint_id, minute
