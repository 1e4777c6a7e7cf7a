-- Fan out a batch of undispatched outbox rows in one statement (one transaction):
-- mark them dispatched, insert one delivery per matching enabled endpoint
-- already leased to this claim (a fresh delivery needs no separate claim), and
-- return those deliveries with the event to send. A delivery of an endpoint
-- with paused_until set (paused, or being probed), or beyond its room, is inserted unleased and not
-- returned: the due claim takes it once the pause is over or room frees up.
-- Each payload is turned into JSON text once, its size checked here: one over
-- $9 bytes is never sent to tailhook (its deliveries fail as too large), and
-- the claim stops at $10 bytes of payload (rows past it stay for the next).
-- $1 max rows, $2 replica id, $3 default timeout ms, $4 lease margin ms, $5 lease token,
-- $6 endpoint ids and $7 their room (in-flight and rate limits), $8 room of any other endpoint,
-- $9 max payload bytes, $10 max payload bytes per claim
WITH locked AS MATERIALIZED (
    SELECT o.id, o.event_id, o.event_type, o.payload, o.tenant, o.ordering_key, o.created_at,
           o.payload::text AS body
      FROM tailhook.outbox o
     WHERE o.dispatched_at IS NULL
     ORDER BY o.id
     LIMIT $1
       FOR NO KEY UPDATE SKIP LOCKED
), sized AS (
    SELECT l.*, octet_length(l.body) AS bytes,
           sum(least(octet_length(l.body), $9::int)) OVER (ORDER BY l.id) AS running
      FROM locked l
), claimed AS (
    -- The first row always fits, so a claim never comes back empty.
    SELECT s.id, s.event_id, s.event_type, s.payload, s.tenant, s.ordering_key, s.created_at, s.body, s.bytes
      FROM sized s
     WHERE s.running - least(s.bytes, $9::int) < $10::bigint
), marked AS (
    UPDATE tailhook.outbox o
       SET dispatched_at = now()
      FROM claimed c
     WHERE o.id = c.id
), matched AS (
    -- Each endpoint leases at most its room ($6/$7, else $8) of this batch,
    -- oldest first; the rest wait unleased for the due claim.
    SELECT c.id AS outbox_id, e.id AS endpoint_id, e.timeout_ms,
           CASE WHEN e.ordered THEN c.ordering_key END AS ordering_key,
           -- paused_until set (paused, or probing after a pause), or an ordered
           -- endpoint's keyed event (it must wait its turn): the due claim sends.
           e.paused_until IS NULL
             AND NOT (e.ordered AND c.ordering_key IS NOT NULL)
             AND row_number() OVER (PARTITION BY e.id ORDER BY c.id) <= coalesce(r.room, $8::int) AS lease_now
      FROM claimed c
      JOIN tailhook.endpoints e
        ON e.enabled
       AND (e.tenant IS NULL OR e.tenant = c.tenant)
       -- `*` and exact names first: the function only runs for `prefix.*` patterns.
       -- `*` alone never matches tailhook's own `tailhook.` events, and those
       -- never go to the endpoint they are about (sql/0013_operational_events.sql).
       AND (('*' = ANY (e.event_types) AND NOT starts_with(c.event_type, 'tailhook.'))
            OR c.event_type = ANY (e.event_types)
            OR tailhook.event_type_matches(e.event_types, c.event_type))
       AND (NOT starts_with(c.event_type, 'tailhook.')
            OR (c.payload #>> '{endpoint,id}') IS DISTINCT FROM e.id::text)
       AND (e.filter IS NULL OR c.payload @> e.filter)
       AND (e.filter_path IS NULL OR coalesce(jsonb_path_match(c.payload, e.filter_path, silent => true), false))
      LEFT JOIN unnest($6::bigint[], $7::int[]) AS r(endpoint_id, room) ON r.endpoint_id = e.id
), inserted AS (
    INSERT INTO tailhook.deliveries
           (outbox_id, endpoint_id, ordering_key, status, attempts, next_attempt_at, locked_until, locked_by, lease)
    SELECT m.outbox_id, m.endpoint_id, m.ordering_key, 'pending', 0, now(),
           CASE WHEN m.lease_now
                THEN now() + make_interval(secs => (coalesce(m.timeout_ms, $3::int)::bigint + $4::int) / 1000.0) END,
           CASE WHEN m.lease_now THEN $2::text END,
           CASE WHEN m.lease_now THEN $5::bigint END
      FROM matched m
     ORDER BY m.outbox_id, m.endpoint_id
        ON CONFLICT (outbox_id, endpoint_id) DO NOTHING
    RETURNING id, outbox_id, endpoint_id, locked_until
)
-- Every claimed row comes back (delivery_id NULL when it matched no endpoint),
-- so the caller knows how many rows it took; deliveries left waiting come back
-- without lease, so the caller knows which endpoints have a backlog. Leased
-- deliveries come first within each event, and only the first carries the
-- payload (an event fanned out to several endpoints is fetched once).
SELECT i.id AS delivery_id,
       i.endpoint_id,
       0::int AS attempts,
       c.id AS outbox_id,
       c.event_id::text AS event_id,
       c.event_type,
       to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
       CASE WHEN i.locked_until IS NOT NULL AND c.bytes <= $9::int
             AND row_number() OVER (PARTITION BY c.id ORDER BY i.locked_until IS NULL, i.endpoint_id) = 1
            THEN c.body END AS payload,
       c.bytes::bigint AS payload_bytes,
       (extract(epoch FROM i.locked_until - now()) * 1000)::bigint AS lease_ms
  FROM claimed c
  LEFT JOIN inserted i ON i.outbox_id = c.id
 ORDER BY c.id, i.locked_until IS NULL, i.endpoint_id
