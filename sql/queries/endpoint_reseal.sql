-- Store an endpoint's secrets and header values sealed under the first key
-- of secrets.keys, only if they are still the values read: a change made
-- meanwhile (with SQL, or by another replica) wins, and the next reload
-- looks again. A row locked right now is skipped, never waited for.
-- Returns the id when written.
-- $1 id, $2 secrets as read, $3 headers as read (JSON text),
-- $4 secrets to store, $5 headers to store (JSON text),
-- $6 legacy_secret as read, $7 legacy_secret to store,
-- $8 tls_client_key as read, $9 tls_client_key to store
UPDATE tailhook.endpoints e
   SET secrets = $4::text[], headers = $5::text::jsonb, legacy_secret = $7::text, tls_client_key = $9::text
 WHERE e.id = $1::bigint
   AND e.secrets IS NOT DISTINCT FROM $2::text[]
   AND e.headers = $3::text::jsonb
   AND e.legacy_secret IS NOT DISTINCT FROM $6::text
   AND e.tls_client_key IS NOT DISTINCT FROM $8::text
   AND e.id IN (SELECT l.id FROM tailhook.endpoints l WHERE l.id = $1::bigint FOR NO KEY UPDATE SKIP LOCKED)
RETURNING e.id
