-- The console's overview: p50 and p95 of attempt durations in the last hour,
-- per endpoint, over a bounded sample so a busy endpoint costs no more than
-- a quiet one: the attempts of the last hour of its 500 most recently
-- finished deliveries of each outcome (the partial indexes on
-- (endpoint_id, completed_at) of migration 0007, read backwards) and of 500
-- unfinished ones (`deliveries_due`). Each delivery's attempts come from
-- `attempts_delivery`. No index on attempts by time is needed.
-- $1 endpoint ids (one page of the overview)
SELECT e.id,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95_ms,
       count(*) AS sampled
  FROM unnest($1::bigint[]) AS e(id)
  CROSS JOIN LATERAL (
      (SELECT d.id FROM tailhook.deliveries d
        WHERE d.endpoint_id = e.id AND d.status = 'succeeded' AND d.completed_at > now() - interval '1 hour'
        ORDER BY d.completed_at DESC LIMIT 500)
      UNION ALL
      (SELECT d.id FROM tailhook.deliveries d
        WHERE d.endpoint_id = e.id AND d.status = 'failed' AND d.completed_at > now() - interval '1 hour'
        ORDER BY d.completed_at DESC LIMIT 500)
      UNION ALL
      (SELECT d.id FROM tailhook.deliveries d
        WHERE d.endpoint_id = e.id AND d.status IN ('pending', 'retrying')
        ORDER BY d.next_attempt_at DESC LIMIT 500)
  ) s
  JOIN tailhook.attempts a ON a.delivery_id = s.id AND a.started_at > now() - interval '1 hour'
 GROUP BY e.id
