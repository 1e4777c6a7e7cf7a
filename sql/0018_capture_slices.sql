-- tailhook schema, version 18: a captured statement of more than 100,000 rows
-- is staged without sorting it.
-- Plain SQL, safe to re-run: `tailhook.capture` is replaced in place, and a
-- captured table is re-generated only while its trigger function is not yet
-- of this version (so tables captured before are upgraded by `migrate`).
--
-- Why: 0015 staged an UPDATE of more than 100,000 rows (in slices of
-- 100,000) by numbering the old and the new rows and joining them on that
-- number: two sorts of the whole statement, on disk at the default work_mem,
-- then a merge join. Measured (auto_explain, an UPDATE of 102,000 rows of the
-- benchmark's table): its staging INSERT took 220-260 ms against 105-120 ms
-- for 100,000 rows on the path without slices. Now each side is sliced by
-- position and aggregated on its own, and the slices are joined by number:
-- no sort. For an UPDATE of 150,000 rows the staging INSERT took 199-243 ms
-- against 276-314 ms before (same session, alternating). Nothing else
-- changes: the staging table, the expansion and the options stay as 0015
-- made them.

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
        -- transition tables; each staged row keeps them aligned: both sides
        -- are sliced by position and aggregated in scan order (the function
        -- runs with enable_sort off, so the grouping is hashed and keeps that
        -- order), and slice g of the old rows meets slice g of the new.
        write_body := write_body || format($f$
    IF TG_OP = 'UPDATE' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows OFFSET 100000) THEN
            INSERT INTO %1$s (batch, op, n, old_rows, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'u', count(*), (SELECT array_agg(o::%2$s) FROM old_rows o), array_agg(n::%2$s)
              FROM new_rows n HAVING count(*) > 0;
        ELSE
            INSERT INTO %1$s (batch, op, n, old_rows, new_rows)
            SELECT nextval('tailhook.capture_batch'), 'u', a.n, a.r, b.r
              FROM (SELECT c.g, count(*) AS n, array_agg(c.r) AS r
                      FROM (SELECT o::%2$s AS r, (row_number() OVER () - 1) / 100000 AS g FROM old_rows o) c GROUP BY c.g) a
              JOIN (SELECT c.g, array_agg(c.r) AS r
                      FROM (SELECT n::%2$s AS r, (row_number() OVER () - 1) / 100000 AS g FROM new_rows n) c GROUP BY c.g) b
                ON b.g = a.g;
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
        SET jit = off SET enable_sort = off SET search_path = pg_catalog, pg_temp AS %L$f$, fname,
        format($b$
-- tailhook capture v18: generated by tailhook.capture, replaced by capture, dropped by uncapture.
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
        '-- tailhook capture v18: generated by tailhook.capture, replaced by capture, dropped by uncapture.'
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

-- Tables captured before this version get its objects, with their options
-- unchanged (a later version's are left as they are).
DO $do$
DECLARE
    c tailhook.capture_config%ROWTYPE;
BEGIN
    PERFORM tailhook.capture_forget_dropped();
    FOR c IN SELECT cc.* FROM tailhook.capture_config cc
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                 WHERE p.pronamespace = 'tailhook'::regnamespace
                                   AND p.proname = cc.function_name
                                   AND p.prosrc ~ 'tailhook capture v(1[89]|[2-9][0-9]):')
              ORDER BY cc.relid LOOP
        PERFORM tailhook.capture(c.relid::regclass, c.event_type, c.operations, c.columns, c.tenant_column, c.key_column);
    END LOOP;
END
$do$;
