-- The API's secret rotation: the new secret goes first (it signs from now
-- on), the older ones stay until the overlap ends (tailhook.retire_secrets
-- drops them then); at most 10 are kept. A rotation during an overlap keeps
-- the later end.
-- $1 name, $2 the token's tenant (NULL: any), $3 the new secret, $4 overlap in seconds
WITH rotated AS (
    UPDATE tailhook.endpoints e
       SET secrets = ARRAY[$3::text] || e.secrets[1:9], updated_at = now()
     WHERE e.name = $1::text AND ($2::text IS NULL OR e.tenant = $2::text)
    RETURNING e.id
), retiring AS (
    INSERT INTO tailhook.secret_retirements AS s (endpoint_id, keep, retire_at)
    SELECT id, 1, now() + pg_catalog.make_interval(secs => $4::int::float8) FROM rotated
    ON CONFLICT (endpoint_id) DO UPDATE
       SET keep = 1, retire_at = GREATEST(s.retire_at, EXCLUDED.retire_at)
    RETURNING retire_at
)
SELECT to_char(retire_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') FROM retiring
