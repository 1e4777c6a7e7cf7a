-- One batch of retention: delete up to $3 finished deliveries older than
-- their age (succeeded: $1 ms since completed_at; failed and cancelled: $2 ms),
-- oldest first, each status read from the deliveries_finished index. Their
-- attempts go with them (the deliveries_cascade trigger), and so does each
-- outbox row left with no delivery at all.
-- Rows locked by anyone (a redelivery being written) are skipped, and so are
-- leased rows (a cancelled delivery whose request is still in flight). The
-- conditions are repeated on the locked row so that a delivery redelivered
-- meanwhile is not taken.
-- Returns deliveries deleted, their attempts (from deliveries.attempts, which
-- counts the attempt rows) and outbox rows deleted.
-- Only rows below the periods tailhook manages (event_at under
-- tailhook.partition_floor: the DEFAULT partition's rows not awaiting a
-- partition, and a converted installation's legacy partition): the managed
-- periods are dropped whole (tailhook.partitions_drop), and their partitions
-- are pruned from these scans.
-- $1 succeeded age ms, $2 failed and cancelled age ms, $3 batch size
WITH floor AS MATERIALIZED (
    SELECT tailhook.partition_floor('deliveries') AS at, tailhook.partition_floor('outbox') AS outbox_at
), candidates AS (
    (SELECT id FROM tailhook.deliveries
      WHERE status = 'succeeded' AND completed_at < now() - $1::bigint::float8 * interval '1 millisecond'
        AND event_at < (SELECT at FROM floor)
      ORDER BY status, completed_at LIMIT $3::bigint)
    UNION ALL
    (SELECT id FROM tailhook.deliveries
      WHERE status = 'failed' AND completed_at < now() - $2::bigint::float8 * interval '1 millisecond'
        AND event_at < (SELECT at FROM floor)
      ORDER BY status, completed_at LIMIT $3::bigint)
    UNION ALL
    (SELECT id FROM tailhook.deliveries
      WHERE status = 'cancelled' AND completed_at < now() - $2::bigint::float8 * interval '1 millisecond'
        AND event_at < (SELECT at FROM floor)
      ORDER BY status, completed_at LIMIT $3::bigint)
), doomed AS MATERIALIZED (
    SELECT d.id
      FROM tailhook.deliveries d
     WHERE d.id IN (SELECT id FROM candidates)
       AND d.event_at < (SELECT at FROM floor)
       AND d.status IN ('succeeded', 'failed', 'cancelled')
       AND d.completed_at < now() - (CASE WHEN d.status = 'succeeded' THEN $1::bigint ELSE $2::bigint END)::float8
                                    * interval '1 millisecond'
       AND (d.locked_until IS NULL OR d.locked_until < now())
     LIMIT $3::bigint
       FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM tailhook.deliveries d
     USING doomed
     WHERE d.id = doomed.id
    RETURNING d.id, d.outbox_id, d.attempts
), outbox_gone AS (
    -- Every delivery of these events is deleted now (the others of an event
    -- are still visible in this statement's snapshot, hence the NOT IN).
    -- Deliveries are never added to a dispatched event, so none can appear.
    -- Only events below the managed periods (the others go with their
    -- period's partition), and each one's remaining deliveries looked up
    -- by index, as a subplan per event: an anti join hashed every
    -- deliveries partition (1.7 s a call at 2,000 events/s, deleting nothing).
    DELETE FROM tailhook.outbox o
     WHERE o.id IN (SELECT outbox_id FROM gone)
       AND o.created_at < (SELECT outbox_at FROM floor)
       AND (SELECT count(*) FROM (SELECT FROM tailhook.deliveries x
                                   WHERE x.outbox_id = o.id AND x.id NOT IN (SELECT id FROM gone) LIMIT 1) left_over) = 0
    RETURNING o.id
)
SELECT (SELECT count(*) FROM gone)::bigint AS deliveries,
       (SELECT coalesce(sum(attempts), 0) FROM gone)::bigint AS attempts,
       (SELECT count(*) FROM outbox_gone)::bigint AS outbox
