-- tailhook schema, version 10: the indexes on tailhook.deliveries that
-- versions 3, 6 and 7 used to build with a plain CREATE INDEX (which blocks
-- every write to the table for as long as the build takes on a large one),
-- and the one version 9's claims read,
-- built with CREATE INDEX CONCURRENTLY instead: upgrading never blocks writes.
-- A database that already has them valid is left as it is.
--
-- tailhook: outside a transaction
-- CREATE INDEX CONCURRENTLY cannot run in a transaction: `tailhook migrate`
-- runs this file's statements one at a time after committing the files
-- before it; another migration tool must do the same (psql -f does).
-- Every statement is safe to re-run, and to run while another migrator
-- runs this file.
--
-- tailhook: skip once tailhook.deliveries is partitioned
-- Version 31 partitions tailhook.deliveries, with these indexes on the
-- partitioned table; PostgreSQL builds no index CONCURRENTLY on one, so
-- once it is partitioned this file is skipped (`tailhook migrate`, and a
-- tool applying the printed script: each of its steps carries the line above).

-- An interrupted concurrent build (a cancel, a crash, a lost connection)
-- leaves an invalid index behind, which CREATE INDEX IF NOT EXISTS would
-- take for done: rename it out of the way (never one still being built),
-- drop it without blocking writes, then build the index again.
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_ordered_invalid;
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_finished_invalid;
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_succeeded_invalid;
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_failed_invalid;
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_keyed_scheduled_invalid;

DO $$
DECLARE
    i record;
BEGIN
    -- Outside a transaction, behind a transaction-mode pooler, no session
    -- setting pins the search_path: this block pins its own.
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    FOR i IN SELECT c.relname
               FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
              WHERE c.relnamespace = 'tailhook'::regnamespace
                AND c.relname IN ('deliveries_ordered', 'deliveries_finished', 'deliveries_succeeded', 'deliveries_failed',
                                  'deliveries_keyed_scheduled')
                AND NOT x.indisvalid
                AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
                                 WHERE p.relid = 'tailhook.deliveries'::regclass)
    LOOP
        EXECUTE format('ALTER INDEX tailhook.%I RENAME TO %I', i.relname, i.relname || '_invalid');
    END LOOP;
END
$$;

DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_ordered_invalid;
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_finished_invalid;
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_succeeded_invalid;
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_failed_invalid;
DROP INDEX CONCURRENTLY IF EXISTS tailhook.deliveries_keyed_scheduled_invalid;

-- The head of each key (its oldest unfinished delivery) in one index probe.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_ordered
    ON tailhook.deliveries (endpoint_id, ordering_key, outbox_id)
    WHERE status IN ('pending', 'retrying') AND ordering_key IS NOT NULL;

-- Finished deliveries by age, per status, for retention (see sql/queries/retention_deliveries.sql).
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_finished
    ON tailhook.deliveries (status, completed_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');

-- Finished deliveries by endpoint and completion time, one partial index per
-- outcome, for `tailhook status` (see 0007_status.sql).
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_succeeded
    ON tailhook.deliveries (endpoint_id, completed_at)
    WHERE status = 'succeeded';

CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_failed
    ON tailhook.deliveries (endpoint_id, completed_at)
    WHERE status = 'failed';

-- Keyed deliveries that are scheduled (see 0009_key_heads.sql): each key's
-- head, and the few left scheduled behind an older one. The due claim's check
-- that no other delivery of a key is being sent reads these, not the key's
-- whole backlog.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_keyed_scheduled
    ON tailhook.deliveries (endpoint_id, ordering_key)
    WHERE status IN ('pending', 'retrying') AND ordering_key IS NOT NULL AND next_attempt_at IS NOT NULL;

-- Done only when every one is valid: a concurrent migrator's build still
-- running makes this fail, and `tailhook migrate` waits for it and retries.
DO $$
DECLARE
    missing text;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    SELECT string_agg(n, ', ') INTO missing
      FROM unnest(ARRAY['deliveries_ordered', 'deliveries_finished', 'deliveries_succeeded', 'deliveries_failed',
                         'deliveries_keyed_scheduled']) AS n
     WHERE NOT EXISTS (SELECT 1 FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
                        WHERE c.relnamespace = 'tailhook'::regnamespace AND c.relname = n AND x.indisvalid);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'index not built yet: %', missing;
    END IF;
END
$$;
