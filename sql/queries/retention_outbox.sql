-- Outbox rows that never had a delivery (no endpoint matched), or whose
-- deliveries were deleted with their endpoint: a walk over the outbox in id
-- order (primary key), one window of $3 rows after id $1 per call. In the
-- window, rows dispatched more than $2 ms ago with no delivery are deleted.
-- Returns rows deleted, and where the next call starts: after the last row
-- before the first one that is not yet old and dispatched (NULL: the window
-- was empty), and whether the walk reached that point (then it waits for the
-- next run instead of going on).
-- Only rows below the periods tailhook manages (created_at under
-- tailhook.partition_floor: events kept when their period was dropped, rows
-- of a converted installation's legacy partition): a managed period's
-- events go with its partition (tailhook.partitions_drop), and the walk
-- never reads those partitions (pruned when the statement starts; a walk
-- over every period cost 2.5 s a call at 2,000 events/s).
-- $1 after id, $2 age ms, $3 window size
WITH floor AS MATERIALIZED (
    SELECT tailhook.partition_floor('outbox') AS at
), win AS MATERIALIZED (
    SELECT o.id,
           o.dispatched_at IS NOT NULL AND o.created_at < now() - $2::bigint::float8 * interval '1 millisecond'
               AND o.dispatched_at < now() - $2::bigint::float8 * interval '1 millisecond' AS old
      FROM tailhook.outbox o
     WHERE o.id > $1::bigint
       AND o.created_at < (SELECT at FROM floor)
     ORDER BY o.id
     LIMIT $3::bigint
), doomed AS (
    SELECT o.id
      FROM tailhook.outbox o
     WHERE o.id IN (SELECT id FROM win WHERE old)
       AND o.created_at < (SELECT at FROM floor)
       AND o.dispatched_at < now() - $2::bigint::float8 * interval '1 millisecond'
       AND NOT EXISTS (SELECT 1 FROM tailhook.deliveries d WHERE d.outbox_id = o.id)
       FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM tailhook.outbox o USING doomed
     WHERE o.id = doomed.id AND o.created_at < (SELECT at FROM floor)
    RETURNING o.id
), stop AS (
    SELECT min(id) AS id FROM win WHERE NOT old
)
SELECT (SELECT count(*) FROM gone)::bigint AS outbox,
       coalesce((SELECT max(id) FROM win WHERE id < coalesce((SELECT id FROM stop), 9223372036854775807)), $1::bigint) AS next_after,
       (SELECT id FROM stop) IS NOT NULL OR (SELECT count(*) FROM win) < $3::bigint AS done
