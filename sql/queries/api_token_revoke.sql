-- `tailhook token revoke`: by id, name or prefix; returns how many.
-- $1 id, name or prefix
SELECT tailhook.revoke_api_token($1::text)
