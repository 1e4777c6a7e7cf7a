-- Serialise concurrent migrators (released at commit), then make sure the
-- version table exists. 7_368_001 is tailhook's advisory lock key.
SELECT pg_advisory_xact_lock(7368001);
-- The files' IF NOT EXISTS notices ("already exists, skipping") are noise.
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tailhook;
CREATE TABLE IF NOT EXISTS tailhook.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
