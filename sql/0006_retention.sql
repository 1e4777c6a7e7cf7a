-- tailhook schema, version 6: retention (deleting old finished work) and
-- delivery tracing in SQL. Plain SQL, safe to re-run.

-- Finished deliveries by age, per status: the retention task reads the oldest
-- of each status from the index deliveries_finished (status, completed_at),
-- built without blocking writes by 0010_concurrent_indexes.sql. Only finished
-- rows are in it: a claim never reads it, and a delivery enters it once, when
-- its result is written.

-- One row per delivery with its event, endpoint and last attempt: what a
-- receiver's webhook-id (event_id) became, in one query:
--   SELECT * FROM tailhook.delivery_log WHERE event_id = '...';
--   SELECT * FROM tailhook.delivery_log WHERE endpoint = 'billing' ORDER BY delivery_id DESC LIMIT 20;
-- Both are index lookups (outbox.event_id is unique; endpoints.name is
-- unique; deliveries by outbox_id and by endpoint_id; attempts by delivery_id).
-- Only what retention has kept is here.
CREATE OR REPLACE VIEW tailhook.delivery_log AS
SELECT
    d.id AS delivery_id,
    o.event_id,
    o.event_type,
    o.tenant,
    e.name AS endpoint,
    d.status,
    d.attempts,
    o.created_at AS published_at,
    d.completed_at,
    -- when the next attempt is due; NULL once finished
    CASE WHEN d.status IN ('pending', 'retrying') THEN d.next_attempt_at END AS next_attempt_at,
    -- a replica is sending it right now
    coalesce(d.locked_until > now(), false) AS in_flight,
    a.started_at AS last_attempt_at,
    a.status_code AS last_status_code,
    a.error_kind AS last_error_kind,
    a.error AS last_attempt_error,
    -- why the delivery gave up or is retrying (for a final failure, the reason)
    d.last_error,
    a.duration_ms AS last_duration_ms,
    o.id AS outbox_id,
    d.endpoint_id
FROM tailhook.deliveries d
JOIN tailhook.outbox o ON o.id = d.outbox_id
JOIN tailhook.endpoints e ON e.id = d.endpoint_id
LEFT JOIN LATERAL (
    SELECT at.started_at, at.status_code, at.error_kind, at.error, at.duration_ms
      FROM tailhook.attempts at
     WHERE at.delivery_id = d.id
     ORDER BY at.attempt DESC, at.id DESC
     LIMIT 1
) a ON true;

-- endpoint_stats, with success rates that say what they count:
-- delivery_success_rate: of the finished deliveries retained (succeeded /
-- (succeeded + failed)); a delivery that is still retrying counts in neither.
-- attempt_success_rate_1h: of the HTTP attempts started in the last hour;
-- an endpoint failing every attempt shows 0 here at once.
-- The columns changed (success_rate became delivery_success_rate), so the
-- old view is dropped once; re-running this file replaces it in place.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                    WHERE attrelid = to_regclass('tailhook.endpoint_stats')
                      AND attname = 'attempt_success_rate_1h' AND NOT attisdropped) THEN
        DROP VIEW IF EXISTS tailhook.endpoint_stats;
    END IF;
END
$$;

CREATE OR REPLACE VIEW tailhook.endpoint_stats AS
SELECT
    e.id AS endpoint_id,
    e.name,
    e.enabled,
    e.paused_until,
    coalesce(d.delivered, 0) AS delivered,
    coalesce(d.failed, 0) AS failed,
    coalesce(d.pending, 0) AS pending,
    coalesce(d.retrying, 0) AS retrying,
    CASE WHEN coalesce(d.delivered, 0) + coalesce(d.failed, 0) = 0 THEN NULL
         ELSE round(d.delivered::numeric / (d.delivered + d.failed), 4) END AS delivery_success_rate,
    coalesce(a.attempts_1h, 0) AS attempts_1h,
    coalesce(a.failed_attempts_1h, 0) AS failed_attempts_1h,
    CASE WHEN coalesce(a.attempts_1h, 0) = 0 THEN NULL
         ELSE round((a.attempts_1h - a.failed_attempts_1h)::numeric / a.attempts_1h, 4) END AS attempt_success_rate_1h,
    a.last_success_at,
    a.last_failure_at,
    a.latency_p50_ms,
    a.latency_p99_ms,
    d.oldest_undelivered_at
FROM tailhook.endpoints e
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE dl.status = 'succeeded') AS delivered,
           count(*) FILTER (WHERE dl.status = 'failed') AS failed,
           count(*) FILTER (WHERE dl.status = 'pending') AS pending,
           count(*) FILTER (WHERE dl.status = 'retrying') AS retrying,
           min(dl.created_at) FILTER (WHERE dl.status IN ('pending', 'retrying')) AS oldest_undelivered_at
    FROM tailhook.deliveries dl WHERE dl.endpoint_id = e.id
) d ON true
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE at.started_at > now() - interval '1 hour') AS attempts_1h,
           count(*) FILTER (WHERE at.started_at > now() - interval '1 hour' AND at.error_kind IS NOT NULL) AS failed_attempts_1h,
           max(at.started_at) FILTER (WHERE at.error_kind IS NULL) AS last_success_at,
           max(at.started_at) FILTER (WHERE at.error_kind IS NOT NULL) AS last_failure_at,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY at.duration_ms) AS latency_p50_ms,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY at.duration_ms) AS latency_p99_ms
    FROM tailhook.attempts at
    JOIN tailhook.deliveries dl ON dl.id = at.delivery_id
    WHERE dl.endpoint_id = e.id
) a ON true;
