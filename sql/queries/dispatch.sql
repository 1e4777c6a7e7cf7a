-- Fan out a batch of undispatched outbox rows in one statement (one transaction):
-- mark them dispatched, insert one delivery per matching enabled endpoint
-- already leased to this claim (a fresh delivery needs no separate claim), and
-- return those deliveries with the event to send. A paused endpoint's delivery
-- is inserted unleased and not returned: the due claim takes it once the pause
-- is over (or lifted).
-- $1 max rows, $2 replica id, $3 default timeout ms, $4 lease margin ms, $5 lease token
WITH claimed AS (
    SELECT o.id, o.event_id, o.event_type, o.payload, o.tenant, o.created_at
      FROM tailhook.outbox o
     WHERE o.dispatched_at IS NULL
     ORDER BY o.id
     LIMIT $1
       FOR NO KEY UPDATE SKIP LOCKED
), marked AS (
    UPDATE tailhook.outbox o
       SET dispatched_at = now()
      FROM claimed c
     WHERE o.id = c.id
), inserted AS (
    INSERT INTO tailhook.deliveries
           (outbox_id, endpoint_id, status, attempts, next_attempt_at, locked_until, locked_by, lease)
    SELECT c.id, e.id, 'pending', 0, now(),
           CASE WHEN NOT p.paused
                THEN now() + make_interval(secs => (coalesce(e.timeout_ms, $3::int)::bigint + $4::int) / 1000.0) END,
           CASE WHEN NOT p.paused THEN $2::text END,
           CASE WHEN NOT p.paused THEN $5::bigint END
      FROM claimed c
      JOIN tailhook.endpoints e
        ON e.enabled
       AND (e.tenant IS NULL OR e.tenant = c.tenant)
       -- `*` and exact names first: the function only runs for `prefix.*` patterns.
       AND ('*' = ANY (e.event_types) OR c.event_type = ANY (e.event_types)
            OR tailhook.event_type_matches(e.event_types, c.event_type))
       AND (e.filter IS NULL OR c.payload @> e.filter)
       AND (e.filter_path IS NULL OR coalesce(jsonb_path_match(c.payload, e.filter_path, silent => true), false))
     CROSS JOIN LATERAL (SELECT coalesce(e.paused_until > now(), false) AS paused) p
     ORDER BY c.id, e.id
        ON CONFLICT (outbox_id, endpoint_id) DO NOTHING
    RETURNING id, outbox_id, endpoint_id, locked_until
)
-- Every claimed row comes back, with a NULL delivery_id when it produced no
-- delivery to send now, so the caller knows how many rows it took.
SELECT i.id AS delivery_id,
       i.endpoint_id,
       0::int AS attempts,
       c.id AS outbox_id,
       c.event_id::text AS event_id,
       c.event_type,
       to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
       CASE WHEN i.id IS NOT NULL THEN c.payload::text END AS payload,
       (extract(epoch FROM i.locked_until - now()) * 1000)::bigint AS lease_ms
  FROM claimed c
  LEFT JOIN inserted i ON i.outbox_id = c.id AND i.locked_until IS NOT NULL
 ORDER BY c.id, i.endpoint_id
