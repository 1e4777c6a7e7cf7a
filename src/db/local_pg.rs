//! Finds a PostgreSQL for the test suite and the demo: `DATABASE_URL`, one on localhost:5432, or a throwaway cluster.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL server that accepts a superuser connection.
#[derive(Debug, Clone)]
pub struct LocalPg {
    /// Connection string of a superuser, to an existing database.
    pub admin_url: String,
    /// Where it came from, for messages.
    pub origin: String,
    /// The data directory, when this process started the server.
    pub data_dir: Option<PathBuf>,
}

/// Extra set-up of a throwaway cluster (the test suite's TLS-only server).
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Files written into the data directory after `initdb`, readable by the
    /// server's user only (e.g. `server.key`, or `pg_hba.conf` to replace it).
    /// Relative paths in `settings` are relative to the data directory.
    pub files: Vec<(String, Vec<u8>)>,
    /// Server settings, `name=value`, each passed as `-c`.
    pub settings: Vec<String>,
    /// Appended to the superuser URL, e.g. `?sslmode=require`.
    pub url_suffix: String,
    /// Leave the server running, and its directory in place, when this
    /// process exits (`demo --keep`): no watchdog stops it.
    pub keep_running: bool,
}

impl LocalPg {
    /// The same server, another database.
    pub fn url_for(&self, database: &str) -> String {
        with_database(&self.admin_url, database)
    }
}

/// `DATABASE_URL` if set; else a server answering on localhost:5432; else a
/// throwaway cluster started from local binaries, stopped and deleted when
/// this process exits. Blocking; call it once per process.
pub fn find_or_start() -> Result<LocalPg, String> {
    find_or_start_with(&Setup::default())
}

/// [`find_or_start`], a throwaway cluster started with `setup`.
pub fn find_or_start_with(setup: &Setup) -> Result<LocalPg, String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return check(&url)
            .map(|()| LocalPg { admin_url: url, origin: "DATABASE_URL".into(), data_dir: None })
            .map_err(|e| format!("DATABASE_URL does not answer: {e}"));
    }
    for user in ["postgres", "root"] {
        let url = format!("postgres://{user}@127.0.0.1:5432/postgres");
        if check(&url).is_ok() {
            return Ok(LocalPg { admin_url: url, origin: "localhost:5432".into(), data_dir: None });
        }
    }
    start_throwaway_with(setup)
}

/// Connects once and runs `SELECT 1`.
fn check(url: &str) -> Result<(), String> {
    let url = url.to_owned();
    // A thread of its own, so this works from inside an async runtime too.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async {
            let mut connector = crate::db::Connector::from_url(&url).map_err(|e| e.to_string())?;
            connector.pg.connect_timeout(Duration::from_secs(3));
            let (client, conn) = connector.connect().await.map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.map_err(|e| e.to_string())?;
            Ok(())
        })
    })
    .join()
    .map_err(|_| "connection check crashed".to_owned())?
}

/// The directory holding `initdb` and `postgres`: on PATH, else the newest
/// under `/usr/lib/postgresql/*/bin`.
fn find_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file());
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Initialises a cluster in a temporary directory from the local binaries and
/// starts it under a watchdog shell that stops it and deletes the directory
/// when this process is gone. As root, the server runs as the `postgres` user.
pub fn start_throwaway() -> Result<LocalPg, String> {
    start_throwaway_with(&Setup::default())
}

/// [`start_throwaway`] with extra files and settings.
pub fn start_throwaway_with(setup: &Setup) -> Result<LocalPg, String> {
    let bin = find_binaries().ok_or(
        "no PostgreSQL found: set DATABASE_URL, run one on localhost:5432 with trust auth, \
         or install the PostgreSQL server binaries (Debian: apt-get install postgresql)",
    )?;
    let bin = bin.as_path();
    let dir = std::env::temp_dir().join(format!("tailhook-pg-{}-{:08x}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let as_user: Vec<String> = if is_root() {
        let status = Command::new("chown").args(["postgres:", &dir.display().to_string()]).status();
        if !status.is_ok_and(|s| s.success()) {
            return Err("running as root, and cannot hand a directory to the `postgres` user".into());
        }
        ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"].map(String::from).to_vec()
    } else {
        Vec::new()
    };
    let data = dir.join("data");
    let mut initdb = Command::new(as_user.first().map_or(bin.join("initdb").into_os_string(), Into::into));
    initdb.args(as_user.iter().skip(1));
    if !as_user.is_empty() {
        initdb.arg(bin.join("initdb"));
    }
    let out = initdb
        .args(["-D", &data.display().to_string(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    for (name, contents) in &setup.files {
        let path = data.join(name);
        std::fs::write(&path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
        if !as_user.is_empty()
            && !Command::new("chown").args(["postgres:"]).arg(&path).status().is_ok_and(|s| s.success())
        {
            return Err(format!("cannot hand {} to the `postgres` user", path.display()));
        }
    }
    let settings: String = setup.settings.iter().map(|s| format!(" -c {s}")).collect();
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let server = format!(
        "{prefix} {bin}/postgres -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300{settings}",
        prefix = as_user.join(" "),
        bin = bin.display(),
        data = data.display(),
        dir = dir.display(),
    );
    let watchdog = if setup.keep_running {
        format!("{server} >{dir}/log 2>&1 &", dir = dir.display())
    } else {
        format!(
            "{server} >{dir}/log 2>&1 & pg=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 1; done; \
             kill -INT $pg 2>/dev/null; wait $pg; rm -rf {dir}",
            parent = std::process::id(),
            dir = dir.display(),
        )
    };
    use std::os::unix::process::CommandExt as _;
    Command::new("sh")
        .args(["-c", &watchdog])
        // A group of its own: a Ctrl-C meant for this process (or, kept, for
        // the shell it ran in) does not reach the server.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres{}", setup.url_suffix);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match check(&url) {
            Ok(()) => {
                let origin = format!("throwaway cluster in {}", dir.display());
                return Ok(LocalPg { admin_url: url, origin, data_dir: Some(data) });
            }
            Err(e) if Instant::now() > deadline => {
                let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
                return Err(format!("throwaway postgres did not start: {e}; log: {}", log.trim()));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Replaces the database of a `postgres://` URL or a `key=value` string.
pub fn with_database(url: &str, database: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let (base, query) = match url.find('?') {
            Some(q) => (&url[..q], &url[q..]),
            None => (url, ""),
        };
        let authority_start = scheme_end + 3;
        let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
        return format!("{}/{database}{query}", &base[..path_start]);
    }
    format!("{url} dbname={database}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_replacement() {
        let cases = [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/x"),
            ("postgres://u@h:5432", "postgres://u@h:5432/x"),
            ("postgres://u:p@h/db?sslmode=disable", "postgres://u:p@h/x?sslmode=disable"),
            ("host=h user=u", "host=h user=u dbname=x"),
        ];
        for (input, expected) in cases {
            assert_eq!(with_database(input, "x"), expected, "{input}");
        }
    }
}
