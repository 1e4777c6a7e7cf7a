-- The API's publish: the event id is the idempotency key; `false` when an
-- event with that id exists already (nothing inserted).
-- $1 event id, $2 type, $3 payload (JSON text), $4 tenant, $5 ordering key
SELECT tailhook.publish_with_id($1::text::uuid, $2::text, $3::text::jsonb, $4::text, $5::text)
