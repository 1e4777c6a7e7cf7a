-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001::bigint);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
-- Names in the files resolve in pg_catalog only (also where no session
-- setting may be made: through a transaction-mode pooler, this transaction
-- is one server connection's), so no look-alike in another schema is built
-- into a default, constraint, index or view.
SET LOCAL search_path = pg_catalog, pg_temp;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
