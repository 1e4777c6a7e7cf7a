//! Hostile database roles: what change capture runs with whose privileges, who may execute tailhook's functions, and search_path hijacks.

use crate::support::*;

/// A role of its own (cluster-wide, so a random name), dropped with what it
/// owns in the test database when the test ends.
pub struct Role {
    pub name: String,
    db_url: String,
    admin_url: String,
}

impl Role {
    /// `CREATE ROLE <prefix>_<random> LOGIN NOSUPERUSER`, with USAGE on schema
    /// tailhook and CREATE on schema public of `db`.
    pub async fn new(db: &TestDb, prefix: &str) -> Self {
        let name = format!("{prefix}_{:08x}", rand::random::<u32>());
        let admin = db.client().await;
        admin
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB;
                 GRANT USAGE ON SCHEMA tailhook TO {name};
                 GRANT CREATE ON SCHEMA public TO {name};"
            ))
            .await
            .unwrap();
        Self { name, db_url: db.url.clone(), admin_url: server().admin_url.clone() }
    }

    /// A connection to the test database as this role.
    pub async fn client(&self) -> tokio_postgres::Client {
        let mut config: tokio_postgres::Config = self.db_url.parse().unwrap();
        config.user(&self.name);
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    pub async fn is_superuser(&self, db: &TestDb) -> bool {
        db.client()
            .await
            .query_one("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1", &[&self.name])
            .await
            .unwrap()
            .get(0)
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let (name, db_url, admin_url) = (self.name.clone(), self.db_url.clone(), self.admin_url.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let db = connect(&db_url).await;
                db.batch_execute(&format!("DROP OWNED BY {name} CASCADE")).await.ok();
                drop(db);
                let admin = connect(&admin_url).await;
                admin.batch_execute(&format!("DROP ROLE IF EXISTS {name}")).await.ok()
            })
        })
        .join();
    }
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
    let app = Role::new(&db, "app").await;
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
    admin.batch_execute("SELECT tailhook.capture('public.orders', 'order', columns => '{id,m,tags}', key_column => 'id')").await.unwrap();
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
        .query("SELECT (payload -> 'new')::text FROM tailhook.outbox WHERE event_type = 'plain.inserted' ORDER BY id", &[])
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
        .query("SELECT event_type, tenant, payload::text FROM tailhook.outbox WHERE event_type LIKE 'order.%' ORDER BY id", &[])
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
