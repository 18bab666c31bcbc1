//! Storage behind a [`Cache`](crate::Cache): the [`Backend`] trait and its in-memory
//! implementation.
//!
//! A backend stores opaque bytes under string keys of the form `{namespace}:{hex key}`,
//! with an optional storage TTL. It knows nothing of tables, versions or types: the cache
//! wraps every value in an envelope carrying those and checks them on the way out, so a
//! backend only has to store and return bytes faithfully (or fail loudly).

mod memory;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use memory::MemoryBackend;

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
