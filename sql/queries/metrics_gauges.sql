-- The gauges of /metrics, read at most every few seconds, each from an index
-- of unfinished work only (so retained history never makes a scrape slower):
-- per endpoint its pending and retrying deliveries (deliveries_due) and its
-- state; the age of the oldest undispatched outbox row (outbox_undispatched)
-- and of the oldest delivery not attempted yet. One row per endpoint, or one
-- row with a NULL name when there is none.
WITH ages AS (
    SELECT coalesce(extract(epoch FROM now() - (
               SELECT o.created_at FROM tailhook.outbox o
                WHERE o.dispatched_at IS NULL ORDER BY o.id LIMIT 1)), 0)::float8 AS outbox_lag
)
SELECT e.name,
       coalesce(p.pending, 0) AS pending,
       p.oldest_pending_at,
       CASE WHEN NOT e.enabled THEN 'disabled'
            WHEN e.invalid_reason IS NOT NULL THEN 'invalid'
            WHEN e.paused_until > now() THEN 'paused'
            ELSE 'active' END AS state,
       a.outbox_lag,
       coalesce(extract(epoch FROM now() - min(p.oldest_pending_at) OVER ()), 0)::float8 AS oldest_pending
  FROM ages a
  LEFT JOIN tailhook.endpoints e ON true
  LEFT JOIN LATERAL (
        SELECT count(*) AS pending,
               min(d.next_attempt_at) FILTER (WHERE d.status = 'pending') AS oldest_pending_at
          FROM tailhook.deliveries d
         WHERE d.endpoint_id = e.id AND d.status IN ('pending', 'retrying')
  ) p ON true
