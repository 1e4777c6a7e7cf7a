//! sql/schema/current.sql is the whole current schema as the migrations leave it (`pg_dump` of a fresh database, normalised); `TAILHOOK_BLESS=1` writes it again.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const FILE: &str = "sql/schema/current.sql";
const REGENERATE: &str = "TAILHOOK_BLESS=1 cargo test --test it schema_file::";

/// `pg_dump` of the server's major version if it is installed beside it, else the one on the PATH.
fn pg_dump(server_version_num: i32) -> PathBuf {
    let beside = PathBuf::from(format!("/usr/lib/postgresql/{}/bin/pg_dump", server_version_num / 10_000));
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("pg_dump")
    }
}

/// The dump without what depends on the machine or the run: version
/// comments, session settings, `\restrict` keys, owners; blank runs as one.
fn normalise(dump: &str) -> String {
    let mut out = String::from(
        "-- The whole current schema of tailhook, as the migrations in sql/ leave a fresh\n\
         -- database (pg_dump --schema-only --schema=tailhook --no-owner, normalised).\n\
         -- Generated: do not edit. Regenerate after adding a migration with\n",
    );
    out.push_str(&format!("--   {REGENERATE}\n\n"));
    let mut blank = true;
    for line in dump.lines() {
        let skip = line.starts_with("-- Dumped ")
            || line.starts_with("\\restrict")
            || line.starts_with("\\unrestrict")
            || line.starts_with("SET ")
            || line.starts_with("SELECT pg_catalog.set_config(")
            || line == "-- PostgreSQL database dump"
            || line == "-- PostgreSQL database dump complete";
        if skip {
            continue;
        }
        let line = line.trim_end();
        if line.is_empty() || line == "--" {
            if !blank {
                out.push('\n');
            }
            blank = true;
            continue;
        }
        blank = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_file_is_what_the_migrations_produce() {
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let version: i32 = client.query_one("SELECT current_setting('server_version_num')::int", &[]).await.unwrap().get(0);
    let owner: String = client.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
    let out = Command::new(pg_dump(version))
        .args(["--schema-only", "--schema=tailhook", "--no-owner", "--dbname", &db.url])
        .output()
        .expect("run pg_dump (Debian: apt-get install postgresql-client)");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    let dump = normalise(&String::from_utf8(out.stdout).unwrap());
    assert!(!dump.contains(&format!(" {owner};")), "the dump names the role that ran it ({owner})");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FILE);
    if std::env::var_os("TAILHOOK_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &dump).unwrap();
        return;
    }
    let file = std::fs::read_to_string(&path).unwrap_or_default();
    if file != dump {
        let (n, (want, got)) = file
            .lines()
            .chain(std::iter::repeat("<end of file>"))
            .zip(dump.lines().chain(std::iter::repeat("<end of dump>")))
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap_or((0, ("", "")));
        panic!(
            "{FILE} differs from what the migrations produce; regenerate it with `{REGENERATE}`.\n\
             First difference, line {}:\n  file: {want}\n  dump: {got}",
            n + 1
        );
    }
}
