//! A read-through query cache for SQLx: annotate repository functions with [`cached`] and
//! [`invalidates`] (or call [`Cache::get_or_load`] and [`Cache::invalidate`] directly), and
//! reads are served from memory, or a shared backend, until a write to a table they read
//! makes them stale.
//!
//! ```
//! use cache_runtime::{Cache, Settings, cached, invalidates};
//!
//! #[cached(table = "users", ttl = "60s")]
//! async fn user_name(cache: &Cache, id: i64) -> Result<Option<String>, std::io::Error> {
//!     Ok(Some(format!("user {id}"))) // a query, in real code
//! }
//!
//! #[invalidates(tables = ["users"])]
//! async fn rename(cache: &Cache, id: i64) -> Result<(), std::io::Error> {
//!     Ok(()) // an UPDATE, in real code
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let cache = Cache::new(Settings::default()).unwrap();
//! user_name(&cache, 1).await?;                 // runs the body
//! user_name(&cache, 1).await?;                 // a hit
//! rename(&cache, 1).await?;                    // `users` is invalidated
//! user_name(&cache, 1).await?;                 // runs the body again
//! assert_eq!((cache.stats().hits, cache.stats().loads), (1, 2));
//! # Ok::<(), std::io::Error>(()) }).unwrap();
//! ```
//!
//! The guide (the README) covers keys, transactions, settings, backends and the
//! guarantees, each pinned by tests:
//!
//! 1. **No stale read after a completed write**, in every cache of the process, however
//!    the write ends (an error, a panic, a dropped future).
//! 2. **Nothing uncommitted is stored**: a read given a connection inside a transaction
//!    neither reads nor stores entries; [`Transaction`] invalidates after `COMMIT`.
//! 3. **Errors are never cached**; `None` and empty collections only with
//!    [`Settings::cache_none`].
//! 4. **The cache never breaks a call**: backend failures and undecodable entries are
//!    misses, counted in [`Stats`] and logged with `tracing`.
//! 5. **Bounded memory**: [`Settings::max_entries`], [`Settings::max_bytes`],
//!    [`Settings::max_keys_per_table`], [`Settings::max_tables`].
//! 6. **One load per key at a time, and loads end**: no one waits longer than
//!    [`Settings::max_load_wait`].
//! 7. **Injective keys**: two calls share a key exactly when their keyed values (the
//!    arguments, the fields of `self` the body reads) serialize alike. See [`Key`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
pub mod backend;
mod cache;
mod entity;
mod envelope;
mod flight;
mod fnv;
mod key;
mod metrics;
mod observe;
mod output;
mod rows;
mod settings;
mod settings_env;
mod sharded;
mod stale;
mod stats;
mod store;
mod tables;
mod transaction;
mod ttl;
mod ttl_grammar;

pub use cache::{Cache, InstallError, global, install};
pub use cache_derive::{CacheEntity, cache_impl, cached, cached_query, invalidates};
pub use entity::CacheEntity;
pub use key::{Key, KeyError, KeyScope};
pub use observe::{FunctionStats, Outcome, Served, observe};
pub use output::{CacheValue, LoadOutput};
pub use rows::{ROW_BUCKETS, RowId, row_tags};
pub use settings::{Settings, SettingsError};
pub use settings_env::EnvError;
pub use stats::Stats;
pub use transaction::Transaction;
pub use ttl::{Ttl, TtlError};
