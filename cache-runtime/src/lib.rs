//! A read-through query cache for SQLx.
//!
//! Annotate repository functions with [`cached`] and [`invalidates`] (or call
//! [`Cache::get_or_load`] and [`Cache::invalidate`] directly) and reads are served from
//! memory, or a shared backend, until a write to a table they read makes them stale.
//!
//! Guarantees, each pinned by tests (README, "Guarantees and how they hold"):
//!
//! 1. **No stale read after a completed write.** Every table has a version; a read captures
//!    the versions of its tables before its query runs and tags its entry with them; a
//!    write bumps them once visible, in every cache of the process, however the write
//!    ends (an error, a panic, a dropped future). An entry with an outdated tag is a miss.
//! 2. **Nothing uncommitted is stored.** A read given a connection inside a transaction
//!    neither reads nor stores entries; [`Transaction`] invalidates after `COMMIT`.
//! 3. **Errors are never cached.** `Err` passes through; `None` and empty collections are
//!    cached only when [`Settings::cache_none`] is on.
//! 4. **The cache never breaks a call.** Backend failures and undecodable entries are
//!    misses, counted in [`Stats`] and logged with `tracing`.
//! 5. **Bounded memory.** [`Settings::max_entries`], [`Settings::max_bytes`],
//!    [`Settings::max_keys_per_table`] and [`Settings::max_tables`].
//! 6. **One load per key at a time, and loads end.** Concurrent misses share one query; a
//!    panicking or cancelled leader hands over to a waiter; no one waits longer than
//!    [`Settings::max_load_wait`].
//! 7. **Injective keys.** Two calls share a key exactly when their keyed values (the
//!    arguments, the fields of `self` the body reads) serialize alike. See [`Key`].
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
mod output;
mod settings;
mod sharded;
mod stats;
mod store;
mod tables;
mod transaction;
mod ttl;
mod ttl_grammar;

pub use cache::{Cache, InstallError, global, install};
pub use cache_derive::{CacheEntity, cache_impl, cached, invalidates};
pub use entity::CacheEntity;
pub use key::{Key, KeyError, KeyScope};
pub use output::{CacheValue, LoadOutput};
pub use settings::{Settings, SettingsError};
pub use stats::Stats;
pub use transaction::Transaction;
pub use ttl::{Ttl, TtlError};
