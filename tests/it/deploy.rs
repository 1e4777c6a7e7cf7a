//! The deployment files: the sample receiver verifies what tailhook sends, and the compose and Kubernetes configurations are valid.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `deploy/receiver/receiver.py`, run by python3, killed when dropped.
struct PythonReceiver {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl PythonReceiver {
    fn start(port: u16) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/receiver/receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .env("WEBHOOK_SECRET", SECRET)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the sample receiver (install python3)");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (sink, stdout) = (lines.clone(), child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_receiver_verifies_what_tailhook_sends_and_refuses_the_rest() {
    let port = free_port();
    let receiver = PythonReceiver::start(port);
    wait_for("the receiver listening", Duration::from_secs(10), || {
        let up = receiver.lines().iter().any(|l| l.starts_with("listening"));
        async move { up }
    })
    .await;
    let db = TestDb::new().await;
    let client = db.migrate().await;
    let url = format!("http://127.0.0.1:{port}/webhooks");
    add_endpoint(&client, "sample", &url, &[SECRET]).await;
    let sidecar = Sidecar::start(db.config());
    for kind in ["invoice.paid", "invoice.voided", "customer.created"] {
        client.execute("SELECT tailhook.publish($1, '{\"n\": 1}')", &[&kind]).await.unwrap();
    }
    wait_settled(&db, 3, Duration::from_secs(15)).await;
    sidecar.stop().await;
    assert_eq!(db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded'").await, 3);
    assert_eq!(db.count("SELECT count(*) FROM tailhook.attempts WHERE status_code = 204").await, 3);
    let verified = receiver.lines().iter().filter(|l| l.starts_with("verified ")).count();
    assert_eq!(verified, 3, "{:?}", receiver.lines());

    // A forged request is refused.
    let forged = reqwest::Client::new()
        .post(&url)
        .header("webhook-id", "msg_forged")
        .header(
            "webhook-timestamp",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string(),
        )
        .header("webhook-signature", "v1,bm90IGEgc2lnbmF0dXJl")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    wait_for("the refusal printed", Duration::from_secs(5), || {
        let refused = receiver.lines().iter().any(|l| l == "refused: no signature matches");
        async move { refused }
    })
    .await;
}

#[test]
fn the_compose_and_kubernetes_configurations_pass_check_config() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = tailhook_command()
        .args(["check-config", "--config", &format!("{root}/deploy/compose.toml")])
        .env_remove("TAILHOOK_SERVER__LISTEN")
        .env("RECEIVER_WEBHOOK_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("listen = \"0.0.0.0:10025\""));

    // The ConfigMap's config.toml: the block under `config.toml: |`.
    let manifest = std::fs::read_to_string(format!("{root}/deploy/kubernetes.yaml")).unwrap();
    let block: String = manifest
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("config.toml: |"))
        .skip(1)
        .map_while(|l| l.strip_prefix("    "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(block.contains("[[endpoints]]"), "{block}");
    let dir = std::env::temp_dir().join(format!("tailhook-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    std::fs::write(&file, block).unwrap();
    let out = tailhook_command()
        .args(["check-config", "--config", file.to_str().unwrap()])
        .env("BILLING_WEBHOOK_SECRET", SECRET)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
