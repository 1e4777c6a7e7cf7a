//! Debian's tinyproxy on a free loopback port, with its own config and log in a temporary folder; killed by its PID when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Tinyproxy {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Tinyproxy {
    /// Starts it (CONNECT allowed to any port) and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_on(super::free_port())
    }

    /// [`Tinyproxy::start`] on `port`.
    pub fn start_on(port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("tailhook-tinyproxy-{:08x}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        // No ConnectPort line: CONNECT to every port is allowed.
        let config = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{log}\"\nLogLevel Info\nPidFile \"{pid}\"\n\
             MaxClients 100\nAllow 127.0.0.1\n",
            log = dir.join("tinyproxy.log").display(),
            pid = dir.join("tinyproxy.pid").display(),
        );
        std::fs::write(dir.join("tinyproxy.conf"), config).unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(dir.join("tinyproxy.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tinyproxy (Debian package `tinyproxy`, installed by .ci/run)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tinyproxy did not listen on {port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child, dir }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tinyproxy.log")).unwrap_or_default()
    }

    /// The targets of the CONNECT requests it received, in order.
    pub fn connects(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| {
                l.split_once("): CONNECT ").map(|(_, rest)| rest.split(' ').next().unwrap_or("").to_owned())
            })
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
