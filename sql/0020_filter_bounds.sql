-- tailhook schema, version 20: what an endpoint's filters may hold, checked
-- when a row is written, and filter_path evaluated so that its errors stay
-- with its own delivery. Plain SQL, safe to re-run.
--
-- The same rules are checked by tailhook itself, in src/config/rules.rs (for
-- the config file, and for rows written before this file): keep the numbers
-- and the rules in step. Why these rules: in lax mode every step may unwrap an
-- array, so a jsonpath costs about (its steps) × (the payload's nodes), except
-- where one part of it is evaluated again for every item of another: a `$`
-- inside a filter or a subscript, a second `.**`, a comparison of two values
-- both taken from the payload (every pair is compared), a subscript list
-- (`[0,0,0]` repeats items). Those are refused, and `.keyvalue()` (an object
-- built for every member: the costliest step measured); what remains is
-- linear (measured: at most about 150 ms for a 1 MiB payload).

-- Why a filter_path breaks the rules, or NULL when it keeps them. Takes the
-- text form (PostgreSQL's normal form for a stored value); every message
-- starts with `filter_path: ` and names the rule.
CREATE OR REPLACE FUNCTION tailhook.filter_path_problem(path text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
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
$$;

-- Why a filter (jsonb containment) breaks the rules, or NULL when it keeps
-- them: at most 64 values in all (each object member and array element
-- counts; containment compares each with the payload's values at its
-- place), nested at most 8 deep, each key and string at most 1 KiB.
CREATE OR REPLACE FUNCTION tailhook.filter_problem(filter jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
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

-- Refuses a row whose filters break the rules, naming the column and the
-- rule. A trigger, not a CHECK: it runs only when a filter is written, so a
-- row from before this file (marked invalid by tailhook, see invalid_reason)
-- can still be updated otherwise, e.g. to record why it is invalid.
CREATE OR REPLACE FUNCTION tailhook.endpoints_check_filters() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
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

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                    WHERE tgname = 'endpoints_filters_bounded' AND tgrelid = 'tailhook.endpoints'::regclass) THEN
        CREATE TRIGGER endpoints_filters_bounded
            BEFORE INSERT OR UPDATE OF filter, filter_path ON tailhook.endpoints
            FOR EACH ROW EXECUTE FUNCTION tailhook.endpoints_check_filters();
    END IF;
END
$$;

-- Evaluates an endpoint's filter_path on one payload for the fan-out
-- (sql/queries/dispatch.sql): 'match', 'no match', or why its delivery fails
-- at once. Silent mode turns missing keys and type errors into no match; an
-- error it lets through (a date compared with a time with a zone, a payload
-- nested deeper than the recursion of `.**` allows) is caught here, so it
-- fails that endpoint's delivery and never the claim shared with every other
-- endpoint. Evaluations of 0.2 ms or more count against two budgets of the
-- claim (one transaction): the endpoint's own, and all endpoints' together.
-- Once one is spent, the deliveries it covers are not evaluated but fail
-- with the reason, so one endpoint adds at most its budget plus one
-- evaluation (and under 0.2 ms a row) to a claim, and filters together at
-- most the claim's budget plus one evaluation each.
-- No SET clause (it runs for every filtered pair; one cost 3.5-5 us more per
-- call, about double): every name, operator and type is qualified instead.
CREATE OR REPLACE FUNCTION tailhook.filter_path_matches(payload pg_catalog.jsonb, path pg_catalog.jsonpath,
                                                       endpoint_id pg_catalog.int8,
                                                       endpoint_budget_ms pg_catalog.float8,
                                                       claim_budget_ms pg_catalog.float8)
RETURNS pg_catalog.text
LANGUAGE plpgsql VOLATILE AS $$
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
