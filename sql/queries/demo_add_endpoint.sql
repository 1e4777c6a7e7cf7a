-- `tailhook demo`: an endpoint receiving every event, signed with one secret.
-- $1 name, $2 url, $3 secret
INSERT INTO tailhook.endpoints (name, url, secrets)
VALUES ($1::text, $2::text, ARRAY[$3::text])
