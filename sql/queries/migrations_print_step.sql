-- tailhook step {version} {name}: transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare${prepare}$tailhook_prepare$;
    IF EXISTS (SELECT FROM tailhook.schema_migrations WHERE version = {version}) THEN
        RETURN;
    END IF;
    EXECUTE $tailhook_migration${sql}$tailhook_migration$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES ({version}, '{name}');
END
$tailhook_step$;
