-- Whether an index is being built on one of tailhook's tables right now (by
-- another migrator running a file outside a transaction).
SELECT EXISTS (
    SELECT 1 FROM pg_stat_progress_create_index p
      JOIN pg_class c ON c.oid = p.relid
     WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND c.relnamespace = to_regnamespace('tailhook')::oid
)
