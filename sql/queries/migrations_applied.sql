SELECT version FROM tailhook.schema_migrations ORDER BY version
