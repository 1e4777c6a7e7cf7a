-- The whole current schema of tailhook, as the migrations in sql/ leave a fresh
-- database (pg_dump --schema-only --schema=tailhook --no-owner, normalised).
-- Generated: do not edit. Regenerate after adding a migration with
--   TAILHOOK_BLESS=1 cargo test --test it schema_file::

-- Name: tailhook; Type: SCHEMA; Schema: -; Owner: -

CREATE SCHEMA tailhook;

-- Name: capture(regclass, text, text[], text[], text, text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture(tbl regclass, event_type text, operations text[] DEFAULT '{insert,update,delete}'::text[], columns text[] DEFAULT NULL::text[], tenant_column text DEFAULT NULL::text, key_column text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
    -- The expansion reads the table's rows (and locks it as a SELECT does)
    -- with this role's privileges.
    IF NOT has_table_privilege(tbl, 'SELECT') THEN
        RAISE EXCEPTION 'tailhook.capture: the role calling capture needs SELECT on %', tbl
            USING ERRCODE = 'insufficient_privilege';
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
-- tailhook capture v19: generated by tailhook.capture, replaced by capture, dropped by uncapture.
BEGIN%s
    IF FOUND THEN
        -- The payload tells tailhook to expand before its fan-out (an
        -- outbox insert's empty one does not).
        PERFORM pg_notify('tailhook_outbox', 'capture');
    END IF;
    RETURN NULL;
END
$b$, write_body));

    EXECUTE format('REVOKE ALL ON FUNCTION tailhook.%I() FROM PUBLIC', fname);

    -- tailhook's side (see capture_make_expand).
    PERFORM tailhook.capture_make_expand(tbl::oid, capture.event_type, capture.columns, capture.tenant_column, key);

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
$_$;

-- Name: capture_base_type(oid); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture_base_type(t oid) RETURNS oid
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH RECURSIVE d(oid, base, depth) AS (
        SELECT y.oid, y.typbasetype, 0 FROM pg_catalog.pg_type y WHERE y.oid = t
        UNION ALL
        SELECT y.oid, y.typbasetype, d.depth + 1 FROM d JOIN pg_catalog.pg_type y ON y.oid = d.base
         WHERE d.base <> 0 AND d.depth < 64)
    SELECT d.oid FROM d ORDER BY d.depth DESC LIMIT 1
$$;

-- Name: capture_drop_objects(oid); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture_drop_objects(r oid) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I()', 'capture_' || r);
    EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I(bigint, int)', 'capture_' || r || '_expand');
    EXECUTE format('DROP VIEW IF EXISTS tailhook.%I', 'capture_' || r || '_columns');
    EXECUTE format('DROP TABLE IF EXISTS tailhook.%I', 'capture_' || r || '_staged');
    EXECUTE format('DROP DOMAIN IF EXISTS tailhook.%I', 'capture_' || r || '_row');
END
$$;

-- Name: capture_element_type(oid); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture_element_type(t oid) RETURNS oid
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT CASE WHEN y.typelem <> 0 AND y.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc
                THEN y.typelem ELSE 0 END
      FROM pg_catalog.pg_type y WHERE y.oid = tailhook.capture_base_type(t)
$$;

-- Name: capture_forget_dropped(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture_forget_dropped() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: capture_json(text, text[]); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture_json(expr text, cols text[]) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: capture_make_expand(oid, text, text[], text, text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture_make_expand(r oid, event_type text, columns text[], tenant_column text, key_column text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    fname text := 'capture_' || r || '_expand';
    staged text := format('tailhook.%I', 'capture_' || r || '_staged');
    pinned text[];
    key_type oid;
    tenant_type oid;
    body text;
    caller oid;
BEGIN
    -- Staging tables made before version 25 get the trace context columns
    -- (only when missing: no lock is taken on one that has them).
    IF to_regclass(staged) IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = staged::pg_catalog.regclass AND a.attname = 'traceparent' AND NOT a.attisdropped) THEN
        EXECUTE format($a$ALTER TABLE %s
            ADD COLUMN IF NOT EXISTS traceparent text DEFAULT tailhook.trace_setting('traceparent'),
            ADD COLUMN IF NOT EXISTS tracestate text DEFAULT tailhook.trace_setting('tracestate')$a$, staged);
    END IF;
    SELECT array_agg(DISTINCT x) INTO pinned
      FROM unnest(ARRAY[key_column, tenant_column] || coalesce(columns, '{}')) AS x WHERE x IS NOT NULL;
    SELECT a.atttypid INTO key_type FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = r AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    SELECT a.atttypid INTO tenant_type FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = r AND a.attname = tenant_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF (SELECT count(*) FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = r AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY (pinned)) <> cardinality(pinned) THEN
        RAISE EXCEPTION 'a column captured from % was renamed or dropped (captured: %); run tailhook.capture again',
            r::regclass, pinned;
    END IF;
    body := format($f$
-- tailhook capture v25: generated by tailhook.capture_make_expand, replaced by capture, dropped by uncapture.
DECLARE
    s record;
    tbl text;
    lo int;
    hi int;
    used int := 0;
BEGIN
    -- No column can be added or dropped while this runs; if the columns are
    -- no longer those this function was generated for, it is generated
    -- again (converting a new column as the old code would is not safe).
    -- (expand_captures sets a short lock_timeout when it must not wait.)
    EXECUTE pg_catalog.format('LOCK TABLE %%s IN ACCESS SHARE MODE', %1$s::pg_catalog.regclass);
    IF tailhook.capture_signature(%1$s) IS DISTINCT FROM %13$L THEN
        PERFORM tailhook.capture_make_expand(%1$s, %14$L, %15$L, %16$L, %11$L);
        EXECUTE pg_catalog.format('SELECT tailhook.%%I($1, $2)', %17$L) INTO used USING upto, budget;
        RETURN used;
    END IF;
    SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname) INTO tbl
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %1$s;
    FOR s IN SELECT x.batch, x.op, x.n, x.done, x.traceparent, x.tracestate FROM %2$s x WHERE x.batch < upto ORDER BY x.batch LOOP
        EXIT WHEN used >= budget;
        lo := s.done + 1;
        hi := least(s.n, s.done + (budget - used));
        IF s.op = 'i' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at, traceparent, tracestate)
            SELECT %3$L, pg_catalog.jsonb_build_object('table', tbl, 'operation', 'insert', 'new', %6$s, 'old', NULL),
                   %8$s, %12$s, u.created_at, s.traceparent, s.tracestate
              FROM (SELECT pg_catalog.unnest(x.new_rows) AS n, pg_catalog.generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSIF s.op = 'd' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at, traceparent, tracestate)
            SELECT %5$L, pg_catalog.jsonb_build_object('table', tbl, 'operation', 'delete', 'new', NULL, 'old', %7$s),
                   %9$s, %18$s, u.created_at, s.traceparent, s.tracestate
              FROM (SELECT pg_catalog.unnest(x.old_rows) AS o, pg_catalog.generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSE
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at, traceparent, tracestate)
            SELECT %4$L, pg_catalog.jsonb_build_object('table', tbl, 'operation', 'update', 'new', e.nj, 'old', e.oj),
                   e.tenant, e.k, p.created_at, s.traceparent, s.tracestate
              FROM (SELECT u.created_at, %6$s AS nj, %7$s AS oj, (u.n).%11$I AS nk, (u.o).%11$I AS ok,
                           %8$s AS nt, %9$s AS ot, %12$s AS nkt, %18$s AS okt
                      FROM (SELECT pg_catalog.unnest(x.old_rows) AS o, pg_catalog.unnest(x.new_rows) AS n,
                                   pg_catalog.generate_series(1, x.n) AS i, x.created_at
                              FROM %2$s x WHERE x.batch = s.batch) u
                     WHERE u.i BETWEEN lo AND hi) p
             CROSS JOIN LATERAL (VALUES
                   (p.ok = p.nk, p.nj, p.oj, coalesce(p.nt, p.ot), p.nkt),
                   (p.ok = p.nk IS NOT TRUE, p.nj, NULL, p.nt, p.nkt),
                   (p.ok = p.nk IS NOT TRUE, NULL, p.oj, p.ot, p.okt)) AS e(keep, nj, oj, tenant, k)
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
$f$, r, staged, event_type || '.inserted', event_type || '.updated', event_type || '.deleted',
        tailhook.capture_row_projection('u.n', r, columns), tailhook.capture_row_projection('u.o', r, columns),
        CASE WHEN tenant_column IS NULL THEN 'NULL::pg_catalog.text'
             ELSE tailhook.capture_value_text(format('(u.n).%I', tenant_column), tenant_type) END,
        CASE WHEN tenant_column IS NULL THEN 'NULL::pg_catalog.text'
             ELSE tailhook.capture_value_text(format('(u.o).%I', tenant_column), tenant_type) END,
        pinned, key_column,
        tailhook.capture_value_text(format('(u.n).%I', key_column), key_type),
        tailhook.capture_signature(r), event_type, columns, tenant_column, fname,
        tailhook.capture_value_text(format('(u.o).%I', key_column), key_type));
    EXECUTE format($f$CREATE OR REPLACE FUNCTION tailhook.%I(upto bigint, budget int) RETURNS int
        LANGUAGE plpgsql SECURITY DEFINER SET jit = off SET search_path = pg_catalog, pg_temp AS %L$f$, fname, body);
    EXECUTE format('REVOKE ALL ON FUNCTION tailhook.%I(bigint, int) FROM PUBLIC', fname);
    SELECT p.proowner INTO caller FROM pg_catalog.pg_proc p
     WHERE p.oid = 'tailhook.expand_captures(int, boolean)'::pg_catalog.regprocedure;
    IF caller IS NOT NULL AND caller <> (SELECT p.proowner FROM pg_catalog.pg_proc p
                                          WHERE p.oid = format('tailhook.%I(bigint, int)', fname)::pg_catalog.regprocedure) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION tailhook.%I(bigint, int) TO %s', fname, caller::pg_catalog.regrole);
    END IF;
END
$_$;

-- Name: capture_row_json(text, text[]); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture_row_json(rel text, cols text[]) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    parts text[] := '{}';
    args text[] := '{}';
    i int;
BEGIN
    IF cols IS NULL THEN
        RETURN format('to_jsonb(%I.*)', rel);
    END IF;
    FOR i IN 1 .. cardinality(cols) LOOP
        args := args || format('%L, %I.%I', cols[i], rel, cols[i]);
        IF cardinality(args) = 50 OR i = cardinality(cols) THEN
            parts := parts || format('jsonb_build_object(%s)', array_to_string(args, ', '));
            args := '{}';
        END IF;
    END LOOP;
    RETURN array_to_string(parts, ' || ');
END
$$;

-- Name: capture_row_projection(text, oid, text[]); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture_row_projection(expr text, r oid, cols text[]) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    parts text[] := '{}';
    args text[] := '{}';
    a record;
BEGIN
    IF cols IS NULL AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_attribute x
         WHERE x.attrelid = r AND x.attnum > 0 AND NOT x.attisdropped AND NOT tailhook.capture_trusted(x.atttypid)) THEN
        -- Every column trusted: the row whole (the expansion re-generates
        -- itself, under a lock, before a column added since is converted).
        RETURN format('pg_catalog.to_jsonb(%s)', expr);
    END IF;
    FOR a IN SELECT x.attname, x.atttypid FROM pg_catalog.pg_attribute x
              WHERE x.attrelid = r AND x.attnum > 0 AND NOT x.attisdropped
                AND (cols IS NULL OR x.attname = ANY (cols))
              ORDER BY CASE WHEN cols IS NULL THEN x.attnum ELSE pg_catalog.array_position(cols, x.attname::text) END LOOP
        args := args || format('%L, %s', a.attname,
            tailhook.capture_value_json(format('(%s).%I', expr, a.attname), a.atttypid));
        IF cardinality(args) = 50 THEN
            parts := parts || format('pg_catalog.jsonb_build_object(%s)', array_to_string(args, ', '));
            args := '{}';
        END IF;
    END LOOP;
    IF cardinality(args) > 0 OR cardinality(parts) = 0 THEN
        parts := parts || format('pg_catalog.jsonb_build_object(%s)', array_to_string(args, ', '));
    END IF;
    RETURN array_to_string(parts, ' OPERATOR(pg_catalog.||) ');
END
$$;

-- Name: capture_signature(oid); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture_signature(r oid) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    rels oid[] := ARRAY[r];
    todo oid[];
    y record;
    steps int := 0;
    sig text;
    nested boolean;
BEGIN
    -- The common case in one query: no column of a domain, array or
    -- composite type.
    SELECT string_agg(format('%s.%s:%s:%s', a.attrelid, a.attnum, a.attname, a.atttypid), ',' ORDER BY a.attnum),
           bool_or(t.typtype IN ('d', 'c') OR t.typelem <> 0)
      INTO sig, nested
      FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = r AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT coalesce(nested, false) THEN
        RETURN sig;
    END IF;
    todo := ARRAY(SELECT a.atttypid FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = r AND a.attnum > 0 AND NOT a.attisdropped);
    WHILE cardinality(todo) > 0 AND steps < 10000 LOOP
        steps := steps + 1;
        SELECT t.typtype, t.typbasetype, t.typelem, t.typsubscript, t.typrelid INTO y
          FROM pg_catalog.pg_type t WHERE t.oid = todo[1];
        todo := todo[2:];
        IF y.typtype = 'd' THEN
            todo := todo || y.typbasetype;
        ELSIF y.typelem <> 0 AND y.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc THEN
            todo := todo || y.typelem;
        ELSIF y.typtype = 'c' AND y.typrelid <> ALL (rels) THEN
            rels := rels || y.typrelid;
            todo := todo || ARRAY(SELECT a.atttypid FROM pg_catalog.pg_attribute a
                                   WHERE a.attrelid = y.typrelid AND a.attnum > 0 AND NOT a.attisdropped);
        END IF;
    END LOOP;
    RETURN (SELECT string_agg(format('%s.%s:%s:%s', a.attrelid, a.attnum, a.attname, a.atttypid), ',' ORDER BY x.o, a.attnum)
              FROM unnest(rels) WITH ORDINALITY AS x(relid, o)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = x.relid AND a.attnum > 0 AND NOT a.attisdropped);
END
$$;

-- Name: capture_trusted(oid, integer); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture_trusted(t oid, depth integer DEFAULT 0) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    b oid := tailhook.capture_base_type(t);
    e oid := tailhook.capture_element_type(t);
    y pg_catalog.pg_type%ROWTYPE;
BEGIN
    IF depth > 32 OR b IS NULL THEN
        RETURN false;
    END IF;
    IF e <> 0 THEN
        RETURN tailhook.capture_trusted(e, depth + 1);
    END IF;
    SELECT * INTO y FROM pg_catalog.pg_type WHERE oid = b;
    IF NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = y.typowner), false) THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_cast c
                 LEFT JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc
                 LEFT JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
                WHERE c.castsource = b AND c.castfunc <> 0 AND NOT coalesce(r.rolsuper, false)) THEN
        RETURN false;
    END IF;
    IF y.typrelid <> 0 THEN
        RETURN NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = y.typrelid AND a.attnum > 0 AND NOT a.attisdropped
               AND NOT tailhook.capture_trusted(a.atttypid, depth + 1));
    END IF;
    RETURN true;
END
$$;

-- Name: capture_value_json(text, oid, integer); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture_value_json(expr text, t oid, depth integer DEFAULT 0) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    b oid := tailhook.capture_base_type(t);
    e oid := tailhook.capture_element_type(t);
    rel oid;
    parts text[] := '{}';
    args text[] := '{}';
    a record;
BEGIN
    IF depth > 32 THEN
        RAISE EXCEPTION 'tailhook.capture: % nests types more than 32 levels deep', expr
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF tailhook.capture_trusted(t) THEN
        RETURN format('pg_catalog.to_jsonb(%s)', expr);
    END IF;
    IF e <> 0 THEN
        IF (SELECT y.typrelid FROM pg_catalog.pg_type y WHERE y.oid = tailhook.capture_base_type(e)) <> 0 THEN
            -- An array of composites: one object per element (in storage order).
            RETURN format('(SELECT pg_catalog.jsonb_agg(%s ORDER BY x.o) FROM pg_catalog.unnest(%s) WITH ORDINALITY AS x(v, o))',
                tailhook.capture_value_json('x.v', e, depth + 1), expr);
        END IF;
        -- The array's text, read back as text[]: its elements' output texts.
        RETURN format('CASE WHEN pg_catalog.num_nulls(%s) = 1 THEN NULL ELSE pg_catalog.to_jsonb(pg_catalog.format(''%%s'', %s)::pg_catalog.text[]) END', expr, expr);
    END IF;
    SELECT y.typrelid INTO rel FROM pg_catalog.pg_type y WHERE y.oid = b;
    IF rel = 0 THEN
        RETURN format('CASE WHEN pg_catalog.num_nulls(%s) = 1 THEN NULL ELSE pg_catalog.to_jsonb(pg_catalog.format(''%%s'', %s)) END', expr, expr);
    END IF;
    FOR a IN SELECT x.attname, x.atttypid FROM pg_catalog.pg_attribute x
              WHERE x.attrelid = rel AND x.attnum > 0 AND NOT x.attisdropped ORDER BY x.attnum LOOP
        args := args || format('%L, %s', a.attname,
            tailhook.capture_value_json(format('(%s).%I', expr, a.attname), a.atttypid, depth + 1));
        IF cardinality(args) = 50 THEN
            parts := parts || format('pg_catalog.jsonb_build_object(%s)', array_to_string(args, ', '));
            args := '{}';
        END IF;
    END LOOP;
    IF cardinality(args) > 0 OR cardinality(parts) = 0 THEN
        parts := parts || format('pg_catalog.jsonb_build_object(%s)', array_to_string(args, ', '));
    END IF;
    RETURN format('CASE WHEN pg_catalog.num_nulls(%s) = 1 THEN NULL ELSE %s END', expr,
        array_to_string(parts, ' OPERATOR(pg_catalog.||) '));
END
$$;

-- Name: capture_value_text(text, oid); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.capture_value_text(expr text, t oid) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF tailhook.capture_trusted(t) THEN
        RETURN format('(%s)::pg_catalog.text', expr);
    END IF;
    RETURN format('CASE WHEN pg_catalog.num_nulls(%s) = 1 THEN NULL ELSE pg_catalog.format(''%%s'', %s) END', expr, expr);
END
$$;

-- Name: cascade_delete(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.cascade_delete() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
        BEGIN
            CASE TG_TABLE_NAME
            WHEN 'outbox' THEN
                DELETE FROM tailhook.deliveries d USING old_rows o WHERE d.outbox_id = o.id;
            WHEN 'endpoints' THEN
                DELETE FROM tailhook.deliveries d USING old_rows e WHERE d.endpoint_id = e.id;
            WHEN 'deliveries' THEN
                DELETE FROM tailhook.attempts a USING old_rows d WHERE a.delivery_id = d.id;
            END CASE;
            RETURN NULL;
        END
        $$;

-- Name: create_api_token(text, text, text, interval); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.create_api_token(scope text, tenant text DEFAULT NULL::text, name text DEFAULT NULL::text, expires_in interval DEFAULT NULL::interval) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    token text;
BEGIN
    IF create_api_token.scope IS NULL OR create_api_token.scope NOT IN ('read', 'write', 'admin') THEN
        RAISE EXCEPTION 'tailhook.create_api_token: scope must be read, write or admin'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF create_api_token.tenant = '' THEN
        RAISE EXCEPTION 'tailhook.create_api_token: tenant must not be empty (NULL: every tenant)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF create_api_token.expires_in <= interval '0' THEN
        RAISE EXCEPTION 'tailhook.create_api_token: expires_in must be positive'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    token := 'thk_' || encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'hex');
    INSERT INTO tailhook.api_tokens (name, prefix, hash, scope, tenant, expires_at)
    VALUES (create_api_token.name, substr(token, 1, 12), sha256(convert_to(token, 'UTF8')),
            create_api_token.scope, create_api_token.tenant, now() + create_api_token.expires_in);
    RETURN token;
END
$$;

-- Name: delivery_failed_event(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.delivery_failed_event() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    ev record;
BEGIN
    IF NOT tailhook.operational_wanted('tailhook.delivery.failed', NEW.endpoint_id) THEN
        RETURN NULL;
    END IF;
    SELECT o.event_id, o.event_type INTO ev FROM tailhook.outbox o WHERE o.id = NEW.outbox_id;
    IF starts_with(ev.event_type, 'tailhook.') AND ev.event_type <> 'tailhook.test' THEN
        RETURN NULL;
    END IF;
    PERFORM tailhook.emit_endpoint_event('tailhook.delivery.failed', NEW.endpoint_id, jsonb_build_object(
        'delivery_id', NEW.id,
        'event_id', ev.event_id,
        'event_type', ev.event_type,
        'attempts', NEW.attempts,
        'last_status_code', NEW.last_status_code,
        'last_error', NEW.last_error));
    RETURN NULL;
END
$$;

-- Name: emit_endpoint_event(text, bigint, jsonb); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.emit_endpoint_event(event_type text, subject bigint, details jsonb) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF NOT tailhook.operational_wanted(emit_endpoint_event.event_type, subject) THEN
        RETURN 0;
    END IF;
    INSERT INTO tailhook.outbox (event_type, payload)
    SELECT emit_endpoint_event.event_type,
           jsonb_build_object('endpoint', jsonb_build_object(
               'id', e.id, 'name', e.name, 'tenant', e.tenant,
               -- host[:port] only: no credentials, path or query
               'host', substring(e.url FROM '^[A-Za-z]+://(?:[^@/?#]*@)?([^/?#]*)'))) || details
      FROM tailhook.endpoints e
     WHERE e.id = subject;
    RETURN 1;
END
$$;

-- Name: enable_endpoint(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.enable_endpoint(endpoint_name text) RETURNS boolean
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH e AS (
        UPDATE tailhook.endpoints
           SET enabled = true, disabled_reason = NULL, auto_disabled = false, paused_until = NULL,
               consecutive_failures = 0, failing_since = NULL
         WHERE name = enable_endpoint.endpoint_name
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM e)
$$;

-- Name: endpoints_check_filters(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.endpoints_check_filters() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    problem text;
    col text;
BEGIN
    IF TG_OP = 'INSERT' OR NEW.filter_path::text IS DISTINCT FROM OLD.filter_path::text THEN
        problem := tailhook.filter_path_problem(NEW.filter_path::text);
        col := 'filter_path';
    END IF;
    IF problem IS NULL AND (TG_OP = 'INSERT' OR NEW.filter IS DISTINCT FROM OLD.filter) THEN
        problem := tailhook.filter_problem(NEW.filter);
        col := 'filter';
    END IF;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = problem, COLUMN = col,
            TABLE = 'endpoints', SCHEMA = 'tailhook', CONSTRAINT = 'endpoints_filters_bounded',
            HINT = 'see "Filters" in docs/guide/security.md';
    END IF;
    RETURN NEW;
END
$$;

-- Name: endpoints_validate(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.endpoints_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    col text;
    problem text;
    rule text;
BEGIN
    -- A NOT NULL violation's DETAIL shows the row too.
    SELECT k INTO col
      FROM unnest(ARRAY['name', 'url', 'event_types', 'secrets', 'headers', 'enabled', 'ordered',
                        'managed_by', 'standard_signature']) AS k
     WHERE to_jsonb(NEW) -> k = 'null'::jsonb
     LIMIT 1;
    IF col IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'not_null_violation', MESSAGE = 'tailhook.endpoints ' || col || ': must not be NULL',
            COLUMN = col, TABLE = 'endpoints', SCHEMA = 'tailhook';
    END IF;
    IF NEW.name = '' THEN
        col := 'name'; rule := 'endpoints_name_not_empty'; problem := 'name: must not be empty';
    ELSIF NEW.url !~* '^https?://[^/?#]+' THEN
        col := 'url'; rule := 'endpoints_url_http'; problem := 'url: must be an http or https URL with a host';
    ELSIF length(NEW.url) > 2048 THEN
        col := 'url'; rule := 'endpoints_url_length'; problem := 'url: is longer than 2048 characters';
    ELSIF NOT coalesce(tailhook.event_types_valid(NEW.event_types), false) THEN
        col := 'event_types'; rule := 'endpoints_event_types_valid';
        problem := 'event_types: must list 1 to 100 non-empty patterns, one-dimensional (`*` for all)';
    ELSIF NOT coalesce(tailhook.secrets_valid(NEW.secrets), false) THEN
        col := 'secrets'; rule := 'endpoints_secrets_valid';
        problem := 'secrets: each must be `whsec_` followed by the padded base64 of 24 to 64 bytes '
                   '(make one with `tailhook secret`), or such a value sealed; at most 10, no NULL';
    ELSIF jsonb_typeof(NEW.headers) <> 'object' THEN
        col := 'headers'; rule := 'endpoints_headers_object'; problem := 'headers: must be a JSON object';
    ELSIF NOT tailhook.headers_valid(NEW.headers) THEN
        col := 'headers'; rule := 'endpoints_headers_valid';
        problem := 'headers: must be a JSON object of at most 32 string values, each name and value '
                   'at most 4096 bytes, 16384 bytes together';
    ELSIF NEW.max_attempts < 1 OR NEW.max_attempts > 1000 THEN
        col := 'max_attempts'; problem := 'max_attempts: must be 1 to 1000';
        rule := CASE WHEN NEW.max_attempts < 1 THEN 'endpoints_max_attempts_positive' ELSE 'endpoints_max_attempts_max' END;
    ELSIF NEW.timeout_ms < 1 OR NEW.timeout_ms > 60000 THEN
        col := 'timeout_ms'; problem := 'timeout_ms: must be 1 to 60000';
        rule := CASE WHEN NEW.timeout_ms < 1 THEN 'endpoints_timeout_ms_positive' ELSE 'endpoints_timeout_ms_max' END;
    ELSIF NEW.rate_limit_per_sec < 1 OR NEW.rate_limit_per_sec > 10000 THEN
        col := 'rate_limit_per_sec'; problem := 'rate_limit_per_sec: must be 1 to 10000';
        rule := CASE WHEN NEW.rate_limit_per_sec < 1 THEN 'endpoints_rate_limit_positive' ELSE 'endpoints_rate_limit_max' END;
    ELSIF NEW.max_in_flight < 1 OR NEW.max_in_flight > 1000 THEN
        col := 'max_in_flight'; problem := 'max_in_flight: must be 1 to 1000';
        rule := CASE WHEN NEW.max_in_flight < 1 THEN 'endpoints_max_in_flight_positive' ELSE 'endpoints_max_in_flight_max' END;
    ELSIF octet_length(NEW.transform) > 65536 THEN
        col := 'transform'; rule := 'endpoints_transform_length'; problem := 'transform: is longer than 65536 bytes';
    ELSIF tailhook.legacy_signature_problem(NEW.legacy_signature) IS NOT NULL THEN
        col := 'legacy_signature'; rule := 'endpoints_legacy_signature_valid';
        problem := tailhook.legacy_signature_problem(NEW.legacy_signature);
    ELSIF NOT tailhook.legacy_secret_valid(NEW.legacy_secret) THEN
        col := 'legacy_secret'; rule := 'endpoints_legacy_secret_valid';
        problem := 'legacy_secret: must be 16 to 256 bytes, or such a value sealed';
    ELSIF (NEW.legacy_signature IS NULL) <> (NEW.legacy_secret IS NULL) THEN
        col := CASE WHEN NEW.legacy_secret IS NULL THEN 'legacy_secret' ELSE 'legacy_signature' END;
        rule := 'endpoints_legacy_pair';
        problem := col || ': legacy_signature and legacy_secret are set together or not at all';
    ELSIF NOT coalesce(tailhook.pem_certificates_valid(NEW.tls_client_cert, 65536), true) THEN
        col := 'tls_client_cert'; rule := 'endpoints_tls_client_cert_valid';
        problem := 'tls_client_cert: must be PEM CERTIFICATE blocks (the certificate, then its chain), '
                   'at most 65536 bytes';
    ELSIF NOT coalesce(tailhook.pem_key_valid(NEW.tls_client_key), true) THEN
        col := 'tls_client_key'; rule := 'endpoints_tls_client_key_valid';
        problem := 'tls_client_key: must be one unencrypted PEM private key (PRIVATE KEY, RSA PRIVATE KEY '
                   'or EC PRIVATE KEY) of at most 16384 bytes, or such a key sealed';
    ELSIF (NEW.tls_client_cert IS NULL) <> (NEW.tls_client_key IS NULL) THEN
        col := CASE WHEN NEW.tls_client_key IS NULL THEN 'tls_client_key' ELSE 'tls_client_cert' END;
        rule := 'endpoints_tls_client_pair';
        problem := col || ': tls_client_cert and tls_client_key are set together or not at all';
    ELSIF NOT coalesce(tailhook.pem_certificates_valid(NEW.tls_ca_bundle, 524288), true) THEN
        col := 'tls_ca_bundle'; rule := 'endpoints_tls_ca_bundle_valid';
        problem := 'tls_ca_bundle: must be PEM CERTIFICATE blocks, at most 524288 bytes';
    ELSIF NEW.managed_by NOT IN ('sql', 'config') THEN
        col := 'managed_by'; rule := 'endpoints_managed_by_known'; problem := 'managed_by: must be sql or config';
    END IF;
    -- CONSTRAINT names the CHECK this check runs ahead of.
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = 'tailhook.endpoints ' || problem,
            COLUMN = col, TABLE = 'endpoints', SCHEMA = 'tailhook', CONSTRAINT = rule,
            HINT = 'the rules are listed under "tailhook.endpoints" in docs/reference.md';
    END IF;
    RETURN NEW;
END
$$;

-- Name: event_ids_chunks(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.event_ids_chunks() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: event_ids_expire(integer); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.event_ids_expire(batch integer) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

-- Name: event_ids_name_key(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.event_ids_name_key(part text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: event_ids_prepare(timestamp with time zone, timestamp with time zone, text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.event_ids_prepare(lo timestamp with time zone, hi timestamp with time zone, part text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

-- Name: event_type_matches(text[], text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.event_type_matches(patterns text[], event_type text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    BEGIN ATOMIC
 SELECT (EXISTS ( SELECT 1
            FROM unnest(event_type_matches.patterns) p(p)
           WHERE (((p.p = '*'::text) AND (NOT (starts_with(event_type_matches.event_type, 'tailhook.'::text) AND (event_type_matches.event_type <> 'tailhook.test'::text)))) OR (p.p = event_type_matches.event_type) OR (("right"(p.p, 2) = '.*'::text) AND starts_with(event_type_matches.event_type, "left"(p.p, '-1'::integer)))))) AS "exists";
END;

-- Name: event_types_valid(text[]); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.event_types_valid(patterns text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT array_ndims(patterns) = 1
       AND cardinality(patterns) BETWEEN 1 AND 100
       AND NOT EXISTS (SELECT 1 FROM unnest(patterns) AS p WHERE p IS NULL OR p = '')
$$;

-- Name: expand_captures(integer, boolean); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.expand_captures(max_rows integer DEFAULT 100000, wait boolean DEFAULT true) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
    old_lock_timeout text := current_setting('lock_timeout');
BEGIN
    -- The cheap answer when nothing is captured.
    IF NOT EXISTS (SELECT 1 FROM tailhook.capture_config) THEN
        RETURN 0;
    END IF;
    IF wait THEN
        PERFORM pg_advisory_xact_lock(7368003);
    ELSIF NOT pg_try_advisory_xact_lock(7368003) THEN
        RETURN 0;
    ELSE
        PERFORM set_config('lock_timeout', '100ms', true);
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
        EXCEPTION
            WHEN lock_not_available THEN
                -- DDL holds the table: the rest waits for the next call, in order.
                EXIT;
            WHEN OTHERS THEN
                RAISE WARNING 'tailhook.expand_captures: the changes of % cannot be expanded and stay staged: % (after renaming a captured column, run tailhook.capture again)',
                    first_rel::regclass, SQLERRM;
                skipped := skipped || first_rel;
                CONTINUE;
        END;
        total := total + used;
        budget := budget - used;
        EXIT WHEN budget <= 0;
    END LOOP;
    PERFORM set_config('lock_timeout', old_lock_timeout, true);
    RETURN total;
END
$_$;

-- Name: filter_path_matches(jsonb, jsonpath, bigint, double precision, double precision); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.filter_path_matches(payload jsonb, path jsonpath, endpoint_id bigint, endpoint_budget_ms double precision, claim_budget_ms double precision) RETURNS text
    LANGUAGE plpgsql
    AS $$
DECLARE
    started pg_catalog.timestamptz := pg_catalog.clock_timestamp();
    spent_key pg_catalog.text := 'tailhook.filter_ms_' OPERATOR(pg_catalog.||) endpoint_id;
    spent pg_catalog.text := pg_catalog.current_setting(spent_key, true);
    all_spent pg_catalog.text := pg_catalog.current_setting('tailhook.filter_ms', true);
    took pg_catalog.float8;
    result pg_catalog.text;
BEGIN
    IF spent OPERATOR(pg_catalog.>) '' AND spent::pg_catalog.float8 OPERATOR(pg_catalog.>) endpoint_budget_ms THEN
        RETURN pg_catalog.format('filter_path not evaluated: this endpoint''s filter took over %s ms in one claim',
                                 endpoint_budget_ms);
    END IF;
    IF all_spent OPERATOR(pg_catalog.>) '' AND all_spent::pg_catalog.float8 OPERATOR(pg_catalog.>) claim_budget_ms THEN
        RETURN pg_catalog.format('filter_path not evaluated: filters took over %s ms in one claim', claim_budget_ms);
    END IF;
    BEGIN
        result := CASE WHEN pg_catalog.jsonb_path_match(payload, path, '{}'::pg_catalog.jsonb, true)
                       THEN 'match' ELSE 'no match' END;
    EXCEPTION WHEN OTHERS THEN
        result := pg_catalog.left('filter_path could not be evaluated: ' OPERATOR(pg_catalog.||) SQLERRM, 500);
    END;
    took := pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) started)
            OPERATOR(pg_catalog.*) 1000;
    IF took OPERATOR(pg_catalog.>=) 0.2 THEN
        PERFORM pg_catalog.set_config(spent_key,
            (CASE WHEN spent OPERATOR(pg_catalog.>) '' THEN spent::pg_catalog.float8 ELSE 0 END
             OPERATOR(pg_catalog.+) took)::pg_catalog.text, true);
        PERFORM pg_catalog.set_config('tailhook.filter_ms',
            (CASE WHEN all_spent OPERATOR(pg_catalog.>) '' THEN all_spent::pg_catalog.float8 ELSE 0 END
             OPERATOR(pg_catalog.+) took)::pg_catalog.text, true);
    END IF;
    RETURN result;
END
$$;

-- Name: filter_path_problem(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.filter_path_problem(path text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    max_bytes CONSTANT int := 1024;
    max_steps CONSTANT int := 16;
    max_nesting CONSTANT int := 3;
    n int := length(path);
    i int := 1;
    j int;
    ch text;
    tok text[] := '{}';
    t text;
    stack text[] := '{}';
    depth int;
    nesting int;
    steps int := 0;
    descents int := 0;
    k int;
    side_refs int[];
BEGIN
    IF path IS NULL THEN
        RETURN NULL;
    END IF;
    IF octet_length(path) > max_bytes THEN
        RETURN format('filter_path: is longer than %s bytes', max_bytes);
    END IF;
    -- Tokens: S string, N number, W:<word>, V variable, or the punctuation itself.
    WHILE i <= n LOOP
        ch := substr(path, i, 1);
        IF ch ~ '\s' THEN
            i := i + 1;
        ELSIF ch = '"' THEN
            j := i + 1;
            WHILE j <= n AND substr(path, j, 1) <> '"' LOOP
                j := j + CASE WHEN substr(path, j, 1) = '\' THEN 2 ELSE 1 END;
            END LOOP;
            tok := tok || 'S'::text;
            i := j + 1;
        ELSIF ch = '$' AND i < n AND substr(path, i + 1, 1) ~ '["A-Za-z_0-9]' THEN
            RETURN 'filter_path: uses a variable ($name); none are passed';
        ELSIF ch ~ '[0-9]' THEN
            tok := tok || 'N'::text;
            i := i + length(substring(substr(path, i) FROM '^[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'));
        ELSIF ch ~ '[A-Za-z_]' THEN
            t := substring(substr(path, i) FROM '^[A-Za-z_][A-Za-z_0-9]*');
            tok := tok || ('W:' || t);
            i := i + length(t);
        ELSE
            t := substr(path, i, 2);
            IF t IN ('**', '==', '!=', '<>', '<=', '>=', '&&', '||') THEN
                tok := tok || t;
                i := i + 2;
            ELSE
                tok := tok || ch;
                i := i + 1;
            END IF;
        END IF;
    END LOOP;

    FOR k IN 1 .. coalesce(cardinality(tok), 0) LOOP
        t := tok[k];
        IF t = '(' THEN
            stack := stack || CASE WHEN k > 1 AND tok[k - 1] = '?' THEN 'f'
                                   WHEN k > 1 AND tok[k - 1] = 'W:exists' THEN 'e'
                                   ELSE 'g' END;
            nesting := (SELECT count(*) FROM unnest(stack) s WHERE s IN ('f', 'e'));
            IF nesting > max_nesting THEN
                RETURN format('filter_path: nests filters and exists() more than %s deep', max_nesting);
            END IF;
        ELSIF t = '[' THEN
            stack := stack || 'b'::text;
            steps := steps + 1;
        ELSIF t IN (')', ']') THEN
            stack := stack[1 : cardinality(stack) - 1];
        ELSIF t = ',' THEN
            RETURN 'filter_path: lists several subscripts in one [...]; write one condition each';
        ELSIF t = '**' THEN
            descents := descents + 1;
            IF descents > 1 THEN
                RETURN 'filter_path: uses `.**` more than once';
            END IF;
        ELSIF t = '.' THEN
            steps := steps + 1;
        ELSIF t = 'W:keyvalue' AND k > 1 AND tok[k - 1] = '.' THEN
            RETURN 'filter_path: uses .keyvalue() (it builds an object for every member)';
        ELSIF t = '$' AND ('f' = ANY (stack) OR 'b' = ANY (stack)) THEN
            RETURN 'filter_path: uses `$` inside a filter or a subscript (it walks the payload again for every item)';
        END IF;
    END LOOP;
    IF steps > max_steps THEN
        RETURN format('filter_path: has more than %s steps (`.key`, `.*`, `.**`, `[...]`, methods)', max_steps);
    END IF;
    FOR k IN 1 .. coalesce(cardinality(tok), 0) LOOP
        IF tok[k] IN ('==', '!=', '<>', '<', '<=', '>', '>=') THEN
            -- How many `$` or `@` each side holds, within the same brackets:
            -- one side must be a literal (no value from the payload).
            side_refs := ARRAY[0, 0];
            depth := 0;
            j := k - 1;
            WHILE j >= 1 LOOP
                EXIT WHEN depth = 0 AND tok[j] IN ('(', '[', '&&', '||', '!');
                depth := depth + CASE WHEN tok[j] IN (')', ']') THEN 1 WHEN tok[j] IN ('(', '[') THEN -1 ELSE 0 END;
                side_refs[1] := side_refs[1] + CASE WHEN tok[j] IN ('$', '@') THEN 1 ELSE 0 END;
                j := j - 1;
            END LOOP;
            depth := 0;
            j := k + 1;
            WHILE j <= cardinality(tok) LOOP
                EXIT WHEN depth = 0 AND tok[j] IN (')', ']', '&&', '||');
                depth := depth + CASE WHEN tok[j] IN ('(', '[') THEN 1 WHEN tok[j] IN (')', ']') THEN -1 ELSE 0 END;
                side_refs[2] := side_refs[2] + CASE WHEN tok[j] IN ('$', '@') THEN 1 ELSE 0 END;
                j := j + 1;
            END LOOP;
            IF side_refs[1] > 0 AND side_refs[2] > 0 THEN
                RETURN 'filter_path: compares two values from the payload; one side of a comparison must be a literal';
            END IF;
        END IF;
    END LOOP;
    RETURN NULL;
END
$_$;

-- Name: filter_problem(jsonb); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.filter_problem(filter jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH RECURSIVE node(key, value, level) AS (
        SELECT NULL::text, filter, 0
        UNION ALL
        SELECT c.key, c.value, n.level + 1
          FROM node n
         CROSS JOIN LATERAL (
               SELECT e.key, e.value FROM jsonb_each(CASE WHEN jsonb_typeof(n.value) = 'object' THEN n.value END) e
               UNION ALL
               SELECT NULL, a.value FROM jsonb_array_elements(CASE WHEN jsonb_typeof(n.value) = 'array' THEN n.value END) a
         ) c
         -- one level past the limit is enough to refuse, and stops the walk
         WHERE n.level <= 8
    ), seen AS (
        SELECT count(*) FILTER (WHERE level > 0) AS values, max(level) AS depth,
               max(greatest(octet_length(key),
                            CASE WHEN jsonb_typeof(value) = 'string' THEN octet_length(value #>> '{}') END)) AS longest
          FROM node
    )
    SELECT CASE
               WHEN filter IS NULL THEN NULL
               WHEN depth > 8 THEN 'filter: is nested more than 8 deep'
               WHEN values > 64 THEN 'filter: holds more than 64 values'
               WHEN longest > 1024 THEN 'filter: holds a key or string longer than 1024 bytes'
           END
      FROM seen
$$;

-- Name: grant_endpoint_manager(regrole); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.grant_endpoint_manager(role regrole) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT tailhook.grant_kind('endpoint_manager', role) $$;

-- Name: grant_history_reader(regrole); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.grant_history_reader(role regrole) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT tailhook.grant_kind('history_reader', role) $$;

-- Name: grant_kind(text, regrole); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.grant_kind(kind text, role regrole) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

-- Name: grant_portal_minter(regrole); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.grant_portal_minter(role regrole) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT tailhook.grant_kind('portal_minter', role) $$;

-- Name: grant_publisher(regrole); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.grant_publisher(role regrole) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT tailhook.grant_kind('publisher', role) $$;

-- Name: grant_sidecar(regrole); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.grant_sidecar(role regrole) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT tailhook.grant_kind('sidecar', role) $$;

-- Name: headers_valid(jsonb); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.headers_valid(headers jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT jsonb_typeof(headers) = 'object'
       AND (SELECT count(*) <= 32
                   AND coalesce(bool_and(jsonb_typeof(h.value) = 'string'
                                         AND octet_length(h.key) <= 4096
                                         AND h.size <= 4096), true)
                   AND coalesce(sum(octet_length(h.key) + h.size), 0) <= 16384
              FROM (SELECT e.key, e.value,
                           coalesce(tailhook.sealed_length(e.value #>> '{}'), octet_length(e.value #>> '{}')) AS size
                      FROM jsonb_each(CASE WHEN jsonb_typeof(headers) = 'object' THEN headers ELSE '{}' END) AS e) AS h)
$$;

-- Name: hmac_sha256(bytea, bytea); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.hmac_sha256(key bytea, message bytea) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    k bytea := CASE WHEN octet_length(hmac_sha256.key) > 64 THEN sha256(hmac_sha256.key) ELSE hmac_sha256.key END;
    inner_pad bytea;
    outer_pad bytea;
BEGIN
    k := k || decode(repeat('00', 64 - octet_length(k)), 'hex');
    inner_pad := k;
    outer_pad := k;
    FOR i IN 0..63 LOOP
        inner_pad := set_byte(inner_pad, i, get_byte(k, i) # 54);
        outer_pad := set_byte(outer_pad, i, get_byte(k, i) # 92);
    END LOOP;
    RETURN sha256(outer_pad || sha256(inner_pad || hmac_sha256.message));
END
$$;

-- Name: legacy_secret_valid(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.legacy_secret_valid(secret text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT secret IS NULL
        OR coalesce(tailhook.sealed_length(secret) BETWEEN 16 AND 256, false)
        OR (NOT starts_with(secret, 'enc:v1:') AND octet_length(secret) BETWEEN 16 AND 256)
$$;

-- Name: legacy_signature_problem(jsonb); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.legacy_signature_problem(sig jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    SELECT CASE
        WHEN sig IS NULL THEN NULL
        WHEN jsonb_typeof(sig) <> 'object' THEN 'legacy_signature: must be a JSON object'
        WHEN EXISTS (SELECT 1 FROM jsonb_object_keys(sig) AS k
                      WHERE k NOT IN ('header', 'algorithm', 'encoding', 'prefix', 'format', 'body'))
            THEN 'legacy_signature: has a key other than header, algorithm, encoding, prefix, format and body'
        WHEN jsonb_typeof(sig -> 'header') IS DISTINCT FROM 'string'
            THEN 'legacy_signature: header must be a string'
        WHEN (sig ->> 'header') !~ '^[!#$%&''*+.^_`|~0-9A-Za-z-]{1,128}$'
            THEN 'legacy_signature: header is not an HTTP header name of 1 to 128 characters'
        WHEN lower(sig ->> 'header') IN ('content-type', 'content-length', 'host', 'user-agent',
                                         'transfer-encoding', 'connection')
             OR lower(sig ->> 'header') LIKE 'webhook-%'
            THEN 'legacy_signature: header is set by tailhook and cannot be used'
        WHEN sig ? 'algorithm' AND (sig -> 'algorithm') NOT IN ('"sha256"', '"sha512"')
            THEN 'legacy_signature: algorithm must be "sha256" or "sha512"'
        WHEN sig ? 'encoding' AND (sig -> 'encoding') NOT IN ('"hex"', '"base64"')
            THEN 'legacy_signature: encoding must be "hex" or "base64"'
        WHEN sig ? 'format' AND (sig -> 'format') NOT IN ('"body"', '"timestamped"')
            THEN 'legacy_signature: format must be "body" or "timestamped"'
        WHEN sig ? 'body' AND (sig -> 'body') NOT IN ('"unchanged"', '"python_sorted"')
            THEN 'legacy_signature: body must be "unchanged" or "python_sorted"'
        WHEN sig ? 'prefix' AND (jsonb_typeof(sig -> 'prefix') <> 'string'
                                 OR (sig ->> 'prefix') !~ '^[\x21-\x7e]{0,64}$')
            THEN 'legacy_signature: prefix must be at most 64 visible ASCII characters'
    END
$_$;

-- Name: lock_undispatched(bigint); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.lock_undispatched(max_rows bigint) RETURNS TABLE(id bigint, event_id uuid, event_type text, payload jsonb, tenant text, ordering_key text, created_at timestamp with time zone, body text)
    LANGUAGE plpgsql ROWS 100
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    -- `dispatched_at IS NULL` is the only claim criterion: identity values
    -- commit out of order, so nothing reads by position. Each payload is
    -- turned into JSON text once, here.
    RETURN QUERY
    SELECT o.id, o.event_id, o.event_type, o.payload, o.tenant, o.ordering_key, o.created_at, o.payload::text
      FROM tailhook.outbox o
     WHERE o.dispatched_at IS NULL
     ORDER BY o.id
     LIMIT max_rows
       FOR NO KEY UPDATE SKIP LOCKED;
END
$$;

-- Name: notify_outbox(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.notify_outbox() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
        BEGIN
            PERFORM pg_notify('tailhook_outbox', '');
            RETURN NULL;
        END
        $$;

-- Name: operational_wanted(text, bigint); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.operational_wanted(event_type text, subject bigint) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT EXISTS (
        SELECT 1 FROM tailhook.endpoints e
         WHERE e.enabled AND e.tenant IS NULL AND e.id IS DISTINCT FROM subject
           AND tailhook.event_type_matches(e.event_types, operational_wanted.event_type))
$$;

-- Name: outbox_event_id_unique(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.outbox_event_id_unique() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    INSERT INTO tailhook.event_ids (event_id, created_at) SELECT n.event_id, n.created_at FROM new_rows n;
    RETURN NULL;
END
$$;

-- Name: outbox_event_ids_gone(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.outbox_event_ids_gone() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE tailhook.event_ids;
    ELSE
        DELETE FROM tailhook.event_ids e USING old_rows o WHERE e.event_id = o.event_id AND e.created_at = o.created_at;
    END IF;
    RETURN NULL;
END
$$;

-- Name: partition_bounds(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_bounds(tbl text) RETURNS TABLE(name text, lo timestamp with time zone, hi timestamp with time zone)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: partition_convert_check(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_convert_check(tbl text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: partition_convert_column(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_convert_column(tbl text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
BEGIN
    IF tbl = 'outbox' OR tailhook.partitioned(tbl) OR EXISTS (
        SELECT 1 FROM pg_attribute WHERE attrelid = ('tailhook.' || tbl)::regclass AND attname = 'event_at' AND NOT attisdropped) THEN
        RETURN;
    END IF;
    PERFORM tailhook.partition_ddl(ARRAY[
        format($s$ALTER TABLE tailhook.%I ADD COLUMN event_at timestamptz NOT NULL DEFAULT '-infinity'$s$, tbl)]);
END
$_$;

-- Name: partition_convert_keys(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_convert_keys(tbl text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: partition_convert_swap(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_convert_swap(tbl text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: partition_convert_swap_locked(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_convert_swap_locked(tbl text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: partition_convert_validate(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_convert_validate(tbl text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF NOT tailhook.partitioned(tbl) AND EXISTS (
        SELECT 1 FROM pg_constraint WHERE conrelid = ('tailhook.' || tbl)::regclass
           AND conname = tbl || '_legacy_range' AND NOT convalidated) THEN
        EXECUTE format('ALTER TABLE tailhook.%I VALIDATE CONSTRAINT %I', tbl, tbl || '_legacy_range');
    END IF;
END
$$;

-- Name: partition_ddl(text[]); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_ddl(statements text[]) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: partition_discard(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_discard(part text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF part LIKE '%\_legacy' THEN
        EXECUTE format('TRUNCATE tailhook.%I', part);
    ELSE
        EXECUTE format('DROP TABLE tailhook.%I', part);
    END IF;
END
$$;

-- Name: partition_drop_invalid(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_drop_invalid() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: partition_floor(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_floor(tbl text) RETURNS timestamp with time zone
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT coalesce(min(b.lo), 'infinity') FROM tailhook.partition_bounds(tbl) b WHERE b.lo IS NOT NULL
$$;

-- Name: partition_key(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_key(tbl text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT CASE tbl WHEN 'outbox' THEN 'created_at' ELSE 'event_at' END
$$;

-- Name: partition_name_indexes(text, text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_name_indexes(tbl text, part text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: partition_strays(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_strays() RETURNS TABLE(tbl text, strays bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

-- Name: partition_undated(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partition_undated(tbl text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: partitioned(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partitioned(tbl text) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = to_regclass('tailhook.' || tbl) AND c.relkind = 'p')
$$;

-- Name: partitions_drop(bigint, bigint); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partitions_drop(succeeded_ms bigint, failed_ms bigint) RETURNS TABLE(dropped integer, kept bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

-- Name: partitions_prepare(interval, integer); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.partitions_prepare(width interval, ahead integer) RETURNS TABLE(created integer, moved bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

-- Name: pem_certificates_valid(text, integer); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.pem_certificates_valid(pem text, max_bytes integer) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    SELECT octet_length(pem) <= max_bytes
       AND pem ~ '^\s*(-----BEGIN CERTIFICATE-----\s[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----\s*)+$'
$_$;

-- Name: pem_key_valid(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.pem_key_valid(key text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    SELECT CASE WHEN starts_with(key, 'enc:v1:') THEN coalesce(tailhook.sealed_length(key) <= 16384, false)
                ELSE octet_length(key) <= 16384
                     AND key ~ '^\s*-----BEGIN ((RSA |EC )?PRIVATE KEY)-----\s[A-Za-z0-9+/=\s]+-----END \1-----\s*$'
           END
$_$;

-- Name: portal_link(text, interval, boolean); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.portal_link(tenant text, ttl interval DEFAULT '00:15:00'::interval, read_only boolean DEFAULT false) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    k bytea;
    body text;
BEGIN
    IF portal_link.tenant IS NULL OR portal_link.tenant = '' OR octet_length(portal_link.tenant) > 200 THEN
        RAISE EXCEPTION 'tailhook.portal_link: tenant must be given and at most 200 bytes'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF portal_link.ttl IS NULL OR portal_link.ttl <= interval '0' OR portal_link.ttl > interval '24 hours' THEN
        RAISE EXCEPTION 'tailhook.portal_link: ttl must be more than 0 and at most 24 hours'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF portal_link.read_only IS NULL THEN
        RAISE EXCEPTION 'tailhook.portal_link: read_only must be true or false'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT p.key INTO k FROM tailhook.portal_key p;
    IF k IS NULL THEN
        RAISE EXCEPTION 'tailhook.portal_link: no portal key: set server.portal_key_env and start tailhook run, which stores the key links are signed with'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    body := 'v1.' || encode(convert_to(portal_link.tenant, 'UTF8'), 'hex') || '.'
        || ceil(extract(epoch FROM clock_timestamp() + portal_link.ttl))::bigint || '.'
        || CASE WHEN portal_link.read_only THEN 'r' ELSE 'w' END;
    RETURN '/portal/' || body || '.' || encode(tailhook.hmac_sha256(k, convert_to(body, 'UTF8')), 'hex') || '/';
END
$$;

-- Name: publish(text, jsonb, text, text, text, text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.publish(event_type text, payload jsonb, tenant text DEFAULT NULL::text, ordering_key text DEFAULT NULL::text, traceparent text DEFAULT NULL::text, tracestate text DEFAULT NULL::text) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    published uuid;
    tp text := publish.traceparent;
    ts text := publish.tracestate;
    problem text;
BEGIN
    IF starts_with(publish.event_type, 'tailhook.') AND publish.event_type <> 'tailhook.test' THEN
        RAISE EXCEPTION 'tailhook.publish: event type % is reserved for tailhook''s own events', quote_literal(publish.event_type)
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF tp IS NULL AND ts IS NULL THEN
        -- The transaction's settings, when set and well formed (a
        -- tracestate without a traceparent is never used: skip both calls).
        IF nullif(current_setting('tailhook.traceparent', true), '') IS NOT NULL THEN
            tp := tailhook.trace_setting('traceparent');
            ts := tailhook.trace_setting('tracestate');
        END IF;
    ELSE
        problem := tailhook.trace_context_problem(tp, ts);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'tailhook.publish: %', problem USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, traceparent, tracestate)
    VALUES (publish.event_type, publish.payload, publish.tenant, publish.ordering_key, tp, ts)
    RETURNING outbox.event_id INTO published;
    RETURN published;
END
$$;

-- Name: publish_with_id(uuid, text, jsonb, text, text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.publish_with_id(event_id uuid, event_type text, payload jsonb, tenant text DEFAULT NULL::text, ordering_key text DEFAULT NULL::text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: redeliver(bigint); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.redeliver(delivery_id bigint) RETURNS boolean
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH r AS (
        UPDATE tailhook.deliveries d
           SET status = CASE WHEN d.attempts = 0 THEN 'pending' ELSE 'retrying' END,
               next_attempt_at = now(), locked_until = NULL, locked_by = NULL, lease = NULL,
               completed_at = NULL, updated_at = now(),
               redelivered_by = left('sql (role ' || session_user || ')', 200), redelivered_at = now()
         WHERE d.id = redeliver.delivery_id
           AND (d.locked_until IS NULL OR d.locked_until < now())
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM r)
$$;

-- Name: redeliver_failed(text, timestamp with time zone); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.redeliver_failed(endpoint_name text, since timestamp with time zone) RETURNS bigint
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH r AS (
        UPDATE tailhook.deliveries d
           SET status = 'retrying', next_attempt_at = now(), locked_until = NULL,
               locked_by = NULL, lease = NULL, completed_at = NULL, updated_at = now(),
               redelivered_by = left('sql (role ' || session_user || ')', 200), redelivered_at = now()
          FROM tailhook.endpoints e
         WHERE e.name = redeliver_failed.endpoint_name
           AND d.endpoint_id = e.id
           AND d.status = 'failed'
           AND d.completed_at >= redeliver_failed.since
        RETURNING 1
    )
    SELECT count(*) FROM r
$$;

-- Name: regrant(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.regrant() RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    g record;
    n int := 0;
BEGIN
    FOR g IN SELECT r.role_oid, r.kind FROM tailhook.role_grants r
              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles a WHERE a.oid = r.role_oid)
              ORDER BY r.role_oid, r.kind LOOP
        PERFORM tailhook.grant_kind(g.kind, g.role_oid::regrole);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- Name: retire_secrets(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.retire_secrets() RETURNS integer
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH due AS (
        DELETE FROM tailhook.secret_retirements r WHERE r.retire_at <= now()
        RETURNING r.endpoint_id, r.keep
    ), trimmed AS (
        UPDATE tailhook.endpoints e SET secrets = e.secrets[1:due.keep], updated_at = now()
          FROM due
         WHERE e.id = due.endpoint_id AND pg_catalog.cardinality(e.secrets) > due.keep
        RETURNING 1)
    SELECT count(*)::int FROM trimmed
$$;

-- Name: revoke_api_token(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.revoke_api_token(token text) RETURNS integer
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH revoked AS (
        UPDATE tailhook.api_tokens t SET revoked_at = now()
         WHERE t.revoked_at IS NULL
           AND (t.id::text = revoke_api_token.token OR t.name = revoke_api_token.token
                OR t.prefix = revoke_api_token.token)
        RETURNING 1)
    SELECT count(*)::int FROM revoked
$$;

-- Name: schedule_key_head(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.schedule_key_head() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

-- Name: sealed_length(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.sealed_length(value text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    SELECT CASE WHEN value ~ '^enc:v1:[0-9a-f]{8}:[A-Za-z0-9+/]+={0,2}$' AND (length(value) - 16) % 4 = 0
                THEN (length(value) - 16) / 4 * 3 - (length(value) - length(rtrim(value, '='))) - 28 END
$_$;

-- Name: secrets_valid(text[]); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.secrets_valid(secrets text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    SELECT coalesce(array_ndims(secrets), 1) = 1
       AND coalesce(cardinality(secrets), 0) <= 10
       AND NOT EXISTS (
           SELECT 1 FROM unnest(secrets) AS s
            WHERE s IS NULL
               OR NOT (coalesce(tailhook.sealed_length(s) BETWEEN 38 AND 94, false)
                       OR (s ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'
                           AND (length(s) - 6) % 4 = 0
                           -- decoded length: 3 bytes per 4 characters, less the padding
                           AND (length(s) - 6) / 4 * 3 - (length(s) - length(rtrim(s, '='))) BETWEEN 24 AND 64)))
$_$;

-- Name: set_portal_key(bytea); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.set_portal_key(key bytea) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF set_portal_key.key IS NULL THEN
        DELETE FROM tailhook.portal_key;
        RETURN;
    END IF;
    INSERT INTO tailhook.portal_key AS p (only_row, key) VALUES (true, set_portal_key.key)
    ON CONFLICT (only_row) DO UPDATE SET key = EXCLUDED.key, set_at = now() WHERE p.key <> EXCLUDED.key;
END
$$;

-- Name: touch_updated_at(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    health CONSTANT text[] := ARRAY['paused_until', 'consecutive_failures', 'failing_since', 'invalid_reason', 'updated_at'];
BEGIN
    IF to_jsonb(NEW) - health IS DISTINCT FROM to_jsonb(OLD) - health THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;

-- Name: trace_context_problem(text, text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.trace_context_problem(traceparent text, tracestate text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    SELECT CASE
        WHEN traceparent IS NULL THEN
            CASE WHEN tracestate IS NOT NULL THEN 'tracestate is set without a traceparent' END
        WHEN octet_length(traceparent) > 512
          OR traceparent !~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[ -~]*)?$'
          OR left(traceparent, 2) = 'ff'
          OR (left(traceparent, 2) = '00' AND octet_length(traceparent) <> 55) THEN
            'traceparent must be W3C trace context, 00-<32 hex digits trace id>-<16 hex digits parent id>-<2 hex digits flags> in lowercase (got '
            || quote_literal(left(traceparent, 80)) || ')'
        WHEN substr(traceparent, 4, 32) = repeat('0', 32) THEN 'traceparent''s trace id must not be all zeros'
        WHEN substr(traceparent, 37, 16) = repeat('0', 16) THEN 'traceparent''s parent id must not be all zeros'
        WHEN tracestate IS NOT NULL AND (octet_length(tracestate) > 512 OR tracestate !~ '^[ -~]*$') THEN
            'tracestate must be at most 512 bytes of printable ASCII'
    END
$_$;

-- Name: trace_setting(text); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.trace_setting(name text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT CASE WHEN tailhook.trace_context_problem(p.tp, NULL) IS NULL
                 AND (trace_setting.name = 'traceparent' OR tailhook.trace_context_problem(p.tp, p.ts) IS NULL)
                THEN CASE trace_setting.name WHEN 'traceparent' THEN p.tp WHEN 'tracestate' THEN p.ts END END
      FROM (SELECT nullif(current_setting('tailhook.traceparent', true), '') AS tp,
                   nullif(current_setting('tailhook.tracestate', true), '') AS ts) p
$$;

-- Name: uncapture(regclass); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.uncapture(tbl regclass) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

-- Name: uuid_at(timestamp with time zone); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.uuid_at(t timestamp with time zone) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT (lpad(to_hex(greatest(0, floor(extract(epoch FROM t) * 1000))::bigint), 12, '0') || '00000000000000000000')::uuid
$$;

-- Name: uuid_v7(); Type: FUNCTION; Schema: tailhook; Owner: -

CREATE FUNCTION tailhook.uuid_v7() RETURNS uuid
    LANGUAGE sql PARALLEL SAFE
    BEGIN ATOMIC
 SELECT (encode(set_bit(set_bit(OVERLAY(uuid_send(gen_random_uuid()) PLACING SUBSTRING(int8send(((EXTRACT(epoch FROM clock_timestamp()) * (1000)::numeric))::bigint) FROM 3) FROM 1 FOR 6), (52)::bigint, 1), (53)::bigint, 1), 'hex'::text))::uuid AS encode;
END;

-- Name: api_tokens; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.api_tokens (
    id bigint NOT NULL,
    name text,
    prefix text NOT NULL,
    hash bytea NOT NULL,
    scope text NOT NULL,
    tenant text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone,
    revoked_at timestamp with time zone,
    CONSTRAINT api_tokens_scope_known CHECK ((scope = ANY (ARRAY['read'::text, 'write'::text, 'admin'::text])))
);

-- Name: api_tokens_id_seq; Type: SEQUENCE; Schema: tailhook; Owner: -

ALTER TABLE tailhook.api_tokens ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME tailhook.api_tokens_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

-- Name: attempts; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.attempts (
    id bigint NOT NULL,
    delivery_id bigint NOT NULL,
    attempt integer NOT NULL,
    started_at timestamp with time zone NOT NULL,
    duration_ms integer NOT NULL,
    status_code integer,
    error_kind text,
    error text,
    response_body text,
    requested_by text,
    event_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL
)
PARTITION BY RANGE (event_at);

-- Name: attempts_default; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.attempts_default (
    id bigint NOT NULL,
    delivery_id bigint NOT NULL,
    attempt integer NOT NULL,
    started_at timestamp with time zone NOT NULL,
    duration_ms integer NOT NULL,
    status_code integer,
    error_kind text,
    error text,
    response_body text,
    requested_by text,
    event_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
    CONSTRAINT attempts_error_kind_known CHECK ((error_kind = ANY (ARRAY['timeout'::text, 'connect'::text, 'dns'::text, 'tls'::text, 'http_status'::text, 'redirect'::text, 'blocked_address'::text, 'invalid_request'::text, 'payload_too_large'::text, 'body_read'::text, 'transform'::text])))
);

-- Name: attempts_id_seq; Type: SEQUENCE; Schema: tailhook; Owner: -

ALTER TABLE tailhook.attempts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME tailhook.attempts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

-- Name: attempts_legacy; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.attempts_legacy (
    id bigint NOT NULL,
    delivery_id bigint NOT NULL,
    attempt integer NOT NULL,
    started_at timestamp with time zone NOT NULL,
    duration_ms integer NOT NULL,
    status_code integer,
    error_kind text,
    error text,
    response_body text,
    requested_by text,
    event_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL
);

-- Name: attempts_legacy_id_seq; Type: SEQUENCE; Schema: tailhook; Owner: -

ALTER TABLE tailhook.attempts_legacy ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME tailhook.attempts_legacy_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

-- Name: attempts_undated; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.attempts_undated (
    id bigint NOT NULL,
    delivery_id bigint NOT NULL,
    attempt integer NOT NULL,
    started_at timestamp with time zone NOT NULL,
    duration_ms integer NOT NULL,
    status_code integer,
    error_kind text,
    error text,
    response_body text,
    requested_by text,
    event_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
    CONSTRAINT attempts_error_kind_known CHECK ((error_kind = ANY (ARRAY['timeout'::text, 'connect'::text, 'dns'::text, 'tls'::text, 'http_status'::text, 'redirect'::text, 'blocked_address'::text, 'invalid_request'::text, 'payload_too_large'::text, 'body_read'::text, 'transform'::text]))),
    CONSTRAINT attempts_undated_range CHECK (((event_at IS NOT NULL) AND (event_at < '1970-01-01 00:00:00+00'::timestamp with time zone)))
);

-- Name: capture_batch; Type: SEQUENCE; Schema: tailhook; Owner: -

CREATE SEQUENCE tailhook.capture_batch
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- Name: capture_config; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.capture_config (
    relid oid NOT NULL,
    event_type text NOT NULL,
    operations text[] NOT NULL,
    columns text[],
    tenant_column text,
    key_column text NOT NULL,
    function_name text NOT NULL,
    captured_at timestamp with time zone DEFAULT now() NOT NULL
);

-- Name: captures; Type: VIEW; Schema: tailhook; Owner: -

CREATE VIEW tailhook.captures AS
 SELECT format('%I.%I'::text, n.nspname, c.relname) AS table_name,
    cc.event_type,
    cc.operations,
    cc.columns,
    cc.tenant_column,
    cc.key_column,
    cc.captured_at,
    (cc.relid)::regclass AS relid
   FROM ((tailhook.capture_config cc
     JOIN pg_class c ON ((c.oid = cc.relid)))
     JOIN pg_namespace n ON ((n.oid = c.relnamespace)));

-- Name: deliveries; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.deliveries (
    id bigint NOT NULL,
    outbox_id bigint NOT NULL,
    endpoint_id bigint NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now(),
    locked_until timestamp with time zone,
    locked_by text,
    lease bigint,
    last_status_code integer,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    completed_at timestamp with time zone,
    ordering_key text,
    transform_claims smallint DEFAULT 0 NOT NULL,
    redelivered_by text,
    redelivered_at timestamp with time zone,
    event_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
    CONSTRAINT deliveries_status_known CHECK ((status = ANY (ARRAY['pending'::text, 'retrying'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text])))
)
PARTITION BY RANGE (event_at);

-- Name: deliveries_default; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.deliveries_default (
    id bigint NOT NULL,
    outbox_id bigint NOT NULL,
    endpoint_id bigint NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now(),
    locked_until timestamp with time zone,
    locked_by text,
    lease bigint,
    last_status_code integer,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    completed_at timestamp with time zone,
    ordering_key text,
    transform_claims smallint DEFAULT 0 NOT NULL,
    redelivered_by text,
    redelivered_at timestamp with time zone,
    event_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
    CONSTRAINT deliveries_status_known CHECK ((status = ANY (ARRAY['pending'::text, 'retrying'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text])))
);

-- Name: deliveries_id_seq; Type: SEQUENCE; Schema: tailhook; Owner: -

ALTER TABLE tailhook.deliveries ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME tailhook.deliveries_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

-- Name: deliveries_legacy; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.deliveries_legacy (
    id bigint NOT NULL,
    outbox_id bigint NOT NULL,
    endpoint_id bigint NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now(),
    locked_until timestamp with time zone,
    locked_by text,
    lease bigint,
    last_status_code integer,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    completed_at timestamp with time zone,
    ordering_key text,
    transform_claims smallint DEFAULT 0 NOT NULL,
    redelivered_by text,
    redelivered_at timestamp with time zone,
    event_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
    CONSTRAINT deliveries_status_known CHECK ((status = ANY (ARRAY['pending'::text, 'retrying'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text])))
);

-- Name: deliveries_legacy_id_seq; Type: SEQUENCE; Schema: tailhook; Owner: -

ALTER TABLE tailhook.deliveries_legacy ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME tailhook.deliveries_legacy_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

-- Name: deliveries_undated; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.deliveries_undated (
    id bigint NOT NULL,
    outbox_id bigint NOT NULL,
    endpoint_id bigint NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now(),
    locked_until timestamp with time zone,
    locked_by text,
    lease bigint,
    last_status_code integer,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    completed_at timestamp with time zone,
    ordering_key text,
    transform_claims smallint DEFAULT 0 NOT NULL,
    redelivered_by text,
    redelivered_at timestamp with time zone,
    event_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
    CONSTRAINT deliveries_status_known CHECK ((status = ANY (ARRAY['pending'::text, 'retrying'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text]))),
    CONSTRAINT deliveries_undated_range CHECK (((event_at IS NOT NULL) AND (event_at < '1970-01-01 00:00:00+00'::timestamp with time zone)))
);

-- Name: endpoints; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.endpoints (
    id bigint NOT NULL,
    name text NOT NULL,
    tenant text,
    url text NOT NULL,
    event_types text[] DEFAULT '{*}'::text[] NOT NULL,
    filter jsonb,
    filter_path jsonpath,
    secrets text[] DEFAULT '{}'::text[] NOT NULL,
    headers jsonb DEFAULT '{}'::jsonb NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    disabled_reason text,
    paused_until timestamp with time zone,
    max_attempts integer,
    timeout_ms integer,
    rate_limit_per_sec integer,
    max_in_flight integer,
    ordered boolean DEFAULT false NOT NULL,
    managed_by text DEFAULT 'sql'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    consecutive_failures integer DEFAULT 0 NOT NULL,
    failing_since timestamp with time zone,
    invalid_reason text,
    auto_disabled boolean DEFAULT false NOT NULL,
    transform text,
    legacy_signature jsonb,
    legacy_secret text,
    standard_signature boolean DEFAULT true NOT NULL,
    backoff_initial_ms integer,
    backoff_max_ms integer,
    propagate_trace boolean DEFAULT true NOT NULL,
    tls_client_cert text,
    tls_client_key text,
    tls_ca_bundle text,
    CONSTRAINT endpoints_headers_object CHECK ((jsonb_typeof(headers) = 'object'::text)),
    CONSTRAINT endpoints_managed_by_known CHECK ((managed_by = ANY (ARRAY['sql'::text, 'config'::text]))),
    CONSTRAINT endpoints_max_attempts_positive CHECK ((max_attempts > 0)),
    CONSTRAINT endpoints_max_in_flight_positive CHECK ((max_in_flight > 0)),
    CONSTRAINT endpoints_name_not_empty CHECK ((name <> ''::text)),
    CONSTRAINT endpoints_rate_limit_positive CHECK ((rate_limit_per_sec > 0)),
    CONSTRAINT endpoints_timeout_ms_positive CHECK ((timeout_ms > 0)),
    CONSTRAINT endpoints_url_http CHECK ((url ~* '^https?://[^/?#]+'::text))
);

-- Name: outbox; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.outbox (
    id bigint NOT NULL,
    event_id uuid DEFAULT tailhook.uuid_v7() NOT NULL,
    event_type text NOT NULL,
    payload jsonb NOT NULL,
    tenant text,
    ordering_key text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    dispatched_at timestamp with time zone,
    traceparent text,
    tracestate text,
    CONSTRAINT outbox_event_type_not_empty CHECK ((event_type <> ''::text))
)
PARTITION BY RANGE (created_at);

-- Name: delivery_log; Type: VIEW; Schema: tailhook; Owner: -

CREATE VIEW tailhook.delivery_log AS
 SELECT d.id AS delivery_id,
    o.event_id,
    o.event_type,
    o.tenant,
    e.name AS endpoint,
    d.status,
    d.attempts,
    o.created_at AS published_at,
    d.completed_at,
        CASE
            WHEN (d.status = ANY (ARRAY['pending'::text, 'retrying'::text])) THEN d.next_attempt_at
            ELSE NULL::timestamp with time zone
        END AS next_attempt_at,
    COALESCE((d.locked_until > now()), false) AS in_flight,
    a.started_at AS last_attempt_at,
    a.status_code AS last_status_code,
    a.error_kind AS last_error_kind,
    a.error AS last_attempt_error,
    d.last_error,
    a.duration_ms AS last_duration_ms,
    o.id AS outbox_id,
    d.endpoint_id
   FROM (((tailhook.deliveries d
     JOIN tailhook.outbox o ON ((o.id = d.outbox_id)))
     JOIN tailhook.endpoints e ON ((e.id = d.endpoint_id)))
     LEFT JOIN LATERAL ( SELECT at.started_at,
            at.status_code,
            at.error_kind,
            at.error,
            at.duration_ms
           FROM tailhook.attempts at
          WHERE (at.delivery_id = d.id)
          ORDER BY at.attempt DESC, at.id DESC
         LIMIT 1) a ON (true));

-- Name: endpoint_config; Type: VIEW; Schema: tailhook; Owner: -

CREATE VIEW tailhook.endpoint_config AS
 SELECT e.id,
    e.name,
    e.tenant,
    regexp_replace(e.url, '^([A-Za-z][A-Za-z0-9+.-]*://)(?:[^/?#]*@)?([^/?#]*).*$'::text, '\1\2'::text) AS url,
    e.event_types,
    e.filter,
    e.filter_path,
    ARRAY( SELECT k.k
           FROM jsonb_object_keys(
                CASE
                    WHEN (jsonb_typeof(e.headers) = 'object'::text) THEN e.headers
                    ELSE '{}'::jsonb
                END) k(k)
          ORDER BY k.k) AS header_names,
    cardinality(e.secrets) AS secrets,
    e.enabled,
    e.disabled_reason,
    e.invalid_reason,
    e.paused_until,
    e.max_attempts,
    e.timeout_ms,
    e.rate_limit_per_sec,
    e.max_in_flight,
    e.ordered,
    e.transform,
    e.managed_by,
    e.created_at,
    e.updated_at
   FROM tailhook.endpoints e;

-- Name: endpoint_stats; Type: VIEW; Schema: tailhook; Owner: -

CREATE VIEW tailhook.endpoint_stats AS
 SELECT e.id AS endpoint_id,
    e.name,
    e.enabled,
    e.paused_until,
    COALESCE(d.delivered, (0)::bigint) AS delivered,
    COALESCE(d.failed, (0)::bigint) AS failed,
    COALESCE(d.pending, (0)::bigint) AS pending,
    COALESCE(d.retrying, (0)::bigint) AS retrying,
        CASE
            WHEN ((COALESCE(d.delivered, (0)::bigint) + COALESCE(d.failed, (0)::bigint)) = 0) THEN NULL::numeric
            ELSE round(((d.delivered)::numeric / ((d.delivered + d.failed))::numeric), 4)
        END AS delivery_success_rate,
    COALESCE(a.attempts_1h, (0)::bigint) AS attempts_1h,
    COALESCE(a.failed_attempts_1h, (0)::bigint) AS failed_attempts_1h,
        CASE
            WHEN (COALESCE(a.attempts_1h, (0)::bigint) = 0) THEN NULL::numeric
            ELSE round((((a.attempts_1h - a.failed_attempts_1h))::numeric / (a.attempts_1h)::numeric), 4)
        END AS attempt_success_rate_1h,
    a.last_success_at,
    a.last_failure_at,
    a.latency_p50_ms,
    a.latency_p99_ms,
    d.oldest_undelivered_at
   FROM ((tailhook.endpoints e
     LEFT JOIN LATERAL ( SELECT count(*) FILTER (WHERE (dl.status = 'succeeded'::text)) AS delivered,
            count(*) FILTER (WHERE (dl.status = 'failed'::text)) AS failed,
            count(*) FILTER (WHERE (dl.status = 'pending'::text)) AS pending,
            count(*) FILTER (WHERE (dl.status = 'retrying'::text)) AS retrying,
            min(dl.created_at) FILTER (WHERE (dl.status = ANY (ARRAY['pending'::text, 'retrying'::text]))) AS oldest_undelivered_at
           FROM tailhook.deliveries dl
          WHERE (dl.endpoint_id = e.id)) d ON (true))
     LEFT JOIN LATERAL ( SELECT count(*) FILTER (WHERE (at.started_at > (now() - '01:00:00'::interval))) AS attempts_1h,
            count(*) FILTER (WHERE ((at.started_at > (now() - '01:00:00'::interval)) AND (at.error_kind IS NOT NULL))) AS failed_attempts_1h,
            max(at.started_at) FILTER (WHERE (at.error_kind IS NULL)) AS last_success_at,
            max(at.started_at) FILTER (WHERE (at.error_kind IS NOT NULL)) AS last_failure_at,
            percentile_cont((0.5)::double precision) WITHIN GROUP (ORDER BY ((at.duration_ms)::double precision)) AS latency_p50_ms,
            percentile_cont((0.99)::double precision) WITHIN GROUP (ORDER BY ((at.duration_ms)::double precision)) AS latency_p99_ms
           FROM (tailhook.attempts at
             JOIN tailhook.deliveries dl ON ((dl.id = at.delivery_id)))
          WHERE (dl.endpoint_id = e.id)) a ON (true));

-- Name: endpoints_id_seq; Type: SEQUENCE; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME tailhook.endpoints_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

-- Name: event_ids; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL
)
PARTITION BY RANGE (event_id);

-- Name: TABLE event_ids; Type: COMMENT; Schema: tailhook; Owner: -

COMMENT ON TABLE tailhook.event_ids IS 'filled';

-- Name: event_ids_default; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_default (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL
)
PARTITION BY RANGE (event_id);

-- Name: event_ids_dropped; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_dropped (
    lo timestamp with time zone NOT NULL,
    hi timestamp with time zone NOT NULL
);

-- Name: event_ids_y2020; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2020 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2020_range CHECK (((event_id IS NOT NULL) AND (event_id >= '016f5e66-e800-0000-0000-000000000000'::uuid) AND (event_id < '0176bb3e-7000-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2021; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2021 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2021_range CHECK (((event_id IS NOT NULL) AND (event_id >= '0176bb3e-7000-0000-0000-000000000000'::uuid) AND (event_id < '017e12ef-9c00-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2022; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2022 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2022_range CHECK (((event_id IS NOT NULL) AND (event_id >= '017e12ef-9c00-0000-0000-000000000000'::uuid) AND (event_id < '01856aa0-c800-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2023; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2023 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2023_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01856aa0-c800-0000-0000-000000000000'::uuid) AND (event_id < '018cc251-f400-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2024; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2024 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2024_range CHECK (((event_id IS NOT NULL) AND (event_id >= '018cc251-f400-0000-0000-000000000000'::uuid) AND (event_id < '01941f29-7c00-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2025; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2025 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2025_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01941f29-7c00-0000-0000-000000000000'::uuid) AND (event_id < '019b76da-a800-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2026; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2026 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2026_range CHECK (((event_id IS NOT NULL) AND (event_id >= '019b76da-a800-0000-0000-000000000000'::uuid) AND (event_id < '01a2ce8b-d400-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2027; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2027 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2027_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01a2ce8b-d400-0000-0000-000000000000'::uuid) AND (event_id < '01aa263d-0000-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2028; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2028 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2028_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01aa263d-0000-0000-0000-000000000000'::uuid) AND (event_id < '01b18314-8800-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2029; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2029 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2029_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01b18314-8800-0000-0000-000000000000'::uuid) AND (event_id < '01b8dac5-b400-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2030; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2030 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2030_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01b8dac5-b400-0000-0000-000000000000'::uuid) AND (event_id < '01c03276-e000-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2031; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2031 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2031_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01c03276-e000-0000-0000-000000000000'::uuid) AND (event_id < '01c78a28-0c00-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2032; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2032 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2032_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01c78a28-0c00-0000-0000-000000000000'::uuid) AND (event_id < '01cee6ff-9400-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2033; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2033 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2033_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01cee6ff-9400-0000-0000-000000000000'::uuid) AND (event_id < '01d63eb0-c000-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2034; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2034 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2034_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01d63eb0-c000-0000-0000-000000000000'::uuid) AND (event_id < '01dd9661-ec00-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2035; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2035 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2035_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01dd9661-ec00-0000-0000-000000000000'::uuid) AND (event_id < '01e4ee13-1800-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2036; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2036 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2036_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01e4ee13-1800-0000-0000-000000000000'::uuid) AND (event_id < '01ec4aea-a000-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2037; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2037 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2037_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01ec4aea-a000-0000-0000-000000000000'::uuid) AND (event_id < '01f3a29b-cc00-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2038; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2038 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2038_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01f3a29b-cc00-0000-0000-000000000000'::uuid) AND (event_id < '01fafa4c-f800-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y2039; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y2039 (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y2039_range CHECK (((event_id IS NOT NULL) AND (event_id >= '01fafa4c-f800-0000-0000-000000000000'::uuid) AND (event_id < '020251fe-2400-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y_early; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y_early (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y_early_range CHECK (((event_id IS NOT NULL) AND (event_id >= NULL::uuid) AND (event_id < '016f5e66-e800-0000-0000-000000000000'::uuid)))
);

-- Name: event_ids_y_late; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.event_ids_y_late (
    event_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT event_ids_y_late_range CHECK (((event_id IS NOT NULL) AND (event_id >= '020251fe-2400-0000-0000-000000000000'::uuid) AND (event_id < NULL::uuid)))
);

-- Name: outbox_default; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.outbox_default (
    id bigint NOT NULL,
    event_id uuid DEFAULT tailhook.uuid_v7() NOT NULL,
    event_type text NOT NULL,
    payload jsonb NOT NULL,
    tenant text,
    ordering_key text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    dispatched_at timestamp with time zone,
    traceparent text,
    tracestate text,
    CONSTRAINT outbox_event_type_not_empty CHECK ((event_type <> ''::text)),
    CONSTRAINT outbox_trace_context_valid CHECK ((((traceparent IS NULL) AND (tracestate IS NULL)) OR (tailhook.trace_context_problem(traceparent, tracestate) IS NULL)))
);

-- Name: outbox_id_seq; Type: SEQUENCE; Schema: tailhook; Owner: -

ALTER TABLE tailhook.outbox ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME tailhook.outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

-- Name: outbox_legacy; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.outbox_legacy (
    id bigint NOT NULL,
    event_id uuid DEFAULT tailhook.uuid_v7() NOT NULL,
    event_type text NOT NULL,
    payload jsonb NOT NULL,
    tenant text,
    ordering_key text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    dispatched_at timestamp with time zone,
    traceparent text,
    tracestate text,
    CONSTRAINT outbox_event_type_not_empty CHECK ((event_type <> ''::text))
);

-- Name: outbox_legacy_id_seq; Type: SEQUENCE; Schema: tailhook; Owner: -

ALTER TABLE tailhook.outbox_legacy ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME tailhook.outbox_legacy_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

-- Name: partition_legacy; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.partition_legacy (
    tbl text NOT NULL,
    cutoff timestamp with time zone NOT NULL
);

-- Name: portal_key; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.portal_key (
    only_row boolean DEFAULT true NOT NULL,
    key bytea NOT NULL,
    set_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT portal_key_length CHECK ((octet_length(key) = 32)),
    CONSTRAINT portal_key_one_row CHECK (only_row)
);

-- Name: replicas; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.replicas (
    name text NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    heartbeat_at timestamp with time zone DEFAULT now() NOT NULL,
    alive_since timestamp with time zone DEFAULT now() NOT NULL
);

-- Name: role_grants; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.role_grants (
    role_oid oid NOT NULL,
    kind text NOT NULL,
    granted_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT role_grants_kind_known CHECK ((kind = ANY (ARRAY['publisher'::text, 'endpoint_manager'::text, 'history_reader'::text, 'sidecar'::text, 'portal_minter'::text])))
);

-- Name: schema_migrations; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

-- Name: secret_retirements; Type: TABLE; Schema: tailhook; Owner: -

CREATE TABLE tailhook.secret_retirements (
    endpoint_id bigint NOT NULL,
    keep integer NOT NULL,
    retire_at timestamp with time zone NOT NULL,
    CONSTRAINT secret_retirements_keep_positive CHECK ((keep > 0))
);

-- Name: attempts_default; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.attempts ATTACH PARTITION tailhook.attempts_default DEFAULT;

-- Name: attempts_undated; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.attempts ATTACH PARTITION tailhook.attempts_undated FOR VALUES FROM (MINVALUE) TO ('1970-01-01 00:00:00+00');

-- Name: deliveries_default; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.deliveries ATTACH PARTITION tailhook.deliveries_default DEFAULT;

-- Name: deliveries_undated; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.deliveries ATTACH PARTITION tailhook.deliveries_undated FOR VALUES FROM (MINVALUE) TO ('1970-01-01 00:00:00+00');

-- Name: event_ids_default; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids ATTACH PARTITION tailhook.event_ids_default DEFAULT;

-- Name: event_ids_y2020; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2020 FOR VALUES FROM ('016f5e66-e800-0000-0000-000000000000') TO ('0176bb3e-7000-0000-0000-000000000000');

-- Name: event_ids_y2021; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2021 FOR VALUES FROM ('0176bb3e-7000-0000-0000-000000000000') TO ('017e12ef-9c00-0000-0000-000000000000');

-- Name: event_ids_y2022; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2022 FOR VALUES FROM ('017e12ef-9c00-0000-0000-000000000000') TO ('01856aa0-c800-0000-0000-000000000000');

-- Name: event_ids_y2023; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2023 FOR VALUES FROM ('01856aa0-c800-0000-0000-000000000000') TO ('018cc251-f400-0000-0000-000000000000');

-- Name: event_ids_y2024; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2024 FOR VALUES FROM ('018cc251-f400-0000-0000-000000000000') TO ('01941f29-7c00-0000-0000-000000000000');

-- Name: event_ids_y2025; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2025 FOR VALUES FROM ('01941f29-7c00-0000-0000-000000000000') TO ('019b76da-a800-0000-0000-000000000000');

-- Name: event_ids_y2026; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2026 FOR VALUES FROM ('019b76da-a800-0000-0000-000000000000') TO ('01a2ce8b-d400-0000-0000-000000000000');

-- Name: event_ids_y2027; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2027 FOR VALUES FROM ('01a2ce8b-d400-0000-0000-000000000000') TO ('01aa263d-0000-0000-0000-000000000000');

-- Name: event_ids_y2028; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2028 FOR VALUES FROM ('01aa263d-0000-0000-0000-000000000000') TO ('01b18314-8800-0000-0000-000000000000');

-- Name: event_ids_y2029; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2029 FOR VALUES FROM ('01b18314-8800-0000-0000-000000000000') TO ('01b8dac5-b400-0000-0000-000000000000');

-- Name: event_ids_y2030; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2030 FOR VALUES FROM ('01b8dac5-b400-0000-0000-000000000000') TO ('01c03276-e000-0000-0000-000000000000');

-- Name: event_ids_y2031; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2031 FOR VALUES FROM ('01c03276-e000-0000-0000-000000000000') TO ('01c78a28-0c00-0000-0000-000000000000');

-- Name: event_ids_y2032; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2032 FOR VALUES FROM ('01c78a28-0c00-0000-0000-000000000000') TO ('01cee6ff-9400-0000-0000-000000000000');

-- Name: event_ids_y2033; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2033 FOR VALUES FROM ('01cee6ff-9400-0000-0000-000000000000') TO ('01d63eb0-c000-0000-0000-000000000000');

-- Name: event_ids_y2034; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2034 FOR VALUES FROM ('01d63eb0-c000-0000-0000-000000000000') TO ('01dd9661-ec00-0000-0000-000000000000');

-- Name: event_ids_y2035; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2035 FOR VALUES FROM ('01dd9661-ec00-0000-0000-000000000000') TO ('01e4ee13-1800-0000-0000-000000000000');

-- Name: event_ids_y2036; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2036 FOR VALUES FROM ('01e4ee13-1800-0000-0000-000000000000') TO ('01ec4aea-a000-0000-0000-000000000000');

-- Name: event_ids_y2037; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2037 FOR VALUES FROM ('01ec4aea-a000-0000-0000-000000000000') TO ('01f3a29b-cc00-0000-0000-000000000000');

-- Name: event_ids_y2038; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2038 FOR VALUES FROM ('01f3a29b-cc00-0000-0000-000000000000') TO ('01fafa4c-f800-0000-0000-000000000000');

-- Name: event_ids_y2039; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y2039 FOR VALUES FROM ('01fafa4c-f800-0000-0000-000000000000') TO ('020251fe-2400-0000-0000-000000000000');

-- Name: event_ids_y_early; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y_early FOR VALUES FROM (MINVALUE) TO ('016f5e66-e800-0000-0000-000000000000');

-- Name: event_ids_y_late; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default ATTACH PARTITION tailhook.event_ids_y_late FOR VALUES FROM ('020251fe-2400-0000-0000-000000000000') TO (MAXVALUE);

-- Name: outbox_default; Type: TABLE ATTACH; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.outbox ATTACH PARTITION tailhook.outbox_default DEFAULT;

-- Name: api_tokens api_tokens_hash_key; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.api_tokens
    ADD CONSTRAINT api_tokens_hash_key UNIQUE (hash);

-- Name: api_tokens api_tokens_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.api_tokens
    ADD CONSTRAINT api_tokens_pkey PRIMARY KEY (id);

-- Name: attempts attempts_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.attempts
    ADD CONSTRAINT attempts_pkey PRIMARY KEY (id, event_at);

-- Name: attempts_default attempts_default_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.attempts_default
    ADD CONSTRAINT attempts_default_pkey PRIMARY KEY (id, event_at);

-- Name: attempts attempts_error_kind_known; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.attempts
    ADD CONSTRAINT attempts_error_kind_known CHECK ((error_kind = ANY (ARRAY['timeout'::text, 'connect'::text, 'dns'::text, 'tls'::text, 'http_status'::text, 'redirect'::text, 'blocked_address'::text, 'invalid_request'::text, 'payload_too_large'::text, 'body_read'::text, 'transform'::text]))) NOT VALID;

-- Name: attempts_legacy attempts_error_kind_known; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.attempts_legacy
    ADD CONSTRAINT attempts_error_kind_known CHECK ((error_kind = ANY (ARRAY['timeout'::text, 'connect'::text, 'dns'::text, 'tls'::text, 'http_status'::text, 'redirect'::text, 'blocked_address'::text, 'invalid_request'::text, 'payload_too_large'::text, 'body_read'::text, 'transform'::text]))) NOT VALID;

-- Name: attempts_undated attempts_undated_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.attempts_undated
    ADD CONSTRAINT attempts_undated_pkey PRIMARY KEY (id, event_at);

-- Name: capture_config capture_config_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.capture_config
    ADD CONSTRAINT capture_config_pkey PRIMARY KEY (relid);

-- Name: deliveries deliveries_outbox_endpoint_unique; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.deliveries
    ADD CONSTRAINT deliveries_outbox_endpoint_unique UNIQUE (outbox_id, endpoint_id, event_at);

-- Name: deliveries_default deliveries_default_outbox_endpoint_unique; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.deliveries_default
    ADD CONSTRAINT deliveries_default_outbox_endpoint_unique UNIQUE (outbox_id, endpoint_id, event_at);

-- Name: deliveries deliveries_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.deliveries
    ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id, event_at);

-- Name: deliveries_default deliveries_default_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.deliveries_default
    ADD CONSTRAINT deliveries_default_pkey PRIMARY KEY (id, event_at);

-- Name: deliveries_undated deliveries_undated_outbox_endpoint_unique; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.deliveries_undated
    ADD CONSTRAINT deliveries_undated_outbox_endpoint_unique UNIQUE (outbox_id, endpoint_id, event_at);

-- Name: deliveries_undated deliveries_undated_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.deliveries_undated
    ADD CONSTRAINT deliveries_undated_pkey PRIMARY KEY (id, event_at);

-- Name: endpoints endpoints_backoff_initial_ms_max; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_backoff_initial_ms_max CHECK ((backoff_initial_ms <= 86400000)) NOT VALID;

-- Name: CONSTRAINT endpoints_backoff_initial_ms_max ON endpoints; Type: COMMENT; Schema: tailhook; Owner: -

COMMENT ON CONSTRAINT endpoints_backoff_initial_ms_max ON tailhook.endpoints IS 'backoff_initial_ms must be at most 86400000 (one day)';

-- Name: endpoints endpoints_backoff_initial_ms_positive; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_backoff_initial_ms_positive CHECK ((backoff_initial_ms > 0)) NOT VALID;

-- Name: CONSTRAINT endpoints_backoff_initial_ms_positive ON endpoints; Type: COMMENT; Schema: tailhook; Owner: -

COMMENT ON CONSTRAINT endpoints_backoff_initial_ms_positive ON tailhook.endpoints IS 'backoff_initial_ms must be greater than 0 (NULL: delivery.backoff_initial_ms)';

-- Name: endpoints endpoints_backoff_max_ms_at_least_initial; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_backoff_max_ms_at_least_initial CHECK ((backoff_max_ms >= backoff_initial_ms)) NOT VALID;

-- Name: CONSTRAINT endpoints_backoff_max_ms_at_least_initial ON endpoints; Type: COMMENT; Schema: tailhook; Owner: -

COMMENT ON CONSTRAINT endpoints_backoff_max_ms_at_least_initial ON tailhook.endpoints IS 'backoff_max_ms must be at least backoff_initial_ms when both are set';

-- Name: endpoints endpoints_backoff_max_ms_max; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_backoff_max_ms_max CHECK ((backoff_max_ms <= 604800000)) NOT VALID;

-- Name: CONSTRAINT endpoints_backoff_max_ms_max ON endpoints; Type: COMMENT; Schema: tailhook; Owner: -

COMMENT ON CONSTRAINT endpoints_backoff_max_ms_max ON tailhook.endpoints IS 'backoff_max_ms must be at most 604800000 (seven days)';

-- Name: endpoints endpoints_backoff_max_ms_positive; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_backoff_max_ms_positive CHECK ((backoff_max_ms > 0)) NOT VALID;

-- Name: CONSTRAINT endpoints_backoff_max_ms_positive ON endpoints; Type: COMMENT; Schema: tailhook; Owner: -

COMMENT ON CONSTRAINT endpoints_backoff_max_ms_positive ON tailhook.endpoints IS 'backoff_max_ms must be greater than 0 (NULL: delivery.backoff_max_ms)';

-- Name: endpoints endpoints_event_types_valid; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_event_types_valid CHECK (tailhook.event_types_valid(event_types)) NOT VALID;

-- Name: endpoints endpoints_headers_valid; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_headers_valid CHECK (tailhook.headers_valid(headers)) NOT VALID;

-- Name: endpoints endpoints_legacy_pair; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_legacy_pair CHECK (((legacy_signature IS NULL) = (legacy_secret IS NULL))) NOT VALID;

-- Name: endpoints endpoints_legacy_secret_valid; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_legacy_secret_valid CHECK (tailhook.legacy_secret_valid(legacy_secret)) NOT VALID;

-- Name: endpoints endpoints_legacy_signature_valid; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_legacy_signature_valid CHECK ((tailhook.legacy_signature_problem(legacy_signature) IS NULL)) NOT VALID;

-- Name: endpoints endpoints_max_attempts_max; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_max_attempts_max CHECK ((max_attempts <= 1000)) NOT VALID;

-- Name: endpoints endpoints_max_in_flight_max; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_max_in_flight_max CHECK ((max_in_flight <= 1000)) NOT VALID;

-- Name: endpoints endpoints_name_key; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.endpoints
    ADD CONSTRAINT endpoints_name_key UNIQUE (name);

-- Name: endpoints endpoints_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.endpoints
    ADD CONSTRAINT endpoints_pkey PRIMARY KEY (id);

-- Name: endpoints endpoints_rate_limit_max; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_rate_limit_max CHECK ((rate_limit_per_sec <= 10000)) NOT VALID;

-- Name: endpoints endpoints_secrets_valid; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_secrets_valid CHECK (tailhook.secrets_valid(secrets)) NOT VALID;

-- Name: endpoints endpoints_timeout_ms_max; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_timeout_ms_max CHECK ((timeout_ms <= 60000)) NOT VALID;

-- Name: endpoints endpoints_tls_ca_bundle_valid; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_tls_ca_bundle_valid CHECK (tailhook.pem_certificates_valid(tls_ca_bundle, 524288)) NOT VALID;

-- Name: CONSTRAINT endpoints_tls_ca_bundle_valid ON endpoints; Type: COMMENT; Schema: tailhook; Owner: -

COMMENT ON CONSTRAINT endpoints_tls_ca_bundle_valid ON tailhook.endpoints IS 'tls_ca_bundle must be PEM CERTIFICATE blocks, at most 524288 bytes';

-- Name: endpoints endpoints_tls_client_cert_valid; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_tls_client_cert_valid CHECK (tailhook.pem_certificates_valid(tls_client_cert, 65536)) NOT VALID;

-- Name: CONSTRAINT endpoints_tls_client_cert_valid ON endpoints; Type: COMMENT; Schema: tailhook; Owner: -

COMMENT ON CONSTRAINT endpoints_tls_client_cert_valid ON tailhook.endpoints IS 'tls_client_cert must be PEM CERTIFICATE blocks, at most 65536 bytes';

-- Name: endpoints endpoints_tls_client_key_valid; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_tls_client_key_valid CHECK (tailhook.pem_key_valid(tls_client_key)) NOT VALID;

-- Name: CONSTRAINT endpoints_tls_client_key_valid ON endpoints; Type: COMMENT; Schema: tailhook; Owner: -

COMMENT ON CONSTRAINT endpoints_tls_client_key_valid ON tailhook.endpoints IS 'tls_client_key must be one unencrypted PEM private key of at most 16384 bytes, or such a key sealed';

-- Name: endpoints endpoints_tls_client_pair; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_tls_client_pair CHECK (((tls_client_cert IS NULL) = (tls_client_key IS NULL))) NOT VALID;

-- Name: CONSTRAINT endpoints_tls_client_pair ON endpoints; Type: COMMENT; Schema: tailhook; Owner: -

COMMENT ON CONSTRAINT endpoints_tls_client_pair ON tailhook.endpoints IS 'tls_client_cert and tls_client_key are set together or not at all';

-- Name: endpoints endpoints_transform_length; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_transform_length CHECK ((octet_length(transform) <= 65536)) NOT VALID;

-- Name: endpoints endpoints_url_length; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.endpoints
    ADD CONSTRAINT endpoints_url_length CHECK ((length(url) <= 2048)) NOT VALID;

-- Name: event_ids_dropped event_ids_dropped_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_dropped
    ADD CONSTRAINT event_ids_dropped_pkey PRIMARY KEY (lo, hi);

-- Name: attempts_legacy legacy_attempts_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.attempts_legacy
    ADD CONSTRAINT legacy_attempts_pkey PRIMARY KEY (id);

-- Name: deliveries_legacy legacy_deliveries_outbox_endpoint_unique; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.deliveries_legacy
    ADD CONSTRAINT legacy_deliveries_outbox_endpoint_unique UNIQUE (outbox_id, endpoint_id);

-- Name: deliveries_legacy legacy_deliveries_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.deliveries_legacy
    ADD CONSTRAINT legacy_deliveries_pkey PRIMARY KEY (id);

-- Name: outbox_legacy legacy_outbox_event_id_key; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.outbox_legacy
    ADD CONSTRAINT legacy_outbox_event_id_key UNIQUE (event_id);

-- Name: outbox_legacy legacy_outbox_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.outbox_legacy
    ADD CONSTRAINT legacy_outbox_pkey PRIMARY KEY (id);

-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id, created_at);

-- Name: outbox_default outbox_default_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.outbox_default
    ADD CONSTRAINT outbox_default_pkey PRIMARY KEY (id, created_at);

-- Name: event_ids outbox_event_id_key; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids
    ADD CONSTRAINT outbox_event_id_key PRIMARY KEY (event_id);

-- Name: event_ids_default outbox_event_id_key_default; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_default
    ADD CONSTRAINT outbox_event_id_key_default PRIMARY KEY (event_id);

-- Name: event_ids_y2020 outbox_event_id_key_y2020; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2020
    ADD CONSTRAINT outbox_event_id_key_y2020 PRIMARY KEY (event_id);

-- Name: event_ids_y2021 outbox_event_id_key_y2021; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2021
    ADD CONSTRAINT outbox_event_id_key_y2021 PRIMARY KEY (event_id);

-- Name: event_ids_y2022 outbox_event_id_key_y2022; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2022
    ADD CONSTRAINT outbox_event_id_key_y2022 PRIMARY KEY (event_id);

-- Name: event_ids_y2023 outbox_event_id_key_y2023; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2023
    ADD CONSTRAINT outbox_event_id_key_y2023 PRIMARY KEY (event_id);

-- Name: event_ids_y2024 outbox_event_id_key_y2024; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2024
    ADD CONSTRAINT outbox_event_id_key_y2024 PRIMARY KEY (event_id);

-- Name: event_ids_y2025 outbox_event_id_key_y2025; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2025
    ADD CONSTRAINT outbox_event_id_key_y2025 PRIMARY KEY (event_id);

-- Name: event_ids_y2026 outbox_event_id_key_y2026; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2026
    ADD CONSTRAINT outbox_event_id_key_y2026 PRIMARY KEY (event_id);

-- Name: event_ids_y2027 outbox_event_id_key_y2027; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2027
    ADD CONSTRAINT outbox_event_id_key_y2027 PRIMARY KEY (event_id);

-- Name: event_ids_y2028 outbox_event_id_key_y2028; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2028
    ADD CONSTRAINT outbox_event_id_key_y2028 PRIMARY KEY (event_id);

-- Name: event_ids_y2029 outbox_event_id_key_y2029; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2029
    ADD CONSTRAINT outbox_event_id_key_y2029 PRIMARY KEY (event_id);

-- Name: event_ids_y2030 outbox_event_id_key_y2030; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2030
    ADD CONSTRAINT outbox_event_id_key_y2030 PRIMARY KEY (event_id);

-- Name: event_ids_y2031 outbox_event_id_key_y2031; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2031
    ADD CONSTRAINT outbox_event_id_key_y2031 PRIMARY KEY (event_id);

-- Name: event_ids_y2032 outbox_event_id_key_y2032; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2032
    ADD CONSTRAINT outbox_event_id_key_y2032 PRIMARY KEY (event_id);

-- Name: event_ids_y2033 outbox_event_id_key_y2033; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2033
    ADD CONSTRAINT outbox_event_id_key_y2033 PRIMARY KEY (event_id);

-- Name: event_ids_y2034 outbox_event_id_key_y2034; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2034
    ADD CONSTRAINT outbox_event_id_key_y2034 PRIMARY KEY (event_id);

-- Name: event_ids_y2035 outbox_event_id_key_y2035; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2035
    ADD CONSTRAINT outbox_event_id_key_y2035 PRIMARY KEY (event_id);

-- Name: event_ids_y2036 outbox_event_id_key_y2036; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2036
    ADD CONSTRAINT outbox_event_id_key_y2036 PRIMARY KEY (event_id);

-- Name: event_ids_y2037 outbox_event_id_key_y2037; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2037
    ADD CONSTRAINT outbox_event_id_key_y2037 PRIMARY KEY (event_id);

-- Name: event_ids_y2038 outbox_event_id_key_y2038; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2038
    ADD CONSTRAINT outbox_event_id_key_y2038 PRIMARY KEY (event_id);

-- Name: event_ids_y2039 outbox_event_id_key_y2039; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y2039
    ADD CONSTRAINT outbox_event_id_key_y2039 PRIMARY KEY (event_id);

-- Name: event_ids_y_early outbox_event_id_key_y_early; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y_early
    ADD CONSTRAINT outbox_event_id_key_y_early PRIMARY KEY (event_id);

-- Name: event_ids_y_late outbox_event_id_key_y_late; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.event_ids_y_late
    ADD CONSTRAINT outbox_event_id_key_y_late PRIMARY KEY (event_id);

-- Name: outbox outbox_trace_context_valid; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.outbox
    ADD CONSTRAINT outbox_trace_context_valid CHECK ((((traceparent IS NULL) AND (tracestate IS NULL)) OR (tailhook.trace_context_problem(traceparent, tracestate) IS NULL))) NOT VALID;

-- Name: CONSTRAINT outbox_trace_context_valid ON outbox; Type: COMMENT; Schema: tailhook; Owner: -

COMMENT ON CONSTRAINT outbox_trace_context_valid ON tailhook.outbox IS 'traceparent and tracestate must be W3C trace context (see tailhook.trace_context_problem)';

-- Name: outbox_legacy outbox_trace_context_valid; Type: CHECK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE tailhook.outbox_legacy
    ADD CONSTRAINT outbox_trace_context_valid CHECK ((((traceparent IS NULL) AND (tracestate IS NULL)) OR (tailhook.trace_context_problem(traceparent, tracestate) IS NULL))) NOT VALID;

-- Name: CONSTRAINT outbox_trace_context_valid ON outbox_legacy; Type: COMMENT; Schema: tailhook; Owner: -

COMMENT ON CONSTRAINT outbox_trace_context_valid ON tailhook.outbox_legacy IS 'traceparent and tracestate must be W3C trace context (see tailhook.trace_context_problem)';

-- Name: partition_legacy partition_legacy_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.partition_legacy
    ADD CONSTRAINT partition_legacy_pkey PRIMARY KEY (tbl);

-- Name: portal_key portal_key_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.portal_key
    ADD CONSTRAINT portal_key_pkey PRIMARY KEY (only_row);

-- Name: replicas replicas_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.replicas
    ADD CONSTRAINT replicas_pkey PRIMARY KEY (name);

-- Name: role_grants role_grants_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.role_grants
    ADD CONSTRAINT role_grants_pkey PRIMARY KEY (role_oid, kind);

-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

-- Name: secret_retirements secret_retirements_pkey; Type: CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.secret_retirements
    ADD CONSTRAINT secret_retirements_pkey PRIMARY KEY (endpoint_id);

-- Name: attempts_delivery; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX attempts_delivery ON ONLY tailhook.attempts USING btree (delivery_id);

-- Name: attempts_default_delivery; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX attempts_default_delivery ON tailhook.attempts_default USING btree (delivery_id);

-- Name: attempts_legacy_key; Type: INDEX; Schema: tailhook; Owner: -

CREATE UNIQUE INDEX attempts_legacy_key ON tailhook.attempts_legacy USING btree (id, event_at);

-- Name: attempts_undated_delivery; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX attempts_undated_delivery ON tailhook.attempts_undated USING btree (delivery_id);

-- Name: deliveries_due; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_due ON ONLY tailhook.deliveries USING btree (endpoint_id, next_attempt_at) WHERE (status = ANY (ARRAY['pending'::text, 'retrying'::text]));

-- Name: deliveries_default_due; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_default_due ON tailhook.deliveries_default USING btree (endpoint_id, next_attempt_at) WHERE (status = ANY (ARRAY['pending'::text, 'retrying'::text]));

-- Name: deliveries_endpoint; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_endpoint ON ONLY tailhook.deliveries USING btree (endpoint_id);

-- Name: deliveries_default_endpoint; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_default_endpoint ON tailhook.deliveries_default USING btree (endpoint_id);

-- Name: deliveries_failed; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_failed ON ONLY tailhook.deliveries USING btree (endpoint_id, completed_at) WHERE (status = 'failed'::text);

-- Name: deliveries_default_failed; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_default_failed ON tailhook.deliveries_default USING btree (endpoint_id, completed_at) WHERE (status = 'failed'::text);

-- Name: deliveries_finished; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_finished ON ONLY tailhook.deliveries USING btree (status, completed_at) WHERE (status = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text]));

-- Name: deliveries_default_finished; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_default_finished ON tailhook.deliveries_default USING btree (status, completed_at) WHERE (status = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text]));

-- Name: deliveries_keyed_scheduled; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_keyed_scheduled ON ONLY tailhook.deliveries USING btree (endpoint_id, ordering_key) WHERE ((status = ANY (ARRAY['pending'::text, 'retrying'::text])) AND (ordering_key IS NOT NULL) AND (next_attempt_at IS NOT NULL));

-- Name: deliveries_default_keyed_scheduled; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_default_keyed_scheduled ON tailhook.deliveries_default USING btree (endpoint_id, ordering_key) WHERE ((status = ANY (ARRAY['pending'::text, 'retrying'::text])) AND (ordering_key IS NOT NULL) AND (next_attempt_at IS NOT NULL));

-- Name: deliveries_ordered; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_ordered ON ONLY tailhook.deliveries USING btree (endpoint_id, ordering_key, outbox_id) WHERE ((status = ANY (ARRAY['pending'::text, 'retrying'::text])) AND (ordering_key IS NOT NULL));

-- Name: deliveries_default_ordered; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_default_ordered ON tailhook.deliveries_default USING btree (endpoint_id, ordering_key, outbox_id) WHERE ((status = ANY (ARRAY['pending'::text, 'retrying'::text])) AND (ordering_key IS NOT NULL));

-- Name: deliveries_succeeded; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_succeeded ON ONLY tailhook.deliveries USING btree (endpoint_id, completed_at) WHERE (status = 'succeeded'::text);

-- Name: deliveries_default_succeeded; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_default_succeeded ON tailhook.deliveries_default USING btree (endpoint_id, completed_at) WHERE (status = 'succeeded'::text);

-- Name: deliveries_legacy_key; Type: INDEX; Schema: tailhook; Owner: -

CREATE UNIQUE INDEX deliveries_legacy_key ON tailhook.deliveries_legacy USING btree (id, event_at);

-- Name: deliveries_legacy_unique; Type: INDEX; Schema: tailhook; Owner: -

CREATE UNIQUE INDEX deliveries_legacy_unique ON tailhook.deliveries_legacy USING btree (outbox_id, endpoint_id, event_at);

-- Name: deliveries_undated_due; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_undated_due ON tailhook.deliveries_undated USING btree (endpoint_id, next_attempt_at) WHERE (status = ANY (ARRAY['pending'::text, 'retrying'::text]));

-- Name: deliveries_undated_endpoint; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_undated_endpoint ON tailhook.deliveries_undated USING btree (endpoint_id);

-- Name: deliveries_undated_failed; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_undated_failed ON tailhook.deliveries_undated USING btree (endpoint_id, completed_at) WHERE (status = 'failed'::text);

-- Name: deliveries_undated_finished; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_undated_finished ON tailhook.deliveries_undated USING btree (status, completed_at) WHERE (status = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text]));

-- Name: deliveries_undated_keyed_scheduled; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_undated_keyed_scheduled ON tailhook.deliveries_undated USING btree (endpoint_id, ordering_key) WHERE ((status = ANY (ARRAY['pending'::text, 'retrying'::text])) AND (ordering_key IS NOT NULL) AND (next_attempt_at IS NOT NULL));

-- Name: deliveries_undated_ordered; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_undated_ordered ON tailhook.deliveries_undated USING btree (endpoint_id, ordering_key, outbox_id) WHERE ((status = ANY (ARRAY['pending'::text, 'retrying'::text])) AND (ordering_key IS NOT NULL));

-- Name: deliveries_undated_succeeded; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX deliveries_undated_succeeded ON tailhook.deliveries_undated USING btree (endpoint_id, completed_at) WHERE (status = 'succeeded'::text);

-- Name: event_ids_created_at; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_created_at ON ONLY tailhook.event_ids USING brin (created_at);

-- Name: event_ids_default_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_default_created_at_idx ON ONLY tailhook.event_ids_default USING brin (created_at);

-- Name: event_ids_y2020_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2020_created_at_idx ON tailhook.event_ids_y2020 USING brin (created_at);

-- Name: event_ids_y2021_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2021_created_at_idx ON tailhook.event_ids_y2021 USING brin (created_at);

-- Name: event_ids_y2022_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2022_created_at_idx ON tailhook.event_ids_y2022 USING brin (created_at);

-- Name: event_ids_y2023_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2023_created_at_idx ON tailhook.event_ids_y2023 USING brin (created_at);

-- Name: event_ids_y2024_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2024_created_at_idx ON tailhook.event_ids_y2024 USING brin (created_at);

-- Name: event_ids_y2025_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2025_created_at_idx ON tailhook.event_ids_y2025 USING brin (created_at);

-- Name: event_ids_y2026_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2026_created_at_idx ON tailhook.event_ids_y2026 USING brin (created_at);

-- Name: event_ids_y2027_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2027_created_at_idx ON tailhook.event_ids_y2027 USING brin (created_at);

-- Name: event_ids_y2028_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2028_created_at_idx ON tailhook.event_ids_y2028 USING brin (created_at);

-- Name: event_ids_y2029_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2029_created_at_idx ON tailhook.event_ids_y2029 USING brin (created_at);

-- Name: event_ids_y2030_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2030_created_at_idx ON tailhook.event_ids_y2030 USING brin (created_at);

-- Name: event_ids_y2031_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2031_created_at_idx ON tailhook.event_ids_y2031 USING brin (created_at);

-- Name: event_ids_y2032_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2032_created_at_idx ON tailhook.event_ids_y2032 USING brin (created_at);

-- Name: event_ids_y2033_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2033_created_at_idx ON tailhook.event_ids_y2033 USING brin (created_at);

-- Name: event_ids_y2034_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2034_created_at_idx ON tailhook.event_ids_y2034 USING brin (created_at);

-- Name: event_ids_y2035_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2035_created_at_idx ON tailhook.event_ids_y2035 USING brin (created_at);

-- Name: event_ids_y2036_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2036_created_at_idx ON tailhook.event_ids_y2036 USING brin (created_at);

-- Name: event_ids_y2037_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2037_created_at_idx ON tailhook.event_ids_y2037 USING brin (created_at);

-- Name: event_ids_y2038_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2038_created_at_idx ON tailhook.event_ids_y2038 USING brin (created_at);

-- Name: event_ids_y2039_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y2039_created_at_idx ON tailhook.event_ids_y2039 USING brin (created_at);

-- Name: event_ids_y_early_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y_early_created_at_idx ON tailhook.event_ids_y_early USING brin (created_at);

-- Name: event_ids_y_late_created_at_idx; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX event_ids_y_late_created_at_idx ON tailhook.event_ids_y_late USING brin (created_at);

-- Name: legacy_attempts_delivery; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX legacy_attempts_delivery ON tailhook.attempts_legacy USING btree (delivery_id);

-- Name: legacy_deliveries_due; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX legacy_deliveries_due ON tailhook.deliveries_legacy USING btree (endpoint_id, next_attempt_at) WHERE (status = ANY (ARRAY['pending'::text, 'retrying'::text]));

-- Name: legacy_deliveries_endpoint; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX legacy_deliveries_endpoint ON tailhook.deliveries_legacy USING btree (endpoint_id);

-- Name: legacy_deliveries_failed; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX legacy_deliveries_failed ON tailhook.deliveries_legacy USING btree (endpoint_id, completed_at) WHERE (status = 'failed'::text);

-- Name: legacy_deliveries_finished; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX legacy_deliveries_finished ON tailhook.deliveries_legacy USING btree (status, completed_at) WHERE (status = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text]));

-- Name: legacy_deliveries_keyed_scheduled; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX legacy_deliveries_keyed_scheduled ON tailhook.deliveries_legacy USING btree (endpoint_id, ordering_key) WHERE ((status = ANY (ARRAY['pending'::text, 'retrying'::text])) AND (ordering_key IS NOT NULL) AND (next_attempt_at IS NOT NULL));

-- Name: legacy_deliveries_ordered; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX legacy_deliveries_ordered ON tailhook.deliveries_legacy USING btree (endpoint_id, ordering_key, outbox_id) WHERE ((status = ANY (ARRAY['pending'::text, 'retrying'::text])) AND (ordering_key IS NOT NULL));

-- Name: legacy_deliveries_succeeded; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX legacy_deliveries_succeeded ON tailhook.deliveries_legacy USING btree (endpoint_id, completed_at) WHERE (status = 'succeeded'::text);

-- Name: legacy_outbox_undispatched; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX legacy_outbox_undispatched ON tailhook.outbox_legacy USING btree (id) WHERE (dispatched_at IS NULL);

-- Name: outbox_event_id; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX outbox_event_id ON ONLY tailhook.outbox USING btree (event_id);

-- Name: outbox_default_event_id; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX outbox_default_event_id ON tailhook.outbox_default USING btree (event_id);

-- Name: outbox_undispatched; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX outbox_undispatched ON ONLY tailhook.outbox USING btree (id) WHERE (dispatched_at IS NULL);

-- Name: outbox_default_undispatched; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX outbox_default_undispatched ON tailhook.outbox_default USING btree (id) WHERE (dispatched_at IS NULL);

-- Name: outbox_legacy_event_id; Type: INDEX; Schema: tailhook; Owner: -

CREATE INDEX outbox_legacy_event_id ON tailhook.outbox_legacy USING btree (event_id);

-- Name: outbox_legacy_key; Type: INDEX; Schema: tailhook; Owner: -

CREATE UNIQUE INDEX outbox_legacy_key ON tailhook.outbox_legacy USING btree (id, created_at);

-- Name: attempts_default_delivery; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.attempts_delivery ATTACH PARTITION tailhook.attempts_default_delivery;

-- Name: attempts_default_pkey; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.attempts_pkey ATTACH PARTITION tailhook.attempts_default_pkey;

-- Name: attempts_undated_delivery; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.attempts_delivery ATTACH PARTITION tailhook.attempts_undated_delivery;

-- Name: attempts_undated_pkey; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.attempts_pkey ATTACH PARTITION tailhook.attempts_undated_pkey;

-- Name: deliveries_default_due; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_due ATTACH PARTITION tailhook.deliveries_default_due;

-- Name: deliveries_default_endpoint; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_endpoint ATTACH PARTITION tailhook.deliveries_default_endpoint;

-- Name: deliveries_default_failed; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_failed ATTACH PARTITION tailhook.deliveries_default_failed;

-- Name: deliveries_default_finished; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_finished ATTACH PARTITION tailhook.deliveries_default_finished;

-- Name: deliveries_default_keyed_scheduled; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_keyed_scheduled ATTACH PARTITION tailhook.deliveries_default_keyed_scheduled;

-- Name: deliveries_default_ordered; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_ordered ATTACH PARTITION tailhook.deliveries_default_ordered;

-- Name: deliveries_default_outbox_endpoint_unique; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_outbox_endpoint_unique ATTACH PARTITION tailhook.deliveries_default_outbox_endpoint_unique;

-- Name: deliveries_default_pkey; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_pkey ATTACH PARTITION tailhook.deliveries_default_pkey;

-- Name: deliveries_default_succeeded; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_succeeded ATTACH PARTITION tailhook.deliveries_default_succeeded;

-- Name: deliveries_undated_due; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_due ATTACH PARTITION tailhook.deliveries_undated_due;

-- Name: deliveries_undated_endpoint; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_endpoint ATTACH PARTITION tailhook.deliveries_undated_endpoint;

-- Name: deliveries_undated_failed; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_failed ATTACH PARTITION tailhook.deliveries_undated_failed;

-- Name: deliveries_undated_finished; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_finished ATTACH PARTITION tailhook.deliveries_undated_finished;

-- Name: deliveries_undated_keyed_scheduled; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_keyed_scheduled ATTACH PARTITION tailhook.deliveries_undated_keyed_scheduled;

-- Name: deliveries_undated_ordered; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_ordered ATTACH PARTITION tailhook.deliveries_undated_ordered;

-- Name: deliveries_undated_outbox_endpoint_unique; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_outbox_endpoint_unique ATTACH PARTITION tailhook.deliveries_undated_outbox_endpoint_unique;

-- Name: deliveries_undated_pkey; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_pkey ATTACH PARTITION tailhook.deliveries_undated_pkey;

-- Name: deliveries_undated_succeeded; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.deliveries_succeeded ATTACH PARTITION tailhook.deliveries_undated_succeeded;

-- Name: event_ids_default_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_created_at ATTACH PARTITION tailhook.event_ids_default_created_at_idx;

-- Name: event_ids_y2020_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2020_created_at_idx;

-- Name: event_ids_y2021_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2021_created_at_idx;

-- Name: event_ids_y2022_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2022_created_at_idx;

-- Name: event_ids_y2023_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2023_created_at_idx;

-- Name: event_ids_y2024_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2024_created_at_idx;

-- Name: event_ids_y2025_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2025_created_at_idx;

-- Name: event_ids_y2026_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2026_created_at_idx;

-- Name: event_ids_y2027_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2027_created_at_idx;

-- Name: event_ids_y2028_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2028_created_at_idx;

-- Name: event_ids_y2029_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2029_created_at_idx;

-- Name: event_ids_y2030_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2030_created_at_idx;

-- Name: event_ids_y2031_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2031_created_at_idx;

-- Name: event_ids_y2032_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2032_created_at_idx;

-- Name: event_ids_y2033_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2033_created_at_idx;

-- Name: event_ids_y2034_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2034_created_at_idx;

-- Name: event_ids_y2035_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2035_created_at_idx;

-- Name: event_ids_y2036_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2036_created_at_idx;

-- Name: event_ids_y2037_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2037_created_at_idx;

-- Name: event_ids_y2038_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2038_created_at_idx;

-- Name: event_ids_y2039_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y2039_created_at_idx;

-- Name: event_ids_y_early_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y_early_created_at_idx;

-- Name: event_ids_y_late_created_at_idx; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.event_ids_default_created_at_idx ATTACH PARTITION tailhook.event_ids_y_late_created_at_idx;

-- Name: outbox_default_event_id; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id ATTACH PARTITION tailhook.outbox_default_event_id;

-- Name: outbox_default_pkey; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_pkey ATTACH PARTITION tailhook.outbox_default_pkey;

-- Name: outbox_default_undispatched; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_undispatched ATTACH PARTITION tailhook.outbox_default_undispatched;

-- Name: outbox_event_id_key_default; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key ATTACH PARTITION tailhook.outbox_event_id_key_default;

-- Name: outbox_event_id_key_y2020; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2020;

-- Name: outbox_event_id_key_y2021; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2021;

-- Name: outbox_event_id_key_y2022; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2022;

-- Name: outbox_event_id_key_y2023; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2023;

-- Name: outbox_event_id_key_y2024; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2024;

-- Name: outbox_event_id_key_y2025; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2025;

-- Name: outbox_event_id_key_y2026; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2026;

-- Name: outbox_event_id_key_y2027; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2027;

-- Name: outbox_event_id_key_y2028; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2028;

-- Name: outbox_event_id_key_y2029; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2029;

-- Name: outbox_event_id_key_y2030; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2030;

-- Name: outbox_event_id_key_y2031; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2031;

-- Name: outbox_event_id_key_y2032; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2032;

-- Name: outbox_event_id_key_y2033; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2033;

-- Name: outbox_event_id_key_y2034; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2034;

-- Name: outbox_event_id_key_y2035; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2035;

-- Name: outbox_event_id_key_y2036; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2036;

-- Name: outbox_event_id_key_y2037; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2037;

-- Name: outbox_event_id_key_y2038; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2038;

-- Name: outbox_event_id_key_y2039; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y2039;

-- Name: outbox_event_id_key_y_early; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y_early;

-- Name: outbox_event_id_key_y_late; Type: INDEX ATTACH; Schema: tailhook; Owner: -

ALTER INDEX tailhook.outbox_event_id_key_default ATTACH PARTITION tailhook.outbox_event_id_key_y_late;

-- Name: deliveries deliveries_cascade; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER deliveries_cascade AFTER DELETE ON tailhook.deliveries REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tailhook.cascade_delete();

-- Name: deliveries deliveries_failed_event; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER deliveries_failed_event AFTER UPDATE OF status ON tailhook.deliveries FOR EACH ROW WHEN (((new.status = 'failed'::text) AND (old.status <> 'failed'::text))) EXECUTE FUNCTION tailhook.delivery_failed_event();

-- Name: deliveries deliveries_key_head_deleted; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER deliveries_key_head_deleted AFTER DELETE ON tailhook.deliveries FOR EACH ROW WHEN (((old.ordering_key IS NOT NULL) AND (old.next_attempt_at IS NOT NULL) AND (old.status = ANY (ARRAY['pending'::text, 'retrying'::text])))) EXECUTE FUNCTION tailhook.schedule_key_head();

-- Name: deliveries deliveries_key_head_finished; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER deliveries_key_head_finished AFTER UPDATE OF status ON tailhook.deliveries FOR EACH ROW WHEN (((old.ordering_key IS NOT NULL) AND (old.next_attempt_at IS NOT NULL) AND (old.status = ANY (ARRAY['pending'::text, 'retrying'::text])) AND (new.status <> ALL (ARRAY['pending'::text, 'retrying'::text])))) EXECUTE FUNCTION tailhook.schedule_key_head();

-- Name: endpoints endpoints_cascade; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER endpoints_cascade AFTER DELETE ON tailhook.endpoints REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tailhook.cascade_delete();

-- Name: endpoints endpoints_filters_bounded; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER endpoints_filters_bounded BEFORE INSERT OR UPDATE OF filter, filter_path ON tailhook.endpoints FOR EACH ROW EXECUTE FUNCTION tailhook.endpoints_check_filters();

-- Name: endpoints endpoints_touch; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER endpoints_touch BEFORE UPDATE ON tailhook.endpoints FOR EACH ROW EXECUTE FUNCTION tailhook.touch_updated_at();

-- Name: endpoints endpoints_validate; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER endpoints_validate BEFORE INSERT OR UPDATE OF name, url, event_types, secrets, headers, enabled, ordered, managed_by, max_attempts, timeout_ms, rate_limit_per_sec, max_in_flight, transform, legacy_signature, legacy_secret, standard_signature, tls_client_cert, tls_client_key, tls_ca_bundle ON tailhook.endpoints FOR EACH ROW EXECUTE FUNCTION tailhook.endpoints_validate();

-- Name: outbox outbox_cascade; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER outbox_cascade AFTER DELETE ON tailhook.outbox REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tailhook.cascade_delete();

-- Name: outbox outbox_event_id_unique; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER outbox_event_id_unique AFTER INSERT ON tailhook.outbox REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tailhook.outbox_event_id_unique();

-- Name: outbox outbox_event_ids_deleted; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER outbox_event_ids_deleted AFTER DELETE ON tailhook.outbox REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tailhook.outbox_event_ids_gone();

-- Name: outbox outbox_event_ids_truncated; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER outbox_event_ids_truncated AFTER TRUNCATE ON tailhook.outbox FOR EACH STATEMENT EXECUTE FUNCTION tailhook.outbox_event_ids_gone();

-- Name: outbox outbox_notify; Type: TRIGGER; Schema: tailhook; Owner: -

CREATE TRIGGER outbox_notify AFTER INSERT ON tailhook.outbox FOR EACH STATEMENT EXECUTE FUNCTION tailhook.notify_outbox();

-- Name: secret_retirements secret_retirements_endpoint_id_fkey; Type: FK CONSTRAINT; Schema: tailhook; Owner: -

ALTER TABLE ONLY tailhook.secret_retirements
    ADD CONSTRAINT secret_retirements_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES tailhook.endpoints(id) ON DELETE CASCADE;

-- Name: FUNCTION cascade_delete(); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.cascade_delete() FROM PUBLIC;

-- Name: FUNCTION create_api_token(scope text, tenant text, name text, expires_in interval); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.create_api_token(scope text, tenant text, name text, expires_in interval) FROM PUBLIC;

-- Name: FUNCTION event_ids_expire(batch integer); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.event_ids_expire(batch integer) FROM PUBLIC;

-- Name: FUNCTION expand_captures(max_rows integer, wait boolean); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.expand_captures(max_rows integer, wait boolean) FROM PUBLIC;

-- Name: FUNCTION grant_endpoint_manager(role regrole); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.grant_endpoint_manager(role regrole) FROM PUBLIC;

-- Name: FUNCTION grant_history_reader(role regrole); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.grant_history_reader(role regrole) FROM PUBLIC;

-- Name: FUNCTION grant_kind(kind text, role regrole); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.grant_kind(kind text, role regrole) FROM PUBLIC;

-- Name: FUNCTION grant_portal_minter(role regrole); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.grant_portal_minter(role regrole) FROM PUBLIC;

-- Name: FUNCTION grant_publisher(role regrole); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.grant_publisher(role regrole) FROM PUBLIC;

-- Name: FUNCTION grant_sidecar(role regrole); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.grant_sidecar(role regrole) FROM PUBLIC;

-- Name: FUNCTION hmac_sha256(key bytea, message bytea); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.hmac_sha256(key bytea, message bytea) FROM PUBLIC;

-- Name: FUNCTION outbox_event_id_unique(); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.outbox_event_id_unique() FROM PUBLIC;

-- Name: FUNCTION outbox_event_ids_gone(); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.outbox_event_ids_gone() FROM PUBLIC;

-- Name: FUNCTION partition_strays(); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.partition_strays() FROM PUBLIC;

-- Name: FUNCTION partitions_drop(succeeded_ms bigint, failed_ms bigint); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.partitions_drop(succeeded_ms bigint, failed_ms bigint) FROM PUBLIC;

-- Name: FUNCTION partitions_prepare(width interval, ahead integer); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.partitions_prepare(width interval, ahead integer) FROM PUBLIC;

-- Name: FUNCTION portal_link(tenant text, ttl interval, read_only boolean); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.portal_link(tenant text, ttl interval, read_only boolean) FROM PUBLIC;

-- Name: FUNCTION publish(event_type text, payload jsonb, tenant text, ordering_key text, traceparent text, tracestate text); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.publish(event_type text, payload jsonb, tenant text, ordering_key text, traceparent text, tracestate text) FROM PUBLIC;

-- Name: FUNCTION publish_with_id(event_id uuid, event_type text, payload jsonb, tenant text, ordering_key text); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.publish_with_id(event_id uuid, event_type text, payload jsonb, tenant text, ordering_key text) FROM PUBLIC;

-- Name: FUNCTION regrant(); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.regrant() FROM PUBLIC;

-- Name: FUNCTION retire_secrets(); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.retire_secrets() FROM PUBLIC;

-- Name: FUNCTION revoke_api_token(token text); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.revoke_api_token(token text) FROM PUBLIC;

-- Name: FUNCTION set_portal_key(key bytea); Type: ACL; Schema: tailhook; Owner: -

REVOKE ALL ON FUNCTION tailhook.set_portal_key(key bytea) FROM PUBLIC;

