//! A newcomer's first hour: a quiet first start, commands on one endpoint that need only the database, the default port, `demo --keep`, and PgBouncer's prepared-statement error explained.

use crate::support::pgbouncer::{PgBouncer, PoolMode};
use crate::support::*;
use std::time::Duration;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The first start on an empty database applies every migration, 0010's
/// statements outside a transaction among them, and prints no NOTICE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_prints_no_notice() {
    let db = TestDb::new().await;
    let config = format!("[database]\nurl = \"{}\"\n[server]\nlisten = \"\"\n", db.url);
    let sidecar = Binary::run(&config, &[("TAILHOOK_LOG__LEVEL", "info")]);
    wait_for("the sidecar runs", Duration::from_secs(30), || async { sidecar.stderr().contains("tailhook running") })
        .await;
    let (code, stderr) = sidecar.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("migrations applied"), "{stderr}");
    let notices: Vec<&str> = stderr.lines().filter(|l| l.contains("NOTICE")).collect();
    assert!(notices.is_empty(), "{} NOTICE lines on the first start:\n{}", notices.len(), notices.join("\n"));

    // `migrate` on another fresh database: nothing on stderr at all.
    let fresh = TestDb::new().await;
    let out = tailhook(&["migrate"], &[("DATABASE_URL", &fresh.url), ("RUST_LOG", "info")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("NOTICE"), "{}", text(&out.stderr));
}

/// The printed steps, run whole by psql as the script's header says, print no NOTICE either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printed_steps_run_by_psql_print_no_notice() {
    let db = TestDb::new().await;
    let script = tailhook(&["migrate", "--print-sql", "--all"], &[]);
    assert_eq!(script.status.code(), Some(0));
    let dir = std::env::temp_dir().join(format!("tailhook-psql-{}-{:08x}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("schema.sql");
    std::fs::write(&file, &script.stdout).unwrap();
    let psql = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url, "-f"])
        .arg(&file)
        .output()
        .expect("psql is installed");
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = text(&psql.stderr);
    assert!(psql.status.success(), "{stderr}");
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.schema_migrations").await,
        tailhook::db::MIGRATIONS.len() as i64
    );
    let notices: Vec<&str> = stderr.lines().filter(|l| l.contains("NOTICE")).collect();
    assert!(notices.is_empty(), "{} NOTICE lines from psql:\n{}", notices.len(), notices.join("\n"));
}

/// `send-test` and `enable` act on one endpoint of the database: another
/// endpoint of the config file whose secret variable is set only in the
/// sidecar's environment is no reason to refuse. `run` and `check-config`
/// still insist on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_one_endpoint_need_only_the_database_and_that_endpoint() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::start(|_, _| Reply::ok()).await;
    add_endpoint(&client, "ok", &receiver.url("/ok"), &[SECRET]).await;
    client.batch_execute("UPDATE tailhook.endpoints SET enabled = false WHERE name = 'ok'").await.unwrap();
    let var = format!("TAILHOOK_TEST_ONLY_IN_THE_SIDECAR_{:08x}", rand::random::<u32>());
    let dir =
        std::env::temp_dir().join(format!("tailhook-lenient-{}-{:08x}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[database]\nurl = \"{}\"\n[[endpoints]]\nname = \"billing\"\nurl = \"https://billing.example/hook\"\nsecret_env = \"{var}\"\n",
            db.url
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();

    let out = tailhook(&["enable", "ok", "--config", file], &[]);
    assert_eq!(
        (out.status.code(), text(&out.stdout).trim()),
        (Some(0), "endpoint `ok` enabled"),
        "{}",
        text(&out.stderr)
    );

    let open = [("TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS", "true")];
    let out = tailhook(&["send-test", "ok", "--config", file], &open);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("HTTP 200 in "), "{}", text(&out.stdout));
    assert_eq!(receiver.count(), 1);

    for args in [&["run", "--config", file][..], &["check-config", "--config", file][..]] {
        let out = tailhook(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let expected = format!("config key `endpoints[0].secret_env`: environment variable {var} is not set");
        assert!(text(&out.stderr).contains(&expected), "{args:?}: {}", text(&out.stderr));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A request the destination policy refuses is never reported as sent: the
/// output says it was refused before sending, why, and which setting of
/// which process decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_never_says_sent_for_a_request_refused_before_sending() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let receiver = Receiver::start(|_, _| Reply::ok()).await;
    add_endpoint(&client, "local", &receiver.url("/hook"), &[SECRET]).await;

    let out = tailhook(&["send-test", "local"], &[("DATABASE_URL", &db.url)]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(receiver.count(), 0, "nothing was sent");
    assert!(!stdout.contains("sent ") && !stdout.contains("no response after"), "{stdout}");
    assert!(stdout.contains("refused before sending: blocked_address"), "{stdout}");
    assert!(stdout.contains("127.0.0.1 is a loopback address"), "{stdout}");
    // Which setting decides, and that it is this command's own configuration.
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS=true"), "{all}");
    assert!(all.contains("send-test applies its own configuration"), "{all}");
    assert!(
        stderr.trim().starts_with("tailhook: test request to `local` refused before sending (blocked_address)"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// The default listener port is none that Prometheus's default port
/// allocations give to an exporter (postgres_exporter has 9187), and every
/// file that names it says the same.
#[test]
fn the_default_port_is_not_an_exporters_and_every_file_agrees() {
    let port = tailhook::Config::default().server.listen.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    assert_ne!(port, 9187, "postgres_exporter's port");
    assert!(!(9100..=9999).contains(&port), "the wiki's standard exporter range is fully allocated");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "config.toml",
        "Dockerfile",
        "README.md",
        "docs/reference.md",
        "deploy/compose.yaml",
        "deploy/compose.toml",
        "deploy/kubernetes.yaml",
    ] {
        let contents = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(contents.contains(&port.to_string()), "{file} names the default port {port}");
        for line in contents.lines().filter(|l| l.contains("9187")) {
            assert!(line.contains("postgres_exporter") || line.contains("postgres-exporter"), "{file}: {line}");
        }
    }
}

/// `demo --keep` leaves its database (with the tour's record) for a first
/// `run`, and prints the exact command and how to drop it. It runs beside a
/// sidecar already listening on the default port (its own needs no listener).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_keep_leaves_its_database_and_prints_how_to_run_and_drop_it() {
    let server = server();
    // Taken here, or already taken by something else: either way, taken.
    let _default_port = std::net::TcpListener::bind(tailhook::Config::default().server.listen);
    let out = tokio::task::spawn_blocking({
        let url = server.admin_url.clone();
        move || tailhook(&["demo", "--keep"], &[("DATABASE_URL", &url)])
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let database = stdout
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| w.starts_with("tailhook_demo_"))
        .unwrap_or_else(|| panic!("the demo names its database:\n{stdout}"))
        .to_owned();
    assert!(!stdout.contains("dropped database"), "{stdout}");
    let url = server.url_for(&database);
    assert!(stdout.contains(&format!("DATABASE_URL='{url}' tailhook run")), "{stdout}");
    assert!(stdout.contains(&format!("DROP DATABASE {database}")), "{stdout}");

    // The printed command's database holds the tour: a later `run` starts on it.
    let kept = connect(&url).await;
    let done: i64 = kept
        .query_one("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(done, 6, "the tour's deliveries are kept");
    drop(kept);
    let out = tailhook(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(text(&out.stdout).starts_with("schema is up to date"), "{}", text(&out.stdout));
    let admin = connect(&server.admin_url).await;
    admin.batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)")).await.unwrap();
}

/// `demo --keep --throwaway` starts a cluster of its own even though a
/// server answers, keeps it running after the demo exits, and prints how to
/// reach, stop and remove it; the printed stop command stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_keep_throwaway_keeps_its_own_cluster_running_and_says_how_to_stop_it() {
    let server = server();
    let out = tokio::task::spawn_blocking({
        let url = server.admin_url.clone();
        move || tailhook(&["demo", "--keep", "--throwaway"], &[("DATABASE_URL", &url)])
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("started a throwaway cluster in "), "{stdout}");
    let line = |prefix: &str| {
        stdout
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("a line starting `{prefix}` in:\n{stdout}"))
            .to_owned()
    };
    let run = line("DATABASE_URL='");
    let url = run.split('\'').next().unwrap().to_owned();
    assert_ne!(url, server.url_for(url.rsplit('/').next().unwrap()), "another server than the one found");
    let kept = connect(&url).await;
    let done: i64 = kept
        .query_one("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(done, 6, "the cluster outlived the demo, with the tour's record");
    drop(kept);

    // The printed commands stop the cluster and remove it.
    let stop = line("stop it:");
    let remove = line("remove it:");
    assert!(std::process::Command::new("sh").args(["-c", &stop]).status().unwrap().success(), "{stop}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Stopped means the postmaster is gone (it removes its pid file last,
    // after the shutdown checkpoint), not only that it refuses connections:
    // removing the folder before then races with its last writes.
    let dir = remove.trim_start_matches("rm -rf ").trim_matches('\'');
    let pid_file = stop.split("head -1 ").nth(1).unwrap_or_default().trim_end_matches(')').trim_matches('\'');
    assert!(pid_file.ends_with("postmaster.pid"), "{stop}");
    let pid_file = std::path::Path::new(pid_file);
    while tokio_postgres::connect(&url, tokio_postgres::NoTls).await.is_ok() || pid_file.exists() {
        assert!(std::time::Instant::now() < deadline, "the cluster still runs 30 s after `{stop}`");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(std::process::Command::new("sh").args(["-c", &remove]).status().unwrap().success(), "{remove}");
    assert!(dir.contains("tailhook-pg-") && !std::path::Path::new(dir).exists(), "{dir} removed");
}

/// Two processes preparing statements through one PgBouncer server
/// connection in transaction mode: the second one's `s0` collides with the
/// first's (named statements outlive the client behind the pooler). The
/// error names the setting that fixes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_statement_clash_behind_a_transaction_pooler_names_the_setting() {
    let bouncer = PgBouncer::start(PoolMode::Transaction, 1).await;
    let db = TestDb::new().await;
    db.migrate().await;
    let url = bouncer.url_for(db.name());
    let first = tailhook(&["status"], &[("DATABASE_URL", &url)]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let second = tailhook(&["status"], &[("DATABASE_URL", &url)]);
    let stderr = text(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(SQLSTATE 42P05)"), "the clash happened: {stderr}");
    assert!(
        stderr.contains("database.prepared_statements = false")
            && stderr.contains("TAILHOOK_DATABASE__PREPARED_STATEMENTS=false"),
        "{stderr}"
    );

    // With the setting, the same command works through the same pooler.
    let fixed = tailhook(&["status"], &[("DATABASE_URL", &url), ("TAILHOOK_DATABASE__PREPARED_STATEMENTS", "false")]);
    assert_eq!(fixed.status.code(), Some(0), "{}", text(&fixed.stderr));
}
