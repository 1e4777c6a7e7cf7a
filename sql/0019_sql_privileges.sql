-- tailhook schema, version 19: no other role's code runs with tailhook's
-- privileges (issue 29, findings 4 and 5).
-- Plain SQL, safe to re-run: functions are replaced in place, settings and
-- grants are set again to the same values, and a captured table's
-- expansion is re-generated only while it is not yet of this version.
--
-- 1. Change capture's expansion ran, as the role that called `capture`
--    (often a superuser), `to_jsonb` over the captured rows, and `to_jsonb`
--    calls any cast to json defined for a non-built-in type: the owner of an
--    enum in a captured table could make that cast run `ALTER ROLE ...
--    SUPERUSER`. A `::text` of the key or tenant column called a cast to
--    text the same way. Pinning search_path does not help (casts are found
--    by type, not by name). Now the generated code never hands a value to a
--    cast, an operator or a function that a non-superuser could have
--    written:
--      * a value of a "trusted" type (see capture_trusted: built-in types,
--        and types owned by a superuser whose casts all use functions owned
--        by superusers, e.g. an extension's) is converted as before
--        (`to_jsonb`, `::text`), so payloads do not change;
--      * any other value is converted through its type's output function
--        (`format('%s', v)`: output functions can only be written by
--        superusers), as the JSON string `to_jsonb` gives such a type when it
--        has no cast to json: an enum's label, a range's text; an array of
--        them is a JSON array of those strings, a composite of them an object;
--      * the whole row goes through `to_jsonb` only while every column is
--        trusted; the expansion locks the table (ACCESS SHARE, the lock a
--        SELECT takes) and checks its columns first, so a column added since
--        the function was generated makes it re-generate itself before it
--        converts any row.
--    The writer's side (the trigger) is unchanged: it copies rows, nothing
--    else.
-- 2. Generated functions are SECURITY DEFINER; they were executable by
--    PUBLIC, so any role with USAGE on schema tailhook could call the
--    expansion. Now EXECUTE is revoked from PUBLIC: the trigger function
--    needs none (PostgreSQL checks EXECUTE when a trigger is created, not
--    when it fires), the expansion is executable by its owner and by the
--    owner of `tailhook.expand_captures`, which calls it (and is itself
--    SECURITY DEFINER, not executable by PUBLIC).
-- 3. Every function in schema tailhook runs with search_path = pg_catalog,
--    pg_temp, whatever the calling session's search_path (a role that may
--    create objects in a schema on it could otherwise shadow a built-in),
--    except two SQL functions on hot paths: `uuid_v7` (the outbox's
--    event_id default, inlined into every insert: a SET clause stops
--    inlining) and `event_type_matches` (called per endpoint row by the
--    fan-out: a SET clause costs a settings save and restore per call,
--    measured 30-45 % more server CPU). They are recreated as SQL-standard
--    bodies (BEGIN ATOMIC), parsed once here with every name qualified, so
--    no later search_path can change what they call.

-- The type to_jsonb and casts look at: domains looked through.
CREATE OR REPLACE FUNCTION tailhook.capture_base_type(t oid) RETURNS oid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE d(oid, base, depth) AS (
        SELECT y.oid, y.typbasetype, 0 FROM pg_catalog.pg_type y WHERE y.oid = t
        UNION ALL
        SELECT y.oid, y.typbasetype, d.depth + 1 FROM d JOIN pg_catalog.pg_type y ON y.oid = d.base
         WHERE d.base <> 0 AND d.depth < 64)
    SELECT d.oid FROM d ORDER BY d.depth DESC LIMIT 1
$$;

-- The element type of a true array type (what to_jsonb walks into), else 0.
CREATE OR REPLACE FUNCTION tailhook.capture_element_type(t oid) RETURNS oid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN y.typelem <> 0 AND y.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc
                THEN y.typelem ELSE 0 END
      FROM pg_catalog.pg_type y WHERE y.oid = tailhook.capture_base_type(t)
$$;

-- Whether converting a value of type `t` (to_jsonb, a cast to text) can only
-- run code written by a superuser: the type (domains looked through, array
-- elements and composite attributes too) is owned by a superuser, and every
-- cast from it uses a function owned by a superuser (or none). Built-in
-- types and extensions' types are; a role's own enum, range or composite
-- type is not (its owner may define casts from it at any time).
CREATE OR REPLACE FUNCTION tailhook.capture_trusted(t oid, depth int DEFAULT 0) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
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

-- SQL for `expr` (of type `t`) as jsonb, handing no value to code a
-- non-superuser could have written (see the header): trusted types through
-- to_jsonb, others through their output function, composites attribute by
-- attribute (jsonb_build_object takes at most 100 arguments: chunks of 50).
CREATE OR REPLACE FUNCTION tailhook.capture_value_json(expr text, t oid, depth int DEFAULT 0) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
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

-- SQL for `expr` (of type `t`) as text: `::text` for a trusted type (its
-- casts are a superuser's), else its output function (format('%s', NULL)
-- is '', not NULL: a NULL is told apart first).
CREATE OR REPLACE FUNCTION tailhook.capture_value_text(expr text, t oid) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF tailhook.capture_trusted(t) THEN
        RETURN format('(%s)::pg_catalog.text', expr);
    END IF;
    RETURN format('CASE WHEN pg_catalog.num_nulls(%s) = 1 THEN NULL ELSE pg_catalog.format(''%%s'', %s) END', expr, expr);
END
$$;

-- What the generated expansion depends on: the table's columns (name, type)
-- and the attributes of the composite types among them (through domains
-- and arrays), at any depth. Cheap (index probes only, a few per column):
-- the expansion compares it with its own at every call.
CREATE OR REPLACE FUNCTION tailhook.capture_signature(r oid) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
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

-- SQL for a captured row (`expr`, of table `r`'s row type) as jsonb: every
-- column, or only `cols`.
CREATE OR REPLACE FUNCTION tailhook.capture_row_projection(expr text, r oid, cols text[]) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
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

-- Generates (or replaces) table `r`'s expansion function,
-- tailhook.capture_<r>_expand(upto, budget), for these options: the staged
-- statements of this table with a batch below `upto`, oldest first, up to
-- `budget` rows; returns how many rows it took. Owned by the role calling
-- it, SECURITY DEFINER, executable only by that role and the owner of
-- tailhook.expand_captures.
-- Rows come out of the arrays in lockstep (SRFs in one select list): an
-- UPDATE's old and new images of one row sit at the same position
-- (PostgreSQL records them as a pair); they are one event when their keys
-- are equal, else (the key itself changed) two: one with only `new`, one
-- with only `old`. A pair whose captured columns are all equal is dropped.
CREATE OR REPLACE FUNCTION tailhook.capture_make_expand(
    r oid, event_type text, columns text[], tenant_column text, key_column text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fname text := 'capture_' || r || '_expand';
    staged text := format('tailhook.%I', 'capture_' || r || '_staged');
    pinned text[];
    key_type oid;
    tenant_type oid;
    body text;
    caller oid;
BEGIN
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
-- tailhook capture v19: generated by tailhook.capture_make_expand, replaced by capture, dropped by uncapture.
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
    FOR s IN SELECT x.batch, x.op, x.n, x.done FROM %2$s x WHERE x.batch < upto ORDER BY x.batch LOOP
        EXIT WHEN used >= budget;
        lo := s.done + 1;
        hi := least(s.n, s.done + (budget - used));
        IF s.op = 'i' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %3$L, pg_catalog.jsonb_build_object('table', tbl, 'operation', 'insert', 'new', %6$s, 'old', NULL),
                   %8$s, %12$s, u.created_at
              FROM (SELECT pg_catalog.unnest(x.new_rows) AS n, pg_catalog.generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSIF s.op = 'd' THEN
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %5$L, pg_catalog.jsonb_build_object('table', tbl, 'operation', 'delete', 'new', NULL, 'old', %7$s),
                   %9$s, %18$s, u.created_at
              FROM (SELECT pg_catalog.unnest(x.old_rows) AS o, pg_catalog.generate_series(1, x.n) AS i, x.created_at
                      FROM %2$s x WHERE x.batch = s.batch) u
             WHERE u.i BETWEEN lo AND hi;
        ELSE
            INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key, created_at)
            SELECT %4$L, pg_catalog.jsonb_build_object('table', tbl, 'operation', 'update', 'new', e.nj, 'old', e.oj),
                   e.tenant, e.k, p.created_at
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
$$;

-- Installs (or replaces, atomically: it runs in the caller's transaction)
-- statement-level triggers on `tbl` that stage each statement's rows for
-- `<event_type>.inserted`, `.updated` and `.deleted` events with payload
-- {table, operation, new, old}. Statements staged under the previous options
-- are expanded with those options first. As 0018's, but the expansion is
-- generated by capture_make_expand, neither generated function is
-- executable by PUBLIC, and the calling role must be able to SELECT the table.
CREATE OR REPLACE FUNCTION tailhook.capture(
    tbl           regclass,
    event_type    text,
    operations    text[] DEFAULT '{insert,update,delete}',
    columns       text[] DEFAULT NULL,
    tenant_column text DEFAULT NULL,
    key_column    text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
$$;

-- Expands staged statements into outbox rows, oldest batch first, up to
-- about `max_rows` changed rows (a staged statement larger than what is left
-- is expanded in slices, across calls); returns how many rows were expanded
-- (0: nothing staged). One expander at a time: with `wait` false it returns 0
-- at once when another is at work (the sidecar's call), and stops for this
-- call when a captured table is locked against it (DDL under way); else it
-- waits. A table whose expansion fails (a captured column renamed without
-- capturing again) is skipped with a WARNING; its statements stay staged.
-- SECURITY DEFINER: it calls the generated expansion functions, which are
-- executable by their owner and by this function's owner only; EXECUTE on it
-- is not granted to PUBLIC.
CREATE OR REPLACE FUNCTION tailhook.expand_captures(max_rows int DEFAULT 100000, wait boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
$$;
REVOKE ALL ON FUNCTION tailhook.expand_captures(int, boolean) FROM PUBLIC;

-- Hot-path SQL functions without a SET clause (see the header): SQL-standard
-- bodies, parsed here with every name qualified, never re-parsed under a
-- caller's search_path. Same signatures and results as 0011's and 0013's.
CREATE OR REPLACE FUNCTION tailhook.event_type_matches(patterns text[], event_type text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT EXISTS (
        SELECT 1 FROM pg_catalog.unnest(patterns) AS p
        WHERE (p OPERATOR(pg_catalog.=) '*'::pg_catalog.text
               AND NOT (pg_catalog.starts_with(event_type, 'tailhook.'::pg_catalog.text)
                        AND event_type OPERATOR(pg_catalog.<>) 'tailhook.test'::pg_catalog.text))
           OR p OPERATOR(pg_catalog.=) event_type
           OR (pg_catalog.right(p, 2) OPERATOR(pg_catalog.=) '.*'::pg_catalog.text
               AND pg_catalog.starts_with(event_type, pg_catalog.left(p, -1))));
END;

CREATE OR REPLACE FUNCTION tailhook.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pg_catalog.encode(
        pg_catalog.set_bit(pg_catalog.set_bit(
            -- overlay, substring and extract with their SQL syntax always
            -- name pg_catalog's functions.
            overlay(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                    PLACING substring(pg_catalog.int8send((extract(epoch FROM pg_catalog.clock_timestamp())
                                                           OPERATOR(pg_catalog.*) 1000::pg_catalog.numeric)::pg_catalog.int8)
                                      FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::pg_catalog.uuid;
END;

-- Every other function in schema tailhook (those above, the earlier
-- migrations', and those capture generated) runs with the pinned
-- search_path; SECURITY DEFINER ones are not executable by PUBLIC.
DO $do$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS sig, p.prosecdef
               FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'tailhook'::regnamespace
                AND p.oid NOT IN ('tailhook.event_type_matches(text[], text)'::regprocedure,
                                  'tailhook.uuid_v7()'::regprocedure)
              ORDER BY p.oid LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f.sig);
        IF f.prosecdef THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.sig);
        END IF;
    END LOOP;
END
$do$;

-- Tables captured before this version get this version's expansion, with
-- their options unchanged, before anything expands with the old one (a
-- later version's are left as they are). Their trigger functions are kept
-- (the writer's side did not change).
DO $do$
DECLARE
    c tailhook.capture_config%ROWTYPE;
BEGIN
    FOR c IN SELECT cc.* FROM tailhook.capture_config cc
              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class k WHERE k.oid = cc.relid)
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                 WHERE p.pronamespace = 'tailhook'::regnamespace
                                   AND p.proname = 'capture_' || cc.relid || '_expand'
                                   AND p.prosrc ~ 'tailhook capture v(19|[2-9][0-9]):')
              ORDER BY cc.relid LOOP
        BEGIN
            PERFORM tailhook.capture_make_expand(c.relid, c.event_type, c.columns, c.tenant_column, c.key_column);
        EXCEPTION WHEN OTHERS THEN
            -- (a captured column renamed since): the old expansion is
            -- dropped, not kept; the statements stay staged until
            -- tailhook.capture is run again for the table.
            RAISE WARNING 'tailhook migration 19: the capture of % must be run again (tailhook.capture): %',
                c.relid::regclass, SQLERRM;
            EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I(bigint, int)', 'capture_' || c.relid || '_expand');
        END;
    END LOOP;
    PERFORM tailhook.capture_forget_dropped();
END
$do$;
