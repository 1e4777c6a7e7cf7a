//! A real PgBouncer (Debian's package) on a free loopback port in front of the test server, in session or transaction mode.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    Session,
    Transaction,
}

/// A running PgBouncer, killed (by its pid) and its directory removed on drop.
pub struct PgBouncer {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("pgbouncer")).find(|b| b.is_file()))
        .unwrap_or_default();
    on_path.or_else(|| Some(PathBuf::from("/usr/sbin/pgbouncer")).filter(|b| b.is_file())).unwrap_or_else(|| {
        panic!("pgbouncer is not installed: the PgBouncer tests need it (Debian: apt-get install pgbouncer; .ci/run installs it)")
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl PgBouncer {
    /// Starts PgBouncer in `mode` in front of the test server, with at most
    /// `server_conns` server connections per database, and waits until it answers.
    pub async fn start(mode: PoolMode, server_conns: u32) -> Self {
        let bin = binary();
        let target: tokio_postgres::Config = super::server().admin_url.parse().expect("test server url");
        let host = match target.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let server_port = target.get_ports().first().copied().unwrap_or(5432);
        let user = target.get_user().unwrap_or("postgres").to_owned();
        let password = target.get_password().map(|p| String::from_utf8_lossy(p).into_owned());

        let dir = std::env::temp_dir().join(format!(
            "tailhook-pgbouncer-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("pgbouncer dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let forced = password.as_ref().map(|p| format!(" user={user} password={p}")).unwrap_or_default();
        let ini = format!(
            "[databases]\n\
             * = host={host} port={server_port}{forced}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/users.txt\n\
             pool_mode = {mode}\n\
             default_pool_size = {server_conns}\n\
             max_client_conn = 200\n\
             logfile = {dir}/pgbouncer.log\n",
            dir = dir.display(),
            mode = if mode == PoolMode::Session { "session" } else { "transaction" },
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(dir.join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();

        // PgBouncer refuses to run as root.
        let mut cmd = if is_root() {
            let ok = Command::new("chown").args(["-R", "postgres:"]).arg(&dir).status().is_ok_and(|s| s.success());
            assert!(ok, "cannot hand {} to the postgres user", dir.display());
            let mut c = Command::new("setpriv");
            c.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let child = cmd
            .arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let bouncer = Self { port, child, dir };
        bouncer.wait_ready().await;
        bouncer
    }

    async fn wait_ready(&self) {
        let url = self.url_for("postgres");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let attempt = async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                client.simple_query("SELECT 1").await.map(|_| ())
            };
            match tokio::time::timeout(Duration::from_secs(3), attempt).await {
                Ok(Ok(())) => return,
                _ if tokio::time::Instant::now() > deadline => {
                    panic!("pgbouncer did not start; its log: {}", self.log())
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// A URL reaching `database` through this PgBouncer.
    pub fn url_for(&self, database: &str) -> String {
        let target: tokio_postgres::Config = super::server().admin_url.parse().expect("test server url");
        let user = target.get_user().unwrap_or("postgres");
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
