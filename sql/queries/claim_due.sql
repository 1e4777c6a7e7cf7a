-- Lease a batch of due deliveries (retries, first attempts whose replica died,
-- redeliveries, deliveries that waited for room or a pause) of enabled
-- endpoints that are not paused. Expired leases are due again, and so are the
-- leases of a replica that stopped its heartbeat $12 ms ago (dead: killed, or
-- cut off from the database), as soon as this replica's own heartbeats have
-- run unbroken as long (see sql/0005_replicas.sql).
-- Each endpoint, visited in random order, gives at most $6 rows and at most
-- its room ($7/$8, else $9), so no endpoint goes over its in-flight and rate
-- limits, and its room is at most a fair share of the slots (see limits.rs).
-- Only deliveries with next_attempt_at up to now() are read: those of an
-- ordered endpoint waiting behind their key's head have none (see
-- sql/0009_key_heads.sql), so a blocked backlog costs a claim nothing.
-- Each event's payload is turned into JSON text once and its size checked
-- here: one over $10 bytes is never sent to tailhook, and the claim stops at
-- $11 bytes of payload (deliveries past it stay due for the next claim).
-- $1 max rows, $2 replica id, $3 default timeout ms, $4 lease margin ms,
-- $5 lease token, $6 max rows per endpoint, $7 endpoint ids and $8 their room,
-- $9 room of any other endpoint, $10 max payload bytes, $11 max payload bytes per claim,
-- $12 replica timeout ms
WITH dead AS (
    SELECT r.name
      FROM tailhook.replicas r
     WHERE r.heartbeat_at < now() - $12::int::float8 * interval '1 millisecond'
       AND EXISTS (SELECT 1 FROM tailhook.replicas me
                    WHERE me.name = $2::text AND me.alive_since <= now() - $12::int::float8 * interval '1 millisecond')
), probe AS MATERIALIZED (
    -- An endpoint with paused_until set (circuit breaker) gets one probe once
    -- the pause is over. Its row is locked here, so a concurrent claim
    -- (another replica) skips it and takes no probe; the claim that actually
    -- leases the probe renews the pause for the probe's lease (`renewed`
    -- below), and one that cannot take it (no room for the endpoint, its due
    -- delivery locked, the claim full) leaves the pause as it was, so the
    -- next claim that can probes at once. A success clears paused_until. A
    -- row locked by anyone (another claim, an operator's open transaction)
    -- is skipped, never waited for: its probe waits for a later claim.
    SELECT e.id FROM tailhook.endpoints e
     WHERE e.enabled AND e.paused_until <= now()
       FOR NO KEY UPDATE SKIP LOCKED
), due AS (
    SELECT d.id, d.outbox_id, d.event_at
      FROM (SELECT e.id,
                   CASE WHEN e.paused_until IS NOT NULL THEN 1
                        ELSE least($6::bigint, coalesce(r.room, $9::int)) END AS take
              FROM tailhook.endpoints e
              LEFT JOIN unnest($7::bigint[], $8::int[]) AS r(endpoint_id, room) ON r.endpoint_id = e.id
             WHERE e.enabled AND (e.paused_until IS NULL OR e.id IN (SELECT id FROM probe))
               AND coalesce(r.room, $9::int) > 0
             ORDER BY random()) e
     CROSS JOIN LATERAL (
            SELECT d.id, d.outbox_id, d.event_at
              FROM tailhook.deliveries d
             WHERE d.endpoint_id = e.id
               AND d.status IN ('pending', 'retrying')
               AND d.next_attempt_at <= now()
               AND (d.locked_until IS NULL OR d.locked_until < now() OR d.locked_by IN (SELECT name FROM dead))
               -- Ordered endpoints: a keyed delivery goes only when it is the
               -- oldest unfinished one of its key.
               AND (d.ordering_key IS NULL OR (
                       d.outbox_id = (
                           SELECT h.outbox_id FROM tailhook.deliveries h
                            WHERE h.endpoint_id = d.endpoint_id AND h.ordering_key = d.ordering_key
                              AND h.status IN ('pending', 'retrying')
                            ORDER BY h.outbox_id LIMIT 1)
                       -- and no other delivery of the key is being sent (a redelivered
                       -- older one may have become the head meanwhile); only a
                       -- scheduled one can be (deliveries_keyed_scheduled)
                       AND NOT EXISTS (
                           SELECT 1 FROM tailhook.deliveries x
                            WHERE x.endpoint_id = d.endpoint_id AND x.ordering_key = d.ordering_key
                              AND x.status IN ('pending', 'retrying') AND x.next_attempt_at IS NOT NULL
                              AND x.id <> d.id
                              AND x.locked_until > now() AND x.locked_by NOT IN (SELECT name FROM dead))))
             ORDER BY d.next_attempt_at
             LIMIT e.take
               FOR NO KEY UPDATE SKIP LOCKED
           ) d
     LIMIT $1
), events AS MATERIALIZED (
    -- Each event by (id, created_at), the outbox partition's key (a
    -- delivery's event_at is its event's created_at): one partition read per
    -- event, not every period's.
    -- (A probe per event, LIMIT 1 keeping it one: a join here was planned
    -- as a hash join reading every partition whole.)
    SELECT o.id, o.event_id, o.event_type, o.created_at, o.tenant, o.body, o.traceparent, o.tracestate
      FROM (SELECT DISTINCT outbox_id, event_at FROM due) k
     CROSS JOIN LATERAL (
            SELECT o.id, o.event_id, o.event_type, o.created_at, o.tenant, o.payload::text AS body, o.traceparent, o.tracestate
              FROM tailhook.outbox o
             WHERE o.id = k.outbox_id AND o.created_at = k.event_at
             LIMIT 1) o
    UNION ALL
    -- A delivery whose event_at is not its event's time: kept by retention
    -- out of a dropped period, or of an installation from before partitions
    -- ('-infinity', sql/0031_partitions.sql). Its event by id alone (rare).
    SELECT o.id, o.event_id, o.event_type, o.created_at, o.tenant, o.payload::text AS body, o.traceparent, o.tracestate
      FROM tailhook.outbox o
     WHERE o.id IN (SELECT outbox_id FROM due WHERE event_at = '-infinity')
       AND NOT EXISTS (SELECT 1 FROM due x WHERE x.outbox_id = o.id AND x.event_at = o.created_at)
), orphaned AS (
    -- A delivery whose event is gone (deleted without it, e.g. by TRUNCATE,
    -- which fires no DELETE trigger) can never be sent: it is cancelled with
    -- a reason instead of being leased again every lease period.
    UPDATE tailhook.deliveries d
       SET status = 'cancelled', completed_at = now(), updated_at = now(),
           locked_until = NULL, locked_by = NULL, lease = NULL,
           last_error = 'cancelled: its event no longer exists in tailhook.outbox'
      FROM due
     WHERE d.id = due.id AND d.event_at = due.event_at AND NOT EXISTS (SELECT 1 FROM events ev WHERE ev.id = due.outbox_id)
), sized AS (
    SELECT due.id, due.event_at, least(octet_length(ev.body), $10::int) AS bytes,
           sum(least(octet_length(ev.body), $10::int)) OVER (ORDER BY due.outbox_id, due.id) AS running
      FROM due JOIN events ev ON ev.id = due.outbox_id
), leased AS (
    -- The first delivery always fits, so a claim never comes back empty.
    UPDATE tailhook.deliveries d
       SET locked_until = now() + pg_catalog.make_interval(secs => (coalesce(e.timeout_ms, $3::int)::bigint + $4::int)::numeric / 1000.0),
           locked_by = $2::text,
           lease = $5::bigint,
           -- Claims since the last result, for endpoints with a transform
           -- (sql/0022_transform_claims.sql).
           transform_claims = CASE WHEN e.transform IS NULL THEN 0 ELSE d.transform_claims + 1 END,
           updated_at = now()
      FROM sized s, tailhook.endpoints e
     -- By (id, event_at): one partition's key, not every partition's.
     WHERE d.id = s.id AND d.event_at = s.event_at AND e.id = d.endpoint_id AND s.running - s.bytes < $11::bigint
    RETURNING d.id, d.endpoint_id, d.attempts, d.outbox_id, d.locked_until, d.transform_claims, d.event_at
), renewed AS (
    UPDATE tailhook.endpoints e
       SET paused_until = now() + pg_catalog.make_interval(secs => (coalesce(e.timeout_ms, $3::int)::bigint + $4::int)::numeric / 1000.0)
     WHERE e.id IN (SELECT p.id FROM probe p)
       AND e.id IN (SELECT l.endpoint_id FROM leased l)
)
-- Only each event's first delivery carries the payload.
SELECT l.id AS delivery_id,
       l.endpoint_id,
       l.attempts,
       ev.id AS outbox_id,
       ev.event_id::text AS event_id,
       ev.event_type,
       to_char(ev.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
       CASE WHEN octet_length(ev.body) <= $10::int
             AND row_number() OVER (PARTITION BY l.outbox_id ORDER BY l.endpoint_id) = 1
            THEN ev.body END AS payload,
       octet_length(ev.body)::bigint AS payload_bytes,
       (extract(epoch FROM l.locked_until - now()) * 1000::numeric)::bigint AS lease_ms,
       ev.tenant,
       ev.traceparent,
       ev.tracestate,
       l.transform_claims,
       -- The delivery's partition key, for the result write (record_results.sql).
       l.event_at
  FROM leased l
  JOIN events ev ON ev.id = l.outbox_id
 ORDER BY l.outbox_id, l.endpoint_id
