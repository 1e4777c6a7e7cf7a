//! The documented roles: each connects as itself and is checked for what it may do and what is refused (SQLSTATE 42501).

use crate::support::{self, Receiver, Role, TestDb, SECRET};
use std::time::Duration;

/// Runs `sql` and expects it refused for want of privilege (SQLSTATE 42501).
async fn refused(client: &tokio_postgres::Client, sql: &str) {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("allowed, expected refused: {sql}"),
        Err(e) => assert_eq!(
            e.code().map(|c| c.code()),
            Some("42501"),
            "expected SQLSTATE 42501 for: {sql}\n got: {}",
            support::report(&e)
        ),
    }
}

/// Runs `sql` and expects it to succeed.
async fn allowed(client: &tokio_postgres::Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("refused, expected allowed: {sql}\n{}", support::report(&e)));
}

/// The statements every role but the ones named may not run.
const READ_PAYLOADS: &str = "SELECT payload FROM tailhook.outbox";
const READ_DELIVERIES: &str = "SELECT * FROM tailhook.deliveries";
const READ_ATTEMPTS: &str = "SELECT * FROM tailhook.attempts";
const READ_SECRETS: &str = "SELECT secrets FROM tailhook.endpoints";
const READ_HEADERS: &str = "SELECT headers FROM tailhook.endpoints";
const INSERT_OUTBOX: &str = "INSERT INTO tailhook.outbox (event_type, payload) VALUES ('x', '{}')";
const PUBLISH: &str = "SELECT tailhook.publish('order.paid', '{\"n\": 1}')";

#[tokio::test]
async fn a_publisher_may_only_publish_and_never_tailhooks_own_event_types() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    support::add_endpoint(&admin, "ops", "http://127.0.0.1:9/x", &[SECRET]).await;
    let role = Role::new(&db, "publisher").await;
    admin.execute("SELECT tailhook.grant_publisher($1::text::regrole)", &[&role.name]).await.expect("grant_publisher");
    let me = role.client().await;

    let id: String = me.query_one("SELECT tailhook.publish('order.paid', '{}')::text", &[]).await.unwrap().get(0);
    assert_eq!(id.len(), 36, "publish returns the event id");
    allowed(&me, "SELECT tailhook.publish('order.paid', '{}', 'acme', 'k1')").await;
    allowed(&me, "SELECT tailhook.publish('tailhook.test', '{}')").await;
    for forged in ["tailhook.endpoint.disabled", "tailhook.delivery.failed", "tailhook.anything"] {
        refused(&me, &format!("SELECT tailhook.publish('{forged}', '{{}}')")).await;
    }
    for sql in [
        READ_PAYLOADS,
        "SELECT event_id FROM tailhook.outbox",
        READ_DELIVERIES,
        READ_ATTEMPTS,
        "SELECT name FROM tailhook.endpoints",
        READ_SECRETS,
        "SELECT * FROM tailhook.endpoint_config",
        INSERT_OUTBOX,
        "UPDATE tailhook.outbox SET payload = '{}'",
        "DELETE FROM tailhook.outbox",
        "INSERT INTO tailhook.endpoints (name, url) VALUES ('evil', 'http://127.0.0.1:9/')",
        "SELECT tailhook.redeliver(1)",
        "SELECT tailhook.grant_publisher(current_user::text::regrole)",
    ] {
        refused(&me, sql).await;
    }
    let published = db.count("SELECT count(*) FROM tailhook.outbox").await;
    assert_eq!(published, 3, "the three allowed publishes, and no forged one");
    let forged = db
        .count(
            "SELECT count(*) FROM tailhook.outbox WHERE event_type LIKE 'tailhook.%' AND event_type <> 'tailhook.test'",
        )
        .await;
    assert_eq!(forged, 0);
}

#[tokio::test]
async fn publish_refuses_tailhooks_own_event_types_to_every_caller() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let e = admin.execute("SELECT tailhook.publish('tailhook.endpoint.paused', '{}')", &[]).await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{e}");
    let message = e.as_db_error().unwrap().message().to_owned();
    assert!(message.contains("tailhook.endpoint.paused") && message.contains("reserved"), "{message}");
}

#[tokio::test]
async fn an_endpoint_manager_manages_endpoints_and_reads_no_history() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    admin.execute("SELECT tailhook.publish('order.paid', '{\"card\": \"4242\"}')", &[]).await.unwrap();
    let role = Role::new(&db, "manager").await;
    admin
        .execute("SELECT tailhook.grant_endpoint_manager($1::text::regrole)", &[&role.name])
        .await
        .expect("grant_endpoint_manager");
    let me = role.client().await;

    allowed(
        &me,
        &format!(
            "INSERT INTO tailhook.endpoints (name, url, secrets, headers) VALUES \
             ('billing', 'https://billing.example.com/h', '{{{SECRET}}}', '{{\"x-api-key\": \"k-1\"}}')"
        ),
    )
    .await;
    allowed(&me, "UPDATE tailhook.endpoints SET event_types = '{invoice.*}' WHERE name = 'billing'").await;
    allowed(&me, "UPDATE tailhook.endpoints SET headers = headers || '{\"x-team\": \"pay\"}' WHERE name = 'billing'")
        .await;
    allowed(&me, "SELECT id, name, url, secrets, headers, enabled, invalid_reason FROM tailhook.endpoints").await;
    allowed(&me, "SELECT * FROM tailhook.endpoint_config").await;
    allowed(&me, "SELECT tailhook.enable_endpoint('billing')").await;
    allowed(&me, "DELETE FROM tailhook.endpoints WHERE name = 'billing'").await;
    for sql in [
        READ_PAYLOADS,
        READ_DELIVERIES,
        READ_ATTEMPTS,
        INSERT_OUTBOX,
        PUBLISH,
        "UPDATE tailhook.deliveries SET status = 'cancelled'",
        "TRUNCATE tailhook.endpoints",
        "ALTER TABLE tailhook.endpoints DROP CONSTRAINT endpoints_secrets_valid",
        "SELECT tailhook.grant_endpoint_manager(current_user::text::regrole)",
    ] {
        refused(&me, sql).await;
    }
}

#[tokio::test]
async fn a_history_reader_reads_history_and_endpoint_configuration_without_secrets_or_header_values() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    admin
        .batch_execute(&format!(
            "INSERT INTO tailhook.endpoints (name, url, secrets, headers) VALUES \
             ('billing', 'https://user:pw@billing.example.com/T000/B000/XXXX?token=t', '{{{SECRET}}}', \
              '{{\"x-api-key\": \"k-secret-1\", \"x-team\": \"pay\"}}')"
        ))
        .await
        .unwrap();
    admin.execute("SELECT tailhook.publish('order.paid', '{\"n\": 1}')", &[]).await.unwrap();
    let role = Role::new(&db, "reader").await;
    admin
        .execute("SELECT tailhook.grant_history_reader($1::text::regrole)", &[&role.name])
        .await
        .expect("grant_history_reader");
    let me = role.client().await;

    allowed(&me, READ_PAYLOADS).await;
    allowed(&me, READ_DELIVERIES).await;
    allowed(&me, READ_ATTEMPTS).await;
    allowed(&me, "SELECT * FROM tailhook.endpoint_stats").await;
    allowed(&me, "SELECT * FROM tailhook.delivery_log").await;
    let row = me
        .query_one("SELECT name, url, header_names, secrets, event_types::text[] FROM tailhook.endpoint_config", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "billing");
    assert_eq!(row.get::<_, String>(1), "https://billing.example.com", "scheme, host and port only");
    assert_eq!(row.get::<_, Vec<String>>(2), ["x-api-key", "x-team"], "header names, never values");
    assert_eq!(row.get::<_, i32>(3), 1, "how many secrets, never which");
    let all: String =
        me.query_one("SELECT to_jsonb(c)::text FROM tailhook.endpoint_config c", &[]).await.unwrap().get(0);
    for hidden in ["k-secret-1", "MfKQ9r8", "pw", "T000", "token"] {
        assert!(!all.contains(hidden), "{hidden} shows in {all}");
    }
    for sql in [
        READ_SECRETS,
        READ_HEADERS,
        "SELECT * FROM tailhook.endpoints",
        "SELECT url FROM tailhook.endpoints",
        INSERT_OUTBOX,
        PUBLISH,
        "UPDATE tailhook.deliveries SET status = 'cancelled'",
        "DELETE FROM tailhook.attempts",
        "UPDATE tailhook.endpoints SET enabled = false",
        "SELECT tailhook.grant_history_reader(current_user::text::regrole)",
    ] {
        refused(&me, sql).await;
    }
}

#[tokio::test]
async fn the_sidecar_runs_as_its_own_role_and_delivers_signed() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let receiver = Receiver::ok().await;
    support::add_endpoint(&admin, "hook", &receiver.url("/hook"), &[SECRET]).await;
    let role = Role::new(&db, "sidecar").await;
    admin.execute("SELECT tailhook.grant_sidecar($1::text::regrole)", &[&role.name]).await.expect("grant_sidecar");
    let me = role.client().await;
    for sql in [
        PUBLISH,
        "CREATE TABLE tailhook.mine (x int)",
        "DROP TABLE tailhook.attempts",
        "ALTER TABLE tailhook.endpoints DROP CONSTRAINT endpoints_secrets_valid",
        "TRUNCATE tailhook.outbox",
        "SELECT tailhook.grant_sidecar(current_user::text::regrole)",
    ] {
        refused(&me, sql).await;
    }
    drop(me);

    let mut config = db.config();
    config.database.url = tailhook::secret::DatabaseUrl::new(role.url());
    config.database.auto_migrate = false;
    config.endpoints.push(
        tailhook::Config::from_toml(&format!(
            "[[endpoints]]\nname = \"declared\"\nurl = \"{}\"\nsecret = \"{SECRET}\"",
            receiver.url("/declared")
        ))
        .unwrap()
        .endpoints
        .remove(0),
    );
    let sidecar = support::Sidecar::start(config);
    wait_for_ready(&db).await;
    admin.execute("SELECT tailhook.publish('order.paid', '{\"n\": 7}')", &[]).await.unwrap();
    support::wait_for("both deliveries succeeded", Duration::from_secs(20), || async {
        support::succeeded(&db, "hook").await == 1 && support::succeeded(&db, "declared").await == 1
    })
    .await;
    assert!(sidecar.is_running());
    sidecar.stop().await;
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    for r in &received {
        support::verify(SECRET, &r.headers, &r.body).expect("signed with the endpoint's secret");
    }
    let attempts = db.count("SELECT count(*) FROM tailhook.attempts WHERE status_code = 200").await;
    assert_eq!(attempts, 2);

    // The operator commands work as the sidecar's role too.
    for args in [
        &["status"][..],
        &["redeliver", "--endpoint", "hook", "--status", "succeeded"],
        &["enable", "hook"],
        &["send-test", "hook"],
    ] {
        let url = role.url();
        // On a thread of its own: the receiver answers on this test's runtime.
        let out = tokio::task::spawn_blocking(move || {
            let env = [
                ("TAILHOOK_DATABASE__URL", url.as_str()),
                ("TAILHOOK_DATABASE__AUTO_MIGRATE", "false"),
                ("TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS", "true"),
            ];
            support::tailhook(args, &env)
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(support::deliveries_of(&db, "hook", "retrying").await, 1, "redeliver put it back");
    assert_eq!(receiver.received().iter().filter(|r| r.path == "/hook").count(), 2, "send-test sent one more");
}

/// The sidecar has synced its config endpoints (it runs once it has).
async fn wait_for_ready(db: &TestDb) {
    support::wait_for("the sidecar's heartbeat", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.replicas").await > 0
    })
    .await;
}

/// Every privilege `role` holds on the schema `tailhook` and its objects, as
/// `object: privilege` lines.
async fn privileges_of(client: &tokio_postgres::Client, role: &str) -> Vec<String> {
    client
        .query(
            "SELECT o.name || ': ' || a.privilege_type
               FROM (SELECT c.oid::regclass::text AS name, c.relacl AS acl FROM pg_class c
                      WHERE c.relnamespace = 'tailhook'::regnamespace
                     UNION ALL
                     SELECT p.oid::regprocedure::text, p.proacl FROM pg_proc p
                      WHERE p.pronamespace = 'tailhook'::regnamespace
                     UNION ALL
                     SELECT 'schema ' || n.nspname, n.nspacl FROM pg_namespace n WHERE n.nspname = 'tailhook') o,
                    aclexplode(o.acl) a
              WHERE a.grantee = $1::text::regrole
              ORDER BY 1",
            &[&role],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The GRANTs the security guide lists for each kind give exactly what the
/// kind's function gives.
#[tokio::test]
async fn the_guides_grants_are_what_the_grant_functions_give() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let guide = include_str!("../../docs/guide/security.md");
    let start = guide.find("-- every kind").expect("the guide's GRANT block");
    let block = &guide[start..start + guide[start..].find("```").unwrap()];
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        match line.strip_prefix("-- ") {
            Some(heading) => sections.push((heading.trim().to_owned(), String::new())),
            None => sections.last_mut().unwrap().1.push_str(&format!("{line}\n")),
        }
    }
    let common = sections.iter().find(|(k, _)| k == "every kind").unwrap().1.clone();
    for (kind, function) in [
        ("publisher", "grant_publisher"),
        ("endpoint manager", "grant_endpoint_manager"),
        ("history reader", "grant_history_reader"),
        ("sidecar", "grant_sidecar"),
    ] {
        let grants =
            &sections.iter().find(|(k, _)| k == kind).unwrap_or_else(|| panic!("no `-- {kind}` in the guide")).1;
        let by_hand = Role::new(&db, "byhand").await;
        let by_function = Role::new(&db, "byfunction").await;
        let sql = format!("{common}{grants}").replace(" TO r;", &format!(" TO {};", by_hand.name));
        admin.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{kind}: {sql}\n{e}"));
        admin.execute(&format!("SELECT tailhook.{function}($1::text::regrole)"), &[&by_function.name]).await.unwrap();
        let (hand, func) = (privileges_of(&admin, &by_hand.name).await, privileges_of(&admin, &by_function.name).await);
        assert!(!hand.is_empty());
        assert_eq!(hand, func, "{kind}");
    }
}

/// A publisher that may create functions on its own search_path cannot get
/// them run with the owner's rights through publish (its column default, its
/// trigger): nothing it shadows is resolved inside.
#[tokio::test]
async fn a_publisher_shadowing_built_ins_on_its_search_path_runs_nothing_as_the_owner() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let role = Role::new(&db, "shadow").await;
    admin.execute("SELECT tailhook.grant_publisher($1::text::regrole)", &[&role.name]).await.unwrap();
    admin.batch_execute(&format!("CREATE SCHEMA evil AUTHORIZATION {}", role.name)).await.unwrap();
    let me = role.client().await;
    me.batch_execute(
        "CREATE TABLE evil.ran (who text, what text);
         GRANT INSERT ON evil.ran TO PUBLIC;
         CREATE FUNCTION evil.starts_with(text, text) RETURNS boolean LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO evil.ran VALUES (current_user, 'starts_with'); RETURN pg_catalog.starts_with($1, $2); END $$;
         CREATE FUNCTION evil.pg_notify(text, text) RETURNS void LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO evil.ran VALUES (current_user, 'pg_notify'); END $$;
         CREATE FUNCTION evil.encode(bytea, text) RETURNS text LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO evil.ran VALUES (current_user, 'encode'); RETURN pg_catalog.encode($1, $2); END $$;
         CREATE FUNCTION evil.gen_random_uuid() RETURNS uuid LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO evil.ran VALUES (current_user, 'gen_random_uuid'); RETURN pg_catalog.gen_random_uuid(); END $$;
         CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO evil.ran VALUES (current_user, 'clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END $$;
         CREATE FUNCTION evil.quote_literal(text) RETURNS text LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO evil.ran VALUES (current_user, 'quote_literal'); RETURN pg_catalog.quote_literal($1); END $$;
         SET search_path = evil, pg_catalog;",
    )
    .await
    .unwrap();
    // The shadows are what this role's own calls resolve to.
    me.batch_execute("SELECT starts_with('a', 'a')").await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM evil.ran").await, 1);
    me.batch_execute("TRUNCATE evil.ran").await.unwrap();

    allowed(&me, "SELECT tailhook.publish('order.paid', '{}')").await;
    refused(&me, "SELECT tailhook.publish('tailhook.endpoint.disabled', '{}')").await;
    let ran: Vec<String> = admin
        .query("SELECT who || ' ran ' || what FROM evil.ran", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(ran.is_empty(), "{ran:?}");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.outbox").await, 1);
}

/// A table captured after the sidecar's role was made: its changes reach
/// the receiver through the sidecar running as that role.
#[tokio::test]
async fn the_sidecars_role_expands_changes_of_a_table_captured_later() {
    let db = TestDb::new().await;
    let admin = db.migrate().await;
    let receiver = Receiver::ok().await;
    support::add_endpoint(&admin, "hook", &receiver.url("/hook"), &[SECRET]).await;
    let role = Role::new(&db, "capturer").await;
    admin.execute("SELECT tailhook.grant_sidecar($1::text::regrole)", &[&role.name]).await.unwrap();
    admin
        .batch_execute(
            "CREATE TABLE public.orders (id int PRIMARY KEY, status text);
             SELECT tailhook.capture('public.orders', 'order');",
        )
        .await
        .unwrap();
    let mut config = db.config();
    config.database.url = tailhook::secret::DatabaseUrl::new(role.url());
    config.database.auto_migrate = false;
    let sidecar = support::Sidecar::start(config);
    admin.batch_execute("INSERT INTO public.orders VALUES (1, 'new')").await.unwrap();
    support::wait_for("the captured change delivered", Duration::from_secs(20), || async {
        support::succeeded(&db, "hook").await == 1
    })
    .await;
    sidecar.stop().await;
    let got = receiver.received();
    assert_eq!(got[0].json()["type"], "order.inserted");
    support::verify(SECRET, &got[0].headers, &got[0].body).unwrap();
}

/// Roles that published with INSERT on the outbox before version 21 keep
/// publishing through `publish`; a role with only USAGE on the schema, which
/// could call it before, no longer can.
#[tokio::test]
async fn publishers_of_before_version_21_keep_publishing_and_others_lose_it() {
    let db = TestDb::new().await;
    let admin = db.client().await;
    for (version, _, sql) in tailhook::db::MIGRATIONS.iter().filter(|m| m.0 < 21) {
        support::apply_migration_by_hand(&admin, *version, sql).await;
    }
    let (app, stranger) = (Role::new(&db, "oldapp").await, Role::new(&db, "stranger").await);
    admin
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA tailhook TO {app}, {stranger};
             GRANT INSERT, SELECT (event_id) ON tailhook.outbox TO {app};",
            app = app.name,
            stranger = stranger.name
        ))
        .await
        .unwrap();
    let (old_app, old_stranger) = (app.client().await, stranger.client().await);
    allowed(&old_app, PUBLISH).await;
    // Before: anyone with USAGE could run publish (it then failed on the table).
    let before = old_stranger.batch_execute(PUBLISH).await.unwrap_err().as_db_error().unwrap().message().to_owned();
    assert!(before.contains("permission denied for table outbox"), "{before}");

    let (_, _, v21) = tailhook::db::MIGRATIONS.iter().find(|m| m.0 == 21).unwrap();
    support::apply_migration_by_hand(&admin, 21, v21).await;
    support::apply_migration_by_hand(&admin, 21, v21).await;
    allowed(&app.client().await, PUBLISH).await;
    let me = stranger.client().await;
    refused(&me, PUBLISH).await;
    let message = me.batch_execute(PUBLISH).await.unwrap_err().as_db_error().unwrap().message().to_owned();
    assert!(message.contains("permission denied for function publish"), "{message}");
}
