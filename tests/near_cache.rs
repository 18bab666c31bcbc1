//! The near cache (`Settings::near_cache`) over a private `redis-server`: in-process copies
//! served without a round trip, dropped by the invalidations Redis pushes from any
//! instance, and never served while the push channel is down or late. Another instance is
//! played by a second `RedisBackend` that bumps versions directly, as another process
//! would: nothing in this process's registry hears of it.
//!
//! The window another instance may serve an old value in is measured by the
//! multi-process checker (`near_window_two_processes`, `-- --nocapture` prints it).

mod checker;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use cache_redis::{RedisBackend, RedisOptions};
use cache_runtime::backend::SharedBackend;
use cache_runtime::{Cache, KeyScope, Settings, SettingsError, Ttl};
use checker::{Proxy, Server, redis_server_available};

static READ: KeyScope = KeyScope::new("near::read");
const TIMEOUT: Duration = Duration::from_millis(250);

async fn begin() -> Option<tokio::sync::MutexGuard<'static, ()>> {
    let alone = cache_suite::one_at_a_time().await;
    (cache_suite::database_url("REDIS_URL").is_some() && redis_server_available()).then_some(alone)
}

fn settings(namespace: &str) -> Settings {
    Settings {
        namespace: namespace.to_owned(),
        near_cache: true,
        ..Settings::default()
    }
}

async fn backend(url: &str) -> RedisBackend {
    RedisBackend::connect_lazy(url, RedisOptions::default().timeout(TIMEOUT))
        .await
        .expect("a valid URL")
}

/// The "database": a value the test changes, read through the cache.
async fn read(cache: &Cache, db: &Arc<AtomicI64>) -> i64 {
    let key = cache.key(&READ, &1_i64).expect("a key");
    let db = Arc::clone(db);
    cache
        .get_or_load(key, &["items"], Ttl::Forever, || async move {
            Ok::<_, std::io::Error>(db.load(Ordering::SeqCst))
        })
        .await
        .expect("the loader never fails")
}

/// Redis calls that read entries or versions, from `INFO commandstats`.
async fn reads_on(server: &Server) -> u64 {
    let mut conn = server.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    info.lines()
        .filter(|l| {
            [
                "cmdstat_evalsha:",
                "cmdstat_eval:",
                "cmdstat_get:",
                "cmdstat_mget:",
            ]
            .iter()
            .any(|c| l.starts_with(c))
        })
        .filter_map(|l| {
            l.split([':', ','])
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

/// Polls until `f` holds, for up to 3 s.
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("not within 3 s: {what}");
}

/// A near cache over `url` in a namespace of its own, its "database" at 1, once its push
/// channel is connected and the value copied in process.
async fn connected(url: &str) -> (String, Cache, Arc<AtomicI64>) {
    let ns = format!("near-{}", cache_suite::unique_suffix());
    let cache =
        Cache::with_shared_backend(settings(&ns), backend(url).await).expect("a near cache");
    let db = Arc::new(AtomicI64::new(1));
    // Served from memory only once the subscription is confirmed.
    eventually("the push channel connects", async || {
        read(&cache, &db).await;
        cache.entry_count() == Some(1)
    })
    .await;
    (ns, cache, db)
}

/// Mechanism: the in-process tier. Once a value is copied, hits make no Redis call; a
/// bump by another instance reaches the copy by push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_are_in_process_and_other_instances_writes_are_pushed() {
    let Some(_alone) = begin().await else { return };
    let server = Server::start(&[]);
    let (ns, cache, db) = connected(&server.url()).await;

    let before = reads_on(&server).await;
    for _ in 0..100 {
        assert_eq!(read(&cache, &db).await, 1);
    }
    assert_eq!(reads_on(&server).await, before, "100 hits, no Redis read");

    // Another instance writes: the database changes, then it bumps `items` in Redis.
    db.store(2, Ordering::SeqCst);
    let other = backend(&server.url()).await;
    other.bump(&ns, &["items"]).await.expect("bump");
    eventually("the push drops the copy", async || {
        read(&cache, &db).await == 2
    })
    .await;

    // This instance's own write drops its copy before `invalidate` returns.
    db.store(3, Ordering::SeqCst);
    cache.invalidate(&["items"]).await;
    assert_eq!(read(&cache, &db).await, 3);
}

/// Mechanism: failing closed. While the push channel is cut, no copy is served (the
/// reads fall through to Redis, cut too, and to the database); once it is back, every
/// copy from before is dropped, since what was pushed meanwhile was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_are_not_served_while_the_push_is_down_nor_after_it() {
    let Some(_alone) = begin().await else { return };
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.port).await;
    let (ns, cache, db) = connected(&proxy.url()).await;

    // Cut: the subscription's connection closes. Another instance's write meanwhile is
    // never pushed here.
    proxy.cut(true);
    db.store(2, Ordering::SeqCst);
    let other = backend(&server.url()).await;
    other.bump(&ns, &["items"]).await.expect("bump");
    eventually("the cut is noticed", async || read(&cache, &db).await == 2).await;
    for _ in 0..20 {
        assert_eq!(read(&cache, &db).await, 2, "no copy is served while cut");
    }

    // Back: the copy of 1 is still in memory, and no push told it is stale.
    // Back: the copy of 1 is still in memory, and no push said it is stale.
    proxy.up();
    eventually("reads are hits again", async || {
        let before = cache.stats().loads;
        for _ in 0..10 {
            read(&cache, &db).await;
        }
        cache.stats().loads == before
    })
    .await;
    assert_eq!(
        read(&cache, &db).await,
        2,
        "a copy from before the cut was served"
    );
    assert!(cache.stats().backend_errors > 0, "the cut was felt");
}

/// Mechanism: the lease. A push connection that stalls without closing (the server
/// stopped) is noticed by the heartbeat, and copies stop being served within the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_push_channel_stops_copies_within_the_lease() {
    let Some(_alone) = begin().await else { return };
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.port).await;
    let (ns, cache, db) = connected(&proxy.url()).await;
    // Every byte now takes 2 s each way: pushes and heartbeats are late, not lost.
    proxy.delay(Duration::from_secs(2));
    db.store(2, Ordering::SeqCst);
    let other = backend(&server.url()).await;
    other.bump(&ns, &["items"]).await.expect("bump");
    // The lease is 500 ms; the heartbeat's PING times out after 250 ms.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        read(&cache, &db).await,
        2,
        "a copy was served past its lease"
    );
}

/// A near cache needs a backend that pushes; asking one that does not is an error, not a
/// strict cache in disguise.
#[tokio::test]
async fn a_backend_without_push_is_refused() {
    let backend = cache_runtime::backend::SharedMemoryBackend::new(1000);
    match Cache::with_shared_backend(settings("near-refused"), backend) {
        Err(SettingsError::NearCacheUnavailable(why)) => {
            assert!(why.contains("push"), "{why}");
        }
        other => panic!("expected NearCacheUnavailable, got {other:?}"),
    }
}

/// p50, p99 and max of `windows` in milliseconds.
fn summary(windows: &[Duration]) -> (f64, f64, f64) {
    let mut sorted = windows.to_vec();
    sorted.sort();
    let at = |q: f64| {
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted[i].as_secs_f64() * 1e3
    };
    (at(0.5), at(0.99), at(1.0))
}

/// The measured promise of a near cache: after a write returns in one process, how long
/// another process may still serve the value from before it. One writer process writes
/// every millisecond; one reader process reads the value as fast as it can and notes when it
/// first saw each write. Over at least 1,000 writes every write is seen, and the slowest
/// within 1 s (by design, within the push delay; the lease bounds a stalled channel). The
/// same run in strict mode (every hit checked against Redis) has no stale read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_window_two_processes() {
    let Some(_alone) = begin().await else { return };
    let server = Server::start(&[]);
    let url = server.url();
    for near in [true, false] {
        let run = checker::Run::start(checker::RunConfig {
            url: &url,
            cluster: false,
            readers: 1,
            run_for: Duration::from_secs(8),
            idle_after: None,
            write_at: &[],
            timeout: TIMEOUT,
            near,
            window: true,
        })
        .await;
        let mode = if near { "near" } else { "strict" };
        let (report, windows) = run.finish_window(&format!("{mode} window"));
        let missed = windows.iter().filter(|w| w.is_none()).count();
        let windows: Vec<Duration> = windows.into_iter().flatten().collect();
        assert_eq!(missed, 0, "{mode}: writes the reader never saw");
        assert!(
            windows.len() >= 1000,
            "{mode}: only {} writes",
            windows.len()
        );
        let (p50, p99, max) = summary(&windows);
        println!(
            "{mode} cache: {} writes; another process first read each write's value \
             p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms after it returned; \
             {} stale reads in {} reads ({} hits)",
            windows.len(),
            report.stale,
            report.ops,
            report.reader_hits
        );
        assert_eq!(report.failed, 0);
        assert!(
            max < 1000.0,
            "{mode}: a write took {max} ms to reach the other process"
        );
        if !near {
            assert_eq!(report.stale, 0, "strict mode serves no stale read");
        }
        assert!(
            report.reader_hits > 1000,
            "{mode}: the reader was served by the cache"
        );
    }
}

/// Mechanism: the subscription task ends with its cache, and closes its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_near_cache_unsubscribes() {
    let Some(_alone) = begin().await else { return };
    let server = Server::start(&[]);
    let (ns, cache, _db) = connected(&server.url()).await;
    let channel = format!("{{{ns}}}:invalidations");
    let subscribers = async || {
        let mut conn = server.conn().await;
        let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut conn)
            .await
            .expect("PUBSUB NUMSUB");
        counts.first().map_or(0, |(_, n)| *n)
    };
    assert_eq!(subscribers().await, 1);
    drop(cache);
    eventually("the subscription ends", async || subscribers().await == 0).await;
}
