//! Headless Chromium for the console's browser tests: our own chromedriver on a free loopback port (killed by PID when dropped), a WebDriver session through fantoccini, and screenshots.

use super::{free_port, wait_for};
use fantoccini::{Client, ClientBuilder};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A chromedriver process of this test's own.
pub struct Driver {
    child: Child,
    pub port: u16,
}

impl Driver {
    /// Starts chromedriver and waits until it answers; fails the test, saying
    /// what to install, when Chromium or its driver is missing.
    pub async fn start() -> Self {
        for binary in ["chromedriver", "chromium"] {
            let found = Command::new("sh").args(["-c", &format!("command -v {binary}")]).output();
            assert!(
                found.is_ok_and(|o| o.status.success()),
                "{binary} is not installed: the console's browser tests need Debian's `chromium` and \
                 `chromium-driver` (apt-get install chromium chromium-driver)"
            );
        }
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Self { child, port };
        let status = format!("http://127.0.0.1:{port}/status");
        wait_for("chromedriver answers", Duration::from_secs(15), || {
            let status = status.clone();
            async move { reqwest::get(&status).await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        driver
    }

    /// A new headless Chromium session: no sandbox (tests may run as root),
    /// nothing of its own fetched from the network, a fixed window size.
    pub async fn session(&self) -> Client {
        let options = serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1360,900", "--hide-scrollbars", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--force-device-scale-factor=1",
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // By PID: this process's chromedriver only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `<target dir>/screenshots/<name>`, written from a PNG the browser took.
pub fn save_screenshot(name: &str, png: &[u8]) -> PathBuf {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target directory").join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    path
}
