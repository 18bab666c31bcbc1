//! `Settings`: the one place a cache is configured.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Ttl;

/// Everything a [`Cache`](crate::Cache) can be configured with.
///
/// Deserializes from any serde format (TOML, JSON, environment-based config crates); every
/// field is optional and falls back to [`Settings::default`]. Unknown keys are rejected, so
/// a typo in a config file is an error rather than a silently ignored option.
///
/// ```
/// use cache_runtime::{Settings, Ttl};
///
/// let settings: Settings = serde_json::from_str(r#"{ "namespace": "shop", "default_ttl": "5m" }"#)?;
/// assert_eq!(settings.default_ttl, Ttl::secs(300));
/// assert_eq!(settings.max_keys_per_table, 10_000);
/// settings.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Mixed into every key (and the prefix of every remote key), so applications sharing
    /// one backend never read each other's entries. Must not be empty. Default `"sqlx-cache"`.
    pub namespace: String,
    /// How many keys each table tracks for invalidation; past it, the table's oldest tracked
    /// key is dropped from tracking and its entry deleted. Must be at least 1. Default 10 000.
    pub max_keys_per_table: usize,
    /// Whether `#[invalidates]` functions invalidate their tables. Turn off only when
    /// something else invalidates (or stale reads within the TTL are acceptable). Default `true`.
    pub invalidate_on_write: bool,
    /// TTL for reads that name none. Default 60 seconds.
    pub default_ttl: Ttl,
    /// Capacity of the in-memory store, in entries: past it, an entry not read since the
    /// CLOCK hand last passed is evicted (second chance, an approximation of least recently
    /// used). Must be at least 1. Default 100 000.
    pub max_entries: usize,
    /// Whether `None` and empty collections are cached. Default `true`.
    pub cache_none: bool,
    /// Whether the cache is used at all; when `false`, every read runs its query. Default `true`.
    pub enabled: bool,
    /// Longest wait for one operation of a remote backend such as Redis (connecting
    /// included); past it the operation counts as a backend error and the query runs.
    /// A duration such as `"250ms"` or a number of milliseconds; must not be zero.
    /// Default `"250ms"`. Unused by the in-memory store.
    #[serde(with = "duration")]
    pub backend_timeout: Duration,
    /// Longest a caller waits for another caller's load of the same key (single-flight);
    /// past it, it runs its own query, and no new caller joins that load. A loader that
    /// never returns then delays the others by this much, never for ever. Must not be zero;
    /// `Duration::MAX` waits for the leader however long it takes. Default `"10s"`.
    #[serde(with = "duration")]
    pub max_load_wait: Duration,
    /// Capacity of the in-memory store in bytes, counting each value's encoded size plus a
    /// fixed cost per entry. Past it, entries are evicted; a value larger than a quarter of
    /// it is not stored. An evicted value a caller still holds (a clone handed out just
    /// before) is freed when that caller drops it, and is no longer counted. Must be at
    /// least 1. Default 256 MiB.
    pub max_bytes: usize,
    /// How many table names a cache keeps versions for; past it, the least recently used
    /// table is forgotten, and every entry read from it becomes stale. Bounds memory when
    /// table names are made at run time (per tenant, per month). Must be at least 1.
    /// Default 10 000.
    pub max_tables: usize,
    /// The largest encoded entry a remote backend (Redis) is sent, in bytes. A larger value
    /// is not stored (the call still returns it): it is counted in
    /// [`Stats::oversized`](crate::Stats::oversized) and logged once. One huge `SET` would
    /// hold up every other operation on the connection for as long as it takes to send.
    /// Must be at least 1. Default 1 MiB. Unused by the in-memory store (see `max_bytes`).
    pub max_entry_bytes: usize,
    /// The fraction of hits (0 to 1) re-checked against the database: the call runs its
    /// query as a miss would, compares the fresh value with the cached one, and returns
    /// the fresh one. A difference with no write to the entry's tables in between (checked
    /// again 100 ms later) is a *freshness mismatch*: counted in
    /// [`Stats::freshness_mismatches`](crate::Stats::freshness_mismatches) and per function,
    /// logged at `warn` with the function, the key and the tables, and the entry is
    /// replaced. A sampled call costs what a miss costs (a query), so keep it small in
    /// production (`0.001`: one hit in a thousand). 0 (the default) turns it off.
    pub freshness_sample: f64,
    /// The Redis server the cache shares entries and invalidations through
    /// (`redis://host:6379`), for `cache_redis::open`, which builds an in-memory cache
    /// when it is `None` (the default). Unused by [`Cache::new`](crate::Cache::new).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// With a shared backend (Redis): keep an in-process copy of the entries this instance
    /// reads, served at memory speed, and drop it when the backend pushes an invalidation
    /// from any instance. Another instance's write is then seen within the push delay
    /// (measured in the README), not at once: off (the default) is *strict*, every hit
    /// checked against the backend. While the push channel is down or late, in-process
    /// copies are not served (see `near_lease`). Needs a backend that pushes invalidations
    /// ([`SharedBackend::subscribe`](crate::backend::SharedBackend::subscribe)).
    pub near_cache: bool,
    /// How long after the push channel last proved it was caught up (a heartbeat every
    /// fifth of this) in-process copies may be served: a push connection that stalls
    /// without closing cannot leave them served for longer. Default 500 ms; between 1 ms
    /// and 1 minute.
    #[serde(with = "duration")]
    pub near_lease: Duration,
    /// With a shared backend (Redis): one instance of the fleet loads a missing key while
    /// the others wait for its fill, as callers of one process already share one load.
    /// An expiry storm then costs one query, not one per instance. The lease is kept in
    /// the backend (2 s, renewed while the load runs, never past `max_load_wait`); the
    /// others wait at most half of `max_load_wait`, and load at once if the lease comes
    /// free with no entry. A miss pays up to three more round trips (the lease, a check
    /// for a fill that landed meanwhile, the release). Default `true`.
    pub shared_single_flight: bool,
    /// Row-level invalidation: a read of one row by its integer id (`WHERE id = $1`, seen
    /// in the SQL by `#[cached]`) follows that row, and a write whose rows `#[invalidates]`
    /// can see (`UPDATE … WHERE id = $1`, `DELETE … WHERE id = $1`, `INSERT` of one row
    /// with its id) leaves the reads of other rows fresh. Off: every read and write
    /// follows whole tables.
    ///
    /// Turn it on once no trigger, foreign key (`ON DELETE CASCADE` to the same table) or
    /// table-level `ON CONFLICT REPLACE` makes a write by id change *other* rows of the
    /// same table, or list such tables in the write's `also`: the macro cannot see them.
    /// Every process sharing a backend must run a version that knows row tags (processes
    /// may differ in this setting). Default `false`.
    pub row_level: bool,
    /// Stale-while-revalidate, for reads that name none (`#[cached(swr = ...)]`): an
    /// entry (in memory, or in a shared backend) up to this long past its TTL is served to
    /// every caller while one caller (one instance) runs the query to refresh it. Never an entry a write has made stale. Default
    /// 0: off.
    #[serde(with = "duration")]
    pub stale_while_revalidate: Duration,
    /// Stale-on-error, for reads that name none (`#[cached(stale_on_error = ...)]`): when
    /// the query fails, an entry up to this long past its TTL is served instead
    /// of the error (counted in `Stats::stale_on_error`). Never an entry a write has made
    /// stale. Default 0: off, the error is returned.
    #[serde(with = "duration")]
    pub stale_on_error: Duration,
    /// Refresh-ahead, for reads that name none (`#[cached(refresh_ahead = ...)]`): an
    /// entry read within this long of its TTL is refreshed by one caller while
    /// the others are served it, so a hot key never expires. Default 0: off.
    #[serde(with = "duration")]
    pub refresh_ahead: Duration,
}

/// The longest `near_lease`: it bounds how long a stalled push leaves copies served.
const MAX_NEAR_LEASE: Duration = Duration::from_secs(60);

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            namespace: "sqlx-cache".to_owned(),
            max_keys_per_table: 10_000,
            invalidate_on_write: true,
            default_ttl: Ttl::secs(60),
            max_entries: 100_000,
            cache_none: true,
            enabled: true,
            backend_timeout: Duration::from_millis(250),
            max_load_wait: Duration::from_secs(10),
            max_bytes: 256 << 20,
            max_tables: 10_000,
            max_entry_bytes: 1 << 20,
            freshness_sample: 0.0,
            redis_url: None,
            near_cache: false,
            near_lease: Duration::from_millis(500),
            shared_single_flight: true,
            row_level: false,
            stale_while_revalidate: Duration::ZERO,
            stale_on_error: Duration::ZERO,
            refresh_ahead: Duration::ZERO,
        }
    }
}

/// `Duration` fields: written as `"250ms"`, `"1h30m"` (exactly, whatever the value), read
/// from such a string or a number of milliseconds. Zero reads as zero: `validate` names
/// the field.
mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    use crate::ttl_grammar;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ttl_grammar::format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration such as \"250ms\" or \"1h30m\" (units: ms, s, m, h, d), \
                     or a number of milliseconds",
                )
            }

            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Duration, E> {
                Ok(Duration::from_millis(ms))
            }

            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Duration, E> {
                u64::try_from(ms)
                    .map(Duration::from_millis)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
                ttl_grammar::parse_duration(s).map_err(|e| {
                    E::custom(format!(
                        "invalid duration {s:?}: {}; expected {}",
                        e.reason(),
                        "a duration such as \"250ms\" or \"1h30m\" (units: ms, s, m, h, d), \
                         or a number of milliseconds"
                    ))
                })
            }
        }

        d.deserialize_any(DurationVisitor)
    }
}

/// A [`Settings`] value that cannot build a cache.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingsError {
    /// `namespace` is empty or only whitespace.
    EmptyNamespace,
    /// `namespace` contains a character that would make remote keys ambiguous.
    InvalidNamespace(String),
    /// `max_entries` is 0.
    ZeroMaxEntries,
    /// `max_keys_per_table` is 0.
    ZeroMaxKeysPerTable,
    /// `backend_timeout` is 0.
    ZeroBackendTimeout,
    /// `max_load_wait` is 0.
    ZeroMaxLoadWait,
    /// `max_bytes` is 0.
    ZeroMaxBytes,
    /// `max_tables` is 0.
    ZeroMaxTables,
    /// `max_entry_bytes` is 0.
    ZeroMaxEntryBytes,
    /// `default_ttl` caches nothing: zero, or an instant already past.
    DefaultTtlCachesNothing(crate::Ttl),
    /// `freshness_sample` is not a fraction between 0 and 1.
    InvalidFreshnessSample(String),
    /// `near_lease` is under a millisecond, or over a minute.
    NearLeaseOutOfRange(Duration),
    /// `near_cache` is on, but the cache has no shared backend, or its backend cannot push
    /// invalidations (the reason).
    NearCacheUnavailable(String),
    /// A stale window (the field named) is longer than 30 days.
    StaleWindowTooLong(&'static str, Duration),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::EmptyNamespace => f.write_str(
                "settings.namespace is empty: give the cache a name such as \"myapp\", \
                 it prefixes every key",
            ),
            SettingsError::InvalidNamespace(ns) => write!(
                f,
                "settings.namespace {ns:?} contains whitespace, a control character, `:`, `*`, \
                 `?`, `[`, `]`, `{{` or `}}`: use letters, digits and punctuation such as `-`, `_` or `.`"
            ),
            SettingsError::ZeroMaxEntries => f.write_str(
                "settings.max_entries is 0: the in-memory backend needs room for at least one \
                 entry (set `enabled = false` to turn the cache off)",
            ),
            SettingsError::ZeroMaxKeysPerTable => f.write_str(
                "settings.max_keys_per_table is 0: each table must track at least one key \
                 so that writes can invalidate it",
            ),
            SettingsError::ZeroBackendTimeout => f.write_str(
                "settings.backend_timeout is 0: every backend operation would time out; \
                 give it a duration such as \"250ms\"",
            ),
            SettingsError::ZeroMaxLoadWait => f.write_str(
                "settings.max_load_wait is 0: a caller would never wait for another's load \
                 of the same key; give it a duration such as \"10s\"",
            ),
            SettingsError::ZeroMaxBytes => f.write_str(
                "settings.max_bytes is 0: the in-memory store needs room for at least one \
                 entry (set `enabled = false` to turn the cache off)",
            ),
            SettingsError::ZeroMaxTables => f.write_str(
                "settings.max_tables is 0: a cache must keep the version of at least one table",
            ),
            SettingsError::ZeroMaxEntryBytes => f.write_str(
                "settings.max_entry_bytes is 0: a remote backend could store no entry \
                 (set `enabled = false` to turn the cache off)",
            ),
            SettingsError::DefaultTtlCachesNothing(ttl) => write!(
                f,
                "settings.default_ttl {ttl} caches nothing (a zero duration, or an instant \
                 already past): give a duration such as \"60s\", `true` for no expiry, or \
                 `false` to bypass the cache on purpose"
            ),
            SettingsError::InvalidFreshnessSample(fraction) => write!(
                f,
                "settings.freshness_sample {fraction} is not a fraction between 0 and 1: \
                 use 0.001 to re-check one hit in a thousand, or 0 to turn it off"
            ),
            SettingsError::NearLeaseOutOfRange(lease) => write!(
                f,
                "settings.near_lease {lease:?} is out of range: it bounds how long a stalled \
                 invalidation push can leave in-process copies served, so it must be between \
                 1 ms and 1 minute; give it a duration such as \"500ms\""
            ),
            SettingsError::StaleWindowTooLong(field, window) => write!(
                f,
                "settings.{field} {window:?} is longer than 30 days: an entry is kept that \
                 long past its TTL; give a duration such as \"30s\" or \"5m\""
            ),
            SettingsError::NearCacheUnavailable(why) => write!(
                f,
                "settings.near_cache is on, but {why}: a near cache needs a shared backend \
                 that pushes invalidations (Redis); turn near_cache off for a strict cache"
            ),
        }
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    /// Checks every field; [`Cache::new`](crate::Cache::new) calls this.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] naming the first invalid field and how to fix it.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.namespace.trim().is_empty() {
            return Err(SettingsError::EmptyNamespace);
        }
        // Remote backends clear `{namespace}:*`: a `:` would let clearing namespace `a`
        // reach into namespace `a:b`, and glob characters or whitespace would widen or
        // break the match. Braces would change which Redis Cluster slot a key lands in.
        if self.namespace.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, ':' | '*' | '?' | '[' | ']' | '{' | '}')
        }) {
            return Err(SettingsError::InvalidNamespace(self.namespace.clone()));
        }
        if self.max_entries == 0 {
            return Err(SettingsError::ZeroMaxEntries);
        }
        if self.max_keys_per_table == 0 {
            return Err(SettingsError::ZeroMaxKeysPerTable);
        }
        if self.backend_timeout.is_zero() {
            return Err(SettingsError::ZeroBackendTimeout);
        }
        if self.max_load_wait.is_zero() {
            return Err(SettingsError::ZeroMaxLoadWait);
        }
        if self.max_bytes == 0 {
            return Err(SettingsError::ZeroMaxBytes);
        }
        if self.max_tables == 0 {
            return Err(SettingsError::ZeroMaxTables);
        }
        if self.max_entry_bytes == 0 {
            return Err(SettingsError::ZeroMaxEntryBytes);
        }
        // Bypass is a choice; a TTL that would store nothing (zero, an instant past) is not.
        let caches_nothing = self.default_ttl != crate::Ttl::Bypass
            && self
                .default_ttl
                .deadline(std::time::Instant::now())
                .is_err();
        if caches_nothing {
            return Err(SettingsError::DefaultTtlCachesNothing(self.default_ttl));
        }
        if self.near_lease < Duration::from_millis(1) || self.near_lease > MAX_NEAR_LEASE {
            return Err(SettingsError::NearLeaseOutOfRange(self.near_lease));
        }
        for (field, window) in [
            ("stale_while_revalidate", self.stale_while_revalidate),
            ("stale_on_error", self.stale_on_error),
            ("refresh_ahead", self.refresh_ahead),
        ] {
            if window > crate::stale::MAX_WINDOW {
                return Err(SettingsError::StaleWindowTooLong(field, window));
            }
        }
        if !(0.0..=1.0).contains(&self.freshness_sample) {
            return Err(SettingsError::InvalidFreshnessSample(
                self.freshness_sample.to_string(),
            ));
        }
        Ok(())
    }
}
