-- tailhook schema, version 31: tailhook.outbox, tailhook.deliveries and
-- tailhook.attempts become range-partitioned by the event's creation time
-- (issue 23), so that retention drops whole partitions instead of deleting
-- rows one by one.
--
-- * outbox is partitioned by created_at; deliveries and attempts get a new
--   column event_at, the event's created_at, copied at fan-out and at each
--   attempt's insert, and are partitioned by it: an event, its deliveries
--   and their attempts land in partitions of the same period.
-- * A unique index on a partitioned table must contain the partition key:
--   the primary keys become (id, created_at) and (id, event_at), and the
--   unique (outbox_id, endpoint_id) becomes (outbox_id, endpoint_id,
--   event_at), the same thing since outbox_id fixes event_at. event_id stays
--   unique across partitions through tailhook.event_ids (its primary key,
--   filled by a statement trigger; itself partitioned by the id, its periods
--   the outbox's: see below).
-- * Each table gets a DEFAULT partition (<table>_default) that takes any row
--   no range partition covers; the sidecar creates partitions ahead and
--   moves such rows out (sql/queries/partitions_prepare.sql). deliveries
--   and attempts also get an undated partition (<table>_undated) for rows
--   of no period (see partition_undated).
--
-- The conversion of an existing installation never blocks writers for long:
-- the old table becomes the first partition (<table>_legacy, from MINVALUE
-- to a cutoff an hour or two ahead), attached after a CHECK constraint
-- added NOT VALID and validated under SHARE UPDATE EXCLUSIVE (writes go on);
-- the keys the partitioned table needs are then built on it CONCURRENTLY
-- and attached. The one step taking ACCESS EXCLUSIVE for more than an
-- instant (the swap, tailhook.partition_convert_swap) is catalog-only,
-- tried under lock_timeout = 200ms and retried. An empty table (a fresh
-- install) is replaced and stays behind, empty and detached, so that the
-- statements naming it run again harmlessly.
--
-- Version 10 cannot run again once this ran: PostgreSQL builds no index
-- CONCURRENTLY on a partitioned table. Its file says so (`-- tailhook: skip
-- once tailhook.deliveries is partitioned`): `tailhook migrate`, the printed
-- script's tools and the by-hand re-runs skip it then (its indexes are the
-- partitioned table's); a migrator stops running a file another recorded.
--
-- tailhook: outside a transaction
-- CREATE INDEX CONCURRENTLY cannot run in a transaction: `tailhook migrate`
-- runs this file's statements one at a time; another migration tool must do
-- the same (psql -f does). Every statement is idempotent and checks the
-- state it finds: an interrupted conversion resumes where it stopped when
-- `tailhook migrate` runs again.

-- Where a conversion stands: the cutoff of each table's legacy partition.
CREATE TABLE IF NOT EXISTS tailhook.partition_legacy (
    tbl    text PRIMARY KEY,
    cutoff timestamptz NOT NULL
);

-- Runs one DDL statement under a short lock_timeout, retried (up to about a
-- minute) while the lock is not granted: a writer waits at most 200 ms for it.
CREATE OR REPLACE FUNCTION tailhook.partition_ddl(statements text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tries int := 0;
    s text;
BEGIN
    LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '200ms', true);
            FOREACH s IN ARRAY statements LOOP
                EXECUTE s;
            END LOOP;
            PERFORM set_config('lock_timeout', '0', true);
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            tries := tries + 1;
            IF tries >= 300 THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(0.05 + random() * 0.15);
        END;
    END LOOP;
END
$$;

-- The table's partition key column.
CREATE OR REPLACE FUNCTION tailhook.partition_key(tbl text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE tbl WHEN 'outbox' THEN 'created_at' ELSE 'event_at' END
$$;

-- Whether tailhook.<tbl> is already partitioned.
CREATE OR REPLACE FUNCTION tailhook.partitioned(tbl text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = to_regclass('tailhook.' || tbl) AND c.relkind = 'p')
$$;

-- Step 1: deliveries and attempts get event_at. Existing rows read
-- '-infinity' (a constant default: no rewrite, catalog only), and so does a
-- row written without it: tailhook's fan-out and result writes set it; a
-- row inserted by hand belongs to no period, lives in the undated partition
-- (see partition_undated) and is retained row by row as before.
CREATE OR REPLACE FUNCTION tailhook.partition_convert_column(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF tbl = 'outbox' OR tailhook.partitioned(tbl) OR EXISTS (
        SELECT 1 FROM pg_attribute WHERE attrelid = ('tailhook.' || tbl)::regclass AND attname = 'event_at' AND NOT attisdropped) THEN
        RETURN;
    END IF;
    PERFORM tailhook.partition_ddl(ARRAY[
        format($s$ALTER TABLE tailhook.%I ADD COLUMN event_at timestamptz NOT NULL DEFAULT '-infinity'$s$, tbl)]);
END
$$;

SELECT tailhook.partition_convert_column('deliveries');
SELECT tailhook.partition_convert_column('attempts');

-- Step 2: the legacy partition's bound, as a CHECK constraint added NOT
-- VALID (an instant under ACCESS EXCLUSIVE) and validated separately below
-- (a scan under SHARE UPDATE EXCLUSIVE: writes go on). The cutoff is the
-- next hour boundary at least an hour ahead; a conversion resumed after it
-- came within 30 minutes gets a later one (a row past the cutoff would fail
-- the CHECK).
CREATE OR REPLACE FUNCTION tailhook.partition_convert_check(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    key text := tailhook.partition_key(tbl);
    cut timestamptz;
    old timestamptz;
BEGIN
    IF tailhook.partitioned(tbl) THEN
        RETURN;
    END IF;
    SELECT p.cutoff INTO old FROM tailhook.partition_legacy p WHERE p.tbl = partition_convert_check.tbl;
    IF old IS NOT NULL AND old > now() + interval '30 minutes' AND EXISTS (
        SELECT 1 FROM pg_constraint WHERE conrelid = ('tailhook.' || tbl)::regclass AND conname = tbl || '_legacy_range') THEN
        RETURN;
    END IF;
    -- One cutoff for the three tables (an event and its deliveries share a period).
    SELECT max(p.cutoff) INTO cut FROM tailhook.partition_legacy p WHERE p.cutoff > now() + interval '30 minutes';
    cut := coalesce(cut, date_trunc('hour', now()) + interval '2 hours');
    PERFORM tailhook.partition_ddl(ARRAY[
        format('ALTER TABLE tailhook.%I DROP CONSTRAINT IF EXISTS %I', tbl, tbl || '_legacy_range'),
        format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I CHECK (%I IS NOT NULL AND %I < %L) NOT VALID',
               tbl, tbl || '_legacy_range', key, key, cut)]);
    INSERT INTO tailhook.partition_legacy (tbl, cutoff) VALUES (partition_convert_check.tbl, cut)
        ON CONFLICT ON CONSTRAINT partition_legacy_pkey DO UPDATE SET cutoff = excluded.cutoff;
END
$$;

CREATE OR REPLACE FUNCTION tailhook.partition_convert_validate(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT tailhook.partitioned(tbl) AND EXISTS (
        SELECT 1 FROM pg_constraint WHERE conrelid = ('tailhook.' || tbl)::regclass
           AND conname = tbl || '_legacy_range' AND NOT convalidated) THEN
        EXECUTE format('ALTER TABLE tailhook.%I VALIDATE CONSTRAINT %I', tbl, tbl || '_legacy_range');
    END IF;
END
$$;

SELECT tailhook.partition_convert_check('outbox');
SELECT tailhook.partition_convert_validate('outbox');
SELECT tailhook.partition_convert_check('deliveries');
SELECT tailhook.partition_convert_validate('deliveries');
SELECT tailhook.partition_convert_check('attempts');
SELECT tailhook.partition_convert_validate('attempts');

-- The range partitions of tailhook.<tbl> (not the DEFAULT one): name and
-- bounds (lo NULL: from MINVALUE).
CREATE OR REPLACE FUNCTION tailhook.partition_bounds(tbl text)
RETURNS TABLE (name text, lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.relname::text,
           CASE WHEN b.e LIKE 'FOR VALUES FROM (MINVALUE)%' THEN NULL
                ELSE substring(b.e FROM 'FROM \(''([^'']+)''\)')::timestamptz END,
           substring(b.e FROM 'TO \(''([^'']+)''\)')::timestamptz
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
     CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS e) b
     WHERE i.inhparent = to_regclass('tailhook.' || tbl) AND b.e <> 'DEFAULT'
       AND c.relname::text <> tbl || '_undated'
$$;

-- deliveries and attempts have an "undated" partition, from MINVALUE to
-- 1970, for their rows without a period: written by hand without event_at
-- ('-infinity'), or kept when their period was dropped. Not a period: never
-- dropped, retained row by row (it keeps them out of the DEFAULT partition,
-- which PostgreSQL scans each time a partition is attached). Created when
-- the range is free (at once on a fresh install; once the legacy partition
-- of a converted one is gone).
CREATE OR REPLACE FUNCTION tailhook.partition_undated(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part text := tbl || '_undated';
BEGIN
    IF tbl = 'outbox' OR to_regclass('tailhook.' || part) IS NOT NULL OR EXISTS (
        SELECT 1 FROM tailhook.partition_bounds(tbl) b WHERE b.lo IS NULL) THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE tailhook.%I (LIKE tailhook.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)', part, tbl);
    EXECUTE format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I CHECK (event_at IS NOT NULL AND event_at < %L)',
                   part, part || '_range', '1970-01-01 00:00:00+00');
    EXECUTE format('ALTER TABLE tailhook.%I ATTACH PARTITION tailhook.%I FOR VALUES FROM (MINVALUE) TO (%L)',
                   tbl, part, '1970-01-01 00:00:00+00');
    PERFORM tailhook.partition_name_indexes(tbl, part);
END
$$;

-- Names a partition's indexes after the partitioned table's: index
-- <tbl>_<what> becomes <partition>_<what> (plans then read as the
-- unpartitioned ones did, partition by partition).
CREATE OR REPLACE FUNCTION tailhook.partition_name_indexes(tbl text, part text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    i record;
BEGIN
    FOR i IN SELECT c.relname AS child, p.relname AS parent
               FROM pg_index x
               JOIN pg_class c ON c.oid = x.indexrelid
               JOIN pg_inherits h ON h.inhrelid = x.indexrelid
               JOIN pg_class p ON p.oid = h.inhparent
              WHERE x.indrelid = ('tailhook.' || part)::regclass
                AND p.relname LIKE tbl || '\_%'
                AND c.relname <> part || substr(p.relname, length(tbl) + 1) LOOP
        EXECUTE format('ALTER INDEX tailhook.%I RENAME TO %I', i.child, part || substr(i.parent, length(tbl) + 1));
    END LOOP;
END
$$;

-- Step 3: the swap, one short transaction per table under ACCESS EXCLUSIVE
-- (catalog work only): the old table is renamed <tbl>_legacy, the
-- partitioned table is created under the old name with the same columns,
-- defaults, constraints, indexes (by name), triggers, privileges and an
-- identity continuing the old one's sequence; the old table is attached as
-- the partition from MINVALUE to the cutoff before the new keys exist (its
-- validated CHECK spares the scan, its indexes are attached, not built), or
-- left detached when empty; the DEFAULT partition is created; the new keys
-- are added to the partitioned table only (valid once step 4 attached the
-- old table's); views reading the table are redefined on the new one.
CREATE OR REPLACE FUNCTION tailhook.partition_convert_swap(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tries int := 0;
BEGIN
    LOOP
        EXIT WHEN tailhook.partitioned(tbl);
        BEGIN
            PERFORM set_config('lock_timeout', '200ms', true);
            EXECUTE format('LOCK TABLE tailhook.%I IN ACCESS EXCLUSIVE MODE', tbl);
            PERFORM set_config('lock_timeout', '0', true);
            PERFORM tailhook.partition_convert_swap_locked(tbl);
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            tries := tries + 1;
            IF tries >= 300 THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(0.05 + random() * 0.15);
        END;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION tailhook.partition_convert_swap_locked(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    key text := tailhook.partition_key(tbl);
    legacy text := tbl || '_legacy';
    old regclass := ('tailhook.' || tbl)::regclass;
    cut timestamptz;
    empty boolean;
    views text[];
    triggers text[];
    grants text[];
    s text;
    i record;
    last bigint;
BEGIN
    SELECT p.cutoff INTO cut FROM tailhook.partition_legacy p WHERE p.tbl = partition_convert_swap_locked.tbl;
    EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM tailhook.%I)', tbl) INTO empty;
    -- What is redefined on the new table: views reading it, its triggers,
    -- its table and column privileges.
    SELECT coalesce(array_agg(format('CREATE OR REPLACE VIEW %s AS %s', v.oid::regclass, pg_get_viewdef(v.oid)) ORDER BY v.oid), '{}')
      INTO views
      FROM pg_class v
     WHERE v.relkind = 'v' AND v.oid IN (
           SELECT r.ev_class FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
            WHERE d.refobjid = old);
    SELECT coalesce(array_agg(pg_get_triggerdef(t.oid) ORDER BY t.tgname), '{}') INTO triggers
      FROM pg_trigger t WHERE t.tgrelid = old AND NOT t.tgisinternal;
    SELECT coalesce(array_agg(format('GRANT %s ON tailhook.%I TO %s', a.privilege_type, tbl,
                                     CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)), '{}')
      INTO grants
      FROM pg_class c, aclexplode(c.relacl) a
     WHERE c.oid = old AND a.grantee <> c.relowner;
    SELECT grants || coalesce(array_agg(format('GRANT %s (%I) ON tailhook.%I TO %s', a.privilege_type, t.attname, tbl,
                                     CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)), '{}')
      INTO grants
      FROM pg_attribute t, aclexplode(t.attacl) a
     WHERE t.attrelid = old AND t.attacl IS NOT NULL AND NOT t.attisdropped;

    FOR i IN SELECT t.tgname FROM pg_trigger t WHERE t.tgrelid = old AND NOT t.tgisinternal LOOP
        EXECUTE format('DROP TRIGGER %I ON tailhook.%I', i.tgname, tbl);
    END LOOP;
    EXECUTE format('ALTER TABLE tailhook.%I RENAME TO %I', tbl, legacy);
    EXECUTE format('ALTER SEQUENCE tailhook.%I RENAME TO %I', tbl || '_id_seq', legacy || '_id_seq');
    -- The old table's keys and indexes step aside (their names go to the
    -- new table's); its keys stay until the new ones are built (step 4).
    FOR i IN SELECT c.conname FROM pg_constraint c WHERE c.conrelid = old AND c.contype IN ('p', 'u') LOOP
        EXECUTE format('ALTER TABLE tailhook.%I RENAME CONSTRAINT %I TO %I', legacy, i.conname, 'legacy_' || i.conname);
    END LOOP;
    FOR i IN SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
              WHERE x.indrelid = old AND c.relname NOT LIKE 'legacy\_%' LOOP
        EXECUTE format('ALTER INDEX tailhook.%I RENAME TO %I', i.relname, 'legacy_' || i.relname);
    END LOOP;

    EXECUTE format('CREATE TABLE tailhook.%I (LIKE tailhook.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE (%I)',
                   tbl, legacy, key);
    EXECUTE format('ALTER TABLE tailhook.%I DROP CONSTRAINT %I', tbl, tbl || '_legacy_range');
    -- LIKE copies a NOT VALID check as a valid one, which the old table's
    -- could not be attached under: those are added NOT VALID again.
    FOR i IN SELECT c.conname, pg_get_constraintdef(c.oid) AS def, obj_description(c.oid, 'pg_constraint') AS note
               FROM pg_constraint c
              WHERE c.conrelid = old AND c.contype = 'c' AND NOT c.convalidated
                AND c.conname <> tbl || '_legacy_range' LOOP
        EXECUTE format('ALTER TABLE tailhook.%I DROP CONSTRAINT %I', tbl, i.conname);
        EXECUTE format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I %s', tbl, i.conname, i.def);
        IF i.note IS NOT NULL THEN
            EXECUTE format('COMMENT ON CONSTRAINT %I ON tailhook.%I IS %L', i.conname, tbl, i.note);
        END IF;
    END LOOP;
    SELECT s.last_value INTO last FROM pg_sequences s WHERE s.schemaname = 'tailhook' AND s.sequencename = legacy || '_id_seq';
    IF last IS NOT NULL THEN
        PERFORM setval(format('tailhook.%I', tbl || '_id_seq'), last);
    END IF;

    -- The indexes the old table has already (attached as they are).
    FOR i IN SELECT c.relname, pg_get_indexdef(x.indexrelid) AS def FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
              WHERE x.indrelid = old AND NOT x.indisunique AND c.relname LIKE 'legacy\_%' LOOP
        EXECUTE replace(replace(i.def, 'INDEX ' || i.relname || ' ', 'INDEX ' || substr(i.relname, 8) || ' '),
                        'ON tailhook.' || legacy || ' ', 'ON tailhook.' || tbl || ' ');
    END LOOP;
    IF NOT empty THEN
        -- Its validated CHECK spares the scan; nothing is built.
        EXECUTE format('ALTER TABLE tailhook.%I ATTACH PARTITION tailhook.%I FOR VALUES FROM (MINVALUE) TO (%L)', tbl, legacy, cut);
    END IF;
    EXECUTE format('CREATE TABLE tailhook.%I PARTITION OF tailhook.%I DEFAULT', tbl || '_default', tbl);
    PERFORM tailhook.partition_name_indexes(tbl, tbl || '_default');
    -- The new keys, on the partitioned table only: valid once each
    -- partition's index is attached (the DEFAULT partition's now, the old
    -- table's after its concurrent build, step 4).
    IF tbl = 'outbox' THEN
        EXECUTE 'ALTER TABLE ONLY tailhook.outbox ADD CONSTRAINT outbox_pkey PRIMARY KEY (id, created_at)';
        EXECUTE 'CREATE INDEX outbox_event_id ON ONLY tailhook.outbox (event_id)';
        EXECUTE 'ALTER TABLE tailhook.outbox_default ADD CONSTRAINT outbox_default_pkey PRIMARY KEY (id, created_at)';
        EXECUTE 'CREATE INDEX outbox_default_event_id ON tailhook.outbox_default (event_id)';
        EXECUTE 'ALTER INDEX tailhook.outbox_pkey ATTACH PARTITION tailhook.outbox_default_pkey';
        EXECUTE 'ALTER INDEX tailhook.outbox_event_id ATTACH PARTITION tailhook.outbox_default_event_id';
    ELSIF tbl = 'deliveries' THEN
        EXECUTE 'ALTER TABLE ONLY tailhook.deliveries ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id, event_at)';
        EXECUTE 'ALTER TABLE ONLY tailhook.deliveries ADD CONSTRAINT deliveries_outbox_endpoint_unique UNIQUE (outbox_id, endpoint_id, event_at)';
        EXECUTE 'ALTER TABLE tailhook.deliveries_default ADD CONSTRAINT deliveries_default_pkey PRIMARY KEY (id, event_at)';
        EXECUTE 'ALTER TABLE tailhook.deliveries_default ADD CONSTRAINT deliveries_default_outbox_endpoint_unique UNIQUE (outbox_id, endpoint_id, event_at)';
        EXECUTE 'ALTER INDEX tailhook.deliveries_pkey ATTACH PARTITION tailhook.deliveries_default_pkey';
        EXECUTE 'ALTER INDEX tailhook.deliveries_outbox_endpoint_unique ATTACH PARTITION tailhook.deliveries_default_outbox_endpoint_unique';
    ELSE
        EXECUTE 'ALTER TABLE ONLY tailhook.attempts ADD CONSTRAINT attempts_pkey PRIMARY KEY (id, event_at)';
        EXECUTE 'ALTER TABLE tailhook.attempts_default ADD CONSTRAINT attempts_default_pkey PRIMARY KEY (id, event_at)';
        EXECUTE 'ALTER INDEX tailhook.attempts_pkey ATTACH PARTITION tailhook.attempts_default_pkey';
    END IF;
    FOREACH s IN ARRAY views LOOP
        EXECUTE s;
    END LOOP;
    FOREACH s IN ARRAY triggers LOOP
        EXECUTE s;
    END LOOP;
    FOREACH s IN ARRAY grants LOOP
        EXECUTE s;
    END LOOP;
    IF empty THEN
        PERFORM tailhook.partition_undated(tbl);
        -- A fresh install: the old table stays behind, empty and detached,
        -- so that step 4's statements (which name it) run again harmlessly.
        EXECUTE format('ALTER TABLE tailhook.%I DROP CONSTRAINT %I', legacy, tbl || '_legacy_range');
        DELETE FROM tailhook.partition_legacy p WHERE p.tbl = partition_convert_swap_locked.tbl;
    END IF;
END
$$;

SELECT tailhook.partition_convert_swap('outbox');
SELECT tailhook.partition_convert_swap('deliveries');
SELECT tailhook.partition_convert_swap('attempts');

-- Step 4: the new keys' indexes on the old table, built without blocking
-- writes, then attached: the partitioned table's keys become valid. Until
-- then the old table keeps its own keys (renamed legacy_*).
-- An interrupted concurrent build leaves an invalid index behind: dropped
-- first (under a short lock_timeout) so that the build runs again.
CREATE OR REPLACE FUNCTION tailhook.partition_drop_invalid() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    i record;
BEGIN
    FOR i IN SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
              WHERE c.relnamespace = 'tailhook'::regnamespace AND NOT x.indisvalid
                AND c.relname IN ('outbox_legacy_key', 'outbox_legacy_event_id', 'deliveries_legacy_key',
                                  'deliveries_legacy_unique', 'attempts_legacy_key')
                AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = x.indexrelid)
    LOOP
        PERFORM tailhook.partition_ddl(ARRAY[format('DROP INDEX tailhook.%I', i.relname)]);
    END LOOP;
END
$$;
SELECT tailhook.partition_drop_invalid();

CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS outbox_legacy_key ON tailhook.outbox_legacy (id, created_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_legacy_event_id ON tailhook.outbox_legacy (event_id);
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS deliveries_legacy_key ON tailhook.deliveries_legacy (id, event_at);
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS deliveries_legacy_unique ON tailhook.deliveries_legacy (outbox_id, endpoint_id, event_at);
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS attempts_legacy_key ON tailhook.attempts_legacy (id, event_at);

-- The old table's keys become the new ones' (one short transaction under
-- lock_timeout, retried): its own keys are dropped, the built indexes made
-- its keys and attached to the partitioned table's.
CREATE OR REPLACE FUNCTION tailhook.partition_convert_keys(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    legacy text := tbl || '_legacy';
    statements text[] := '{}';
    i record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = to_regclass('tailhook.' || legacy)) OR NOT EXISTS (
        SELECT 1 FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
         WHERE c.relname = tbl || '_pkey' AND c.relnamespace = 'tailhook'::regnamespace AND NOT x.indisvalid) THEN
        RETURN;
    END IF;
    FOR i IN SELECT c.conname FROM pg_constraint c
              WHERE c.conrelid = ('tailhook.' || legacy)::regclass AND c.contype IN ('p', 'u') AND c.conname LIKE 'legacy\_%' LOOP
        statements := statements || format('ALTER TABLE tailhook.%I DROP CONSTRAINT %I', legacy, i.conname);
    END LOOP;
    statements := statements
        || format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I PRIMARY KEY USING INDEX %I', legacy, legacy || '_key', legacy || '_key')
        || format('ALTER INDEX tailhook.%I ATTACH PARTITION tailhook.%I', tbl || '_pkey', legacy || '_key');
    IF tbl = 'outbox' THEN
        statements := statements || 'ALTER INDEX tailhook.outbox_event_id ATTACH PARTITION tailhook.outbox_legacy_event_id'::text;
    ELSIF tbl = 'deliveries' THEN
        statements := statements
            || 'ALTER TABLE tailhook.deliveries_legacy ADD CONSTRAINT deliveries_legacy_unique UNIQUE USING INDEX deliveries_legacy_unique'::text
            || 'ALTER INDEX tailhook.deliveries_outbox_endpoint_unique ATTACH PARTITION tailhook.deliveries_legacy_unique'::text;
    END IF;
    PERFORM tailhook.partition_ddl(statements);
END
$$;

SELECT tailhook.partition_convert_keys('outbox');
SELECT tailhook.partition_convert_keys('deliveries');
SELECT tailhook.partition_convert_keys('attempts');

-- event_id stays unique across partitions through a narrow table,
-- tailhook.event_ids (event_id PRIMARY KEY, created_at), which every INSERT
-- into the outbox fills from the same statement (a statement trigger over
-- its new rows). Its primary key is a real unique index: a concurrent
-- insert of the same id waits for the first writer and fails as soon as it
-- commits, at every isolation level (the advisory locks and lookups it
-- replaces were right under READ COMMITTED only), and it costs one index
-- insertion per event instead of a lookup in every partition. A unique
-- violation names the key of the partition holding the id:
-- outbox_event_id_key_<partition suffix> (the outbox's unique constraint
-- was outbox_event_id_key before partitioning).
--
-- event_ids is itself partitioned, by range of event_id, so that retention
-- drops the ids of an old period with it instead of deleting them: tailhook's
-- default ids are UUIDv7, whose first 48 bits are the Unix time in
-- milliseconds (sql/0011_event_id_v7.sql), so an outbox period [lo, hi) has
-- an event_ids partition event_ids_p<suffix> from uuid_at(lo) to uuid_at(hi)
-- (created and dropped with the outbox's). Ids outside every period (random
-- version 4 ids a publisher sets, ids far from their event's time, the ids
-- of events kept past their period) go to the DEFAULT partition
-- event_ids_default, itself partitioned by event_id in fixed chunks (before
-- 2020, one per calendar year 2020-2039, from 2040), each with a CHECK
-- constraint of its bounds: attaching a new period partition makes
-- PostgreSQL scan the DEFAULT partition for rows of the new range, and the
-- CHECK lets it skip every chunk but the one holding the new range (without
-- it, every chunk is scanned: the partition constraint alone does not count
-- as proof). Random version 4 ids fall in the before-2020 and from-2040
-- chunks (their first 48 bits are a time 0 to 8,900 years after 1970), never
-- scanned.
--
-- A row leaves with its event: a DELETE or TRUNCATE of the outbox removes it
-- (triggers below); a dropped period's partition goes with the outbox's
-- (partitions_drop puts back first the ids in it of the events that live
-- on); the ids in the DEFAULT chunks of a dropped period's events are
-- removed afterwards in batches by retention
-- (sql/queries/retention_event_ids.sql, through the BRIN index on
-- created_at): only ids that are not tailhook's own pay row deletes.

-- The smallest UUIDv7 of the millisecond of `t`: the Unix time in ms as 48
-- bits (12 hex digits), then zeros.
CREATE OR REPLACE FUNCTION tailhook.uuid_at(t timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (lpad(to_hex(greatest(0, floor(extract(epoch FROM t) * 1000))::bigint), 12, '0') || '00000000000000000000')::uuid
$$;

CREATE TABLE IF NOT EXISTS tailhook.event_ids (
    event_id   uuid NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT outbox_event_id_key PRIMARY KEY (event_id)
) PARTITION BY RANGE (event_id);
REVOKE ALL ON tailhook.event_ids FROM PUBLIC;
CREATE TABLE IF NOT EXISTS tailhook.event_ids_default PARTITION OF tailhook.event_ids DEFAULT PARTITION BY RANGE (event_id);
-- Read by created_at: the DEFAULT chunks by event_ids_expire, a period's
-- partition by partitions_drop for its ids whose event is not of the period
-- (an insert into a range not summarized yet costs a look at the revmap).
CREATE INDEX IF NOT EXISTS event_ids_created_at ON tailhook.event_ids USING brin (created_at);

-- A partition of event_ids' key is named outbox_event_id_key_<suffix>
-- (event_ids_p20261207_000000: outbox_event_id_key_p20261207_000000), the
-- name a unique violation reports.
CREATE OR REPLACE FUNCTION tailhook.event_ids_name_key(part text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    i record;
    name text := 'outbox_event_id_key' || substr(part, length('event_ids') + 1);
BEGIN
    FOR i IN SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
              WHERE x.indrelid = ('tailhook.' || part)::regclass AND x.indisprimary AND c.relname <> name LOOP
        EXECUTE format('ALTER INDEX tailhook.%I RENAME TO %I', i.relname, name);
    END LOOP;
END
$$;

-- The DEFAULT partition's chunks: event_ids_y_early (before 2020),
-- event_ids_y2020 .. event_ids_y2039, event_ids_y_late (from 2040), each with
-- its bounds as a CHECK constraint (see above).
CREATE OR REPLACE FUNCTION tailhook.event_ids_chunks() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part text;
    lo uuid;
    hi uuid;
BEGIN
    FOR y IN 2019..2040 LOOP
        part := CASE y WHEN 2019 THEN 'event_ids_y_early' WHEN 2040 THEN 'event_ids_y_late' ELSE 'event_ids_y' || y END;
        CONTINUE WHEN to_regclass('tailhook.' || part) IS NOT NULL;
        lo := CASE WHEN y > 2019 THEN tailhook.uuid_at(make_timestamptz(y, 1, 1, 0, 0, 0, 'UTC')) END;
        hi := CASE WHEN y < 2040 THEN tailhook.uuid_at(make_timestamptz(y + 1, 1, 1, 0, 0, 0, 'UTC')) END;
        EXECUTE format('CREATE TABLE tailhook.%I (LIKE tailhook.event_ids INCLUDING DEFAULTS INCLUDING STORAGE)', part);
        EXECUTE format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I CHECK (%s)', part, part || '_range',
                       concat_ws(' AND ', 'event_id IS NOT NULL', format('event_id >= %L', lo), format('event_id < %L', hi)));
        EXECUTE format('ALTER TABLE tailhook.event_ids_default ATTACH PARTITION tailhook.%I FOR VALUES FROM (%s) TO (%s)', part,
                       coalesce(quote_literal(lo), 'MINVALUE'), coalesce(quote_literal(hi), 'MAXVALUE'));
        PERFORM tailhook.event_ids_name_key(part);
    END LOOP;
    PERFORM tailhook.event_ids_name_key('event_ids_default');
END
$$;
SELECT tailhook.event_ids_chunks();

-- Creates event_ids' partition `part` of the outbox period [lo, hi) (called
-- by partitions_prepare right after the outbox's, under the outbox's lock:
-- no writer inserts ids meanwhile). Ids of that range already in the
-- DEFAULT partition (a publisher's id from the future, ids written before
-- the first period was prepared) are moved into it first, the table locked
-- against readers too (as partitions_prepare does for the outbox): the
-- ATTACH would fail on them. The ATTACH scans the one chunk of the range
-- (see above). Returns the ids moved.
CREATE OR REPLACE FUNCTION tailhook.event_ids_prepare(lo timestamptz, hi timestamptz, part text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ulo uuid := tailhook.uuid_at(lo);
    uhi uuid := tailhook.uuid_at(hi);
    n bigint := 0;
BEGIN
    IF to_regclass('tailhook.' || part) IS NOT NULL OR ulo >= uhi THEN
        RETURN 0;
    END IF;
    EXECUTE format('CREATE TABLE tailhook.%I (LIKE tailhook.event_ids INCLUDING DEFAULTS INCLUDING STORAGE)', part);
    IF EXISTS (SELECT 1 FROM tailhook.event_ids_default d WHERE d.event_id >= ulo AND d.event_id < uhi) THEN
        LOCK TABLE tailhook.event_ids IN ACCESS EXCLUSIVE MODE;
        EXECUTE format('WITH m AS (DELETE FROM tailhook.event_ids_default d WHERE d.event_id >= $1 AND d.event_id < $2 RETURNING d.*)
                        INSERT INTO tailhook.%I SELECT * FROM m', part) USING ulo, uhi;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    -- Proves the bound: ATTACH then skips scanning the new table.
    EXECUTE format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I CHECK (event_id IS NOT NULL AND event_id >= %L AND event_id < %L)',
                   part, part || '_range', ulo, uhi);
    EXECUTE format('ALTER TABLE tailhook.event_ids ATTACH PARTITION tailhook.%I FOR VALUES FROM (%L) TO (%L)', part, ulo, uhi);
    PERFORM tailhook.event_ids_name_key(part);
    RETURN n;
END
$$;
-- The periods of the outbox dropped whose ids are still to be removed.
CREATE TABLE IF NOT EXISTS tailhook.event_ids_dropped (
    lo timestamptz NOT NULL,
    hi timestamptz NOT NULL,
    PRIMARY KEY (lo, hi)
);
REVOKE ALL ON tailhook.event_ids_dropped FROM PUBLIC;

-- While event_ids is being filled from the existing outbox (below), each
-- INSERT also looks its ids up in the outbox, under per-bucket advisory
-- locks (READ COMMITTED), as before this table existed.
CREATE OR REPLACE FUNCTION tailhook.outbox_event_id_unique() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    dup uuid;
BEGIN
    INSERT INTO tailhook.event_ids (event_id, created_at) SELECT n.event_id, n.created_at FROM new_rows n;
    PERFORM pg_advisory_xact_lock(7368005, x.b)
       FROM (SELECT DISTINCT hashtext(n.event_id::text) & 255 AS b FROM new_rows n ORDER BY 1) x;
    SELECT n.event_id INTO dup
      FROM new_rows n JOIN tailhook.outbox o ON o.event_id = n.event_id AND o.id <> n.id
     LIMIT 1;
    IF dup IS NOT NULL THEN
        RAISE EXCEPTION 'duplicate key value violates unique constraint "outbox_event_id_key"'
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'outbox_event_id_key', TABLE = 'outbox',
                  SCHEMA = 'tailhook', DETAIL = format('Key (event_id)=(%s) already exists.', dup);
    END IF;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION tailhook.outbox_event_id_unique() FROM PUBLIC;

DO $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'tailhook.outbox'::regclass AND tgname = 'outbox_event_id_unique') THEN
        PERFORM tailhook.partition_ddl(ARRAY[
            'CREATE TRIGGER outbox_event_id_unique AFTER INSERT ON tailhook.outbox REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION tailhook.outbox_event_id_unique()']);
    END IF;
END
$$;

-- Fills event_ids from the outbox, once (the table's comment says so), without
-- blocking writers: first waits until every transaction in this database that
-- had written something before the function above took over has ended (it
-- may have inserted outbox rows without event_ids rows), then copies the ids
-- (rows inserted since are there already: ON CONFLICT DO NOTHING).
DO $$
DECLARE
    since timestamptz := clock_timestamp();
    waited int := 0;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF obj_description('tailhook.event_ids'::regclass, 'pg_class') IS NOT DISTINCT FROM 'filled' THEN
        RETURN;
    END IF;
    WHILE EXISTS (SELECT 1 FROM pg_stat_activity a
                   WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
                     AND a.backend_xid IS NOT NULL AND a.xact_start < since
                     -- an aborted one rolls back: its rows never commit
                     AND a.state IS DISTINCT FROM 'idle in transaction (aborted)') LOOP
        waited := waited + 1;
        IF waited > 600 THEN
            RAISE EXCEPTION 'tailhook: a transaction open since before % keeps event_ids from being filled; end it and run migrate again', since
                USING ERRCODE = 'lock_not_available';
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    INSERT INTO tailhook.event_ids (event_id, created_at)
    SELECT o.event_id, o.created_at FROM tailhook.outbox o
        ON CONFLICT (event_id) DO NOTHING;
    COMMENT ON TABLE tailhook.event_ids IS 'filled';
END
$$;

-- Filled: the primary key alone keeps event_id unique.
CREATE OR REPLACE FUNCTION tailhook.outbox_event_id_unique() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO tailhook.event_ids (event_id, created_at) SELECT n.event_id, n.created_at FROM new_rows n;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION tailhook.outbox_event_id_unique() FROM PUBLIC;

-- An event deleted (by retention row by row, by hand) or truncated takes
-- its id along.
CREATE OR REPLACE FUNCTION tailhook.outbox_event_ids_gone() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE tailhook.event_ids;
    ELSE
        DELETE FROM tailhook.event_ids e USING old_rows o WHERE e.event_id = o.event_id AND e.created_at = o.created_at;
    END IF;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION tailhook.outbox_event_ids_gone() FROM PUBLIC;

DO $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'tailhook.outbox'::regclass AND tgname = 'outbox_event_ids_deleted') THEN
        PERFORM tailhook.partition_ddl(ARRAY[
            'CREATE TRIGGER outbox_event_ids_deleted AFTER DELETE ON tailhook.outbox REFERENCING OLD TABLE AS old_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION tailhook.outbox_event_ids_gone()',
            'CREATE TRIGGER outbox_event_ids_truncated AFTER TRUNCATE ON tailhook.outbox '
            'FOR EACH STATEMENT EXECUTE FUNCTION tailhook.outbox_event_ids_gone()']);
    END IF;
END
$$;

-- Removes up to `batch` ids of events gone with dropped periods
-- (tailhook.event_ids_dropped, recorded by partitions_drop), oldest period
-- first: ids in the DEFAULT chunks (a dropped period's own partition went
-- with it) with the period's created_at whose (event_id, created_at) is in
-- no outbox row, so the events it kept keep theirs. Only those periods' ids
-- are read, chunk by chunk (a row's ctid names it within its chunk) through
-- the BRIN index; a period is done once its chunks give fewer than asked.
-- With tailhook's own ids there is nothing to remove. An id in another
-- period's partition (its time far from its event's) is not looked for: it
-- goes when that partition is dropped. Returns how many.
CREATE OR REPLACE FUNCTION tailhook.event_ids_expire(batch int) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p record;
    c record;
    n bigint;
    found_any boolean;
    total bigint := 0;
BEGIN
    FOR p IN SELECT d.lo, d.hi FROM tailhook.event_ids_dropped d ORDER BY d.lo, d.hi LOOP
        FOR c IN SELECT i.inhrelid::regclass AS chunk FROM pg_inherits i
                  WHERE i.inhparent = 'tailhook.event_ids_default'::regclass ORDER BY i.inhrelid LOOP
            -- A chunk without ids of the period is passed over before the
            -- delete below is planned (its outbox lookup plans every outbox
            -- partition).
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s x WHERE x.created_at >= $1 AND x.created_at < $2)', c.chunk)
               INTO found_any USING p.lo, p.hi;
            CONTINUE WHEN NOT found_any;
            EXECUTE format($q$DELETE FROM %1$s e
                               WHERE e.ctid = ANY (ARRAY(
                                         SELECT x.ctid FROM %1$s x
                                          WHERE x.created_at >= $1 AND x.created_at < $2
                                            AND NOT EXISTS (SELECT 1 FROM tailhook.outbox o
                                                             WHERE o.event_id = x.event_id AND o.created_at = x.created_at)
                                          LIMIT $3))$q$, c.chunk)
               USING p.lo, p.hi, batch - total;
            GET DIAGNOSTICS n = ROW_COUNT;
            total := total + n;
            EXIT WHEN total >= batch;
        END LOOP;
        -- Asked for more than was left: the period is done.
        EXIT WHEN total >= batch;
        DELETE FROM tailhook.event_ids_dropped d WHERE d.lo = p.lo AND d.hi = p.hi;
    END LOOP;
    RETURN total;
END
$$;
REVOKE EXECUTE ON FUNCTION tailhook.event_ids_expire(int) FROM PUBLIC;

-- The API's publish (sql/0027_api_tokens.sql): the same id again inserts
-- nothing and returns false, whether the first is committed already (found
-- in event_ids) or commits while this one waits on its key.
CREATE OR REPLACE FUNCTION tailhook.publish_with_id(
    event_id     uuid,
    event_type   text,
    payload      jsonb,
    tenant       text DEFAULT NULL,
    ordering_key text DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF starts_with(publish_with_id.event_type, 'tailhook.') AND publish_with_id.event_type <> 'tailhook.test' THEN
        RAISE EXCEPTION 'tailhook.publish: event type % is reserved for tailhook''s own events',
            quote_literal(publish_with_id.event_type) USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM tailhook.event_ids e WHERE e.event_id = publish_with_id.event_id) THEN
        RETURN false;
    END IF;
    BEGIN
        INSERT INTO tailhook.outbox (event_id, event_type, payload, tenant, ordering_key)
        VALUES (publish_with_id.event_id, publish_with_id.event_type, publish_with_id.payload,
                publish_with_id.tenant, publish_with_id.ordering_key);
    EXCEPTION WHEN unique_violation THEN
        RETURN false;
    END;
    RETURN true;
END
$$;
REVOKE EXECUTE ON FUNCTION tailhook.publish_with_id(uuid, text, jsonb, text, text) FROM PUBLIC;

-- Where the periods tailhook manages start: rows below it (in the DEFAULT
-- partition, or the legacy one of a converted installation) are retained
-- row by row; rows at or above it live in range partitions retention drops
-- whole. 'infinity' while there is no such partition.
CREATE OR REPLACE FUNCTION tailhook.partition_floor(tbl text) RETURNS timestamptz
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(min(b.lo), 'infinity') FROM tailhook.partition_bounds(tbl) b WHERE b.lo IS NOT NULL
$$;

-- Creates the partitions of the three tables up to `ahead` periods of
-- `width` past now(), each period from the last one's end to the next
-- boundary of `width` (so a changed width takes effect at the end of the
-- prepared range; a gap left by a long outage becomes one partition).
-- Rows of a new period already in the DEFAULT partition are moved into it
-- first (PostgreSQL refuses a partition whose rows sit in the default).
-- Each partition is created on its own and attached (a scan of the small
-- DEFAULT partition), with the table locked against writes (SHARE ROW
-- EXCLUSIVE, a few milliseconds; reads go on), under lock_timeout 200ms: a
-- lock not granted ends the call (the caller retries next round). The
-- caller holds tailhook's partition advisory lock.
-- Each outbox partition comes with event_ids' partition of the same period
-- (tailhook.event_ids_prepare).
-- Returns partitions created and rows moved out of the DEFAULT partitions.
CREATE OR REPLACE FUNCTION tailhook.partitions_prepare(width interval, ahead int)
RETURNS TABLE (created int, moved bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    origin constant timestamptz := '2000-01-03 00:00:00+00'; -- a Monday, UTC
    tbl text;
    key text;
    start timestamptz;
    nxt timestamptz;
    horizon timestamptz := now() + ahead * width;
    floor_now timestamptz := date_bin(width, now(), origin) - width;
    part text;
    n bigint;
    strays boolean;
BEGIN
    IF width < interval '1 second' OR ahead < 1 THEN
        RAISE EXCEPTION 'tailhook.partitions_prepare: width must be at least 1 second and ahead at least 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    created := 0;
    moved := 0;
    PERFORM set_config('lock_timeout', '200ms', true);
    -- Every lock this call needs is taken first, table after table in the
    -- order writers take them, before any work: a session queued behind one
    -- of them can then be waited on by this call for at most lock_timeout
    -- (each wait ends within 200 ms of the first lock), well under
    -- deadlock_timeout (1 s), so a deadlock with a reader or writer ends this
    -- call, never the other session (a lock asked for after seconds of work
    -- could close a cycle just as the other session's check ran).
    -- Writers wait (SHARE ROW EXCLUSIVE: reads go on) until this commits:
    -- an INSERT routed to the DEFAULT partition by the partition list from
    -- before an ATTACH would otherwise fail that partition's new constraint
    -- once the ATTACH commits. Readers wait too (ACCESS EXCLUSIVE) when rows
    -- will move, and for the DEFAULT partition, which ATTACH locks anyway.
    FOREACH tbl IN ARRAY ARRAY['outbox', 'deliveries', 'attempts'] LOOP
        key := tailhook.partition_key(tbl);
        SELECT max(b.hi) INTO start FROM tailhook.partition_bounds(tbl) b;
        start := coalesce(start, floor_now);
        IF start < horizon THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM tailhook.%I WHERE %I >= $1 AND %I < $2)', tbl || '_default', key, key)
               INTO strays USING start, horizon + width;
            EXECUTE format('LOCK TABLE tailhook.%I IN %s MODE', tbl,
                           CASE WHEN strays THEN 'ACCESS EXCLUSIVE' ELSE 'SHARE ROW EXCLUSIVE' END);
            EXECUTE format('LOCK TABLE tailhook.%I IN ACCESS EXCLUSIVE MODE', tbl || '_default');
            IF tbl = 'outbox' THEN
                -- event_ids gets a partition with each outbox period
                -- (event_ids_prepare): ATTACH locks its DEFAULT chunks, and
                -- ids may move out of them.
                LOCK TABLE tailhook.event_ids IN ACCESS EXCLUSIVE MODE;
            END IF;
        END IF;
    END LOOP;
    FOREACH tbl IN ARRAY ARRAY['outbox', 'deliveries', 'attempts'] LOOP
        key := tailhook.partition_key(tbl);
        SELECT max(b.hi) INTO start FROM tailhook.partition_bounds(tbl) b;
        start := coalesce(start, floor_now);
        WHILE start < horizon LOOP
            nxt := greatest(date_bin(width, start, origin) + width, floor_now);
            part := tbl || '_p' || to_char(start AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MISS');
            EXECUTE format('CREATE TABLE tailhook.%I (LIKE tailhook.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)',
                           part, tbl);
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM tailhook.%I WHERE %I >= $1 AND %I < $2)', tbl || '_default', key, key)
               INTO strays USING start, nxt;
            IF strays THEN
                -- Readers wait too while rows change partition (ACCESS
                -- EXCLUSIVE, taken above): a reader planning with the
                -- partition list from before this commits would find them
                -- in neither place.
                EXECUTE format('WITH m AS (DELETE FROM tailhook.%I WHERE %I >= $1 AND %I < $2 RETURNING *) INSERT INTO tailhook.%I SELECT * FROM m',
                               tbl || '_default', key, key, part) USING start, nxt;
                GET DIAGNOSTICS n = ROW_COUNT;
                moved := moved + n;
            END IF;
            -- Proves the bound: ATTACH then skips scanning the new table.
            EXECUTE format('ALTER TABLE tailhook.%I ADD CONSTRAINT %I CHECK (%I IS NOT NULL AND %I >= %L AND %I < %L)',
                           part, part || '_range', key, key, start, key, nxt);
            EXECUTE format('ALTER TABLE tailhook.%I ATTACH PARTITION tailhook.%I FOR VALUES FROM (%L) TO (%L)',
                           tbl, part, start, nxt);
            PERFORM tailhook.partition_name_indexes(tbl, part);
            created := created + 1;
            IF tbl = 'outbox' THEN
                -- event_ids' partition of the same period (still under the
                -- outbox's lock: no id is inserted meanwhile).
                moved := moved + tailhook.event_ids_prepare(start, nxt, 'event_ids' || substr(part, length('outbox') + 1));
                created := created + 1;
            END IF;
            start := nxt;
        END LOOP;
    END LOOP;
    RETURN NEXT;
END
$$;

-- Rows in a DEFAULT partition that belong to a period tailhook manages (at
-- or past the floor): written beyond the prepared range. partitions_prepare
-- moves them once their period is prepared.
CREATE OR REPLACE FUNCTION tailhook.partition_strays()
RETURNS TABLE (tbl text, strays bigint)
LANGUAGE plpgsql SECURITY DEFINER STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['outbox', 'deliveries', 'attempts'] LOOP
        tbl := t;
        EXECUTE format('SELECT count(*) FROM tailhook.%I WHERE %I >= $1', t || '_default', tailhook.partition_key(t))
           INTO strays USING tailhook.partition_floor(t);
        RETURN NEXT;
    END LOOP;
END
$$;

-- A detached partition's end: dropped; the legacy partition of a converted
-- installation is emptied and kept, detached (step 4's statements name it).
CREATE OR REPLACE FUNCTION tailhook.partition_discard(part text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF part LIKE '%\_legacy' THEN
        EXECUTE format('TRUNCATE tailhook.%I', part);
    ELSE
        EXECUTE format('DROP TABLE tailhook.%I', part);
    END IF;
END
$$;

-- Retention by partition: drops the oldest period whose end is at least
-- `succeeded_ms` old (one period per call: each call one short
-- transaction). Its three partitions are detached (plain DETACH: PostgreSQL
-- refuses DETACH CONCURRENTLY while a DEFAULT partition exists, and it
-- cannot run in a transaction; the ACCESS EXCLUSIVE lock is asked for under
-- lock_timeout 200ms and held for the few milliseconds below), the rows
-- today's retention would keep are copied back (deliveries and attempts
-- through the parent table with event_at '-infinity', into the undated
-- partitions; events straight into the outbox's DEFAULT partition, since no
-- partition covers that period any more; all retained row by row from
-- there), and the
-- partitions are dropped. Kept: deliveries pending or retrying, any still
-- leased, succeeded ones completed less than `succeeded_ms` ago, failed
-- and cancelled ones completed less than `failed_ms` ago (or cancelled and
-- not yet stamped); the attempts of those; outbox rows not dispatched yet or
-- with a kept delivery. event_ids' partition of the period is detached and
-- dropped too, the ids in it of events that live on put back first (into
-- its DEFAULT partition). Returns partitions dropped and rows kept.
CREATE OR REPLACE FUNCTION tailhook.partitions_drop(succeeded_ms bigint, failed_ms bigint)
RETURNS TABLE (dropped int, kept bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    period_end timestamptz;
    p_outbox text;
    p_deliveries text;
    p_attempts text;
    p_event_ids text;
    ids_lo uuid;
    ids_hi uuid;
    ids_brin regclass;
    period_start timestamptz;
    alive boolean;
    seqscan text := current_setting('enable_seqscan');
    r record;
    kept_ids bigint[] := '{}';
    keep_ids bigint[] := '{}';
    kept_events bigint[] := '{}';
    n bigint;
BEGIN
    dropped := 0;
    kept := 0;
    SELECT min(b.hi) INTO period_end FROM tailhook.partition_bounds('deliveries') b
     WHERE b.hi <= now() - succeeded_ms * interval '1 millisecond';
    IF period_end IS NULL THEN
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT b.name INTO p_outbox FROM tailhook.partition_bounds('outbox') b WHERE b.hi = period_end;
    SELECT b.name INTO p_deliveries FROM tailhook.partition_bounds('deliveries') b WHERE b.hi = period_end;
    SELECT b.name INTO p_attempts FROM tailhook.partition_bounds('attempts') b WHERE b.hi = period_end;
    -- event_ids' partition of the period (none for the legacy partition).
    SELECT 'event_ids' || substr(b.name, length('outbox') + 1), tailhook.uuid_at(b.lo), tailhook.uuid_at(b.hi), b.lo
      INTO p_event_ids, ids_lo, ids_hi, period_start
      FROM tailhook.partition_bounds('outbox') b
     WHERE b.name = p_outbox AND b.lo IS NOT NULL AND to_regclass('tailhook.event_ids' || substr(b.name, length('outbox') + 1)) IS NOT NULL;
    -- Its events' ids are removed from event_ids afterwards, by retention.
    INSERT INTO tailhook.event_ids_dropped (lo, hi)
    SELECT coalesce(b.lo, '-infinity'), b.hi FROM tailhook.partition_bounds('outbox') b WHERE b.name = p_outbox
        ON CONFLICT DO NOTHING;
    -- The deliveries to keep are looked for before any lock but this scan's
    -- own, which blocks no writer (a period may hold millions of rows, and
    -- finished deliveries still leased, cancelled or finished by hand while
    -- their request is in flight, are in no index). A delivery that becomes
    -- one to keep after this scan is pending or retrying (a redelivery; and
    -- claims lease nothing else): found again below, by index, under the
    -- locks. One that stopped being one is kept all the same.
    EXECUTE format($q$SELECT coalesce(array_agg(d.id), '{}') FROM tailhook.%I d
                       WHERE d.status IN ('pending', 'retrying')
                          OR (d.status = 'succeeded' AND d.completed_at >= now() - $1::bigint * interval '1 millisecond')
                          OR (d.status IN ('failed', 'cancelled')
                              AND (d.completed_at IS NULL OR d.completed_at >= now() - $2::bigint * interval '1 millisecond'))
                          OR d.locked_until > now()$q$, p_deliveries)
       INTO keep_ids USING succeeded_ms, failed_ms;
    -- event_ids' partition of the period is read by created_at under the
    -- locks below (its ids whose event is not of the period): its BRIN index
    -- is brought up to date first, outside them (a range not summarized is
    -- read whole; ids inserted after this are few, in the ranges at its end).
    IF p_event_ids IS NOT NULL THEN
        SELECT x.indexrelid::regclass INTO ids_brin
          FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_am a ON a.oid = c.relam
         WHERE x.indrelid = ('tailhook.' || p_event_ids)::regclass AND a.amname = 'brin';
        IF ids_brin IS NOT NULL THEN
            PERFORM brin_summarize_new_values(ids_brin);
        END IF;
    END IF;
    PERFORM set_config('lock_timeout', '200ms', true);
    -- Parents in the order writers take them (outbox, deliveries, attempts).
    IF p_outbox IS NOT NULL THEN
        EXECUTE format('ALTER TABLE tailhook.outbox DETACH PARTITION tailhook.%I', p_outbox);
    END IF;
    EXECUTE format('ALTER TABLE tailhook.deliveries DETACH PARTITION tailhook.%I', p_deliveries);
    IF p_attempts IS NOT NULL THEN
        EXECUTE format('ALTER TABLE tailhook.attempts DETACH PARTITION tailhook.%I', p_attempts);
    END IF;
    -- Last, as writers take it (an outbox INSERT's trigger fills it).
    IF p_event_ids IS NOT NULL THEN
        EXECUTE format('ALTER TABLE tailhook.event_ids DETACH PARTITION tailhook.%I', p_event_ids);
    END IF;
    PERFORM set_config('lock_timeout', '0', true);

    -- Kept deliveries and attempts leave their period: event_at becomes
    -- '-infinity' and they land in the undated partition (created now if the
    -- legacy partition held its range).
    PERFORM tailhook.partition_undated('deliveries');
    PERFORM tailhook.partition_undated('attempts');
    EXECUTE format('ALTER TABLE tailhook.%I DROP CONSTRAINT IF EXISTS %I', p_deliveries, p_deliveries || '_range');
    EXECUTE format($q$
        WITH k AS (
            UPDATE tailhook.%I d SET event_at = '-infinity'
             WHERE d.id = ANY ($1) OR d.status IN ('pending', 'retrying')
            RETURNING d.id, d.outbox_id)
        SELECT coalesce(array_agg(k.id), '{}'), coalesce(array_agg(DISTINCT k.outbox_id), '{}') FROM k$q$, p_deliveries)
       INTO kept_ids, kept_events USING keep_ids;
    EXECUTE format('INSERT INTO tailhook.deliveries OVERRIDING SYSTEM VALUE SELECT * FROM tailhook.%I d WHERE d.id = ANY ($1)',
                   p_deliveries) USING kept_ids;
    kept := kept + cardinality(kept_ids);
    IF p_attempts IS NOT NULL THEN
        EXECUTE format('ALTER TABLE tailhook.%I DROP CONSTRAINT IF EXISTS %I', p_attempts, p_attempts || '_range');
        EXECUTE format($q$UPDATE tailhook.%I a SET event_at = '-infinity' WHERE a.delivery_id = ANY ($1)$q$, p_attempts) USING kept_ids;
        EXECUTE format('INSERT INTO tailhook.attempts OVERRIDING SYSTEM VALUE SELECT * FROM tailhook.%I a WHERE a.delivery_id = ANY ($1)',
                       p_attempts) USING kept_ids;
        GET DIAGNOSTICS n = ROW_COUNT;
        kept := kept + n;
    END IF;
    IF p_outbox IS NOT NULL THEN
        -- Into the DEFAULT partition directly (where the parent would route
        -- them: no partition covers the period any more), so that the
        -- outbox's statement triggers do not fire: their ids are in
        -- event_ids already (put back below if they were in the period's
        -- partition); outbox_notify's wake-up is sent here instead.
        EXECUTE format('INSERT INTO tailhook.outbox_default OVERRIDING SYSTEM VALUE SELECT * FROM tailhook.%I o WHERE o.dispatched_at IS NULL OR o.id = ANY ($1)',
                       p_outbox) USING kept_events;
        GET DIAGNOSTICS n = ROW_COUNT;
        kept := kept + n;
        IF n > 0 THEN
            PERFORM pg_notify('tailhook_outbox', '');
        END IF;
    END IF;
    IF p_event_ids IS NOT NULL THEN
        -- The ids in the period's event_ids partition whose events live on
        -- go back into event_ids, into its DEFAULT chunks now; the others go
        -- with the partition, undeleted. Those of the events kept above, read
        -- from the detached outbox partition...
        IF p_outbox IS NOT NULL THEN
            EXECUTE format($q$INSERT INTO tailhook.event_ids (event_id, created_at)
                              SELECT o.event_id, o.created_at FROM tailhook.%I o
                               WHERE (o.dispatched_at IS NULL OR o.id = ANY ($1)) AND o.event_id >= $2 AND o.event_id < $3$q$,
                           p_outbox) USING kept_events, ids_lo, ids_hi;
        END IF;
        -- ...and those whose event is not of the period (an id's time is not
        -- always its event's), found through the BRIN index (summarized
        -- above; a plan reading the partition whole is refused), each looked
        -- up in the one outbox partition of its created_at (planned with
        -- its values: pruned).
        PERFORM set_config('enable_seqscan', 'off', true);
        FOR r IN EXECUTE format('SELECT x.event_id, x.created_at FROM tailhook.%I x WHERE x.created_at < $1 OR x.created_at >= $2',
                                p_event_ids) USING period_start, period_end LOOP
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM tailhook.outbox o WHERE o.event_id = %L AND o.created_at = %L)',
                           r.event_id, r.created_at) INTO alive;
            IF alive THEN
                INSERT INTO tailhook.event_ids (event_id, created_at) VALUES (r.event_id, r.created_at);
            END IF;
        END LOOP;
        PERFORM set_config('enable_seqscan', seqscan, true);
        PERFORM tailhook.partition_discard(p_event_ids);
        dropped := dropped + 1;
    END IF;
    IF p_outbox IS NOT NULL THEN
        PERFORM tailhook.partition_discard(p_outbox);
        dropped := dropped + 1;
    END IF;
    PERFORM tailhook.partition_discard(p_deliveries);
    dropped := dropped + 1;
    IF p_attempts IS NOT NULL THEN
        PERFORM tailhook.partition_discard(p_attempts);
        dropped := dropped + 1;
    END IF;
    DELETE FROM tailhook.partition_legacy l WHERE l.cutoff = period_end;
    RETURN NEXT;
END
$$;

-- The sidecar's role runs partition maintenance without owning the tables:
-- the three functions run as their owner (the role that migrated) and only
-- roles granted the sidecar kind may call them.
REVOKE EXECUTE ON FUNCTION tailhook.partitions_prepare(interval, int) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tailhook.partitions_drop(bigint, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tailhook.partition_strays() FROM PUBLIC;

-- grant_kind (as in sql/0030_portal.sql) with them for the sidecar kind, and
-- the roles granted so far get them.
CREATE OR REPLACE FUNCTION tailhook.grant_kind(kind text, role regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    statements text[];
    s text;
BEGIN
    statements := ARRAY['GRANT USAGE ON SCHEMA tailhook TO %1$s'];
    CASE kind
    WHEN 'publisher' THEN
        statements := statements || ARRAY[
            'GRANT EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text, text, text) TO %1$s'];
    WHEN 'portal_minter' THEN
        statements := statements || ARRAY[
            'GRANT EXECUTE ON FUNCTION tailhook.portal_link(text, interval, boolean) TO %1$s'];
    WHEN 'endpoint_manager' THEN
        statements := statements || ARRAY[
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.endpoint_config TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.enable_endpoint(text) TO %1$s'];
    WHEN 'history_reader' THEN
        statements := statements || ARRAY[
            'GRANT SELECT ON tailhook.outbox, tailhook.deliveries, tailhook.attempts, tailhook.endpoint_config, tailhook.endpoint_stats, tailhook.delivery_log TO %1$s'];
    WHEN 'sidecar' THEN
        statements := statements || ARRAY[
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.outbox, tailhook.deliveries, tailhook.replicas TO %1$s',
            'GRANT SELECT, INSERT, DELETE ON tailhook.attempts TO %1$s',
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.schema_migrations, tailhook.endpoint_stats, tailhook.endpoint_config, tailhook.delivery_log, tailhook.capture_config, tailhook.captures, tailhook.api_tokens TO %1$s',
            'GRANT SELECT, INSERT, UPDATE, DELETE ON tailhook.secret_retirements TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.lock_undispatched(bigint), tailhook.expand_captures(int, boolean), tailhook.emit_endpoint_event(text, bigint, jsonb), tailhook.operational_wanted(text, bigint), tailhook.event_type_matches(text[], text), tailhook.enable_endpoint(text), tailhook.retire_secrets(), tailhook.publish_with_id(uuid, text, jsonb, text, text), tailhook.set_portal_key(bytea) TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.partitions_prepare(interval, int), tailhook.partitions_drop(bigint, bigint), tailhook.partition_strays(), tailhook.event_ids_expire(int) TO %1$s'];
    ELSE
        RAISE EXCEPTION 'tailhook.grant_kind: unknown kind %', quote_literal(kind)
            USING ERRCODE = 'invalid_parameter_value';
    END CASE;
    FOREACH s IN ARRAY statements LOOP
        EXECUTE pg_catalog.format(s, role);
    END LOOP;
    INSERT INTO tailhook.role_grants (role_oid, kind) VALUES (role, kind) ON CONFLICT DO NOTHING;
END
$$;
SELECT tailhook.regrant();

-- The key head's trigger (sql/0009_key_heads.sql) finds the new head by
-- (id, event_at), its partition's key, so the update reads one partition
-- (pruned at run time), not every partition's primary key.
CREATE OR REPLACE FUNCTION tailhook.schedule_key_head() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE tailhook.deliveries d
       SET next_attempt_at = now()
     WHERE (d.id, d.event_at) = (SELECT h.id, h.event_at FROM tailhook.deliveries h
                                  WHERE h.endpoint_id = OLD.endpoint_id AND h.ordering_key = OLD.ordering_key
                                    AND h.status IN ('pending', 'retrying')
                                  ORDER BY h.outbox_id
                                  LIMIT 1)
       AND d.next_attempt_at IS NULL;
    RETURN NULL;
END
$$;
