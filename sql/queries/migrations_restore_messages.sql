-- After a file that ran outside a transaction: the session's message level
-- as it was before migrations_quiet.sql.
SELECT pg_catalog.set_config('client_min_messages', $1::text, false);
