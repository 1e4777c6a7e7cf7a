-- tailhook schema, version 12: change capture. `tailhook.capture(tbl, ...)`
-- turns every INSERT, UPDATE and DELETE of an existing table into events in
-- the outbox, in the same transaction, without application code.
-- Plain SQL, safe to re-run: the options table is created only when absent and
-- the functions are replaced in place, so captured tables keep working.
--
-- Design (cheapest per statement): `capture` generates one trigger function
-- per captured table, `tailhook.capture_<table oid>()`, whose body is static
-- SQL with that table's options written in (columns, tenant and key column),
-- and installs one statement-level AFTER trigger per operation with a
-- transition table. A statement then costs one trigger call and one
-- set-based INSERT ... SELECT into the outbox, planned once per session and
-- cached by PL/pgSQL: no option lookup, no dynamic SQL, nothing per row but
-- the row's JSON and its outbox row. The options are also kept in
-- `tailhook.capture_config` (for `tailhook.captures` and `tailhook status`);
-- the generated function never reads it.

CREATE TABLE IF NOT EXISTS tailhook.capture_config (
    relid         oid PRIMARY KEY,
    event_type    text NOT NULL,
    operations    text[] NOT NULL,
    columns       text[],
    tenant_column text,
    key_column    text NOT NULL,
    function_name text NOT NULL,
    captured_at   timestamptz NOT NULL DEFAULT now()
);

-- The captured tables that still exist, with their options.
CREATE OR REPLACE VIEW tailhook.captures AS
SELECT format('%I.%I', n.nspname, c.relname) AS table_name,
       cc.event_type,
       cc.operations,
       cc.columns,
       cc.tenant_column,
       cc.key_column,
       cc.captured_at,
       cc.relid::regclass AS relid
  FROM tailhook.capture_config cc
  JOIN pg_catalog.pg_class c ON c.oid = cc.relid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace;

-- Forgets tables dropped since they were captured (their triggers went with
-- them; their generated functions and options rows are left over).
CREATE OR REPLACE FUNCTION tailhook.capture_forget_dropped() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    f text;
BEGIN
    FOR f IN DELETE FROM tailhook.capture_config cc
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = cc.relid)
          RETURNING function_name
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I()', f);
    END LOOP;
END
$$;

-- Removes the capture of `tbl`: its triggers, generated function and options.
-- The outbox, deliveries and attempts are left alone.
CREATE OR REPLACE FUNCTION tailhook.uncapture(tbl regclass) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    op text;
    f text;
BEGIN
    FOREACH op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'tailhook_capture_' || op, tbl);
    END LOOP;
    DELETE FROM tailhook.capture_config WHERE relid = tbl RETURNING function_name INTO f;
    IF f IS NOT NULL THEN
        EXECUTE format('DROP FUNCTION IF EXISTS tailhook.%I()', f);
    END IF;
    PERFORM tailhook.capture_forget_dropped();
    RETURN f IS NOT NULL;
END
$$;

-- A row of transition table `rel` as JSON: every column, or only `cols`.
-- jsonb_build_object takes at most 100 arguments, so long lists are joined
-- from chunks of 50 columns.
CREATE OR REPLACE FUNCTION tailhook.capture_row_json(rel text, cols text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
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

-- Installs (or replaces, atomically: it runs in the caller's transaction)
-- statement-level triggers on `tbl` that publish `<event_type>.inserted`,
-- `.updated` and `.deleted` with payload {table, operation, new, old}.
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
    proj_new text;
    proj_old text;
    tenant_new text;
    tenant_old text;
    body text := '';
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

    PERFORM tailhook.uncapture(tbl);

    proj_new := tailhook.capture_row_json('n', capture.columns);
    proj_old := tailhook.capture_row_json('o', capture.columns);
    tenant_new := CASE WHEN capture.tenant_column IS NULL THEN 'NULL::text' ELSE format('n.%I::text', capture.tenant_column) END;
    tenant_old := CASE WHEN capture.tenant_column IS NULL THEN 'NULL::text' ELSE format('o.%I::text', capture.tenant_column) END;

    -- The generated function: one static INSERT ... SELECT per operation.
    IF 'insert' = ANY (ops) THEN
        body := body || format($f$
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key)
        SELECT %L, jsonb_build_object('table', tbl, 'operation', 'insert', 'new', %s, 'old', NULL), %s, n.%I::text
          FROM new_rows n;
    END IF;$f$, capture.event_type || '.inserted', proj_new, tenant_new, key);
    END IF;
    IF 'delete' = ANY (ops) THEN
        body := body || format($f$
    IF TG_OP = 'DELETE' THEN
        INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key)
        SELECT %L, jsonb_build_object('table', tbl, 'operation', 'delete', 'new', NULL, 'old', %s), %s, o.%I::text
          FROM old_rows o;
    END IF;$f$, capture.event_type || '.deleted', proj_old, tenant_old, key);
    END IF;
    IF 'update' = ANY (ops) THEN
        -- Old and new rows are paired by the key, compared in its own type
        -- (a hash join). A row whose key changed has no partner: it is
        -- published with the other side NULL.
        body := body || format($f$
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key)
        SELECT %L, jsonb_build_object('table', tbl, 'operation', 'update', 'new', n.j, 'old', o.j),
               coalesce(n.tenant, o.tenant), coalesce(n.k, o.k)::text
          FROM (SELECT n.%I AS k, %s AS j, %s AS tenant FROM new_rows n) n
          FULL JOIN (SELECT o.%I AS k, %s AS j, %s AS tenant FROM old_rows o) o ON o.k = n.k
         WHERE n.j IS DISTINCT FROM o.j;
    END IF;$f$, capture.event_type || '.updated', key, proj_new, tenant_new, key, proj_old, tenant_old);
    END IF;

    EXECUTE format($f$CREATE FUNCTION tailhook.%I() RETURNS trigger LANGUAGE plpgsql SET jit = off AS %L$f$, fname,
        format($b$
-- Generated by tailhook.capture: replaced by capture, dropped by uncapture.
#variable_conflict use_variable
DECLARE
    tbl text := format('%%I.%%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
BEGIN%s
    RETURN NULL;
END
$b$, body));

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
END
$$;
