-- tailhook schema, version 15: change capture that the writer barely pays for.
-- Plain SQL, safe to re-run: the sequence is created only when absent, the
-- functions are replaced in place, and a captured table is re-generated only
-- while its trigger function is not yet of this version (tables captured
-- under 0012 are upgraded here, so users need do nothing).
--
-- Why: 0012's trigger turned every changed row into JSON and an outbox row
-- inside the writer's statement; a 100,000-row UPDATE then ran at a fifth of
-- its speed. Now the writer pays for one row per statement, in binary:
--
--   writer (trigger, same transaction)     tailhook (expand_captures, later)
--   ----------------------------------     ---------------------------------
--   one row in tailhook.capture_<oid>_staged:  per staged row, in batch order:
--     batch (global sequence), op,             unnest old/new, pair them, drop
--     n, old_rows <tbl>[], new_rows <tbl>[]    unchanged ones, build the JSON,
--   + pg_notify('tailhook_outbox', 'capture')  INSERT the outbox rows, DELETE
--                                              the staged row (one transaction)
--
-- The arrays hold the table's own row type (`array_agg(r::<tbl>)`), stored
-- uncompressed (STORAGE EXTERNAL: compressing costs the writer more than it
-- saves). What that means for DDL on a captured table (see the README):
--   * ADD COLUMN, DROP COLUMN and RENAME of columns not captured keep working,
--     and writes never fail because of a column change;
--   * the staging table's columns use the table's row type, so PostgreSQL
--     refuses what would rewrite the table (ALTER COLUMN ... TYPE, ADD COLUMN
--     with a volatile default) and DROP TABLE without CASCADE, while captured;
--   * the key, tenant and listed columns are pinned by a view
--     (tailhook.capture_<oid>_columns, never read): dropping or retyping one
--     is refused; after renaming one, run `capture` again.
-- Columns not captured do pass through the staging table (owned by the role
-- that called `capture`, no grants), but never reach the outbox.
--
-- Order: batch numbers come from one sequence taken in the writer's
-- statement, after its rows are changed. Two statements changing the same
-- row are serialised by the row lock, so the later one takes the higher
-- number; expand_captures works one expander at a time (an advisory lock)
-- through the batches of every captured table in batch order, so outbox ids
-- keep each row's changes in order, across tables too.

CREATE SEQUENCE IF NOT EXISTS tailhook.capture_batch;

-- A captured row as JSON: `expr` is an expression of the table's row type.
-- Every column, or only `cols` (jsonb_build_object takes at most 100
-- arguments: long lists are joined from chunks of 50 columns).
CREATE OR REPLACE FUNCTION tailhook.capture_json(expr text, cols text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    parts text[] := '{}';
    args text[] := '{}';
    i int;
BEGIN
    IF cols IS NULL THEN
        RETURN format('to_jsonb(%s)', expr);
    END IF;
    FOR i IN 1 .. cardinality(cols) LOOP
        args := args || format('%L, (%s).%I', cols[i], expr, cols[i]);
        IF cardinality(args) = 50 OR i = cardinality(cols) THEN
            parts := parts || format('jsonb_build_object(%s)', array_to_string(args, ', '));
            args := '{}';
        END IF;
    END LOOP;
    RETURN array_to_string(parts, ' || ');
END
$$;

-- Expands staged statements into outbox rows, oldest batch first, up to
-- about `max_rows` changed rows (a staged statement larger than what is left
-- is expanded in slices, across calls); returns how many rows were expanded
-- (0: nothing staged). One expander at a time: with `wait` false it returns 0
-- at once when another is at work (the sidecar's call), else it waits. A
-- table whose expansion fails (a captured column renamed without capturing
-- again) is skipped with a WARNING; its statements stay staged.
CREATE OR REPLACE FUNCTION tailhook.expand_captures(max_rows int DEFAULT 100000, wait boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    budget bigint := greatest(max_rows, 1);
    total bigint := 0;
    skipped oid[] := '{}';
    c record;
    head bigint;
    first_rel oid;
    first_head bigint;
    next_head bigint;
    used int;
BEGIN
    -- The cheap answer when nothing is captured.
    IF NOT EXISTS (SELECT 1 FROM tailhook.capture_config) THEN
        RETURN 0;
    END IF;
    IF wait THEN
        PERFORM pg_advisory_xact_lock(7368003);
    ELSIF NOT pg_try_advisory_xact_lock(7368003) THEN
        RETURN 0;
    END IF;
    LOOP
        -- Each captured table's oldest staged batch (one index probe each):
        -- the oldest of all is expanded up to the next table's oldest.
        first_rel := NULL;
        first_head := NULL;
        next_head := NULL;
        FOR c IN SELECT cc.relid FROM tailhook.capture_config cc
                  WHERE to_regclass(format('tailhook.%I', 'capture_' || cc.relid || '_staged')) IS NOT NULL
                    AND cc.relid <> ALL (skipped)
                    AND EXISTS (SELECT 1 FROM pg_catalog.pg_class k WHERE k.oid = cc.relid) LOOP
            EXECUTE format('SELECT min(batch) FROM tailhook.%I', 'capture_' || c.relid || '_staged') INTO head;
            CONTINUE WHEN head IS NULL;
            IF first_head IS NULL OR head < first_head THEN
                next_head := first_head;
                first_head := head;
                first_rel := c.relid;
            ELSIF next_head IS NULL OR head < next_head THEN
                next_head := head;
            END IF;
        END LOOP;
        EXIT WHEN first_rel IS NULL;
        BEGIN
            EXECUTE format('SELECT tailhook.%I($1, $2)', 'capture_' || first_rel || '_expand')
               INTO used USING coalesce(next_head, 9223372036854775807), least(budget, 2147483647)::int;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'tailhook.expand_captures: the changes of % cannot be expanded and stay staged: % (after renaming a captured column, run tailhook.capture again)',
                first_rel::regclass, SQLERRM;
            skipped := skipped || first_rel;
            CONTINUE;
        END;
        total := total + used;
        budget := budget - used;
        EXIT WHEN budget <= 0;
    END LOOP;
    RETURN total;
END
$$;

-- Forgets tables dropped since they were captured (with CASCADE: their
-- triggers, pin view and the staging columns went with them; what is left
-- of their staging table, generated functions and options is removed here).
CREATE OR REPLACE FUNCTION tailhook.capture_forget_dropped() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r oid;
BEGIN
    FOR r IN DELETE FROM tailhook.capture_config cc
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = cc.relid)
          RETURNING relid
    LOOP
        PERFORM tailhook.capture_drop_objects(r);
    END LOOP;
END
$$;

-- Drops the objects `capture` generated for the table with oid `r`.
CREATE OR REPLACE FUNCTION tailhook.capture_drop_objects(r oid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I()', 'capture_' || r);
    EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I(bigint, int)', 'capture_' || r || '_expand');
    EXECUTE format('DROP VIEW IF EXISTS tailhook.%I', 'capture_' || r || '_columns');
    EXECUTE format('DROP TABLE IF EXISTS tailhook.%I', 'capture_' || r || '_staged');
    EXECUTE format('DROP DOMAIN IF EXISTS tailhook.%I', 'capture_' || r || '_row');
END
$$;

-- Removes the capture of `tbl`: its triggers, generated objects and options,
-- after expanding what it had staged (every staged statement, of every table,
-- in batch order; the table is locked against writes first, so none is left
-- in flight). Refuses, changing nothing, if some could not be expanded.
-- The outbox, deliveries and attempts are left alone.
CREATE OR REPLACE FUNCTION tailhook.uncapture(tbl regclass) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    op text;
    captured boolean;
    left_over bigint;
    staged text := format('tailhook.%I', 'capture_' || tbl::oid || '_staged');
BEGIN
    captured := EXISTS (SELECT 1 FROM tailhook.capture_config WHERE relid = tbl);
    IF captured THEN
        EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
        IF to_regclass(staged) IS NOT NULL THEN
            LOOP
                EXIT WHEN tailhook.expand_captures(100000) = 0;
            END LOOP;
            EXECUTE format('SELECT count(*) FROM %s', staged) INTO left_over;
            IF left_over > 0 THEN
                RAISE EXCEPTION 'tailhook.uncapture: % statements of % are staged and cannot be expanded (see the warning above); run tailhook.capture again to fix the capture first',
                    left_over, tbl USING ERRCODE = 'object_in_use';
            END IF;
        END IF;
    END IF;
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'tailhook_capture_' || op, tbl);
    END LOOP;
    DELETE FROM tailhook.capture_config WHERE relid = tbl;
    PERFORM tailhook.capture_drop_objects(tbl);
    PERFORM tailhook.capture_forget_dropped();
    RETURN captured;
END
$$;

-- Installs (or replaces, atomically: it runs in the caller's transaction)
-- statement-level triggers on `tbl` that stage each statement's rows for
-- `<event_type>.inserted`, `.updated` and `.deleted` events with payload
-- {table, operation, new, old}. Statements staged under the previous options
-- are expanded with those options first.
CREATE OR REPLACE FUNCTION tailhook.capture(
    tbl           regclass,
    event_type    text,
    operations    text[] DEFAULT '{insert,update,delete}',
    columns       text[] DEFAULT NULL,
    tenant_column text DEFAULT NULL,
    key_column    text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rel pg_catalog.pg_class%ROWTYPE;
    nsp text;
    pk text[];
    ops text[];
    col text;
    key text := capture.key_column;
    fname text := 'capture_' || tbl::oid;
    staged text := format('tailhook.%I', 'capture_' || tbl::oid || '_staged');
    row_type text := format('tailhook.%I', 'capture_' || tbl::oid || '_row');
    pinned text[];
    write_body text := '';
    expand_body text := '';
    stuck boolean;
    op text;
BEGIN
    SELECT * INTO rel FROM pg_catalog.pg_class WHERE oid = tbl;
    SELECT nspname INTO nsp FROM pg_catalog.pg_namespace WHERE oid = rel.relnamespace;
    IF nsp = 'tailhook' THEN
        RAISE EXCEPTION 'tailhook.capture: % is one of tailhook''s own tables and cannot be captured', tbl
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'tailhook.capture: % is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    IF coalesce(capture.event_type, '') = '' THEN
        RAISE EXCEPTION 'tailhook.capture: event_type must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(DISTINCT lower(o)) INTO ops FROM unnest(capture.operations) AS o;
    IF ops IS NULL OR NOT ops <@ ARRAY['insert', 'update', 'delete'] THEN
        RAISE EXCEPTION 'tailhook.capture: operations must be a non-empty list of insert, update, delete (got %)',
            capture.operations USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Every column named must exist.
    FOREACH col IN ARRAY array_remove(ARRAY[capture.tenant_column, capture.key_column], NULL) || coalesce(capture.columns, '{}') LOOP
        IF col IS NULL OR NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_attribute
             WHERE attrelid = tbl AND attname = col AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'tailhook.capture: % has no column %', tbl, coalesce(quote_ident(col), 'NULL')
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    IF capture.columns IS NOT NULL AND cardinality(capture.columns) = 0 THEN
        RAISE EXCEPTION 'tailhook.capture: columns must list at least one column (NULL: every column)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The key: pairs an UPDATE's old and new rows, and is the ordering key.
    IF key IS NULL THEN
        SELECT array_agg(a.attname ORDER BY a.attnum) INTO pk
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
         WHERE i.indrelid = tbl AND i.indisprimary;
        IF pk IS NULL THEN
            RAISE EXCEPTION 'tailhook.capture: % has no primary key; name a unique column with key_column', tbl
                USING ERRCODE = 'invalid_parameter_value';
        ELSIF cardinality(pk) > 1 THEN
            RAISE EXCEPTION 'tailhook.capture: % has a composite primary key (%); name one unique column with key_column',
                tbl, array_to_string(pk, ', ') USING ERRCODE = 'invalid_parameter_value';
        END IF;
        key := pk[1];
    ELSIF 'update' = ANY (ops) AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = tbl AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
           AND i.indexprs IS NULL AND a.attname = key) THEN
        RAISE EXCEPTION 'tailhook.capture: key_column % of % is not unique (no single-column unique index): an UPDATE''s rows could not be paired',
            quote_ident(key), tbl USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- No write in flight on the table from here on (released at commit);
    -- what it staged under the previous options is expanded with them.
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    IF to_regclass(staged) IS NOT NULL THEN
        LOOP
            EXIT WHEN tailhook.expand_captures(100000) = 0;
        END LOOP;
    END IF;

    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'tailhook_capture_' || op, tbl);
    END LOOP;
    EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I()', fname);
    EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I(bigint, int)', fname || '_expand');
    EXECUTE format('DROP VIEW IF EXISTS tailhook.%I', fname || '_columns');
    DELETE FROM tailhook.capture_config WHERE relid = tbl;
    PERFORM tailhook.capture_forget_dropped();

    -- The staging table is kept across re-captures (it may hold statements
    -- that failed to expand under the previous options). Its arrays are of a
    -- domain over the table's row type: generated code names the domain,
    -- never the table, so renaming the table or its schema breaks nothing.
    IF to_regtype(row_type) IS NULL THEN
        EXECUTE format('CREATE DOMAIN %s AS %s', row_type, tbl);
    END IF;
    EXECUTE format($f$CREATE TABLE IF NOT EXISTS %s (
        batch      bigint PRIMARY KEY,
        op         "char" NOT NULL,
        n          int NOT NULL,
        done       int NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        old_rows   %s[],
        new_rows   %s[])$f$, staged, row_type, row_type);
    EXECUTE format('ALTER TABLE %s ALTER old_rows SET STORAGE EXTERNAL, ALTER new_rows SET STORAGE EXTERNAL', staged);

    -- The columns the expansion names, pinned against DROP and ALTER TYPE.
    SELECT array_agg(DISTINCT x) INTO pinned
      FROM unnest(ARRAY[key, capture.tenant_column] || coalesce(capture.columns, '{}')) AS x WHERE x IS NOT NULL;
    EXECUTE format('CREATE VIEW tailhook.%I AS SELECT %s FROM %s WHERE false', fname || '_columns',
        (SELECT string_agg(quote_ident(x), ', ') FROM unnest(pinned) AS x), tbl);

    -- The writer's side: one staged row per statement, no JSON, no per-row work
    -- beyond copying the row into the array.
    -- A statement of more than 100,000 rows is staged as several rows of at
    -- most 100,000 (an array is limited to 1 GB, and an expansion slice
    -- reads its staged row whole); numbering the rows costs a little, so
    -- smaller statements are staged without it.
    IF 'insert' = ANY (ops) THEN
        write_body := write_body || format($f$
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows OFFSET 100000) THEN
            INSERT INTO %1$s (batch, op, n, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'i', count(*), array_agg(n::%2$s) FROM new_rows n HAVING count(*) > 0;
        ELSE
            INSERT INTO %1$s (batch, op, n, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'i', count(*), array_agg(c.r)
              FROM (SELECT n::%2$s AS r, (row_number() OVER () - 1) / 100000 AS g FROM new_rows n) c GROUP BY c.g;
        END IF;
    END IF;$f$, staged, row_type);
    END IF;
    IF 'update' = ANY (ops) THEN
        -- Old and new images of a row sit at the same position of the two
        -- transition tables; each staged row keeps them aligned.
        write_body := write_body || format($f$
    IF TG_OP = 'UPDATE' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows OFFSET 100000) THEN
            INSERT INTO %1$s (batch, op, n, old_rows, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'u', count(*), (SELECT array_agg(o::%2$s) FROM old_rows o), array_agg(n::%2$s)
              FROM new_rows n HAVING count(*) > 0;
        ELSE
            INSERT INTO %1$s (batch, op, n, old_rows, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'u', count(*), array_agg(a.r), array_agg(b.r)
              FROM (SELECT o::%2$s AS r, row_number() OVER () AS i FROM old_rows o) a
              JOIN (SELECT n::%2$s AS r, row_number() OVER () AS i FROM new_rows n) b ON b.i = a.i
             GROUP BY (a.i - 1) / 100000;
        END IF;
    END IF;$f$, staged, row_type);
    END IF;
    IF 'delete' = ANY (ops) THEN
        write_body := write_body || format($f$
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM old_rows OFFSET 100000) THEN
            INSERT INTO %1$s (batch, op, n, old_rows)
            SELECT nextval('tailhook.capture_batch'), 'd', count(*), array_agg(o::%2$s) FROM old_rows o HAVING count(*) > 0;
        ELSE
            INSERT INTO %1$s (batch, op, n, old_rows)
            SELECT nextval('tailhook.capture_batch'), 'd', count(*), array_agg(c.r)
              FROM (SELECT o::%2$s AS r, (row_number() OVER () - 1) / 100000 AS g FROM old_rows o) c GROUP BY c.g;
        END IF;
    END IF;$f$, staged, row_type);
    END IF;
    -- SECURITY DEFINER: the writing role needs no privilege on tailhook's
    -- objects (a trigger function cannot be called any other way).
    EXECUTE format($f$CREATE FUNCTION tailhook.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        SET jit = off SET search_path = pg_catalog, pg_temp AS %L$f$, fname,
        format($b$
-- tailhook capture v15: generated by tailhook.capture, replaced by capture, dropped by uncapture.
BEGIN%s
    IF FOUND THEN
        -- The payload tells tailhook to expand before its fan-out (an
        -- outbox insert's empty one does not).
        PERFORM pg_notify('tailhook_outbox', 'capture');
    END IF;
    RETURN NULL;
END
$b$, write_body));

    -- tailhook's side: the staged statements of this table with a batch below
    -- `upto`, oldest first, up to `budget` rows; returns how many rows it took.
    -- Rows come out of the arrays in lockstep (SRFs in one select list): an
    -- UPDATE's old and new images of one row sit at the same position
    -- (PostgreSQL records them as a pair); they are one event when their keys
    -- are equal, else (the key itself changed) two: one with only `new`, one
    -- with only `old`. A pair whose captured columns are all equal is dropped.
    expand_body := format($f$
DECLARE
    s record;
    tbl text;
    lo int;
    hi int;
    used int := 0;
BEGIN
    SELECT format('%%I.%%I', n.nspname, c.relname) INTO tbl
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %1$s;
    -- The columns named below must still be there by these names (a plan
    -- cached before a rename would otherwise go on with the old attribute).
    IF (SELECT count(*) FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = %1$s AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY (%10$L::text[])) <> %12$s THEN
        RAISE EXCEPTION 'a column captured from %% was renamed (captured: %%); run tailhook.capture again', tbl, %10$L;
    END IF;
    FOR s IN SELECT x.batch, x.op, x.n, x.done FROM %2$s x WHERE x.batch < upto ORDER BY x.batch LOOP
        EXIT WHEN used >= budget;
        lo := s.done + 1;
        hi := least(s.n, s.done + (budget - used));
        IF s.op = 'i' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %3$L, jsonb_build_object('table', tbl, 'operation', 'insert', 'new', %6$s, 'old', NULL),
                   %8$s, (u.n).%11$I::text, u.created_at
              FROM (SELECT unnest(x.new_rows) AS n, generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSIF s.op = 'd' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %5$L, jsonb_build_object('table', tbl, 'operation', 'delete', 'new', NULL, 'old', %7$s),
                   %9$s, (u.o).%11$I::text, u.created_at
              FROM (SELECT unnest(x.old_rows) AS o, generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSE
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %4$L, jsonb_build_object('table', tbl, 'operation', 'update', 'new', e.nj, 'old', e.oj),
                   e.tenant, e.k, p.created_at
              FROM (SELECT u.created_at, %6$s AS nj, %7$s AS oj, (u.n).%11$I AS nk, (u.o).%11$I AS ok,
                           %8$s AS nt, %9$s AS ot
                      FROM (SELECT unnest(x.old_rows) AS o, unnest(x.new_rows) AS n, generate_series(1, x.n) AS i, x.created_at
                              FROM %2$s x WHERE x.batch = s.batch) u
                     WHERE u.i BETWEEN lo AND hi) p
             CROSS JOIN LATERAL (VALUES
                   (p.ok = p.nk, p.nj, p.oj, coalesce(p.nt, p.ot), p.nk::text),
                   (p.ok = p.nk IS NOT TRUE, p.nj, NULL, p.nt, p.nk::text),
                   (p.ok = p.nk IS NOT TRUE, NULL, p.oj, p.ot, p.ok::text)) AS e(keep, nj, oj, tenant, k)
             WHERE e.keep AND e.nj IS DISTINCT FROM e.oj;
        END IF;
        used := used + (hi - lo + 1);
        IF hi >= s.n THEN
            DELETE FROM %2$s x WHERE x.batch = s.batch;
        ELSE
            UPDATE %2$s x SET done = hi WHERE x.batch = s.batch;
        END IF;
    END LOOP;
    RETURN used;
END
$f$, tbl::oid, staged, capture.event_type || '.inserted', capture.event_type || '.updated',
        capture.event_type || '.deleted',
        tailhook.capture_json('u.n', capture.columns), tailhook.capture_json('u.o', capture.columns),
        CASE WHEN capture.tenant_column IS NULL THEN 'NULL::text' ELSE format('(u.n).%I::text', capture.tenant_column) END,
        CASE WHEN capture.tenant_column IS NULL THEN 'NULL::text' ELSE format('(u.o).%I::text', capture.tenant_column) END,
        pinned, key, cardinality(pinned));
    EXECUTE format($f$CREATE FUNCTION tailhook.%I(upto bigint, budget int) RETURNS int LANGUAGE plpgsql SECURITY DEFINER
        SET jit = off SET search_path = pg_catalog, pg_temp AS %L$f$, fname || '_expand',
        '-- tailhook capture v15: generated by tailhook.capture, replaced by capture, dropped by uncapture.'
        || expand_body);

    FOREACH op IN ARRAY ops LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION tailhook.%I()',
            'tailhook_capture_' || op, upper(op), tbl,
            CASE op WHEN 'insert' THEN 'NEW TABLE AS new_rows'
                    WHEN 'delete' THEN 'OLD TABLE AS old_rows'
                    ELSE 'OLD TABLE AS old_rows NEW TABLE AS new_rows' END,
            fname);
    END LOOP;

    INSERT INTO tailhook.capture_config (relid, event_type, operations, columns, tenant_column, key_column, function_name)
    VALUES (tbl, capture.event_type, ops, capture.columns, capture.tenant_column, key, fname);

    -- Statements the previous options could not expand (a captured column
    -- renamed since) are expanded with the new ones.
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', staged) INTO stuck;
    IF stuck THEN
        LOOP
            EXIT WHEN tailhook.expand_captures(100000) = 0;
        END LOOP;
    END IF;
END
$$;

-- Tables captured under 0012 (their trigger wrote JSON to the outbox) get
-- this version's objects, with their options unchanged (a later version's
-- are left as they are, should this file be run again by hand).
DO $do$
DECLARE
    c tailhook.capture_config%ROWTYPE;
BEGIN
    PERFORM tailhook.capture_forget_dropped();
    FOR c IN SELECT cc.* FROM tailhook.capture_config cc
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                 WHERE p.pronamespace = 'tailhook'::regnamespace
                                   AND p.proname = cc.function_name
                                   AND p.prosrc ~ 'tailhook capture v(1[5-9]|[2-9][0-9]):')
              ORDER BY cc.relid LOOP
        PERFORM tailhook.capture(c.relid::regclass, c.event_type, c.operations, c.columns, c.tenant_column, c.key_column);
    END LOOP;
END
$do$;
