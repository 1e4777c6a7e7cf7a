//! The documented roles: each connects as itself and is checked for what it may do and what is refused (SQLSTATE 42501).

use crate::support::{self, Receiver, TestDb, SECRET};
use std::time::Duration;

/// A login role with a unique name, made for one test; its privileges in the
/// test database are revoked and the role dropped when the test ends, even
/// when it fails (roles are cluster-wide).
struct Role {
    name: String,
    db_url: String,
    admin_url: String,
}

impl Role {
    async fn new(db: &TestDb, kind: &str) -> Self {
        let name = format!("tailhook_test_{kind}_{:08x}", rand::random::<u32>());
        let admin = db.client().await;
        admin.batch_execute(&format!("CREATE ROLE {name} LOGIN")).await.expect("create role");
        let admin_url = support::server().admin_url.clone();
        Self { name, db_url: db.url.clone(), admin_url }
    }

    /// `db.url` with this role as the user.
    fn url(&self) -> String {
        let (scheme, rest) = self.db_url.split_once("://").expect("a URL");
        let host = rest.split_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{}@{host}", self.name)
    }

    async fn connect(&self) -> tokio_postgres::Client {
        support::connect(&self.url()).await
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let (name, db_url, admin_url) = (self.name.clone(), self.db_url.clone(), self.admin_url.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let db = support::connect(&db_url).await;
                // Its sessions first (a sidecar's pool may still be closing).
                let _ = db
                    .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", &[&name])
                    .await;
                db.batch_execute(&format!("DROP OWNED BY {name}")).await.ok()?;
                drop(db);
                let admin = support::connect(&admin_url).await;
                admin.batch_execute(&format!("DROP ROLE IF EXISTS {name}")).await.ok()
            })
        })
        .join();
    }
}

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
    let me = role.connect().await;

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
    let me = role.connect().await;

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
    let me = role.connect().await;

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
    let me = role.connect().await;
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
