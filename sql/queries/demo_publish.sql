-- `tailhook demo`: publishes one event the way an application does.
-- $1 event type, $2 payload (JSON text)
SELECT tailhook.publish($1::text, $2::text::jsonb)::text
