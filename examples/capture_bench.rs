//! Benchmark of what change capture and operational events cost the writes they ride on.
//!
//! ```text
//! cargo run --release --example capture_bench -- capture [ROWS] [INSERTS] [ROUNDS]   # default 100000 2000 5
//! cargo run --release --example capture_bench -- ops [ROWS] [ROUNDS]                 # default 100000 3
//! ```
//! `capture` times a bulk `UPDATE` of ROWS rows and INSERTS single-row
//! INSERTs (each its own transaction) on an `orders` table, without and with
//! `tailhook.capture`, alternating (which goes first alternates too), ROUNDS
//! times, and prints each time and the ratio (uncaptured time / captured
//! time: 1.0 means capture costs nothing), and for the bulk `UPDATE` also
//! the ratio of the server process's CPU time (read from /proc, so the
//! server must be local): wall time on a shared machine includes waiting
//! for a core, CPU time does not. Only the writer's statements are timed; the expansion of what they staged into outbox rows (what the
//! sidecar does afterwards, `tailhook.expand_captures`) is timed apart.
//! `ops` times what operational events add to the delivery path: a batched
//! `UPDATE` of ROWS deliveries to `succeeded` with and without the
//! `deliveries_failed_event` trigger (the success path never calls its
//! function), and the fan-out's endpoint match (sql/queries/dispatch.sql)
//! with and without the two `tailhook.` conditions, over ROWS events × 4 endpoints.
//! Uses the PostgreSQL the test suite would use, in a fresh database dropped at the end.

use std::time::{Duration, Instant};
use tailhook::local_pg;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("capture");
    let num = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let pg = local_pg::find_or_start()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let name = format!("tailhook_capture_bench_{}", std::process::id());
        let admin = connect(&pg.admin_url).await;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        let mut client = connect(&pg.url_for(&name)).await;
        tailhook::db::migrate(&mut client).await?;
        let result = match mode {
            "ops" => ops(&client, num(1, 100_000), num(2, 3)).await,
            _ => capture(&client, num(1, 100_000), num(2, 2_000), num(3, 5)).await,
        };
        drop(client);
        admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await?;
        result
    })
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

async fn timed(client: &tokio_postgres::Client, sql: &str) -> Result<Duration, tokio_postgres::Error> {
    let start = Instant::now();
    client.batch_execute(sql).await?;
    Ok(start.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

type Result2 = Result<(), Box<dyn std::error::Error>>;

async fn capture(client: &tokio_postgres::Client, rows: u64, inserts: u64, rounds: u64) -> Result2 {
    // A typical table: a primary key, an indexed foreign key, a few columns.
    client
        .batch_execute(&format!(
            "CREATE TABLE orders (id bigint PRIMARY KEY, account_id bigint NOT NULL, status text NOT NULL,
                                  amount numeric(12,2) NOT NULL, note text, updated_at timestamptz NOT NULL DEFAULT now());
             CREATE INDEX orders_account ON orders (account_id);
             INSERT INTO orders SELECT g, g % 1000, 'new', g * 1.5, 'note ' || g FROM generate_series(1, {rows}) g;"
        ))
        .await?;
    client.batch_execute("VACUUM ANALYZE orders").await?;
    let insert =
        client.prepare("INSERT INTO orders (id, account_id, status, amount) VALUES ($1, $2, 'new', 10)").await?;
    let mut next_id = rows as i64 + 1;
    let bulk_update = format!("UPDATE orders SET amount = amount + 1, updated_at = now() WHERE id <= {rows}");
    let backend: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    let tick = String::from_utf8(std::process::Command::new("getconf").arg("CLK_TCK").output()?.stdout)?
        .trim()
        .parse::<f64>()?;
    let cpu = || backend_cpu_ticks(backend).map(|t| t as f64 / tick).ok_or("cannot read the server process's CPU time");
    println!("capture: UPDATE of {rows} rows, {inserts} single-row INSERTs (one transaction each), {rounds} rounds");
    let (mut bulk_ratios, mut single_ratios, mut expansions) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpu_ratios = Vec::new();
    for round in 1..=rounds {
        // Alternate which goes first, so a drift in the machine's load favours neither.
        let order = if round % 2 == 1 { [false, true] } else { [true, false] };
        let mut times = [(Duration::ZERO, Duration::ZERO); 2];
        let mut cpu_secs = [0.0; 2];
        let mut expand_bulk = Duration::ZERO;
        for captured in order {
            if captured {
                client
                    .batch_execute("SELECT tailhook.capture('orders', 'order', tenant_column => 'account_id')")
                    .await?;
            } else {
                client.batch_execute("SELECT tailhook.uncapture('orders')").await?;
            }
            // Both statements start right after a checkpoint, so neither pays
            // alone for the full-page images the first change of a page after
            // a checkpoint writes (the largest swing between rounds otherwise).
            client.batch_execute("CHECKPOINT").await?;
            // The writer's statement only: capture stages it, tailhook expands it later.
            // Exactly ROWS rows, however many single-row INSERTs earlier rounds added.
            let cpu_before = cpu()?;
            let bulk = timed(client, &bulk_update).await?;
            cpu_secs[usize::from(captured)] = cpu()? - cpu_before;
            if captured {
                expand_bulk = expand(client).await?;
            }
            let start = Instant::now();
            for _ in 0..inserts {
                client.execute(&insert, &[&next_id, &(next_id % 1000)]).await?;
                next_id += 1;
            }
            let single = start.elapsed();
            if captured {
                expand(client).await?;
            }
            // Keep the outbox and the dead rows (of the table and of the staging
            // table, whose rows the expansion deletes) from growing between
            // runs, as autovacuum would.
            client.batch_execute("TRUNCATE tailhook.outbox").await?;
            client.batch_execute("VACUUM").await?;
            times[usize::from(captured)] = (bulk, single);
        }
        let ((bulk_off, single_off), (bulk_on, single_on)) = (times[0], times[1]);
        let (bulk_ratio, single_ratio) =
            (bulk_off.as_secs_f64() / bulk_on.as_secs_f64(), single_off.as_secs_f64() / single_on.as_secs_f64());
        let cpu_ratio = cpu_secs[0] / cpu_secs[1];
        println!(
            "round {round}: bulk UPDATE {} uncaptured, {} captured: {bulk_ratio:.2} (server CPU {:.0} ms, {:.0} ms: {cpu_ratio:.2}); single INSERTs {:.0} µs, {:.0} µs each: {single_ratio:.2}",
            ms(bulk_off),
            ms(bulk_on),
            cpu_secs[0] * 1000.0,
            cpu_secs[1] * 1000.0,
            single_off.as_secs_f64() * 1e6 / inserts as f64,
            single_on.as_secs_f64() * 1e6 / inserts as f64,
        );
        println!("round {round}: expansion of the bulk UPDATE's {rows} rows into outbox rows: {}", ms(expand_bulk));
        bulk_ratios.push(bulk_ratio);
        cpu_ratios.push(cpu_ratio);
        single_ratios.push(single_ratio);
        expansions.push(expand_bulk.as_secs_f64() * 1000.0 * 100_000.0 / rows as f64);
    }
    println!(
        "median ratio (uncaptured time / captured time): bulk {:.2} (range {}; server CPU {:.2}, range {}), single {:.2} (range {}); expansion {:.0} ms per 100,000 rows (range {})",
        median(bulk_ratios.clone()),
        range(&bulk_ratios, 2),
        median(cpu_ratios.clone()),
        range(&cpu_ratios, 2),
        median(single_ratios.clone()),
        range(&single_ratios, 2),
        median(expansions.clone()),
        range(&expansions, 0),
    );
    Ok(())
}

/// Expands everything staged, as the sidecar does before a fan-out.
async fn expand(client: &tokio_postgres::Client) -> Result<Duration, tokio_postgres::Error> {
    let start = Instant::now();
    while client.query_one("SELECT tailhook.expand_captures(100000)", &[]).await?.get::<_, i64>(0) > 0 {}
    Ok(start.elapsed())
}

/// utime + stime of a local process, in clock ticks (/proc/PID/stat).
fn backend_cpu_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn range(v: &[f64], decimals: usize) -> String {
    let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    format!("{lo:.decimals$}–{hi:.decimals$}")
}

async fn ops(client: &tokio_postgres::Client, rows: u64, rounds: u64) -> Result2 {
    client
        .batch_execute(&format!(
            "INSERT INTO tailhook.endpoints (name, url, event_types)
                 SELECT 'e' || g, 'https://e' || g || '.example.com/', CASE WHEN g = 1 THEN '{{*}}' ELSE '{{a.*,tailhook.*}}' END::text[]
                   FROM generate_series(1, 4) g;
             INSERT INTO tailhook.outbox (event_type, payload, dispatched_at)
                 SELECT 'a.b', jsonb_build_object('n', g), now() FROM generate_series(1, {rows}) g;
             INSERT INTO tailhook.deliveries (outbox_id, endpoint_id, status, attempts)
                 SELECT o.id, (SELECT min(id) FROM tailhook.endpoints), 'pending', 0 FROM tailhook.outbox o;"
        ))
        .await?;
    client.batch_execute("VACUUM ANALYZE tailhook.outbox, tailhook.deliveries").await?;
    // The fan-out's match, as dispatch.sql had it before and has it now.
    let before = "SELECT count(*) FROM tailhook.outbox c JOIN tailhook.endpoints e ON e.enabled
                    AND (e.tenant IS NULL OR e.tenant = c.tenant)
                    AND ('*' = ANY (e.event_types) OR c.event_type = ANY (e.event_types)
                         OR tailhook.event_type_matches(e.event_types, c.event_type))";
    let after = "SELECT count(*) FROM tailhook.outbox c JOIN tailhook.endpoints e ON e.enabled
                    AND (e.tenant IS NULL OR e.tenant = c.tenant)
                    AND (('*' = ANY (e.event_types) AND NOT starts_with(c.event_type, 'tailhook.'))
                         OR c.event_type = ANY (e.event_types)
                         OR tailhook.event_type_matches(e.event_types, c.event_type))
                    AND (NOT starts_with(c.event_type, 'tailhook.')
                         OR (c.payload #>> '{endpoint,id}') IS DISTINCT FROM e.id::text)";
    let succeed = "BEGIN; UPDATE tailhook.deliveries SET status = 'succeeded', attempts = 1, completed_at = now(), updated_at = now();
                   ROLLBACK";
    println!(
        "ops: {rows} deliveries set to succeeded in one UPDATE; match of {rows} events × 4 endpoints; {rounds} rounds"
    );
    let (mut trigger_ratios, mut match_ratios) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        // Alternate which goes first; vacuum away the rolled-back versions before each.
        let (mut without, mut with) = (Duration::ZERO, Duration::ZERO);
        for enabled in if round % 2 == 1 { [false, true] } else { [true, false] } {
            let state = if enabled { "ENABLE" } else { "DISABLE" };
            client
                .batch_execute(&format!("ALTER TABLE tailhook.deliveries {state} TRIGGER deliveries_failed_event"))
                .await?;
            client.batch_execute("VACUUM tailhook.deliveries").await?;
            *(if enabled { &mut with } else { &mut without }) = timed(client, succeed).await?;
        }
        let (old, new) = if round % 2 == 1 {
            (timed(client, before).await?, timed(client, after).await?)
        } else {
            let new = timed(client, after).await?;
            (timed(client, before).await?, new)
        };
        println!(
            "round {round}: success UPDATE {} without the trigger, {} with: {:.2}; match {} before, {} after: {:.2}",
            ms(without),
            ms(with),
            without.as_secs_f64() / with.as_secs_f64(),
            ms(old),
            ms(new),
            old.as_secs_f64() / new.as_secs_f64(),
        );
        trigger_ratios.push(without.as_secs_f64() / with.as_secs_f64());
        match_ratios.push(old.as_secs_f64() / new.as_secs_f64());
    }
    println!(
        "median ratio (time without / time with): success path {:.2}, fan-out match {:.2}",
        median(trigger_ratios),
        median(match_ratios)
    );
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
