-- tailhook schema, version 30: tenant portal links. Plain SQL, safe to re-run.
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
REVOKE EXECUTE ON FUNCTION tailhook.grant_portal_minter(regrole) FROM PUBLIC;
