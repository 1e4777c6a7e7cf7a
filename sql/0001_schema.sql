-- tailhook schema, version 1: outbox, endpoints, deliveries, attempts.
-- Plain SQL, safe to re-run: this file only creates what is missing and never
-- changes what exists (tables and indexes IF NOT EXISTS, functions, triggers
-- and views only when absent), so re-applying it by hand after later files
-- changed some of its objects (touch_updated_at in 0002 and 0004, the
-- redeliver functions in 0003, endpoint_stats in 0006) turns none of them
-- back. Later changes to these objects belong in later files.

CREATE SCHEMA IF NOT EXISTS tailhook;

-- What applications write. `dispatched_at IS NULL` is the only claim
-- criterion: identity values commit out of order, so nothing reads by position.
CREATE TABLE IF NOT EXISTS tailhook.outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    event_type    text NOT NULL CONSTRAINT outbox_event_type_not_empty CHECK (event_type <> ''),
    payload       jsonb NOT NULL,
    tenant        text,
    ordering_key  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);

-- Sees only undispatched rows: stays tiny however large the outbox grows.
CREATE INDEX IF NOT EXISTS outbox_undispatched
    ON tailhook.outbox (id) WHERE dispatched_at IS NULL;

-- One empty NOTIFY per inserting statement (not per row): a wake-up, not a message.
DO $do$
BEGIN
    IF to_regprocedure('tailhook.notify_outbox()') IS NULL THEN
        CREATE FUNCTION tailhook.notify_outbox() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        BEGIN
            PERFORM pg_notify('tailhook_outbox', '');
            RETURN NULL;
        END
        $fn$;
    END IF;
END
$do$;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'outbox_notify' AND tgrelid = 'tailhook.outbox'::regclass) THEN
        CREATE TRIGGER outbox_notify
            AFTER INSERT ON tailhook.outbox
            FOR EACH STATEMENT EXECUTE FUNCTION tailhook.notify_outbox();
    END IF;
END
$do$;

DO $do$
BEGIN
    -- (version 25 replaced it with a six-argument form: not made again)
    IF to_regprocedure('tailhook.publish(text, jsonb, text, text)') IS NULL
       AND to_regprocedure('tailhook.publish(text, jsonb, text, text, text, text)') IS NULL THEN
        CREATE FUNCTION tailhook.publish(
            event_type   text,
            payload      jsonb,
            tenant       text DEFAULT NULL,
            ordering_key text DEFAULT NULL
        ) RETURNS uuid
        LANGUAGE sql AS $fn$
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key)
            VALUES (publish.event_type, publish.payload, publish.tenant, publish.ordering_key)
            RETURNING event_id
        $fn$;
    END IF;
END
$do$;

-- Where events go.
CREATE TABLE IF NOT EXISTS tailhook.endpoints (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text NOT NULL UNIQUE CONSTRAINT endpoints_name_not_empty CHECK (name <> ''),
    tenant             text,
    url                text NOT NULL CONSTRAINT endpoints_url_http CHECK (url ~* '^https?://[^/?#]+'),
    event_types        text[] NOT NULL DEFAULT '{*}',
    filter             jsonb,
    filter_path        jsonpath,
    secrets            text[] NOT NULL DEFAULT '{}',
    headers            jsonb NOT NULL DEFAULT '{}' CONSTRAINT endpoints_headers_object CHECK (jsonb_typeof(headers) = 'object'),
    enabled            boolean NOT NULL DEFAULT true,
    disabled_reason    text,
    paused_until       timestamptz,
    max_attempts       int CONSTRAINT endpoints_max_attempts_positive CHECK (max_attempts > 0),
    timeout_ms         int CONSTRAINT endpoints_timeout_ms_positive CHECK (timeout_ms > 0),
    rate_limit_per_sec int CONSTRAINT endpoints_rate_limit_positive CHECK (rate_limit_per_sec > 0),
    max_in_flight      int CONSTRAINT endpoints_max_in_flight_positive CHECK (max_in_flight > 0),
    ordered            boolean NOT NULL DEFAULT false,
    managed_by         text NOT NULL DEFAULT 'sql' CONSTRAINT endpoints_managed_by_known CHECK (managed_by IN ('sql', 'config')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- updated_at moves on every change, so running replicas notice SQL edits.
DO $do$
BEGIN
    IF to_regprocedure('tailhook.touch_updated_at()') IS NULL THEN
        CREATE FUNCTION tailhook.touch_updated_at() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        BEGIN
            NEW.updated_at := clock_timestamp();
            RETURN NEW;
        END
        $fn$;
    END IF;
END
$do$;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'endpoints_touch' AND tgrelid = 'tailhook.endpoints'::regclass) THEN
        CREATE TRIGGER endpoints_touch
            BEFORE UPDATE ON tailhook.endpoints
            FOR EACH ROW EXECUTE FUNCTION tailhook.touch_updated_at();
    END IF;
END
$do$;

-- `*` matches everything, `prefix.*` every type starting with `prefix.`,
-- anything else matches exactly.
DO $do$
BEGIN
    IF to_regprocedure('tailhook.event_type_matches(text[], text)') IS NULL THEN
        CREATE FUNCTION tailhook.event_type_matches(patterns text[], event_type text)
        RETURNS boolean
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
            SELECT EXISTS (
                SELECT 1 FROM unnest(patterns) AS p
                WHERE p = '*'
                   OR p = event_type
                   OR (right(p, 2) = '.*' AND starts_with(event_type, left(p, -1)))
            )
        $fn$;
    END IF;
END
$do$;

-- One row per (event, endpoint).
-- outbox_id → outbox.id and endpoint_id → endpoints.id are references without
-- FOREIGN KEY constraints: rows are only ever created by tailhook's fan-out
-- from rows that exist, and a foreign-key check on every insert costs about
-- 9 µs of database CPU per row on the hot path. Deletes still cascade, by the
-- statement-level triggers below (they cost only when a parent is deleted).
CREATE TABLE IF NOT EXISTS tailhook.deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id        bigint NOT NULL,
    endpoint_id      bigint NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
        CONSTRAINT deliveries_status_known
        CHECK (status IN ('pending', 'retrying', 'succeeded', 'failed', 'cancelled')),
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz DEFAULT now(),
    locked_until     timestamptz,
    locked_by        text,
    -- Which claim holds the lease: a result is kept only if it carries the
    -- same (locked_by, lease) pair, so a re-claim always wins over a late result.
    lease            bigint,
    last_status_code int,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    CONSTRAINT deliveries_outbox_endpoint_unique UNIQUE (outbox_id, endpoint_id)
);

-- Only work that is still to be done, per endpoint: finished rows never slow
-- a claim, and the pending rows of a disabled or paused endpoint are never read.
CREATE INDEX IF NOT EXISTS deliveries_due
    ON tailhook.deliveries (endpoint_id, next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX IF NOT EXISTS deliveries_endpoint
    ON tailhook.deliveries (endpoint_id);

-- One row per HTTP attempt. delivery_id → deliveries.id (cascading by trigger).
CREATE TABLE IF NOT EXISTS tailhook.attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id   bigint NOT NULL,
    attempt       int NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   int NOT NULL,
    status_code   int,
    error_kind    text CONSTRAINT attempts_error_kind_known CHECK (error_kind IN (
        'timeout', 'connect', 'dns', 'tls', 'http_status', 'redirect',
        'blocked_address', 'invalid_request', 'payload_too_large', 'body_read')),
    error         text,
    response_body text
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON tailhook.attempts (delivery_id);

-- Deleting an outbox row or an endpoint deletes its deliveries; deleting a
-- delivery deletes its attempts. Set-based, once per statement.
DO $do$
BEGIN
    IF to_regprocedure('tailhook.cascade_delete()') IS NULL THEN
        CREATE FUNCTION tailhook.cascade_delete() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        BEGIN
            CASE TG_TABLE_NAME
            WHEN 'outbox' THEN
                DELETE FROM tailhook.deliveries d USING old_rows o WHERE d.outbox_id = o.id;
            WHEN 'endpoints' THEN
                DELETE FROM tailhook.deliveries d USING old_rows e WHERE d.endpoint_id = e.id;
            WHEN 'deliveries' THEN
                DELETE FROM tailhook.attempts a USING old_rows d WHERE a.delivery_id = d.id;
            END CASE;
            RETURN NULL;
        END
        $fn$;
    END IF;
END
$do$;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'outbox_cascade' AND tgrelid = 'tailhook.outbox'::regclass) THEN
        CREATE TRIGGER outbox_cascade AFTER DELETE ON tailhook.outbox
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION tailhook.cascade_delete();
    END IF;
END
$do$;
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'endpoints_cascade' AND tgrelid = 'tailhook.endpoints'::regclass) THEN
        CREATE TRIGGER endpoints_cascade AFTER DELETE ON tailhook.endpoints
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION tailhook.cascade_delete();
    END IF;
END
$do$;
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'deliveries_cascade' AND tgrelid = 'tailhook.deliveries'::regclass) THEN
        CREATE TRIGGER deliveries_cascade AFTER DELETE ON tailhook.deliveries
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION tailhook.cascade_delete();
    END IF;
END
$do$;

-- Per-endpoint health, for dashboards and `tailhook status`. Created only
-- when absent: 0006_retention.sql replaces it (success_rate became
-- delivery_success_rate, next to attempt rates), and re-running this file
-- by hand must not turn it back.
DO $$
BEGIN
    IF to_regclass('tailhook.endpoint_stats') IS NULL THEN
        CREATE VIEW tailhook.endpoint_stats AS
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
                 ELSE round(d.delivered::numeric / (d.delivered + d.failed), 4) END AS success_rate,
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
            SELECT max(at.started_at) FILTER (WHERE at.error_kind IS NULL) AS last_success_at,
                   max(at.started_at) FILTER (WHERE at.error_kind IS NOT NULL) AS last_failure_at,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY at.duration_ms) AS latency_p50_ms,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY at.duration_ms) AS latency_p99_ms
            FROM tailhook.attempts at
            JOIN tailhook.deliveries dl ON dl.id = at.delivery_id
            WHERE dl.endpoint_id = e.id
        ) a ON true;
    END IF;
END
$$;

-- Put one delivery back to be sent now; its attempt history stays.
DO $do$
BEGIN
    IF to_regprocedure('tailhook.redeliver(bigint)') IS NULL THEN
        CREATE FUNCTION tailhook.redeliver(delivery_id bigint) RETURNS boolean
        LANGUAGE sql AS $fn$
            WITH r AS (
                UPDATE tailhook.deliveries d
                   SET status = CASE WHEN d.attempts = 0 THEN 'pending' ELSE 'retrying' END,
                       next_attempt_at = now(), locked_until = NULL, locked_by = NULL,
                       completed_at = NULL, updated_at = now()
                 WHERE d.id = redeliver.delivery_id
                RETURNING 1
            )
            SELECT EXISTS (SELECT 1 FROM r)
        $fn$;
    END IF;
END
$do$;

-- Put an endpoint's failed deliveries (completed since `since`) back to be sent now.
DO $do$
BEGIN
    IF to_regprocedure('tailhook.redeliver_failed(text, timestamptz)') IS NULL THEN
        CREATE FUNCTION tailhook.redeliver_failed(endpoint_name text, since timestamptz)
        RETURNS bigint
        LANGUAGE sql AS $fn$
            WITH r AS (
                UPDATE tailhook.deliveries d
                   SET status = 'retrying', next_attempt_at = now(), locked_until = NULL,
                       locked_by = NULL, completed_at = NULL, updated_at = now()
                  FROM tailhook.endpoints e
                 WHERE e.name = redeliver_failed.endpoint_name
                   AND d.endpoint_id = e.id
                   AND d.status = 'failed'
                   AND d.completed_at >= redeliver_failed.since
                RETURNING 1
            )
            SELECT count(*) FROM r
        $fn$;
    END IF;
END
$do$;
