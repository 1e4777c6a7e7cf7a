//! Half-open connections: a silent partition between the sidecar and PostgreSQL, and the recovery after it.

use crate::support::proxy::{server_addr, Proxy};
use crate::support::*;
use std::time::{Duration, Instant};

/// The test server's address (it must be reachable over TCP).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_silent_partition_the_sidecar_delivers_again_within_30_s_and_never_exits() {
    let db = TestDb::new().await;
    let receiver = Receiver::ok().await;
    let client = db.migrate().await;
    add_endpoint(&client, "main", &receiver.url("/hook"), &[]).await;
    let proxy = Proxy::start(server_addr()).await;

    let mut config = db.config();
    config.database.url = tailhook::secret::DatabaseUrl::new(format!(
        "postgres://postgres@127.0.0.1:{}/{}?sslmode=disable",
        proxy.addr.port(),
        db.name()
    ));
    config.database.statement_timeout_ms = 2_000;
    let sidecar = Sidecar::start(config);
    let listeners =
        "SELECT array_agg(pid) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'";
    let publish = "SELECT tailhook.publish('net.test', '{}') FROM generate_series(1, 10)";

    client.batch_execute(publish).await.unwrap();
    wait_for("10 events delivered before the partition", Duration::from_secs(10), || async { receiver.count() == 10 })
        .await;
    let old_listener: Option<Vec<i32>> = client.query_one(listeners, &[]).await.unwrap().get(0);

    proxy.blackhole();
    client.batch_execute(publish).await.unwrap();
    // The partition lasts well past the statement deadline, so every
    // connection the sidecar holds or opens meanwhile is dead.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(sidecar.is_running(), "the sidecar does not exit during a partition");
    assert_eq!(receiver.count(), 10, "nothing can be dispatched without the database");

    proxy.restore();
    let restored = Instant::now();
    wait_for("the 10 events published during the partition delivered", Duration::from_secs(30), || async {
        receiver.count() >= 20
    })
    .await;
    let recovered = restored.elapsed();
    client.batch_execute(publish).await.unwrap();
    wait_for("10 more events delivered after the partition", Duration::from_secs(10), || async {
        receiver.count() >= 30
    })
    .await;
    wait_for("a new LISTEN connection", Duration::from_secs(30), || async {
        let now: Option<Vec<i32>> = client.query_one(listeners, &[]).await.unwrap().get(0);
        // The old listener's backend lingers on the server: its path is dead, not closed.
        now.is_some_and(|pids| pids.iter().any(|p| old_listener.as_ref().is_some_and(|old| !old.contains(p))))
    })
    .await;
    let listener_back = restored.elapsed();
    wait_settled(&db, 30, Duration::from_secs(10)).await;
    assert!(sidecar.is_running(), "the sidecar never exited");
    sidecar.stop().await;
    assert_eq!(receiver.per_id().len(), 30, "every event delivered");
    eprintln!("delivering again {recovered:?} after the path came back; new listener after {listener_back:?}");
}
