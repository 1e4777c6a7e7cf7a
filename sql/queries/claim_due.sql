-- Lease a batch of due deliveries (retries, first attempts whose replica died,
-- redeliveries, deliveries that waited for room or a pause) of enabled
-- endpoints that are not paused. Expired leases are due again.
-- Each endpoint, visited in random order, gives at most $6 rows and at most
-- its room ($7/$8, else $9), so one endpoint's backlog cannot take a whole
-- claim and no endpoint goes over its in-flight and rate limits.
-- $1 max rows, $2 replica id, $3 default timeout ms, $4 lease margin ms,
-- $5 lease token, $6 max rows per endpoint, $7 endpoint ids and $8 their room,
-- $9 room of any other endpoint
WITH probe AS (
    -- An endpoint with paused_until set (circuit breaker) gets one probe once
    -- the pause is over: taking it renews the pause for the probe's lease, and
    -- a concurrent claim (another replica) waits on this row, then sees the
    -- renewed pause and takes none. A success clears paused_until.
    UPDATE tailhook.endpoints e
       SET paused_until = now() + make_interval(secs => (coalesce(e.timeout_ms, $3::int)::bigint + $4::int) / 1000.0)
     WHERE e.enabled AND e.paused_until IS NOT NULL AND e.paused_until <= now()
       AND EXISTS (SELECT 1 FROM tailhook.deliveries d
                    WHERE d.endpoint_id = e.id AND d.status IN ('pending', 'retrying')
                      AND d.next_attempt_at <= now() AND (d.locked_until IS NULL OR d.locked_until < now()))
    RETURNING e.id
), due AS (
    SELECT d.id
      FROM (SELECT e.id,
                   CASE WHEN e.paused_until IS NOT NULL THEN 1
                        ELSE least($6::bigint, coalesce(r.room, $9::int)) END AS take
              FROM tailhook.endpoints e
              LEFT JOIN unnest($7::bigint[], $8::int[]) AS r(endpoint_id, room) ON r.endpoint_id = e.id
             WHERE e.enabled AND (e.paused_until IS NULL OR e.id IN (SELECT id FROM probe))
               AND coalesce(r.room, $9::int) > 0
             ORDER BY random()) e
     CROSS JOIN LATERAL (
            SELECT d.id
              FROM tailhook.deliveries d
             WHERE d.endpoint_id = e.id
               AND d.status IN ('pending', 'retrying')
               AND d.next_attempt_at <= now()
               AND (d.locked_until IS NULL OR d.locked_until < now())
               -- Ordered endpoints: a keyed delivery goes only when it is the
               -- oldest unfinished one of its key.
               AND (d.ordering_key IS NULL OR (
                       d.outbox_id = (
                           SELECT h.outbox_id FROM tailhook.deliveries h
                            WHERE h.endpoint_id = d.endpoint_id AND h.ordering_key = d.ordering_key
                              AND h.status IN ('pending', 'retrying')
                            ORDER BY h.outbox_id LIMIT 1)
                       -- and no other delivery of the key is being sent (a redelivered
                       -- older one may have become the head meanwhile)
                       AND NOT EXISTS (
                           SELECT 1 FROM tailhook.deliveries x
                            WHERE x.endpoint_id = d.endpoint_id AND x.ordering_key = d.ordering_key
                              AND x.status IN ('pending', 'retrying') AND x.id <> d.id
                              AND x.locked_until > now())))
             ORDER BY d.next_attempt_at
             LIMIT e.take
               FOR NO KEY UPDATE SKIP LOCKED
           ) d
     LIMIT $1
), leased AS (
    UPDATE tailhook.deliveries d
       SET locked_until = now() + make_interval(secs => (coalesce(e.timeout_ms, $3::int)::bigint + $4::int) / 1000.0),
           locked_by = $2::text,
           lease = $5::bigint,
           updated_at = now()
      FROM due, tailhook.endpoints e
     WHERE d.id = due.id AND e.id = d.endpoint_id
    RETURNING d.id, d.endpoint_id, d.attempts, d.outbox_id, d.locked_until
)
SELECT l.id AS delivery_id,
       l.endpoint_id,
       l.attempts,
       o.id AS outbox_id,
       o.event_id::text AS event_id,
       o.event_type,
       to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
       o.payload::text AS payload,
       (extract(epoch FROM l.locked_until - now()) * 1000)::bigint AS lease_ms
  FROM leased l
  JOIN tailhook.outbox o ON o.id = l.outbox_id
 ORDER BY l.outbox_id, l.endpoint_id
