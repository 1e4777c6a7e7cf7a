-- Before a file that runs outside a transaction: its IF EXISTS / IF NOT
-- EXISTS notices ("does not exist, skipping") are noise. Session-wide
-- (there is no transaction to scope it to); returns the level it replaces,
-- which migrations_restore_messages.sql puts back.
SELECT pg_catalog.current_setting('client_min_messages') AS previous,
       pg_catalog.set_config('client_min_messages', 'warning', false);
