-- tailhook schema, version 27: tokens for the JSON API (`/api/v1`), and
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
REVOKE EXECUTE ON FUNCTION tailhook.publish_with_id(uuid, text, jsonb, text, text) FROM PUBLIC;
