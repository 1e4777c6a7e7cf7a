-- A config-file endpoint's stored secrets and header values, so values
-- unchanged since the last start keep their sealed bytes.
-- $1 name
SELECT secrets, headers::text, legacy_secret, tls_client_key FROM tailhook.endpoints WHERE name = $1::text
