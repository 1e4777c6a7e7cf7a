-- The results record_results.sql returned as not applied (it runs only when
-- there are some, so its lookups by id in every partition cost nothing on
-- the usual path). None can apply as there since: a lease once lost is never
-- held again.
-- A late result (the lease was lost: the delivery was claimed again since,
-- by any replica, or cancelled, finished or released meanwhile) still gets
-- its attempt row, because the request was made, but leaves the delivery's
-- state to whoever holds it now, with one exception: a late 2xx finishes a
-- delivery that is still pending or retrying (the receiver has the event),
-- and a result the new holder writes afterwards then finds it finished.
-- Returns the late results, which count neither toward the circuit breaker
-- nor toward 410 Gone disabling. An attempt of a delivery redelivered by
-- hand carries who asked (the delivery's redelivered_by).
-- A delivery moved meanwhile (retention keeps it out of a dropped period with
-- event_at '-infinity', sql/0031_partitions.sql) is looked up by id alone,
-- like a late result.
-- $1 replica id, then one array per column ($14 the deliveries' event_at).
WITH r AS (
    SELECT *
      FROM unnest($2::bigint[], $3::int[], $4::text[], $5::bigint[], $6::int[],
                  $7::text[], $8::text[], $9::timestamptz[], $10::int[], $11::text[], $12::text[],
                  $13::bigint[], $14::timestamptz[])
        AS r(delivery_id, attempt, status, delay_ms, status_code,
             error_kind, error, started_at, duration_ms, response_body, last_error, lease, event_at)
), moved AS (
    -- Still held under this lease, but no longer at the claim's event_at
    -- (kept by retention when its period was dropped): applied as
    -- record_results.sql would, found by id in every partition.
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
       AND d.event_at <> r.event_at
       -- NOT IN, not IN ('pending', 'retrying'): see record_results.sql
       AND d.status NOT IN ('succeeded', 'failed', 'cancelled')
       AND d.locked_by = $1::text
       AND d.lease = r.lease
       AND d.attempts = r.attempt - 1
    RETURNING d.id, r.lease, d.event_at, d.redelivered_by
), late AS (
    -- Skipped: a delivery deleted meanwhile (it keeps no attempts), and a
    -- result this very write already stored (a retry after a lost answer).
    SELECT r.*, (SELECT d.event_at FROM tailhook.deliveries d WHERE d.id = r.delivery_id LIMIT 1) AS row_event_at
      FROM r
     WHERE NOT EXISTS (SELECT 1 FROM moved m WHERE m.id = r.delivery_id AND m.lease = r.lease)
       AND EXISTS (SELECT 1 FROM tailhook.deliveries d WHERE d.id = r.delivery_id)
       AND NOT EXISTS (SELECT 1 FROM tailhook.attempts a
                        WHERE a.delivery_id = r.delivery_id AND a.attempt = r.attempt AND a.started_at = r.started_at)
), finished AS (
    UPDATE tailhook.deliveries d
       SET status = 'succeeded',
           attempts = greatest(d.attempts, l.attempt),
           next_attempt_at = NULL,
           locked_until = NULL,
           locked_by = NULL,
           lease = NULL,
           last_status_code = l.status_code,
           last_error = NULL,
           updated_at = now(),
           completed_at = now()
      FROM late l
     WHERE d.id = l.delivery_id
       AND l.status = 'succeeded'
       AND d.status NOT IN ('succeeded', 'failed', 'cancelled') -- see above
       AND NOT EXISTS (SELECT 1 FROM moved m WHERE m.id = d.id) -- one update per row and statement
), inserted AS (
    -- Each attempt in its delivery's partition (its event's period).
    INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code, error_kind, error,
                                   response_body, requested_by, event_at)
    SELECT r.delivery_id, r.attempt, r.started_at, r.duration_ms, r.status_code, r.error_kind, r.error, r.response_body,
           m.redelivered_by, m.event_at
      FROM r JOIN moved m ON m.id = r.delivery_id AND m.lease = r.lease
    UNION ALL
    SELECT l.delivery_id, l.attempt, l.started_at, l.duration_ms, l.status_code, l.error_kind, l.error, l.response_body,
           NULL, l.row_event_at
      FROM late l
)
SELECT l.delivery_id, l.lease FROM late l
