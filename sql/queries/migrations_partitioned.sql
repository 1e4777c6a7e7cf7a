-- Whether tailhook.deliveries is a partitioned table (version 31): version
-- 10's concurrent index builds are then skipped (src/db/migrate.rs).
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                WHERE c.oid = pg_catalog.to_regclass('tailhook.deliveries') AND c.relkind = 'p')
