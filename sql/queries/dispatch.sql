-- Fan out a batch of undispatched outbox rows in one statement (one transaction):
-- mark them dispatched, insert one delivery per matching enabled endpoint
-- already leased to this claim (a fresh delivery needs no separate claim), and
-- return those deliveries with the event to send. A delivery of an endpoint
-- with paused_until set (paused, or being probed), or beyond its room, or
-- beyond the claim's slots, is inserted unleased and not returned: the due
-- claim takes it once the pause is over or room frees up.
-- How many rows a claim takes is decided here, not guessed by the caller:
-- rows are routed first, and taken in outbox order while their deliveries
-- add up to less than $11 (so a claim of rows routed to one tenant endpoint
-- each takes $11 rows, and one of rows fanned out to 1,000 endpoints takes
-- one); at most $11 deliveries are leased, so a wrong guess of $1 (rows to
-- lock) costs a smaller or a second claim, never more work than slots.
-- Each payload is turned into JSON text once, its size checked here: one over
-- $9 bytes is never sent to tailhook (its deliveries fail as too large), and
-- the claim stops at $10 bytes of payload (rows past it stay for the next).
-- $1 max rows, $2 replica id, $3 default timeout ms, $4 lease margin ms, $5 lease token,
-- $6 endpoint ids and $7 their room (in-flight and rate limits), $8 room of any other endpoint,
-- $9 max payload bytes, $10 max payload bytes per claim, $11 max deliveries (free slots),
-- $12 endpoints whose filters are not evaluated (rows tailhook found invalid),
-- $13 and $14 ms of filter_path evaluation per endpoint and per claim (sql/0020_filter_bounds.sql)
WITH locked AS MATERIALIZED (
    -- The oldest $1 undispatched rows not locked by another claim, locked
    -- (sql/0016_claim_rows.sql: a function, so the rest is planned for a batch).
    SELECT l.id, l.event_id, l.event_type, l.payload, l.tenant, l.ordering_key, l.created_at, l.body
      FROM tailhook.lock_undispatched($1) l
), candidates AS (
    -- Endpoints that take the row's tenant: those of that tenant, found by
    -- equality (a hash join, so 1,000 tenant endpoints cost rows + endpoints,
    -- not rows × endpoints), and those without a tenant.
    -- Filters are evaluated only on a payload tailhook may send and for an
    -- endpoint it found valid ($12): otherwise the row is routed by tenant
    -- and type alone, and its delivery fails (as too large, or with the
    -- endpoint's invalid_reason), so a row written before the bounds on
    -- filters (sql/0020_filter_bounds.sql) is never evaluated.
    SELECT l.id, l.event_type, l.payload, e.id AS endpoint_id, e.timeout_ms, e.ordered, e.paused_until,
           e.event_types, e.filter, e.filter_path,
           octet_length(l.body) <= $9::int AND e.id <> ALL ($12::bigint[]) AS evaluate
      FROM locked l
      JOIN tailhook.endpoints e ON e.tenant = l.tenant AND e.enabled
    UNION ALL
    SELECT l.id, l.event_type, l.payload, e.id, e.timeout_ms, e.ordered, e.paused_until,
           e.event_types, e.filter, e.filter_path,
           octet_length(l.body) <= $9::int AND e.id <> ALL ($12::bigint[])
      FROM locked l
      JOIN tailhook.endpoints e ON e.tenant IS NULL AND e.enabled
), routed AS MATERIALIZED (
    -- Every (row, endpoint) pair the routing rules match, with why its
    -- delivery fails at once (routing_error) when its filter_path could not
    -- be evaluated on this payload: that error stays with this delivery.
    SELECT r.outbox_id, r.endpoint_id, r.timeout_ms, r.ordered, r.paused_until,
           CASE WHEN r.path NOT IN ('match', 'no match') THEN r.path END AS routing_error
      FROM (SELECT c.id AS outbox_id, c.endpoint_id, c.timeout_ms, c.ordered, c.paused_until,
                   CASE WHEN c.filter_path IS NOT NULL AND c.evaluate
                        THEN tailhook.filter_path_matches(c.payload, c.filter_path, c.endpoint_id,
                                                          $13::int, $14::int) END AS path
              FROM candidates c
               -- `*` and exact names first: the function only runs for `prefix.*` patterns.
               -- `*` alone never matches tailhook's own `tailhook.` events, and those
               -- never go to the endpoint they are about (sql/0013_operational_events.sql).
             WHERE (('*' = ANY (c.event_types) AND NOT starts_with(c.event_type, 'tailhook.'))
                    OR c.event_type = ANY (c.event_types)
                    OR tailhook.event_type_matches(c.event_types, c.event_type))
               AND (NOT starts_with(c.event_type, 'tailhook.')
                    OR (c.payload #>> '{endpoint,id}') IS DISTINCT FROM c.endpoint_id::text)
               AND (c.filter IS NULL OR NOT c.evaluate OR c.payload @> c.filter)
            -- evaluated once per pair, after the checks above
            OFFSET 0) r
     WHERE r.path IS DISTINCT FROM 'no match'
), sized AS (
    -- Running totals of payload bytes and of deliveries in outbox order (only
    -- the numbers: payloads are not copied through the window).
    SELECT l.id, octet_length(l.body) AS bytes, coalesce(f.n, 0) AS n,
           sum(least(octet_length(l.body), $9::int)) OVER w AS running,
           sum(coalesce(f.n, 0)) OVER w AS fanned
      FROM locked l
      LEFT JOIN (SELECT r.outbox_id, count(*) AS n FROM routed r GROUP BY r.outbox_id) f ON f.outbox_id = l.id
    WINDOW w AS (ORDER BY l.id)
), claimed AS (
    -- The first row always fits, so a claim never comes back empty.
    SELECT l.id, l.event_id, l.event_type, l.payload, l.tenant, l.ordering_key, l.created_at, l.body, s.bytes
      FROM sized s
      JOIN locked l ON l.id = s.id
     WHERE s.running - least(s.bytes, $9::int) < $10::bigint
       AND s.fanned - s.n::numeric < $11::bigint::numeric
), marked AS (
    UPDATE tailhook.outbox o
       SET dispatched_at = now()
      FROM claimed c
     -- By (id, created_at), the outbox partition's key: one partition read
     -- per row (pruned at run time), not every period's.
     WHERE o.id = c.id AND o.created_at = c.created_at
    -- The event's trace context (sql/0025_trace_context.sql), read here
    -- rather than by lock_undispatched, whose row type stays as it is.
    RETURNING o.id, o.traceparent, o.tracestate
), matched AS (
    -- Each endpoint leases at most its room ($6/$7, else $8) of this batch,
    -- oldest first; the rest wait unleased for the due claim.
    -- A delivery failing at once (routing_error) takes no lease, and no
    -- place in its key's order.
    SELECT r.outbox_id, r.endpoint_id, r.timeout_ms, r.routing_error,
           CASE WHEN r.ordered AND r.routing_error IS NULL THEN c.ordering_key END AS ordering_key,
           -- paused_until set (paused, or probing after a pause), or an ordered
           -- endpoint's keyed event (it must wait its turn): the due claim sends.
           r.paused_until IS NULL AND r.routing_error IS NULL
             AND NOT (r.ordered AND c.ordering_key IS NOT NULL)
             AND row_number() OVER (PARTITION BY r.endpoint_id ORDER BY r.outbox_id) <= coalesce(m.room, $8::int) AS may_lease
      FROM routed r
      JOIN claimed c ON c.id = r.outbox_id
      LEFT JOIN unnest($6::bigint[], $7::int[]) AS m(endpoint_id, room) ON m.endpoint_id = r.endpoint_id
), keys AS (
    -- Per key of an ordered endpoint in this batch, its oldest unfinished
    -- delivery already there, locked FOR SHARE: a statement finishing that
    -- delivery waits for this commit, so its trigger (sql/0009_key_heads.sql)
    -- sees the deliveries inserted here when it schedules the key's new head.
    -- One being written right now is skipped: the new delivery is then
    -- scheduled at once, and the due claim's head check holds it back.
    -- While no endpoint is ordered, the sidecar runs this statement with the
    -- subquery between the two `ordered:` lines replaced by NULL (see
    -- dispatch_unordered in src/db/queries.rs): on PostgreSQL 15 naming
    -- tailhook.deliveries here sets up all its partitions at every call.
    -- Safe even if an endpoint became ordered meanwhile: its new delivery is
    -- then scheduled at once, and the due claim's head check holds it back.
    SELECT k.endpoint_id, k.ordering_key,
           -- ordered: from here
           (SELECT x.outbox_id FROM tailhook.deliveries x
             WHERE x.endpoint_id = k.endpoint_id AND x.ordering_key = k.ordering_key
               AND x.status IN ('pending', 'retrying')
             ORDER BY x.outbox_id
             LIMIT 1
               FOR SHARE SKIP LOCKED)
           -- ordered: to here
           AS head_outbox_id
      FROM (SELECT DISTINCT m.endpoint_id, m.ordering_key FROM matched m WHERE m.ordering_key IS NOT NULL) k
), leasing AS (
    -- And the claim leases at most $11 in all (one row may fan out to more).
    -- A keyed delivery behind an older unfinished one of its key waits
    -- unscheduled (next_attempt_at NULL), out of the due claim's way.
    SELECT m.*, m.may_lease AND sum(m.may_lease::int) OVER (ORDER BY m.outbox_id, m.endpoint_id) <= $11::bigint AS lease_now,
           m.ordering_key IS NOT NULL
             AND (coalesce(k.head_outbox_id < m.outbox_id, false)
                  OR row_number() OVER (PARTITION BY m.endpoint_id, m.ordering_key ORDER BY m.outbox_id) > 1) AS waiting
      FROM matched m
      LEFT JOIN keys k ON k.endpoint_id = m.endpoint_id AND k.ordering_key = m.ordering_key
), inserted AS (
    INSERT INTO tailhook.deliveries
           (outbox_id, endpoint_id, ordering_key, status, attempts, next_attempt_at, locked_until, locked_by, lease,
            last_error, completed_at, event_at)
    SELECT m.outbox_id, m.endpoint_id, m.ordering_key, CASE WHEN m.routing_error IS NULL THEN 'pending' ELSE 'failed' END,
           0, CASE WHEN m.waiting OR m.routing_error IS NOT NULL THEN NULL ELSE now() END,
           CASE WHEN m.lease_now
                THEN now() + pg_catalog.make_interval(secs => (coalesce(m.timeout_ms, $3::int)::bigint + $4::int)::numeric / 1000.0) END,
           CASE WHEN m.lease_now THEN $2::text END,
           CASE WHEN m.lease_now THEN $5::bigint END,
           m.routing_error, CASE WHEN m.routing_error IS NOT NULL THEN now() END,
           -- The event's time: the delivery's partition is its event's period
           -- (sql/0031_partitions.sql), so the key below is (event, endpoint).
           c.created_at
      FROM leasing m
      JOIN claimed c ON c.id = m.outbox_id
     ORDER BY m.outbox_id, m.endpoint_id
        ON CONFLICT (outbox_id, endpoint_id, event_at) DO NOTHING
    RETURNING id, outbox_id, endpoint_id, locked_until, status, event_at
)
-- Every claimed row comes back (delivery_id NULL when it matched no endpoint,
-- or only deliveries that failed at once),
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
       (extract(epoch FROM i.locked_until - now()) * 1000::numeric)::bigint AS lease_ms,
       c.tenant,
       mk.traceparent,
       mk.tracestate,
       -- The delivery's partition key: the result write and a release find
       -- it by (id, event_at), in one partition (see record_results.sql).
       i.event_at
  FROM claimed c
  -- LEFT: a claimed row must come back even when the UPDATE returned none
  -- for it (seen under back-to-back fan-out claims; an inner join left its
  -- delivery leased and never started).
  LEFT JOIN marked mk ON mk.id = c.id
  LEFT JOIN inserted i ON i.outbox_id = c.id AND i.status = 'pending'
 ORDER BY c.id, i.locked_until IS NULL, i.endpoint_id
