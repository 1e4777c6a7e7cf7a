-- tailhook schema, version 25: W3C trace context carried from the publisher
-- to each attempt's request (issue 26). Plain SQL, safe to re-run and to run
-- while publishers and replicas work.
--
-- An event may carry `traceparent` and `tracestate` (W3C Trace Context,
-- https://www.w3.org/TR/trace-context/): tailhook sends each attempt with a
-- `traceparent` of the event's trace whose parent is the attempt's own span,
-- and exports that span to an OpenTelemetry collector when one is configured
-- (docs/guide/observability.md). Three ways in:
--   * tailhook.publish(..., traceparent => ..., tracestate => ...): a
--     malformed value is refused, naming the parameter;
--   * the transaction's settings `tailhook.traceparent` and
--     `tailhook.tracestate` (SET LOCAL), read by publish when it is given
--     neither and by the triggers of captured tables: a malformed setting is
--     ignored (the event starts a trace of its own), so a bad header never
--     fails the application's own writes;
--   * INSERT into tailhook.outbox with the columns: CHECK constraints.

-- NULL: no trace context (tailhook starts a trace for the event).
ALTER TABLE tailhook.outbox ADD COLUMN IF NOT EXISTS traceparent text;
ALTER TABLE tailhook.outbox ADD COLUMN IF NOT EXISTS tracestate text;

-- Whether attempts to the endpoint carry `traceparent`/`tracestate`.
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS propagate_trace boolean NOT NULL DEFAULT true;

-- What is wrong with a trace context, or NULL when it is well formed (or
-- absent). traceparent: `<version>-<trace id>-<parent id>-<flags>`, lowercase
-- hex, 2-32-16-2 digits, ids not all zeros; version ff is invalid, version
-- 00 has exactly these four fields, a later version may add fields after
-- them. tracestate: at most 512 bytes of printable ASCII, with a traceparent.
CREATE OR REPLACE FUNCTION tailhook.trace_context_problem(traceparent text, tracestate text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
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
$$;

-- The transaction's trace context setting `tailhook.<name>` (name:
-- traceparent or tracestate), or NULL when it is unset, empty or malformed.
CREATE OR REPLACE FUNCTION tailhook.trace_setting(name text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN tailhook.trace_context_problem(p.tp, NULL) IS NULL
                 AND (trace_setting.name = 'traceparent' OR tailhook.trace_context_problem(p.tp, p.ts) IS NULL)
                THEN CASE trace_setting.name WHEN 'traceparent' THEN p.tp WHEN 'tracestate' THEN p.ts END END
      FROM (SELECT nullif(current_setting('tailhook.traceparent', true), '') AS tp,
                   nullif(current_setting('tailhook.tracestate', true), '') AS ts) p
$$;

-- The same rules for rows written directly; NOT VALID, as in version 4.
-- Rows without trace context (most) never call the function: it has a SET
-- clause, so each call saves and restores the search_path, which cost about
-- 10 µs per row on the outbox's INSERT and again on its dispatched_at UPDATE.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('outbox_trace_context_valid',
         'CHECK (traceparent IS NULL AND tracestate IS NULL OR tailhook.trace_context_problem(traceparent, tracestate) IS NULL)')
    ) AS v(name, def)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                        WHERE conrelid = 'tailhook.outbox'::regclass AND conname = c.name) THEN
            EXECUTE pg_catalog.format('ALTER TABLE tailhook.outbox ADD CONSTRAINT %I %s NOT VALID', c.name, c.def);
        END IF;
    END LOOP;
END
$$;
COMMENT ON CONSTRAINT outbox_trace_context_valid ON tailhook.outbox IS 'traceparent and tracestate must be W3C trace context (see tailhook.trace_context_problem)';

-- publish gains traceparent and tracestate. The four-argument form is
-- replaced, not overloaded (an overload would make every call with fewer
-- arguments ambiguous); the roles that could execute it may execute this one.
-- As in version 21: SECURITY DEFINER, search_path pinned, `tailhook.` types
-- refused but `tailhook.test`.
DO $$
DECLARE
    grantees regrole[];
    r regrole;
BEGIN
    IF to_regprocedure('tailhook.publish(text, jsonb, text, text)') IS NOT NULL THEN
        SELECT coalesce(array_agg(DISTINCT a.grantee::regrole), '{}') INTO grantees
          FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) AS a
         WHERE p.oid = 'tailhook.publish(text, jsonb, text, text)'::regprocedure
           AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner;
        DROP FUNCTION tailhook.publish(text, jsonb, text, text);
        CREATE TABLE pg_temp.tailhook_publish_grantees AS SELECT unnest(grantees) AS grantee;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION tailhook.publish(
    event_type   text,
    payload      jsonb,
    tenant       text DEFAULT NULL,
    ordering_key text DEFAULT NULL,
    traceparent  text DEFAULT NULL,
    tracestate   text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

REVOKE EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text, text, text) FROM PUBLIC;
DO $$
DECLARE
    r record;
BEGIN
    IF to_regclass('pg_temp.tailhook_publish_grantees') IS NOT NULL THEN
        FOR r IN SELECT g.grantee FROM pg_temp.tailhook_publish_grantees g LOOP
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text, text, text) TO %s',
                                      r.grantee);
        END LOOP;
        DROP TABLE pg_temp.tailhook_publish_grantees;
    END IF;
END
$$;

-- Publishers are granted the new signature (tailhook.regrant() runs it
-- again after migrating). As in version 21 otherwise.
CREATE OR REPLACE FUNCTION tailhook.grant_kind(kind text, role regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    statements text[];
    s text;
    t record;
BEGIN
    statements := ARRAY['GRANT USAGE ON SCHEMA tailhook TO %1$s'];
    CASE kind
    WHEN 'publisher' THEN
        statements := statements || ARRAY[
            'GRANT EXECUTE ON FUNCTION tailhook.publish(text, jsonb, text, text, text, text) TO %1$s'];
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
            'GRANT SELECT, INSERT, UPDATE ON tailhook.endpoints TO %1$s',
            'GRANT SELECT ON tailhook.schema_migrations, tailhook.endpoint_stats, tailhook.endpoint_config, tailhook.delivery_log, tailhook.capture_config, tailhook.captures TO %1$s',
            'GRANT EXECUTE ON FUNCTION tailhook.lock_undispatched(bigint), tailhook.expand_captures(int, boolean), tailhook.emit_endpoint_event(text, bigint, jsonb), tailhook.operational_wanted(text, bigint), tailhook.event_type_matches(text[], text), tailhook.enable_endpoint(text) TO %1$s'];
        -- Change capture needs nothing more: expand_captures runs as its
        -- owner (0019) and reads the staging tables and calls the generated
        -- expanders itself.
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


-- Captured tables: each staged statement keeps the writer's trace context
-- settings (column defaults of the staging table, so the writer's triggers
-- are unchanged), and the expansion copies them to every event of the
-- statement. As in version 19 otherwise.
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
$$;


-- Captured tables get this version's expansion (and their staging tables
-- the trace context columns), options unchanged.
DO $do$
DECLARE
    c tailhook.capture_config%ROWTYPE;
BEGIN
    FOR c IN SELECT cc.* FROM tailhook.capture_config cc
              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class k WHERE k.oid = cc.relid)
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                 WHERE p.pronamespace = 'tailhook'::regnamespace
                                   AND p.proname = 'capture_' || cc.relid || '_expand'
                                   AND p.prosrc ~ 'tailhook capture v(2[5-9]|[3-9][0-9]):')
              ORDER BY cc.relid LOOP
        BEGIN
            PERFORM tailhook.capture_make_expand(c.relid, c.event_type, c.columns, c.tenant_column, c.key_column);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'tailhook migration 25: the capture of % must be run again (tailhook.capture): %',
                c.relid::regclass, SQLERRM;
        END;
    END LOOP;
END
$do$;
