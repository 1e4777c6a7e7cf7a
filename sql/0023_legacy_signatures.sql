-- tailhook schema, version 23: a compatibility signature per endpoint beside
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
$$;
