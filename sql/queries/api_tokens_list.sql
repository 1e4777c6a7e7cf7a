-- `tailhook token list`: every token, without its hash.
SELECT t.id, t.prefix, t.name, t.scope, t.tenant,
       to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS created_at,
       to_char(t.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS expires_at,
       to_char(t.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS revoked_at
  FROM tailhook.api_tokens t
 ORDER BY t.id
