-- tailhook schema, version 26: client certificates and private CAs per
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
COMMENT ON CONSTRAINT endpoints_tls_ca_bundle_valid ON tailhook.endpoints IS 'tls_ca_bundle must be PEM CERTIFICATE blocks, at most 524288 bytes';
