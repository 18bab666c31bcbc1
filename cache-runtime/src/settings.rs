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
}

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
        }
    }
}

/// `Duration` fields in the forms a TTL duration takes (`"250ms"`, `"2s"`, a number of
/// milliseconds).
mod duration {
    use std::time::Duration;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::Ttl;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        Ttl::For(*d).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Ttl::deserialize(d)? {
            Ttl::For(d) => Ok(d),
            other => Err(D::Error::custom(format!(
                "expected a duration such as \"250ms\" or a number of milliseconds, got {other:?}"
            ))),
        }
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
                 `?`, `[` or `]`: use letters, digits and punctuation such as `-`, `_` or `.`"
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
        // break the match.
        if self.namespace.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, ':' | '*' | '?' | '[' | ']')
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
        Ok(())
    }
}
