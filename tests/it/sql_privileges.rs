//! Hostile database roles: what change capture runs with whose privileges, who may execute tailhook's functions, and search_path hijacks.

use crate::support::*;
use std::time::Duration;

/// A role that may create objects in schema public (as an application's
/// role often may) and use schema tailhook if it exists.
async fn app_role(db: &TestDb, kind: &str) -> Role {
    let role = Role::new(db, kind).await;
    db.client()
        .await
        .batch_execute(&format!(
            "GRANT CREATE ON SCHEMA public TO {name};
             DO $$ BEGIN
                 IF to_regnamespace('tailhook') IS NOT NULL THEN
                     GRANT USAGE ON SCHEMA tailhook TO {name};
                 END IF;
             END $$;",
            name = role.name
        ))
        .await
        .unwrap();
    role
}

/// The role's `mood` enum, a table owning a column of it, and a cast to json
/// whose function records who ran it (current_user, session_user) in
/// `public.cast_calls` and tries to make the role superuser.
async fn app_with_a_hostile_cast(app: &Role) -> tokio_postgres::Client {
    let c = app.client().await;
    c.batch_execute(&format!(
        "CREATE TYPE public.mood AS ENUM ('happy', 'sad');
         CREATE TABLE public.orders (id bigint PRIMARY KEY, status text NOT NULL, m public.mood, tags public.mood[]);
         CREATE TABLE public.cast_calls (current_name text, session_name text, target text);
         GRANT INSERT ON public.cast_calls TO PUBLIC;
         CREATE FUNCTION public.mood_json(public.mood) RETURNS json LANGUAGE plpgsql AS $f$
         BEGIN
             INSERT INTO public.cast_calls VALUES (current_user, session_user, 'json');
             BEGIN
                 EXECUTE 'ALTER ROLE {name} SUPERUSER';
             EXCEPTION WHEN insufficient_privilege THEN NULL;
             END;
             RETURN pg_catalog.to_json(pg_catalog.textin(pg_catalog.enum_out($1)));
         END $f$;
         CREATE CAST (public.mood AS json) WITH FUNCTION public.mood_json(public.mood);
         CREATE FUNCTION public.mood_text(public.mood) RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN
             INSERT INTO public.cast_calls VALUES (current_user, session_user, 'text');
             BEGIN
                 EXECUTE 'ALTER ROLE {name} SUPERUSER';
             EXCEPTION WHEN insufficient_privilege THEN NULL;
             END;
             RETURN pg_catalog.textin(pg_catalog.enum_out($1));
         END $f$;
         CREATE CAST (public.mood AS text) WITH FUNCTION public.mood_text(public.mood);",
        name = app.name
    ))
    .await
    .unwrap();
    c
}

/// Who the hostile cast functions ran as: (current_user, session_user, target).
async fn cast_calls(db: &TestDb) -> Vec<(String, String, String)> {
    db.client()
        .await
        .query("SELECT current_name, session_name, target FROM public.cast_calls", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Issue 29, finding 4: role `app` owns a captured table with a column of
/// its own enum type and a cast from it to json (and to text) whose function
/// tries `ALTER ROLE app SUPERUSER`; a superuser captures the table. Neither
/// `app` calling the generated expansion function directly, nor the
/// sidecar's `expand_captures()`, nor `capture()` expanding what was staged,
/// may run that function with any role but `app`'s; the changes still reach
/// the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cast_on_a_captured_column_never_runs_with_tailhooks_or_the_capturers_privileges() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let app = app_role(&db, "app").await;
    let c = app_with_a_hostile_cast(&app).await;
    admin.batch_execute("SELECT tailhook.capture('public.orders', 'order')").await.unwrap();
    let oid: u32 = admin.query_one("SELECT 'public.orders'::regclass::oid", &[]).await.unwrap().get(0);

    c.batch_execute("INSERT INTO public.orders VALUES (1, 'new', 'happy', '{happy,sad}')").await.unwrap();
    // (a) the role calls the generated expansion function itself.
    let direct = c.query_one(&format!("SELECT tailhook.capture_{oid}_expand(9223372036854775807, 1000)"), &[]).await;
    assert!(!app.is_superuser(&db).await, "calling the expansion function made the app role superuser");
    let refused = direct.as_ref().err().and_then(|e| e.code()).map(|c| c.code().to_owned());
    assert_eq!(
        refused.as_deref(),
        Some("42501"),
        "the generated expansion function is not executable by the table's role: {direct:?}"
    );
    // The generated functions are executable by no one but their owner.
    let public_execute: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'tailhook'::regnamespace AND p.proname LIKE 'capture\\_' || $1::text || '%'
                AND pg_catalog.has_function_privilege($2::text, p.oid, 'EXECUTE')",
            &[&oid.to_string(), &app.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(public_execute, 0, "no generated function of the capture is executable by the app role");

    // (b) the sidecar's expansion (the statement it runs before each fan-out).
    let expanded: i64 = admin.query_one("SELECT tailhook.expand_captures(100000, false)", &[]).await.unwrap().get(0);
    assert_eq!(expanded, 1);
    // (c) capture() again, with a statement staged: it expands it first.
    c.batch_execute("UPDATE public.orders SET m = 'sad', status = 'paid' WHERE id = 1").await.unwrap();
    admin.batch_execute("SELECT tailhook.capture('public.orders', 'order', tenant_column => 'm')").await.unwrap();
    c.batch_execute("DELETE FROM public.orders").await.unwrap();
    admin
        .batch_execute(
            "SELECT tailhook.capture('public.orders', 'order', columns => '{id,m,tags}', key_column => 'id')",
        )
        .await
        .unwrap();
    c.batch_execute("INSERT INTO public.orders VALUES (2, 'new', 'happy', NULL)").await.unwrap();
    admin.query_one("SELECT tailhook.expand_captures(100000, false)", &[]).await.unwrap();

    // (d) a table with only built-in columns (its rows are converted whole,
    // by to_jsonb) gains a column of the enum after it was captured: the
    // expansion sees the new column before it converts a row.
    c.batch_execute("CREATE TABLE public.plain (id int PRIMARY KEY, note text)").await.unwrap();
    admin.batch_execute("SELECT tailhook.capture('public.plain', 'plain')").await.unwrap();
    c.batch_execute("INSERT INTO public.plain VALUES (1, 'a'); ALTER TABLE public.plain ADD COLUMN m public.mood; INSERT INTO public.plain VALUES (2, 'b', 'sad');").await.unwrap();
    admin.query_one("SELECT tailhook.expand_captures(100000, false)", &[]).await.unwrap();
    let plain: Vec<serde_json::Value> = admin
        .query(
            "SELECT (payload -> 'new')::text FROM tailhook.outbox WHERE event_type = 'plain.inserted' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(r.get(0)).unwrap())
        .collect();
    assert_eq!(
        plain,
        [serde_json::json!({"id": 1, "m": null, "note": "a"}), serde_json::json!({"id": 2, "m": "sad", "note": "b"})]
    );

    assert!(!app.is_superuser(&db).await, "the app role did not become superuser");
    for (current, session, target) in cast_calls(&db).await {
        assert_eq!(
            (current.as_str(), session.as_str()),
            (app.name.as_str(), app.name.as_str()),
            "the cast to {target} ran as {current} (session {session}), not only as the app role"
        );
    }
    // The changes still flow: the enum's values are its labels.
    let payloads: Vec<(String, Option<String>, String)> = admin
        .query(
            "SELECT event_type, tenant, payload::text FROM tailhook.outbox WHERE event_type LIKE 'order.%' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let got: Vec<(String, Option<String>, serde_json::Value)> =
        payloads.into_iter().map(|(t, tenant, p)| (t, tenant, serde_json::from_str(&p).unwrap())).collect();
    let t = "public.orders";
    use serde_json::json;
    assert_eq!(
        got,
        vec![
            (
                "order.inserted".to_owned(),
                None,
                json!({"table": t, "operation": "insert", "old": null,
                       "new": {"id": 1, "status": "new", "m": "happy", "tags": ["happy", "sad"]}})
            ),
            (
                // (staged before capture() changed the options: expanded with the old ones)
                "order.updated".to_owned(),
                None,
                json!({"table": t, "operation": "update",
                       "old": {"id": 1, "status": "new", "m": "happy", "tags": ["happy", "sad"]},
                       "new": {"id": 1, "status": "paid", "m": "sad", "tags": ["happy", "sad"]}})
            ),
            (
                "order.deleted".to_owned(),
                Some("sad".to_owned()),
                json!({"table": t, "operation": "delete", "new": null,
                       "old": {"id": 1, "status": "paid", "m": "sad", "tags": ["happy", "sad"]}})
            ),
            (
                "order.inserted".to_owned(),
                None,
                json!({"table": t, "operation": "insert", "old": null, "new": {"id": 2, "m": "happy", "tags": null}})
            ),
        ]
    );
}

/// Every name in tailhook's SQL files (`sql/`, `sql/queries/`) followed by
/// `(`, lower-cased: the functions it may call (and some words of comments).
fn names_called_in_sql() -> (Vec<String>, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut text = String::new();
    for dir in [root.clone(), root.join("queries")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sql") {
                text.push_str(&std::fs::read_to_string(&path).unwrap());
                text.push('\n');
            }
        }
    }
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let mut j = i;
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < bytes.len()
                && bytes[j] == b'('
                && (start == 0 || bytes[start - 1] != b'.' || text[..start].ends_with("pg_catalog."))
            {
                names.insert(text[start..i].to_ascii_lowercase());
            }
        } else {
            i += 1;
        }
    }
    (names.into_iter().collect(), text)
}

/// Run by the hostile role: for every pg_catalog function named in
/// tailhook's SQL (`names`) and every pg_catalog operator whose name appears
/// in it (`ops`), look-alikes in schema public that record in
/// `public.shadow_calls` that they ran, as whom: one with the same
/// signature (found first when public comes before pg_catalog in a
/// search_path), and ones with an argument's type replaced by each type that
/// converts to it implicitly, or for a `"any"` argument by each common type
/// (a closer match than the built-in, found even when pg_catalog comes
/// first, as `public.make_interval(secs numeric)` was). Aggregates get
/// same-signature look-alikes too.
const SHADOWS: &str = r#"
CREATE TABLE public.shadow_calls (name text NOT NULL, by_role text NOT NULL);
GRANT INSERT ON public.shadow_calls TO PUBLIC;
CREATE FUNCTION public.shadow_make(fname text, args text, ret text, bare_return boolean, label text)
RETURNS int LANGUAGE plpgsql AS $m$
BEGIN
    EXECUTE pg_catalog.format(
        'CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L', fname, args, ret,
        pg_catalog.format('BEGIN INSERT INTO public.shadow_calls VALUES (%L, current_user); RETURN%s; END', label,
            CASE WHEN bare_return OR ret = 'void' THEN '' ELSE ' NULL' END));
    RETURN 1;
EXCEPTION WHEN OTHERS THEN
    RETURN 0;
END
$m$;
DO $gen$
DECLARE
    names text[] := $1;
    ops text[] := $2;
    common oid[] := ARRAY['int2', 'int4', 'int8', 'numeric', 'float8', 'text', 'varchar', 'name', 'oid', 'regclass', 'regnamespace',
                          'bool', 'timestamptz', 'timestamp', 'date', 'interval', 'json', 'jsonb', 'uuid', 'bytea',
                          'text[]', 'int8[]', 'jsonpath']::pg_catalog.regtype[]::oid[];
    f record;
    o record;
    types oid[];
    argnames text[];
    i int;
    k int;
    t oid;
    made int := 0;
    n int := 0;
    args text;
    ret text;
BEGIN
    FOR f IN SELECT p.oid, p.proname, p.proargtypes::oid[] AS types, p.proargnames, p.pronargs, p.pronargdefaults,
                    p.provariadic, p.prorettype, p.proretset, p.proallargtypes IS NOT NULL AS outs, p.prokind
               FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'pg_catalog'::pg_catalog.regnamespace AND p.proname = ANY (names)
                AND p.prokind IN ('f', 'a') LOOP
        IF f.prokind = 'a' THEN
            -- An aggregate of the same signature, its state function recording.
            IF EXISTS (SELECT 1 FROM pg_catalog.unnest(f.types || f.prorettype) x
                         JOIN pg_catalog.pg_type y ON y.oid = x WHERE y.typtype = 'p') THEN
                CONTINUE;
            END IF;
            n := n + 1;
            made := made + public.shadow_make('shadow_agg_' || n,
                pg_catalog.format('s %s', pg_catalog.format_type(f.prorettype, NULL))
                    || coalesce((SELECT pg_catalog.string_agg(', ' || pg_catalog.format_type(x, NULL), '')
                                              FROM pg_catalog.unnest(f.types) x), ''),
                pg_catalog.format_type(f.prorettype, NULL), false, f.proname || ' (aggregate)');
            BEGIN
                EXECUTE pg_catalog.format('CREATE AGGREGATE public.%I(%s) (SFUNC = public.%I, STYPE = %s)', f.proname,
                    CASE WHEN f.pronargs = 0 THEN '*'
                         ELSE (SELECT pg_catalog.string_agg(pg_catalog.format_type(x, NULL), ', ') FROM pg_catalog.unnest(f.types) x) END,
                    'shadow_agg_' || n, pg_catalog.format_type(f.prorettype, NULL));
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
            CONTINUE;
        END IF;
        -- The same signature.
        made := made + public.shadow_make(f.proname, pg_catalog.pg_get_function_arguments(f.oid),
            pg_catalog.pg_get_function_result(f.oid), f.proretset OR f.outs, f.proname || '(' || pg_catalog.pg_get_function_identity_arguments(f.oid) || ')');
        CONTINUE WHEN f.outs OR f.pronargs = 0;
        -- Closer matches: one argument's type replaced.
        FOR i IN 1 .. f.pronargs LOOP
            FOREACH t IN ARRAY common LOOP
                CONTINUE WHEN t = f.types[i];
                CONTINUE WHEN f.types[i] <> '"any"'::pg_catalog.regtype
                          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_cast c
                                           WHERE c.castsource = t AND c.casttarget = f.types[i] AND c.castcontext = 'i');
                types := f.types;
                types[i] := t;
                ret := CASE WHEN f.proretset THEN 'SETOF ' ELSE '' END || pg_catalog.format_type(f.prorettype, NULL);
                args := '';
                FOR k IN 1 .. f.pronargs LOOP
                    args := args || CASE WHEN k > 1 THEN ', ' ELSE '' END
                        || CASE WHEN f.provariadic <> 0 AND k = f.pronargs AND types[k] <> t THEN 'VARIADIC ' ELSE '' END
                        || CASE WHEN f.proargnames[k] IS NOT NULL AND f.proargnames[k] <> '' THEN pg_catalog.quote_ident(f.proargnames[k]) || ' ' ELSE '' END
                        || CASE WHEN types[k] = '"any"'::pg_catalog.regtype THEN 'text' ELSE pg_catalog.format_type(types[k], NULL) END
                        || CASE WHEN k > f.pronargs - f.pronargdefaults THEN ' DEFAULT NULL' ELSE '' END;
                END LOOP;
                made := made + public.shadow_make(f.proname, args, ret, f.proretset, f.proname || '(' || args || ')');
                -- A variadic "any" also with a second argument of each type.
                IF f.types[i] = '"any"'::pg_catalog.regtype AND i = f.pronargs THEN
                    made := made + public.shadow_make(f.proname, args || ', text', ret, f.proretset,
                        f.proname || '(' || args || ', text)');
                    made := made + public.shadow_make(f.proname,
                        args || ', ' || pg_catalog.format_type(t, NULL) || ', ' || pg_catalog.format_type(t, NULL),
                        ret, f.proretset, f.proname || '(' || args || ', ...)');
                END IF;
            END LOOP;
        END LOOP;
    END LOOP;
    -- Operators: the same operand types, and each operand replaced by a type
    -- that converts to it implicitly.
    FOR o IN SELECT p.oid, p.oprname, p.oprleft, p.oprright, p.oprresult
               FROM pg_catalog.pg_operator p
              WHERE p.oprnamespace = 'pg_catalog'::pg_catalog.regnamespace AND p.oprname = ANY (ops) LOOP
        FOR i IN 0 .. 2 LOOP
            FOREACH t IN ARRAY CASE WHEN i = 0 THEN ARRAY[0::oid] ELSE common END LOOP
                types := ARRAY[o.oprleft, o.oprright];
                IF i > 0 THEN
                    CONTINUE WHEN types[i] = 0 OR t = types[i] OR NOT EXISTS (
                        SELECT 1 FROM pg_catalog.pg_cast c WHERE c.castsource = t AND c.casttarget = types[i] AND c.castcontext = 'i');
                    types[i] := t;
                END IF;
                n := n + 1;
                IF public.shadow_make('shadow_op_' || n,
                        pg_catalog.array_to_string(ARRAY(SELECT pg_catalog.format_type(x, NULL) FROM pg_catalog.unnest(types) x WHERE x <> 0), ', '),
                        pg_catalog.format_type(o.oprresult, NULL), false,
                        'operator ' || coalesce(pg_catalog.format_type(NULLIF(types[1], 0), NULL), '') || ' ' || o.oprname || ' '
                            || pg_catalog.format_type(types[2], NULL)) = 1 THEN
                    BEGIN
                        EXECUTE pg_catalog.format('CREATE OPERATOR public.%s (%s RIGHTARG = %s, FUNCTION = public.%I)', o.oprname,
                            CASE WHEN types[1] = 0 THEN '' ELSE 'LEFTARG = ' || pg_catalog.format_type(types[1], NULL) || ',' END,
                            pg_catalog.format_type(types[2], NULL), 'shadow_op_' || n);
                        made := made + 1;
                    EXCEPTION WHEN OTHERS THEN NULL;
                    END;
                END IF;
            END LOOP;
        END LOOP;
    END LOOP;
    RAISE NOTICE 'shadows made: %', made;
END
$gen$;
"#;

/// Creates the look-alikes as `hostile`; returns how many functions and operators it made.
async fn create_shadows(hostile: &Role, admin: &tokio_postgres::Client) -> i64 {
    let (names, text) = names_called_in_sql();
    let all_ops: Vec<String> = admin
        .query(
            "SELECT DISTINCT oprname::text FROM pg_catalog.pg_operator WHERE oprnamespace = 'pg_catalog'::regnamespace",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let ops: Vec<String> = all_ops.into_iter().filter(|o| text.contains(o.as_str())).collect();
    let literal = |v: &[String]| {
        format!(
            "ARRAY[{}]::text[]",
            v.iter().map(|x| format!("'{}'", x.replace('\'', "''"))).collect::<Vec<_>>().join(", ")
        )
    };
    let sql = SHADOWS.replacen("$1", &literal(&names), 1).replacen("$2", &literal(&ops), 1);
    let c = hostile.client().await;
    c.batch_execute("SET search_path = pg_catalog, pg_temp").await.unwrap();
    c.batch_execute(&sql).await.unwrap();
    let made: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM pg_catalog.pg_proc WHERE pronamespace = 'public'::regnamespace)
                  + (SELECT count(*) FROM pg_catalog.pg_operator WHERE oprnamespace = 'public'::regnamespace)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    made
}

/// The look-alikes that ran: (what, as whom).
async fn shadow_calls(admin: &tokio_postgres::Client) -> Vec<(String, String)> {
    admin
        .query("SELECT DISTINCT name, by_role FROM public.shadow_calls ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Waits for `check` up to 30 s; on timeout fails with the look-alikes that
/// ran (the likely reason) and what the deliveries say.
async fn until<F, Fut>(admin: &tokio_postgres::Client, what: &str, _limit: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    if !poll_until(Duration::from_secs(30), check).await {
        let deliveries: Vec<(String, String, Option<String>)> = admin
            .query(
                "SELECT e.name, d.status::text, d.last_error FROM tailhook.deliveries d
                   JOIN tailhook.endpoints e ON e.id = d.endpoint_id ORDER BY d.id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        panic!(
            "timed out waiting for {what}; look-alikes that ran: {:?}; deliveries: {deliveries:?}",
            shadow_calls(admin).await
        );
    }
}

/// A connection to `db` whose own statements never reach a look-alike.
async fn pinned(db: &TestDb) -> tokio_postgres::Client {
    let c = db.client().await;
    c.batch_execute("SET search_path = pg_catalog, pg_temp").await.unwrap();
    c
}

/// The whole pipeline with look-alikes of every built-in tailhook's SQL
/// names in schema public: migrate, publish (by the hostile role, in its own
/// session with public first on its search_path), change capture (its
/// triggers fire in that session), fan-out, delivery, retry until failed,
/// tailhook's operational event about it, retention, the console's pages,
/// and the status, redeliver and enable commands. `config` reaches `db`
/// directly or through a pooler. Returns the look-alikes that ran.
async fn whole_pipeline_with_shadows(db: &TestDb, config: tailhook::Config, hostile: &Role) -> Vec<(String, String)> {
    let admin = pinned(db).await;
    let receiver = Receiver::start(|path, _| if path == "/fails" { Reply::status(500) } else { Reply::ok() }).await;
    let url = config.database.url.expose().to_owned();
    // A finished delivery goes with its period's partition: periods of a
    // second, so retention's statements run within the wait below. `migrate`
    // prepares the periods ahead, so it gets the sidecar's width too.
    let width = "1 second";
    let mut env = vec![("DATABASE_URL", url.as_str()), ("TAILHOOK_RETENTION__PARTITION_INTERVAL", width)];
    if !config.database.prepared_statements {
        env.push(("TAILHOOK_DATABASE__PREPARED_STATEMENTS", "false"));
    }
    let out = tailhook(&["migrate"], &env);
    assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
    admin
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA tailhook TO {h};
             GRANT INSERT, SELECT ON tailhook.outbox TO {h};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA tailhook TO {h};
             SELECT tailhook.grant_publisher('{h}');",
            h = hostile.name
        ))
        .await
        .unwrap();
    let app = hostile.client().await;
    app.batch_execute(
        "SET search_path = public, pg_catalog;
         CREATE TYPE public.mood AS ENUM ('happy', 'sad');
         CREATE TABLE public.orders (id bigint PRIMARY KEY, status text NOT NULL, m public.mood);",
    )
    .await
    .unwrap();
    admin
        .batch_execute(&format!(
            "SELECT tailhook.capture('public.orders', 'order', tenant_column => 'status');
             INSERT INTO tailhook.endpoints (name, url, event_types, filter, filter_path)
                  VALUES ('ok', '{ok}', '{{order.*,paid}}', '{{}}', '$.type() == \"object\"');
             INSERT INTO tailhook.endpoints (name, url, event_types, max_attempts) VALUES ('fails', '{fails}', '{{paid}}', 2);
             INSERT INTO tailhook.endpoints (name, url, event_types) VALUES ('ops', '{ops}', '{{tailhook.*}}');",
            ok = receiver.url("/ok"),
            fails = receiver.url("/fails"),
            ops = receiver.url("/ops")
        ))
        .await
        .unwrap();
    let mut config = config;
    config.retention.succeeded_after_ms = 500;
    config.retention.interval_ms = 200;
    config.retention.partition_interval = width.to_owned();
    config.server.console = true;
    let (sidecar, base) = crate::support::console::start(config).await;

    // The role's own session: publish, and writes to the captured table.
    // (no operator in these statements of the role's own: in its session
    // they would call its own look-alikes, which is no business of tailhook's)
    app.batch_execute(
        "SELECT tailhook.publish('paid', '{\"n\": 1}');
         SELECT tailhook.publish('paid', '{\"n\": 2}', tenant => NULL, ordering_key => 'k');
         INSERT INTO public.orders VALUES (1, 'new', 'happy'), (2, 'new', NULL);
         UPDATE public.orders SET status = 'paid', m = 'sad';
         DELETE FROM public.orders;",
    )
    .await
    .unwrap();
    let received = |path: &'static str| {
        let receiver = receiver.clone();
        move || receiver.received().iter().filter(|r| r.path == path).count()
    };
    let ok = received("/ok");
    until(&admin, "2 published and 6 captured events at /ok", Duration::from_secs(30), || async { ok() >= 8 }).await;
    let ops = received("/ops");
    until(&admin, "tailhook.delivery.failed for both failed deliveries", Duration::from_secs(30), || async {
        ops() >= 2
    })
    .await;
    // Retention deletes the succeeded deliveries.
    until(&admin, "retention removed succeeded deliveries", Duration::from_secs(30), || async {
        admin
            .query_one("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 0
    })
    .await;
    // The console's pages.
    let id: i64 = admin.query_one("SELECT min(id) FROM tailhook.deliveries", &[]).await.unwrap().get(0);
    for path in [
        "/".to_owned(),
        "/deliveries".into(),
        "/deliveries?status=failed&endpoint=fails".into(),
        format!("/deliveries/{id}"),
    ] {
        let (status, _) = crate::support::console::get(&format!("{base}{path}"), &[]).await;
        assert_eq!(status, 200, "GET {path}");
    }
    // The operator's commands.
    for args in
        [&["status"][..], &["redeliver", "--dry-run"], &["enable", "fails"], &["redeliver", "--endpoint", "fails"]]
    {
        let out = tailhook(args, &env);
        assert!(out.status.success(), "tailhook {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let fails = received("/fails");
    until(&admin, "the redelivered deliveries were tried again", Duration::from_secs(30), || async { fails() >= 6 })
        .await;
    sidecar.stop().await;
    shadow_calls(&admin).await
}

/// Issue 29, finding 5, as reported: a role with CREATE on public defines
/// `public.make_interval(secs numeric)`, a closer match than the built-in
/// for the fan-out's `make_interval(secs => .../1000.0)`, which copies
/// tailhook.endpoints (every secret) into a table it can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_make_interval_look_alike_in_public_never_runs_in_the_fan_out() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let hostile = app_role(&db, "hostile").await;
    let receiver = Receiver::ok().await;
    add_endpoint(&admin, "victim", &receiver.url("/v"), &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).await;
    hostile
        .client()
        .await
        .batch_execute(
            "CREATE TABLE public.stolen (name text, secrets text[]);
             GRANT INSERT ON public.stolen TO PUBLIC;
             CREATE FUNCTION public.make_interval(secs numeric) RETURNS interval LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO public.stolen SELECT name, secrets FROM tailhook.endpoints;
                 RETURN pg_catalog.make_interval(secs => secs::float8);
             END $$;",
        )
        .await
        .unwrap();
    let sidecar = Sidecar::start(db.config());
    admin.batch_execute("SELECT tailhook.publish('order.paid', '{}')").await.unwrap();
    wait_for("delivered", Duration::from_secs(20), || async { receiver.count() >= 1 }).await;
    sidecar.stop().await;
    assert_eq!(db.count("SELECT count(*) FROM public.stolen").await, 0, "the look-alike copied the endpoints");
}

/// Issue 29, finding 5, systematically: look-alikes of every built-in
/// tailhook's SQL calls (see SHADOWS), the database's default search_path
/// putting public first (so any session or function of tailhook's that does
/// not pin its own would call them), and the whole pipeline run: none ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_look_alike_of_a_built_in_runs_anywhere_in_the_pipeline() {
    let db = TestDb::new().await;
    let hostile = app_role(&db, "hostile").await;
    let made = create_shadows(&hostile, &pinned(&db).await).await;
    assert!(made > 1000, "look-alikes made: {made}");
    pinned(&db)
        .await
        .batch_execute(&format!("ALTER DATABASE {} SET search_path = public, pg_catalog", db.name()))
        .await
        .unwrap();
    let ran = whole_pipeline_with_shadows(&db, db.config(), &hostile).await;
    assert!(ran.is_empty(), "look-alikes ran: {ran:?}");
}

/// Every function in schema tailhook runs with search_path pinned, or is one
/// of the hot-path functions left without a SET clause: two SQL functions
/// (uuid_v7 is inlined into every outbox insert; event_type_matches is
/// called per endpoint row), whose SQL-standard bodies were parsed (every
/// name resolved) when they were created, and filter_path_matches (called
/// per filtered endpoint row; a SET clause doubled its cost, 0020's header),
/// whose PL/pgSQL body names every function, operator and type with its
/// schema (the look-alike tests run it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tailhook_function_pins_its_search_path_or_has_a_body_resolved_at_creation() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    admin
        .batch_execute(
            "CREATE TABLE public.orders (id int PRIMARY KEY, v text);
             SELECT tailhook.capture('public.orders', 'order');",
        )
        .await
        .unwrap();
    let rows = admin
        .query(
            "SELECT p.oid::regprocedure::text, coalesce(array_to_string(p.proconfig, ' '), ''), p.prosqlbody IS NOT NULL,
                    p.prosecdef, has_function_privilege('public', p.oid, 'EXECUTE')
               FROM pg_proc p WHERE p.pronamespace = 'tailhook'::regnamespace ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() > 20, "{} functions", rows.len());
    let inlined = ["tailhook.event_type_matches(text[],text)", "tailhook.uuid_v7()"];
    let qualified = "tailhook.filter_path_matches(jsonb,jsonpath,bigint,double precision,double precision)";
    for row in rows {
        let (name, config, atomic, definer, public): (String, String, bool, bool, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        if inlined.contains(&name.as_str()) {
            assert!(atomic && !config.contains("search_path"), "{name}: no SET clause, body parsed at creation");
        } else if name == qualified {
            assert!(!atomic && !config.contains("search_path"), "{name}: a PL/pgSQL body, qualified throughout");
        } else {
            assert!(config.contains("search_path=pg_catalog, pg_temp"), "{name}: settings `{config}`");
        }
        if definer {
            assert!(!public, "{name} is SECURITY DEFINER and executable by PUBLIC");
        }
    }
}

/// The same through PgBouncer in transaction mode, where no session setting
/// may be left on a server connection (`database.prepared_statements =
/// false`): the look-alikes are in public, the database's search_path is
/// the default (`"$user", public`, pg_catalog implicitly first), so only a
/// look-alike that is a closer match than the built-in could be called;
/// tailhook's statements call none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_closer_look_alike_runs_through_pgbouncer_in_transaction_mode() {
    use crate::support::pgbouncer::{PgBouncer, PoolMode};
    let bouncer = PgBouncer::start(PoolMode::Transaction, 4).await;
    let db = TestDb::new().await;
    let hostile = app_role(&db, "hostile").await;
    let made = create_shadows(&hostile, &pinned(&db).await).await;
    assert!(made > 1000, "look-alikes made: {made}");
    let mut config = db.config();
    config.database.url = tailhook::secret::DatabaseUrl::new(bouncer.url_for(db.name()));
    config.database.listen = false;
    config.database.prepared_statements = false;
    config.database.poll_interval_ms = 100;
    let ran = whole_pipeline_with_shadows(&db, config, &hostile).await;
    assert!(ran.is_empty(), "look-alikes ran: {ran:?}");
}

/// Migration 10 runs outside a transaction, so behind a transaction-mode
/// pooler its statements run with the database's default search_path. Its
/// first DO block compares `pg_stat_progress_create_index.relid` (an oid)
/// with a regclass: a look-alike `public.=(oid, regclass)` is a closer match
/// than the built-in, and runs whenever an index build is under way anywhere
/// in the cluster (CI once ran it as tailhook's own role while another
/// test's migration was building). Here a build on another table is held
/// waiting for a writer while `migrate` runs through PgBouncer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_through_pgbouncer_beside_an_index_build_runs_no_look_alike() {
    use crate::support::pgbouncer::{PgBouncer, PoolMode};
    let bouncer = PgBouncer::start(PoolMode::Transaction, 4).await;
    let db = TestDb::new().await;
    let hostile = app_role(&db, "hostile").await;
    let made = create_shadows(&hostile, &pinned(&db).await).await;
    assert!(made > 1000, "look-alikes made: {made}");
    let admin = pinned(&db).await;
    admin.batch_execute("CREATE TABLE public.busy (id int)").await.unwrap();
    // A writer holds the table, so a concurrent build on it waits (and shows
    // in pg_stat_progress_create_index) until the writer ends.
    let writer = pinned(&db).await;
    writer.batch_execute("BEGIN; LOCK TABLE public.busy IN ROW EXCLUSIVE MODE").await.unwrap();
    let builder = pinned(&db).await;
    let build =
        tokio::spawn(async move { builder.batch_execute("CREATE INDEX CONCURRENTLY ON public.busy (id)").await });
    let building = || async {
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_progress_create_index WHERE relid = 'public.busy'::pg_catalog.regclass",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    };
    assert!(poll_until(Duration::from_secs(10), building).await, "the build never started");
    let url = bouncer.url_for(db.name());
    let out = tailhook(&["migrate"], &[("DATABASE_URL", &url), ("TAILHOOK_DATABASE__PREPARED_STATEMENTS", "false")]);
    assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
    assert!(building().await, "the build ended before migrate did: the test proved nothing");
    writer.batch_execute("COMMIT").await.unwrap();
    build.await.unwrap().unwrap();
    assert_eq!(shadow_calls(&admin).await, [], "look-alikes ran");
}

/// A table captured before migration 19, with a column of its owner's enum
/// (and its owner's hostile casts) and a statement staged: `migrate` gives
/// it the new expansion before anything expands, so the cast never runs,
/// during the upgrade or after, and the staged change is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_captured_before_19_is_upgraded_without_running_its_owners_casts() {
    let db = TestDb::new().await;
    let mut admin = db.client().await;
    admin
        .batch_execute(
            "CREATE SCHEMA tailhook;
             CREATE TABLE tailhook.schema_migrations (version int PRIMARY KEY, name text NOT NULL,
                                                      applied_at timestamptz NOT NULL DEFAULT now());",
        )
        .await
        .unwrap();
    for (v, name, sql) in tailhook::db::MIGRATIONS.iter().filter(|m| m.0 < 19) {
        apply_migration_by_hand(&admin, *v, sql).await;
        admin
            .execute("INSERT INTO tailhook.schema_migrations (version, name) VALUES ($1, $2)", &[v, name])
            .await
            .unwrap();
    }
    let app = app_role(&db, "app").await;
    let c = app_with_a_hostile_cast(&app).await;
    admin.batch_execute("SELECT tailhook.capture('public.orders', 'order')").await.unwrap();
    c.batch_execute("INSERT INTO public.orders VALUES (1, 'new', 'happy', '{sad}')").await.unwrap();
    let applied = tailhook::db::migrate(&mut admin).await.unwrap();
    assert!(applied.contains(&19), "applied {applied:?}");
    let oid: u32 = admin.query_one("SELECT 'public.orders'::regclass::oid", &[]).await.unwrap().get(0);
    let direct = c.query_one(&format!("SELECT tailhook.capture_{oid}_expand(9223372036854775807, 1000)"), &[]).await;
    assert_eq!(
        direct.err().and_then(|e| e.code().cloned()),
        Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    let expanded: i64 = admin.query_one("SELECT tailhook.expand_captures()", &[]).await.unwrap().get(0);
    assert_eq!(expanded, 1);
    assert!(!app.is_superuser(&db).await, "the app role became superuser");
    assert_eq!(cast_calls(&db).await, [], "the owner's casts ran");
    let new: String =
        admin.query_one("SELECT (payload -> 'new')::text FROM tailhook.outbox", &[]).await.unwrap().get(0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&new).unwrap(),
        serde_json::json!({"id": 1, "status": "new", "m": "happy", "tags": ["sad"]})
    );
}
