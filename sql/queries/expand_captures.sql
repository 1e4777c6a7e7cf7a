-- Turns statements staged by change capture into outbox rows, oldest first,
-- up to $1 changed rows (see sql/0015_capture_staging.sql); returns how many
-- rows it expanded. Never waits: 0 at once when nothing is captured, nothing
-- is staged, or another replica is expanding (its outbox rows wake us).
SELECT tailhook.expand_captures($1::int, false)
