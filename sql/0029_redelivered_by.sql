-- tailhook schema, version 29: who asked for a delivery to be sent again
-- (issue 25). Plain SQL, safe to re-run and to run while replicas work.
--
-- deliveries.redelivered_by, redelivered_at: the latest manual redelivery
-- (`tailhook redeliver`, the console's Redeliver, the API's redeliver) and
-- who asked, as the requester describes itself: `cli (user alice)`,
-- `console (admin token) from 10.0.0.5`, `api token #7`; NULL: never
-- redelivered. At most 200 characters, never a secret.
-- attempts.requested_by: the delivery's redelivered_by when the attempt was
-- made, so the attempts a redelivery brings are marked with who asked; NULL
-- for attempts of a delivery never redelivered.
ALTER TABLE tailhook.deliveries ADD COLUMN IF NOT EXISTS redelivered_by text;
ALTER TABLE tailhook.deliveries ADD COLUMN IF NOT EXISTS redelivered_at timestamptz;
ALTER TABLE tailhook.attempts ADD COLUMN IF NOT EXISTS requested_by text;
