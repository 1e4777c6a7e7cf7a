-- Write a batch of attempt results: update each delivery this replica still
-- holds under the same claim (locked_by, lease) and insert its attempt row.
-- A result for a delivery claimed again since (by any replica) changes nothing.
-- A retry's next_attempt_at is the database's now() plus its delay, so
-- replicas' clocks never matter.
-- $1 replica id, then one array per column.
WITH r AS (
    SELECT *
      FROM unnest($2::bigint[], $3::int[], $4::text[], $5::bigint[], $6::int[],
                  $7::text[], $8::text[], $9::timestamptz[], $10::int[], $11::text[], $12::text[],
                  $13::bigint[])
        AS r(delivery_id, attempt, status, delay_ms, status_code,
             error_kind, error, started_at, duration_ms, response_body, last_error, lease)
), updated AS (
    UPDATE tailhook.deliveries d
       SET status = r.status,
           attempts = r.attempt,
           next_attempt_at = now() + r.delay_ms * interval '1 millisecond',
           locked_until = NULL,
           locked_by = NULL,
           lease = NULL,
           last_status_code = r.status_code,
           last_error = r.last_error,
           updated_at = now(),
           completed_at = CASE WHEN r.status IN ('succeeded', 'failed') THEN now() END
      FROM r
     WHERE d.id = r.delivery_id
       AND d.status IN ('pending', 'retrying') -- never revive a cancelled one
       AND d.locked_by = $1::text
       AND d.lease = r.lease
       AND d.attempts = r.attempt - 1
    RETURNING d.id, r.lease
)
INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code, error_kind, error, response_body)
SELECT r.delivery_id, r.attempt, r.started_at, r.duration_ms, r.status_code, r.error_kind, r.error, r.response_body
  FROM r JOIN updated u ON u.id = r.delivery_id AND u.lease = r.lease
