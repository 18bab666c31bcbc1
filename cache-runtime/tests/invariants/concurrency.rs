//! Invariants 1 and 4 under concurrency: the in-memory store's lock-free reads, CLOCK
//! evictions, sweeps and invalidations racing on two worker threads.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use cache_runtime::{Cache, Settings, Ttl};

use crate::support::key;

const READERS: u64 = 4;
const READS: u64 = 20_000;
const IDS: u64 = 600;
const MAX_ENTRIES: usize = 128;

/// Mechanisms: table versions checked on every read (a removed check serves entries
/// loaded before a completed write), and the shard-owned rings (a store that skipped them
/// would exceed `max_entries`). Readers race a writer and far more keys than fit, so
/// entries are evicted, swept, refilled and read while being replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_reads_writes_and_evictions_serve_only_current_values_within_bounds() {
    let cache = Cache::new(Settings {
        max_entries: MAX_ENTRIES,
        ..Settings::default()
    })
    .unwrap();
    // The "database": how many writes were made, and how many have completed (committed
    // and invalidated).
    let written = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let writer = {
        let (cache, written, completed, stop) = (
            cache.clone(),
            written.clone(),
            completed.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(SeqCst) {
                let now = written.fetch_add(1, SeqCst) + 1;
                cache.invalidate(&["t_racing_reads_writes_and_evictions_serve_only_current_values_within_bounds"]).await;
                completed.store(now, SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };

    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (cache, written, completed) = (cache.clone(), written.clone(), completed.clone());
            tokio::spawn(async move {
                let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ (r + 1);
                for n in 0..READS {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Mostly a hot tenth of the ids, so that entries are hit, not only
                    // evicted.
                    let id = if n % 4 == 0 { x % IDS } else { x % (IDS / 10) } as i64;
                    let before = completed.load(SeqCst);
                    let loaded = cache
                        .get_or_load(key(&cache, id), &["t_racing_reads_writes_and_evictions_serve_only_current_values_within_bounds"], Ttl::Forever, || async {
                            Ok::<_, Infallible>(Arc::new((id, written.load(SeqCst))))
                        })
                        .await
                        .unwrap();
                    assert_eq!(loaded.0, id, "a value of another key");
                    assert!(
                        loaded.1 >= before,
                        "stale: read {} after write {before} completed",
                        loaded.1
                    );
                    if n % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for reader in readers {
        reader.await.unwrap();
    }
    stop.store(true, SeqCst);
    writer.await.unwrap();

    let stats = cache.stats();
    let len = cache.entry_count().unwrap();
    assert!(len <= MAX_ENTRIES, "{len} entries > {MAX_ENTRIES}");
    assert_eq!(stats.hits + stats.misses, READERS * READS);
    assert!(stats.hits > 0 && stats.evictions > 0, "{stats:?}");
}
