-- Fan out a batch of undispatched outbox rows in one statement (one transaction):
-- mark them dispatched, insert one delivery per matching enabled endpoint already
-- leased to this replica (a fresh delivery needs no separate claim), and return
-- those deliveries with the event to send.
-- $1 max rows, $2 replica id, $3 default timeout ms, $4 lease margin ms
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
    INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, next_attempt_at, locked_until, locked_by)
    SELECT c.id, e.id, 'pending', 0, now(),
           now() + make_interval(secs => (coalesce(e.timeout_ms, $3::int) + $4::int) / 1000.0),
           $2::text
      FROM claimed c
      JOIN tailhook.endpoints e
        ON e.enabled
       AND (e.tenant IS NULL OR e.tenant = c.tenant)
       -- `*` and exact names first: the function only runs for `prefix.*` patterns.
       AND ('*' = ANY (e.event_types) OR c.event_type = ANY (e.event_types)
            OR tailhook.event_type_matches(e.event_types, c.event_type))
       AND (e.filter IS NULL OR c.payload @> e.filter)
       AND (e.filter_path IS NULL OR coalesce(jsonb_path_match(c.payload, e.filter_path, silent => true), false))
     ORDER BY c.id, e.id
        ON CONFLICT (outbox_id, endpoint_id) DO NOTHING
    RETURNING id, outbox_id, endpoint_id
)
-- Every claimed row comes back, with a NULL delivery_id when it matched no endpoint,
-- so the caller knows how many rows it took.
SELECT i.id AS delivery_id,
       i.endpoint_id,
       0::int AS attempts,
       c.id AS outbox_id,
       c.event_id::text AS event_id,
       c.event_type,
       to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
       CASE WHEN i.id IS NOT NULL THEN c.payload::text END AS payload
  FROM claimed c
  LEFT JOIN inserted i ON i.outbox_id = c.id
 ORDER BY c.id, i.endpoint_id
