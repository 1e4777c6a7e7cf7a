//! TLS to a TLS-only PostgreSQL with a CA made by the test: sslmode, sslrootcert, client certificates, the whole sidecar.

use crate::support::tls::{self, CERT_USER, HOST};
use crate::support::*;
use std::time::Duration;
use tailhook::db::Db;
use tailhook::secret::DatabaseUrl;

/// Opens the pool on `url` and runs one query; the error with its causes
/// (the TLS handshake's reason is the source of tokio-postgres's error).
async fn ping(url: &str) -> Result<(), String> {
    let mut config = tailhook::Config::default().database;
    config.url = DatabaseUrl::new(url);
    config.statement_timeout_ms = 10_000;
    let db = Db::new(&config).map_err(|e| report(&e))?;
    db.ping().await.map_err(|e| report(&e))
}

/// Whether this connection is encrypted, seen from the server.
async fn encrypted(client: &tokio_postgres::Client) -> bool {
    client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypts_and_the_server_refuses_plaintext() {
    let server = tls::server();
    let url = server.url("postgres", HOST, "postgres", "sslmode=require");
    ping(&url).await.unwrap();
    assert!(encrypted(&connect(&url).await).await, "sslmode=require is encrypted");
    // prefer (the default) takes TLS when offered.
    assert!(encrypted(&connect(&server.url("postgres", HOST, "postgres", "")).await).await);

    let plain = ping(&server.url("postgres", HOST, "postgres", "sslmode=disable")).await.unwrap_err();
    assert!(plain.contains("no encryption"), "the server is TLS-only: {plain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_checks_the_chain_and_for_verify_full_the_host_name() {
    let server = tls::server();
    let (ca, other_ca) = (server.file("ca.crt"), server.file("other-ca.crt"));
    let wrong_host = "other.tailhook.test";
    // (host name, sslmode, sslrootcert, None if it connects, else what the error says)
    let cases: &[(&str, &str, &str, Option<&[&str]>)] = &[
        (HOST, "verify-full", &ca, None),
        (HOST, "verify-ca", &ca, None),
        (wrong_host, "verify-ca", &ca, None),
        (HOST, "require", &ca, None),
        (HOST, "verify-full", &other_ca, Some(&["TLS", "certificate", "UnknownIssuer"])),
        (HOST, "verify-ca", &other_ca, Some(&["TLS", "certificate", "UnknownIssuer"])),
        // As in libpq, require with a root certificate checks the chain.
        (HOST, "require", &other_ca, Some(&["TLS", "certificate", "UnknownIssuer"])),
        (wrong_host, "verify-full", &ca, Some(&["TLS", "certificate", "not valid for name", wrong_host])),
    ];
    for (host, mode, root, expected) in cases {
        let url = server.url("postgres", host, "postgres", &format!("sslmode={mode}&sslrootcert={root}"));
        let result = ping(&url).await;
        match (expected, result) {
            (None, Ok(())) => {}
            (Some(words), Err(e)) => {
                for w in *words {
                    assert!(e.contains(w), "{host} {mode} {root}: error lacks `{w}`: {e}");
                }
            }
            (expected, got) => panic!("{host} {mode} {root}: expected error {expected:?}, got {got:?}"),
        }
    }

    let no_root = ping(&server.url("postgres", HOST, "postgres", "sslmode=verify-full")).await.unwrap_err();
    assert!(no_root.contains("needs root certificates") && no_root.contains("sslrootcert"), "{no_root}");

    // The key=value form, with a quoted path.
    let key_value = format!(
        "host={HOST} hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert='{ca}'",
        port = server.pg.admin_url.parse::<tokio_postgres::Config>().unwrap().get_ports()[0],
    );
    ping(&key_value).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_verify_the_server_too() {
    let server = tls::server();
    let db = TestDb::on(&server.pg).await;
    let good =
        server.url("postgres", HOST, db.name(), &format!("sslmode=verify-full&sslrootcert={}", server.file("ca.crt")));
    let out = tailhook_command().env("DATABASE_URL", &good).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let bad = good.replace("ca.crt", "other-ca.crt");
    let out = tailhook_command().env("DATABASE_URL", &bad).arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    // The one line names the TLS handshake; its reason (the certificate) is
    // the error's source, shown once the command prints causes.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TLS handshake"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_accepted_where_the_server_requires_one() {
    let server = tls::server();
    let admin = connect(&server.pg.admin_url).await;
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {CERT_USER} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ))
        .await
        .unwrap();
    let root = format!("sslmode=verify-full&sslrootcert={}", server.file("ca.crt"));

    let without = ping(&server.url(CERT_USER, HOST, "postgres", &root)).await.unwrap_err();
    assert!(without.contains("certificate"), "refused without a client certificate: {without}");

    let with = format!("{root}&sslcert={}&sslkey={}", server.file("client.crt"), server.file("client.key"));
    let url = server.url(CERT_USER, HOST, "postgres", &with);
    ping(&url).await.unwrap();
    let client = connect(&url).await;
    let dn: Option<String> =
        client.query_one("SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_eq!(dn.as_deref(), Some("/CN=certuser"));

    let half =
        ping(&format!("{}&sslcert={}", server.url(CERT_USER, HOST, "postgres", &root), server.file("client.crt")))
            .await
            .unwrap_err();
    assert!(half.contains("sslcert is set but sslkey is not"), "{half}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_delivers_over_a_tls_only_server_woken_by_listen() {
    let server = tls::server();
    let db = TestDb::on(&server.pg).await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    add_endpoint(&client, "main", &receiver.url("/hook"), &[SECRET]).await;
    let mut config = db.config();
    let params = format!("sslmode=verify-full&sslrootcert={}", server.file("ca.crt"));
    config.database.url = DatabaseUrl::new(server.url("postgres", HOST, db.name(), &params));
    config.database.poll_interval_ms = 600_000; // only a notification can wake it
    let sidecar = Sidecar::start(config);
    let listener = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'";
    wait_for("the listener connected", Duration::from_secs(10), || async {
        client.query_one(listener, &[]).await.unwrap().get::<_, i64>(0) == 1
    })
    .await;
    for i in 0..20 {
        client.execute("SELECT tailhook.publish('tls.test', jsonb_build_object('i', $1::int))", &[&i]).await.unwrap();
    }
    wait_for("20 events delivered, woken by NOTIFY", Duration::from_secs(10), || async { receiver.count() == 20 })
        .await;
    wait_settled(&db, 20, Duration::from_secs(10)).await;

    let plaintext = db
        .count(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.datname = current_database() AND a.application_name = 'tailhook' AND NOT s.ssl",
        )
        .await;
    let sidecar_conns =
        db.count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tailhook'").await;
    sidecar.stop().await;
    assert!(sidecar_conns >= 2, "the pool and the listener are connected: {sidecar_conns}");
    assert_eq!(plaintext, 0, "every sidecar connection is encrypted");
    for r in receiver.received() {
        verify(SECRET, &r.headers, &r.body).unwrap_or_else(|e| panic!("{e}"));
    }
}
