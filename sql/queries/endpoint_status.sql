-- `tailhook status`: one row per endpoint, each figure from an index range
-- scan, so the cost follows the endpoint's unfinished work and its recent
-- outcomes, not the size of the history:
--  * pending / retrying / oldest undelivered event: `deliveries_due` (only
--    unfinished rows);
--  * failed (all still retained), and succeeded / failed in the window by
--    completion time: `deliveries_succeeded` and `deliveries_failed`, each on
--    (endpoint_id, completed_at) for its own outcome (migration 0007).
-- Also one page of the console's overview: endpoints by name after $2, at
-- most $3 of them (the unique index on name; NULL: every endpoint).
-- $1 the window (a PostgreSQL interval, e.g. '24h'), $2 names after this one ('' from the start),
-- $3 at most this many endpoints (NULL: all), $4 only this tenant's endpoints
-- (NULL: every endpoint; a tenant portal's overview)
SELECT e.name,
       e.enabled,
       e.disabled_reason,
       e.invalid_reason,
       CASE WHEN e.paused_until > now()
            THEN to_char(e.paused_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END AS paused_until,
       u.pending,
       u.retrying,
       (SELECT count(*) FROM tailhook.deliveries d
         WHERE d.endpoint_id = e.id AND d.status = 'failed') AS failed,
       (SELECT count(*) FROM tailhook.deliveries d
         WHERE d.endpoint_id = e.id AND d.status = 'failed'
           AND d.completed_at >= now() - $1::text::interval) AS failed_in_window,
       (SELECT count(*) FROM tailhook.deliveries d
         WHERE d.endpoint_id = e.id AND d.status = 'succeeded'
           AND d.completed_at >= now() - $1::text::interval) AS succeeded_in_window,
       floor(extract(epoch FROM now() - o.created_at))::bigint AS oldest_undelivered_secs,
       e.id
  FROM tailhook.endpoints e
  CROSS JOIN LATERAL (
      SELECT count(*) FILTER (WHERE d.status = 'pending') AS pending,
             count(*) FILTER (WHERE d.status = 'retrying') AS retrying,
             min(d.outbox_id) AS oldest
        FROM tailhook.deliveries d
       WHERE d.endpoint_id = e.id AND d.status IN ('pending', 'retrying')
  ) u
  LEFT JOIN tailhook.outbox o ON o.id = u.oldest
 WHERE e.name > $2::text AND ($4::text IS NULL OR e.tenant = $4::text)
 ORDER BY e.name
 LIMIT $3::bigint
