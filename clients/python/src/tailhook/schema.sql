-- tailhook 0.1.0 schema steps (18 pending; the latest version is 18).
-- Run them in order. A step marked `transactional` is one statement and
-- may run inside your tool's transaction; each step marked `outside a
-- transaction` must run on its own in autocommit. `psql -v ON_ERROR_STOP=1
-- -f` runs the whole file correctly. Applying it again changes nothing.

-- tailhook step 1 schema: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 1) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 1: outbox, endpoints, deliveries, attempts.
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
    IF to_regprocedure('tailhook.publish(text, jsonb, text, text)') IS NULL THEN
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
$do$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (1, 'schema');
END
$tailhook_step$;

-- tailhook step 2 breaker: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 2) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 2: circuit-breaker state per endpoint.
-- Plain SQL, safe to re-run.

-- Failures since the endpoint's last success (retryable ones only), and when
-- the first of them happened. The breaker is open while both pass their
-- thresholds; paused_until then says until when nothing is sent.
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS consecutive_failures int NOT NULL DEFAULT 0;
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS failing_since timestamptz;

-- updated_at (which running replicas watch to reload endpoints) moves only
-- when configuration changes, not on every health update.
CREATE OR REPLACE FUNCTION tailhook.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    health CONSTANT text[] := ARRAY['paused_until', 'consecutive_failures', 'failing_since', 'updated_at'];
BEGIN
    IF to_jsonb(NEW) - health IS DISTINCT FROM to_jsonb(OLD) - health THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (2, 'breaker');
END
$tailhook_step$;

-- tailhook step 3 ordering: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 3) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 3: per-key ordering for endpoints with ordered = true.
-- Plain SQL, safe to re-run.

-- The event's ordering_key, copied only for deliveries to ordered endpoints.
ALTER TABLE tailhook.deliveries ADD COLUMN IF NOT EXISTS ordering_key text;

-- The head of each key (its oldest unfinished delivery) is found with the
-- index deliveries_ordered, built without blocking writes by 0010_concurrent_indexes.sql.

-- Redelivery never touches a delivery that is being sent right now, and
-- clears the claim token along with the lease.
CREATE OR REPLACE FUNCTION tailhook.redeliver(delivery_id bigint) RETURNS boolean
LANGUAGE sql AS $$
    WITH r AS (
        UPDATE tailhook.deliveries d
           SET status = CASE WHEN d.attempts = 0 THEN 'pending' ELSE 'retrying' END,
               next_attempt_at = now(), locked_until = NULL, locked_by = NULL, lease = NULL,
               completed_at = NULL, updated_at = now()
         WHERE d.id = redeliver.delivery_id
           AND (d.locked_until IS NULL OR d.locked_until < now())
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM r)
$$;

CREATE OR REPLACE FUNCTION tailhook.redeliver_failed(endpoint_name text, since timestamptz)
RETURNS bigint
LANGUAGE sql AS $$
    WITH r AS (
        UPDATE tailhook.deliveries d
           SET status = 'retrying', next_attempt_at = now(), locked_until = NULL,
               locked_by = NULL, lease = NULL, completed_at = NULL, updated_at = now()
          FROM tailhook.endpoints e
         WHERE e.name = redeliver_failed.endpoint_name
           AND d.endpoint_id = e.id
           AND d.status = 'failed'
           AND d.completed_at >= redeliver_failed.since
        RETURNING 1
    )
    SELECT count(*) FROM r
$$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (3, 'ordering');
END
$tailhook_step$;

-- tailhook step 4 endpoint_bounds: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 4) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 4: what an endpoint row may hold, and why a row
-- tailhook cannot use is refused. Plain SQL, safe to re-run.
--
-- The same bounds are checked by tailhook itself (for the config file, and
-- for rows written before these constraints existed); keep the numbers in
-- step with src/rules.rs.

-- Set by tailhook when a row cannot be used (a malformed value written with
-- SQL); NULL when the row is fine. Its deliveries fail with this reason.
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS invalid_reason text;

-- `whsec_` followed by the padded base64 of 24 to 64 bytes (Standard
-- Webhooks), at most 10 secrets, one-dimensional, no NULL element.
CREATE OR REPLACE FUNCTION tailhook.secrets_valid(secrets text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_ndims(secrets), 1) = 1
       AND coalesce(cardinality(secrets), 0) <= 10
       AND NOT EXISTS (
           SELECT 1 FROM unnest(secrets) AS s
            WHERE s IS NULL
               OR s !~ '^whsec_[A-Za-z0-9+/]+={0,2}$'
               OR (length(s) - 6) % 4 <> 0
               -- decoded length: 3 bytes per 4 characters, less the padding
               OR (length(s) - 6) / 4 * 3 - (length(s) - length(rtrim(s, '='))) NOT BETWEEN 24 AND 64)
$$;

-- One-dimensional, 1 to 100 non-empty patterns.
CREATE OR REPLACE FUNCTION tailhook.event_types_valid(patterns text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_ndims(patterns) = 1
       AND cardinality(patterns) BETWEEN 1 AND 100
       AND NOT EXISTS (SELECT 1 FROM unnest(patterns) AS p WHERE p IS NULL OR p = '')
$$;

-- At most 32 headers, string values, each name and value at most 4 KiB,
-- all of them together at most 16 KiB.
CREATE OR REPLACE FUNCTION tailhook.headers_valid(headers jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_typeof(headers) = 'object'
       AND (SELECT count(*) <= 32
                   AND coalesce(bool_and(jsonb_typeof(h.value) = 'string'
                                         AND octet_length(h.key) <= 4096
                                         AND octet_length(h.value #>> '{}') <= 4096), true)
                   AND coalesce(sum(octet_length(h.key) + octet_length(h.value #>> '{}')), 0) <= 16384
              FROM jsonb_each(CASE WHEN jsonb_typeof(headers) = 'object' THEN headers ELSE '{}' END) AS h)
$$;

-- Constraints are added NOT VALID: they hold for every row written from now
-- on, and an existing row that breaks one is not refused by the migration
-- (tailhook marks it invalid instead, see invalid_reason).
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('endpoints_secrets_valid', 'CHECK (tailhook.secrets_valid(secrets))'),
        ('endpoints_event_types_valid', 'CHECK (tailhook.event_types_valid(event_types))'),
        ('endpoints_headers_valid', 'CHECK (tailhook.headers_valid(headers))'),
        ('endpoints_url_length', 'CHECK (length(url) <= 2048)'),
        ('endpoints_max_attempts_max', 'CHECK (max_attempts <= 1000)'),
        ('endpoints_timeout_ms_max', 'CHECK (timeout_ms <= 60000)'),
        ('endpoints_rate_limit_max', 'CHECK (rate_limit_per_sec <= 10000)'),
        ('endpoints_max_in_flight_max', 'CHECK (max_in_flight <= 1000)')
    ) AS v(name, def)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_constraint
                        WHERE conrelid = 'tailhook.endpoints'::regclass AND conname = c.name) THEN
            EXECUTE format('ALTER TABLE tailhook.endpoints ADD CONSTRAINT %I %s NOT VALID', c.name, c.def);
        END IF;
    END LOOP;
END
$$;

-- invalid_reason is tailhook's bookkeeping, like the breaker's columns:
-- writing it does not count as a configuration change.
CREATE OR REPLACE FUNCTION tailhook.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    health CONSTANT text[] := ARRAY['paused_until', 'consecutive_failures', 'failing_since', 'invalid_reason', 'updated_at'];
BEGIN
    IF to_jsonb(NEW) - health IS DISTINCT FROM to_jsonb(OLD) - health THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (4, 'endpoint_bounds');
END
$tailhook_step$;

-- tailhook step 5 replicas: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 5) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 5: replicas show that they are alive, so a dead
-- one's leases are taken over at once instead of when they expire.
-- Plain SQL, safe to re-run.

-- One row per running tailhook process, written every 500 ms by the process
-- itself. A replica whose heartbeat is 2 s old is dead; its leases are due.
-- alive_since is when its current unbroken run of heartbeats began: a
-- replica judges others only after its own has lasted 2 s, so after a
-- database restart or an outage that stopped everyone's heartbeats, nobody
-- takes over a live replica's work while it is reconnecting.
CREATE TABLE IF NOT EXISTS tailhook.replicas (
    name         text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    alive_since  timestamptz NOT NULL DEFAULT now()
);$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (5, 'replicas');
END
$tailhook_step$;

-- tailhook step 6 retention: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 6) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 6: retention (deleting old finished work) and
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
) a ON true;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (6, 'retention');
END
$tailhook_step$;

-- tailhook step 7 status: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 7) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 7: finished deliveries by endpoint and completion
-- time, so `tailhook status` counts an endpoint's recent outcomes with an
-- index-only range scan instead of reading every delivery it ever had.
-- Partial, one per outcome (deliveries_succeeded, deliveries_failed): a
-- delivery gets one entry, when it finishes (unfinished rows, the hot ones,
-- have none), and the status is in the predicate rather than the key, which
-- keeps entries small (about 30 bytes). Both are built without blocking
-- writes by 0010_concurrent_indexes.sql; this version only reserves the number.
SELECT 1;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (7, 'status');
END
$tailhook_step$;

-- tailhook step 8 auto_disabled: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 8) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 8: an endpoint tailhook disabled itself (410 Gone,
-- failing for days) stays disabled across restarts until an operator
-- re-enables it or its configuration changes. Plain SQL, safe to re-run.

ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS auto_disabled boolean NOT NULL DEFAULT false;

-- Endpoints tailhook disabled before this column existed.
UPDATE tailhook.endpoints
   SET auto_disabled = true
 WHERE NOT enabled AND NOT auto_disabled
   AND (disabled_reason LIKE 'answered 410 Gone at %' OR disabled_reason LIKE 'failing since % without a success');

-- Re-enable an endpoint (whatever disabled it) and forget its failures.
CREATE OR REPLACE FUNCTION tailhook.enable_endpoint(endpoint_name text) RETURNS boolean
LANGUAGE sql AS $$
    WITH e AS (
        UPDATE tailhook.endpoints
           SET enabled = true, disabled_reason = NULL, auto_disabled = false, paused_until = NULL,
               consecutive_failures = 0, failing_since = NULL
         WHERE name = enable_endpoint.endpoint_name
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM e)
$$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (8, 'auto_disabled');
END
$tailhook_step$;

-- tailhook step 9 key_heads: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 9) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 9: an ordered endpoint's keys are found by their
-- heads, never by reading the deliveries waiting behind them.
-- Plain SQL, safe to re-run.
--
-- A keyed delivery to an ordered endpoint that waits behind an older
-- unfinished delivery of its key has no next_attempt_at (NULL): it is not due
-- yet, so due claims, which read deliveries_due (endpoint_id, next_attempt_at)
-- only up to now(), never read it, however long the backlog behind a head in
-- backoff. The fan-out inserts it so (sql/queries/dispatch.sql); when the
-- delivery ahead of it finishes (succeeded, failed, or cancelled by anyone)
-- or is deleted, the trigger below makes the key's new head due at once.
-- Whether a scheduled delivery may really go is still decided by the claim's
-- head check; these NULLs only keep the waiting ones out of its way.

-- Writes wait while this runs, so no head can finish between the upgrade
-- below and the trigger taking effect (its new head would be left waiting).
LOCK TABLE tailhook.deliveries IN SHARE MODE;

-- Deliveries written before this version that wait behind an older one.
UPDATE tailhook.deliveries d
   SET next_attempt_at = NULL
 WHERE d.ordering_key IS NOT NULL
   AND d.status = 'pending'
   AND d.next_attempt_at IS NOT NULL
   AND (d.locked_until IS NULL OR d.locked_until < now())
   AND EXISTS (SELECT 1 FROM tailhook.deliveries h
                WHERE h.endpoint_id = d.endpoint_id AND h.ordering_key = d.ordering_key
                  AND h.status IN ('pending', 'retrying') AND h.outbox_id < d.outbox_id);

-- The index the due claim reads these through, deliveries_keyed_scheduled,
-- is built without blocking writes by 0010_concurrent_indexes.sql.

-- A scheduled keyed delivery finished or went: the oldest unfinished delivery
-- of its key, if it was waiting, is due now. Row triggers limited by WHEN, so
-- only such a head's change calls it (never an unkeyed delivery's, nor a
-- waiting one's: cancelling a whole backlog calls it once per key).
CREATE OR REPLACE FUNCTION tailhook.schedule_key_head() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tailhook.deliveries d
       SET next_attempt_at = now()
     WHERE d.id = (SELECT h.id FROM tailhook.deliveries h
                    WHERE h.endpoint_id = OLD.endpoint_id AND h.ordering_key = OLD.ordering_key
                      AND h.status IN ('pending', 'retrying')
                    ORDER BY h.outbox_id
                    LIMIT 1)
       AND d.next_attempt_at IS NULL;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS deliveries_key_head_finished ON tailhook.deliveries;
CREATE TRIGGER deliveries_key_head_finished
    AFTER UPDATE OF status ON tailhook.deliveries
    FOR EACH ROW
    WHEN (OLD.ordering_key IS NOT NULL AND OLD.next_attempt_at IS NOT NULL
          AND OLD.status IN ('pending', 'retrying') AND NEW.status NOT IN ('pending', 'retrying'))
    EXECUTE FUNCTION tailhook.schedule_key_head();

DROP TRIGGER IF EXISTS deliveries_key_head_deleted ON tailhook.deliveries;
CREATE TRIGGER deliveries_key_head_deleted
    AFTER DELETE ON tailhook.deliveries
    FOR EACH ROW
    WHEN (OLD.ordering_key IS NOT NULL AND OLD.next_attempt_at IS NOT NULL
          AND OLD.status IN ('pending', 'retrying'))
    EXECUTE FUNCTION tailhook.schedule_key_head();$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (9, 'key_heads');
END
$tailhook_step$;

-- tailhook step 10 concurrent_indexes (1 of 17): outside a transaction
-- tailhook schema, version 10: the indexes on tailhook.deliveries that
-- versions 3, 6 and 7 used to build with a plain CREATE INDEX (which blocks
-- every write to the table for as long as the build takes on a large one),
-- and the one version 9's claims read,
-- built with CREATE INDEX CONCURRENTLY instead: upgrading never blocks writes.
-- A database that already has them valid is left as it is.
--
-- tailhook: outside a transaction
-- CREATE INDEX CONCURRENTLY cannot run in a transaction: `tailhook migrate`
-- runs this file's statements one at a time after committing the files
-- before it; another migration tool must do the same (psql -f does).
-- Every statement is safe to re-run, and to run while another migrator
-- runs this file.

-- An interrupted concurrent build (a cancel, a crash, a lost connection)
-- leaves an invalid index behind, which CREATE INDEX IF NOT EXISTS would
-- take for done: rename it out of the way (never one still being built),
-- drop it without blocking writes, then build the index again.
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_ordered_invalid;

-- tailhook step 10 concurrent_indexes (2 of 17): outside a transaction
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_finished_invalid;

-- tailhook step 10 concurrent_indexes (3 of 17): outside a transaction
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_succeeded_invalid;

-- tailhook step 10 concurrent_indexes (4 of 17): outside a transaction
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_failed_invalid;

-- tailhook step 10 concurrent_indexes (5 of 17): outside a transaction
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_keyed_scheduled_invalid;

-- tailhook step 10 concurrent_indexes (6 of 17): outside a transaction
DO $$
DECLARE
    i record;
BEGIN
    FOR i IN SELECT c.relname
               FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
              WHERE c.relnamespace = 'tailhook'::regnamespace
                AND c.relname IN ('deliveries_ordered', 'deliveries_finished', 'deliveries_succeeded', 'deliveries_failed',
                                  'deliveries_keyed_scheduled')
                AND NOT x.indisvalid
                AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
                                 WHERE p.relid = 'tailhook.deliveries'::regclass)
    LOOP
        EXECUTE format('ALTER INDEX tailhook.%I RENAME TO %I', i.relname, i.relname || '_invalid');
    END LOOP;
END
$$;

-- tailhook step 10 concurrent_indexes (7 of 17): outside a transaction
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_ordered_invalid;

-- tailhook step 10 concurrent_indexes (8 of 17): outside a transaction
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_finished_invalid;

-- tailhook step 10 concurrent_indexes (9 of 17): outside a transaction
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_succeeded_invalid;

-- tailhook step 10 concurrent_indexes (10 of 17): outside a transaction
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_failed_invalid;

-- tailhook step 10 concurrent_indexes (11 of 17): outside a transaction
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_keyed_scheduled_invalid;

-- tailhook step 10 concurrent_indexes (12 of 17): outside a transaction
-- The head of each key (its oldest unfinished delivery) in one index probe.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_ordered
    ON tailhook.deliveries (endpoint_id, ordering_key, outbox_id)
    WHERE status IN ('pending', 'retrying') AND ordering_key IS NOT NULL;

-- tailhook step 10 concurrent_indexes (13 of 17): outside a transaction
-- Finished deliveries by age, per status, for retention (see sql/queries/retention_deliveries.sql).
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_finished
    ON tailhook.deliveries (status, completed_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');

-- tailhook step 10 concurrent_indexes (14 of 17): outside a transaction
-- Finished deliveries by endpoint and completion time, one partial index per
-- outcome, for `tailhook status` (see 0007_status.sql).
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_succeeded
    ON tailhook.deliveries (endpoint_id, completed_at)
    WHERE status = 'succeeded';

-- tailhook step 10 concurrent_indexes (15 of 17): outside a transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_failed
    ON tailhook.deliveries (endpoint_id, completed_at)
    WHERE status = 'failed';

-- tailhook step 10 concurrent_indexes (16 of 17): outside a transaction
-- Keyed deliveries that are scheduled (see 0009_key_heads.sql): each key's
-- head, and the few left scheduled behind an older one. The due claim's check
-- that no other delivery of a key is being sent reads these, not the key's
-- whole backlog.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_keyed_scheduled
    ON tailhook.deliveries (endpoint_id, ordering_key)
    WHERE status IN ('pending', 'retrying') AND ordering_key IS NOT NULL AND next_attempt_at IS NOT NULL;

-- tailhook step 10 concurrent_indexes (17 of 17): outside a transaction
-- Done only when every one is valid: a concurrent migrator's build still
-- running makes this fail, and `tailhook migrate` waits for it and retries.
DO $$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(n, ', ') INTO missing
      FROM unnest(ARRAY['deliveries_ordered', 'deliveries_finished', 'deliveries_succeeded', 'deliveries_failed',
                         'deliveries_keyed_scheduled']) AS n
     WHERE NOT EXISTS (SELECT 1 FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
                        WHERE c.relnamespace = 'tailhook'::regnamespace AND c.relname = n AND x.indisvalid);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'index not built yet: %', missing;
    END IF;
END
$$;

-- tailhook step 10 concurrent_indexes (record): transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (10, 'concurrent_indexes')
        ON CONFLICT (version) DO NOTHING;
END
$tailhook_step$;

-- tailhook step 11 event_id_v7: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 11) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 11: time-ordered event ids (UUID version 7) by default.
-- Plain SQL, safe to re-run and to run while tailhook and publishers work.
--
-- Why: dispatching an event cannot be a HOT update (dispatched_at is in the
-- claim index's predicate), so every dispatched row adds an entry to the
-- event_id unique index. Random (version 4) ids put that entry on a random
-- page of an index that outgrows shared_buffers once millions of events are
-- retained: one cold page read and dirtied per event. Version 7 ids start
-- with the Unix time in milliseconds, so new entries land on the index's
-- few rightmost pages. Publishers may still set any UUID themselves.

-- RFC 9562 version 7: 48 bits of Unix milliseconds, then the random bits of
-- a version 4 UUID, with the version nibble turned from 4 (0100) into 7 (0111).
CREATE OR REPLACE FUNCTION tailhook.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- A catalog-only change (no table rewrite); it takes the table's lock for an
-- instant, like any ALTER TABLE.
ALTER TABLE tailhook.outbox ALTER COLUMN event_id SET DEFAULT tailhook.uuid_v7();$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (11, 'event_id_v7');
END
$tailhook_step$;

-- tailhook step 12 capture: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 12) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 12: change capture. `tailhook.capture(tbl, ...)`
-- turns every INSERT, UPDATE and DELETE of an existing table into events in
-- the outbox, in the same transaction, without application code.
-- Plain SQL, safe to re-run: the options table is created only when absent and
-- the functions are replaced in place, so captured tables keep working.
--
-- Design (cheapest per statement): `capture` generates one trigger function
-- per captured table, `tailhook.capture_<table oid>()`, whose body is static
-- SQL with that table's options written in (columns, tenant and key column),
-- and installs one statement-level AFTER trigger per operation with a
-- transition table. A statement then costs one trigger call and one
-- set-based INSERT ... SELECT into the outbox, planned once per session and
-- cached by PL/pgSQL: no option lookup, no dynamic SQL, nothing per row but
-- the row's JSON and its outbox row. The options are also kept in
-- `tailhook.capture_config` (for `tailhook.captures` and `tailhook status`);
-- the generated function never reads it.

CREATE TABLE IF NOT EXISTS tailhook.capture_config (
    relid         oid PRIMARY KEY,
    event_type    text NOT NULL,
    operations    text[] NOT NULL,
    columns       text[],
    tenant_column text,
    key_column    text NOT NULL,
    function_name text NOT NULL,
    captured_at   timestamptz NOT NULL DEFAULT now()
);

-- The captured tables that still exist, with their options.
CREATE OR REPLACE VIEW tailhook.captures AS
SELECT format('%I.%I', n.nspname, c.relname) AS table_name,
       cc.event_type,
       cc.operations,
       cc.columns,
       cc.tenant_column,
       cc.key_column,
       cc.captured_at,
       cc.relid::regclass AS relid
  FROM tailhook.capture_config cc
  JOIN pg_catalog.pg_class c ON c.oid = cc.relid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace;

-- Forgets tables dropped since they were captured (their triggers went with
-- them; their generated functions and options rows are left over).
CREATE OR REPLACE FUNCTION tailhook.capture_forget_dropped() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    f text;
BEGIN
    FOR f IN DELETE FROM tailhook.capture_config cc
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = cc.relid)
          RETURNING function_name
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I()', f);
    END LOOP;
END
$$;

-- Removes the capture of `tbl`: its triggers, generated function and options.
-- The outbox, deliveries and attempts are left alone.
CREATE OR REPLACE FUNCTION tailhook.uncapture(tbl regclass) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    op text;
    f text;
BEGIN
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'tailhook_capture_' || op, tbl);
    END LOOP;
    DELETE FROM tailhook.capture_config WHERE relid = tbl RETURNING function_name INTO f;
    IF f IS NOT NULL THEN
        EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I()', f);
    END IF;
    PERFORM tailhook.capture_forget_dropped();
    RETURN f IS NOT NULL;
END
$$;

-- A row of transition table `rel` as JSON: every column, or only `cols`.
-- jsonb_build_object takes at most 100 arguments, so long lists are joined
-- from chunks of 50 columns.
CREATE OR REPLACE FUNCTION tailhook.capture_row_json(rel text, cols text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    parts text[] := '{}';
    args text[] := '{}';
    i int;
BEGIN
    IF cols IS NULL THEN
        RETURN format('to_jsonb(%I.*)', rel);
    END IF;
    FOR i IN 1 .. cardinality(cols) LOOP
        args := args || format('%L, %I.%I', cols[i], rel, cols[i]);
        IF cardinality(args) = 50 OR i = cardinality(cols) THEN
            parts := parts || format('jsonb_build_object(%s)', array_to_string(args, ', '));
            args := '{}';
        END IF;
    END LOOP;
    RETURN array_to_string(parts, ' || ');
END
$$;

-- Installs (or replaces, atomically: it runs in the caller's transaction)
-- statement-level triggers on `tbl` that publish `<event_type>.inserted`,
-- `.updated` and `.deleted` with payload {table, operation, new, old}.
CREATE OR REPLACE FUNCTION tailhook.capture(
    tbl           regclass,
    event_type    text,
    operations    text[] DEFAULT '{insert,update,delete}',
    columns       text[] DEFAULT NULL,
    tenant_column text DEFAULT NULL,
    key_column    text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rel pg_catalog.pg_class%ROWTYPE;
    nsp text;
    pk text[];
    ops text[];
    col text;
    key text := capture.key_column;
    fname text := 'capture_' || tbl::oid;
    proj_new text;
    proj_old text;
    tenant_new text;
    tenant_old text;
    body text := '';
    op text;
BEGIN
    SELECT * INTO rel FROM pg_catalog.pg_class WHERE oid = tbl;
    SELECT nspname INTO nsp FROM pg_catalog.pg_namespace WHERE oid = rel.relnamespace;
    IF nsp = 'tailhook' THEN
        RAISE EXCEPTION 'tailhook.capture: % is one of tailhook''s own tables and cannot be captured', tbl
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'tailhook.capture: % is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    IF coalesce(capture.event_type, '') = '' THEN
        RAISE EXCEPTION 'tailhook.capture: event_type must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(DISTINCT lower(o)) INTO ops FROM unnest(capture.operations) AS o;
    IF ops IS NULL OR NOT ops <@ ARRAY['insert', 'update', 'delete'] THEN
        RAISE EXCEPTION 'tailhook.capture: operations must be a non-empty list of insert, update, delete (got %)',
            capture.operations USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Every column named must exist.
    FOREACH col IN ARRAY array_remove(ARRAY[capture.tenant_column, capture.key_column], NULL) || coalesce(capture.columns, '{}') LOOP
        IF col IS NULL OR NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_attribute
             WHERE attrelid = tbl AND attname = col AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'tailhook.capture: % has no column %', tbl, coalesce(quote_ident(col), 'NULL')
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    IF capture.columns IS NOT NULL AND cardinality(capture.columns) = 0 THEN
        RAISE EXCEPTION 'tailhook.capture: columns must list at least one column (NULL: every column)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The key: pairs an UPDATE's old and new rows, and is the ordering key.
    IF key IS NULL THEN
        SELECT array_agg(a.attname ORDER BY a.attnum) INTO pk
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
         WHERE i.indrelid = tbl AND i.indisprimary;
        IF pk IS NULL THEN
            RAISE EXCEPTION 'tailhook.capture: % has no primary key; name a unique column with key_column', tbl
                USING ERRCODE = 'invalid_parameter_value';
        ELSIF cardinality(pk) > 1 THEN
            RAISE EXCEPTION 'tailhook.capture: % has a composite primary key (%); name one unique column with key_column',
                tbl, array_to_string(pk, ', ') USING ERRCODE = 'invalid_parameter_value';
        END IF;
        key := pk[1];
    ELSIF 'update' = ANY (ops) AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = tbl AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
           AND i.indexprs IS NULL AND a.attname = key) THEN
        RAISE EXCEPTION 'tailhook.capture: key_column % of % is not unique (no single-column unique index): an UPDATE''s rows could not be paired',
            quote_ident(key), tbl USING ERRCODE = 'invalid_parameter_value';
    END IF;

    PERFORM tailhook.uncapture(tbl);

    proj_new := tailhook.capture_row_json('n', capture.columns);
    proj_old := tailhook.capture_row_json('o', capture.columns);
    tenant_new := CASE WHEN capture.tenant_column IS NULL THEN 'NULL::text' ELSE format('n.%I::text', capture.tenant_column) END;
    tenant_old := CASE WHEN capture.tenant_column IS NULL THEN 'NULL::text' ELSE format('o.%I::text', capture.tenant_column) END;

    -- The generated function: one static INSERT ... SELECT per operation.
    IF 'insert' = ANY (ops) THEN
        body := body || format($f$
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key)
        SELECT %L, jsonb_build_object('table', tbl, 'operation', 'insert', 'new', %s, 'old', NULL), %s, n.%I::text
          FROM new_rows n;
    END IF;$f$, capture.event_type || '.inserted', proj_new, tenant_new, key);
    END IF;
    IF 'delete' = ANY (ops) THEN
        body := body || format($f$
    IF TG_OP = 'DELETE' THEN
        INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key)
        SELECT %L, jsonb_build_object('table', tbl, 'operation', 'delete', 'new', NULL, 'old', %s), %s, o.%I::text
          FROM old_rows o;
    END IF;$f$, capture.event_type || '.deleted', proj_old, tenant_old, key);
    END IF;
    IF 'update' = ANY (ops) THEN
        -- Old and new rows are paired by the key, compared in its own type
        -- (a hash join). A row whose key changed has no partner: it is
        -- published with the other side NULL.
        body := body || format($f$
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key)
        SELECT %L, jsonb_build_object('table', tbl, 'operation', 'update', 'new', n.j, 'old', o.j),
               coalesce(n.tenant, o.tenant), coalesce(n.k, o.k)::text
          FROM (SELECT n.%I AS k, %s AS j, %s AS tenant FROM new_rows n) n
          FULL JOIN (SELECT o.%I AS k, %s AS j, %s AS tenant FROM old_rows o) o ON o.k = n.k
         WHERE n.j IS DISTINCT FROM o.j;
    END IF;$f$, capture.event_type || '.updated', key, proj_new, tenant_new, key, proj_old, tenant_old);
    END IF;

    EXECUTE format($f$CREATE FUNCTION tailhook.%I() RETURNS trigger LANGUAGE plpgsql SET jit = off AS %L$f$, fname,
        format($b$
-- Generated by tailhook.capture: replaced by capture, dropped by uncapture.
#variable_conflict use_variable
DECLARE
    tbl text := format('%%I.%%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
BEGIN%s
    RETURN NULL;
END
$b$, body));

    FOREACH op IN ARRAY ops LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION tailhook.%I()',
            'tailhook_capture_' || op, upper(op), tbl,
            CASE op WHEN 'insert' THEN 'NEW TABLE AS new_rows'
                    WHEN 'delete' THEN 'OLD TABLE AS old_rows'
                    ELSE 'OLD TABLE AS old_rows NEW TABLE AS new_rows' END,
            fname);
    END LOOP;

    INSERT INTO tailhook.capture_config (relid, event_type, operations, columns, tenant_column, key_column, function_name)
    VALUES (tbl, capture.event_type, ops, capture.columns, capture.tenant_column, key, fname);
END
$$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (12, 'capture');
END
$tailhook_step$;

-- tailhook step 13 operational_events: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 13) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 13: tailhook's own operational events.
-- Plain SQL, safe to re-run.
--
-- tailhook publishes into its own outbox, routed like any event:
--   tailhook.endpoint.disabled  410 Gone, or failing for days
--   tailhook.endpoint.paused    the circuit breaker paused it
--   tailhook.endpoint.resumed   a delivery succeeded after a pause
--   tailhook.delivery.failed    a delivery gave up for good
-- Their payloads name the endpoint ({"endpoint": {"id", "name", "tenant",
-- "host"}}) and the reason; never a secret, header or the URL's credentials,
-- path or query. They are off unless an endpoint subscribes: no row is
-- written unless an enabled endpoint without a tenant names them in its
-- event_types (`*` alone does not match `tailhook.` types), and an endpoint
-- never receives an event about itself (dispatch.sql skips the endpoint a
-- `tailhook.` event's payload.endpoint.id names).

-- `*` matches every type except tailhook's own (`tailhook.` types, but
-- `tailhook.test`): operational events go only to endpoints that ask for
-- them by name (`tailhook.*`, `tailhook.endpoint.*`, an exact type).
CREATE OR REPLACE FUNCTION tailhook.event_type_matches(patterns text[], event_type text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(patterns) AS p
        WHERE (p = '*' AND NOT (starts_with(event_type, 'tailhook.') AND event_type <> 'tailhook.test'))
           OR p = event_type
           OR (right(p, 2) = '.*' AND starts_with(event_type, left(p, -1)))
    )
$$;

-- Whether any enabled endpoint other than `subject` would receive an event of
-- this type without a tenant (filters aside: a row they then refuse is harmless).
CREATE OR REPLACE FUNCTION tailhook.operational_wanted(event_type text, subject bigint)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM tailhook.endpoints e
         WHERE e.enabled AND e.tenant IS NULL AND e.id IS DISTINCT FROM subject
           AND tailhook.event_type_matches(e.event_types, operational_wanted.event_type))
$$;

-- Publishes one operational event about endpoint `subject` when someone
-- subscribes; `details` is merged into {"endpoint": {...}}. Returns 1 if a
-- row was written, else 0.
CREATE OR REPLACE FUNCTION tailhook.emit_endpoint_event(event_type text, subject bigint, details jsonb)
RETURNS int
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT tailhook.operational_wanted(emit_endpoint_event.event_type, subject) THEN
        RETURN 0;
    END IF;
    INSERT INTO tailhook.outbox (event_type, payload)
    SELECT emit_endpoint_event.event_type,
           jsonb_build_object('endpoint', jsonb_build_object(
               'id', e.id, 'name', e.name, 'tenant', e.tenant,
               -- host[:port] only: no credentials, path or query
               'host', substring(e.url FROM '^[A-Za-z]+://(?:[^@/?#]*@)?([^/?#]*)'))) || details
      FROM tailhook.endpoints e
     WHERE e.id = subject;
    RETURN 1;
END
$$;

-- tailhook.delivery.failed: a row-level trigger whose WHEN clause is all the
-- success path ever evaluates (no function call); the function runs only for
-- a delivery that has just failed for good. A failed delivery of an
-- operational event reports nothing (no reports about reports).
CREATE OR REPLACE FUNCTION tailhook.delivery_failed_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ev record;
BEGIN
    IF NOT tailhook.operational_wanted('tailhook.delivery.failed', NEW.endpoint_id) THEN
        RETURN NULL;
    END IF;
    SELECT o.event_id, o.event_type INTO ev FROM tailhook.outbox o WHERE o.id = NEW.outbox_id;
    IF starts_with(ev.event_type, 'tailhook.') AND ev.event_type <> 'tailhook.test' THEN
        RETURN NULL;
    END IF;
    PERFORM tailhook.emit_endpoint_event('tailhook.delivery.failed', NEW.endpoint_id, jsonb_build_object(
        'delivery_id', NEW.id,
        'event_id', ev.event_id,
        'event_type', ev.event_type,
        'attempts', NEW.attempts,
        'last_status_code', NEW.last_status_code,
        'last_error', NEW.last_error));
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS deliveries_failed_event ON tailhook.deliveries;
CREATE TRIGGER deliveries_failed_event
    AFTER UPDATE OF status ON tailhook.deliveries
    FOR EACH ROW WHEN (NEW.status = 'failed' AND OLD.status <> 'failed')
    EXECUTE FUNCTION tailhook.delivery_failed_event();$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (13, 'operational_events');
END
$tailhook_step$;

-- tailhook step 14 transforms: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 14) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 14: per-endpoint transforms. Plain SQL, safe to re-run.
--
-- `transform` is a script (Rhai) that sees the event as the variable `event`
-- ({id, type, timestamp, data, tenant}); its last expression is the JSON body
-- this endpoint receives. NULL: the envelope as is. tailhook compiles it when
-- it loads the row; one that does not compile makes the endpoint invalid
-- (see invalid_reason), and one that fails at run time fails only its own
-- delivery, with error_kind 'transform'.
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS transform text;

-- At most 64 KiB (src/pipeline/transform.rs checks the same). NOT VALID like
-- the bounds of version 4: an existing row is marked invalid, not refused.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = 'tailhook.endpoints'::regclass AND conname = 'endpoints_transform_length') THEN
        ALTER TABLE tailhook.endpoints
            ADD CONSTRAINT endpoints_transform_length CHECK (octet_length(transform) <= 65536) NOT VALID;
    END IF;
END
$$;

-- A failed transform is recorded as an attempt with error_kind 'transform'.
-- The constraint is replaced NOT VALID: existing rows all hold older kinds,
-- and no scan of the attempts table is needed.
ALTER TABLE tailhook.attempts DROP CONSTRAINT IF EXISTS attempts_error_kind_known;
ALTER TABLE tailhook.attempts ADD CONSTRAINT attempts_error_kind_known CHECK (error_kind IN (
    'timeout', 'connect', 'dns', 'tls', 'http_status', 'redirect',
    'blocked_address', 'invalid_request', 'payload_too_large', 'body_read', 'transform')) NOT VALID;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (14, 'transforms');
END
$tailhook_step$;

-- tailhook step 15 capture_staging: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 15) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 15: change capture that the writer barely pays for.
-- Plain SQL, safe to re-run: the sequence is created only when absent, the
-- functions are replaced in place, and a captured table is re-generated only
-- while its trigger function is not yet of this version (tables captured
-- under 0012 are upgraded here, so users need do nothing).
--
-- Why: 0012's trigger turned every changed row into JSON and an outbox row
-- inside the writer's statement; a 100,000-row UPDATE then ran at a fifth of
-- its speed. Now the writer pays for one row per statement, in binary:
--
--   writer (trigger, same transaction)     tailhook (expand_captures, later)
--   ----------------------------------     ---------------------------------
--   one row in tailhook.capture_<oid>_staged:  per staged row, in batch order:
--     batch (global sequence), op,             unnest old/new, pair them, drop
--     n, old_rows <tbl>[], new_rows <tbl>[]    unchanged ones, build the JSON,
--   + pg_notify('tailhook_outbox', 'capture')  INSERT the outbox rows, DELETE
--                                              the staged row (one transaction)
--
-- The arrays hold the table's own row type (`array_agg(r::<tbl>)`), stored
-- uncompressed (STORAGE EXTERNAL: compressing costs the writer more than it
-- saves). What that means for DDL on a captured table (see the README):
--   * ADD COLUMN, DROP COLUMN and RENAME of columns not captured keep working,
--     and writes never fail because of a column change;
--   * the staging table's columns use the table's row type, so PostgreSQL
--     refuses what would rewrite the table (ALTER COLUMN ... TYPE, ADD COLUMN
--     with a volatile default) and DROP TABLE without CASCADE, while captured;
--   * the key, tenant and listed columns are pinned by a view
--     (tailhook.capture_<oid>_columns, never read): dropping or retyping one
--     is refused; after renaming one, run `capture` again.
-- Columns not captured do pass through the staging table (owned by the role
-- that called `capture`, no grants), but never reach the outbox.
--
-- Order: batch numbers come from one sequence taken in the writer's
-- statement, after its rows are changed. Two statements changing the same
-- row are serialised by the row lock, so the later one takes the higher
-- number; expand_captures works one expander at a time (an advisory lock)
-- through the batches of every captured table in batch order, so outbox ids
-- keep each row's changes in order, across tables too.

CREATE SEQUENCE IF NOT EXISTS tailhook.capture_batch;

-- A captured row as JSON: `expr` is an expression of the table's row type.
-- Every column, or only `cols` (jsonb_build_object takes at most 100
-- arguments: long lists are joined from chunks of 50 columns).
CREATE OR REPLACE FUNCTION tailhook.capture_json(expr text, cols text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    parts text[] := '{}';
    args text[] := '{}';
    i int;
BEGIN
    IF cols IS NULL THEN
        RETURN format('to_jsonb(%s)', expr);
    END IF;
    FOR i IN 1 .. cardinality(cols) LOOP
        args := args || format('%L, (%s).%I', cols[i], expr, cols[i]);
        IF cardinality(args) = 50 OR i = cardinality(cols) THEN
            parts := parts || format('jsonb_build_object(%s)', array_to_string(args, ', '));
            args := '{}';
        END IF;
    END LOOP;
    RETURN array_to_string(parts, ' || ');
END
$$;

-- Expands staged statements into outbox rows, oldest batch first, up to
-- about `max_rows` changed rows (a staged statement larger than what is left
-- is expanded in slices, across calls); returns how many rows were expanded
-- (0: nothing staged). One expander at a time: with `wait` false it returns 0
-- at once when another is at work (the sidecar's call), else it waits. A
-- table whose expansion fails (a captured column renamed without capturing
-- again) is skipped with a WARNING; its statements stay staged.
CREATE OR REPLACE FUNCTION tailhook.expand_captures(max_rows int DEFAULT 100000, wait boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    budget bigint := greatest(max_rows, 1);
    total bigint := 0;
    skipped oid[] := '{}';
    c record;
    head bigint;
    first_rel oid;
    first_head bigint;
    next_head bigint;
    used int;
BEGIN
    -- The cheap answer when nothing is captured.
    IF NOT EXISTS (SELECT 1 FROM tailhook.capture_config) THEN
        RETURN 0;
    END IF;
    IF wait THEN
        PERFORM pg_advisory_xact_lock(7368003);
    ELSIF NOT pg_try_advisory_xact_lock(7368003) THEN
        RETURN 0;
    END IF;
    LOOP
        -- Each captured table's oldest staged batch (one index probe each):
        -- the oldest of all is expanded up to the next table's oldest.
        first_rel := NULL;
        first_head := NULL;
        next_head := NULL;
        FOR c IN SELECT cc.relid FROM tailhook.capture_config cc
                  WHERE to_regclass(format('tailhook.%I', 'capture_' || cc.relid || '_staged')) IS NOT NULL
                    AND cc.relid <> ALL (skipped)
                    AND EXISTS (SELECT 1 FROM pg_catalog.pg_class k WHERE k.oid = cc.relid) LOOP
            EXECUTE format('SELECT min(batch) FROM tailhook.%I', 'capture_' || c.relid || '_staged') INTO head;
            CONTINUE WHEN head IS NULL;
            IF first_head IS NULL OR head < first_head THEN
                next_head := first_head;
                first_head := head;
                first_rel := c.relid;
            ELSIF next_head IS NULL OR head < next_head THEN
                next_head := head;
            END IF;
        END LOOP;
        EXIT WHEN first_rel IS NULL;
        BEGIN
            EXECUTE format('SELECT tailhook.%I($1, $2)', 'capture_' || first_rel || '_expand')
               INTO used USING coalesce(next_head, 9223372036854775807), least(budget, 2147483647)::int;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'tailhook.expand_captures: the changes of % cannot be expanded and stay staged: % (after renaming a captured column, run tailhook.capture again)',
                first_rel::regclass, SQLERRM;
            skipped := skipped || first_rel;
            CONTINUE;
        END;
        total := total + used;
        budget := budget - used;
        EXIT WHEN budget <= 0;
    END LOOP;
    RETURN total;
END
$$;

-- Forgets tables dropped since they were captured (with CASCADE: their
-- triggers, pin view and the staging columns went with them; what is left
-- of their staging table, generated functions and options is removed here).
CREATE OR REPLACE FUNCTION tailhook.capture_forget_dropped() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r oid;
BEGIN
    FOR r IN DELETE FROM tailhook.capture_config cc
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = cc.relid)
          RETURNING relid
    LOOP
        PERFORM tailhook.capture_drop_objects(r);
    END LOOP;
END
$$;

-- Drops the objects `capture` generated for the table with oid `r`.
CREATE OR REPLACE FUNCTION tailhook.capture_drop_objects(r oid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I()', 'capture_' || r);
    EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I(bigint, int)', 'capture_' || r || '_expand');
    EXECUTE format('DROP VIEW IF EXISTS tailhook.%I', 'capture_' || r || '_columns');
    EXECUTE format('DROP TABLE IF EXISTS tailhook.%I', 'capture_' || r || '_staged');
    EXECUTE format('DROP DOMAIN IF EXISTS tailhook.%I', 'capture_' || r || '_row');
END
$$;

-- Removes the capture of `tbl`: its triggers, generated objects and options,
-- after expanding what it had staged (every staged statement, of every table,
-- in batch order; the table is locked against writes first, so none is left
-- in flight). Refuses, changing nothing, if some could not be expanded.
-- The outbox, deliveries and attempts are left alone.
CREATE OR REPLACE FUNCTION tailhook.uncapture(tbl regclass) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    op text;
    captured boolean;
    left_over bigint;
    staged text := format('tailhook.%I', 'capture_' || tbl::oid || '_staged');
BEGIN
    captured := EXISTS (SELECT 1 FROM tailhook.capture_config WHERE relid = tbl);
    IF captured THEN
        EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
        IF to_regclass(staged) IS NOT NULL THEN
            LOOP
                EXIT WHEN tailhook.expand_captures(100000) = 0;
            END LOOP;
            EXECUTE format('SELECT count(*) FROM %s', staged) INTO left_over;
            IF left_over > 0 THEN
                RAISE EXCEPTION 'tailhook.uncapture: % statements of % are staged and cannot be expanded (see the warning above); run tailhook.capture again to fix the capture first',
                    left_over, tbl USING ERRCODE = 'object_in_use';
            END IF;
        END IF;
    END IF;
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'tailhook_capture_' || op, tbl);
    END LOOP;
    DELETE FROM tailhook.capture_config WHERE relid = tbl;
    PERFORM tailhook.capture_drop_objects(tbl);
    PERFORM tailhook.capture_forget_dropped();
    RETURN captured;
END
$$;

-- Installs (or replaces, atomically: it runs in the caller's transaction)
-- statement-level triggers on `tbl` that stage each statement's rows for
-- `<event_type>.inserted`, `.updated` and `.deleted` events with payload
-- {table, operation, new, old}. Statements staged under the previous options
-- are expanded with those options first.
CREATE OR REPLACE FUNCTION tailhook.capture(
    tbl           regclass,
    event_type    text,
    operations    text[] DEFAULT '{insert,update,delete}',
    columns       text[] DEFAULT NULL,
    tenant_column text DEFAULT NULL,
    key_column    text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rel pg_catalog.pg_class%ROWTYPE;
    nsp text;
    pk text[];
    ops text[];
    col text;
    key text := capture.key_column;
    fname text := 'capture_' || tbl::oid;
    staged text := format('tailhook.%I', 'capture_' || tbl::oid || '_staged');
    row_type text := format('tailhook.%I', 'capture_' || tbl::oid || '_row');
    pinned text[];
    write_body text := '';
    expand_body text := '';
    stuck boolean;
    op text;
BEGIN
    SELECT * INTO rel FROM pg_catalog.pg_class WHERE oid = tbl;
    SELECT nspname INTO nsp FROM pg_catalog.pg_namespace WHERE oid = rel.relnamespace;
    IF nsp = 'tailhook' THEN
        RAISE EXCEPTION 'tailhook.capture: % is one of tailhook''s own tables and cannot be captured', tbl
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'tailhook.capture: % is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    IF coalesce(capture.event_type, '') = '' THEN
        RAISE EXCEPTION 'tailhook.capture: event_type must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(DISTINCT lower(o)) INTO ops FROM unnest(capture.operations) AS o;
    IF ops IS NULL OR NOT ops <@ ARRAY['insert', 'update', 'delete'] THEN
        RAISE EXCEPTION 'tailhook.capture: operations must be a non-empty list of insert, update, delete (got %)',
            capture.operations USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Every column named must exist.
    FOREACH col IN ARRAY array_remove(ARRAY[capture.tenant_column, capture.key_column], NULL) || coalesce(capture.columns, '{}') LOOP
        IF col IS NULL OR NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_attribute
             WHERE attrelid = tbl AND attname = col AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'tailhook.capture: % has no column %', tbl, coalesce(quote_ident(col), 'NULL')
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    IF capture.columns IS NOT NULL AND cardinality(capture.columns) = 0 THEN
        RAISE EXCEPTION 'tailhook.capture: columns must list at least one column (NULL: every column)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The key: pairs an UPDATE's old and new rows, and is the ordering key.
    IF key IS NULL THEN
        SELECT array_agg(a.attname ORDER BY a.attnum) INTO pk
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
         WHERE i.indrelid = tbl AND i.indisprimary;
        IF pk IS NULL THEN
            RAISE EXCEPTION 'tailhook.capture: % has no primary key; name a unique column with key_column', tbl
                USING ERRCODE = 'invalid_parameter_value';
        ELSIF cardinality(pk) > 1 THEN
            RAISE EXCEPTION 'tailhook.capture: % has a composite primary key (%); name one unique column with key_column',
                tbl, array_to_string(pk, ', ') USING ERRCODE = 'invalid_parameter_value';
        END IF;
        key := pk[1];
    ELSIF 'update' = ANY (ops) AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = tbl AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
           AND i.indexprs IS NULL AND a.attname = key) THEN
        RAISE EXCEPTION 'tailhook.capture: key_column % of % is not unique (no single-column unique index): an UPDATE''s rows could not be paired',
            quote_ident(key), tbl USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- No write in flight on the table from here on (released at commit);
    -- what it staged under the previous options is expanded with them.
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    IF to_regclass(staged) IS NOT NULL THEN
        LOOP
            EXIT WHEN tailhook.expand_captures(100000) = 0;
        END LOOP;
    END IF;

    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'tailhook_capture_' || op, tbl);
    END LOOP;
    EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I()', fname);
    EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I(bigint, int)', fname || '_expand');
    EXECUTE format('DROP VIEW IF EXISTS tailhook.%I', fname || '_columns');
    DELETE FROM tailhook.capture_config WHERE relid = tbl;
    PERFORM tailhook.capture_forget_dropped();

    -- The staging table is kept across re-captures (it may hold statements
    -- that failed to expand under the previous options). Its arrays are of a
    -- domain over the table's row type: generated code names the domain,
    -- never the table, so renaming the table or its schema breaks nothing.
    IF to_regtype(row_type) IS NULL THEN
        EXECUTE format('CREATE DOMAIN %s AS %s', row_type, tbl);
    END IF;
    EXECUTE format($f$CREATE TABLE IF NOT EXISTS %s (
        batch      bigint PRIMARY KEY,
        op         "char" NOT NULL,
        n          int NOT NULL,
        done       int NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        old_rows   %s[],
        new_rows   %s[])$f$, staged, row_type, row_type);
    EXECUTE format('ALTER TABLE %s ALTER old_rows SET STORAGE EXTERNAL, ALTER new_rows SET STORAGE EXTERNAL', staged);

    -- The columns the expansion names, pinned against DROP and ALTER TYPE.
    SELECT array_agg(DISTINCT x) INTO pinned
      FROM unnest(ARRAY[key, capture.tenant_column] || coalesce(capture.columns, '{}')) AS x WHERE x IS NOT NULL;
    EXECUTE format('CREATE VIEW tailhook.%I AS SELECT %s FROM %s WHERE false', fname || '_columns',
        (SELECT string_agg(quote_ident(x), ', ') FROM unnest(pinned) AS x), tbl);

    -- The writer's side: one staged row per statement, no JSON, no per-row work
    -- beyond copying the row into the array.
    -- A statement of more than 100,000 rows is staged as several rows of at
    -- most 100,000 (an array is limited to 1 GB, and an expansion slice
    -- reads its staged row whole); numbering the rows costs a little, so
    -- smaller statements are staged without it.
    IF 'insert' = ANY (ops) THEN
        write_body := write_body || format($f$
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows OFFSET 100000) THEN
            INSERT INTO %1$s (batch, op, n, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'i', count(*), array_agg(n::%2$s) FROM new_rows n HAVING count(*) > 0;
        ELSE
            INSERT INTO %1$s (batch, op, n, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'i', count(*), array_agg(c.r)
              FROM (SELECT n::%2$s AS r, (row_number() OVER () - 1) / 100000 AS g FROM new_rows n) c GROUP BY c.g;
        END IF;
    END IF;$f$, staged, row_type);
    END IF;
    IF 'update' = ANY (ops) THEN
        -- Old and new images of a row sit at the same position of the two
        -- transition tables; each staged row keeps them aligned.
        write_body := write_body || format($f$
    IF TG_OP = 'UPDATE' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows OFFSET 100000) THEN
            INSERT INTO %1$s (batch, op, n, old_rows, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'u', count(*), (SELECT array_agg(o::%2$s) FROM old_rows o), array_agg(n::%2$s)
              FROM new_rows n HAVING count(*) > 0;
        ELSE
            INSERT INTO %1$s (batch, op, n, old_rows, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'u', count(*), array_agg(a.r), array_agg(b.r)
              FROM (SELECT o::%2$s AS r, row_number() OVER () AS i FROM old_rows o) a
              JOIN (SELECT n::%2$s AS r, row_number() OVER () AS i FROM new_rows n) b ON b.i = a.i
             GROUP BY (a.i - 1) / 100000;
        END IF;
    END IF;$f$, staged, row_type);
    END IF;
    IF 'delete' = ANY (ops) THEN
        write_body := write_body || format($f$
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM old_rows OFFSET 100000) THEN
            INSERT INTO %1$s (batch, op, n, old_rows)
            SELECT nextval('tailhook.capture_batch'), 'd', count(*), array_agg(o::%2$s) FROM old_rows o HAVING count(*) > 0;
        ELSE
            INSERT INTO %1$s (batch, op, n, old_rows)
            SELECT nextval('tailhook.capture_batch'), 'd', count(*), array_agg(c.r)
              FROM (SELECT o::%2$s AS r, (row_number() OVER () - 1) / 100000 AS g FROM old_rows o) c GROUP BY c.g;
        END IF;
    END IF;$f$, staged, row_type);
    END IF;
    -- SECURITY DEFINER: the writing role needs no privilege on tailhook's
    -- objects (a trigger function cannot be called any other way).
    EXECUTE format($f$CREATE FUNCTION tailhook.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        SET jit = off SET search_path = pg_catalog, pg_temp AS %L$f$, fname,
        format($b$
-- tailhook capture v15: generated by tailhook.capture, replaced by capture, dropped by uncapture.
BEGIN%s
    IF FOUND THEN
        -- The payload tells tailhook to expand before its fan-out (an
        -- outbox insert's empty one does not).
        PERFORM pg_notify('tailhook_outbox', 'capture');
    END IF;
    RETURN NULL;
END
$b$, write_body));

    -- tailhook's side: the staged statements of this table with a batch below
    -- `upto`, oldest first, up to `budget` rows; returns how many rows it took.
    -- Rows come out of the arrays in lockstep (SRFs in one select list): an
    -- UPDATE's old and new images of one row sit at the same position
    -- (PostgreSQL records them as a pair); they are one event when their keys
    -- are equal, else (the key itself changed) two: one with only `new`, one
    -- with only `old`. A pair whose captured columns are all equal is dropped.
    expand_body := format($f$
DECLARE
    s record;
    tbl text;
    lo int;
    hi int;
    used int := 0;
BEGIN
    SELECT format('%%I.%%I', n.nspname, c.relname) INTO tbl
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %1$s;
    -- The columns named below must still be there by these names (a plan
    -- cached before a rename would otherwise go on with the old attribute).
    IF (SELECT count(*) FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = %1$s AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY (%10$L::text[])) <> %12$s THEN
        RAISE EXCEPTION 'a column captured from %% was renamed (captured: %%); run tailhook.capture again', tbl, %10$L;
    END IF;
    FOR s IN SELECT x.batch, x.op, x.n, x.done FROM %2$s x WHERE x.batch < upto ORDER BY x.batch LOOP
        EXIT WHEN used >= budget;
        lo := s.done + 1;
        hi := least(s.n, s.done + (budget - used));
        IF s.op = 'i' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %3$L, jsonb_build_object('table', tbl, 'operation', 'insert', 'new', %6$s, 'old', NULL),
                   %8$s, (u.n).%11$I::text, u.created_at
              FROM (SELECT unnest(x.new_rows) AS n, generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSIF s.op = 'd' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %5$L, jsonb_build_object('table', tbl, 'operation', 'delete', 'new', NULL, 'old', %7$s),
                   %9$s, (u.o).%11$I::text, u.created_at
              FROM (SELECT unnest(x.old_rows) AS o, generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSE
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %4$L, jsonb_build_object('table', tbl, 'operation', 'update', 'new', e.nj, 'old', e.oj),
                   e.tenant, e.k, p.created_at
              FROM (SELECT u.created_at, %6$s AS nj, %7$s AS oj, (u.n).%11$I AS nk, (u.o).%11$I AS ok,
                           %8$s AS nt, %9$s AS ot
                      FROM (SELECT unnest(x.old_rows) AS o, unnest(x.new_rows) AS n, generate_series(1, x.n) AS i, x.created_at
                              FROM %2$s x WHERE x.batch = s.batch) u
                     WHERE u.i BETWEEN lo AND hi) p
             CROSS JOIN LATERAL (VALUES
                   (p.ok = p.nk, p.nj, p.oj, coalesce(p.nt, p.ot), p.nk::text),
                   (p.ok = p.nk IS NOT TRUE, p.nj, NULL, p.nt, p.nk::text),
                   (p.ok = p.nk IS NOT TRUE, NULL, p.oj, p.ot, p.ok::text)) AS e(keep, nj, oj, tenant, k)
             WHERE e.keep AND e.nj IS DISTINCT FROM e.oj;
        END IF;
        used := used + (hi - lo + 1);
        IF hi >= s.n THEN
            DELETE FROM %2$s x WHERE x.batch = s.batch;
        ELSE
            UPDATE %2$s x SET done = hi WHERE x.batch = s.batch;
        END IF;
    END LOOP;
    RETURN used;
END
$f$, tbl::oid, staged, capture.event_type || '.inserted', capture.event_type || '.updated',
        capture.event_type || '.deleted',
        tailhook.capture_json('u.n', capture.columns), tailhook.capture_json('u.o', capture.columns),
        CASE WHEN capture.tenant_column IS NULL THEN 'NULL::text' ELSE format('(u.n).%I::text', capture.tenant_column) END,
        CASE WHEN capture.tenant_column IS NULL THEN 'NULL::text' ELSE format('(u.o).%I::text', capture.tenant_column) END,
        pinned, key, cardinality(pinned));
    EXECUTE format($f$CREATE FUNCTION tailhook.%I(upto bigint, budget int) RETURNS int LANGUAGE plpgsql SECURITY DEFINER
        SET jit = off SET search_path = pg_catalog, pg_temp AS %L$f$, fname || '_expand',
        '-- tailhook capture v15: generated by tailhook.capture, replaced by capture, dropped by uncapture.'
        || expand_body);

    FOREACH op IN ARRAY ops LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION tailhook.%I()',
            'tailhook_capture_' || op, upper(op), tbl,
            CASE op WHEN 'insert' THEN 'NEW TABLE AS new_rows'
                    WHEN 'delete' THEN 'OLD TABLE AS old_rows'
                    ELSE 'OLD TABLE AS old_rows NEW TABLE AS new_rows' END,
            fname);
    END LOOP;

    INSERT INTO tailhook.capture_config (relid, event_type, operations, columns, tenant_column, key_column, function_name)
    VALUES (tbl, capture.event_type, ops, capture.columns, capture.tenant_column, key, fname);

    -- Statements the previous options could not expand (a captured column
    -- renamed since) are expanded with the new ones.
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', staged) INTO stuck;
    IF stuck THEN
        LOOP
            EXIT WHEN tailhook.expand_captures(100000) = 0;
        END LOOP;
    END IF;
END
$$;

-- Tables captured under 0012 (their trigger wrote JSON to the outbox) get
-- this version's objects, with their options unchanged (a later version's
-- are left as they are, should this file be run again by hand).
DO $do$
DECLARE
    c tailhook.capture_config%ROWTYPE;
BEGIN
    PERFORM tailhook.capture_forget_dropped();
    FOR c IN SELECT cc.* FROM tailhook.capture_config cc
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                 WHERE p.pronamespace = 'tailhook'::regnamespace
                                   AND p.proname = cc.function_name
                                   AND p.prosrc ~ 'tailhook capture v(1[5-9]|[2-9][0-9]):')
              ORDER BY cc.relid LOOP
        PERFORM tailhook.capture(c.relid::regclass, c.event_type, c.operations, c.columns, c.tenant_column, c.key_column);
    END LOOP;
END
$do$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (15, 'capture_staging');
END
$tailhook_step$;

-- tailhook step 16 claim_rows: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 16) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 16: the fan-out's first step as a function, so
-- the planner plans the rest of the claim for a batch, not for one row.
-- Plain SQL, safe to re-run and to run while tailhook works.
--
-- Why: PostgreSQL estimates how many undispatched rows a claim locks from
-- the column statistics of `dispatched_at`. Once ANALYZE (autovacuum) has
-- seen an outbox of mostly dispatched rows, that estimate is one row, so
-- every later step of sql/queries/dispatch.sql joins its intermediate
-- results by nested loops: quadratic in the batch. Measured on a
-- 1,000,000-row analysed outbox: 101–108 ms to fan out 512 rows this way,
-- 18–22 ms through this function (5.5 against 11.7 ms for 128 rows; one
-- row costs the same). A set-returning PL/pgSQL function is never inlined,
-- so the planner takes its declared ROWS instead: 100, a claim's usual size
-- under load; any estimate of that order gives hash joins, and a claim of a
-- single row still plans and runs as fast.
CREATE OR REPLACE FUNCTION tailhook.lock_undispatched(max_rows bigint)
RETURNS TABLE (id bigint, event_id uuid, event_type text, payload jsonb, tenant text,
               ordering_key text, created_at timestamptz, body text)
LANGUAGE plpgsql VOLATILE ROWS 100 AS $$
BEGIN
    -- `dispatched_at IS NULL` is the only claim criterion: identity values
    -- commit out of order, so nothing reads by position. Each payload is
    -- turned into JSON text once, here.
    RETURN QUERY
    SELECT o.id, o.event_id, o.event_type, o.payload, o.tenant, o.ordering_key, o.created_at, o.payload::text
      FROM tailhook.outbox o
     WHERE o.dispatched_at IS NULL
     ORDER BY o.id
     LIMIT max_rows
       FOR NO KEY UPDATE SKIP LOCKED;
END
$$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (16, 'claim_rows');
END
$tailhook_step$;

-- tailhook step 17 publish_plan: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 17) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 17: `tailhook.publish` keeps its plan.
-- Plain SQL, safe to re-run and to run while publishers work.
--
-- Why: the body of a LANGUAGE sql function that is not inlined (an INSERT
-- never is) is parsed and planned again on every call, with the
-- `event_id` default's `tailhook.uuid_v7()` body parsed along with it. A
-- PL/pgSQL function plans its INSERT once per session and keeps the plan.
-- Measured with pgbench, one client, a prepared `SELECT tailhook.publish(...)`
-- each in its own transaction (synchronous_commit off, so only CPU counts):
-- 4,700–5,300 publishes/s as SQL, 8,100–8,600 as PL/pgSQL. Same signature,
-- defaults, result and privileges; only the body's language changes.
CREATE OR REPLACE FUNCTION tailhook.publish(
    event_type   text,
    payload      jsonb,
    tenant       text DEFAULT NULL,
    ordering_key text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    published uuid;
BEGIN
    INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key)
    VALUES (publish.event_type, publish.payload, publish.tenant, publish.ordering_key)
    RETURNING outbox.event_id INTO published;
    RETURN published;
END
$$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (17, 'publish_plan');
END
$tailhook_step$;

-- tailhook step 18 capture_slices: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 18) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 18: a captured statement of more than 100,000 rows
-- is staged without sorting it.
-- Plain SQL, safe to re-run: `tailhook.capture` is replaced in place, and a
-- captured table is re-generated only while its trigger function is not yet
-- of this version (so tables captured before are upgraded by `migrate`).
--
-- Why: 0015 staged an UPDATE of more than 100,000 rows (in slices of
-- 100,000) by numbering the old and the new rows and joining them on that
-- number: two sorts of the whole statement, on disk at the default work_mem,
-- then a merge join. Measured (auto_explain, an UPDATE of 102,000 rows of the
-- benchmark's table): its staging INSERT took 220-260 ms against 105-120 ms
-- for 100,000 rows on the path without slices. Now each side is sliced by
-- position and aggregated on its own, and the slices are joined by number:
-- no sort. For an UPDATE of 150,000 rows the staging INSERT took 199-243 ms
-- against 276-314 ms before (same session, alternating). Nothing else
-- changes: the staging table, the expansion and the options stay as 0015
-- made them.

-- Installs (or replaces, atomically: it runs in the caller's transaction)
-- statement-level triggers on `tbl` that stage each statement's rows for
-- `<event_type>.inserted`, `.updated` and `.deleted` events with payload
-- {table, operation, new, old}. Statements staged under the previous options
-- are expanded with those options first.
CREATE OR REPLACE FUNCTION tailhook.capture(
    tbl           regclass,
    event_type    text,
    operations    text[] DEFAULT '{insert,update,delete}',
    columns       text[] DEFAULT NULL,
    tenant_column text DEFAULT NULL,
    key_column    text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rel pg_catalog.pg_class%ROWTYPE;
    nsp text;
    pk text[];
    ops text[];
    col text;
    key text := capture.key_column;
    fname text := 'capture_' || tbl::oid;
    staged text := format('tailhook.%I', 'capture_' || tbl::oid || '_staged');
    row_type text := format('tailhook.%I', 'capture_' || tbl::oid || '_row');
    pinned text[];
    write_body text := '';
    expand_body text := '';
    stuck boolean;
    op text;
BEGIN
    SELECT * INTO rel FROM pg_catalog.pg_class WHERE oid = tbl;
    SELECT nspname INTO nsp FROM pg_catalog.pg_namespace WHERE oid = rel.relnamespace;
    IF nsp = 'tailhook' THEN
        RAISE EXCEPTION 'tailhook.capture: % is one of tailhook''s own tables and cannot be captured', tbl
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'tailhook.capture: % is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    IF coalesce(capture.event_type, '') = '' THEN
        RAISE EXCEPTION 'tailhook.capture: event_type must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(DISTINCT lower(o)) INTO ops FROM unnest(capture.operations) AS o;
    IF ops IS NULL OR NOT ops <@ ARRAY['insert', 'update', 'delete'] THEN
        RAISE EXCEPTION 'tailhook.capture: operations must be a non-empty list of insert, update, delete (got %)',
            capture.operations USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Every column named must exist.
    FOREACH col IN ARRAY array_remove(ARRAY[capture.tenant_column, capture.key_column], NULL) || coalesce(capture.columns, '{}') LOOP
        IF col IS NULL OR NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_attribute
             WHERE attrelid = tbl AND attname = col AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'tailhook.capture: % has no column %', tbl, coalesce(quote_ident(col), 'NULL')
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    IF capture.columns IS NOT NULL AND cardinality(capture.columns) = 0 THEN
        RAISE EXCEPTION 'tailhook.capture: columns must list at least one column (NULL: every column)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The key: pairs an UPDATE's old and new rows, and is the ordering key.
    IF key IS NULL THEN
        SELECT array_agg(a.attname ORDER BY a.attnum) INTO pk
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
         WHERE i.indrelid = tbl AND i.indisprimary;
        IF pk IS NULL THEN
            RAISE EXCEPTION 'tailhook.capture: % has no primary key; name a unique column with key_column', tbl
                USING ERRCODE = 'invalid_parameter_value';
        ELSIF cardinality(pk) > 1 THEN
            RAISE EXCEPTION 'tailhook.capture: % has a composite primary key (%); name one unique column with key_column',
                tbl, array_to_string(pk, ', ') USING ERRCODE = 'invalid_parameter_value';
        END IF;
        key := pk[1];
    ELSIF 'update' = ANY (ops) AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = tbl AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
           AND i.indexprs IS NULL AND a.attname = key) THEN
        RAISE EXCEPTION 'tailhook.capture: key_column % of % is not unique (no single-column unique index): an UPDATE''s rows could not be paired',
            quote_ident(key), tbl USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- No write in flight on the table from here on (released at commit);
    -- what it staged under the previous options is expanded with them.
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    IF to_regclass(staged) IS NOT NULL THEN
        LOOP
            EXIT WHEN tailhook.expand_captures(100000) = 0;
        END LOOP;
    END IF;

    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'tailhook_capture_' || op, tbl);
    END LOOP;
    EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I()', fname);
    EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I(bigint, int)', fname || '_expand');
    EXECUTE format('DROP VIEW IF EXISTS tailhook.%I', fname || '_columns');
    DELETE FROM tailhook.capture_config WHERE relid = tbl;
    PERFORM tailhook.capture_forget_dropped();

    -- The staging table is kept across re-captures (it may hold statements
    -- that failed to expand under the previous options). Its arrays are of a
    -- domain over the table's row type: generated code names the domain,
    -- never the table, so renaming the table or its schema breaks nothing.
    IF to_regtype(row_type) IS NULL THEN
        EXECUTE format('CREATE DOMAIN %s AS %s', row_type, tbl);
    END IF;
    EXECUTE format($f$CREATE TABLE IF NOT EXISTS %s (
        batch      bigint PRIMARY KEY,
        op         "char" NOT NULL,
        n          int NOT NULL,
        done       int NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        old_rows   %s[],
        new_rows   %s[])$f$, staged, row_type, row_type);
    EXECUTE format('ALTER TABLE %s ALTER old_rows SET STORAGE EXTERNAL, ALTER new_rows SET STORAGE EXTERNAL', staged);

    -- The columns the expansion names, pinned against DROP and ALTER TYPE.
    SELECT array_agg(DISTINCT x) INTO pinned
      FROM unnest(ARRAY[key, capture.tenant_column] || coalesce(capture.columns, '{}')) AS x WHERE x IS NOT NULL;
    EXECUTE format('CREATE VIEW tailhook.%I AS SELECT %s FROM %s WHERE false', fname || '_columns',
        (SELECT string_agg(quote_ident(x), ', ') FROM unnest(pinned) AS x), tbl);

    -- The writer's side: one staged row per statement, no JSON, no per-row work
    -- beyond copying the row into the array.
    -- A statement of more than 100,000 rows is staged as several rows of at
    -- most 100,000 (an array is limited to 1 GB, and an expansion slice
    -- reads its staged row whole); numbering the rows costs a little, so
    -- smaller statements are staged without it.
    IF 'insert' = ANY (ops) THEN
        write_body := write_body || format($f$
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows OFFSET 100000) THEN
            INSERT INTO %1$s (batch, op, n, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'i', count(*), array_agg(n::%2$s) FROM new_rows n HAVING count(*) > 0;
        ELSE
            INSERT INTO %1$s (batch, op, n, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'i', count(*), array_agg(c.r)
              FROM (SELECT n::%2$s AS r, (row_number() OVER () - 1) / 100000 AS g FROM new_rows n) c GROUP BY c.g;
        END IF;
    END IF;$f$, staged, row_type);
    END IF;
    IF 'update' = ANY (ops) THEN
        -- Old and new images of a row sit at the same position of the two
        -- transition tables; each staged row keeps them aligned: both sides
        -- are sliced by position and aggregated in scan order (the function
        -- runs with enable_sort off, so the grouping is hashed and keeps that
        -- order), and slice g of the old rows meets slice g of the new.
        write_body := write_body || format($f$
    IF TG_OP = 'UPDATE' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows OFFSET 100000) THEN
            INSERT INTO %1$s (batch, op, n, old_rows, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'u', count(*), (SELECT array_agg(o::%2$s) FROM old_rows o), array_agg(n::%2$s)
              FROM new_rows n HAVING count(*) > 0;
        ELSE
            INSERT INTO %1$s (batch, op, n, old_rows, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'u', a.n, a.r, b.r
              FROM (SELECT c.g, count(*) AS n, array_agg(c.r) AS r
                      FROM (SELECT o::%2$s AS r, (row_number() OVER () - 1) / 100000 AS g FROM old_rows o) c GROUP BY c.g) a
              JOIN (SELECT c.g, array_agg(c.r) AS r
                      FROM (SELECT n::%2$s AS r, (row_number() OVER () - 1) / 100000 AS g FROM new_rows n) c GROUP BY c.g) b
                ON b.g = a.g;
        END IF;
    END IF;$f$, staged, row_type);
    END IF;
    IF 'delete' = ANY (ops) THEN
        write_body := write_body || format($f$
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM old_rows OFFSET 100000) THEN
            INSERT INTO %1$s (batch, op, n, old_rows)
            SELECT nextval('tailhook.capture_batch'), 'd', count(*), array_agg(o::%2$s) FROM old_rows o HAVING count(*) > 0;
        ELSE
            INSERT INTO %1$s (batch, op, n, old_rows)
            SELECT nextval('tailhook.capture_batch'), 'd', count(*), array_agg(c.r)
              FROM (SELECT o::%2$s AS r, (row_number() OVER () - 1) / 100000 AS g FROM old_rows o) c GROUP BY c.g;
        END IF;
    END IF;$f$, staged, row_type);
    END IF;
    -- SECURITY DEFINER: the writing role needs no privilege on tailhook's
    -- objects (a trigger function cannot be called any other way).
    EXECUTE format($f$CREATE FUNCTION tailhook.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        SET jit = off SET enable_sort = off SET search_path = pg_catalog, pg_temp AS %L$f$, fname,
        format($b$
-- tailhook capture v18: generated by tailhook.capture, replaced by capture, dropped by uncapture.
BEGIN%s
    IF FOUND THEN
        -- The payload tells tailhook to expand before its fan-out (an
        -- outbox insert's empty one does not).
        PERFORM pg_notify('tailhook_outbox', 'capture');
    END IF;
    RETURN NULL;
END
$b$, write_body));

    -- tailhook's side: the staged statements of this table with a batch below
    -- `upto`, oldest first, up to `budget` rows; returns how many rows it took.
    -- Rows come out of the arrays in lockstep (SRFs in one select list): an
    -- UPDATE's old and new images of one row sit at the same position
    -- (PostgreSQL records them as a pair); they are one event when their keys
    -- are equal, else (the key itself changed) two: one with only `new`, one
    -- with only `old`. A pair whose captured columns are all equal is dropped.
    expand_body := format($f$
DECLARE
    s record;
    tbl text;
    lo int;
    hi int;
    used int := 0;
BEGIN
    SELECT format('%%I.%%I', n.nspname, c.relname) INTO tbl
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %1$s;
    -- The columns named below must still be there by these names (a plan
    -- cached before a rename would otherwise go on with the old attribute).
    IF (SELECT count(*) FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = %1$s AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY (%10$L::text[])) <> %12$s THEN
        RAISE EXCEPTION 'a column captured from %% was renamed (captured: %%); run tailhook.capture again', tbl, %10$L;
    END IF;
    FOR s IN SELECT x.batch, x.op, x.n, x.done FROM %2$s x WHERE x.batch < upto ORDER BY x.batch LOOP
        EXIT WHEN used >= budget;
        lo := s.done + 1;
        hi := least(s.n, s.done + (budget - used));
        IF s.op = 'i' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %3$L, jsonb_build_object('table', tbl, 'operation', 'insert', 'new', %6$s, 'old', NULL),
                   %8$s, (u.n).%11$I::text, u.created_at
              FROM (SELECT unnest(x.new_rows) AS n, generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSIF s.op = 'd' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %5$L, jsonb_build_object('table', tbl, 'operation', 'delete', 'new', NULL, 'old', %7$s),
                   %9$s, (u.o).%11$I::text, u.created_at
              FROM (SELECT unnest(x.old_rows) AS o, generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSE
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %4$L, jsonb_build_object('table', tbl, 'operation', 'update', 'new', e.nj, 'old', e.oj),
                   e.tenant, e.k, p.created_at
              FROM (SELECT u.created_at, %6$s AS nj, %7$s AS oj, (u.n).%11$I AS nk, (u.o).%11$I AS ok,
                           %8$s AS nt, %9$s AS ot
                      FROM (SELECT unnest(x.old_rows) AS o, unnest(x.new_rows) AS n, generate_series(1, x.n) AS i, x.created_at
                              FROM %2$s x WHERE x.batch = s.batch) u
                     WHERE u.i BETWEEN lo AND hi) p
             CROSS JOIN LATERAL (VALUES
                   (p.ok = p.nk, p.nj, p.oj, coalesce(p.nt, p.ot), p.nk::text),
                   (p.ok = p.nk IS NOT TRUE, p.nj, NULL, p.nt, p.nk::text),
                   (p.ok = p.nk IS NOT TRUE, NULL, p.oj, p.ot, p.ok::text)) AS e(keep, nj, oj, tenant, k)
             WHERE e.keep AND e.nj IS DISTINCT FROM e.oj;
        END IF;
        used := used + (hi - lo + 1);
        IF hi >= s.n THEN
            DELETE FROM %2$s x WHERE x.batch = s.batch;
        ELSE
            UPDATE %2$s x SET done = hi WHERE x.batch = s.batch;
        END IF;
    END LOOP;
    RETURN used;
END
$f$, tbl::oid, staged, capture.event_type || '.inserted', capture.event_type || '.updated',
        capture.event_type || '.deleted',
        tailhook.capture_json('u.n', capture.columns), tailhook.capture_json('u.o', capture.columns),
        CASE WHEN capture.tenant_column IS NULL THEN 'NULL::text' ELSE format('(u.n).%I::text', capture.tenant_column) END,
        CASE WHEN capture.tenant_column IS NULL THEN 'NULL::text' ELSE format('(u.o).%I::text', capture.tenant_column) END,
        pinned, key, cardinality(pinned));
    EXECUTE format($f$CREATE FUNCTION tailhook.%I(upto bigint, budget int) RETURNS int LANGUAGE plpgsql SECURITY DEFINER
        SET jit = off SET search_path = pg_catalog, pg_temp AS %L$f$, fname || '_expand',
        '-- tailhook capture v18: generated by tailhook.capture, replaced by capture, dropped by uncapture.'
        || expand_body);

    FOREACH op IN ARRAY ops LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION tailhook.%I()',
            'tailhook_capture_' || op, upper(op), tbl,
            CASE op WHEN 'insert' THEN 'NEW TABLE AS new_rows'
                    WHEN 'delete' THEN 'OLD TABLE AS old_rows'
                    ELSE 'OLD TABLE AS old_rows NEW TABLE AS new_rows' END,
            fname);
    END LOOP;

    INSERT INTO tailhook.capture_config (relid, event_type, operations, columns, tenant_column, key_column, function_name)
    VALUES (tbl, capture.event_type, ops, capture.columns, capture.tenant_column, key, fname);

    -- Statements the previous options could not expand (a captured column
    -- renamed since) are expanded with the new ones.
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', staged) INTO stuck;
    IF stuck THEN
        LOOP
            EXIT WHEN tailhook.expand_captures(100000) = 0;
        END LOOP;
    END IF;
END
$$;

-- Tables captured before this version get its objects, with their options
-- unchanged (a later version's are left as they are).
DO $do$
DECLARE
    c tailhook.capture_config%ROWTYPE;
BEGIN
    PERFORM tailhook.capture_forget_dropped();
    FOR c IN SELECT cc.* FROM tailhook.capture_config cc
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                 WHERE p.pronamespace = 'tailhook'::regnamespace
                                   AND p.proname = cc.function_name
                                   AND p.prosrc ~ 'tailhook capture v(1[89]|[2-9][0-9]):')
              ORDER BY cc.relid LOOP
        PERFORM tailhook.capture(c.relid::regclass, c.event_type, c.operations, c.columns, c.tenant_column, c.key_column);
    END LOOP;
END
$do$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (18, 'capture_slices');
END
$tailhook_step$;
