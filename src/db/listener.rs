//! The dedicated LISTEN connection: wakes the fan-out loop on outbox inserts, reconnects with capped backoff.

use crate::db::Connector;
use crate::log_throttle::Throttle;
use backon::{BackoffBuilder, ExponentialBuilder};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

/// The channel the outbox trigger notifies.
pub const CHANNEL: &str = "tailhook_outbox";

/// Payload of the notification a statement staged by change capture sends
/// (sql/0015_capture_staging.sql); outbox inserts send an empty one.
const STAGED: &str = "capture";

/// Wakes the fan-out loop: outbox rows may be waiting, and after a `staged`
/// wake-up, statements staged by change capture to expand first. Expanding
/// costs a round trip, so the fan-out asks for it only when told (or at its
/// poll), never on every outbox insert.
#[derive(Debug, Default)]
pub struct Wake {
    notify: Notify,
    staged: AtomicBool,
}

impl Wake {
    /// Outbox rows may be waiting.
    pub fn outbox(&self) {
        self.notify.notify_one();
    }

    /// Captured changes may be staged too.
    pub fn staged(&self) {
        self.staged.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Whether captured changes may be staged, clearing the mark.
    pub fn take_staged(&self) -> bool {
        self.staged.swap(false, Ordering::AcqRel)
    }
}

/// How often an idle listener checks that its connection still answers.
const HEALTH_CHECK: Duration = Duration::from_secs(10);

/// Keeps a LISTEN connection open until `shutdown`. After every (re)connect it
/// LISTENs first and then wakes the fan-out loop for a full scan, since
/// notifications sent while disconnected are lost.
/// `connected` is true while a connection is listening (read by `/readyz`;
/// its loss also restarts the reconnect backoff).
pub async fn run(pg: Connector, wake: Arc<Wake>, connected: Arc<AtomicBool>, shutdown: CancellationToken) {
    let throttle = Throttle::new(Duration::from_secs(1));
    let builder = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times();
    let mut backoff = builder.build();
    loop {
        let reason = tokio::select! {
            r = listen_once(&pg, &wake, &connected) => r,
            _ = shutdown.cancelled() => break,
        };
        let was_connected = connected.swap(false, Ordering::SeqCst);
        if was_connected {
            backoff = builder.build();
        }
        if let Some(skipped) = throttle.allow() {
            tracing::warn!(error = %reason, skipped, "LISTEN connection lost; reconnecting (polling continues)");
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(5));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}

/// One connection's life; returns why it ended.
async fn listen_once(pg: &Connector, wake: &Wake, connected: &AtomicBool) -> String {
    let (client, mut connection) = match pg.connect().await {
        Ok(pair) => pair,
        Err(e) => return format!("cannot connect: {e}"),
    };
    let (lost_tx, mut lost_rx) = tokio::sync::oneshot::channel::<String>();
    let wake_driver = Arc::new(Wake::default());
    let notified = wake_driver.clone();
    // The connection must be polled continuously for notifications to arrive.
    let driver = tokio::spawn(async move {
        let reason = loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.payload() == STAGED => notified.staged(),
                Some(Ok(AsyncMessage::Notification(_))) => notified.outbox(),
                Some(Ok(_)) => {}
                Some(Err(e)) => break format!("connection error: {e}"),
                None => break "connection closed".to_owned(),
            }
        };
        let _ = lost_tx.send(reason);
    });
    let result = async {
        if let Err(e) = client.batch_execute(super::SESSION_SEARCH_PATH).await {
            return format!("setting search_path failed: {e}");
        }
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            return format!("LISTEN failed: {e}");
        }
        connected.store(true, Ordering::SeqCst);
        tracing::info!(channel = CHANNEL, "listening for outbox inserts");
        wake.staged();
        loop {
            tokio::select! {
                _ = wake_driver.notified() => {
                    if wake_driver.take_staged() {
                        wake.staged();
                    } else {
                        wake.outbox();
                    }
                }
                reason = &mut lost_rx => return reason.unwrap_or_else(|_| "connection task ended".into()),
                _ = tokio::time::sleep(HEALTH_CHECK) => {
                    let check = tokio::time::timeout(Duration::from_secs(5), client.simple_query("SELECT 1")).await;
                    match check {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return format!("health check failed: {e}"),
                        Err(_) => return "health check timed out".to_owned(),
                    }
                }
            }
        }
    }
    .await;
    driver.abort();
    result
}
