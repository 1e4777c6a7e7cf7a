-- The console's overview: deliveries that gave up in the last 24 hours, per
-- endpoint. An index-only range scan of `deliveries_failed` (endpoint_id,
-- completed_at; migration 0007), whose entries are failures only: few even
-- on a busy endpoint, so the day's successes are never counted for it.
-- $1 endpoint ids (one page of the overview)
SELECT d.endpoint_id, count(*) AS failed
  FROM tailhook.deliveries d
 WHERE d.endpoint_id = ANY ($1::bigint[]) AND d.status = 'failed'
   AND d.completed_at > now() - interval '24 hours'
 GROUP BY d.endpoint_id
