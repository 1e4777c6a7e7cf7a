-- tailhook schema, version 21: roles with the least privilege each needs,
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
    tailhook.grant_sidecar(regrole), tailhook.regrant() FROM PUBLIC;
