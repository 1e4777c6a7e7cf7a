-- Circuit breaker bookkeeping after a batch of results, per endpoint:
-- a success resets it; retryable failures count up. While at least $5
-- failures span at least $4 ms (the breaker is open), each failure pauses the
-- endpoint for half the time it has been failing, between 30 s and $6 ms.
-- Failing for $7 ms disables it (and resets its health). Returns, per endpoint, whether this batch
-- tripped the breaker, disabled it, or resumed it (a success ended a pause).
-- failing_since is the database's clock, so replicas' clocks never matter.
-- Only rows this batch changes are locked and written: successes for an
-- endpoint with nothing to reset (the usual batch) take no row lock, so the
-- transaction writes nothing and its commit waits for no WAL flush.
-- A row locked by someone else (an operator's open transaction) is skipped,
-- never waited for: the result path must not stall. Each batch endpoint comes
-- back with `done` false when it was skipped (the caller keeps its counts for
-- the next batch), true when it was counted, had nothing to change, or no
-- longer exists.
-- $1 endpoint ids, $2 successes, $3 failures,
-- $4 breaker_after_ms, $5 breaker_min_failures, $6 backoff_max_ms, $7 disable_after_failing_ms
WITH h AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[]) AS h(id, ok, bad)
), s AS (
    SELECT e.id,
           CASE WHEN h.ok > 0 THEN 0 ELSE e.consecutive_failures + h.bad END AS failures,
           CASE WHEN h.ok > 0 THEN NULL ELSE coalesce(e.failing_since, now()) END AS since,
           e.paused_until IS NULL AS was_running,
           e.enabled AS was_enabled
      FROM tailhook.endpoints e JOIN h ON h.id = e.id
     WHERE NOT (h.ok > 0 AND e.consecutive_failures = 0 AND e.failing_since IS NULL AND e.paused_until IS NULL)
       FOR UPDATE OF e SKIP LOCKED -- the latest state: another replica may be writing it
), v AS (
    SELECT s.*,
           s.since IS NOT NULL AND s.failures >= $5::int
             AND s.since <= now() - $4::bigint::float8 * interval '1 millisecond' AS open,
           s.since IS NOT NULL AND s.since <= now() - $7::bigint::float8 * interval '1 millisecond' AS dead
      FROM s
), written AS (
UPDATE tailhook.endpoints e
   SET consecutive_failures = CASE WHEN v.dead THEN 0 ELSE v.failures END,
       failing_since = CASE WHEN v.dead THEN NULL ELSE v.since END,
       paused_until = CASE
           WHEN v.since IS NULL OR v.dead THEN NULL
           WHEN v.open THEN greatest(e.paused_until, now() + least(
                   greatest((now() - v.since) / 2::float8, interval '30 seconds'),
                   $6::bigint::float8 * interval '1 millisecond'))
           ELSE e.paused_until END,
       enabled = e.enabled AND NOT v.dead,
       auto_disabled = e.auto_disabled OR (v.dead AND e.enabled),
       disabled_reason = CASE WHEN v.dead AND e.enabled
           THEN 'failing since ' || to_char(v.since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC without a success'
           ELSE e.disabled_reason END
  FROM v
 WHERE e.id = v.id
RETURNING e.id, e.name, v.open AND v.was_running AS tripped, v.dead AS disabled,
          v.since IS NULL AND NOT v.was_running AS resumed,
          v.was_enabled, e.paused_until, e.disabled_reason, v.since, v.failures
), emitted AS (
    -- Operational events (sql/0013_operational_events.sql), in this same
    -- transaction: only for endpoints whose state changed, and a row is
    -- written only if some other endpoint subscribes to that type.
    SELECT tailhook.emit_endpoint_event(x.type, w.id, x.details) AS written
      FROM written w
     CROSS JOIN LATERAL (VALUES
         ('tailhook.endpoint.paused', w.tripped AND NOT w.disabled, jsonb_build_object(
             'reason', 'circuit breaker: every attempt failed since ' || to_char(w.since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',
             'paused_until', w.paused_until, 'failing_since', w.since, 'consecutive_failures', w.failures)),
         ('tailhook.endpoint.disabled', w.disabled AND w.was_enabled, jsonb_build_object(
             'reason', w.disabled_reason, 'cause', 'failing')),
         ('tailhook.endpoint.resumed', w.resumed AND NOT w.disabled, jsonb_build_object(
             'reason', 'a delivery succeeded after the pause'))
     ) AS x(type, happened, details)
     WHERE x.happened
)
SELECT h.id, w.name, w.tripped, w.disabled, w.resumed,
       -- Counted, or no row this batch would change (gone, or nothing to reset).
       s.id IS NOT NULL
         OR NOT EXISTS (SELECT 1 FROM tailhook.endpoints x
                         WHERE x.id = h.id
                           AND NOT (h.ok > 0 AND x.consecutive_failures = 0 AND x.failing_since IS NULL
                                    AND x.paused_until IS NULL)) AS done
  FROM h
  LEFT JOIN s ON s.id = h.id
  LEFT JOIN written w ON w.id = h.id
 -- (referenced so that the events are written)
 WHERE (SELECT count(*) FROM emitted) >= 0
