//! Storage behind a [`Cache`](crate::Cache): the [`Backend`] trait, its in-memory
//! implementation, the Redis one (feature `redis`) and the conformance suite every backend
//! should pass (feature `conformance`).
//!
//! A backend stores opaque bytes under string keys of the form `{namespace}:{hex key}`,
//! with an optional storage TTL. It knows nothing of types: the cache wraps every value in
//! an envelope carrying its (table, version) tags and checks them on the way out, so a
//! backend only has to store and return bytes faithfully (or fail loudly).
//!
//! A backend that many processes share (Redis) should also keep the table versions and the
//! per-table key tracking itself, so a write in one process invalidates reads in all of
//! them: it says so with [`Backend::shared_versions`] and implements the methods below it.
//! The others keep the defaults and the cache keeps versions in process.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod memory;
pub(crate) mod pending;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use memory::MemoryBackend;
#[cfg(feature = "redis")]
pub use redis::{RedisBackend, RedisOptions};

/// A boxed, `Send` future, the return type of every [`Backend`] method.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a [`Cache`](crate::Cache) built with [`Cache::with_backend`](crate::Cache::with_backend)
/// keeps its entries.
///
/// Errors are never fatal to a caller: the cache counts them in
/// [`Stats::backend_errors`](crate::Stats::backend_errors), logs them and runs the query.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::backend::{Backend, BackendError, BoxFuture, MemoryBackend};
///
/// /// A backend that logs every write and delegates to the in-memory one.
/// struct Logged(MemoryBackend);
///
/// impl Backend for Logged {
///     fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, BackendError>> {
///         self.0.get(key)
///     }
///     fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Option<Duration>)
///         -> BoxFuture<'a, Result<(), BackendError>> {
///         println!("set {key} ({} bytes, ttl {ttl:?})", value.len());
///         self.0.set(key, value, ttl)
///     }
///     fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), BackendError>> {
///         self.0.delete(keys)
///     }
///     fn clear_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
///         self.0.clear_prefix(prefix)
///     }
/// }
/// ```
pub trait Backend: Send + Sync + 'static {
    /// The bytes stored under `key`, or `None` when absent or expired.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, BackendError>>;

    /// Stores `value` under `key`, replacing any previous value; `ttl` of `None` means no
    /// expiry (the backend may still evict).
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Deletes every key in `keys`; absent keys are not an error.
    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Deletes every key that starts with `prefix`.
    fn clear_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;

    // ----- shared table versions (optional) -----

    /// Whether this backend keeps table versions and key tracking itself, shared by every
    /// cache (in every process) that uses it. Default `false`: the cache keeps them in
    /// process, and never calls the methods below.
    ///
    /// When `true`, the methods below must implement these rules (the conformance suite,
    /// `backend::conformance` with the `conformance` feature, checks them):
    ///
    /// - A table's version, per namespace, is a non-zero `u64`. Once a version has been
    ///   replaced (by [`bump`](Backend::bump)) it never comes back, and a version that was
    ///   lost (deleted by `clear_prefix`, evicted, a restart without persistence) is
    ///   recreated at an unpredictable value, never at one a read may have captured before.
    /// - `namespace` is the cache's namespace; the backend chooses how to lay out version
    ///   and tracking keys, but they must not collide with entry keys (`{namespace}:{hex}`)
    ///   or between tables, whatever the table names contain.
    fn shared_versions(&self) -> bool {
        false
    }

    /// The current version of each of `tables`, in order, creating missing ones. A read
    /// captures these before it runs its query and tags its entry with them.
    fn versions<'a>(
        &'a self,
        namespace: &'a str,
        tables: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<u64>, BackendError>> {
        let _ = (namespace, tables);
        unsupported("versions")
    }

    /// The bytes under `key` and the current version of each of `tables` (0 for a table
    /// that has none, which no entry is tagged with), ideally in one round trip: this is
    /// the read path of every hit.
    ///
    /// The default calls [`get`](Backend::get), then [`versions`](Backend::versions).
    fn get_checked<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        tables: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Checked, BackendError>> {
        Box::pin(async move {
            let bytes = self.get(key).await?;
            let versions = self.versions(namespace, tables).await?;
            Ok((bytes, versions))
        })
    }

    /// Stores `value` under `key` (as [`set`](Backend::set) does) if the version of every
    /// table in `tags` still equals the one given there, and tracks `key` under each of
    /// those tables; a table then tracking more than `max_keys` keys drops its oldest ones
    /// from tracking and deletes them. Should be atomic with respect to
    /// [`bump`](Backend::bump); the cache checks versions on every read anyway.
    fn set_tracked<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        tags: &'a [(&'a str, u64)],
        max_keys: usize,
    ) -> BoxFuture<'a, Result<StoreOutcome, BackendError>> {
        let _ = (namespace, key, value, ttl, tags, max_keys);
        unsupported("set_tracked")
    }

    /// Gives each of `tables` a new version (every entry tagged with an older one is stale
    /// from now on, for every cache sharing this backend) and deletes the keys they track.
    fn bump<'a>(
        &'a self,
        namespace: &'a str,
        tables: &'a [&'a str],
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        let _ = (namespace, tables);
        unsupported("bump")
    }

    /// How many keys `table` tracks for invalidation.
    fn tracked<'a>(
        &'a self,
        namespace: &'a str,
        table: &'a str,
    ) -> BoxFuture<'a, Result<usize, BackendError>> {
        let _ = (namespace, table);
        unsupported("tracked")
    }
}

/// What [`Backend::get_checked`] returns: the bytes under the key, if any, and the current
/// version of each table asked about, in order (0 for a table without one).
pub type Checked = (Option<Vec<u8>>, Vec<u64>);

/// What [`Backend::set_tracked`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// The entry was stored and tracked; `evicted` older keys were dropped from tracking
    /// (and deleted) to keep tables within `max_keys`.
    Stored {
        /// Keys dropped from tracking and deleted.
        evicted: usize,
    },
    /// A table was written since its version was captured: nothing was stored.
    Stale,
}

fn unsupported<T: Send + 'static>(
    method: &'static str,
) -> BoxFuture<'static, Result<T, BackendError>> {
    Box::pin(async move {
        Err(BackendError::new(format!(
            "this backend does not keep shared table versions (`Backend::{method}`)"
        )))
    })
}

/// A failed backend operation.
#[derive(Debug)]
pub struct BackendError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BackendError {
    /// An error described by `message`.
    pub fn new(message: impl Into<String>) -> BackendError {
        BackendError {
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source` (e.g. a connection error), described by `message`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> BackendError {
        BackendError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
