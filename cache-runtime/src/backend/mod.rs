//! Storage behind a [`Cache`](crate::Cache): the [`Backend`] trait, the [`SharedBackend`]
//! trait for backends many processes share, their in-memory implementations, and the
//! conformance suite every backend should pass (feature `conformance`). The Redis backend
//! is the `cache-redis` crate, built on these traits alone.
//!
//! A backend stores opaque bytes under string keys of the form `{namespace}:{hex key}`,
//! with an optional storage TTL. It knows nothing of types: the cache wraps every value in
//! an envelope carrying its (table, version) tags and checks them on the way out, so a
//! backend only has to store and return bytes faithfully (or fail loudly).
//!
//! Which one a cache uses decides where table versions live:
//!
//! - [`Cache::with_backend`](crate::Cache::with_backend) takes a [`Backend`]; the cache
//!   keeps table versions in its process. Entries written by another process are never
//!   served (they are not shared either).
//! - [`Cache::with_shared_backend`](crate::Cache::with_shared_backend) takes a
//!   [`SharedBackend`], which keeps table versions and per-table key tracking itself, so a
//!   write in one process invalidates reads in all of them.
//!
//! Implement both with `async fn`, under [`#[async_trait]`](macro@async_trait):
//!
//! ```
//! use std::time::Duration;
//! use cache_runtime::backend::{async_trait, Backend, BackendError, MemoryBackend};
//!
//! /// A backend that logs every write and delegates to the in-memory one.
//! struct Logged(MemoryBackend);
//!
//! #[async_trait]
//! impl Backend for Logged {
//!     async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
//!         self.0.get(key).await
//!     }
//!     async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>)
//!         -> Result<(), BackendError> {
//!         println!("set {key} ({} bytes, ttl {ttl:?})", value.len());
//!         self.0.set(key, value, ttl).await
//!     }
//!     async fn delete(&self, keys: &[String]) -> Result<(), BackendError> {
//!         self.0.delete(keys).await
//!     }
//!     async fn clear_prefix(&self, prefix: &str) -> Result<(), BackendError> {
//!         self.0.clear_prefix(prefix).await
//!     }
//! }
//! ```

#[cfg(any(test, feature = "conformance"))]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod memory;

use std::fmt;
use std::time::Duration;

/// The attribute that lets [`Backend`] and [`SharedBackend`] implementations write
/// `async fn` (the traits stay object-safe). A re-export of the `async-trait` crate's.
pub use async_trait::async_trait;
pub use memory::{MemoryBackend, SharedMemoryBackend};

/// Where a [`Cache`](crate::Cache) built with
/// [`Cache::with_backend`](crate::Cache::with_backend) keeps its entries.
///
/// Errors are never fatal to a caller: the cache counts them in
/// [`Stats::backend_errors`](crate::Stats::backend_errors), logs them and runs the query.
/// See the [module](self) for an example.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The bytes stored under `key`, or `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError>;

    /// Stores `value` under `key`, replacing any previous value; `ttl` of `None` means no
    /// expiry (the backend may still evict).
    async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), BackendError>;

    /// Deletes every key in `keys`; absent keys are not an error.
    async fn delete(&self, keys: &[String]) -> Result<(), BackendError>;

    /// Deletes every key that starts with `prefix`.
    async fn clear_prefix(&self, prefix: &str) -> Result<(), BackendError>;
}

/// A [`Backend`] many processes share, which keeps table versions and per-table key
/// tracking itself, so that a write through any cache using it makes the entries of all of
/// them stale. Enter it with [`Cache::with_shared_backend`](crate::Cache::with_shared_backend).
///
/// The methods must implement these rules (the conformance suite, `backend::conformance`
/// with the `conformance` feature, checks them):
///
/// - A table's version, per namespace, is a non-zero `u64`. Once a version has been
///   replaced (by [`bump`](SharedBackend::bump)) it never comes back, and a version that
///   was lost (deleted by `clear_prefix`, evicted, a restart without persistence) is
///   recreated at an unpredictable value, never at one a read may have captured before.
/// - `namespace` is the cache's namespace; the backend chooses how to lay out version and
///   tracking keys, but they must not collide with entry keys (`{namespace}:{hex}`) or
///   between tables, whatever the table names contain.
#[async_trait]
pub trait SharedBackend: Backend {
    /// The current version of each of `tables`, in order, creating missing ones. A read
    /// captures these before it runs its query and tags its entry with them.
    async fn versions(&self, namespace: &str, tables: &[&str]) -> Result<Vec<u64>, BackendError>;

    /// The bytes under `key` and the current version of each of `tables` (0 for a table
    /// that has none, which no entry is tagged with), ideally in one round trip: this is
    /// the read path of every hit. The default calls [`get`](Backend::get), then
    /// [`versions`](SharedBackend::versions).
    async fn get_checked(
        &self,
        namespace: &str,
        key: &str,
        tables: &[&str],
    ) -> Result<Checked, BackendError> {
        let bytes = self.get(key).await?;
        let versions = self.versions(namespace, tables).await?;
        Ok((bytes, versions))
    }

    /// Stores `value` under `key` (as [`set`](Backend::set) does) if the version of every
    /// table in `tags` still equals the one given there, and tracks `key` under each of
    /// those tables; a table then tracking more than `max_keys` keys drops its oldest ones
    /// from tracking and deletes them. Should be atomic with respect to
    /// [`bump`](SharedBackend::bump); the cache checks versions on every read anyway.
    async fn set_tracked(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        tags: &[(&str, u64)],
        max_keys: usize,
    ) -> Result<StoreOutcome, BackendError>;

    /// Gives each of `tables` a new version (every entry tagged with an older one is stale
    /// from now on, for every cache sharing this backend) and deletes the keys they track.
    async fn bump(&self, namespace: &str, tables: &[&str]) -> Result<(), BackendError>;

    /// How many keys `table` tracks for invalidation.
    async fn tracked(&self, namespace: &str, table: &str) -> Result<usize, BackendError>;

    /// Whether this backend keeps fill leases ([`try_lease`](SharedBackend::try_lease)):
    /// without them (the default), each instance loads a missing key on its own.
    fn leases(&self) -> bool {
        false
    }

    /// Takes the fill lease of the entry `key` for `ttl`, so that one instance of the
    /// fleet loads an entry that is missing while the others wait for its fill:
    /// `Ok(Some(token))` when the caller may load (and releases with
    /// [`release_lease`](SharedBackend::release_lease)), `Ok(None)` when another caller
    /// holds it. A lease only spares queries: the entry its holder stores is checked like
    /// any other. The default grants every lease: each instance loads on its own.
    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<Option<u64>, BackendError> {
        let _ = (key, ttl);
        Ok(Some(0))
    }

    /// Extends the lease of `key` to `ttl` from now if `token` still holds it; `false`
    /// when it no longer does. The holder renews while its load runs, so a lease can be
    /// short and still outlast a slow query, and a holder that dies stops holding it soon.
    async fn renew_lease(
        &self,
        key: &str,
        token: u64,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let _ = (key, token, ttl);
        Ok(true)
    }

    /// Releases the lease of `key` if `token` still holds it.
    async fn release_lease(&self, key: &str, token: u64) -> Result<(), BackendError> {
        let _ = (key, token);
        Ok(())
    }

    /// Starts pushing to `sink` every invalidation of `namespace` that any process makes
    /// (every [`bump`](SharedBackend::bump), this process's included), for a near cache
    /// ([`Settings::near_cache`](crate::Settings::near_cache)), until
    /// [`InvalidationSink::invalidated`] returns `false`. The contract, which the near
    /// cache's freshness rests on:
    ///
    /// - call [`connected`](InvalidationSink::connected) once every bump made from then on
    ///   is sure to be delivered (the subscription is confirmed), and
    ///   [`disconnected`](InvalidationSink::disconnected) as soon as deliveries may have
    ///   been lost; reconnect by itself, then call `connected` again;
    /// - every [`heartbeat`](InvalidationSink::heartbeat), prove the channel is caught up
    ///   (a message sent the way bumps are, behind which every earlier bump has been
    ///   delivered) and call [`caught_up`](InvalidationSink::caught_up) with the instant
    ///   it was sent.
    ///
    /// The default has no push: a near cache cannot be built on the backend.
    ///
    /// # Errors
    ///
    /// A [`BackendError`] when the backend cannot push invalidations.
    fn subscribe(&self, namespace: &str, sink: InvalidationSink) -> Result<(), BackendError> {
        let _ = (namespace, sink);
        Err(BackendError::new(
            "this backend does not push invalidations",
        ))
    }
}

/// Where a [`SharedBackend`] delivers the invalidations it pushes
/// ([`SharedBackend::subscribe`]): the in-process copies of a near cache. Cheap to clone.
#[derive(Clone)]
pub struct InvalidationSink {
    target: std::sync::Weak<dyn crate::store::PushTarget>,
    heartbeat: Duration,
}

impl InvalidationSink {
    pub(crate) fn new(
        target: std::sync::Weak<dyn crate::store::PushTarget>,
        heartbeat: Duration,
    ) -> InvalidationSink {
        InvalidationSink { target, heartbeat }
    }

    /// `tables` were invalidated by some process: the cache drops its copies of their
    /// reads. `false` once the cache is gone: stop pushing.
    pub fn invalidated(&self, tables: &[&str]) -> bool {
        self.with(|t| t.pushed(tables))
    }

    /// Every bump from now on will be delivered. What was pushed before may have been
    /// lost, so the cache drops every in-process copy and serves them again from here.
    /// `false` once the cache is gone.
    pub fn connected(&self) -> bool {
        self.with(|t| t.connected())
    }

    /// Deliveries may have been lost: no in-process copy is served until
    /// [`connected`](InvalidationSink::connected). `false` once the cache is gone.
    pub fn disconnected(&self) -> bool {
        self.with(|t| t.disconnected())
    }

    /// Every bump made before `as_of` (when the heartbeat that proves it was sent) has
    /// been delivered: copies may be served until `as_of` plus the cache's `near_lease`.
    /// `false` once the cache is gone.
    pub fn caught_up(&self, as_of: std::time::Instant) -> bool {
        self.with(|t| t.caught_up(as_of))
    }

    /// Whether the cache is still there: once it is gone, stop pushing.
    pub fn is_live(&self) -> bool {
        self.target.strong_count() > 0
    }

    /// How often the backend should prove it is caught up.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    fn with(&self, f: impl FnOnce(&dyn crate::store::PushTarget)) -> bool {
        match self.target.upgrade() {
            Some(target) => {
                f(&*target);
                true
            }
            None => false,
        }
    }
}

impl fmt::Debug for InvalidationSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidationSink")
            .field("heartbeat", &self.heartbeat)
            .field("live", &(self.target.strong_count() > 0))
            .finish()
    }
}

/// What [`SharedBackend::get_checked`] returns: the bytes under the key, if any, and the current
/// version of each table asked about, in order (0 for a table without one).
pub type Checked = (Option<Vec<u8>>, Vec<u64>);

/// What [`SharedBackend::set_tracked`] did.
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
