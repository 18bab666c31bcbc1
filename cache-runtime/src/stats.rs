//! Counters of what the cache did, cheap enough to bump on every hit.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a cache's counters since it was created, from [`Cache::stats`](crate::Cache::stats).
///
/// `Serialize`, so a service can return it as JSON as it is:
///
/// ```
/// use cache_runtime::{Cache, Settings};
///
/// let cache = Cache::new(Settings::default()).unwrap();
/// let json = serde_json::to_value(cache.stats()).unwrap();
/// assert_eq!(json["hits"], 0);
/// assert_eq!(json["backend_errors"], 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that found no usable entry (including stale, expired and undecodable ones).
    pub misses: u64,
    /// Loader runs (database queries) the cache made; concurrent misses of one key share one.
    pub loads: u64,
    /// Misses that waited for another caller's load of the same key and shared its result.
    pub coalesced: u64,
    /// Entries found but discarded because a table they were read from has been written since.
    pub stale: u64,
    /// Entries found but past their TTL.
    pub expired: u64,
    /// Entries evicted by the in-memory backend to stay within `max_entries`.
    pub evictions: u64,
    /// Keys dropped (and deleted) because a table tracked more than `max_keys_per_table`.
    pub table_evictions: u64,
    /// Table invalidations (one per table per invalidating call).
    pub invalidations: u64,
    /// Backend operations that failed (the call went on without the cache).
    pub backend_errors: u64,
    /// Entries that could not be decoded (corrupt, truncated or of another type): treated
    /// as misses and deleted.
    pub decode_errors: u64,
    /// Callers that waited `max_load_wait` for another caller's load of the same key and
    /// then ran their own query.
    pub load_wait_timeouts: u64,
    /// Values not stored for their size: over a quarter of `max_bytes` in memory, over
    /// `max_entry_bytes` for a remote backend.
    pub oversized: u64,
    /// Tables forgotten to stay within `max_tables` (their entries became stale).
    pub tables_forgotten: u64,
    /// Hits re-checked against the database by the freshness sampler
    /// ([`Settings::freshness_sample`](crate::Settings::freshness_sample)).
    pub freshness_checks: u64,
    /// Re-checks whose fresh value differed from the cached one with no write to its tables
    /// in between: a cached value that was wrong. Each is logged (`warn`) with the function,
    /// the key and the tables.
    pub freshness_mismatches: u64,
    /// Misses that waited for another instance's load of the same key (a shared
    /// backend's lease, `Settings::shared_single_flight`) and were served its fill. Also
    /// counted in `coalesced`.
    pub lease_waits: u64,
    /// Reads served an entry past its TTL (within `swr`) while another caller refreshed it
    /// (stale-while-revalidate). Also counted in `hits`.
    pub served_stale: u64,
    /// Reads whose query failed and that were served the last good value instead (within
    /// `stale_on_error` past its TTL, or still within it). Also counted in `misses`.
    pub stale_on_error: u64,
    /// Queries run to refresh an entry that was aging (refresh-ahead, or past its TTL with
    /// a stale window) while other callers were served it. Also counted in `loads`.
    pub refreshes: u64,
}

impl Stats {
    /// `hits / (hits + misses)`, or 0 before the first read.
    pub fn hit_ratio(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Counter {
    Hits,
    Misses,
    Loads,
    Coalesced,
    Stale,
    Expired,
    Evictions,
    TableEvictions,
    Invalidations,
    BackendErrors,
    DecodeErrors,
    LoadWaitTimeouts,
    Oversized,
    FreshnessChecks,
    FreshnessMismatches,
    LeaseWaits,
    ServedStale,
    StaleOnError,
    Refreshes,
}

const COUNTERS: usize = 19;
/// Threads that get a stripe of their own (per cache), the first this many to count
/// anything in this process.
pub(crate) const OWNED: usize = 32;

#[repr(align(128))]
#[derive(Default)]
struct Stripe([AtomicU64; COUNTERS]);

/// Counters striped by thread, so that concurrent hits on different cores never write one
/// cache line, and a hit counts without an atomic read-modify-write.
///
/// The first [`OWNED`] threads of the process each own a stripe: only that thread writes
/// it, so an increment is a plain load and store, and exact. Threads after those (a
/// process that keeps starting new threads) share one more stripe, with atomic adds.
#[derive(Default)]
pub(crate) struct Counters {
    owned: [Stripe; OWNED],
    shared: Stripe,
}

/// This thread's stripe: its own below [`OWNED`], the shared one at [`OWNED`].
#[inline]
pub(crate) fn stripe_index() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        if i.get() == usize::MAX {
            i.set(NEXT.fetch_add(1, Relaxed).min(OWNED));
        }
        i.get()
    })
}

impl Counters {
    #[inline]
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        match self.owned.get(stripe_index()) {
            Some(stripe) => {
                // This thread is the stripe's only writer.
                let c = &stripe.0[counter as usize];
                c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
            }
            None => {
                self.shared.0[counter as usize].fetch_add(n, Relaxed);
            }
        }
    }

    #[inline]
    pub(crate) fn bump(&self, counter: Counter) {
        self.add(counter, 1);
    }

    /// Counts an entry discarded as stale or expired, and notes why for the outcome of the
    /// call on this thread (`observe::take_discard`).
    #[cold]
    pub(crate) fn discarded(&self, counter: Counter) {
        crate::observe::note_discard(counter);
        self.add(counter, 1);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: Counter| {
            self.owned
                .iter()
                .chain([&self.shared])
                .map(|s| s.0[c as usize].load(Relaxed))
                .fold(0_u64, u64::wrapping_add)
        };
        Stats {
            hits: get(Counter::Hits),
            misses: get(Counter::Misses),
            loads: get(Counter::Loads),
            coalesced: get(Counter::Coalesced),
            stale: get(Counter::Stale),
            expired: get(Counter::Expired),
            evictions: get(Counter::Evictions),
            table_evictions: get(Counter::TableEvictions),
            invalidations: get(Counter::Invalidations),
            backend_errors: get(Counter::BackendErrors),
            decode_errors: get(Counter::DecodeErrors),
            load_wait_timeouts: get(Counter::LoadWaitTimeouts),
            oversized: get(Counter::Oversized),
            freshness_checks: get(Counter::FreshnessChecks),
            freshness_mismatches: get(Counter::FreshnessMismatches),
            lease_waits: get(Counter::LeaseWaits),
            served_stale: get(Counter::ServedStale),
            stale_on_error: get(Counter::StaleOnError),
            refreshes: get(Counter::Refreshes),
            // Counted by the tables themselves (`Cache::stats` fills it in).
            tables_forgotten: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mechanism: each owned stripe has one writer, and threads past [`OWNED`] add
    /// atomically. Sharing an owned stripe between threads would lose counts here.
    #[test]
    fn counts_from_more_threads_than_stripes_are_exact() {
        const THREADS: u64 = OWNED as u64 + 16;
        const EACH: u64 = 20_000;
        let counters = Counters::default();
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..EACH {
                        counters.bump(Counter::Hits);
                    }
                    counters.add(Counter::Misses, 2);
                });
            }
        });
        let stats = counters.snapshot();
        assert_eq!(stats.hits, THREADS * EACH);
        assert_eq!(stats.misses, THREADS * 2);
    }
}
