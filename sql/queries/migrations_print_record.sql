-- tailhook step {version} {name} (record): transactional
DO $tailhook_step$
BEGIN
    EXECUTE $tailhook_prepare${prepare}$tailhook_prepare$;
    INSERT INTO tailhook.schema_migrations (version, name) VALUES ({version}, '{name}')
        ON CONFLICT (version) DO NOTHING;
END
$tailhook_step$;
