//! The `metrics` facade integration (feature `metrics`): what is recorded as it happens
//! (loads, invalidations, their delivery), and what [`Cache::publish_metrics`] copies from
//! the counters. Without the feature, every function here is empty.
//!
//! | Name | Kind | Labels |
//! |---|---|---|
//! | `sqlx_cache_hits_total`, `_misses_total`, `_loads_total`, `_coalesced_total`, `_stale_total`, `_expired_total`, `_evictions_total`, `_backend_errors_total`, `_decode_errors_total`, `_freshness_checks_total`, `_freshness_mismatches_total`, `_lease_waits_total`, `_served_stale_total`, `_stale_on_error_total`, `_refreshes_total`, `_load_wait_timeouts_total`, `_oversized_total`, `_table_evictions_total`, `_tables_forgotten_total` | counter | `namespace` |
//! | `sqlx_cache_entries`, `sqlx_cache_bytes` | gauge | `namespace` |
//! | `sqlx_cache_calls_total` | counter | `namespace`, `function`, `outcome` |
//! | `sqlx_cache_load_duration_seconds` | histogram | `function` |
//! | `sqlx_cache_invalidations_total` | counter | `table` |
//! | `sqlx_cache_invalidation_delay_seconds` | histogram | |

#[cfg(feature = "metrics")]
use crate::Cache;
use crate::key::Key;
use crate::observe::Outcome;
use std::time::Duration;

/// A query the cache ran for `key` (a miss), which took `spent`.
#[inline]
pub(crate) fn loaded(key: Option<&Key>, outcome: Outcome, spent: Duration) {
    #[cfg(feature = "metrics")]
    if let (Some(key), Outcome::Miss | Outcome::Stale | Outcome::Expired) = (key, outcome) {
        let function = crate::key::function_name(key.scope()).to_string();
        metrics::histogram!("sqlx_cache_load_duration_seconds", "function" => function)
            .record(spent.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (key, outcome, spent);
}

/// An invalidation of `tables`.
#[inline]
pub(crate) fn invalidated(tables: &[&str]) {
    #[cfg(feature = "metrics")]
    for table in tables {
        metrics::counter!("sqlx_cache_invalidations_total", "table" => table.to_string())
            .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = tables;
}

/// A write's invalidation reached the shared backend `elapsed` after the write called it:
/// from then on, no other instance serves what it made stale.
#[inline]
pub(crate) fn invalidation_delivered(elapsed: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("sqlx_cache_invalidation_delay_seconds").record(elapsed.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = elapsed;
}

#[cfg(feature = "metrics")]
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (name, help) in COUNTERS {
            describe_counter!(*name, *help);
        }
        describe_gauge!("sqlx_cache_entries", "Entries in the in-memory store.");
        describe_gauge!(
            "sqlx_cache_bytes",
            Unit::Bytes,
            "Weight of the in-memory store's entries."
        );
        describe_counter!(
            "sqlx_cache_calls_total",
            "Cached calls per function and outcome (hit, miss, coalesced, stale, expired, bypass)."
        );
        describe_histogram!(
            "sqlx_cache_load_duration_seconds",
            Unit::Seconds,
            "Time of the calls that ran their query (misses)."
        );
        describe_counter!(
            "sqlx_cache_invalidations_total",
            "Invalidations per table (writes, commits, database events)."
        );
        describe_histogram!(
            "sqlx_cache_invalidation_delay_seconds",
            Unit::Seconds,
            "Time from a write's invalidation to its delivery to the shared backend."
        );
    });
}

#[cfg(feature = "metrics")]
const COUNTERS: &[(&str, &str)] = &[
    ("sqlx_cache_hits_total", "Reads answered from the cache."),
    (
        "sqlx_cache_misses_total",
        "Reads that found no usable entry.",
    ),
    ("sqlx_cache_loads_total", "Queries the cache ran."),
    (
        "sqlx_cache_coalesced_total",
        "Misses that shared another caller's load.",
    ),
    (
        "sqlx_cache_stale_total",
        "Entries discarded because a table they were read from was written.",
    ),
    (
        "sqlx_cache_expired_total",
        "Entries discarded past their TTL.",
    ),
    (
        "sqlx_cache_evictions_total",
        "Entries evicted to stay within the memory bounds.",
    ),
    (
        "sqlx_cache_backend_errors_total",
        "Backend operations that failed.",
    ),
    (
        "sqlx_cache_decode_errors_total",
        "Entries that could not be decoded.",
    ),
    (
        "sqlx_cache_freshness_checks_total",
        "Hits re-checked against the database by the freshness sampler.",
    ),
    (
        "sqlx_cache_freshness_mismatches_total",
        "Re-checked hits whose cached value was wrong.",
    ),
    (
        "sqlx_cache_lease_waits_total",
        "Misses served by another instance's load of the same key.",
    ),
    (
        "sqlx_cache_served_stale_total",
        "Reads served an entry past its TTL while another caller refreshed it.",
    ),
    (
        "sqlx_cache_stale_on_error_total",
        "Reads whose query failed, served the last good value.",
    ),
    (
        "sqlx_cache_refreshes_total",
        "Queries run to refresh an aging entry while others were served it.",
    ),
    (
        "sqlx_cache_load_wait_timeouts_total",
        "Callers that stopped waiting for another caller's load and ran their own query.",
    ),
    (
        "sqlx_cache_oversized_total",
        "Values not cached for their size.",
    ),
    (
        "sqlx_cache_table_evictions_total",
        "Keys dropped to keep a table within max_keys_per_table.",
    ),
    (
        "sqlx_cache_tables_forgotten_total",
        "Tables forgotten to stay within max_tables.",
    ),
];

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
impl Cache {
    /// Copies this cache's counters into the installed `metrics` recorder (a Prometheus
    /// exporter, for instance) under the names in the README's table, labelled with the
    /// namespace. Call it before rendering (in a `/metrics` handler) or from a periodic
    /// task; it costs a walk over the counters, nothing on the calls. Load durations,
    /// invalidations and their delivery are recorded as they happen.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cache = cache_runtime::Cache::new(cache_runtime::Settings::default()).unwrap();
    /// cache.publish_metrics(); // with no recorder installed, a no-op
    /// # })
    /// ```
    pub fn publish_metrics(&self) {
        describe();
        let namespace = self.settings().namespace.clone();
        let s = self.stats();
        let values = [
            s.hits,
            s.misses,
            s.loads,
            s.coalesced,
            s.stale,
            s.expired,
            s.evictions,
            s.backend_errors,
            s.decode_errors,
            s.freshness_checks,
            s.freshness_mismatches,
            s.lease_waits,
            s.served_stale,
            s.stale_on_error,
            s.refreshes,
            s.load_wait_timeouts,
            s.oversized,
            s.table_evictions,
            s.tables_forgotten,
        ];
        for ((name, _), value) in COUNTERS.iter().zip(values) {
            metrics::counter!(*name, "namespace" => namespace.clone()).absolute(value);
        }
        if let Some(entries) = self.entry_count() {
            metrics::gauge!("sqlx_cache_entries", "namespace" => namespace.clone())
                .set(entries as f64);
        }
        if let Some(bytes) = self.memory_bytes() {
            metrics::gauge!("sqlx_cache_bytes", "namespace" => namespace.clone()).set(bytes as f64);
        }
        for f in self.function_stats() {
            let counts = [
                (Outcome::Hit, f.hits),
                (
                    Outcome::Miss,
                    f.misses
                        .saturating_sub(f.coalesced)
                        .saturating_sub(f.stale)
                        .saturating_sub(f.expired),
                ),
                (Outcome::Coalesced, f.coalesced),
                (Outcome::Stale, f.stale),
                (Outcome::Expired, f.expired),
                (Outcome::Bypass, f.bypassed),
            ];
            for (outcome, value) in counts {
                metrics::counter!("sqlx_cache_calls_total",
                    "namespace" => namespace.clone(),
                    "function" => f.function.clone(),
                    "outcome" => outcome.as_str())
                .absolute(value);
            }
        }
    }
}
