//! Invariant 4, measured: the process's resident memory stays bounded when values are large
//! and when table names are made at run time. One test in its own binary, so nothing else
//! in the process moves its RSS; the figures it prints are the README's.
//!
//! Linux only (it reads `/proc/self/status`); elsewhere it says it skipped.

use std::convert::Infallible;
use std::time::Instant;

use cache_runtime::{Cache, KeyScope, Settings, Ttl};

static SCOPE: KeyScope = KeyScope::new("memory::value");

/// `VmRSS` and `VmHWM` (peak) in MiB.
fn rss() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

const MIB: usize = 1 << 20;

/// Mechanism: the byte budget, and large values kept out of the concurrent map (freed
/// when removed, not in the map's reclamation batches). Without the out-of-line table
/// every evicted value waits for a batch of 32 removals per thread (the field report: 20 MB
/// values, `max_entries = 2`, 704 MB resident).
async fn large_values(report: &mut Vec<String>) {
    let (base, _) = rss().expect("rss");
    let cache = Cache::new(Settings {
        max_entries: 2,
        ..Settings::default()
    })
    .expect("valid settings");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..2_i64 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..30_i64 {
                let id = task * 1_000 + i;
                let key = cache.key(&SCOPE, &id).expect("key");
                let value: Vec<u8> = cache
                    .get_or_load(key, &["memory_blobs"], Ttl::Forever, || async move {
                        Ok::<_, Infallible>(vec![(id % 251) as u8; 8 * MIB])
                    })
                    .await
                    .expect("infallible");
                assert_eq!(value.len(), 8 * MIB);
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let (after, peak) = rss().expect("rss");
    assert!(cache.entry_count().unwrap_or(0) <= 2);
    assert!(cache.memory_bytes().unwrap_or(0) <= Settings::default().max_bytes);
    report.push(format!(
        "60 loads of 8 MiB values, max_entries = 2, 2 tasks: RSS {base:.0} -> {after:.0} MiB, \
         peak {peak:.0} MiB ({:?})",
        start.elapsed()
    ));
    // Two entries and each task's value in flight (the loader's and the store's copy):
    // about 6 x 8 MiB, plus allocator slack.
    assert!(
        peak - base < 120.0,
        "peak RSS grew by {:.0} MiB",
        peak - base
    );
    drop(cache);
}

/// Mechanism: `max_tables` forgets the least recently used tables. Without it, every name
/// ever read stays (the field report: 1M names, +366 MB; about +110 MiB here).
async fn many_table_names(report: &mut Vec<String>) {
    let (base, _) = rss().expect("rss");
    let cache = Cache::new(Settings::default()).expect("valid settings");
    let start = Instant::now();
    for i in 0..300_000_i64 {
        let table = format!("tenant_{i}_orders");
        let key = cache.key(&SCOPE, &i).expect("key");
        cache
            .get_or_load(key, &[table.as_str()], Ttl::Forever, || async move {
                Ok::<_, Infallible>(i)
            })
            .await
            .expect("infallible");
    }
    let (after, _) = rss().expect("rss");
    let tables = cache.table_count();
    assert!(tables <= Settings::default().max_tables, "{tables} tables");
    report.push(format!(
        "300,000 distinct table names: {tables} kept, {} forgotten, RSS {base:.0} -> \
         {after:.0} MiB ({:?})",
        cache.stats().tables_forgotten,
        start.elapsed()
    ));
    assert!(after - base < 40.0, "RSS grew by {:.0} MiB", after - base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_bounded() {
    if rss().is_none() {
        println!("skipped: /proc/self/status is not available here");
        return;
    }
    let mut report = Vec::new();
    large_values(&mut report).await;
    many_table_names(&mut report).await;
    for line in report {
        println!("{line}");
    }
}
