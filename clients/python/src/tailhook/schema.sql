-- tailhook 0.1.0 schema steps (30 pending; the latest version is 31).
-- Run them in order. A step marked `transactional` is one statement and
-- may run inside your tool's transaction; each step marked `outside a
-- transaction` must run on its own in autocommit. `psql -v ON_ERROR_STOP=1
-- -f` runs the whole file correctly. Applying it again changes nothing,
-- except that a step holding the line `-- tailhook: skip once tailhook.deliveries is partitioned`
-- must then be left out: once `SELECT relkind FROM pg_class WHERE oid =
-- 'tailhook.deliveries'::regclass` says 'p' (PostgreSQL builds no index
-- CONCURRENTLY on a partitioned table; version 31 built them).
-- The line below, before the first step, only keeps psql from printing
-- the statements' "does not exist, skipping" notices.
SET client_min_messages = warning;

-- tailhook step 1 schema: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
$do$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (1, 'schema');
END
$tailhook_step$;

-- tailhook step 2 breaker: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
-- tailhook: skip once tailhook.deliveries is partitioned
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
--
-- tailhook: skip once tailhook.deliveries is partitioned
-- Version 31 partitions tailhook.deliveries, with these indexes on the
-- partitioned table; PostgreSQL builds no index CONCURRENTLY on one, so
-- once it is partitioned this file is skipped (`tailhook migrate`, and a
-- tool applying the printed script: each of its steps carries the line above).

-- An interrupted concurrent build (a cancel, a crash, a lost connection)
-- leaves an invalid index behind, which CREATE INDEX IF NOT EXISTS would
-- take for done: rename it out of the way (never one still being built),
-- drop it without blocking writes, then build the index again.
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_ordered_invalid;

-- tailhook step 10 concurrent_indexes (2 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_finished_invalid;

-- tailhook step 10 concurrent_indexes (3 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_succeeded_invalid;

-- tailhook step 10 concurrent_indexes (4 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_failed_invalid;

-- tailhook step 10 concurrent_indexes (5 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_keyed_scheduled_invalid;

-- tailhook step 10 concurrent_indexes (6 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
DO $$
DECLARE
    i record;
BEGIN
    -- Outside a transaction, behind a transaction-mode pooler, no session
    -- setting pins the search_path: this block pins its own.
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
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
-- tailhook: skip once tailhook.deliveries is partitioned
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_ordered_invalid;

-- tailhook step 10 concurrent_indexes (8 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_finished_invalid;

-- tailhook step 10 concurrent_indexes (9 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_succeeded_invalid;

-- tailhook step 10 concurrent_indexes (10 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_failed_invalid;

-- tailhook step 10 concurrent_indexes (11 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_keyed_scheduled_invalid;

-- tailhook step 10 concurrent_indexes (12 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
-- The head of each key (its oldest unfinished delivery) in one index probe.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_ordered
    ON tailhook.deliveries (endpoint_id, ordering_key, outbox_id)
    WHERE status IN ('pending', 'retrying') AND ordering_key IS NOT NULL;

-- tailhook step 10 concurrent_indexes (13 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
-- Finished deliveries by age, per status, for retention (see sql/queries/retention_deliveries.sql).
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_finished
    ON tailhook.deliveries (status, completed_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');

-- tailhook step 10 concurrent_indexes (14 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
-- Finished deliveries by endpoint and completion time, one partial index per
-- outcome, for `tailhook status` (see 0007_status.sql).
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_succeeded
    ON tailhook.deliveries (endpoint_id, completed_at)
    WHERE status = 'succeeded';

-- tailhook step 10 concurrent_indexes (15 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_failed
    ON tailhook.deliveries (endpoint_id, completed_at)
    WHERE status = 'failed';

-- tailhook step 10 concurrent_indexes (16 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
-- Keyed deliveries that are scheduled (see 0009_key_heads.sql): each key's
-- head, and the few left scheduled behind an older one. The due claim's check
-- that no other delivery of a key is being sent reads these, not the key's
-- whole backlog.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_keyed_scheduled
    ON tailhook.deliveries (endpoint_id, ordering_key)
    WHERE status IN ('pending', 'retrying') AND ordering_key IS NOT NULL AND next_attempt_at IS NOT NULL;

-- tailhook step 10 concurrent_indexes (17 of 17): outside a transaction
-- tailhook: skip once tailhook.deliveries is partitioned
-- Done only when every one is valid: a concurrent migrator's build still
-- running makes this fail, and `tailhook migrate` waits for it and retries.
DO $$
DECLARE
    missing text;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
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

-- tailhook step 19 sql_privileges: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 19) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 19: no other role's code runs with tailhook's
-- privileges (issue 29, findings 4 and 5).
-- Plain SQL, safe to re-run: functions are replaced in place, settings and
-- grants are set again to the same values, and a captured table's
-- expansion is re-generated only while it is not yet of this version.
--
-- 1. Change capture's expansion ran, as the role that called `capture`
--    (often a superuser), `to_jsonb` over the captured rows, and `to_jsonb`
--    calls any cast to json defined for a non-built-in type: the owner of an
--    enum in a captured table could make that cast run `ALTER ROLE ...
--    SUPERUSER`. A `::text` of the key or tenant column called a cast to
--    text the same way. Pinning search_path does not help (casts are found
--    by type, not by name). Now the generated code never hands a value to a
--    cast, an operator or a function that a non-superuser could have
--    written:
--      * a value of a "trusted" type (see capture_trusted: built-in types,
--        and types owned by a superuser whose casts all use functions owned
--        by superusers, e.g. an extension's) is converted as before
--        (`to_jsonb`, `::text`), so payloads do not change;
--      * any other value is converted through its type's output function
--        (`format('%s', v)`: output functions can only be written by
--        superusers), as the JSON string `to_jsonb` gives such a type when it
--        has no cast to json: an enum's label, a range's text; an array of
--        them is a JSON array of those strings, a composite of them an object;
--      * the whole row goes through `to_jsonb` only while every column is
--        trusted; the expansion locks the table (ACCESS SHARE, the lock a
--        SELECT takes) and checks its columns first, so a column added since
--        the function was generated makes it re-generate itself before it
--        converts any row.
--    The writer's side (the trigger) is unchanged: it copies rows, nothing
--    else.
-- 2. Generated functions are SECURITY DEFINER; they were executable by
--    PUBLIC, so any role with USAGE on schema tailhook could call the
--    expansion. Now EXECUTE is revoked from PUBLIC: the trigger function
--    needs none (PostgreSQL checks EXECUTE when a trigger is created, not
--    when it fires), the expansion is executable by its owner and by the
--    owner of `tailhook.expand_captures`, which calls it (and is itself
--    SECURITY DEFINER, not executable by PUBLIC).
-- 3. Every function in schema tailhook runs with search_path = pg_catalog,
--    pg_temp, whatever the calling session's search_path (a role that may
--    create objects in a schema on it could otherwise shadow a built-in),
--    except two SQL functions on hot paths: `uuid_v7` (the outbox's
--    event_id default, inlined into every insert: a SET clause stops
--    inlining) and `event_type_matches` (called per endpoint row by the
--    fan-out: a SET clause costs a settings save and restore per call,
--    measured 30-45 % more server CPU). They are recreated as SQL-standard
--    bodies (BEGIN ATOMIC), parsed once here with every name qualified, so
--    no later search_path can change what they call.

-- The type to_jsonb and casts look at: domains looked through.
CREATE OR REPLACE FUNCTION tailhook.capture_base_type(t oid) RETURNS oid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE d(oid, base, depth) AS (
        SELECT y.oid, y.typbasetype, 0 FROM pg_catalog.pg_type y WHERE y.oid = t
        UNION ALL
        SELECT y.oid, y.typbasetype, d.depth + 1 FROM d JOIN pg_catalog.pg_type y ON y.oid = d.base
         WHERE d.base <> 0 AND d.depth < 64)
    SELECT d.oid FROM d ORDER BY d.depth DESC LIMIT 1
$$;

-- The element type of a true array type (what to_jsonb walks into), else 0.
CREATE OR REPLACE FUNCTION tailhook.capture_element_type(t oid) RETURNS oid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN y.typelem <> 0 AND y.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc
                THEN y.typelem ELSE 0 END
      FROM pg_catalog.pg_type y WHERE y.oid = tailhook.capture_base_type(t)
$$;

-- Whether converting a value of type `t` (to_jsonb, a cast to text) can only
-- run code written by a superuser: the type (domains looked through, array
-- elements and composite attributes too) is owned by a superuser, and every
-- cast from it uses a function owned by a superuser (or none). Built-in
-- types and extensions' types are; a role's own enum, range or composite
-- type is not (its owner may define casts from it at any time).
CREATE OR REPLACE FUNCTION tailhook.capture_trusted(t oid, depth int DEFAULT 0) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b oid := tailhook.capture_base_type(t);
    e oid := tailhook.capture_element_type(t);
    y pg_catalog.pg_type%ROWTYPE;
BEGIN
    IF depth > 32 OR b IS NULL THEN
        RETURN false;
    END IF;
    IF e <> 0 THEN
        RETURN tailhook.capture_trusted(e, depth + 1);
    END IF;
    SELECT * INTO y FROM pg_catalog.pg_type WHERE oid = b;
    IF NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = y.typowner), false) THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_cast c
                 LEFT JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc
                 LEFT JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
                WHERE c.castsource = b AND c.castfunc <> 0 AND NOT coalesce(r.rolsuper, false)) THEN
        RETURN false;
    END IF;
    IF y.typrelid <> 0 THEN
        RETURN NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = y.typrelid AND a.attnum > 0 AND NOT a.attisdropped
               AND NOT tailhook.capture_trusted(a.atttypid, depth + 1));
    END IF;
    RETURN true;
END
$$;

-- SQL for `expr` (of type `t`) as jsonb, handing no value to code a
-- non-superuser could have written (see the header): trusted types through
-- to_jsonb, others through their output function, composites attribute by
-- attribute (jsonb_build_object takes at most 100 arguments: chunks of 50).
CREATE OR REPLACE FUNCTION tailhook.capture_value_json(expr text, t oid, depth int DEFAULT 0) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b oid := tailhook.capture_base_type(t);
    e oid := tailhook.capture_element_type(t);
    rel oid;
    parts text[] := '{}';
    args text[] := '{}';
    a record;
BEGIN
    IF depth > 32 THEN
        RAISE EXCEPTION 'tailhook.capture: % nests types more than 32 levels deep', expr
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF tailhook.capture_trusted(t) THEN
        RETURN format('pg_catalog.to_jsonb(%s)', expr);
    END IF;
    IF e <> 0 THEN
        IF (SELECT y.typrelid FROM pg_catalog.pg_type y WHERE y.oid = tailhook.capture_base_type(e)) <> 0 THEN
            -- An array of composites: one object per element (in storage order).
            RETURN format('(SELECT pg_catalog.jsonb_agg(%s ORDER BY x.o) FROM pg_catalog.unnest(%s) WITH ORDINALITY AS x(v, o))',
                tailhook.capture_value_json('x.v', e, depth + 1), expr);
        END IF;
        -- The array's text, read back as text[]: its elements' output texts.
        RETURN format('CASE WHEN pg_catalog.num_nulls(%s) = 1 THEN NULL ELSE pg_catalog.to_jsonb(pg_catalog.format(''%%s'', %s)::pg_catalog.text[]) END', expr, expr);
    END IF;
    SELECT y.typrelid INTO rel FROM pg_catalog.pg_type y WHERE y.oid = b;
    IF rel = 0 THEN
        RETURN format('CASE WHEN pg_catalog.num_nulls(%s) = 1 THEN NULL ELSE pg_catalog.to_jsonb(pg_catalog.format(''%%s'', %s)) END', expr, expr);
    END IF;
    FOR a IN SELECT x.attname, x.atttypid FROM pg_catalog.pg_attribute x
              WHERE x.attrelid = rel AND x.attnum > 0 AND NOT x.attisdropped ORDER BY x.attnum LOOP
        args := args || format('%L, %s', a.attname,
            tailhook.capture_value_json(format('(%s).%I', expr, a.attname), a.atttypid, depth + 1));
        IF cardinality(args) = 50 THEN
            parts := parts || format('pg_catalog.jsonb_build_object(%s)', array_to_string(args, ', '));
            args := '{}';
        END IF;
    END LOOP;
    IF cardinality(args) > 0 OR cardinality(parts) = 0 THEN
        parts := parts || format('pg_catalog.jsonb_build_object(%s)', array_to_string(args, ', '));
    END IF;
    RETURN format('CASE WHEN pg_catalog.num_nulls(%s) = 1 THEN NULL ELSE %s END', expr,
        array_to_string(parts, ' OPERATOR(pg_catalog.||) '));
END
$$;

-- SQL for `expr` (of type `t`) as text: `::text` for a trusted type (its
-- casts are a superuser's), else its output function (format('%s', NULL)
-- is '', not NULL: a NULL is told apart first).
CREATE OR REPLACE FUNCTION tailhook.capture_value_text(expr text, t oid) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF tailhook.capture_trusted(t) THEN
        RETURN format('(%s)::pg_catalog.text', expr);
    END IF;
    RETURN format('CASE WHEN pg_catalog.num_nulls(%s) = 1 THEN NULL ELSE pg_catalog.format(''%%s'', %s) END', expr, expr);
END
$$;

-- What the generated expansion depends on: the table's columns (name, type)
-- and the attributes of the composite types among them (through domains
-- and arrays), at any depth. Cheap (index probes only, a few per column):
-- the expansion compares it with its own at every call.
CREATE OR REPLACE FUNCTION tailhook.capture_signature(r oid) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rels oid[] := ARRAY[r];
    todo oid[];
    y record;
    steps int := 0;
    sig text;
    nested boolean;
BEGIN
    -- The common case in one query: no column of a domain, array or
    -- composite type.
    SELECT string_agg(format('%s.%s:%s:%s', a.attrelid, a.attnum, a.attname, a.atttypid), ',' ORDER BY a.attnum),
           bool_or(t.typtype IN ('d', 'c') OR t.typelem <> 0)
      INTO sig, nested
      FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = r AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT coalesce(nested, false) THEN
        RETURN sig;
    END IF;
    todo := ARRAY(SELECT a.atttypid FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = r AND a.attnum > 0 AND NOT a.attisdropped);
    WHILE cardinality(todo) > 0 AND steps < 10000 LOOP
        steps := steps + 1;
        SELECT t.typtype, t.typbasetype, t.typelem, t.typsubscript, t.typrelid INTO y
          FROM pg_catalog.pg_type t WHERE t.oid = todo[1];
        todo := todo[2:];
        IF y.typtype = 'd' THEN
            todo := todo || y.typbasetype;
        ELSIF y.typelem <> 0 AND y.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc THEN
            todo := todo || y.typelem;
        ELSIF y.typtype = 'c' AND y.typrelid <> ALL (rels) THEN
            rels := rels || y.typrelid;
            todo := todo || ARRAY(SELECT a.atttypid FROM pg_catalog.pg_attribute a
                                   WHERE a.attrelid = y.typrelid AND a.attnum > 0 AND NOT a.attisdropped);
        END IF;
    END LOOP;
    RETURN (SELECT string_agg(format('%s.%s:%s:%s', a.attrelid, a.attnum, a.attname, a.atttypid), ',' ORDER BY x.o, a.attnum)
              FROM unnest(rels) WITH ORDINALITY AS x(relid, o)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = x.relid AND a.attnum > 0 AND NOT a.attisdropped);
END
$$;

-- SQL for a captured row (`expr`, of table `r`'s row type) as jsonb: every
-- column, or only `cols`.
CREATE OR REPLACE FUNCTION tailhook.capture_row_projection(expr text, r oid, cols text[]) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parts text[] := '{}';
    args text[] := '{}';
    a record;
BEGIN
    IF cols IS NULL AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_attribute x
         WHERE x.attrelid = r AND x.attnum > 0 AND NOT x.attisdropped AND NOT tailhook.capture_trusted(x.atttypid)) THEN
        -- Every column trusted: the row whole (the expansion re-generates
        -- itself, under a lock, before a column added since is converted).
        RETURN format('pg_catalog.to_jsonb(%s)', expr);
    END IF;
    FOR a IN SELECT x.attname, x.atttypid FROM pg_catalog.pg_attribute x
              WHERE x.attrelid = r AND x.attnum > 0 AND NOT x.attisdropped
                AND (cols IS NULL OR x.attname = ANY (cols))
              ORDER BY CASE WHEN cols IS NULL THEN x.attnum ELSE pg_catalog.array_position(cols, x.attname::text) END LOOP
        args := args || format('%L, %s', a.attname,
            tailhook.capture_value_json(format('(%s).%I', expr, a.attname), a.atttypid));
        IF cardinality(args) = 50 THEN
            parts := parts || format('pg_catalog.jsonb_build_object(%s)', array_to_string(args, ', '));
            args := '{}';
        END IF;
    END LOOP;
    IF cardinality(args) > 0 OR cardinality(parts) = 0 THEN
        parts := parts || format('pg_catalog.jsonb_build_object(%s)', array_to_string(args, ', '));
    END IF;
    RETURN array_to_string(parts, ' OPERATOR(pg_catalog.||) ');
END
$$;

-- Generates (or replaces) table `r`'s expansion function,
-- tailhook.capture_<r>_expand(upto, budget), for these options: the staged
-- statements of this table with a batch below `upto`, oldest first, up to
-- `budget` rows; returns how many rows it took. Owned by the role calling
-- it, SECURITY DEFINER, executable only by that role and the owner of
-- tailhook.expand_captures.
-- Rows come out of the arrays in lockstep (SRFs in one select list): an
-- UPDATE's old and new images of one row sit at the same position
-- (PostgreSQL records them as a pair); they are one event when their keys
-- are equal, else (the key itself changed) two: one with only `new`, one
-- with only `old`. A pair whose captured columns are all equal is dropped.
CREATE OR REPLACE FUNCTION tailhook.capture_make_expand(
    r oid, event_type text, columns text[], tenant_column text, key_column text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fname text := 'capture_' || r || '_expand';
    staged text := format('tailhook.%I', 'capture_' || r || '_staged');
    pinned text[];
    key_type oid;
    tenant_type oid;
    body text;
    caller oid;
BEGIN
    SELECT array_agg(DISTINCT x) INTO pinned
      FROM unnest(ARRAY[key_column, tenant_column] || coalesce(columns, '{}')) AS x WHERE x IS NOT NULL;
    SELECT a.atttypid INTO key_type FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = r AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    SELECT a.atttypid INTO tenant_type FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = r AND a.attname = tenant_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF (SELECT count(*) FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = r AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY (pinned)) <> cardinality(pinned) THEN
        RAISE EXCEPTION 'a column captured from % was renamed or dropped (captured: %); run tailhook.capture again',
            r::regclass, pinned;
    END IF;
    body := format($f$
-- tailhook capture v19: generated by tailhook.capture_make_expand, replaced by capture, dropped by uncapture.
DECLARE
    s record;
    tbl text;
    lo int;
    hi int;
    used int := 0;
BEGIN
    -- No column can be added or dropped while this runs; if the columns are
    -- no longer those this function was generated for, it is generated
    -- again (converting a new column as the old code would is not safe).
    -- (expand_captures sets a short lock_timeout when it must not wait.)
    EXECUTE pg_catalog.format('LOCK TABLE %%s IN ACCESS SHARE MODE', %1$s::pg_catalog.regclass);
    IF tailhook.capture_signature(%1$s) IS DISTINCT FROM %13$L THEN
        PERFORM tailhook.capture_make_expand(%1$s, %14$L, %15$L, %16$L, %11$L);
        EXECUTE pg_catalog.format('SELECT tailhook.%%I($1, $2)', %17$L) INTO used USING upto, budget;
        RETURN used;
    END IF;
    SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname) INTO tbl
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %1$s;
    FOR s IN SELECT x.batch, x.op, x.n, x.done FROM %2$s x WHERE x.batch < upto ORDER BY x.batch LOOP
        EXIT WHEN used >= budget;
        lo := s.done + 1;
        hi := least(s.n, s.done + (budget - used));
        IF s.op = 'i' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %3$L, pg_catalog.jsonb_build_object('table', tbl, 'operation', 'insert', 'new', %6$s, 'old', NULL),
                   %8$s, %12$s, u.created_at
              FROM (SELECT pg_catalog.unnest(x.new_rows) AS n, pg_catalog.generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSIF s.op = 'd' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %5$L, pg_catalog.jsonb_build_object('table', tbl, 'operation', 'delete', 'new', NULL, 'old', %7$s),
                   %9$s, %18$s, u.created_at
              FROM (SELECT pg_catalog.unnest(x.old_rows) AS o, pg_catalog.generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSE
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %4$L, pg_catalog.jsonb_build_object('table', tbl, 'operation', 'update', 'new', e.nj, 'old', e.oj),
                   e.tenant, e.k, p.created_at
              FROM (SELECT u.created_at, %6$s AS nj, %7$s AS oj, (u.n).%11$I AS nk, (u.o).%11$I AS ok,
                           %8$s AS nt, %9$s AS ot, %12$s AS nkt, %18$s AS okt
                      FROM (SELECT pg_catalog.unnest(x.old_rows) AS o, pg_catalog.unnest(x.new_rows) AS n,
                                   pg_catalog.generate_series(1, x.n) AS i, x.created_at
                              FROM %2$s x WHERE x.batch = s.batch) u
                     WHERE u.i BETWEEN lo AND hi) p
             CROSS JOIN LATERAL (VALUES
                   (p.ok = p.nk, p.nj, p.oj, coalesce(p.nt, p.ot), p.nkt),
                   (p.ok = p.nk IS NOT TRUE, p.nj, NULL, p.nt, p.nkt),
                   (p.ok = p.nk IS NOT TRUE, NULL, p.oj, p.ot, p.okt)) AS e(keep, nj, oj, tenant, k)
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
$f$, r, staged, event_type || '.inserted', event_type || '.updated', event_type || '.deleted',
        tailhook.capture_row_projection('u.n', r, columns), tailhook.capture_row_projection('u.o', r, columns),
        CASE WHEN tenant_column IS NULL THEN 'NULL::pg_catalog.text'
             ELSE tailhook.capture_value_text(format('(u.n).%I', tenant_column), tenant_type) END,
        CASE WHEN tenant_column IS NULL THEN 'NULL::pg_catalog.text'
             ELSE tailhook.capture_value_text(format('(u.o).%I', tenant_column), tenant_type) END,
        pinned, key_column,
        tailhook.capture_value_text(format('(u.n).%I', key_column), key_type),
        tailhook.capture_signature(r), event_type, columns, tenant_column, fname,
        tailhook.capture_value_text(format('(u.o).%I', key_column), key_type));
    EXECUTE format($f$CREATE OR REPLACE FUNCTION tailhook.%I(upto bigint, budget int) RETURNS int
        LANGUAGE plpgsql SECURITY DEFINER SET jit = off SET search_path = pg_catalog, pg_temp AS %L$f$, fname, body);
    EXECUTE format('REVOKE ALL ON FUNCTION tailhook.%I(bigint, int) FROM PUBLIC', fname);
    SELECT p.proowner INTO caller FROM pg_catalog.pg_proc p
     WHERE p.oid = 'tailhook.expand_captures(int, boolean)'::pg_catalog.regprocedure;
    IF caller IS NOT NULL AND caller <> (SELECT p.proowner FROM pg_catalog.pg_proc p
                                          WHERE p.oid = format('tailhook.%I(bigint, int)', fname)::pg_catalog.regprocedure) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION tailhook.%I(bigint, int) TO %s', fname, caller::pg_catalog.regrole);
    END IF;
END
$$;

-- Installs (or replaces, atomically: it runs in the caller's transaction)
-- statement-level triggers on `tbl` that stage each statement's rows for
-- `<event_type>.inserted`, `.updated` and `.deleted` events with payload
-- {table, operation, new, old}. Statements staged under the previous options
-- are expanded with those options first. As 0018's, but the expansion is
-- generated by capture_make_expand, neither generated function is
-- executable by PUBLIC, and the calling role must be able to SELECT the table.
CREATE OR REPLACE FUNCTION tailhook.capture(
    tbl           regclass,
    event_type    text,
    operations    text[] DEFAULT '{insert,update,delete}',
    columns       text[] DEFAULT NULL,
    tenant_column text DEFAULT NULL,
    key_column    text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
    -- The expansion reads the table's rows (and locks it as a SELECT does)
    -- with this role's privileges.
    IF NOT has_table_privilege(tbl, 'SELECT') THEN
        RAISE EXCEPTION 'tailhook.capture: the role calling capture needs SELECT on %', tbl
            USING ERRCODE = 'insufficient_privilege';
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
-- tailhook capture v19: generated by tailhook.capture, replaced by capture, dropped by uncapture.
BEGIN%s
    IF FOUND THEN
        -- The payload tells tailhook to expand before its fan-out (an
        -- outbox insert's empty one does not).
        PERFORM pg_notify('tailhook_outbox', 'capture');
    END IF;
    RETURN NULL;
END
$b$, write_body));

    EXECUTE format('REVOKE ALL ON FUNCTION tailhook.%I() FROM PUBLIC', fname);

    -- tailhook's side (see capture_make_expand).
    PERFORM tailhook.capture_make_expand(tbl::oid, capture.event_type, capture.columns, capture.tenant_column, key);

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

-- Expands staged statements into outbox rows, oldest batch first, up to
-- about `max_rows` changed rows (a staged statement larger than what is left
-- is expanded in slices, across calls); returns how many rows were expanded
-- (0: nothing staged). One expander at a time: with `wait` false it returns 0
-- at once when another is at work (the sidecar's call), and stops for this
-- call when a captured table is locked against it (DDL under way); else it
-- waits. A table whose expansion fails (a captured column renamed without
-- capturing again) is skipped with a WARNING; its statements stay staged.
-- SECURITY DEFINER: it calls the generated expansion functions, which are
-- executable by their owner and by this function's owner only; EXECUTE on it
-- is not granted to PUBLIC.
CREATE OR REPLACE FUNCTION tailhook.expand_captures(max_rows int DEFAULT 100000, wait boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
    old_lock_timeout text := current_setting('lock_timeout');
BEGIN
    -- The cheap answer when nothing is captured.
    IF NOT EXISTS (SELECT 1 FROM tailhook.capture_config) THEN
        RETURN 0;
    END IF;
    IF wait THEN
        PERFORM pg_advisory_xact_lock(7368003);
    ELSIF NOT pg_try_advisory_xact_lock(7368003) THEN
        RETURN 0;
    ELSE
        PERFORM set_config('lock_timeout', '100ms', true);
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
        EXCEPTION
            WHEN lock_not_available THEN
                -- DDL holds the table: the rest waits for the next call, in order.
                EXIT;
            WHEN OTHERS THEN
                RAISE WARNING 'tailhook.expand_captures: the changes of % cannot be expanded and stay staged: % (after renaming a captured column, run tailhook.capture again)',
                    first_rel::regclass, SQLERRM;
                skipped := skipped || first_rel;
                CONTINUE;
        END;
        total := total + used;
        budget := budget - used;
        EXIT WHEN budget <= 0;
    END LOOP;
    PERFORM set_config('lock_timeout', old_lock_timeout, true);
    RETURN total;
END
$$;
REVOKE ALL ON FUNCTION tailhook.expand_captures(int, boolean) FROM PUBLIC;

-- Hot-path SQL functions without a SET clause (see the header): SQL-standard
-- bodies, parsed here with every name qualified, never re-parsed under a
-- caller's search_path. Same signatures and results as 0011's and 0013's.
CREATE OR REPLACE FUNCTION tailhook.event_type_matches(patterns text[], event_type text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT EXISTS (
        SELECT 1 FROM pg_catalog.unnest(patterns) AS p
        WHERE (p OPERATOR(pg_catalog.=) '*'::pg_catalog.text
               AND NOT (pg_catalog.starts_with(event_type, 'tailhook.'::pg_catalog.text)
                        AND event_type OPERATOR(pg_catalog.<>) 'tailhook.test'::pg_catalog.text))
           OR p OPERATOR(pg_catalog.=) event_type
           OR (pg_catalog.right(p, 2) OPERATOR(pg_catalog.=) '.*'::pg_catalog.text
               AND pg_catalog.starts_with(event_type, pg_catalog.left(p, -1))));
END;

CREATE OR REPLACE FUNCTION tailhook.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pg_catalog.encode(
        pg_catalog.set_bit(pg_catalog.set_bit(
            -- overlay, substring and extract with their SQL syntax always
            -- name pg_catalog's functions.
            overlay(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                    PLACING substring(pg_catalog.int8send((extract(epoch FROM pg_catalog.clock_timestamp())
                                                           OPERATOR(pg_catalog.*) 1000::pg_catalog.numeric)::pg_catalog.int8)
                                      FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::pg_catalog.uuid;
END;

-- Every other function in schema tailhook (those above, the earlier
-- migrations', and those capture generated) runs with the pinned
-- search_path; SECURITY DEFINER ones are not executable by PUBLIC.
DO $do$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS sig, p.prosecdef
               FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'tailhook'::regnamespace
                AND p.oid NOT IN ('tailhook.event_type_matches(text[], text)'::regprocedure,
                                  'tailhook.uuid_v7()'::regprocedure)
              ORDER BY p.oid LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f.sig);
        IF f.prosecdef THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.sig);
        END IF;
    END LOOP;
END
$do$;

-- Tables captured before this version get this version's expansion, with
-- their options unchanged, before anything expands with the old one (a
-- later version's are left as they are). Their trigger functions are kept
-- (the writer's side did not change).
DO $do$
DECLARE
    c tailhook.capture_config%ROWTYPE;
BEGIN
    FOR c IN SELECT cc.* FROM tailhook.capture_config cc
              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class k WHERE k.oid = cc.relid)
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                 WHERE p.pronamespace = 'tailhook'::regnamespace
                                   AND p.proname = 'capture_' || cc.relid || '_expand'
                                   AND p.prosrc ~ 'tailhook capture v(19|[2-9][0-9]):')
              ORDER BY cc.relid LOOP
        BEGIN
            PERFORM tailhook.capture_make_expand(c.relid, c.event_type, c.columns, c.tenant_column, c.key_column);
        EXCEPTION WHEN OTHERS THEN
            -- (a captured column renamed since): the old expansion is
            -- dropped, not kept; the statements stay staged until
            -- tailhook.capture is run again for the table.
            RAISE WARNING 'tailhook migration 19: the capture of % must be run again (tailhook.capture): %',
                c.relid::regclass, SQLERRM;
            EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I(bigint, int)', 'capture_' || c.relid || '_expand');
        END;
    END LOOP;
    PERFORM tailhook.capture_forget_dropped();
END
$do$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (19, 'sql_privileges');
END
$tailhook_step$;

-- tailhook step 20 filter_bounds: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 20) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 20: what an endpoint's filters may hold, checked
-- when a row is written, and filter_path evaluated so that its errors stay
-- with its own delivery. Plain SQL, safe to re-run.
--
-- The same rules are checked by tailhook itself, in src/config/rules.rs (for
-- the config file, and for rows written before this file): keep the numbers
-- and the rules in step. Why these rules: in lax mode every step may unwrap an
-- array, so a jsonpath costs about (its steps) × (the payload's nodes), except
-- where one part of it is evaluated again for every item of another: a `$`
-- inside a filter or a subscript, a second `.**`, a comparison of two values
-- both taken from the payload (every pair is compared), a subscript list
-- (`[0,0,0]` repeats items). Those are refused, and `.keyvalue()` (an object
-- built for every member: the costliest step measured); what remains is
-- linear (measured: at most about 150 ms for a 1 MiB payload).

-- Why a filter_path breaks the rules, or NULL when it keeps them. Takes the
-- text form (PostgreSQL's normal form for a stored value); every message
-- starts with `filter_path: ` and names the rule.
CREATE OR REPLACE FUNCTION tailhook.filter_path_problem(path text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    max_bytes CONSTANT int := 1024;
    max_steps CONSTANT int := 16;
    max_nesting CONSTANT int := 3;
    n int := length(path);
    i int := 1;
    j int;
    ch text;
    tok text[] := '{}';
    t text;
    stack text[] := '{}';
    depth int;
    nesting int;
    steps int := 0;
    descents int := 0;
    k int;
    side_refs int[];
BEGIN
    IF path IS NULL THEN
        RETURN NULL;
    END IF;
    IF octet_length(path) > max_bytes THEN
        RETURN format('filter_path: is longer than %s bytes', max_bytes);
    END IF;
    -- Tokens: S string, N number, W:<word>, V variable, or the punctuation itself.
    WHILE i <= n LOOP
        ch := substr(path, i, 1);
        IF ch ~ '\s' THEN
            i := i + 1;
        ELSIF ch = '"' THEN
            j := i + 1;
            WHILE j <= n AND substr(path, j, 1) <> '"' LOOP
                j := j + CASE WHEN substr(path, j, 1) = '\' THEN 2 ELSE 1 END;
            END LOOP;
            tok := tok || 'S'::text;
            i := j + 1;
        ELSIF ch = '$' AND i < n AND substr(path, i + 1, 1) ~ '["A-Za-z_0-9]' THEN
            RETURN 'filter_path: uses a variable ($name); none are passed';
        ELSIF ch ~ '[0-9]' THEN
            tok := tok || 'N'::text;
            i := i + length(substring(substr(path, i) FROM '^[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'));
        ELSIF ch ~ '[A-Za-z_]' THEN
            t := substring(substr(path, i) FROM '^[A-Za-z_][A-Za-z_0-9]*');
            tok := tok || ('W:' || t);
            i := i + length(t);
        ELSE
            t := substr(path, i, 2);
            IF t IN ('**', '==', '!=', '<>', '<=', '>=', '&&', '||') THEN
                tok := tok || t;
                i := i + 2;
            ELSE
                tok := tok || ch;
                i := i + 1;
            END IF;
        END IF;
    END LOOP;

    FOR k IN 1 .. coalesce(cardinality(tok), 0) LOOP
        t := tok[k];
        IF t = '(' THEN
            stack := stack || CASE WHEN k > 1 AND tok[k - 1] = '?' THEN 'f'
                                   WHEN k > 1 AND tok[k - 1] = 'W:exists' THEN 'e'
                                   ELSE 'g' END;
            nesting := (SELECT count(*) FROM unnest(stack) s WHERE s IN ('f', 'e'));
            IF nesting > max_nesting THEN
                RETURN format('filter_path: nests filters and exists() more than %s deep', max_nesting);
            END IF;
        ELSIF t = '[' THEN
            stack := stack || 'b'::text;
            steps := steps + 1;
        ELSIF t IN (')', ']') THEN
            stack := stack[1 : cardinality(stack) - 1];
        ELSIF t = ',' THEN
            RETURN 'filter_path: lists several subscripts in one [...]; write one condition each';
        ELSIF t = '**' THEN
            descents := descents + 1;
            IF descents > 1 THEN
                RETURN 'filter_path: uses `.**` more than once';
            END IF;
        ELSIF t = '.' THEN
            steps := steps + 1;
        ELSIF t = 'W:keyvalue' AND k > 1 AND tok[k - 1] = '.' THEN
            RETURN 'filter_path: uses .keyvalue() (it builds an object for every member)';
        ELSIF t = '$' AND ('f' = ANY (stack) OR 'b' = ANY (stack)) THEN
            RETURN 'filter_path: uses `$` inside a filter or a subscript (it walks the payload again for every item)';
        END IF;
    END LOOP;
    IF steps > max_steps THEN
        RETURN format('filter_path: has more than %s steps (`.key`, `.*`, `.**`, `[...]`, methods)', max_steps);
    END IF;
    FOR k IN 1 .. coalesce(cardinality(tok), 0) LOOP
        IF tok[k] IN ('==', '!=', '<>', '<', '<=', '>', '>=') THEN
            -- How many `$` or `@` each side holds, within the same brackets:
            -- one side must be a literal (no value from the payload).
            side_refs := ARRAY[0, 0];
            depth := 0;
            j := k - 1;
            WHILE j >= 1 LOOP
                EXIT WHEN depth = 0 AND tok[j] IN ('(', '[', '&&', '||', '!');
                depth := depth + CASE WHEN tok[j] IN (')', ']') THEN 1 WHEN tok[j] IN ('(', '[') THEN -1 ELSE 0 END;
                side_refs[1] := side_refs[1] + CASE WHEN tok[j] IN ('$', '@') THEN 1 ELSE 0 END;
                j := j - 1;
            END LOOP;
            depth := 0;
            j := k + 1;
            WHILE j <= cardinality(tok) LOOP
                EXIT WHEN depth = 0 AND tok[j] IN (')', ']', '&&', '||');
                depth := depth + CASE WHEN tok[j] IN ('(', '[') THEN 1 WHEN tok[j] IN (')', ']') THEN -1 ELSE 0 END;
                side_refs[2] := side_refs[2] + CASE WHEN tok[j] IN ('$', '@') THEN 1 ELSE 0 END;
                j := j + 1;
            END LOOP;
            IF side_refs[1] > 0 AND side_refs[2] > 0 THEN
                RETURN 'filter_path: compares two values from the payload; one side of a comparison must be a literal';
            END IF;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- Why a filter (jsonb containment) breaks the rules, or NULL when it keeps
-- them: at most 64 values in all (each object member and array element
-- counts; containment compares each with the payload's values at its
-- place), nested at most 8 deep, each key and string at most 1 KiB.
CREATE OR REPLACE FUNCTION tailhook.filter_problem(filter jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE node(key, value, level) AS (
        SELECT NULL::text, filter, 0
        UNION ALL
        SELECT c.key, c.value, n.level + 1
          FROM node n
         CROSS JOIN LATERAL (
               SELECT e.key, e.value FROM jsonb_each(CASE WHEN jsonb_typeof(n.value) = 'object' THEN n.value END) e
               UNION ALL
               SELECT NULL, a.value FROM jsonb_array_elements(CASE WHEN jsonb_typeof(n.value) = 'array' THEN n.value END) a
         ) c
         -- one level past the limit is enough to refuse, and stops the walk
         WHERE n.level <= 8
    ), seen AS (
        SELECT count(*) FILTER (WHERE level > 0) AS values, max(level) AS depth,
               max(greatest(octet_length(key),
                            CASE WHEN jsonb_typeof(value) = 'string' THEN octet_length(value #>> '{}') END)) AS longest
          FROM node
    )
    SELECT CASE
               WHEN filter IS NULL THEN NULL
               WHEN depth > 8 THEN 'filter: is nested more than 8 deep'
               WHEN values > 64 THEN 'filter: holds more than 64 values'
               WHEN longest > 1024 THEN 'filter: holds a key or string longer than 1024 bytes'
           END
      FROM seen
$$;

-- Refuses a row whose filters break the rules, naming the column and the
-- rule. A trigger, not a CHECK: it runs only when a filter is written, so a
-- row from before this file (marked invalid by tailhook, see invalid_reason)
-- can still be updated otherwise, e.g. to record why it is invalid.
CREATE OR REPLACE FUNCTION tailhook.endpoints_check_filters() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    problem text;
    col text;
BEGIN
    IF TG_OP = 'INSERT' OR NEW.filter_path::text IS DISTINCT FROM OLD.filter_path::text THEN
        problem := tailhook.filter_path_problem(NEW.filter_path::text);
        col := 'filter_path';
    END IF;
    IF problem IS NULL AND (TG_OP = 'INSERT' OR NEW.filter IS DISTINCT FROM OLD.filter) THEN
        problem := tailhook.filter_problem(NEW.filter);
        col := 'filter';
    END IF;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = problem, COLUMN = col,
            TABLE = 'endpoints', SCHEMA = 'tailhook', CONSTRAINT = 'endpoints_filters_bounded',
            HINT = 'see "Filters" in docs/guide/security.md';
    END IF;
    RETURN NEW;
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                    WHERE tgname = 'endpoints_filters_bounded' AND tgrelid = 'tailhook.endpoints'::regclass) THEN
        CREATE TRIGGER endpoints_filters_bounded
            BEFORE INSERT OR UPDATE OF filter, filter_path ON tailhook.endpoints
            FOR EACH ROW EXECUTE FUNCTION tailhook.endpoints_check_filters();
    END IF;
END
$$;

-- Evaluates an endpoint's filter_path on one payload for the fan-out
-- (sql/queries/dispatch.sql): 'match', 'no match', or why its delivery fails
-- at once. Silent mode turns missing keys and type errors into no match; an
-- error it lets through (a date compared with a time with a zone, a payload
-- nested deeper than the recursion of `.**` allows) is caught here, so it
-- fails that endpoint's delivery and never the claim shared with every other
-- endpoint. Evaluations of 0.2 ms or more count against two budgets of the
-- claim (one transaction): the endpoint's own, and all endpoints' together.
-- Once one is spent, the deliveries it covers are not evaluated but fail
-- with the reason, so one endpoint adds at most its budget plus one
-- evaluation (and under 0.2 ms a row) to a claim, and filters together at
-- most the claim's budget plus one evaluation each.
-- No SET clause (it runs for every filtered pair; one cost 3.5-5 us more per
-- call, about double): every name, operator and type is qualified instead.
CREATE OR REPLACE FUNCTION tailhook.filter_path_matches(payload pg_catalog.jsonb, path pg_catalog.jsonpath,
                                                       endpoint_id pg_catalog.int8,
                                                       endpoint_budget_ms pg_catalog.float8,
                                                       claim_budget_ms pg_catalog.float8)
RETURNS pg_catalog.text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    started pg_catalog.timestamptz := pg_catalog.clock_timestamp();
    spent_key pg_catalog.text := 'tailhook.filter_ms_' OPERATOR(pg_catalog.||) endpoint_id;
    spent pg_catalog.text := pg_catalog.current_setting(spent_key, true);
    all_spent pg_catalog.text := pg_catalog.current_setting('tailhook.filter_ms', true);
    took pg_catalog.float8;
    result pg_catalog.text;
BEGIN
    IF spent OPERATOR(pg_catalog.>) '' AND spent::pg_catalog.float8 OPERATOR(pg_catalog.>) endpoint_budget_ms THEN
        RETURN pg_catalog.format('filter_path not evaluated: this endpoint''s filter took over %s ms in one claim',
                                 endpoint_budget_ms);
    END IF;
    IF all_spent OPERATOR(pg_catalog.>) '' AND all_spent::pg_catalog.float8 OPERATOR(pg_catalog.>) claim_budget_ms THEN
        RETURN pg_catalog.format('filter_path not evaluated: filters took over %s ms in one claim', claim_budget_ms);
    END IF;
    BEGIN
        result := CASE WHEN pg_catalog.jsonb_path_match(payload, path, '{}'::pg_catalog.jsonb, true)
                       THEN 'match' ELSE 'no match' END;
    EXCEPTION WHEN OTHERS THEN
        result := pg_catalog.left('filter_path could not be evaluated: ' OPERATOR(pg_catalog.||) SQLERRM, 500);
    END;
    took := pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started)
            OPERATOR(pg_catalog.*) 1000;
    IF took OPERATOR(pg_catalog.>=) 0.2 THEN
        PERFORM pg_catalog.set_config(spent_key,
            (CASE WHEN spent OPERATOR(pg_catalog.>) '' THEN spent::pg_catalog.float8 ELSE 0 END
             OPERATOR(pg_catalog.+) took)::pg_catalog.text, true);
        PERFORM pg_catalog.set_config('tailhook.filter_ms',
            (CASE WHEN all_spent OPERATOR(pg_catalog.>) '' THEN all_spent::pg_catalog.float8 ELSE 0 END
             OPERATOR(pg_catalog.+) took)::pg_catalog.text, true);
    END IF;
    RETURN result;
END
$$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (20, 'filter_bounds');
END
$tailhook_step$;

-- tailhook step 21 privileges: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 21) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 21: roles with the least privilege each needs,
-- and endpoint secrets and header values sealed at rest.
-- Plain SQL, safe to re-run and to run while publishers and replicas work.
--
-- Four kinds of role, each made by a function taking the role's name (roles
-- are cluster-wide, so tailhook creates none; the GRANTs each function makes
-- are listed in docs/guide/security.md):
--   tailhook.grant_publisher(role)         may only call tailhook.publish
--   tailhook.grant_endpoint_manager(role)  manages tailhook.endpoints
--   tailhook.grant_history_reader(role)    reads outbox, deliveries, attempts
--                                          and tailhook.endpoint_config
--   tailhook.grant_sidecar(role)           what `tailhook run` needs
-- Each grant is recorded in tailhook.role_grants and applied again by
-- tailhook.regrant(), which `tailhook migrate` calls after applying
-- migrations, so objects a later version adds reach the roles too.

-- publish runs as its owner, so a publisher needs no privilege on the
-- outbox (INSERT, and SELECT for RETURNING, would let it read or forge
-- rows); tailhook's own `tailhook.` types (operational events) are refused,
-- but `tailhook.test`, which users publish to try an endpoint.
-- search_path is pinned: nothing the caller put on its path is resolved.
CREATE OR REPLACE FUNCTION tailhook.publish(
    event_type   text,
    payload      jsonb,
    tenant       text DEFAULT NULL,
    ordering_key text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    published uuid;
BEGIN
    IF starts_with(publish.event_type, 'tailhook.') AND publish.event_type <> 'tailhook.test' THEN
        RAISE EXCEPTION 'tailhook.publish: event type % is reserved for tailhook''s own events', quote_literal(publish.event_type)
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key)
    VALUES (publish.event_type, publish.payload, publish.tenant, publish.ordering_key)
    RETURNING outbox.event_id INTO published;
    RETURN published;
END
$$;

-- Only roles given EXECUTE may publish. Roles that could publish before
-- (INSERT on the outbox, granted directly) keep that right.
REVOKE EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text) FROM PUBLIC;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT a.grantee
               FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) AS a
              WHERE c.oid = 'tailhook.outbox'::regclass AND a.privilege_type = 'INSERT'
                AND a.grantee <> 0 AND a.grantee <> c.relowner LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text) TO %s',
                                  r.grantee::regrole);
    END LOOP;
END
$$;

-- Deleting an endpoint (or an outbox row, or a delivery) deletes what hangs
-- off it: tailhook's own bookkeeping, run as the owner, so an endpoint
-- manager may delete an endpoint without any privilege on the history.
ALTER FUNCTION tailhook.cascade_delete() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
-- A trigger function: its trigger fires whoever deletes; nobody calls it.
REVOKE EXECUTE ON FUNCTION tailhook.cascade_delete() FROM PUBLIC;

-- A sealed value: `enc:v1:<key id>:<base64 of nonce, ciphertext and tag>`
-- (ChaCha20-Poly1305: 12 bytes of nonce, 16 of tag). Returns the length of
-- the plaintext it holds, or NULL when `value` is not of that form. The
-- sidecar seals and opens them (src/config/sealed.rs); the database only
-- checks their shape and bounds.
CREATE OR REPLACE FUNCTION tailhook.sealed_length(value text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN value ~ '^enc:v1:[0-9a-f]{8}:[A-Za-z0-9+/]+={0,2}$' AND (length(value) - 16) % 4 = 0
                THEN (length(value) - 16) / 4 * 3 - (length(value) - length(rtrim(value, '='))) - 28 END
$$;

-- A secret is `whsec_` followed by the padded base64 of 24 to 64 bytes
-- (Standard Webhooks), or such a secret sealed (38 to 94 characters inside);
-- at most 10, one-dimensional, no NULL element. src/config/rules.rs holds
-- the same rules for what is inside.
CREATE OR REPLACE FUNCTION tailhook.secrets_valid(secrets text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_ndims(secrets), 1) = 1
       AND coalesce(cardinality(secrets), 0) <= 10
       AND NOT EXISTS (
           SELECT 1 FROM unnest(secrets) AS s
            WHERE s IS NULL
               OR NOT (coalesce(tailhook.sealed_length(s) BETWEEN 38 AND 94, false)
                       OR (s ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'
                           AND (length(s) - 6) % 4 = 0
                           -- decoded length: 3 bytes per 4 characters, less the padding
                           AND (length(s) - 6) / 4 * 3 - (length(s) - length(rtrim(s, '='))) BETWEEN 24 AND 64)))
$$;

-- At most 32 headers, string values, each name and value at most 4 KiB,
-- all of them together at most 16 KiB; a sealed value counts as what it
-- holds.
CREATE OR REPLACE FUNCTION tailhook.headers_valid(headers jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_typeof(headers) = 'object'
       AND (SELECT count(*) <= 32
                   AND coalesce(bool_and(jsonb_typeof(h.value) = 'string'
                                         AND octet_length(h.key) <= 4096
                                         AND h.size <= 4096), true)
                   AND coalesce(sum(octet_length(h.key) + h.size), 0) <= 16384
              FROM (SELECT e.key, e.value,
                           coalesce(tailhook.sealed_length(e.value #>> '{}'), octet_length(e.value #>> '{}')) AS size
                      FROM jsonb_each(CASE WHEN jsonb_typeof(headers) = 'object' THEN headers ELSE '{}' END) AS e) AS h)
$$;

-- Endpoint configuration without what may be a credential: the URL as
-- scheme, host and port only (no userinfo, path or query: chat webhooks
-- carry their token in the path), header names without values, and the
-- number of secrets. For history readers and dashboards.
CREATE OR REPLACE VIEW tailhook.endpoint_config AS
SELECT e.id, e.name, e.tenant,
       pg_catalog.regexp_replace(e.url, '^([A-Za-z][A-Za-z0-9+.-]*://)(?:[^/?#]*@)?([^/?#]*).*$', '\1\2') AS url,
       e.event_types, e.filter, e.filter_path,
       ARRAY(SELECT k FROM pg_catalog.jsonb_object_keys(
                 CASE WHEN pg_catalog.jsonb_typeof(e.headers) = 'object' THEN e.headers ELSE '{}' END) AS k
             ORDER BY k) AS header_names,
       pg_catalog.cardinality(e.secrets) AS secrets,
       e.enabled, e.disabled_reason, e.invalid_reason, e.paused_until,
       e.max_attempts, e.timeout_ms, e.rate_limit_per_sec, e.max_in_flight, e.ordered,
       e.transform, e.managed_by, e.created_at, e.updated_at
  FROM tailhook.endpoints e;

-- Which role was given which kind, so tailhook.regrant() can apply the
-- kinds again after an upgrade. A dropped role's rows are ignored.
CREATE TABLE IF NOT EXISTS tailhook.role_grants (
    role_oid   oid NOT NULL,
    kind       text NOT NULL CONSTRAINT role_grants_kind_known
        CHECK (kind IN ('publisher', 'endpoint_manager', 'history_reader', 'sidecar')),
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role_oid, kind)
);

-- The GRANTs of one kind, to one role. Idempotent (a GRANT held already is
-- a no-op). Run by the schema's owner (or a superuser): EXECUTE is not
-- granted to anyone else.
CREATE OR REPLACE FUNCTION tailhook.grant_kind(kind text, role regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    statements text[];
    s text;
    t record;
BEGIN
    statements := ARRAY['GRANT USAGE ON SCHEMA tailhook TO %1$s'];
    CASE kind
    WHEN 'publisher' THEN
        statements := statements || ARRAY[
            'GRANT EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text) TO %1$s'];
    WHEN 'endpoint_manager' THEN
        statements := statements || ARRAY[
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.endpoint_config TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.enable_endpoint(text) TO %1$s'];
    WHEN 'history_reader' THEN
        statements := statements || ARRAY[
            'GRANT SELECT ON tailhook.outbox, tailhook.deliveries, tailhook.attempts, tailhook.endpoint_config, tailhook.endpoint_stats, tailhook.delivery_log TO %1$s'];
    WHEN 'sidecar' THEN
        statements := statements || ARRAY[
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.outbox, tailhook.deliveries, tailhook.replicas TO %1$s',
            'GRANT SELECT, INSERT, DELETE ON tailhook.attempts TO %1$s',
            'GRANT SELECT, INSERT, UPDATE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.schema_migrations, tailhook.endpoint_stats, tailhook.endpoint_config, tailhook.delivery_log, tailhook.capture_config, tailhook.captures TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.lock_undispatched(bigint), tailhook.expand_captures(int, boolean), tailhook.emit_endpoint_event(text, bigint, jsonb), tailhook.operational_wanted(text, bigint), tailhook.event_type_matches(text[], text), tailhook.enable_endpoint(text) TO %1$s'];
        -- Change capture needs nothing more: expand_captures runs as its
        -- owner (0019) and reads the staging tables and calls the generated
        -- expanders itself.
    ELSE
        RAISE EXCEPTION 'tailhook.grant_kind: unknown kind %', quote_literal(kind)
            USING ERRCODE = 'invalid_parameter_value';
    END CASE;
    FOREACH s IN ARRAY statements LOOP
        EXECUTE pg_catalog.format(s, role);
    END LOOP;
    INSERT INTO tailhook.role_grants (role_oid, kind) VALUES (role, kind) ON CONFLICT DO NOTHING;
END
$$;

CREATE OR REPLACE FUNCTION tailhook.grant_publisher(role regrole) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT tailhook.grant_kind('publisher', role) $$;
CREATE OR REPLACE FUNCTION tailhook.grant_endpoint_manager(role regrole) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT tailhook.grant_kind('endpoint_manager', role) $$;
CREATE OR REPLACE FUNCTION tailhook.grant_history_reader(role regrole) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT tailhook.grant_kind('history_reader', role) $$;
CREATE OR REPLACE FUNCTION tailhook.grant_sidecar(role regrole) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT tailhook.grant_kind('sidecar', role) $$;

-- Applies every recorded grant again (after an upgrade added objects, or
-- after tailhook.capture made a staging table); returns how many.
CREATE OR REPLACE FUNCTION tailhook.regrant() RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g record;
    n int := 0;
BEGIN
    FOR g IN SELECT r.role_oid, r.kind FROM tailhook.role_grants r
              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles a WHERE a.oid = r.role_oid)
              ORDER BY r.role_oid, r.kind LOOP
        PERFORM tailhook.grant_kind(g.kind, g.role_oid::regrole);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

REVOKE EXECUTE ON FUNCTION tailhook.grant_kind(text, regrole), tailhook.grant_publisher(regrole),
    tailhook.grant_endpoint_manager(regrole), tailhook.grant_history_reader(regrole),
    tailhook.grant_sidecar(regrole), tailhook.regrant() FROM PUBLIC;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (21, 'privileges');
END
$tailhook_step$;

-- tailhook step 22 transform_claims: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 22) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 22: a delivery whose transform keeps killing the
-- process is failed instead of claimed again. Plain SQL, safe to re-run.
--
-- `transform_claims` counts the due claims (claim_due.sql) of a delivery of
-- an endpoint with a transform since its last recorded attempt or release
-- (record_results.sql, release_leases.sql, release_all.sql set it to 0).
-- A claim that finds 2 (this claim, and one before it that ended with no
-- result: the process holding it died, or lost the lease) fails the
-- delivery with error_kind 'transform' without running the script. The
-- claim at fan-out (dispatch.sql) is not counted, so a delivery never
-- attempted is failed at its second takeover, one attempted before at its
-- first. It costs no statement: the claim and the result write already
-- update the row (the column is in no index, so the update stays HOT).
ALTER TABLE tailhook.deliveries ADD COLUMN IF NOT EXISTS transform_claims smallint NOT NULL DEFAULT 0;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (22, 'transform_claims');
END
$tailhook_step$;

-- tailhook step 23 legacy_signatures: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 23) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 23: a compatibility signature per endpoint beside
-- the Standard Webhooks headers, and endpoint rows validated before they are
-- written, so a bad value is refused naming its column and rule without
-- PostgreSQL echoing the row (a CHECK violation's DETAIL shows every column,
-- secrets included). Plain SQL, safe to re-run.
--
-- legacy_signature   one extra signature header (NULL: none), a JSON object:
--   {"header": "X-Hub-Signature-256", "algorithm": "sha256" | "sha512",
--    "encoding": "hex" | "base64", "prefix": "sha256=",
--    "format": "body" | "timestamped", "body": "unchanged" | "python_sorted"}
--   header is required; the rest default to sha256, hex, "", body and
--   unchanged. body python_sorted: the body is sent (and every signature
--   computed over it) as Python's json.dumps(payload, sort_keys=True)
--   writes it, for receivers that verify over that re-serialised form.
--   body: HMAC of the exact body bytes sent. timestamped: the value is
--   `t=<unix seconds>,v1=<HMAC of "<unix seconds>.<body>">` (Stripe's form;
--   prefix and encoding apply to the v1 part).
-- legacy_secret      the HMAC key of that header: any string of 16 to 256
--   bytes, used as its bytes (no decoding), sealed at rest like `secrets`.
-- standard_signature whether the webhook-id, webhook-timestamp and
--   webhook-signature headers are sent (true unless turned off).
-- src/config/rules.rs holds the same rules; keep them in step.
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS legacy_signature jsonb;
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS legacy_secret text;
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS standard_signature boolean NOT NULL DEFAULT true;

-- Why a legacy_signature breaks the rules, or NULL when it keeps them.
-- Every message starts with `legacy_signature: ` and names the rule.
CREATE OR REPLACE FUNCTION tailhook.legacy_signature_problem(sig jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN sig IS NULL THEN NULL
        WHEN jsonb_typeof(sig) <> 'object' THEN 'legacy_signature: must be a JSON object'
        WHEN EXISTS (SELECT 1 FROM jsonb_object_keys(sig) AS k
                      WHERE k NOT IN ('header', 'algorithm', 'encoding', 'prefix', 'format', 'body'))
            THEN 'legacy_signature: has a key other than header, algorithm, encoding, prefix, format and body'
        WHEN jsonb_typeof(sig -> 'header') IS DISTINCT FROM 'string'
            THEN 'legacy_signature: header must be a string'
        WHEN (sig ->> 'header') !~ '^[!#$%&''*+.^_`|~0-9A-Za-z-]{1,128}$'
            THEN 'legacy_signature: header is not an HTTP header name of 1 to 128 characters'
        WHEN lower(sig ->> 'header') IN ('content-type', 'content-length', 'host', 'user-agent',
                                         'transfer-encoding', 'connection')
             OR lower(sig ->> 'header') LIKE 'webhook-%'
            THEN 'legacy_signature: header is set by tailhook and cannot be used'
        WHEN sig ? 'algorithm' AND (sig -> 'algorithm') NOT IN ('"sha256"', '"sha512"')
            THEN 'legacy_signature: algorithm must be "sha256" or "sha512"'
        WHEN sig ? 'encoding' AND (sig -> 'encoding') NOT IN ('"hex"', '"base64"')
            THEN 'legacy_signature: encoding must be "hex" or "base64"'
        WHEN sig ? 'format' AND (sig -> 'format') NOT IN ('"body"', '"timestamped"')
            THEN 'legacy_signature: format must be "body" or "timestamped"'
        WHEN sig ? 'body' AND (sig -> 'body') NOT IN ('"unchanged"', '"python_sorted"')
            THEN 'legacy_signature: body must be "unchanged" or "python_sorted"'
        WHEN sig ? 'prefix' AND (jsonb_typeof(sig -> 'prefix') <> 'string'
                                 OR (sig ->> 'prefix') !~ '^[\x21-\x7e]{0,64}$')
            THEN 'legacy_signature: prefix must be at most 64 visible ASCII characters'
    END
$$;

-- A legacy secret: 16 to 256 bytes as written, or such a value sealed.
CREATE OR REPLACE FUNCTION tailhook.legacy_secret_valid(secret text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT secret IS NULL
        OR coalesce(tailhook.sealed_length(secret) BETWEEN 16 AND 256, false)
        OR (NOT starts_with(secret, 'enc:v1:') AND octet_length(secret) BETWEEN 16 AND 256)
$$;

-- Refuses a row that breaks a rule before it is written, naming the column
-- and the rule, with no DETAIL (so neither the row nor a secret reaches the
-- writer's error log). The CHECK constraints stay as a backstop; this runs
-- the same checks first, on every column they cover.
CREATE OR REPLACE FUNCTION tailhook.endpoints_validate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col text;
    problem text;
    rule text;
BEGIN
    -- A NOT NULL violation's DETAIL shows the row too.
    SELECT k INTO col
      FROM unnest(ARRAY['name', 'url', 'event_types', 'secrets', 'headers', 'enabled', 'ordered',
                        'managed_by', 'standard_signature']) AS k
     WHERE to_jsonb(NEW) -> k = 'null'::jsonb
     LIMIT 1;
    IF col IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'not_null_violation', MESSAGE = 'tailhook.endpoints ' || col || ': must not be NULL',
            COLUMN = col, TABLE = 'endpoints', SCHEMA = 'tailhook';
    END IF;
    IF NEW.name = '' THEN
        col := 'name'; rule := 'endpoints_name_not_empty'; problem := 'name: must not be empty';
    ELSIF NEW.url !~* '^https?://[^/?#]+' THEN
        col := 'url'; rule := 'endpoints_url_http'; problem := 'url: must be an http or https URL with a host';
    ELSIF length(NEW.url) > 2048 THEN
        col := 'url'; rule := 'endpoints_url_length'; problem := 'url: is longer than 2048 characters';
    ELSIF NOT coalesce(tailhook.event_types_valid(NEW.event_types), false) THEN
        col := 'event_types'; rule := 'endpoints_event_types_valid';
        problem := 'event_types: must list 1 to 100 non-empty patterns, one-dimensional (`*` for all)';
    ELSIF NOT coalesce(tailhook.secrets_valid(NEW.secrets), false) THEN
        col := 'secrets'; rule := 'endpoints_secrets_valid';
        problem := 'secrets: each must be `whsec_` followed by the padded base64 of 24 to 64 bytes '
                   '(make one with `tailhook secret`), or such a value sealed; at most 10, no NULL';
    ELSIF jsonb_typeof(NEW.headers) <> 'object' THEN
        col := 'headers'; rule := 'endpoints_headers_object'; problem := 'headers: must be a JSON object';
    ELSIF NOT tailhook.headers_valid(NEW.headers) THEN
        col := 'headers'; rule := 'endpoints_headers_valid';
        problem := 'headers: must be a JSON object of at most 32 string values, each name and value '
                   'at most 4096 bytes, 16384 bytes together';
    ELSIF NEW.max_attempts < 1 OR NEW.max_attempts > 1000 THEN
        col := 'max_attempts'; problem := 'max_attempts: must be 1 to 1000';
        rule := CASE WHEN NEW.max_attempts < 1 THEN 'endpoints_max_attempts_positive' ELSE 'endpoints_max_attempts_max' END;
    ELSIF NEW.timeout_ms < 1 OR NEW.timeout_ms > 60000 THEN
        col := 'timeout_ms'; problem := 'timeout_ms: must be 1 to 60000';
        rule := CASE WHEN NEW.timeout_ms < 1 THEN 'endpoints_timeout_ms_positive' ELSE 'endpoints_timeout_ms_max' END;
    ELSIF NEW.rate_limit_per_sec < 1 OR NEW.rate_limit_per_sec > 10000 THEN
        col := 'rate_limit_per_sec'; problem := 'rate_limit_per_sec: must be 1 to 10000';
        rule := CASE WHEN NEW.rate_limit_per_sec < 1 THEN 'endpoints_rate_limit_positive' ELSE 'endpoints_rate_limit_max' END;
    ELSIF NEW.max_in_flight < 1 OR NEW.max_in_flight > 1000 THEN
        col := 'max_in_flight'; problem := 'max_in_flight: must be 1 to 1000';
        rule := CASE WHEN NEW.max_in_flight < 1 THEN 'endpoints_max_in_flight_positive' ELSE 'endpoints_max_in_flight_max' END;
    ELSIF octet_length(NEW.transform) > 65536 THEN
        col := 'transform'; rule := 'endpoints_transform_length'; problem := 'transform: is longer than 65536 bytes';
    ELSIF tailhook.legacy_signature_problem(NEW.legacy_signature) IS NOT NULL THEN
        col := 'legacy_signature'; rule := 'endpoints_legacy_signature_valid';
        problem := tailhook.legacy_signature_problem(NEW.legacy_signature);
    ELSIF NOT tailhook.legacy_secret_valid(NEW.legacy_secret) THEN
        col := 'legacy_secret'; rule := 'endpoints_legacy_secret_valid';
        problem := 'legacy_secret: must be 16 to 256 bytes, or such a value sealed';
    ELSIF (NEW.legacy_signature IS NULL) <> (NEW.legacy_secret IS NULL) THEN
        col := CASE WHEN NEW.legacy_secret IS NULL THEN 'legacy_secret' ELSE 'legacy_signature' END;
        rule := 'endpoints_legacy_pair';
        problem := col || ': legacy_signature and legacy_secret are set together or not at all';
    ELSIF NEW.managed_by NOT IN ('sql', 'config') THEN
        col := 'managed_by'; rule := 'endpoints_managed_by_known'; problem := 'managed_by: must be sql or config';
    END IF;
    -- CONSTRAINT names the CHECK this check runs ahead of.
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = 'tailhook.endpoints ' || problem,
            COLUMN = col, TABLE = 'endpoints', SCHEMA = 'tailhook', CONSTRAINT = rule,
            HINT = 'the rules are listed under "tailhook.endpoints" in docs/reference.md';
    END IF;
    RETURN NEW;
END
$$;

-- Backstops for the new columns, like 0004's (NOT VALID: an existing row is
-- never refused by the migration).
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('endpoints_legacy_signature_valid', 'CHECK (tailhook.legacy_signature_problem(legacy_signature) IS NULL)'),
        ('endpoints_legacy_secret_valid', 'CHECK (tailhook.legacy_secret_valid(legacy_secret))'),
        ('endpoints_legacy_pair', 'CHECK ((legacy_signature IS NULL) = (legacy_secret IS NULL))')
    ) AS v(name, def)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_constraint
                        WHERE conrelid = 'tailhook.endpoints'::regclass AND conname = c.name) THEN
            EXECUTE format('ALTER TABLE tailhook.endpoints ADD CONSTRAINT %I %s NOT VALID', c.name, c.def);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                    WHERE tgname = 'endpoints_validate' AND tgrelid = 'tailhook.endpoints'::regclass) THEN
        CREATE TRIGGER endpoints_validate
            BEFORE INSERT OR UPDATE OF name, url, event_types, secrets, headers, enabled, ordered, managed_by,
                max_attempts, timeout_ms, rate_limit_per_sec, max_in_flight, transform, legacy_signature,
                legacy_secret, standard_signature
            ON tailhook.endpoints
            FOR EACH ROW EXECUTE FUNCTION tailhook.endpoints_validate();
    END IF;
END
$$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (23, 'legacy_signatures');
END
$tailhook_step$;

-- tailhook step 24 endpoint_backoff: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 24) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 24: a retry schedule per endpoint. Plain SQL,
-- safe to re-run.
--
-- NULL: the configured default (`delivery.backoff_initial_ms`,
-- `delivery.backoff_max_ms`). The first retry waits backoff_initial_ms, each
-- further one twice as long, never more than backoff_max_ms (±20% jitter,
-- src/pipeline/schedule.rs). Equal values give a fixed delay. The same bounds
-- are checked by tailhook itself (src/config/rules.rs): keep them in step.
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS backoff_initial_ms int;
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS backoff_max_ms int;

-- NOT VALID, as in version 4: they hold for every row written from now on.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('endpoints_backoff_initial_ms_positive', 'CHECK (backoff_initial_ms > 0)'),
        ('endpoints_backoff_initial_ms_max', 'CHECK (backoff_initial_ms <= 86400000)'),
        ('endpoints_backoff_max_ms_positive', 'CHECK (backoff_max_ms > 0)'),
        ('endpoints_backoff_max_ms_max', 'CHECK (backoff_max_ms <= 604800000)'),
        ('endpoints_backoff_max_ms_at_least_initial', 'CHECK (backoff_max_ms >= backoff_initial_ms)')
    ) AS v(name, def)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                        WHERE conrelid = 'tailhook.endpoints'::regclass AND conname = c.name) THEN
            EXECUTE pg_catalog.format('ALTER TABLE tailhook.endpoints ADD CONSTRAINT %I %s NOT VALID', c.name, c.def);
        END IF;
    END LOOP;
END
$$;

COMMENT ON CONSTRAINT endpoints_backoff_initial_ms_positive ON tailhook.endpoints IS 'backoff_initial_ms must be greater than 0 (NULL: delivery.backoff_initial_ms)';
COMMENT ON CONSTRAINT endpoints_backoff_initial_ms_max ON tailhook.endpoints IS 'backoff_initial_ms must be at most 86400000 (one day)';
COMMENT ON CONSTRAINT endpoints_backoff_max_ms_positive ON tailhook.endpoints IS 'backoff_max_ms must be greater than 0 (NULL: delivery.backoff_max_ms)';
COMMENT ON CONSTRAINT endpoints_backoff_max_ms_max ON tailhook.endpoints IS 'backoff_max_ms must be at most 604800000 (seven days)';
COMMENT ON CONSTRAINT endpoints_backoff_max_ms_at_least_initial ON tailhook.endpoints IS 'backoff_max_ms must be at least backoff_initial_ms when both are set';$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (24, 'endpoint_backoff');
END
$tailhook_step$;

-- tailhook step 25 trace_context: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 25) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 25: W3C trace context carried from the publisher
-- to each attempt's request (issue 26). Plain SQL, safe to re-run and to run
-- while publishers and replicas work.
--
-- An event may carry `traceparent` and `tracestate` (W3C Trace Context,
-- https://www.w3.org/TR/trace-context/): tailhook sends each attempt with a
-- `traceparent` of the event's trace whose parent is the attempt's own span,
-- and exports that span to an OpenTelemetry collector when one is configured
-- (docs/guide/observability.md). Three ways in:
--   * tailhook.publish(..., traceparent => ..., tracestate => ...): a
--     malformed value is refused, naming the parameter;
--   * the transaction's settings `tailhook.traceparent` and
--     `tailhook.tracestate` (SET LOCAL), read by publish when it is given
--     neither and by the triggers of captured tables: a malformed setting is
--     ignored (the event starts a trace of its own), so a bad header never
--     fails the application's own writes;
--   * INSERT into tailhook.outbox with the columns: CHECK constraints.

-- NULL: no trace context (tailhook starts a trace for the event).
ALTER TABLE tailhook.outbox ADD COLUMN IF NOT EXISTS traceparent text;
ALTER TABLE tailhook.outbox ADD COLUMN IF NOT EXISTS tracestate text;

-- Whether attempts to the endpoint carry `traceparent`/`tracestate`.
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS propagate_trace boolean NOT NULL DEFAULT true;

-- What is wrong with a trace context, or NULL when it is well formed (or
-- absent). traceparent: `<version>-<trace id>-<parent id>-<flags>`, lowercase
-- hex, 2-32-16-2 digits, ids not all zeros; version ff is invalid, version
-- 00 has exactly these four fields, a later version may add fields after
-- them. tracestate: at most 512 bytes of printable ASCII, with a traceparent.
CREATE OR REPLACE FUNCTION tailhook.trace_context_problem(traceparent text, tracestate text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN traceparent IS NULL THEN
            CASE WHEN tracestate IS NOT NULL THEN 'tracestate is set without a traceparent' END
        WHEN octet_length(traceparent) > 512
          OR traceparent !~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[ -~]*)?$'
          OR left(traceparent, 2) = 'ff'
          OR (left(traceparent, 2) = '00' AND octet_length(traceparent) <> 55) THEN
            'traceparent must be W3C trace context, 00-<32 hex digits trace id>-<16 hex digits parent id>-<2 hex digits flags> in lowercase (got '
            || quote_literal(left(traceparent, 80)) || ')'
        WHEN substr(traceparent, 4, 32) = repeat('0', 32) THEN 'traceparent''s trace id must not be all zeros'
        WHEN substr(traceparent, 37, 16) = repeat('0', 16) THEN 'traceparent''s parent id must not be all zeros'
        WHEN tracestate IS NOT NULL AND (octet_length(tracestate) > 512 OR tracestate !~ '^[ -~]*$') THEN
            'tracestate must be at most 512 bytes of printable ASCII'
    END
$$;

-- The transaction's trace context setting `tailhook.<name>` (name:
-- traceparent or tracestate), or NULL when it is unset, empty or malformed.
CREATE OR REPLACE FUNCTION tailhook.trace_setting(name text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN tailhook.trace_context_problem(p.tp, NULL) IS NULL
                 AND (trace_setting.name = 'traceparent' OR tailhook.trace_context_problem(p.tp, p.ts) IS NULL)
                THEN CASE trace_setting.name WHEN 'traceparent' THEN p.tp WHEN 'tracestate' THEN p.ts END END
      FROM (SELECT nullif(current_setting('tailhook.traceparent', true), '') AS tp,
                   nullif(current_setting('tailhook.tracestate', true), '') AS ts) p
$$;

-- The same rules for rows written directly; NOT VALID, as in version 4.
-- Rows without trace context (most) never call the function: it has a SET
-- clause, so each call saves and restores the search_path, which cost about
-- 10 µs per row on the outbox's INSERT and again on its dispatched_at UPDATE.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('outbox_trace_context_valid',
         'CHECK (traceparent IS NULL AND tracestate IS NULL OR tailhook.trace_context_problem(traceparent, tracestate) IS NULL)')
    ) AS v(name, def)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                        WHERE conrelid = 'tailhook.outbox'::regclass AND conname = c.name) THEN
            EXECUTE pg_catalog.format('ALTER TABLE tailhook.outbox ADD CONSTRAINT %I %s NOT VALID', c.name, c.def);
        END IF;
    END LOOP;
END
$$;
COMMENT ON CONSTRAINT outbox_trace_context_valid ON tailhook.outbox IS 'traceparent and tracestate must be W3C trace context (see tailhook.trace_context_problem)';

-- publish gains traceparent and tracestate. The four-argument form is
-- replaced, not overloaded (an overload would make every call with fewer
-- arguments ambiguous); the roles that could execute it may execute this one.
-- As in version 21: SECURITY DEFINER, search_path pinned, `tailhook.` types
-- refused but `tailhook.test`.
DO $$
DECLARE
    grantees regrole[];
    r regrole;
BEGIN
    IF to_regprocedure('tailhook.publish(text, jsonb, text, text)') IS NOT NULL THEN
        SELECT coalesce(array_agg(DISTINCT a.grantee::regrole), '{}') INTO grantees
          FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) AS a
         WHERE p.oid = 'tailhook.publish(text, jsonb, text, text)'::regprocedure
           AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner;
        DROP FUNCTION tailhook.publish(text, jsonb, text, text);
        CREATE TABLE pg_temp.tailhook_publish_grantees AS SELECT unnest(grantees) AS grantee;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION tailhook.publish(
    event_type   text,
    payload      jsonb,
    tenant       text DEFAULT NULL,
    ordering_key text DEFAULT NULL,
    traceparent  text DEFAULT NULL,
    tracestate   text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    published uuid;
    tp text := publish.traceparent;
    ts text := publish.tracestate;
    problem text;
BEGIN
    IF starts_with(publish.event_type, 'tailhook.') AND publish.event_type <> 'tailhook.test' THEN
        RAISE EXCEPTION 'tailhook.publish: event type % is reserved for tailhook''s own events', quote_literal(publish.event_type)
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF tp IS NULL AND ts IS NULL THEN
        -- The transaction's settings, when set and well formed (a
        -- tracestate without a traceparent is never used: skip both calls).
        IF nullif(current_setting('tailhook.traceparent', true), '') IS NOT NULL THEN
            tp := tailhook.trace_setting('traceparent');
            ts := tailhook.trace_setting('tracestate');
        END IF;
    ELSE
        problem := tailhook.trace_context_problem(tp, ts);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'tailhook.publish: %', problem USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, traceparent, tracestate)
    VALUES (publish.event_type, publish.payload, publish.tenant, publish.ordering_key, tp, ts)
    RETURNING outbox.event_id INTO published;
    RETURN published;
END
$$;

REVOKE EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text, text, text) FROM PUBLIC;
DO $$
DECLARE
    r record;
BEGIN
    IF to_regclass('pg_temp.tailhook_publish_grantees') IS NOT NULL THEN
        FOR r IN SELECT g.grantee FROM pg_temp.tailhook_publish_grantees g LOOP
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text, text, text) TO %s',
                                      r.grantee);
        END LOOP;
        DROP TABLE pg_temp.tailhook_publish_grantees;
    END IF;
END
$$;

-- Publishers are granted the new signature (tailhook.regrant() runs it
-- again after migrating). As in version 21 otherwise.
CREATE OR REPLACE FUNCTION tailhook.grant_kind(kind text, role regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    statements text[];
    s text;
    t record;
BEGIN
    statements := ARRAY['GRANT USAGE ON SCHEMA tailhook TO %1$s'];
    CASE kind
    WHEN 'publisher' THEN
        statements := statements || ARRAY[
            'GRANT EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text, text, text) TO %1$s'];
    WHEN 'endpoint_manager' THEN
        statements := statements || ARRAY[
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.endpoint_config TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.enable_endpoint(text) TO %1$s'];
    WHEN 'history_reader' THEN
        statements := statements || ARRAY[
            'GRANT SELECT ON tailhook.outbox, tailhook.deliveries, tailhook.attempts, tailhook.endpoint_config, tailhook.endpoint_stats, tailhook.delivery_log TO %1$s'];
    WHEN 'sidecar' THEN
        statements := statements || ARRAY[
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.outbox, tailhook.deliveries, tailhook.replicas TO %1$s',
            'GRANT SELECT, INSERT, DELETE ON tailhook.attempts TO %1$s',
            'GRANT SELECT, INSERT, UPDATE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.schema_migrations, tailhook.endpoint_stats, tailhook.endpoint_config, tailhook.delivery_log, tailhook.capture_config, tailhook.captures TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.lock_undispatched(bigint), tailhook.expand_captures(int, boolean), tailhook.emit_endpoint_event(text, bigint, jsonb), tailhook.operational_wanted(text, bigint), tailhook.event_type_matches(text[], text), tailhook.enable_endpoint(text) TO %1$s'];
        -- Change capture needs nothing more: expand_captures runs as its
        -- owner (0019) and reads the staging tables and calls the generated
        -- expanders itself.
    ELSE
        RAISE EXCEPTION 'tailhook.grant_kind: unknown kind %', quote_literal(kind)
            USING ERRCODE = 'invalid_parameter_value';
    END CASE;
    FOREACH s IN ARRAY statements LOOP
        EXECUTE pg_catalog.format(s, role);
    END LOOP;
    INSERT INTO tailhook.role_grants (role_oid, kind) VALUES (role, kind) ON CONFLICT DO NOTHING;
END
$$;


-- Captured tables: each staged statement keeps the writer's trace context
-- settings (column defaults of the staging table, so the writer's triggers
-- are unchanged), and the expansion copies them to every event of the
-- statement. As in version 19 otherwise.
CREATE OR REPLACE FUNCTION tailhook.capture_make_expand(
    r oid, event_type text, columns text[], tenant_column text, key_column text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fname text := 'capture_' || r || '_expand';
    staged text := format('tailhook.%I', 'capture_' || r || '_staged');
    pinned text[];
    key_type oid;
    tenant_type oid;
    body text;
    caller oid;
BEGIN
    -- Staging tables made before version 25 get the trace context columns
    -- (only when missing: no lock is taken on one that has them).
    IF to_regclass(staged) IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = staged::pg_catalog.regclass AND a.attname = 'traceparent' AND NOT a.attisdropped) THEN
        EXECUTE format($a$ALTER TABLE %s
            ADD COLUMN IF NOT EXISTS traceparent text DEFAULT tailhook.trace_setting('traceparent'),
            ADD COLUMN IF NOT EXISTS tracestate text DEFAULT tailhook.trace_setting('tracestate')$a$, staged);
    END IF;
    SELECT array_agg(DISTINCT x) INTO pinned
      FROM unnest(ARRAY[key_column, tenant_column] || coalesce(columns, '{}')) AS x WHERE x IS NOT NULL;
    SELECT a.atttypid INTO key_type FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = r AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    SELECT a.atttypid INTO tenant_type FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = r AND a.attname = tenant_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF (SELECT count(*) FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = r AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY (pinned)) <> cardinality(pinned) THEN
        RAISE EXCEPTION 'a column captured from % was renamed or dropped (captured: %); run tailhook.capture again',
            r::regclass, pinned;
    END IF;
    body := format($f$
-- tailhook capture v25: generated by tailhook.capture_make_expand, replaced by capture, dropped by uncapture.
DECLARE
    s record;
    tbl text;
    lo int;
    hi int;
    used int := 0;
BEGIN
    -- No column can be added or dropped while this runs; if the columns are
    -- no longer those this function was generated for, it is generated
    -- again (converting a new column as the old code would is not safe).
    -- (expand_captures sets a short lock_timeout when it must not wait.)
    EXECUTE pg_catalog.format('LOCK TABLE %%s IN ACCESS SHARE MODE', %1$s::pg_catalog.regclass);
    IF tailhook.capture_signature(%1$s) IS DISTINCT FROM %13$L THEN
        PERFORM tailhook.capture_make_expand(%1$s, %14$L, %15$L, %16$L, %11$L);
        EXECUTE pg_catalog.format('SELECT tailhook.%%I($1, $2)', %17$L) INTO used USING upto, budget;
        RETURN used;
    END IF;
    SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname) INTO tbl
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %1$s;
    FOR s IN SELECT x.batch, x.op, x.n, x.done, x.traceparent, x.tracestate FROM %2$s x WHERE x.batch < upto ORDER BY x.batch LOOP
        EXIT WHEN used >= budget;
        lo := s.done + 1;
        hi := least(s.n, s.done + (budget - used));
        IF s.op = 'i' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at, traceparent, tracestate)
            SELECT %3$L, pg_catalog.jsonb_build_object('table', tbl, 'operation', 'insert', 'new', %6$s, 'old', NULL),
                   %8$s, %12$s, u.created_at, s.traceparent, s.tracestate
              FROM (SELECT pg_catalog.unnest(x.new_rows) AS n, pg_catalog.generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSIF s.op = 'd' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at, traceparent, tracestate)
            SELECT %5$L, pg_catalog.jsonb_build_object('table', tbl, 'operation', 'delete', 'new', NULL, 'old', %7$s),
                   %9$s, %18$s, u.created_at, s.traceparent, s.tracestate
              FROM (SELECT pg_catalog.unnest(x.old_rows) AS o, pg_catalog.generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSE
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at, traceparent, tracestate)
            SELECT %4$L, pg_catalog.jsonb_build_object('table', tbl, 'operation', 'update', 'new', e.nj, 'old', e.oj),
                   e.tenant, e.k, p.created_at, s.traceparent, s.tracestate
              FROM (SELECT u.created_at, %6$s AS nj, %7$s AS oj, (u.n).%11$I AS nk, (u.o).%11$I AS ok,
                           %8$s AS nt, %9$s AS ot, %12$s AS nkt, %18$s AS okt
                      FROM (SELECT pg_catalog.unnest(x.old_rows) AS o, pg_catalog.unnest(x.new_rows) AS n,
                                   pg_catalog.generate_series(1, x.n) AS i, x.created_at
                              FROM %2$s x WHERE x.batch = s.batch) u
                     WHERE u.i BETWEEN lo AND hi) p
             CROSS JOIN LATERAL (VALUES
                   (p.ok = p.nk, p.nj, p.oj, coalesce(p.nt, p.ot), p.nkt),
                   (p.ok = p.nk IS NOT TRUE, p.nj, NULL, p.nt, p.nkt),
                   (p.ok = p.nk IS NOT TRUE, NULL, p.oj, p.ot, p.okt)) AS e(keep, nj, oj, tenant, k)
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
$f$, r, staged, event_type || '.inserted', event_type || '.updated', event_type || '.deleted',
        tailhook.capture_row_projection('u.n', r, columns), tailhook.capture_row_projection('u.o', r, columns),
        CASE WHEN tenant_column IS NULL THEN 'NULL::pg_catalog.text'
             ELSE tailhook.capture_value_text(format('(u.n).%I', tenant_column), tenant_type) END,
        CASE WHEN tenant_column IS NULL THEN 'NULL::pg_catalog.text'
             ELSE tailhook.capture_value_text(format('(u.o).%I', tenant_column), tenant_type) END,
        pinned, key_column,
        tailhook.capture_value_text(format('(u.n).%I', key_column), key_type),
        tailhook.capture_signature(r), event_type, columns, tenant_column, fname,
        tailhook.capture_value_text(format('(u.o).%I', key_column), key_type));
    EXECUTE format($f$CREATE OR REPLACE FUNCTION tailhook.%I(upto bigint, budget int) RETURNS int
        LANGUAGE plpgsql SECURITY DEFINER SET jit = off SET search_path = pg_catalog, pg_temp AS %L$f$, fname, body);
    EXECUTE format('REVOKE ALL ON FUNCTION tailhook.%I(bigint, int) FROM PUBLIC', fname);
    SELECT p.proowner INTO caller FROM pg_catalog.pg_proc p
     WHERE p.oid = 'tailhook.expand_captures(int, boolean)'::pg_catalog.regprocedure;
    IF caller IS NOT NULL AND caller <> (SELECT p.proowner FROM pg_catalog.pg_proc p
                                          WHERE p.oid = format('tailhook.%I(bigint, int)', fname)::pg_catalog.regprocedure) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION tailhook.%I(bigint, int) TO %s', fname, caller::pg_catalog.regrole);
    END IF;
END
$$;


-- Captured tables get this version's expansion (and their staging tables
-- the trace context columns), options unchanged.
DO $do$
DECLARE
    c tailhook.capture_config%ROWTYPE;
BEGIN
    FOR c IN SELECT cc.* FROM tailhook.capture_config cc
              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class k WHERE k.oid = cc.relid)
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                 WHERE p.pronamespace = 'tailhook'::regnamespace
                                   AND p.proname = 'capture_' || cc.relid || '_expand'
                                   AND p.prosrc ~ 'tailhook capture v(2[5-9]|[3-9][0-9]):')
              ORDER BY cc.relid LOOP
        BEGIN
            PERFORM tailhook.capture_make_expand(c.relid, c.event_type, c.columns, c.tenant_column, c.key_column);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'tailhook migration 25: the capture of % must be run again (tailhook.capture): %',
                c.relid::regclass, SQLERRM;
        END;
    END LOOP;
END
$do$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (25, 'trace_context');
END
$tailhook_step$;

-- tailhook step 26 endpoint_tls: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 26) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 26: client certificates and private CAs per
-- endpoint. Plain SQL, safe to re-run.
--
-- tls_client_cert  the certificate the endpoint presents to its receiver
--   (PEM CERTIFICATE blocks: the certificate, then its chain), at most
--   64 KiB; set together with tls_client_key.
-- tls_client_key   its private key (one unencrypted PEM PRIVATE KEY, RSA
--   PRIVATE KEY or EC PRIVATE KEY block), at most 16 KiB; a secret, sealed
--   at rest like `secrets` when secrets.keys is set, and never shown
--   (tailhook.endpoint_config lists none of the TLS columns).
-- tls_ca_bundle    CA certificates (PEM) trusted for the receiver's server
--   certificate, beside the public roots, at most 512 KiB.
-- The database checks the shape and size only; tailhook reads the
-- certificates and the key when it loads the row (src/pipeline/egress.rs),
-- and a row whose PEM it cannot use makes that endpoint invalid, with its
-- reason in invalid_reason.
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS tls_client_cert text;
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS tls_client_key text;
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS tls_ca_bundle text;

-- PEM CERTIFICATE blocks (one or more) of at most max_bytes; NULL for NULL.
CREATE OR REPLACE FUNCTION tailhook.pem_certificates_valid(pem text, max_bytes int) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT octet_length(pem) <= max_bytes
       AND pem ~ '^\s*(-----BEGIN CERTIFICATE-----\s[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----\s*)+$'
$$;

-- One unencrypted PEM private key of at most 16 KiB, or such a key sealed
-- (src/config/sealed.rs); NULL for NULL.
CREATE OR REPLACE FUNCTION tailhook.pem_key_valid(key text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN starts_with(key, 'enc:v1:') THEN coalesce(tailhook.sealed_length(key) <= 16384, false)
                ELSE octet_length(key) <= 16384
                     AND key ~ '^\s*-----BEGIN ((RSA |EC )?PRIVATE KEY)-----\s[A-Za-z0-9+/=\s]+-----END \1-----\s*$'
           END
$$;

-- 0023's checks, and the TLS columns'.
CREATE OR REPLACE FUNCTION tailhook.endpoints_validate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col text;
    problem text;
    rule text;
BEGIN
    -- A NOT NULL violation's DETAIL shows the row too.
    SELECT k INTO col
      FROM unnest(ARRAY['name', 'url', 'event_types', 'secrets', 'headers', 'enabled', 'ordered',
                        'managed_by', 'standard_signature']) AS k
     WHERE to_jsonb(NEW) -> k = 'null'::jsonb
     LIMIT 1;
    IF col IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'not_null_violation', MESSAGE = 'tailhook.endpoints ' || col || ': must not be NULL',
            COLUMN = col, TABLE = 'endpoints', SCHEMA = 'tailhook';
    END IF;
    IF NEW.name = '' THEN
        col := 'name'; rule := 'endpoints_name_not_empty'; problem := 'name: must not be empty';
    ELSIF NEW.url !~* '^https?://[^/?#]+' THEN
        col := 'url'; rule := 'endpoints_url_http'; problem := 'url: must be an http or https URL with a host';
    ELSIF length(NEW.url) > 2048 THEN
        col := 'url'; rule := 'endpoints_url_length'; problem := 'url: is longer than 2048 characters';
    ELSIF NOT coalesce(tailhook.event_types_valid(NEW.event_types), false) THEN
        col := 'event_types'; rule := 'endpoints_event_types_valid';
        problem := 'event_types: must list 1 to 100 non-empty patterns, one-dimensional (`*` for all)';
    ELSIF NOT coalesce(tailhook.secrets_valid(NEW.secrets), false) THEN
        col := 'secrets'; rule := 'endpoints_secrets_valid';
        problem := 'secrets: each must be `whsec_` followed by the padded base64 of 24 to 64 bytes '
                   '(make one with `tailhook secret`), or such a value sealed; at most 10, no NULL';
    ELSIF jsonb_typeof(NEW.headers) <> 'object' THEN
        col := 'headers'; rule := 'endpoints_headers_object'; problem := 'headers: must be a JSON object';
    ELSIF NOT tailhook.headers_valid(NEW.headers) THEN
        col := 'headers'; rule := 'endpoints_headers_valid';
        problem := 'headers: must be a JSON object of at most 32 string values, each name and value '
                   'at most 4096 bytes, 16384 bytes together';
    ELSIF NEW.max_attempts < 1 OR NEW.max_attempts > 1000 THEN
        col := 'max_attempts'; problem := 'max_attempts: must be 1 to 1000';
        rule := CASE WHEN NEW.max_attempts < 1 THEN 'endpoints_max_attempts_positive' ELSE 'endpoints_max_attempts_max' END;
    ELSIF NEW.timeout_ms < 1 OR NEW.timeout_ms > 60000 THEN
        col := 'timeout_ms'; problem := 'timeout_ms: must be 1 to 60000';
        rule := CASE WHEN NEW.timeout_ms < 1 THEN 'endpoints_timeout_ms_positive' ELSE 'endpoints_timeout_ms_max' END;
    ELSIF NEW.rate_limit_per_sec < 1 OR NEW.rate_limit_per_sec > 10000 THEN
        col := 'rate_limit_per_sec'; problem := 'rate_limit_per_sec: must be 1 to 10000';
        rule := CASE WHEN NEW.rate_limit_per_sec < 1 THEN 'endpoints_rate_limit_positive' ELSE 'endpoints_rate_limit_max' END;
    ELSIF NEW.max_in_flight < 1 OR NEW.max_in_flight > 1000 THEN
        col := 'max_in_flight'; problem := 'max_in_flight: must be 1 to 1000';
        rule := CASE WHEN NEW.max_in_flight < 1 THEN 'endpoints_max_in_flight_positive' ELSE 'endpoints_max_in_flight_max' END;
    ELSIF octet_length(NEW.transform) > 65536 THEN
        col := 'transform'; rule := 'endpoints_transform_length'; problem := 'transform: is longer than 65536 bytes';
    ELSIF tailhook.legacy_signature_problem(NEW.legacy_signature) IS NOT NULL THEN
        col := 'legacy_signature'; rule := 'endpoints_legacy_signature_valid';
        problem := tailhook.legacy_signature_problem(NEW.legacy_signature);
    ELSIF NOT tailhook.legacy_secret_valid(NEW.legacy_secret) THEN
        col := 'legacy_secret'; rule := 'endpoints_legacy_secret_valid';
        problem := 'legacy_secret: must be 16 to 256 bytes, or such a value sealed';
    ELSIF (NEW.legacy_signature IS NULL) <> (NEW.legacy_secret IS NULL) THEN
        col := CASE WHEN NEW.legacy_secret IS NULL THEN 'legacy_secret' ELSE 'legacy_signature' END;
        rule := 'endpoints_legacy_pair';
        problem := col || ': legacy_signature and legacy_secret are set together or not at all';
    ELSIF NOT coalesce(tailhook.pem_certificates_valid(NEW.tls_client_cert, 65536), true) THEN
        col := 'tls_client_cert'; rule := 'endpoints_tls_client_cert_valid';
        problem := 'tls_client_cert: must be PEM CERTIFICATE blocks (the certificate, then its chain), '
                   'at most 65536 bytes';
    ELSIF NOT coalesce(tailhook.pem_key_valid(NEW.tls_client_key), true) THEN
        col := 'tls_client_key'; rule := 'endpoints_tls_client_key_valid';
        problem := 'tls_client_key: must be one unencrypted PEM private key (PRIVATE KEY, RSA PRIVATE KEY '
                   'or EC PRIVATE KEY) of at most 16384 bytes, or such a key sealed';
    ELSIF (NEW.tls_client_cert IS NULL) <> (NEW.tls_client_key IS NULL) THEN
        col := CASE WHEN NEW.tls_client_key IS NULL THEN 'tls_client_key' ELSE 'tls_client_cert' END;
        rule := 'endpoints_tls_client_pair';
        problem := col || ': tls_client_cert and tls_client_key are set together or not at all';
    ELSIF NOT coalesce(tailhook.pem_certificates_valid(NEW.tls_ca_bundle, 524288), true) THEN
        col := 'tls_ca_bundle'; rule := 'endpoints_tls_ca_bundle_valid';
        problem := 'tls_ca_bundle: must be PEM CERTIFICATE blocks, at most 524288 bytes';
    ELSIF NEW.managed_by NOT IN ('sql', 'config') THEN
        col := 'managed_by'; rule := 'endpoints_managed_by_known'; problem := 'managed_by: must be sql or config';
    END IF;
    -- CONSTRAINT names the CHECK this check runs ahead of.
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = 'tailhook.endpoints ' || problem,
            COLUMN = col, TABLE = 'endpoints', SCHEMA = 'tailhook', CONSTRAINT = rule,
            HINT = 'the rules are listed under "tailhook.endpoints" in docs/reference.md';
    END IF;
    RETURN NEW;
END
$$;

-- Backstops for the new columns (NOT VALID, as in version 4), and the
-- trigger again, so it runs when only a TLS column changes.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('endpoints_tls_client_cert_valid', 'CHECK (tailhook.pem_certificates_valid(tls_client_cert, 65536))'),
        ('endpoints_tls_client_key_valid', 'CHECK (tailhook.pem_key_valid(tls_client_key))'),
        ('endpoints_tls_client_pair', 'CHECK ((tls_client_cert IS NULL) = (tls_client_key IS NULL))'),
        ('endpoints_tls_ca_bundle_valid', 'CHECK (tailhook.pem_certificates_valid(tls_ca_bundle, 524288))')
    ) AS v(name, def)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                        WHERE conrelid = 'tailhook.endpoints'::regclass AND conname = c.name) THEN
            EXECUTE pg_catalog.format('ALTER TABLE tailhook.endpoints ADD CONSTRAINT %I %s NOT VALID', c.name, c.def);
        END IF;
    END LOOP;
    -- Made again only while it does not fire on the TLS columns yet.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                     JOIN pg_catalog.pg_attribute a
                       ON a.attrelid = t.tgrelid AND a.attnum = ANY (t.tgattr::pg_catalog.int2[])
                    WHERE t.tgname = 'endpoints_validate' AND t.tgrelid = 'tailhook.endpoints'::regclass
                      AND a.attname = 'tls_ca_bundle') THEN
        DROP TRIGGER IF EXISTS endpoints_validate ON tailhook.endpoints;
        CREATE TRIGGER endpoints_validate
            BEFORE INSERT OR UPDATE OF name, url, event_types, secrets, headers, enabled, ordered, managed_by,
                max_attempts, timeout_ms, rate_limit_per_sec, max_in_flight, transform, legacy_signature,
                legacy_secret, standard_signature, tls_client_cert, tls_client_key, tls_ca_bundle
            ON tailhook.endpoints
            FOR EACH ROW EXECUTE FUNCTION tailhook.endpoints_validate();
    END IF;
END
$$;

COMMENT ON CONSTRAINT endpoints_tls_client_cert_valid ON tailhook.endpoints IS 'tls_client_cert must be PEM CERTIFICATE blocks, at most 65536 bytes';
COMMENT ON CONSTRAINT endpoints_tls_client_key_valid ON tailhook.endpoints IS 'tls_client_key must be one unencrypted PEM private key of at most 16384 bytes, or such a key sealed';
COMMENT ON CONSTRAINT endpoints_tls_client_pair ON tailhook.endpoints IS 'tls_client_cert and tls_client_key are set together or not at all';
COMMENT ON CONSTRAINT endpoints_tls_ca_bundle_valid ON tailhook.endpoints IS 'tls_ca_bundle must be PEM CERTIFICATE blocks, at most 524288 bytes';$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (26, 'endpoint_tls');
END
$tailhook_step$;

-- tailhook step 27 api_tokens: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 27) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 27: tokens for the JSON API (`/api/v1`), and
-- secret rotation with an overlap. Plain SQL, safe to re-run.
--
-- A token is `thk_` and 64 hex digits (244 random bits), shown once when
-- made; only its SHA-256 is stored. Scopes: read < write < admin. A token
-- bound to a tenant sees and changes only that tenant's endpoints, events
-- and deliveries (src/manage/ applies the scope on every statement).
CREATE TABLE IF NOT EXISTS tailhook.api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text,
    -- The first 12 characters (`thk_` and 8 hex digits), to tell tokens apart in lists.
    prefix       text NOT NULL,
    hash         bytea NOT NULL UNIQUE,
    scope        text NOT NULL CONSTRAINT api_tokens_scope_known CHECK (scope IN ('read', 'write', 'admin')),
    tenant       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz
);

-- Makes a token and returns it: the only time it is seen. `expires_in` is a
-- PostgreSQL interval ('90 days'); NULL never expires. Run by the schema's
-- owner (EXECUTE is granted to nobody else): `tailhook token create` calls it.
CREATE OR REPLACE FUNCTION tailhook.create_api_token(
    scope      text,
    tenant     text DEFAULT NULL,
    name       text DEFAULT NULL,
    expires_in interval DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    token text;
BEGIN
    IF create_api_token.scope IS NULL OR create_api_token.scope NOT IN ('read', 'write', 'admin') THEN
        RAISE EXCEPTION 'tailhook.create_api_token: scope must be read, write or admin'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF create_api_token.tenant = '' THEN
        RAISE EXCEPTION 'tailhook.create_api_token: tenant must not be empty (NULL: every tenant)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF create_api_token.expires_in <= interval '0' THEN
        RAISE EXCEPTION 'tailhook.create_api_token: expires_in must be positive'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    token := 'thk_' || encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'hex');
    INSERT INTO tailhook.api_tokens (name, prefix, hash, scope, tenant, expires_at)
    VALUES (create_api_token.name, substr(token, 1, 12), sha256(convert_to(token, 'UTF8')),
            create_api_token.scope, create_api_token.tenant, now() + create_api_token.expires_in);
    RETURN token;
END
$$;

-- Revokes a token by id, name or its 12-character prefix; returns how many.
CREATE OR REPLACE FUNCTION tailhook.revoke_api_token(token text) RETURNS int
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH revoked AS (
        UPDATE tailhook.api_tokens t SET revoked_at = now()
         WHERE t.revoked_at IS NULL
           AND (t.id::text = revoke_api_token.token OR t.name = revoke_api_token.token
                OR t.prefix = revoke_api_token.token)
        RETURNING 1)
    SELECT count(*)::int FROM revoked
$$;

REVOKE ALL ON tailhook.api_tokens FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tailhook.create_api_token(text, text, text, interval),
    tailhook.revoke_api_token(text) FROM PUBLIC;

-- A secret rotation's overlap: the newest secret signs alongside the older
-- ones until `retire_at`, then only the first `keep` secrets stay
-- (tailhook.retire_secrets, run by the sidecar every few seconds). A second
-- rotation during an overlap keeps the later end, so no secret goes earlier
-- than promised.
CREATE TABLE IF NOT EXISTS tailhook.secret_retirements (
    endpoint_id bigint PRIMARY KEY REFERENCES tailhook.endpoints (id) ON DELETE CASCADE,
    keep        int NOT NULL CONSTRAINT secret_retirements_keep_positive CHECK (keep > 0),
    retire_at   timestamptz NOT NULL
);

-- Drops the secrets whose overlap has ended; returns how many endpoints changed.
CREATE OR REPLACE FUNCTION tailhook.retire_secrets() RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH due AS (
        DELETE FROM tailhook.secret_retirements r WHERE r.retire_at <= now()
        RETURNING r.endpoint_id, r.keep
    ), trimmed AS (
        UPDATE tailhook.endpoints e SET secrets = e.secrets[1:due.keep], updated_at = now()
          FROM due
         WHERE e.id = due.endpoint_id AND pg_catalog.cardinality(e.secrets) > due.keep
        RETURNING 1)
    SELECT count(*)::int FROM trimmed
$$;
REVOKE EXECUTE ON FUNCTION tailhook.retire_secrets() FROM PUBLIC;

-- The sidecar serves the API: it reads tokens, rotates and deletes
-- endpoints, and retires secrets. (grant_kind as in version 25, with those.)
CREATE OR REPLACE FUNCTION tailhook.grant_kind(kind text, role regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    statements text[];
    s text;
BEGIN
    statements := ARRAY['GRANT USAGE ON SCHEMA tailhook TO %1$s'];
    CASE kind
    WHEN 'publisher' THEN
        statements := statements || ARRAY[
            'GRANT EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text, text, text) TO %1$s'];
    WHEN 'endpoint_manager' THEN
        statements := statements || ARRAY[
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.endpoint_config TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.enable_endpoint(text) TO %1$s'];
    WHEN 'history_reader' THEN
        statements := statements || ARRAY[
            'GRANT SELECT ON tailhook.outbox, tailhook.deliveries, tailhook.attempts, tailhook.endpoint_config, tailhook.endpoint_stats, tailhook.delivery_log TO %1$s'];
    WHEN 'sidecar' THEN
        statements := statements || ARRAY[
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.outbox, tailhook.deliveries, tailhook.replicas TO %1$s',
            'GRANT SELECT, INSERT, DELETE ON tailhook.attempts TO %1$s',
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.schema_migrations, tailhook.endpoint_stats, tailhook.endpoint_config, tailhook.delivery_log, tailhook.capture_config, tailhook.captures, tailhook.api_tokens TO %1$s',
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.secret_retirements TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.lock_undispatched(bigint), tailhook.expand_captures(int, boolean), tailhook.emit_endpoint_event(text, bigint, jsonb), tailhook.operational_wanted(text, bigint), tailhook.event_type_matches(text[], text), tailhook.enable_endpoint(text), tailhook.retire_secrets(), tailhook.publish_with_id(uuid, text, jsonb, text, text) TO %1$s'];
    ELSE
        RAISE EXCEPTION 'tailhook.grant_kind: unknown kind %', quote_literal(kind)
            USING ERRCODE = 'invalid_parameter_value';
    END CASE;
    FOREACH s IN ARRAY statements LOOP
        EXECUTE pg_catalog.format(s, role);
    END LOOP;
    INSERT INTO tailhook.role_grants (role_oid, kind) VALUES (role, kind) ON CONFLICT DO NOTHING;
END
$$;
REVOKE EXECUTE ON FUNCTION tailhook.grant_kind(text, regrole) FROM PUBLIC;

-- The API's publish: tailhook.publish with the event id given by the
-- caller, which makes it the idempotency key (the outbox's unique
-- event_id): publishing the same id again inserts nothing and returns
-- `created` false. Same reserved types as tailhook.publish.
CREATE OR REPLACE FUNCTION tailhook.publish_with_id(
    event_id     uuid,
    event_type   text,
    payload      jsonb,
    tenant       text DEFAULT NULL,
    ordering_key text DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    inserted int;
BEGIN
    IF starts_with(publish_with_id.event_type, 'tailhook.') AND publish_with_id.event_type <> 'tailhook.test' THEN
        RAISE EXCEPTION 'tailhook.publish: event type % is reserved for tailhook''s own events',
            quote_literal(publish_with_id.event_type) USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO tailhook.outbox (event_id, event_type, payload, tenant, ordering_key)
    VALUES (publish_with_id.event_id, publish_with_id.event_type, publish_with_id.payload,
            publish_with_id.tenant, publish_with_id.ordering_key)
    ON CONFLICT ON CONSTRAINT outbox_event_id_key DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted = 1;
END
$$;
REVOKE EXECUTE ON FUNCTION tailhook.publish_with_id(uuid, text, jsonb, text, text) FROM PUBLIC;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (27, 'api_tokens');
END
$tailhook_step$;

-- tailhook step 29 redelivered_by: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 29) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 29: who asked for a delivery to be sent again
-- (issue 25). Plain SQL, safe to re-run and to run while replicas work.
--
-- deliveries.redelivered_by, redelivered_at: the latest manual redelivery
-- (`tailhook redeliver`, the console's Redeliver, the API's redeliver,
-- tailhook.redeliver and tailhook.redeliver_failed) and who asked, as the
-- requester describes itself: `cli (user alice)`, `console (admin token)
-- from 10.0.0.5`, `api token #7`, `sql (role app)`; NULL: never
-- redelivered. At most 200 characters, never a secret.
-- attempts.requested_by: the delivery's redelivered_by when the attempt was
-- made, so the attempts a redelivery brings are marked with who asked; NULL
-- for attempts of a delivery never redelivered.
ALTER TABLE tailhook.deliveries ADD COLUMN IF NOT EXISTS redelivered_by text;
ALTER TABLE tailhook.deliveries ADD COLUMN IF NOT EXISTS redelivered_at timestamptz;
ALTER TABLE tailhook.attempts ADD COLUMN IF NOT EXISTS requested_by text;

-- The SQL functions record who asked too: the database role.
CREATE OR REPLACE FUNCTION tailhook.redeliver(delivery_id bigint) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH r AS (
        UPDATE tailhook.deliveries d
           SET status = CASE WHEN d.attempts = 0 THEN 'pending' ELSE 'retrying' END,
               next_attempt_at = now(), locked_until = NULL, locked_by = NULL, lease = NULL,
               completed_at = NULL, updated_at = now(),
               redelivered_by = left('sql (role ' || session_user || ')', 200), redelivered_at = now()
         WHERE d.id = redeliver.delivery_id
           AND (d.locked_until IS NULL OR d.locked_until < now())
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM r)
$$;

CREATE OR REPLACE FUNCTION tailhook.redeliver_failed(endpoint_name text, since timestamptz) RETURNS bigint
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH r AS (
        UPDATE tailhook.deliveries d
           SET status = 'retrying', next_attempt_at = now(), locked_until = NULL,
               locked_by = NULL, lease = NULL, completed_at = NULL, updated_at = now(),
               redelivered_by = left('sql (role ' || session_user || ')', 200), redelivered_at = now()
          FROM tailhook.endpoints e
         WHERE e.name = redeliver_failed.endpoint_name
           AND d.endpoint_id = e.id
           AND d.status = 'failed'
           AND d.completed_at >= redeliver_failed.since
        RETURNING 1
    )
    SELECT count(*) FROM r
$$;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (29, 'redelivered_by');
END
$tailhook_step$;

-- tailhook step 30 portal: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = 30) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration$-- tailhook schema, version 30: tenant portal links. Plain SQL, safe to re-run.
--
-- A portal link opens the console for one tenant (`/portal/<token>/`, see
-- src/manage/portal.rs and docs/guide/portal.md). Its token is
-- `v1.<tenant as hex>.<expiry, Unix seconds>.<r|w>.<signature>`, the
-- signature an HMAC-SHA256 of what precedes it keyed by the link key. The
-- sidecar derives the link key from `server.portal_key_env` (HMAC-SHA256 of
-- a fixed label) and stores it here at start, so the host application can
-- mint links in SQL without an extension; the configured secret itself is
-- never in the database. Only tailhook's owner reads this table.
CREATE TABLE IF NOT EXISTS tailhook.portal_key (
    only_row boolean PRIMARY KEY DEFAULT true CONSTRAINT portal_key_one_row CHECK (only_row),
    key      bytea NOT NULL CONSTRAINT portal_key_length CHECK (pg_catalog.octet_length(key) = 32),
    set_at   timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON tailhook.portal_key FROM PUBLIC;

-- The sidecar's: stores the link key (NULL: removes it, no portal).
CREATE OR REPLACE FUNCTION tailhook.set_portal_key(key bytea) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF set_portal_key.key IS NULL THEN
        DELETE FROM tailhook.portal_key;
        RETURN;
    END IF;
    INSERT INTO tailhook.portal_key AS p (only_row, key) VALUES (true, set_portal_key.key)
    ON CONFLICT (only_row) DO UPDATE SET key = EXCLUDED.key, set_at = now() WHERE p.key <> EXCLUDED.key;
END
$$;
REVOKE EXECUTE ON FUNCTION tailhook.set_portal_key(bytea) FROM PUBLIC;

-- HMAC-SHA256 (RFC 2104) over the built-in sha256().
CREATE OR REPLACE FUNCTION tailhook.hmac_sha256(key bytea, message bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k bytea := CASE WHEN octet_length(hmac_sha256.key) > 64 THEN sha256(hmac_sha256.key) ELSE hmac_sha256.key END;
    inner_pad bytea;
    outer_pad bytea;
BEGIN
    k := k || decode(repeat('00', 64 - octet_length(k)), 'hex');
    inner_pad := k;
    outer_pad := k;
    FOR i IN 0..63 LOOP
        inner_pad := set_byte(inner_pad, i, get_byte(k, i) # 54);
        outer_pad := set_byte(outer_pad, i, get_byte(k, i) # 92);
    END LOOP;
    RETURN sha256(outer_pad || sha256(inner_pad || hmac_sha256.message));
END
$$;
REVOKE EXECUTE ON FUNCTION tailhook.hmac_sha256(bytea, bytea) FROM PUBLIC;

-- A link's path for `tenant`, good for `ttl` (more than 0, at most 24
-- hours), read-only or not: prefix it with tailhook's public address. A
-- role given tailhook.grant_portal_minter may call it, and the owner.
CREATE OR REPLACE FUNCTION tailhook.portal_link(
    tenant    text,
    ttl       interval DEFAULT interval '15 minutes',
    read_only boolean DEFAULT false
) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k bytea;
    body text;
BEGIN
    IF portal_link.tenant IS NULL OR portal_link.tenant = '' OR octet_length(portal_link.tenant) > 200 THEN
        RAISE EXCEPTION 'tailhook.portal_link: tenant must be given and at most 200 bytes'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF portal_link.ttl IS NULL OR portal_link.ttl <= interval '0' OR portal_link.ttl > interval '24 hours' THEN
        RAISE EXCEPTION 'tailhook.portal_link: ttl must be more than 0 and at most 24 hours'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF portal_link.read_only IS NULL THEN
        RAISE EXCEPTION 'tailhook.portal_link: read_only must be true or false'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT p.key INTO k FROM tailhook.portal_key p;
    IF k IS NULL THEN
        RAISE EXCEPTION 'tailhook.portal_link: no portal key: set server.portal_key_env and start tailhook run, which stores the key links are signed with'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    body := 'v1.' || encode(convert_to(portal_link.tenant, 'UTF8'), 'hex') || '.'
        || ceil(extract(epoch FROM clock_timestamp() + portal_link.ttl))::bigint || '.'
        || CASE WHEN portal_link.read_only THEN 'r' ELSE 'w' END;
    RETURN '/portal/' || body || '.' || encode(tailhook.hmac_sha256(k, convert_to(body, 'UTF8')), 'hex') || '/';
END
$$;
REVOKE EXECUTE ON FUNCTION tailhook.portal_link(text, interval, boolean) FROM PUBLIC;

-- A new kind, portal_minter, may mint portal links (a link is one tenant's
-- admin screen, more than a publisher may do); the sidecar stores the link
-- key. (grant_kind as in version 27, with those.)
ALTER TABLE tailhook.role_grants DROP CONSTRAINT IF EXISTS role_grants_kind_known;
ALTER TABLE tailhook.role_grants ADD CONSTRAINT role_grants_kind_known
    CHECK (kind IN ('publisher', 'endpoint_manager', 'history_reader', 'sidecar', 'portal_minter'));
CREATE OR REPLACE FUNCTION tailhook.grant_kind(kind text, role regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    statements text[];
    s text;
BEGIN
    statements := ARRAY['GRANT USAGE ON SCHEMA tailhook TO %1$s'];
    CASE kind
    WHEN 'publisher' THEN
        statements := statements || ARRAY[
            'GRANT EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text, text, text) TO %1$s'];
    WHEN 'portal_minter' THEN
        statements := statements || ARRAY[
            'GRANT EXECUTE ON FUNCTION tailhook.portal_link(text, interval, boolean) TO %1$s'];
    WHEN 'endpoint_manager' THEN
        statements := statements || ARRAY[
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.endpoint_config TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.enable_endpoint(text) TO %1$s'];
    WHEN 'history_reader' THEN
        statements := statements || ARRAY[
            'GRANT SELECT ON tailhook.outbox, tailhook.deliveries, tailhook.attempts, tailhook.endpoint_config, tailhook.endpoint_stats, tailhook.delivery_log TO %1$s'];
    WHEN 'sidecar' THEN
        statements := statements || ARRAY[
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.outbox, tailhook.deliveries, tailhook.replicas TO %1$s',
            'GRANT SELECT, INSERT, DELETE ON tailhook.attempts TO %1$s',
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.schema_migrations, tailhook.endpoint_stats, tailhook.endpoint_config, tailhook.delivery_log, tailhook.capture_config, tailhook.captures, tailhook.api_tokens TO %1$s',
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.secret_retirements TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.lock_undispatched(bigint), tailhook.expand_captures(int, boolean), tailhook.emit_endpoint_event(text, bigint, jsonb), tailhook.operational_wanted(text, bigint), tailhook.event_type_matches(text[], text), tailhook.enable_endpoint(text), tailhook.retire_secrets(), tailhook.publish_with_id(uuid, text, jsonb, text, text), tailhook.set_portal_key(bytea) TO %1$s'];
    ELSE
        RAISE EXCEPTION 'tailhook.grant_kind: unknown kind %', quote_literal(kind)
            USING ERRCODE = 'invalid_parameter_value';
    END CASE;
    FOREACH s IN ARRAY statements LOOP
        EXECUTE pg_catalog.format(s, role);
    END LOOP;
    INSERT INTO tailhook.role_grants (role_oid, kind) VALUES (role, kind) ON CONFLICT DO NOTHING;
END
$$;
REVOKE EXECUTE ON FUNCTION tailhook.grant_kind(text, regrole) FROM PUBLIC;

CREATE OR REPLACE FUNCTION tailhook.grant_portal_minter(role regrole) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT tailhook.grant_kind('portal_minter', role) $$;
REVOKE EXECUTE ON FUNCTION tailhook.grant_portal_minter(regrole) FROM PUBLIC;$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (30, 'portal');
END
$tailhook_step$;

-- tailhook step 31 partitions (1 of 69): outside a transaction
-- tailhook schema, version 31: tailhook.outbox, tailhook.deliveries and
-- tailhook.attempts become range-partitioned by the event's creation time
-- (issue 23), so that retention drops whole partitions instead of deleting
-- rows one by one.
--
-- * outbox is partitioned by created_at; deliveries and attempts get a new
--   column event_at, the event's created_at, copied at fan-out and at each
--   attempt's insert, and are partitioned by it: an event, its deliveries
--   and their attempts land in partitions of the same period.
-- * A unique index on a partitioned table must contain the partition key:
--   the primary keys become (id, created_at) and (id, event_at), and the
--   unique (outbox_id, endpoint_id) becomes (outbox_id, endpoint_id,
--   event_at), the same thing since outbox_id fixes event_at. event_id stays
--   unique across partitions through tailhook.event_ids (its primary key,
--   filled by a statement trigger; itself partitioned by the id, its periods
--   the outbox's: see below).
-- * Each table gets a DEFAULT partition (<table>_default) that takes any row
--   no range partition covers; the sidecar creates partitions ahead and
--   moves such rows out (sql/queries/partitions_prepare.sql). deliveries
--   and attempts also get an undated partition (<table>_undated) for rows
--   of no period (see partition_undated).
--
-- The conversion of an existing installation never blocks writers for long:
-- the old table becomes the first partition (<table>_legacy, from MINVALUE
-- to a cutoff an hour or two ahead), attached after a CHECK constraint
-- added NOT VALID and validated under SHARE UPDATE EXCLUSIVE (writes go on);
-- the keys the partitioned table needs are then built on it CONCURRENTLY
-- and attached. The one step taking ACCESS EXCLUSIVE for more than an
-- instant (the swap, tailhook.partition_convert_swap) is catalog-only,
-- tried under lock_timeout = 200ms and retried. An empty table (a fresh
-- install) is replaced and stays behind, empty and detached, so that the
-- statements naming it run again harmlessly.
--
-- Version 10 cannot run again once this ran: PostgreSQL builds no index
-- CONCURRENTLY on a partitioned table. Its file says so (`-- tailhook: skip
-- once tailhook.deliveries is partitioned`): `tailhook migrate`, the printed
-- script's tools and the by-hand re-runs skip it then (its indexes are the
-- partitioned table's); a migrator stops running a file another recorded.
--
-- tailhook: outside a transaction
-- CREATE INDEX CONCURRENTLY cannot run in a transaction: `tailhook migrate`
-- runs this file's statements one at a time; another migration tool must do
-- the same (psql -f does). Every statement is idempotent and checks the
-- state it finds: an interrupted conversion resumes where it stopped when
-- `tailhook migrate` runs again.

-- Where a conversion stands: the cutoff of each table's legacy partition.
CREATE TABLE IF NOT EXISTS tailhook.partition_legacy (
    tbl    text PRIMARY KEY,
    cutoff timestamptz NOT NULL
);

-- tailhook step 31 partitions (2 of 69): outside a transaction
-- Runs one DDL statement under a short lock_timeout, retried (up to about a
-- minute) while the lock is not granted: a writer waits at most 200 ms for it.
CREATE OR REPLACE FUNCTION tailhook.partition_ddl(statements text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tries int := 0;
    s text;
BEGIN
    LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '200ms', true);
            FOREACH s IN ARRAY statements LOOP
                EXECUTE s;
            END LOOP;
            PERFORM set_config('lock_timeout', '0', true);
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            tries := tries + 1;
            IF tries >= 300 THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(0.05 + random() * 0.15);
        END;
    END LOOP;
END
$$;

-- tailhook step 31 partitions (3 of 69): outside a transaction
-- The table's partition key column.
CREATE OR REPLACE FUNCTION tailhook.partition_key(tbl text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE tbl WHEN 'outbox' THEN 'created_at' ELSE 'event_at' END
$$;

-- tailhook step 31 partitions (4 of 69): outside a transaction
-- Whether tailhook.<tbl> is already partitioned.
CREATE OR REPLACE FUNCTION tailhook.partitioned(tbl text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = to_regclass('tailhook.' || tbl) AND c.relkind = 'p')
$$;

-- tailhook step 31 partitions (5 of 69): outside a transaction
-- Step 1: deliveries and attempts get event_at. Existing rows read
-- '-infinity' (a constant default: no rewrite, catalog only), and so does a
-- row written without it: tailhook's fan-out and result writes set it; a
-- row inserted by hand belongs to no period, lives in the undated partition
-- (see partition_undated) and is retained row by row as before.
CREATE OR REPLACE FUNCTION tailhook.partition_convert_column(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF tbl = 'outbox' OR tailhook.partitioned(tbl) OR EXISTS (
        SELECT 1 FROM pg_attribute WHERE attrelid = ('tailhook.' || tbl)::regclass AND attname = 'event_at' AND NOT attisdropped) THEN
        RETURN;
    END IF;
    PERFORM tailhook.partition_ddl(ARRAY[
        format($s$ALTER TABLE tailhook.%I ADD COLUMN event_at timestamptz NOT NULL DEFAULT '-infinity'$s$, tbl)]);
END
$$;

-- tailhook step 31 partitions (6 of 69): outside a transaction
SELECT tailhook.partition_convert_column('deliveries');

-- tailhook step 31 partitions (7 of 69): outside a transaction
SELECT tailhook.partition_convert_column('attempts');

-- tailhook step 31 partitions (8 of 69): outside a transaction
-- Step 2: the legacy partition's bound, as a CHECK constraint added NOT
-- VALID (an instant under ACCESS EXCLUSIVE) and validated separately below
-- (a scan under SHARE UPDATE EXCLUSIVE: writes go on). The cutoff is the
-- next hour boundary at least an hour ahead; a conversion resumed after it
-- came within 30 minutes gets a later one (a row past the cutoff would fail
-- the CHECK).
CREATE OR REPLACE FUNCTION tailhook.partition_convert_check(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    key text := tailhook.partition_key(tbl);
    cut timestamptz;
    old timestamptz;
BEGIN
    IF tailhook.partitioned(tbl) THEN
        RETURN;
    END IF;
    SELECT p.cutoff INTO old FROM tailhook.partition_legacy p WHERE p.tbl = partition_convert_check.tbl;
    IF old IS NOT NULL AND old > now() + interval '30 minutes' AND EXISTS (
        SELECT 1 FROM pg_constraint WHERE conrelid = ('tailhook.' || tbl)::regclass AND conname = tbl || '_legacy_range') THEN
        RETURN;
    END IF;
    -- One cutoff for the three tables (an event and its deliveries share a period).
    SELECT max(p.cutoff) INTO cut FROM tailhook.partition_legacy p WHERE p.cutoff > now() + interval '30 minutes';
    cut := coalesce(cut, date_trunc('hour', now()) + interval '2 hours');
    PERFORM tailhook.partition_ddl(ARRAY[
        format('ALTER TABLE tailhook.%I DROP CONSTRAINT IF EXISTS %I', tbl, tbl || '_legacy_range'),
        format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I CHECK (%I IS NOT NULL AND %I < %L) NOT VALID',
               tbl, tbl || '_legacy_range', key, key, cut)]);
    INSERT INTO tailhook.partition_legacy (tbl, cutoff) VALUES (partition_convert_check.tbl, cut)
        ON CONFLICT ON CONSTRAINT partition_legacy_pkey DO UPDATE SET cutoff = excluded.cutoff;
END
$$;

-- tailhook step 31 partitions (9 of 69): outside a transaction
CREATE OR REPLACE FUNCTION tailhook.partition_convert_validate(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT tailhook.partitioned(tbl) AND EXISTS (
        SELECT 1 FROM pg_constraint WHERE conrelid = ('tailhook.' || tbl)::regclass
           AND conname = tbl || '_legacy_range' AND NOT convalidated) THEN
        EXECUTE format('ALTER TABLE tailhook.%I VALIDATE CONSTRAINT %I', tbl, tbl || '_legacy_range');
    END IF;
END
$$;

-- tailhook step 31 partitions (10 of 69): outside a transaction
SELECT tailhook.partition_convert_check('outbox');

-- tailhook step 31 partitions (11 of 69): outside a transaction
SELECT tailhook.partition_convert_validate('outbox');

-- tailhook step 31 partitions (12 of 69): outside a transaction
SELECT tailhook.partition_convert_check('deliveries');

-- tailhook step 31 partitions (13 of 69): outside a transaction
SELECT tailhook.partition_convert_validate('deliveries');

-- tailhook step 31 partitions (14 of 69): outside a transaction
SELECT tailhook.partition_convert_check('attempts');

-- tailhook step 31 partitions (15 of 69): outside a transaction
SELECT tailhook.partition_convert_validate('attempts');

-- tailhook step 31 partitions (16 of 69): outside a transaction
-- The range partitions of tailhook.<tbl> (not the DEFAULT one): name and
-- bounds (lo NULL: from MINVALUE).
CREATE OR REPLACE FUNCTION tailhook.partition_bounds(tbl text)
RETURNS TABLE (name text, lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.relname::text,
           CASE WHEN b.e LIKE 'FOR VALUES FROM (MINVALUE)%' THEN NULL
                ELSE substring(b.e FROM 'FROM \(''([^'']+)''\)')::timestamptz END,
           substring(b.e FROM 'TO \(''([^'']+)''\)')::timestamptz
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
     CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS e) b
     WHERE i.inhparent = to_regclass('tailhook.' || tbl) AND b.e <> 'DEFAULT'
       AND c.relname::text <> tbl || '_undated'
$$;

-- tailhook step 31 partitions (17 of 69): outside a transaction
-- deliveries and attempts have an "undated" partition, from MINVALUE to
-- 1970, for their rows without a period: written by hand without event_at
-- ('-infinity'), or kept when their period was dropped. Not a period: never
-- dropped, retained row by row (it keeps them out of the DEFAULT partition,
-- which PostgreSQL scans each time a partition is attached). Created when
-- the range is free (at once on a fresh install; once the legacy partition
-- of a converted one is gone).
CREATE OR REPLACE FUNCTION tailhook.partition_undated(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part text := tbl || '_undated';
BEGIN
    IF tbl = 'outbox' OR to_regclass('tailhook.' || part) IS NOT NULL OR EXISTS (
        SELECT 1 FROM tailhook.partition_bounds(tbl) b WHERE b.lo IS NULL) THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE tailhook.%I (LIKE tailhook.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)', part, tbl);
    EXECUTE format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I CHECK (event_at IS NOT NULL AND event_at < %L)',
                   part, part || '_range', '1970-01-01 00:00:00+00');
    EXECUTE format('ALTER TABLE tailhook.%I ATTACH PARTITION tailhook.%I FOR VALUES FROM (MINVALUE) TO (%L)',
                   tbl, part, '1970-01-01 00:00:00+00');
    PERFORM tailhook.partition_name_indexes(tbl, part);
END
$$;

-- tailhook step 31 partitions (18 of 69): outside a transaction
-- Names a partition's indexes after the partitioned table's: index
-- <tbl>_<what> becomes <partition>_<what> (plans then read as the
-- unpartitioned ones did, partition by partition).
CREATE OR REPLACE FUNCTION tailhook.partition_name_indexes(tbl text, part text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    i record;
BEGIN
    FOR i IN SELECT c.relname AS child, p.relname AS parent
               FROM pg_index x
               JOIN pg_class c ON c.oid = x.indexrelid
               JOIN pg_inherits h ON h.inhrelid = x.indexrelid
               JOIN pg_class p ON p.oid = h.inhparent
              WHERE x.indrelid = ('tailhook.' || part)::regclass
                AND p.relname LIKE tbl || '\_%'
                AND c.relname <> part || substr(p.relname, length(tbl) + 1) LOOP
        EXECUTE format('ALTER INDEX tailhook.%I RENAME TO %I', i.child, part || substr(i.parent, length(tbl) + 1));
    END LOOP;
END
$$;

-- tailhook step 31 partitions (19 of 69): outside a transaction
-- Step 3: the swap, one short transaction per table under ACCESS EXCLUSIVE
-- (catalog work only): the old table is renamed <tbl>_legacy, the
-- partitioned table is created under the old name with the same columns,
-- defaults, constraints, indexes (by name), triggers, privileges and an
-- identity continuing the old one's sequence; the old table is attached as
-- the partition from MINVALUE to the cutoff before the new keys exist (its
-- validated CHECK spares the scan, its indexes are attached, not built), or
-- left detached when empty; the DEFAULT partition is created; the new keys
-- are added to the partitioned table only (valid once step 4 attached the
-- old table's); views reading the table are redefined on the new one.
CREATE OR REPLACE FUNCTION tailhook.partition_convert_swap(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tries int := 0;
BEGIN
    LOOP
        EXIT WHEN tailhook.partitioned(tbl);
        BEGIN
            PERFORM set_config('lock_timeout', '200ms', true);
            EXECUTE format('LOCK TABLE tailhook.%I IN ACCESS EXCLUSIVE MODE', tbl);
            PERFORM set_config('lock_timeout', '0', true);
            PERFORM tailhook.partition_convert_swap_locked(tbl);
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            tries := tries + 1;
            IF tries >= 300 THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(0.05 + random() * 0.15);
        END;
    END LOOP;
END
$$;

-- tailhook step 31 partitions (20 of 69): outside a transaction
CREATE OR REPLACE FUNCTION tailhook.partition_convert_swap_locked(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    key text := tailhook.partition_key(tbl);
    legacy text := tbl || '_legacy';
    old regclass := ('tailhook.' || tbl)::regclass;
    cut timestamptz;
    empty boolean;
    views text[];
    triggers text[];
    grants text[];
    s text;
    i record;
    last bigint;
BEGIN
    SELECT p.cutoff INTO cut FROM tailhook.partition_legacy p WHERE p.tbl = partition_convert_swap_locked.tbl;
    EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM tailhook.%I)', tbl) INTO empty;
    -- What is redefined on the new table: views reading it, its triggers,
    -- its table and column privileges.
    SELECT coalesce(array_agg(format('CREATE OR REPLACE VIEW %s AS %s', v.oid::regclass, pg_get_viewdef(v.oid)) ORDER BY v.oid), '{}')
      INTO views
      FROM pg_class v
     WHERE v.relkind = 'v' AND v.oid IN (
           SELECT r.ev_class FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
            WHERE d.refobjid = old);
    SELECT coalesce(array_agg(pg_get_triggerdef(t.oid) ORDER BY t.tgname), '{}') INTO triggers
      FROM pg_trigger t WHERE t.tgrelid = old AND NOT t.tgisinternal;
    SELECT coalesce(array_agg(format('GRANT %s ON tailhook.%I TO %s', a.privilege_type, tbl,
                                     CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)), '{}')
      INTO grants
      FROM pg_class c, aclexplode(c.relacl) a
     WHERE c.oid = old AND a.grantee <> c.relowner;
    SELECT grants || coalesce(array_agg(format('GRANT %s (%I) ON tailhook.%I TO %s', a.privilege_type, t.attname, tbl,
                                     CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)), '{}')
      INTO grants
      FROM pg_attribute t, aclexplode(t.attacl) a
     WHERE t.attrelid = old AND t.attacl IS NOT NULL AND NOT t.attisdropped;

    FOR i IN SELECT t.tgname FROM pg_trigger t WHERE t.tgrelid = old AND NOT t.tgisinternal LOOP
        EXECUTE format('DROP TRIGGER %I ON tailhook.%I', i.tgname, tbl);
    END LOOP;
    EXECUTE format('ALTER TABLE tailhook.%I RENAME TO %I', tbl, legacy);
    EXECUTE format('ALTER SEQUENCE tailhook.%I RENAME TO %I', tbl || '_id_seq', legacy || '_id_seq');
    -- The old table's keys and indexes step aside (their names go to the
    -- new table's); its keys stay until the new ones are built (step 4).
    FOR i IN SELECT c.conname FROM pg_constraint c WHERE c.conrelid = old AND c.contype IN ('p', 'u') LOOP
        EXECUTE format('ALTER TABLE tailhook.%I RENAME CONSTRAINT %I TO %I', legacy, i.conname, 'legacy_' || i.conname);
    END LOOP;
    FOR i IN SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
              WHERE x.indrelid = old AND c.relname NOT LIKE 'legacy\_%' LOOP
        EXECUTE format('ALTER INDEX tailhook.%I RENAME TO %I', i.relname, 'legacy_' || i.relname);
    END LOOP;

    EXECUTE format('CREATE TABLE tailhook.%I (LIKE tailhook.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE (%I)',
                   tbl, legacy, key);
    EXECUTE format('ALTER TABLE tailhook.%I DROP CONSTRAINT %I', tbl, tbl || '_legacy_range');
    -- LIKE copies a NOT VALID check as a valid one, which the old table's
    -- could not be attached under: those are added NOT VALID again.
    FOR i IN SELECT c.conname, pg_get_constraintdef(c.oid) AS def, obj_description(c.oid, 'pg_constraint') AS note
               FROM pg_constraint c
              WHERE c.conrelid = old AND c.contype = 'c' AND NOT c.convalidated
                AND c.conname <> tbl || '_legacy_range' LOOP
        EXECUTE format('ALTER TABLE tailhook.%I DROP CONSTRAINT %I', tbl, i.conname);
        EXECUTE format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I %s', tbl, i.conname, i.def);
        IF i.note IS NOT NULL THEN
            EXECUTE format('COMMENT ON CONSTRAINT %I ON tailhook.%I IS %L', i.conname, tbl, i.note);
        END IF;
    END LOOP;
    SELECT s.last_value INTO last FROM pg_sequences s WHERE s.schemaname = 'tailhook' AND s.sequencename = legacy || '_id_seq';
    IF last IS NOT NULL THEN
        PERFORM setval(format('tailhook.%I', tbl || '_id_seq'), last);
    END IF;

    -- The indexes the old table has already (attached as they are).
    FOR i IN SELECT c.relname, pg_get_indexdef(x.indexrelid) AS def FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
              WHERE x.indrelid = old AND NOT x.indisunique AND c.relname LIKE 'legacy\_%' LOOP
        EXECUTE replace(replace(i.def, 'INDEX ' || i.relname || ' ', 'INDEX ' || substr(i.relname, 8) || ' '),
                        'ON tailhook.' || legacy || ' ', 'ON tailhook.' || tbl || ' ');
    END LOOP;
    IF NOT empty THEN
        -- Its validated CHECK spares the scan; nothing is built.
        EXECUTE format('ALTER TABLE tailhook.%I ATTACH PARTITION tailhook.%I FOR VALUES FROM (MINVALUE) TO (%L)', tbl, legacy, cut);
    END IF;
    EXECUTE format('CREATE TABLE tailhook.%I PARTITION OF tailhook.%I DEFAULT', tbl || '_default', tbl);
    PERFORM tailhook.partition_name_indexes(tbl, tbl || '_default');
    -- The new keys, on the partitioned table only: valid once each
    -- partition's index is attached (the DEFAULT partition's now, the old
    -- table's after its concurrent build, step 4).
    IF tbl = 'outbox' THEN
        EXECUTE 'ALTER TABLE ONLY tailhook.outbox ADD CONSTRAINT outbox_pkey PRIMARY KEY (id, created_at)';
        EXECUTE 'CREATE INDEX outbox_event_id ON ONLY tailhook.outbox (event_id)';
        EXECUTE 'ALTER TABLE tailhook.outbox_default ADD CONSTRAINT outbox_default_pkey PRIMARY KEY (id, created_at)';
        EXECUTE 'CREATE INDEX outbox_default_event_id ON tailhook.outbox_default (event_id)';
        EXECUTE 'ALTER INDEX tailhook.outbox_pkey ATTACH PARTITION tailhook.outbox_default_pkey';
        EXECUTE 'ALTER INDEX tailhook.outbox_event_id ATTACH PARTITION tailhook.outbox_default_event_id';
    ELSIF tbl = 'deliveries' THEN
        EXECUTE 'ALTER TABLE ONLY tailhook.deliveries ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id, event_at)';
        EXECUTE 'ALTER TABLE ONLY tailhook.deliveries ADD CONSTRAINT deliveries_outbox_endpoint_unique UNIQUE (outbox_id, endpoint_id, event_at)';
        EXECUTE 'ALTER TABLE tailhook.deliveries_default ADD CONSTRAINT deliveries_default_pkey PRIMARY KEY (id, event_at)';
        EXECUTE 'ALTER TABLE tailhook.deliveries_default ADD CONSTRAINT deliveries_default_outbox_endpoint_unique UNIQUE (outbox_id, endpoint_id, event_at)';
        EXECUTE 'ALTER INDEX tailhook.deliveries_pkey ATTACH PARTITION tailhook.deliveries_default_pkey';
        EXECUTE 'ALTER INDEX tailhook.deliveries_outbox_endpoint_unique ATTACH PARTITION tailhook.deliveries_default_outbox_endpoint_unique';
    ELSE
        EXECUTE 'ALTER TABLE ONLY tailhook.attempts ADD CONSTRAINT attempts_pkey PRIMARY KEY (id, event_at)';
        EXECUTE 'ALTER TABLE tailhook.attempts_default ADD CONSTRAINT attempts_default_pkey PRIMARY KEY (id, event_at)';
        EXECUTE 'ALTER INDEX tailhook.attempts_pkey ATTACH PARTITION tailhook.attempts_default_pkey';
    END IF;
    FOREACH s IN ARRAY views LOOP
        EXECUTE s;
    END LOOP;
    FOREACH s IN ARRAY triggers LOOP
        EXECUTE s;
    END LOOP;
    FOREACH s IN ARRAY grants LOOP
        EXECUTE s;
    END LOOP;
    IF empty THEN
        PERFORM tailhook.partition_undated(tbl);
        -- A fresh install: the old table stays behind, empty and detached,
        -- so that step 4's statements (which name it) run again harmlessly.
        EXECUTE format('ALTER TABLE tailhook.%I DROP CONSTRAINT %I', legacy, tbl || '_legacy_range');
        DELETE FROM tailhook.partition_legacy p WHERE p.tbl = partition_convert_swap_locked.tbl;
    END IF;
END
$$;

-- tailhook step 31 partitions (21 of 69): outside a transaction
SELECT tailhook.partition_convert_swap('outbox');

-- tailhook step 31 partitions (22 of 69): outside a transaction
SELECT tailhook.partition_convert_swap('deliveries');

-- tailhook step 31 partitions (23 of 69): outside a transaction
SELECT tailhook.partition_convert_swap('attempts');

-- tailhook step 31 partitions (24 of 69): outside a transaction
-- Step 4: the new keys' indexes on the old table, built without blocking
-- writes, then attached: the partitioned table's keys become valid. Until
-- then the old table keeps its own keys (renamed legacy_*).
-- An interrupted concurrent build leaves an invalid index behind: dropped
-- first (under a short lock_timeout) so that the build runs again.
CREATE OR REPLACE FUNCTION tailhook.partition_drop_invalid() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    i record;
BEGIN
    FOR i IN SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
              WHERE c.relnamespace = 'tailhook'::regnamespace AND NOT x.indisvalid
                AND c.relname IN ('outbox_legacy_key', 'outbox_legacy_event_id', 'deliveries_legacy_key',
                                  'deliveries_legacy_unique', 'attempts_legacy_key')
                AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = x.indexrelid)
    LOOP
        PERFORM tailhook.partition_ddl(ARRAY[format('DROP INDEX tailhook.%I', i.relname)]);
    END LOOP;
END
$$;

-- tailhook step 31 partitions (25 of 69): outside a transaction
SELECT tailhook.partition_drop_invalid();

-- tailhook step 31 partitions (26 of 69): outside a transaction
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS outbox_legacy_key ON tailhook.outbox_legacy (id, created_at);

-- tailhook step 31 partitions (27 of 69): outside a transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_legacy_event_id ON tailhook.outbox_legacy (event_id);

-- tailhook step 31 partitions (28 of 69): outside a transaction
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS deliveries_legacy_key ON tailhook.deliveries_legacy (id, event_at);

-- tailhook step 31 partitions (29 of 69): outside a transaction
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS deliveries_legacy_unique ON tailhook.deliveries_legacy (outbox_id, endpoint_id, event_at);

-- tailhook step 31 partitions (30 of 69): outside a transaction
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS attempts_legacy_key ON tailhook.attempts_legacy (id, event_at);

-- tailhook step 31 partitions (31 of 69): outside a transaction
-- The old table's keys become the new ones' (one short transaction under
-- lock_timeout, retried): its own keys are dropped, the built indexes made
-- its keys and attached to the partitioned table's.
CREATE OR REPLACE FUNCTION tailhook.partition_convert_keys(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    legacy text := tbl || '_legacy';
    statements text[] := '{}';
    i record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = to_regclass('tailhook.' || legacy)) OR NOT EXISTS (
        SELECT 1 FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
         WHERE c.relname = tbl || '_pkey' AND c.relnamespace = 'tailhook'::regnamespace AND NOT x.indisvalid) THEN
        RETURN;
    END IF;
    FOR i IN SELECT c.conname FROM pg_constraint c
              WHERE c.conrelid = ('tailhook.' || legacy)::regclass AND c.contype IN ('p', 'u') AND c.conname LIKE 'legacy\_%' LOOP
        statements := statements || format('ALTER TABLE tailhook.%I DROP CONSTRAINT %I', legacy, i.conname);
    END LOOP;
    statements := statements
        || format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I PRIMARY KEY USING INDEX %I', legacy, legacy || '_key', legacy || '_key')
        || format('ALTER INDEX tailhook.%I ATTACH PARTITION tailhook.%I', tbl || '_pkey', legacy || '_key');
    IF tbl = 'outbox' THEN
        statements := statements || 'ALTER INDEX tailhook.outbox_event_id ATTACH PARTITION tailhook.outbox_legacy_event_id'::text;
    ELSIF tbl = 'deliveries' THEN
        statements := statements
            || 'ALTER TABLE tailhook.deliveries_legacy ADD CONSTRAINT deliveries_legacy_unique UNIQUE USING INDEX deliveries_legacy_unique'::text
            || 'ALTER INDEX tailhook.deliveries_outbox_endpoint_unique ATTACH PARTITION tailhook.deliveries_legacy_unique'::text;
    END IF;
    PERFORM tailhook.partition_ddl(statements);
END
$$;

-- tailhook step 31 partitions (32 of 69): outside a transaction
SELECT tailhook.partition_convert_keys('outbox');

-- tailhook step 31 partitions (33 of 69): outside a transaction
SELECT tailhook.partition_convert_keys('deliveries');

-- tailhook step 31 partitions (34 of 69): outside a transaction
SELECT tailhook.partition_convert_keys('attempts');

-- tailhook step 31 partitions (35 of 69): outside a transaction
-- event_id stays unique across partitions through a narrow table,
-- tailhook.event_ids (event_id PRIMARY KEY, created_at), which every INSERT
-- into the outbox fills from the same statement (a statement trigger over
-- its new rows). Its primary key is a real unique index: a concurrent
-- insert of the same id waits for the first writer and fails as soon as it
-- commits, at every isolation level (the advisory locks and lookups it
-- replaces were right under READ COMMITTED only), and it costs one index
-- insertion per event instead of a lookup in every partition. A unique
-- violation names the key of the partition holding the id:
-- outbox_event_id_key_<partition suffix> (the outbox's unique constraint
-- was outbox_event_id_key before partitioning).
--
-- event_ids is itself partitioned, by range of event_id, so that retention
-- drops the ids of an old period with it instead of deleting them: tailhook's
-- default ids are UUIDv7, whose first 48 bits are the Unix time in
-- milliseconds (sql/0011_event_id_v7.sql), so an outbox period [lo, hi) has
-- an event_ids partition event_ids_p<suffix> from uuid_at(lo) to uuid_at(hi)
-- (created and dropped with the outbox's). Ids outside every period (random
-- version 4 ids a publisher sets, ids far from their event's time, the ids
-- of events kept past their period) go to the DEFAULT partition
-- event_ids_default, itself partitioned by event_id in fixed chunks (before
-- 2020, one per calendar year 2020-2039, from 2040), each with a CHECK
-- constraint of its bounds: attaching a new period partition makes
-- PostgreSQL scan the DEFAULT partition for rows of the new range, and the
-- CHECK lets it skip every chunk but the one holding the new range (without
-- it, every chunk is scanned: the partition constraint alone does not count
-- as proof). Random version 4 ids fall in the before-2020 and from-2040
-- chunks (their first 48 bits are a time 0 to 8,900 years after 1970), never
-- scanned.
--
-- A row leaves with its event: a DELETE or TRUNCATE of the outbox removes it
-- (triggers below); a dropped period's partition goes with the outbox's
-- (partitions_drop puts back first the ids in it of the events that live
-- on); the ids in the DEFAULT chunks of a dropped period's events are
-- removed afterwards in batches by retention
-- (sql/queries/retention_event_ids.sql, through the BRIN index on
-- created_at): only ids that are not tailhook's own pay row deletes.

-- The smallest UUIDv7 of the millisecond of `t`: the Unix time in ms as 48
-- bits (12 hex digits), then zeros.
CREATE OR REPLACE FUNCTION tailhook.uuid_at(t timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (lpad(to_hex(greatest(0, floor(extract(epoch FROM t) * 1000))::bigint), 12, '0') || '00000000000000000000')::uuid
$$;

-- tailhook step 31 partitions (36 of 69): outside a transaction
CREATE TABLE IF NOT EXISTS tailhook.event_ids (
    event_id   uuid NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT outbox_event_id_key PRIMARY KEY (event_id)
) PARTITION BY RANGE (event_id);

-- tailhook step 31 partitions (37 of 69): outside a transaction
REVOKE ALL ON tailhook.event_ids FROM PUBLIC;

-- tailhook step 31 partitions (38 of 69): outside a transaction
CREATE TABLE IF NOT EXISTS tailhook.event_ids_default PARTITION OF tailhook.event_ids DEFAULT PARTITION BY RANGE (event_id);

-- tailhook step 31 partitions (39 of 69): outside a transaction
-- Read by created_at: the DEFAULT chunks by event_ids_expire, a period's
-- partition by partitions_drop for its ids whose event is not of the period
-- (an insert into a range not summarized yet costs a look at the revmap).
CREATE INDEX IF NOT EXISTS event_ids_created_at ON tailhook.event_ids USING brin (created_at);

-- tailhook step 31 partitions (40 of 69): outside a transaction
-- A partition of event_ids' key is named outbox_event_id_key_<suffix>
-- (event_ids_p20261207_000000: outbox_event_id_key_p20261207_000000), the
-- name a unique violation reports.
CREATE OR REPLACE FUNCTION tailhook.event_ids_name_key(part text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    i record;
    name text := 'outbox_event_id_key' || substr(part, length('event_ids') + 1);
BEGIN
    FOR i IN SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
              WHERE x.indrelid = ('tailhook.' || part)::regclass AND x.indisprimary AND c.relname <> name LOOP
        EXECUTE format('ALTER INDEX tailhook.%I RENAME TO %I', i.relname, name);
    END LOOP;
END
$$;

-- tailhook step 31 partitions (41 of 69): outside a transaction
-- The DEFAULT partition's chunks: event_ids_y_early (before 2020),
-- event_ids_y2020 .. event_ids_y2039, event_ids_y_late (from 2040), each with
-- its bounds as a CHECK constraint (see above).
CREATE OR REPLACE FUNCTION tailhook.event_ids_chunks() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part text;
    lo uuid;
    hi uuid;
BEGIN
    FOR y IN 2019..2040 LOOP
        part := CASE y WHEN 2019 THEN 'event_ids_y_early' WHEN 2040 THEN 'event_ids_y_late' ELSE 'event_ids_y' || y END;
        CONTINUE WHEN to_regclass('tailhook.' || part) IS NOT NULL;
        lo := CASE WHEN y > 2019 THEN tailhook.uuid_at(make_timestamptz(y, 1, 1, 0, 0, 0, 'UTC')) END;
        hi := CASE WHEN y < 2040 THEN tailhook.uuid_at(make_timestamptz(y + 1, 1, 1, 0, 0, 0, 'UTC')) END;
        EXECUTE format('CREATE TABLE tailhook.%I (LIKE tailhook.event_ids INCLUDING DEFAULTS INCLUDING STORAGE)', part);
        EXECUTE format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I CHECK (%s)', part, part || '_range',
                       concat_ws(' AND ', 'event_id IS NOT NULL', format('event_id >= %L', lo), format('event_id < %L', hi)));
        EXECUTE format('ALTER TABLE tailhook.event_ids_default ATTACH PARTITION tailhook.%I FOR VALUES FROM (%s) TO (%s)', part,
                       coalesce(quote_literal(lo), 'MINVALUE'), coalesce(quote_literal(hi), 'MAXVALUE'));
        PERFORM tailhook.event_ids_name_key(part);
    END LOOP;
    PERFORM tailhook.event_ids_name_key('event_ids_default');
END
$$;

-- tailhook step 31 partitions (42 of 69): outside a transaction
SELECT tailhook.event_ids_chunks();

-- tailhook step 31 partitions (43 of 69): outside a transaction
-- Creates event_ids' partition `part` of the outbox period [lo, hi) (called
-- by partitions_prepare right after the outbox's, under the outbox's lock:
-- no writer inserts ids meanwhile). Ids of that range already in the
-- DEFAULT partition (a publisher's id from the future, ids written before
-- the first period was prepared) are moved into it first, the table locked
-- against readers too (as partitions_prepare does for the outbox): the
-- ATTACH would fail on them. The ATTACH scans the one chunk of the range
-- (see above). Returns the ids moved.
CREATE OR REPLACE FUNCTION tailhook.event_ids_prepare(lo timestamptz, hi timestamptz, part text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ulo uuid := tailhook.uuid_at(lo);
    uhi uuid := tailhook.uuid_at(hi);
    n bigint := 0;
BEGIN
    IF to_regclass('tailhook.' || part) IS NOT NULL OR ulo >= uhi THEN
        RETURN 0;
    END IF;
    EXECUTE format('CREATE TABLE tailhook.%I (LIKE tailhook.event_ids INCLUDING DEFAULTS INCLUDING STORAGE)', part);
    IF EXISTS (SELECT 1 FROM tailhook.event_ids_default d WHERE d.event_id >= ulo AND d.event_id < uhi) THEN
        LOCK TABLE tailhook.event_ids IN ACCESS EXCLUSIVE MODE;
        EXECUTE format('WITH m AS (DELETE FROM tailhook.event_ids_default d WHERE d.event_id >= $1 AND d.event_id < $2 RETURNING d.*)
                        INSERT INTO tailhook.%I SELECT * FROM m', part) USING ulo, uhi;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    -- Proves the bound: ATTACH then skips scanning the new table.
    EXECUTE format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I CHECK (event_id IS NOT NULL AND event_id >= %L AND event_id < %L)',
                   part, part || '_range', ulo, uhi);
    EXECUTE format('ALTER TABLE tailhook.event_ids ATTACH PARTITION tailhook.%I FOR VALUES FROM (%L) TO (%L)', part, ulo, uhi);
    PERFORM tailhook.event_ids_name_key(part);
    RETURN n;
END
$$;

-- tailhook step 31 partitions (44 of 69): outside a transaction
-- The periods of the outbox dropped whose ids are still to be removed.
CREATE TABLE IF NOT EXISTS tailhook.event_ids_dropped (
    lo timestamptz NOT NULL,
    hi timestamptz NOT NULL,
    PRIMARY KEY (lo, hi)
);

-- tailhook step 31 partitions (45 of 69): outside a transaction
REVOKE ALL ON tailhook.event_ids_dropped FROM PUBLIC;

-- tailhook step 31 partitions (46 of 69): outside a transaction
-- While event_ids is being filled from the existing outbox (below), each
-- INSERT also looks its ids up in the outbox, under per-bucket advisory
-- locks (READ COMMITTED), as before this table existed.
CREATE OR REPLACE FUNCTION tailhook.outbox_event_id_unique() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    dup uuid;
BEGIN
    INSERT INTO tailhook.event_ids (event_id, created_at) SELECT n.event_id, n.created_at FROM new_rows n;
    PERFORM pg_advisory_xact_lock(7368005, x.b)
       FROM (SELECT DISTINCT hashtext(n.event_id::text) & 255 AS b FROM new_rows n ORDER BY 1) x;
    SELECT n.event_id INTO dup
      FROM new_rows n JOIN tailhook.outbox o ON o.event_id = n.event_id AND o.id <> n.id
     LIMIT 1;
    IF dup IS NOT NULL THEN
        RAISE EXCEPTION 'duplicate key value violates unique constraint "outbox_event_id_key"'
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'outbox_event_id_key', TABLE = 'outbox',
                  SCHEMA = 'tailhook', DETAIL = format('Key (event_id)=(%s) already exists.', dup);
    END IF;
    RETURN NULL;
END
$$;

-- tailhook step 31 partitions (47 of 69): outside a transaction
REVOKE EXECUTE ON FUNCTION tailhook.outbox_event_id_unique() FROM PUBLIC;

-- tailhook step 31 partitions (48 of 69): outside a transaction
DO $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'tailhook.outbox'::regclass AND tgname = 'outbox_event_id_unique') THEN
        PERFORM tailhook.partition_ddl(ARRAY[
            'CREATE TRIGGER outbox_event_id_unique AFTER INSERT ON tailhook.outbox REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION tailhook.outbox_event_id_unique()']);
    END IF;
END
$$;

-- tailhook step 31 partitions (49 of 69): outside a transaction
-- Fills event_ids from the outbox, once (the table's comment says so), without
-- blocking writers: first waits until every transaction in this database that
-- had written something before the function above took over has ended (it
-- may have inserted outbox rows without event_ids rows), then copies the ids
-- (rows inserted since are there already: ON CONFLICT DO NOTHING).
DO $$
DECLARE
    since timestamptz := clock_timestamp();
    waited int := 0;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF obj_description('tailhook.event_ids'::regclass, 'pg_class') IS NOT DISTINCT FROM 'filled' THEN
        RETURN;
    END IF;
    WHILE EXISTS (SELECT 1 FROM pg_stat_activity a
                   WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
                     AND a.backend_xid IS NOT NULL AND a.xact_start < since
                     -- an aborted one rolls back: its rows never commit
                     AND a.state IS DISTINCT FROM 'idle in transaction (aborted)') LOOP
        waited := waited + 1;
        IF waited > 600 THEN
            RAISE EXCEPTION 'tailhook: a transaction open since before % keeps event_ids from being filled; end it and run migrate again', since
                USING ERRCODE = 'lock_not_available';
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    INSERT INTO tailhook.event_ids (event_id, created_at)
    SELECT o.event_id, o.created_at FROM tailhook.outbox o
        ON CONFLICT (event_id) DO NOTHING;
    COMMENT ON TABLE tailhook.event_ids IS 'filled';
END
$$;

-- tailhook step 31 partitions (50 of 69): outside a transaction
-- Filled: the primary key alone keeps event_id unique.
CREATE OR REPLACE FUNCTION tailhook.outbox_event_id_unique() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO tailhook.event_ids (event_id, created_at) SELECT n.event_id, n.created_at FROM new_rows n;
    RETURN NULL;
END
$$;

-- tailhook step 31 partitions (51 of 69): outside a transaction
REVOKE EXECUTE ON FUNCTION tailhook.outbox_event_id_unique() FROM PUBLIC;

-- tailhook step 31 partitions (52 of 69): outside a transaction
-- An event deleted (by retention row by row, by hand) or truncated takes
-- its id along.
CREATE OR REPLACE FUNCTION tailhook.outbox_event_ids_gone() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE tailhook.event_ids;
    ELSE
        DELETE FROM tailhook.event_ids e USING old_rows o WHERE e.event_id = o.event_id AND e.created_at = o.created_at;
    END IF;
    RETURN NULL;
END
$$;

-- tailhook step 31 partitions (53 of 69): outside a transaction
REVOKE EXECUTE ON FUNCTION tailhook.outbox_event_ids_gone() FROM PUBLIC;

-- tailhook step 31 partitions (54 of 69): outside a transaction
DO $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'tailhook.outbox'::regclass AND tgname = 'outbox_event_ids_deleted') THEN
        PERFORM tailhook.partition_ddl(ARRAY[
            'CREATE TRIGGER outbox_event_ids_deleted AFTER DELETE ON tailhook.outbox REFERENCING OLD TABLE AS old_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION tailhook.outbox_event_ids_gone()',
            'CREATE TRIGGER outbox_event_ids_truncated AFTER TRUNCATE ON tailhook.outbox '
            'FOR EACH STATEMENT EXECUTE FUNCTION tailhook.outbox_event_ids_gone()']);
    END IF;
END
$$;

-- tailhook step 31 partitions (55 of 69): outside a transaction
-- Removes up to `batch` ids of events gone with dropped periods
-- (tailhook.event_ids_dropped, recorded by partitions_drop), oldest period
-- first: ids in the DEFAULT chunks (a dropped period's own partition went
-- with it) with the period's created_at whose (event_id, created_at) is in
-- no outbox row, so the events it kept keep theirs. Only those periods' ids
-- are read, chunk by chunk (a row's ctid names it within its chunk) through
-- the BRIN index; a period is done once its chunks give fewer than asked.
-- With tailhook's own ids there is nothing to remove. An id in another
-- period's partition (its time far from its event's) is not looked for: it
-- goes when that partition is dropped. Returns how many.
CREATE OR REPLACE FUNCTION tailhook.event_ids_expire(batch int) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p record;
    c record;
    n bigint;
    found_any boolean;
    total bigint := 0;
BEGIN
    FOR p IN SELECT d.lo, d.hi FROM tailhook.event_ids_dropped d ORDER BY d.lo, d.hi LOOP
        FOR c IN SELECT i.inhrelid::regclass AS chunk FROM pg_inherits i
                  WHERE i.inhparent = 'tailhook.event_ids_default'::regclass ORDER BY i.inhrelid LOOP
            -- A chunk without ids of the period is passed over before the
            -- delete below is planned (its outbox lookup plans every outbox
            -- partition).
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s x WHERE x.created_at >= $1 AND x.created_at < $2)', c.chunk)
               INTO found_any USING p.lo, p.hi;
            CONTINUE WHEN NOT found_any;
            EXECUTE format($q$DELETE FROM %1$s e
                               WHERE e.ctid = ANY (ARRAY(
                                         SELECT x.ctid FROM %1$s x
                                          WHERE x.created_at >= $1 AND x.created_at < $2
                                            AND NOT EXISTS (SELECT 1 FROM tailhook.outbox o
                                                             WHERE o.event_id = x.event_id AND o.created_at = x.created_at)
                                          LIMIT $3))$q$, c.chunk)
               USING p.lo, p.hi, batch - total;
            GET DIAGNOSTICS n = ROW_COUNT;
            total := total + n;
            EXIT WHEN total >= batch;
        END LOOP;
        -- Asked for more than was left: the period is done.
        EXIT WHEN total >= batch;
        DELETE FROM tailhook.event_ids_dropped d WHERE d.lo = p.lo AND d.hi = p.hi;
    END LOOP;
    RETURN total;
END
$$;

-- tailhook step 31 partitions (56 of 69): outside a transaction
REVOKE EXECUTE ON FUNCTION tailhook.event_ids_expire(int) FROM PUBLIC;

-- tailhook step 31 partitions (57 of 69): outside a transaction
-- The API's publish (sql/0027_api_tokens.sql): the same id again inserts
-- nothing and returns false, whether the first is committed already (found
-- in event_ids) or commits while this one waits on its key.
CREATE OR REPLACE FUNCTION tailhook.publish_with_id(
    event_id     uuid,
    event_type   text,
    payload      jsonb,
    tenant       text DEFAULT NULL,
    ordering_key text DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF starts_with(publish_with_id.event_type, 'tailhook.') AND publish_with_id.event_type <> 'tailhook.test' THEN
        RAISE EXCEPTION 'tailhook.publish: event type % is reserved for tailhook''s own events',
            quote_literal(publish_with_id.event_type) USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM tailhook.event_ids e WHERE e.event_id = publish_with_id.event_id) THEN
        RETURN false;
    END IF;
    BEGIN
        INSERT INTO tailhook.outbox (event_id, event_type, payload, tenant, ordering_key)
        VALUES (publish_with_id.event_id, publish_with_id.event_type, publish_with_id.payload,
                publish_with_id.tenant, publish_with_id.ordering_key);
    EXCEPTION WHEN unique_violation THEN
        RETURN false;
    END;
    RETURN true;
END
$$;

-- tailhook step 31 partitions (58 of 69): outside a transaction
REVOKE EXECUTE ON FUNCTION tailhook.publish_with_id(uuid, text, jsonb, text, text) FROM PUBLIC;

-- tailhook step 31 partitions (59 of 69): outside a transaction
-- Where the periods tailhook manages start: rows below it (in the DEFAULT
-- partition, or the legacy one of a converted installation) are retained
-- row by row; rows at or above it live in range partitions retention drops
-- whole. 'infinity' while there is no such partition.
CREATE OR REPLACE FUNCTION tailhook.partition_floor(tbl text) RETURNS timestamptz
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(min(b.lo), 'infinity') FROM tailhook.partition_bounds(tbl) b WHERE b.lo IS NOT NULL
$$;

-- tailhook step 31 partitions (60 of 69): outside a transaction
-- Creates the partitions of the three tables up to `ahead` periods of
-- `width` past now(), each period from the last one's end to the next
-- boundary of `width` (so a changed width takes effect at the end of the
-- prepared range; a gap left by a long outage becomes one partition).
-- Rows of a new period already in the DEFAULT partition are moved into it
-- first (PostgreSQL refuses a partition whose rows sit in the default).
-- Each partition is created on its own and attached (a scan of the small
-- DEFAULT partition), with the table locked against writes (SHARE ROW
-- EXCLUSIVE, a few milliseconds; reads go on), under lock_timeout 200ms: a
-- lock not granted ends the call (the caller retries next round). The
-- caller holds tailhook's partition advisory lock.
-- Each outbox partition comes with event_ids' partition of the same period
-- (tailhook.event_ids_prepare).
-- Returns partitions created and rows moved out of the DEFAULT partitions.
CREATE OR REPLACE FUNCTION tailhook.partitions_prepare(width interval, ahead int)
RETURNS TABLE (created int, moved bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    origin constant timestamptz := '2000-01-03 00:00:00+00'; -- a Monday, UTC
    tbl text;
    key text;
    start timestamptz;
    nxt timestamptz;
    horizon timestamptz := now() + ahead * width;
    floor_now timestamptz := date_bin(width, now(), origin) - width;
    part text;
    n bigint;
    strays boolean;
BEGIN
    IF width < interval '1 second' OR ahead < 1 THEN
        RAISE EXCEPTION 'tailhook.partitions_prepare: width must be at least 1 second and ahead at least 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    created := 0;
    moved := 0;
    PERFORM set_config('lock_timeout', '200ms', true);
    -- Every lock this call needs is taken first, table after table in the
    -- order writers take them, before any work: a session queued behind one
    -- of them can then be waited on by this call for at most lock_timeout
    -- (each wait ends within 200 ms of the first lock), well under
    -- deadlock_timeout (1 s), so a deadlock with a reader or writer ends this
    -- call, never the other session (a lock asked for after seconds of work
    -- could close a cycle just as the other session's check ran).
    -- Writers wait (SHARE ROW EXCLUSIVE: reads go on) until this commits:
    -- an INSERT routed to the DEFAULT partition by the partition list from
    -- before an ATTACH would otherwise fail that partition's new constraint
    -- once the ATTACH commits. Readers wait too (ACCESS EXCLUSIVE) when rows
    -- will move, and for the DEFAULT partition, which ATTACH locks anyway.
    FOREACH tbl IN ARRAY ARRAY['outbox', 'deliveries', 'attempts'] LOOP
        key := tailhook.partition_key(tbl);
        SELECT max(b.hi) INTO start FROM tailhook.partition_bounds(tbl) b;
        start := coalesce(start, floor_now);
        IF start < horizon THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM tailhook.%I WHERE %I >= $1 AND %I < $2)', tbl || '_default', key, key)
               INTO strays USING start, horizon + width;
            EXECUTE format('LOCK TABLE tailhook.%I IN %s MODE', tbl,
                           CASE WHEN strays THEN 'ACCESS EXCLUSIVE' ELSE 'SHARE ROW EXCLUSIVE' END);
            EXECUTE format('LOCK TABLE tailhook.%I IN ACCESS EXCLUSIVE MODE', tbl || '_default');
            IF tbl = 'outbox' THEN
                -- event_ids gets a partition with each outbox period
                -- (event_ids_prepare): ATTACH locks its DEFAULT chunks, and
                -- ids may move out of them.
                LOCK TABLE tailhook.event_ids IN ACCESS EXCLUSIVE MODE;
            END IF;
        END IF;
    END LOOP;
    FOREACH tbl IN ARRAY ARRAY['outbox', 'deliveries', 'attempts'] LOOP
        key := tailhook.partition_key(tbl);
        SELECT max(b.hi) INTO start FROM tailhook.partition_bounds(tbl) b;
        start := coalesce(start, floor_now);
        WHILE start < horizon LOOP
            nxt := greatest(date_bin(width, start, origin) + width, floor_now);
            part := tbl || '_p' || to_char(start AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MISS');
            EXECUTE format('CREATE TABLE tailhook.%I (LIKE tailhook.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)',
                           part, tbl);
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM tailhook.%I WHERE %I >= $1 AND %I < $2)', tbl || '_default', key, key)
               INTO strays USING start, nxt;
            IF strays THEN
                -- Readers wait too while rows change partition (ACCESS
                -- EXCLUSIVE, taken above): a reader planning with the
                -- partition list from before this commits would find them
                -- in neither place.
                EXECUTE format('WITH m AS (DELETE FROM tailhook.%I WHERE %I >= $1 AND %I < $2 RETURNING *) INSERT INTO tailhook.%I SELECT * FROM m',
                               tbl || '_default', key, key, part) USING start, nxt;
                GET DIAGNOSTICS n = ROW_COUNT;
                moved := moved + n;
            END IF;
            -- Proves the bound: ATTACH then skips scanning the new table.
            EXECUTE format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I CHECK (%I IS NOT NULL AND %I >= %L AND %I < %L)',
                           part, part || '_range', key, key, start, key, nxt);
            EXECUTE format('ALTER TABLE tailhook.%I ATTACH PARTITION tailhook.%I FOR VALUES FROM (%L) TO (%L)',
                           tbl, part, start, nxt);
            PERFORM tailhook.partition_name_indexes(tbl, part);
            created := created + 1;
            IF tbl = 'outbox' THEN
                -- event_ids' partition of the same period (still under the
                -- outbox's lock: no id is inserted meanwhile).
                moved := moved + tailhook.event_ids_prepare(start, nxt, 'event_ids' || substr(part, length('outbox') + 1));
                created := created + 1;
            END IF;
            start := nxt;
        END LOOP;
    END LOOP;
    RETURN NEXT;
END
$$;

-- tailhook step 31 partitions (61 of 69): outside a transaction
-- Rows in a DEFAULT partition that belong to a period tailhook manages (at
-- or past the floor): written beyond the prepared range. partitions_prepare
-- moves them once their period is prepared.
CREATE OR REPLACE FUNCTION tailhook.partition_strays()
RETURNS TABLE (tbl text, strays bigint)
LANGUAGE plpgsql SECURITY DEFINER STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['outbox', 'deliveries', 'attempts'] LOOP
        tbl := t;
        EXECUTE format('SELECT count(*) FROM tailhook.%I WHERE %I >= $1', t || '_default', tailhook.partition_key(t))
           INTO strays USING tailhook.partition_floor(t);
        RETURN NEXT;
    END LOOP;
END
$$;

-- tailhook step 31 partitions (62 of 69): outside a transaction
-- A detached partition's end: dropped; the legacy partition of a converted
-- installation is emptied and kept, detached (step 4's statements name it).
CREATE OR REPLACE FUNCTION tailhook.partition_discard(part text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF part LIKE '%\_legacy' THEN
        EXECUTE format('TRUNCATE tailhook.%I', part);
    ELSE
        EXECUTE format('DROP TABLE tailhook.%I', part);
    END IF;
END
$$;

-- tailhook step 31 partitions (63 of 69): outside a transaction
-- Retention by partition: drops the oldest period whose end is at least
-- `succeeded_ms` old (one period per call: each call one short
-- transaction). Its three partitions are detached (plain DETACH: PostgreSQL
-- refuses DETACH CONCURRENTLY while a DEFAULT partition exists, and it
-- cannot run in a transaction; the ACCESS EXCLUSIVE lock is asked for under
-- lock_timeout 200ms and held for the few milliseconds below), the rows
-- today's retention would keep are copied back (deliveries and attempts
-- through the parent table with event_at '-infinity', into the undated
-- partitions; events straight into the outbox's DEFAULT partition, since no
-- partition covers that period any more; all retained row by row from
-- there), and the
-- partitions are dropped. Kept: deliveries pending or retrying, any still
-- leased, succeeded ones completed less than `succeeded_ms` ago, failed
-- and cancelled ones completed less than `failed_ms` ago (or cancelled and
-- not yet stamped); the attempts of those; outbox rows not dispatched yet or
-- with a kept delivery. event_ids' partition of the period is detached and
-- dropped too, the ids in it of events that live on put back first (into
-- its DEFAULT partition). Returns partitions dropped and rows kept.
CREATE OR REPLACE FUNCTION tailhook.partitions_drop(succeeded_ms bigint, failed_ms bigint)
RETURNS TABLE (dropped int, kept bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    period_end timestamptz;
    p_outbox text;
    p_deliveries text;
    p_attempts text;
    p_event_ids text;
    ids_lo uuid;
    ids_hi uuid;
    ids_brin regclass;
    period_start timestamptz;
    alive boolean;
    seqscan text := current_setting('enable_seqscan');
    r record;
    kept_ids bigint[] := '{}';
    keep_ids bigint[] := '{}';
    kept_events bigint[] := '{}';
    n bigint;
BEGIN
    dropped := 0;
    kept := 0;
    SELECT min(b.hi) INTO period_end FROM tailhook.partition_bounds('deliveries') b
     WHERE b.hi <= now() - succeeded_ms * interval '1 millisecond';
    IF period_end IS NULL THEN
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT b.name INTO p_outbox FROM tailhook.partition_bounds('outbox') b WHERE b.hi = period_end;
    SELECT b.name INTO p_deliveries FROM tailhook.partition_bounds('deliveries') b WHERE b.hi = period_end;
    SELECT b.name INTO p_attempts FROM tailhook.partition_bounds('attempts') b WHERE b.hi = period_end;
    -- event_ids' partition of the period (none for the legacy partition).
    SELECT 'event_ids' || substr(b.name, length('outbox') + 1), tailhook.uuid_at(b.lo), tailhook.uuid_at(b.hi), b.lo
      INTO p_event_ids, ids_lo, ids_hi, period_start
      FROM tailhook.partition_bounds('outbox') b
     WHERE b.name = p_outbox AND b.lo IS NOT NULL AND to_regclass('tailhook.event_ids' || substr(b.name, length('outbox') + 1)) IS NOT NULL;
    -- Its events' ids are removed from event_ids afterwards, by retention.
    INSERT INTO tailhook.event_ids_dropped (lo, hi)
    SELECT coalesce(b.lo, '-infinity'), b.hi FROM tailhook.partition_bounds('outbox') b WHERE b.name = p_outbox
        ON CONFLICT DO NOTHING;
    -- The deliveries to keep are looked for before any lock but this scan's
    -- own, which blocks no writer (a period may hold millions of rows, and
    -- finished deliveries still leased, cancelled or finished by hand while
    -- their request is in flight, are in no index). A delivery that becomes
    -- one to keep after this scan is pending or retrying (a redelivery; and
    -- claims lease nothing else): found again below, by index, under the
    -- locks. One that stopped being one is kept all the same.
    EXECUTE format($q$SELECT coalesce(array_agg(d.id), '{}') FROM tailhook.%I d
                       WHERE d.status IN ('pending', 'retrying')
                          OR (d.status = 'succeeded' AND d.completed_at >= now() - $1::bigint * interval '1 millisecond')
                          OR (d.status IN ('failed', 'cancelled')
                              AND (d.completed_at IS NULL OR d.completed_at >= now() - $2::bigint * interval '1 millisecond'))
                          OR d.locked_until > now()$q$, p_deliveries)
       INTO keep_ids USING succeeded_ms, failed_ms;
    -- event_ids' partition of the period is read by created_at under the
    -- locks below (its ids whose event is not of the period): its BRIN index
    -- is brought up to date first, outside them (a range not summarized is
    -- read whole; ids inserted after this are few, in the ranges at its end).
    IF p_event_ids IS NOT NULL THEN
        SELECT x.indexrelid::regclass INTO ids_brin
          FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_am a ON a.oid = c.relam
         WHERE x.indrelid = ('tailhook.' || p_event_ids)::regclass AND a.amname = 'brin';
        IF ids_brin IS NOT NULL THEN
            PERFORM brin_summarize_new_values(ids_brin);
        END IF;
    END IF;
    PERFORM set_config('lock_timeout', '200ms', true);
    -- Parents in the order writers take them (outbox, deliveries, attempts).
    IF p_outbox IS NOT NULL THEN
        EXECUTE format('ALTER TABLE tailhook.outbox DETACH PARTITION tailhook.%I', p_outbox);
    END IF;
    EXECUTE format('ALTER TABLE tailhook.deliveries DETACH PARTITION tailhook.%I', p_deliveries);
    IF p_attempts IS NOT NULL THEN
        EXECUTE format('ALTER TABLE tailhook.attempts DETACH PARTITION tailhook.%I', p_attempts);
    END IF;
    -- Last, as writers take it (an outbox INSERT's trigger fills it).
    IF p_event_ids IS NOT NULL THEN
        EXECUTE format('ALTER TABLE tailhook.event_ids DETACH PARTITION tailhook.%I', p_event_ids);
    END IF;
    PERFORM set_config('lock_timeout', '0', true);

    -- Kept deliveries and attempts leave their period: event_at becomes
    -- '-infinity' and they land in the undated partition (created now if the
    -- legacy partition held its range).
    PERFORM tailhook.partition_undated('deliveries');
    PERFORM tailhook.partition_undated('attempts');
    EXECUTE format('ALTER TABLE tailhook.%I DROP CONSTRAINT IF EXISTS %I', p_deliveries, p_deliveries || '_range');
    EXECUTE format($q$
        WITH k AS (
            UPDATE tailhook.%I d SET event_at = '-infinity'
             WHERE d.id = ANY ($1) OR d.status IN ('pending', 'retrying')
            RETURNING d.id, d.outbox_id)
        SELECT coalesce(array_agg(k.id), '{}'), coalesce(array_agg(DISTINCT k.outbox_id), '{}') FROM k$q$, p_deliveries)
       INTO kept_ids, kept_events USING keep_ids;
    EXECUTE format('INSERT INTO tailhook.deliveries OVERRIDING SYSTEM VALUE SELECT * FROM tailhook.%I d WHERE d.id = ANY ($1)',
                   p_deliveries) USING kept_ids;
    kept := kept + cardinality(kept_ids);
    IF p_attempts IS NOT NULL THEN
        EXECUTE format('ALTER TABLE tailhook.%I DROP CONSTRAINT IF EXISTS %I', p_attempts, p_attempts || '_range');
        EXECUTE format($q$UPDATE tailhook.%I a SET event_at = '-infinity' WHERE a.delivery_id = ANY ($1)$q$, p_attempts) USING kept_ids;
        EXECUTE format('INSERT INTO tailhook.attempts OVERRIDING SYSTEM VALUE SELECT * FROM tailhook.%I a WHERE a.delivery_id = ANY ($1)',
                       p_attempts) USING kept_ids;
        GET DIAGNOSTICS n = ROW_COUNT;
        kept := kept + n;
    END IF;
    IF p_outbox IS NOT NULL THEN
        -- Into the DEFAULT partition directly (where the parent would route
        -- them: no partition covers the period any more), so that the
        -- outbox's statement triggers do not fire: their ids are in
        -- event_ids already (put back below if they were in the period's
        -- partition); outbox_notify's wake-up is sent here instead.
        EXECUTE format('INSERT INTO tailhook.outbox_default OVERRIDING SYSTEM VALUE SELECT * FROM tailhook.%I o WHERE o.dispatched_at IS NULL OR o.id = ANY ($1)',
                       p_outbox) USING kept_events;
        GET DIAGNOSTICS n = ROW_COUNT;
        kept := kept + n;
        IF n > 0 THEN
            PERFORM pg_notify('tailhook_outbox', '');
        END IF;
    END IF;
    IF p_event_ids IS NOT NULL THEN
        -- The ids in the period's event_ids partition whose events live on
        -- go back into event_ids, into its DEFAULT chunks now; the others go
        -- with the partition, undeleted. Those of the events kept above, read
        -- from the detached outbox partition...
        IF p_outbox IS NOT NULL THEN
            EXECUTE format($q$INSERT INTO tailhook.event_ids (event_id, created_at)
                              SELECT o.event_id, o.created_at FROM tailhook.%I o
                               WHERE (o.dispatched_at IS NULL OR o.id = ANY ($1)) AND o.event_id >= $2 AND o.event_id < $3$q$,
                           p_outbox) USING kept_events, ids_lo, ids_hi;
        END IF;
        -- ...and those whose event is not of the period (an id's time is not
        -- always its event's), found through the BRIN index (summarized
        -- above; a plan reading the partition whole is refused), each looked
        -- up in the one outbox partition of its created_at (planned with
        -- its values: pruned).
        PERFORM set_config('enable_seqscan', 'off', true);
        FOR r IN EXECUTE format('SELECT x.event_id, x.created_at FROM tailhook.%I x WHERE x.created_at < $1 OR x.created_at >= $2',
                                p_event_ids) USING period_start, period_end LOOP
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM tailhook.outbox o WHERE o.event_id = %L AND o.created_at = %L)',
                           r.event_id, r.created_at) INTO alive;
            IF alive THEN
                INSERT INTO tailhook.event_ids (event_id, created_at) VALUES (r.event_id, r.created_at);
            END IF;
        END LOOP;
        PERFORM set_config('enable_seqscan', seqscan, true);
        PERFORM tailhook.partition_discard(p_event_ids);
        dropped := dropped + 1;
    END IF;
    IF p_outbox IS NOT NULL THEN
        PERFORM tailhook.partition_discard(p_outbox);
        dropped := dropped + 1;
    END IF;
    PERFORM tailhook.partition_discard(p_deliveries);
    dropped := dropped + 1;
    IF p_attempts IS NOT NULL THEN
        PERFORM tailhook.partition_discard(p_attempts);
        dropped := dropped + 1;
    END IF;
    DELETE FROM tailhook.partition_legacy l WHERE l.cutoff = period_end;
    RETURN NEXT;
END
$$;

-- tailhook step 31 partitions (64 of 69): outside a transaction
-- The sidecar's role runs partition maintenance without owning the tables:
-- the three functions run as their owner (the role that migrated) and only
-- roles granted the sidecar kind may call them.
REVOKE EXECUTE ON FUNCTION tailhook.partitions_prepare(interval, int) FROM PUBLIC;

-- tailhook step 31 partitions (65 of 69): outside a transaction
REVOKE EXECUTE ON FUNCTION tailhook.partitions_drop(bigint, bigint) FROM PUBLIC;

-- tailhook step 31 partitions (66 of 69): outside a transaction
REVOKE EXECUTE ON FUNCTION tailhook.partition_strays() FROM PUBLIC;

-- tailhook step 31 partitions (67 of 69): outside a transaction
-- grant_kind (as in sql/0030_portal.sql) with them for the sidecar kind, and
-- the roles granted so far get them.
CREATE OR REPLACE FUNCTION tailhook.grant_kind(kind text, role regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    statements text[];
    s text;
BEGIN
    statements := ARRAY['GRANT USAGE ON SCHEMA tailhook TO %1$s'];
    CASE kind
    WHEN 'publisher' THEN
        statements := statements || ARRAY[
            'GRANT EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text, text, text) TO %1$s'];
    WHEN 'portal_minter' THEN
        statements := statements || ARRAY[
            'GRANT EXECUTE ON FUNCTION tailhook.portal_link(text, interval, boolean) TO %1$s'];
    WHEN 'endpoint_manager' THEN
        statements := statements || ARRAY[
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.endpoint_config TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.enable_endpoint(text) TO %1$s'];
    WHEN 'history_reader' THEN
        statements := statements || ARRAY[
            'GRANT SELECT ON tailhook.outbox, tailhook.deliveries, tailhook.attempts, tailhook.endpoint_config, tailhook.endpoint_stats, tailhook.delivery_log TO %1$s'];
    WHEN 'sidecar' THEN
        statements := statements || ARRAY[
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.outbox, tailhook.deliveries, tailhook.replicas TO %1$s',
            'GRANT SELECT, INSERT, DELETE ON tailhook.attempts TO %1$s',
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.schema_migrations, tailhook.endpoint_stats, tailhook.endpoint_config, tailhook.delivery_log, tailhook.capture_config, tailhook.captures, tailhook.api_tokens TO %1$s',
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.secret_retirements TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.lock_undispatched(bigint), tailhook.expand_captures(int, boolean), tailhook.emit_endpoint_event(text, bigint, jsonb), tailhook.operational_wanted(text, bigint), tailhook.event_type_matches(text[], text), tailhook.enable_endpoint(text), tailhook.retire_secrets(), tailhook.publish_with_id(uuid, text, jsonb, text, text), tailhook.set_portal_key(bytea) TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.partitions_prepare(interval, int), tailhook.partitions_drop(bigint, bigint), tailhook.partition_strays(), tailhook.event_ids_expire(int) TO %1$s'];
    ELSE
        RAISE EXCEPTION 'tailhook.grant_kind: unknown kind %', quote_literal(kind)
            USING ERRCODE = 'invalid_parameter_value';
    END CASE;
    FOREACH s IN ARRAY statements LOOP
        EXECUTE pg_catalog.format(s, role);
    END LOOP;
    INSERT INTO tailhook.role_grants (role_oid, kind) VALUES (role, kind) ON CONFLICT DO NOTHING;
END
$$;

-- tailhook step 31 partitions (68 of 69): outside a transaction
SELECT tailhook.regrant();

-- tailhook step 31 partitions (69 of 69): outside a transaction
-- The key head's trigger (sql/0009_key_heads.sql) finds the new head by
-- (id, event_at), its partition's key, so the update reads one partition
-- (pruned at run time), not every partition's primary key.
CREATE OR REPLACE FUNCTION tailhook.schedule_key_head() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE tailhook.deliveries d
       SET next_attempt_at = now()
     WHERE (d.id, d.event_at) = (SELECT h.id, h.event_at FROM tailhook.deliveries h
                                  WHERE h.endpoint_id = OLD.endpoint_id AND h.ordering_key = OLD.ordering_key
                                    AND h.status IN ('pending', 'retrying')
                                  ORDER BY h.outbox_id
                                  LIMIT 1)
       AND d.next_attempt_at IS NULL;
    RETURN NULL;
END
$$;

-- tailhook step 31 partitions (record): transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare$-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);$tailhook_prepare$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES (31, 'partitions')
        ON CONFLICT (version) DO NOTHING;
END
$tailhook_step$;
