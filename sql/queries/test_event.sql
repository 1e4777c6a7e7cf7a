-- The identity of a `tailhook send-test` event, made as the outbox makes them:
-- a fresh event id and the current time in the envelope's timestamp format.
SELECT gen_random_uuid()::text AS event_id,
       to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at
