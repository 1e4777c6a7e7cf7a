-- The API's bearer token: its scope and tenant, when the token is known,
-- not revoked and not expired. Found by its SHA-256 (unique index), so
-- nothing is compared character by character.
-- $1 the token's SHA-256 in hex
SELECT t.id, t.scope, t.tenant
  FROM tailhook.api_tokens t
 WHERE t.hash = pg_catalog.decode($1::text, 'hex')
   AND t.revoked_at IS NULL
   AND (t.expires_at IS NULL OR t.expires_at > now())
