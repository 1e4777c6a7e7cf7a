//! Through a real PgBouncer: session mode with LISTEN, transaction mode polling only; 1,000 events, retries, two replicas.

use crate::support::pgbouncer::{PgBouncer, PoolMode};
use crate::support::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const EVENTS: usize = 1_000;

/// Records, in the test database only, every lease a replica takes.
const RECORD_LEASES: &str = "
    CREATE TABLE public.test_leases (locked_by text NOT NULL);
    CREATE FUNCTION public.test_record_lease() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO public.test_leases VALUES (NEW.locked_by); RETURN NULL; END $$;
    CREATE TRIGGER test_record_lease AFTER INSERT OR UPDATE OF locked_by ON tailhook.deliveries
       FOR EACH ROW WHEN (NEW.locked_by IS NOT NULL) EXECUTE FUNCTION public.test_record_lease();";

/// Two replicas behind one PgBouncer deliver `EVENTS` events whose first
/// attempt fails: every event arrives exactly twice (a 500, then a 200), both
/// replicas took leases, and both stop cleanly.
async fn deliver_through(mode: PoolMode) -> Duration {
    // Transaction mode: few server connections, so the replicas' transactions
    // keep landing on each other's server connections.
    let bouncer = PgBouncer::start(mode, if mode == PoolMode::Session { 12 } else { 3 }).await;
    let db = TestDb::new().await;
    let receiver = Receiver::start(|_, seen| if seen == 0 { Reply::status(500) } else { Reply::ok() }).await;
    let client = db.migrate().await;
    client.batch_execute(RECORD_LEASES).await.unwrap();
    add_endpoint(&client, "main", &receiver.url("/hook"), &[SECRET]).await;

    let mut config = db.config();
    config.database.url = tailhook::secret::DatabaseUrl::new(bouncer.url_for(db.name()));
    config.database.pool_size = 4;
    config.delivery.batch_size = 50;
    config.delivery.backoff_initial_ms = 50;
    config.delivery.backoff_max_ms = 200;
    match mode {
        // Only NOTIFY (through PgBouncer) can wake the fan-out.
        PoolMode::Session => config.database.poll_interval_ms = 600_000,
        PoolMode::Transaction => {
            config.database.listen = false;
            config.database.prepared_statements = false;
            config.database.poll_interval_ms = 100;
        }
    }
    let replicas = [Sidecar::start(config.clone()), Sidecar::start(config)];
    if mode == PoolMode::Session {
        wait_for("both replicas LISTEN through PgBouncer", Duration::from_secs(15), || async {
            let sql =
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'";
            client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) == 2
        })
        .await;
    }

    let start = Instant::now();
    let publish =
        format!("SELECT tailhook.publish('n.' || i, jsonb_build_object('i', i)) FROM generate_series(1, {EVENTS}) i");
    client.batch_execute(&publish).await.unwrap();
    wait_settled(&db, EVENTS as i64, Duration::from_secs(120)).await;
    let took = start.elapsed();
    for replica in replicas {
        replica.stop().await;
    }

    let per_id = receiver.per_id();
    assert_eq!(per_id.len(), EVENTS, "every event reached the receiver");
    let counts: HashMap<usize, usize> = per_id.values().fold(HashMap::new(), |mut m, n| {
        *m.entry(*n).or_default() += 1;
        m
    });
    assert_eq!(counts, HashMap::from([(2, EVENTS)]), "each event twice (500 then 200), never more: {counts:?}");
    for r in receiver.received().iter().take(20) {
        verify(SECRET, &r.headers, &r.body).unwrap_or_else(|e| panic!("{e}"));
    }
    let done = db.count("SELECT count(*) FROM tailhook.deliveries WHERE status = 'succeeded' AND attempts = 2").await;
    assert_eq!(done, EVENTS as i64, "every delivery succeeded at its second attempt");
    assert_eq!(db.count("SELECT count(*) FROM tailhook.attempts").await, 2 * EVENTS as i64);
    let rows = client.query("SELECT locked_by, count(*) FROM public.test_leases GROUP BY 1", &[]).await.unwrap();
    assert_eq!(rows.len(), 2, "both replicas took leases: {rows:?}");
    drop(bouncer);
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_with_listen_delivers_retries_and_shares_between_two_replicas() {
    let took = deliver_through(PoolMode::Session).await;
    eprintln!("session mode: {EVENTS} events, 2 attempts each, in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_mode_polling_delivers_retries_and_shares_between_two_replicas() {
    let took = deliver_through(PoolMode::Transaction).await;
    eprintln!("transaction mode: {EVENTS} events, 2 attempts each, in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_work_through_transaction_mode() {
    let bouncer = PgBouncer::start(PoolMode::Transaction, 2).await;
    let db = TestDb::new().await;
    let url = bouncer.url_for(db.name());
    let migrate = tailhook_command().env("DATABASE_URL", &url).arg("migrate").output().unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    let redeliver = tailhook_command()
        .env("DATABASE_URL", &url)
        .env("TAILHOOK_DATABASE__PREPARED_STATEMENTS", "false")
        .args(["redeliver", "--dry-run"])
        .output()
        .unwrap();
    assert!(redeliver.status.success(), "{}", String::from_utf8_lossy(&redeliver.stderr));
    assert_eq!(String::from_utf8_lossy(&redeliver.stdout).trim(), "would redeliver 0 failed deliveries");
}
