//! The binary's commands: exit codes and one-line errors for bad input and unreachable databases.

use crate::support::*;
use std::process::{Command, Output};

fn one_line_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "exactly one line: {stderr}");
    stderr
}

/// A URL where nothing listens.
fn dead_url() -> String {
    let port = free_port();
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
    let weak = dir.join("weak.toml");
    std::fs::write(&weak, "[[endpoints]]\nname = \"a\"\nurl = \"https://h\"\nsecret = \"whsec_YWJj\"\n").unwrap();
    let weak = weak.to_str().unwrap();
    let cases: &[Case] = &[
        (&["bogus"], &[], "unrecognized subcommand 'bogus'"),
        (&["redelivr"], &[], "unrecognized subcommand 'redelivr'; did you mean 'redeliver'?"),
        (&["redeliver", "--dry-rnu"], &[], "unexpected argument '--dry-rnu' found; did you mean '--dry-run'?"),
        (&["check-config", "--config", file], &[], "config key `delivery.max_atempts`: unknown key"),
        (
            &["check-config", "--config", weak],
            &[],
            "config key `endpoints[0].secrets`: secrets[1]: secret decodes to 3 bytes; Standard Webhooks secrets are 24 to 64 random bytes",
        ),
        (&["check-config"], &[("TAILHOOK_DELIVERY__TIMEOUT_MS", "600000")], "config key `delivery.timeout_ms`: 600000 is over the maximum of 60000"),
        (&["check-config"], &[("TAILHOOK_DELIVERY__TIMEOUT_MS", "soon")], "config key `delivery.timeout_ms`"),
        // A file named explicitly must exist: a typo never means defaults.
        (&["run", "--config", "/nonexistent/prod.toml"], &[], "config file /nonexistent/prod.toml: it does not exist"),
        (&["check-config"], &[("TAILHOOK_CONFIG", "/nonexistent/env.toml")], "config file /nonexistent/env.toml: it does not exist"),
        (&["check-config"], &[("TAILHOOK_LOG__LEVEL", "infoo")], "config key `log.level`: `infoo` is not a level"),
        (&["check-config"], &[("TAILHOOK_LOG__LEVEL", "info,tokio_postgres=loud")], "config key `log.level`"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_errors_say_what_postgresql_said_and_bad_input_exits_2() {
    let db = TestDb::new().await;
    db.migrate().await;
    let unmigrated = TestDb::new().await;
    let mut missing_db = url::Url::parse(&db.url).unwrap();
    missing_db.set_path("/tailhook_no_such_db");
    let mut missing_role = url::Url::parse(&db.url).unwrap();
    missing_role.set_username("tailhook_no_such_role").unwrap();
    let cases: &[(&[&str], &str, i32, &str)] = &[
        (&["migrate"], missing_db.as_str(), 1, "database \"tailhook_no_such_db\" does not exist (SQLSTATE 3D000)"),
        (&["migrate"], missing_role.as_str(), 1, "role \"tailhook_no_such_role\" does not exist (SQLSTATE 28000)"),
        (
            &["redeliver", "--since", "yesterdayish"],
            &db.url,
            2,
            "invalid --since or --until: invalid input syntax for type timestamp with time zone: \"yesterdayish\" (SQLSTATE 22007)",
        ),
        (&["redeliver", "--endpoint", "nope"], &db.url, 2, "no endpoint named `nope`"),
        (
            &["status"],
            unmigrated.url.as_str(),
            1,
            "relation \"tailhook.endpoints\" does not exist (SQLSTATE 42P01); create the schema with `tailhook migrate`",
        ),
    ];
    for (args, url, code, expected) in cases {
        let out = tailhook(args, &[("DATABASE_URL", url)]);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let line = one_line_error(&out);
        assert!(line.contains(expected), "{args:?}: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_waiting_for_the_database_at_start_up_stops_at_once() {
    use std::time::Duration;
    let sidecar =
        Binary::run("", &[("TAILHOOK_DATABASE__URL", &dead_url()), ("TAILHOOK_DATABASE__STARTUP_TIMEOUT_MS", "60000")]);
    wait_for("waiting for the database", Duration::from_secs(10), || {
        let waiting = sidecar.stderr().contains("database unreachable; retrying");
        async move { waiting }
    })
    .await;
    let asked = tokio::time::Instant::now();
    let (code, log) = sidecar.stop();
    assert!(asked.elapsed() < Duration::from_secs(3), "stopped after {:?}", asked.elapsed());
    assert_eq!(code, Some(0), "{log}");
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

#[test]
fn check_config_redacts_credentials_in_urls_headers_and_connection_strings() {
    let dir = std::env::temp_dir().join(format!("tailhook-redact-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("creds.toml");
    std::fs::write(
        &file,
        r#"
[[endpoints]]
name = "a"
url = "https://user:url-password@hooks.example.com/x?token=query-token"
headers = { authorization = "Bearer sk_live_header", "x-api-key" = "api-key-value", "x-team" = "payments" }

# A token in the path (Slack, Discord), a username-only credential, and
# credentials in headers whose names say nothing of it.
[[endpoints]]
name = "slack"
url = "https://hooks.slack.com/services/T000/B000/slack-path-token"

[[endpoints]]
name = "user-only"
url = "https://user-only-token@hooks.example.net:8443/in"
headers = { "X-Webhook-Hmac" = "hmac-header-value", "X-Api-Sig" = "sig-header-value" }
"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    for database_url in [
        "postgres://app:pass/with/slashes@db.internal/app",
        "host=db user=app password = 'quoted secret' dbname=app",
        "host=db user=app password= spaced-secret dbname=app",
    ] {
        let out = tailhook(&["check-config", "--config", file], &[("DATABASE_URL", database_url)]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        for secret in [
            "url-password",
            "query-token",
            "sk_live_header",
            "api-key-value",
            "slashes",
            "quoted secret",
            "spaced-secret",
            "payments",
            "slack-path-token",
            "/services/",
            "user-only-token",
            "hmac-header-value",
            "sig-header-value",
        ] {
            assert!(!text.contains(secret), "`{secret}` printed:\n{text}");
        }
        // Endpoint URLs as scheme, host and port; header names without values.
        for shown in [
            "url = \"https://hooks.example.com\"",
            "url = \"https://hooks.slack.com\"",
            "url = \"https://hooks.example.net:8443\"",
            "x-team",
            "X-Webhook-Hmac",
            "X-Api-Sig",
        ] {
            assert!(text.contains(shown), "`{shown}` missing:\n{text}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
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
    // (The periods `migrate` prepares ahead, `<table>_p<start>`, are
    // partitions::migrate_prepares_the_periods_ahead_...'s.)
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
              WHERE table_schema = 'tailhook' AND table_name !~ '_p[0-9]{8}_[0-9]{6}$' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // (event_ids' DEFAULT partition holds a chunk per year 2020-2039 and
    // two outer ones: sql/0031_partitions.sql.)
    let mut expected: Vec<String> = [
        "api_tokens",
        "attempts",
        "attempts_default",
        "attempts_legacy",
        "attempts_undated",
        "capture_config",
        "captures",
        "deliveries",
        "deliveries_default",
        "deliveries_legacy",
        "deliveries_undated",
        "delivery_log",
        "endpoint_config",
        "endpoint_stats",
        "endpoints",
        "event_ids",
        "event_ids_default",
        "event_ids_dropped",
        "event_ids_y_early",
        "event_ids_y_late",
        "outbox",
        "outbox_default",
        "outbox_legacy",
        "partition_legacy",
        "portal_key",
        "replicas",
        "role_grants",
        "schema_migrations",
        "secret_retirements",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    expected.extend((2020..2040).map(|y| format!("event_ids_y{y}")));
    expected.sort();
    assert_eq!(tables, expected);
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
async fn redeliver_selects_by_endpoint_type_and_time_any_state_by_id_and_names_unknown_ids() {
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
    let last = last.to_string();
    // Unknown ids are named, and nothing changes.
    let (code, _, err) = run(&["--id", &last, "--id", "999999", "--id", "999998"]);
    assert_eq!(
        (code, err.as_str()),
        (Some(2), "tailhook: no deliveries have ids 999999, 999998; nothing was redelivered")
    );
    assert_eq!(db.count(due).await, 2999);
    // A delivery named by id is redelivered whatever its state: the default
    // `--status failed` applies only when no id is given.
    assert_eq!(run(&["--id", &last]), (Some(0), "redelivered 1 delivery".to_owned(), String::new()));
    assert_eq!(db.count(due).await, 3000);
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.deliveries WHERE attempts = 3").await,
        3000,
        "attempt counts kept"
    );
    assert_eq!(db.count("SELECT count(*) FROM tailhook.attempts").await, 3000, "history kept");

    // Bad input exits 2.
    let (code, _, err) = run(&["--endpoint", "nope"]);
    assert_eq!((code, err.as_str()), (Some(2), "tailhook: no endpoint named `nope`"));
    let (code, _, err) = run(&["--since", "yesterday-ish"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("tailhook: invalid --since or --until") && err.lines().count() == 1, "{err}");
}

/// `tailhook check-config | head -0`: output to a pipe nobody reads any more
/// is dropped, never a panic (exit 101); the command still does its work.
#[test]
fn output_to_a_closed_pipe_is_dropped_not_a_panic() {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = tailhook_command().arg("check-config").stdout(writer).output().expect("run tailhook");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn a_connection_string_that_does_not_parse_echoes_no_part_of_its_password() {
    // libpq reads `password=hunter 2secret` as a password `hunter` and a word
    // `2secret`: whatever the error says, it must not quote the password.
    for database_url in [
        "host=db user=app password=hunter 2secret dbname=app",
        "host=db user=app password=hunter 2secret",
        "host=db password=hunter 2secret=x dbname=app",
        "host=db password='hunter 2secret",
        "password=hunter\\ 2secret oops",
    ] {
        for args in [&["check-config"][..], &["migrate"][..]] {
            let out = tailhook(args, &[("DATABASE_URL", database_url)]);
            assert_eq!(out.status.code(), Some(2), "{database_url}");
            let line = one_line_error(&out);
            assert!(line.contains("database.url"), "{database_url}: {line}");
            for fragment in ["hunter", "2secret", "secret", "oops"] {
                assert!(!line.contains(fragment), "{database_url}: `{fragment}` in {line}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_name_with_a_newline_cannot_forge_a_log_line() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    // No secret, so start-up warns naming it.
    let forged = "ERROR tailhook: forged line, \u{1b}[31mred\r";
    let name = format!("evil\n{forged}\u{7}\t|");
    add_endpoint(&client, &name, "http://127.0.0.1:9/e", &[]).await;
    let sidecar = Binary::run("", &[("TAILHOOK_DATABASE__URL", db.url.as_str()), ("TAILHOOK_LOG__FORMAT", "text")]);
    wait_for("the warning about the endpoint", std::time::Duration::from_secs(15), || {
        let seen = sidecar.stderr().contains("has no secret");
        async move { seen }
    })
    .await;
    let (_, log) = sidecar.stop();
    assert!(!log.lines().any(|l| l.starts_with("ERROR tailhook: forged")), "{log}");
    let warning = log.lines().find(|l| l.contains("has no secret")).unwrap();
    assert!(warning.contains("evil\\nERROR tailhook: forged line"), "escaped on the warning's own line: {warning}");
    assert!(!log.contains('\u{1b}') && !log.contains('\r') && !log.contains('\u{7}'), "{log:?}");
}
