//! The binary's commands: exit codes and one-line errors for bad input and unreachable databases.

use crate::support::*;
use std::process::{Command, Output};

fn tailhook(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tailhook_command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run tailhook")
}

fn one_line_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "exactly one line: {stderr}");
    stderr
}

/// A URL where nothing listens.
fn dead_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// (arguments, environment, what the one error line must contain)
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_input_exits_non_zero_with_one_line_naming_it() {
    let dir = std::env::temp_dir().join(format!("tailhook-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[delivery]\nmax_atempts = 3\n").unwrap();
    let file = file.to_str().unwrap();
    let cases: &[Case] = &[
        (&["bogus"], &[], "unrecognized subcommand 'bogus'"),
        (&["check-config", "--config", file], &[], "config key `delivery.max_atempts`: unknown key"),
        (&["check-config"], &[("TAILHOOK_DELIVERY__TIMEOUT_MS", "soon")], "config key `delivery.timeout_ms`"),
        (&["check-config"], &[("TAILHOOK_LOG__FORMAT", "xml")], "config key `log.format`"),
    ];
    for (args, env, expected) in cases {
        let out = tailhook(args, env);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let line = one_line_error(&out);
        assert!(line.contains(expected), "{args:?}: {line}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreachable_database_is_a_one_line_failure() {
    let url = dead_url();
    let out = tailhook(&["migrate"], &[("DATABASE_URL", &url)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("database unreachable"));

    let out = tailhook(
        &["run"],
        &[
            ("TAILHOOK_DATABASE__URL", &url),
            ("TAILHOOK_DATABASE__STARTUP_TIMEOUT_MS", "600"),
            ("TAILHOOK_LOG__LEVEL", "off"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("database unreachable after 600 ms"));
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let out = tailhook(
        &["check-config"],
        &[("DATABASE_URL", "postgres://app:hunter2@db.internal/app"), ("TAILHOOK_DELIVERY__TIMEOUT_MS", "1234")],
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("url = \"postgres://app:[redacted]@db.internal/app\""), "{text}");
    assert!(text.contains("timeout_ms = 1234"), "env overrides the default: {text}");
    assert!(!text.contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_schema_then_reports_up_to_date() {
    let db = TestDb::new().await;
    let first = tailhook(&["migrate"], &[("DATABASE_URL", &db.url)]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let versions: Vec<i32> = tailhook::db::MIGRATIONS.iter().map(|m| m.0).collect();
    let expected = format!("applied migrations {versions:?}");
    assert!(
        String::from_utf8_lossy(&first.stdout).starts_with(&expected),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let again = tailhook(&["migrate"], &[("TAILHOOK_DATABASE__URL", &db.url)]);
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("schema is up to date"));
    let client = db.client().await;
    let tables: Vec<String> = client
        .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'tailhook' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["attempts", "deliveries", "endpoint_stats", "endpoints", "outbox", "schema_migrations"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_gracefully_and_a_second_signal_exits_at_once() {
    use std::time::Duration;
    let db = TestDb::new().await;
    let receiver = Receiver::start(|path, _| match path {
        "/slow" => Reply::ok().after(Duration::from_secs(30)),
        _ => Reply::ok().after(Duration::from_millis(300)),
    })
    .await;
    let client = db.migrate().await;
    let endpoint = add_endpoint(&client, "ep", &receiver.url("/quick"), &[]).await;
    let start = |grace_ms: &str| {
        tailhook_command()
            .env("TAILHOOK_DATABASE__URL", &db.url)
            .env("TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS", "true")
            .env("TAILHOOK_DELIVERY__TIMEOUT_MS", "60000")
            .env("TAILHOOK_DELIVERY__SHUTDOWN_GRACE_MS", grace_ms)
            .env("TAILHOOK_LOG__LEVEL", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start tailhook")
    };
    // Set once the child logs that it handled a signal (its stderr is read to the end).
    let signal_handled = |child: &mut std::process::Child| {
        use std::io::BufRead;
        let handled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, stderr) = (handled.clone(), child.stderr.take().expect("piped stderr"));
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("signal received") {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        handled
    };
    let signal = |pid: u32| {
        assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    };
    let exited = |child: &mut std::process::Child| child.try_wait().unwrap().map(|s| s.code());

    // One SIGTERM: the request in flight (300 ms) finishes and is recorded; exit 0.
    let mut child = start("10000");
    signal_handled(&mut child);
    client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    wait_for("a request in flight", Duration::from_secs(10), || async { receiver.count() == 1 }).await;
    signal(child.id());
    wait_for("a graceful exit", Duration::from_secs(10), || {
        let done = exited(&mut child).is_some();
        async move { done }
    })
    .await;
    assert_eq!(exited(&mut child), Some(Some(0)));
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'").await, 1);

    // A request that would outlast a long grace period: the second SIGTERM exits at once.
    client
        .execute("UPDATE tailhook.endpoints SET url = $1 WHERE id = $2", &[&receiver.url("/slow"), &endpoint])
        .await
        .unwrap();
    let mut child = start("60000");
    let handled = signal_handled(&mut child);
    client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    wait_for("a slow request in flight", Duration::from_secs(10), || async { receiver.count() == 2 }).await;
    signal(child.id());
    wait_for("the first signal handled", Duration::from_secs(5), || {
        let done = handled.load(std::sync::atomic::Ordering::SeqCst);
        async move { done }
    })
    .await;
    assert_eq!(exited(&mut child), None, "still draining after the first signal");
    let second = tokio::time::Instant::now();
    signal(child.id());
    wait_for("exit after the second signal", Duration::from_secs(3), || {
        let done = exited(&mut child).is_some();
        async move { done }
    })
    .await;
    assert!(second.elapsed() < Duration::from_secs(3));
    assert_eq!(exited(&mut child), Some(Some(130)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliver_selects_by_id_endpoint_type_status_and_time_and_keeps_history() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client
        .batch_execute(
            "INSERT INTO tailhook.endpoints (name, url) VALUES ('a', 'http://a'), ('b', 'http://b');
             INSERT INTO tailhook.outbox (event_type, payload, dispatched_at)
               SELECT CASE WHEN g % 2 = 0 THEN 'x.even' ELSE 'x.odd' END, '{}', now() FROM generate_series(1, 1500) g;
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts, next_attempt_at, completed_at, last_error)
               SELECT o.id, e.id, 'failed', 3, NULL, now(), 'HTTP 500' FROM tailhook.outbox o, tailhook.endpoints e;
             INSERT INTO tailhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code, error_kind)
               SELECT id, 3, now(), 5, 500, 'http_status' FROM tailhook.deliveries;
             UPDATE tailhook.deliveries SET status = 'succeeded', last_error = NULL WHERE id = (SELECT max(id) FROM tailhook.deliveries);",
        )
        .await
        .unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["redeliver"];
        all.extend_from_slice(args);
        let out = tailhook(&all, &[("DATABASE_URL", &db.url)]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )
    };
    let due = "SELECT count(*) FROM tailhook.deliveries WHERE status = 'retrying' AND next_attempt_at <= now() AND completed_at IS NULL";

    assert_eq!(run(&["--dry-run", "--endpoint", "a"]).1, "would redeliver 1500 failed deliveries");
    assert_eq!(db.count(due).await, 0, "a dry run changes nothing");
    assert_eq!(run(&["--endpoint", "a", "--event-type", "x.even"]).1, "redelivered 750 failed deliveries");
    assert_eq!(db.count(due).await, 750);
    assert_eq!(run(&["--since", "2999-01-01T00:00:00Z"]).1, "redelivered 0 failed deliveries");
    assert_eq!(
        run(&["--until", "2999-01-01T00:00:00Z"]).1,
        "redelivered 2249 failed deliveries",
        "all the rest, in batches"
    );
    let last: i64 = client.query_one("SELECT max(id) FROM tailhook.deliveries", &[]).await.unwrap().get(0);
    assert_eq!(run(&["--id", &last.to_string(), "--status", "succeeded"]).1, "redelivered 1 succeeded deliveries");
    assert_eq!(db.count(due).await, 3000);
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE attempts = 3").await,
        3000,
        "attempt counts kept"
    );
    assert_eq!(db.count("SELECT count(*) FROM tailhook.attempts").await, 3000, "history kept");

    let (code, _, err) = run(&["--endpoint", "nope"]);
    assert_eq!((code, err.as_str()), (Some(1), "tailhook: no endpoint named `nope`"));
    let (code, _, err) = run(&["--since", "yesterday-ish"]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("tailhook: invalid --since or --until") && err.lines().count() == 1, "{err}");
}
