//! Replicas show they are alive: a killed one's leases are taken over within seconds, a slow one's never.

use crate::support::*;
use std::time::Duration;
use tokio::time::Instant;

/// Leases last 30 s here (timeout 20 s + margin 10 s): anything taken over
/// sooner was taken because its replica was seen dead, not because it expired.
fn long_leases<'a>(db: &'a TestDb, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("TAILHOOK_DATABASE__URL", db.url.as_str()),
        ("TAILHOOK_DELIVERY__ALLOW_PRIVATE_NETWORKS", "true"),
        ("TAILHOOK_DELIVERY__TIMEOUT_MS", "20000"),
        ("TAILHOOK_DELIVERY__LEASE_MARGIN_MS", "10000"),
        ("TAILHOOK_DELIVERY__CONCURRENCY", "16"),
        ("TAILHOOK_LOG__LEVEL", "warn"),
    ];
    env.extend_from_slice(extra);
    env
}

/// The replica name of the process with this pid.
async fn replica_of(db: &TestDb, pid: u32) -> String {
    let pattern = format!("%-{pid}-%");
    db.client()
        .await
        .query_one("SELECT name FROM tailhook.replicas WHERE name LIKE $1", &[&pattern])
        .await
        .expect("the replica's heartbeat row")
        .get(0)
}

async fn leased_by(db: &TestDb, replica: &str) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM tailhook.deliveries WHERE locked_by = $1 AND status IN ('pending', 'retrying')",
            &[&replica],
        )
        .await
        .unwrap()
        .get(0)
}

/// Kills `victim` while it has requests in flight; returns how long until
/// none of its leases is left, and how many leases it held.
async fn kill_and_time_takeover(db: &TestDb, receiver: &Receiver, victim: Binary) -> (Duration, i64) {
    wait_for("requests in flight", Duration::from_secs(20), || async { receiver.count() >= 40 }).await;
    let name = replica_of(db, victim.pid()).await;
    victim.kill();
    let killed = Instant::now();
    let held = leased_by(db, &name).await;
    wait_for("the killed replica's leases taken over", Duration::from_secs(25), || async {
        leased_by(db, &name).await == 0
    })
    .await;
    (killed.elapsed(), held)
}

async fn setup(events: i64) -> (TestDb, Receiver) {
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, _| Reply::ok().after(Duration::from_millis(300))).await;
    let client = db.migrate().await;
    add_endpoint(&client, "ep", &receiver.url("/hook"), &[]).await;
    client
        .execute(
            "INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', jsonb_build_object('n', g) FROM generate_series(1, $1::bigint) g",
            &[&events],
        )
        .await
        .unwrap();
    (db, receiver)
}

fn assert_delivered_once_but_for_the_kill(receiver: &Receiver, events: usize, in_flight: i64) {
    let per_id = receiver.per_id();
    assert_eq!(per_id.len(), events, "every event delivered");
    let duplicates: usize = per_id.values().map(|n| n - 1).sum();
    assert!(duplicates as i64 <= in_flight, "{duplicates} duplicates, {in_flight} were in flight at the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_replica_takes_over_a_killed_ones_leases_within_seconds() {
    const EVENTS: i64 = 300;
    let (db, receiver) = setup(EVENTS).await;
    let survivor = Binary::run("", &long_leases(&db, &[]));
    let victim = Binary::run("", &long_leases(&db, &[]));
    wait_for("both replicas running", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.replicas").await == 2
    })
    .await;
    let (took, held) = kill_and_time_takeover(&db, &receiver, victim).await;
    assert!(held > 0, "the killed replica held leases");
    assert!(took < Duration::from_secs(5), "taken over after {took:?}, with 30 s leases");
    wait_settled(&db, EVENTS, Duration::from_secs(30)).await;
    let (code, log) = survivor.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_delivered_once_but_for_the_kill(&receiver, EVENTS as usize, held);
    eprintln!("takeover by a live replica: {took:?} for {held} leases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_process_takes_over_its_predecessors_leases_within_seconds() {
    const EVENTS: i64 = 200;
    let (db, receiver) = setup(EVENTS).await;
    let first = Binary::run("", &long_leases(&db, &[]));
    wait_for("running", Duration::from_secs(10), || async {
        db.count("SELECT count(*) FROM tailhook.replicas").await == 1
    })
    .await;
    let name = replica_of(&db, first.pid()).await;
    wait_for("requests in flight", Duration::from_secs(20), || async { receiver.count() >= 40 }).await;
    first.kill();
    let killed = Instant::now();
    let held = leased_by(&db, &name).await;
    let restarted = Binary::run("", &long_leases(&db, &[]));
    wait_for("the old leases taken over", Duration::from_secs(25), || async { leased_by(&db, &name).await == 0 }).await;
    let took = killed.elapsed();
    assert!(held > 0);
    assert!(took < Duration::from_secs(5), "taken over after {took:?}, with 30 s leases");
    wait_settled(&db, EVENTS, Duration::from_secs(30)).await;
    let (code, log) = restarted.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_delivered_once_but_for_the_kill(&receiver, EVENTS as usize, held);
    assert_eq!(
        db.count("SELECT count(*) FROM tailhook.replicas").await,
        1,
        "the graceful one left; the killed one's row stays until pruned"
    );
    eprintln!("takeover by a restarted process: {took:?} for {held} leases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_live_replica_keeps_its_leases() {
    let db = TestDb::new().await;
    // Each request takes twice as long as a silent replica is given.
    let receiver = Receiver::start(|_, _| Reply::ok().after(Duration::from_secs(4))).await;
    let client = db.migrate().await;
    add_endpoint(&client, "slow", &receiver.url("/slow"), &[]).await;
    let mut config = db.config();
    config.delivery.timeout_ms = 10_000;
    let (a, b) = (Sidecar::start(config.clone()), Sidecar::start(config));
    client
        .execute("INSERT INTO tailhook.outbox (event_type, payload) SELECT 't', '{}' FROM generate_series(1, 20)", &[])
        .await
        .unwrap();
    wait_settled(&db, 20, Duration::from_secs(30)).await;
    a.stop().await;
    b.stop().await;
    let per_id = receiver.per_id();
    assert_eq!(per_id.len(), 20);
    assert!(per_id.values().all(|n| *n == 1), "no slow request was taken over and sent twice: {per_id:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_a_replica_judges_others_only_once_its_own_heartbeat_is_steady() {
    use tailhook::db::{Db, Lease, Rooms};
    let db = TestDb::new().await;
    let client = db.migrate().await;
    client.execute("INSERT INTO tailhook.endpoints (name, url) VALUES ('ep', 'http://x')", &[]).await.unwrap();
    client.execute("SELECT tailhook.publish('t', '{}')", &[]).await.unwrap();
    let pool = Db::new(&db.config().database).unwrap();
    let lease = |replica, token| Lease {
        replica,
        token,
        default_timeout_ms: 60_000,
        margin_ms: 0,
        max_payload_bytes: 1 << 20,
        claim_bytes: 16 << 20,
    };
    let rooms = Rooms { default_room: 10, ..Rooms::default() };
    // r1 leases the delivery for a minute, then falls silent.
    pool.heartbeat("r1").await.unwrap();
    assert_eq!(pool.dispatch(10, 10, lease("r1", 1), &rooms, false, &[]).await.unwrap().len(), 1);
    client.execute("UPDATE tailhook.replicas SET heartbeat_at = now() - interval '3 s'", &[]).await.unwrap();
    // r2 has just come back from an outage (its heartbeats resumed now): it
    // cannot tell r1's silence from its own, so it takes nothing.
    pool.heartbeat("r2").await.unwrap();
    assert_eq!(pool.claim_due(10, 10, lease("r2", 1), &rooms).await.unwrap().len(), 0);
    // Two seconds of unbroken heartbeats later, r1 is judged dead.
    client
        .execute("UPDATE tailhook.replicas SET alive_since = now() - interval '2 s' WHERE name = 'r2'", &[])
        .await
        .unwrap();
    let taken = pool.claim_due(10, 10, lease("r2", 2), &rooms).await.unwrap();
    assert_eq!(taken.len(), 1, "r1's lease is taken over long before it expires");
    // A replica whose heartbeat is fresh keeps its leases.
    pool.heartbeat("r2").await.unwrap();
    client.execute("UPDATE tailhook.replicas SET alive_since = now() - interval '1 hour'", &[]).await.unwrap();
    pool.heartbeat("r3").await.unwrap();
    client
        .execute("UPDATE tailhook.replicas SET alive_since = now() - interval '1 hour' WHERE name = 'r3'", &[])
        .await
        .unwrap();
    assert_eq!(pool.claim_due(10, 10, lease("r3", 1), &rooms).await.unwrap().len(), 0);
}
