//! Fleet-wide single flight (`Settings::shared_single_flight`): 8 processes × 1,000
//! callers read one key that expires between rounds, over a private `redis-server`. Each
//! process's callers share one load (in-process single flight); the lease in Redis makes
//! the 8 processes share one too. Every load counts itself in Redis (`INCR`), so the test
//! sees the loads of all processes: at most one per expiry, where without the lease there
//! is one per process.
//!
//! `cargo test --test leases -- --nocapture` prints the counts.

mod checker;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_redis::{RedisBackend, RedisOptions};
use cache_runtime::{Cache, KeyScope, Settings, Ttl};
use checker::{Server, redis_server_available};

const PROCESSES: usize = 8;
const CALLERS: usize = 1000;
const ROUNDS: u64 = 6;
/// The key's TTL, and the time between rounds: every round finds it expired.
const TTL: Duration = Duration::from_millis(400);
const ROUND_EVERY: Duration = Duration::from_millis(700);
/// The query's duration: the other processes arrive while it runs.
const QUERY: Duration = Duration::from_millis(60);

static STORM: KeyScope = KeyScope::new("leases::storm");

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One process of the storm: does nothing unless `STORM_URL` is set.
#[test]
fn storm_child() {
    let Ok(url) = std::env::var("STORM_URL") else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let (namespace, start_ms) = (var("STORM_NS"), var("STORM_START_MS"));
    let start_ms: u64 = start_ms.parse().expect("milliseconds");
    let leases = var("STORM_LEASES") == "1";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let (hits, coalesced, lease_waits) = rt.block_on(async {
        // 8,000 callers' lookups reach Redis at once from 8 debug builds on 2 cores: a
        // timeout long enough that the storm is not also an outage.
        let options = RedisOptions::default().timeout(Duration::from_secs(2));
        let backend = RedisBackend::connect(&url, options)
            .await
            .expect("Redis answers");
        let settings = Settings {
            namespace: namespace.clone(),
            shared_single_flight: leases,
            ..Settings::default()
        };
        let cache = Cache::with_shared_backend(settings, backend).expect("valid settings");
        let client = redis::Client::open(url.as_str()).expect("a valid URL");
        let counter = client
            .get_multiplexed_async_connection()
            .await
            .expect("a connection");
        let key = cache.key(&STORM, &1_i64).expect("a key");
        for round in 0..ROUNDS {
            let at = start_ms + round * u64::try_from(ROUND_EVERY.as_millis()).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
            let callers: Vec<_> = (0..CALLERS)
                .map(|_| {
                    let (cache, mut counter, namespace) =
                        (cache.clone(), counter.clone(), namespace.clone());
                    tokio::spawn(async move {
                        cache
                            .get_or_load(key, &["storm"], Ttl::For(TTL), || async move {
                                // The query: counted where every process sees it.
                                let _: i64 = redis::cmd("INCR")
                                    .arg(format!("{namespace}-loads"))
                                    .query_async(&mut counter)
                                    .await
                                    .expect("INCR");
                                tokio::time::sleep(QUERY).await;
                                Ok::<_, std::io::Error>(round)
                            })
                            .await
                            .expect("the loader never fails")
                    })
                })
                .collect();
            for caller in callers {
                caller.await.expect("a caller");
            }
        }
        let stats = cache.stats();
        (stats.hits, stats.coalesced, stats.lease_waits)
    });
    println!("STORM hits={hits} coalesced={coalesced} lease_waits={lease_waits}");
}

/// Runs the storm in `PROCESSES` processes; returns the loads they made together.
async fn storm(server: &Server, leases: bool) -> (u64, u64) {
    let namespace = format!("storm-{}", cache_suite::unique_suffix());
    let start = now_ms() + 1500;
    let exe = std::env::current_exe().expect("the test binary");
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args(["storm_child", "--exact", "--nocapture", "--test-threads=1"])
                .env("STORM_URL", server.url())
                .env("STORM_NS", &namespace)
                .env("STORM_START_MS", start.to_string())
                .env("STORM_LEASES", if leases { "1" } else { "0" })
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn a storm process")
        })
        .collect();
    let mut lease_waits = 0;
    for child in children {
        let out = child.wait_with_output().expect("the process ends");
        assert!(out.status.success(), "a storm process failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find_map(|l| l.find("STORM ").map(|at| &l[at..]))
            .expect("a storm process reported");
        lease_waits += line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("lease_waits="))
            .and_then(|n| n.parse::<u64>().ok())
            .expect("lease_waits");
    }
    let mut conn = server.conn().await;
    let loads: Option<u64> = redis::cmd("GET")
        .arg(format!("{namespace}-loads"))
        .query_async(&mut conn)
        .await
        .expect("GET");
    (loads.unwrap_or(0), lease_waits)
}

/// Mechanism: the lease. With it, one load per expiry for the whole fleet; without it
/// (the same run, `shared_single_flight = false`), one per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_storm_costs_one_load_across_processes() {
    let _alone = cache_suite::one_at_a_time().await;
    if cache_suite::database_url("REDIS_URL").is_none() || !redis_server_available() {
        return;
    }
    let server = Server::start(&[]);
    let (with, waits) = storm(&server, true).await;
    let (without, _) = storm(&server, false).await;
    println!(
        "{PROCESSES} processes x {CALLERS} callers, {ROUNDS} expiries: {with} loads with \
         leases ({waits} process-level waits served by another's fill), {without} without"
    );
    assert!(
        (1..=ROUNDS).contains(&with),
        "{with} loads for {ROUNDS} expiries with leases"
    );
    assert!(waits > 0, "processes waited for another's fill");
    assert!(
        without > ROUNDS,
        "without leases each process loads: {without} loads"
    );
}
