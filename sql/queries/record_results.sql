-- Write a batch of attempt results: update each delivery this replica still
-- holds under the same claim (locked_by, lease) and insert its attempt row.
-- A retry's next_attempt_at is the database's now() plus its delay, so
-- replicas' clocks never matter.
-- Each delivery is found by (id, event_at), its partition's key, and only in
-- the partitions of the batch's range ($15..$16): on PostgreSQL 15 a generic
-- plan sets up every partition a statement names unless its bounds are
-- parameters, and that set-up cost more than the writes (measured: a no-op
-- call 1.7x the unpartitioned one; with the range, 0.97x).
-- Returns the results not applied here: a late result (the lease was lost), a
-- delivery kept out of a dropped period (event_at '-infinity'), or gone. The
-- caller writes those with record_results_unapplied.sql, which looks them up
-- by id in every partition (rare, so that cost is paid only then).
-- $1 replica id, then one array per column ($14 the deliveries' event_at),
-- $15 and $16 the least and greatest of $14.
WITH r AS (
    SELECT *
      FROM unnest($2::bigint[], $3::int[], $4::text[], $5::bigint[], $6::int[],
                  $7::text[], $8::text[], $9::timestamptz[], $10::int[], $11::text[], $12::text[],
                  $13::bigint[], $14::timestamptz[])
        AS r(delivery_id, attempt, status, delay_ms, status_code,
             error_kind, error, started_at, duration_ms, response_body, last_error, lease, event_at)
), updated AS (
    UPDATE tailhook.deliveries d
       SET status = r.status,
           attempts = r.attempt,
           next_attempt_at = now() + r.delay_ms::float8 * interval '1 millisecond',
           locked_until = NULL,
           locked_by = NULL,
           lease = NULL,
           transform_claims = 0,
           last_status_code = r.status_code,
           last_error = r.last_error,
           updated_at = now(),
           completed_at = CASE WHEN r.status IN ('succeeded', 'failed') THEN now() END
      FROM r
     WHERE d.id = r.delivery_id
       AND d.event_at = r.event_at
       -- The batch's range of event_at: the partitions outside it are pruned
       -- when the executor starts, so this statement opens one or two,
       -- whatever the number of periods kept.
       AND d.event_at BETWEEN $15::timestamptz AND $16::timestamptz
       -- Never revive a finished or cancelled one. Written as NOT IN on
       -- purpose: `IN ('pending', 'retrying')` matches the partial index
       -- deliveries_due, and when the planner underestimates that index (no
       -- statistics yet, autovacuum off or behind) it scans every pending row
       -- for every result, quadratic in the batch (measured: 182 ms for 512
       -- results). This form leaves the primary key as the only way in.
       AND d.status NOT IN ('succeeded', 'failed', 'cancelled')
       AND d.locked_by = $1::text
       AND d.lease = r.lease
       AND d.attempts = r.attempt - 1
    RETURNING d.id, r.lease, d.event_at, d.redelivered_by
), inserted AS (
    -- Each attempt in its delivery's partition (its event's period).
    INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code, error_kind, error,
                                   response_body, requested_by, event_at)
    SELECT r.delivery_id, r.attempt, r.started_at, r.duration_ms, r.status_code, r.error_kind, r.error, r.response_body,
           u.redelivered_by, u.event_at
      FROM r JOIN updated u ON u.id = r.delivery_id AND u.lease = r.lease
)
SELECT r.delivery_id, r.lease
  FROM r
 WHERE NOT EXISTS (SELECT 1 FROM updated u WHERE u.id = r.delivery_id AND u.lease = r.lease)
