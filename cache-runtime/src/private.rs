//! Support for macro-generated code (`::cache_runtime::__private::...`).
//!
//! Not a stable API: names here change with the macros that use them.

use std::future::Future;
use std::marker::PhantomData;

use crate::key::KeyBuilder;
pub use crate::{Cache, CacheEntity, CacheValue, Key, KeyScope, LoadOutput, Ttl, global};
pub use serde::Serialize;

// ----- #[cached]: keys -----

/// The keyed arguments of one call, encoded one by one with rmp-serde as they are pushed,
/// straight into the key's inline buffer.
///
/// Pushing each argument separately (rather than building one tuple) puts the `Serialize`
/// bound on each argument, so a missing impl is reported at that argument only. rmp values
/// are self-delimiting, so the concatenation is unambiguous.
pub struct KeyArgs {
    builder: KeyBuilder,
    error: Option<String>,
}

impl KeyArgs {
    #[inline]
    #[allow(clippy::new_without_default)]
    pub fn new() -> KeyArgs {
        KeyArgs {
            builder: KeyBuilder::new(),
            error: None,
        }
    }

    #[inline]
    pub fn push<T: KeyArg + ?Sized>(&mut self, value: &T) {
        if self.error.is_none()
            && let Err(e) = self.builder.push(value)
        {
            self.error = Some(e.to_string());
        }
    }

    /// The key of the pushed arguments in `cache`'s namespace, or why there is none.
    #[inline]
    pub fn finish(self, cache: &Cache, scope: &KeyScope) -> Result<Key, String> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(cache.key_from(self.builder, scope)),
        }
    }
}

/// A value that can be part of a cache key: anything `Serialize`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key: it does not implement `serde::Serialize`",
    label = "part of the cache key, so it must implement `serde::Serialize`",
    note = "derive or implement `serde::Serialize` for it, list the parameter in `skip(...)`, \
            or give the key yourself with `key = ...`"
)]
pub trait KeyArg: Serialize {}

impl<T: Serialize + ?Sized> KeyArg for T {}

/// Names the output type `O` of a cached function for the autoref dispatch below:
/// `(&Hit::<O>::new()).hit(..)` is the value of an in-memory hit when `O` is a
/// `LoadOutput`. For any other `O` it is `None` without an error of its own, so a
/// non-cacheable output is reported once, at [`load`].
pub struct Hit<O>(PhantomData<fn() -> O>);

impl<O> Hit<O> {
    #[inline]
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Hit<O> {
        Hit(PhantomData)
    }
}

pub trait CachedHit<O> {
    /// The value of an in-memory hit, if `key` has one that may be served; `None` for
    /// everything else (a miss, a remote store, a bypass), which [`load`] then handles.
    fn hit(&self, cache: &Cache, key: &Result<Key, String>, ttl: &Ttl, uncached: bool)
    -> Option<O>;
}

impl<O: LoadOutput> CachedHit<O> for Hit<O> {
    #[inline]
    fn hit(
        &self,
        cache: &Cache,
        key: &Result<Key, String>,
        ttl: &Ttl,
        uncached: bool,
    ) -> Option<O> {
        match key {
            Ok(key) if !uncached => cache.memory_hit(key, ttl),
            _ => None,
        }
    }
}

pub trait NoHit<O> {
    #[inline]
    fn hit(&self, _: &Cache, _: &Result<Key, String>, _: &Ttl, _: bool) -> Option<O> {
        None
    }
}

impl<O> NoHit<O> for &Hit<O> {}

/// Runs what is left of a cached read after [`Hit`] found no in-memory hit: a remote
/// lookup and the load when the key could be built, else the query uncached (the cache
/// never breaks a call). Boxed, so the generated function's future stays small.
#[inline]
pub fn load<O, F, Fut>(
    cache: &Cache,
    key: Result<Key, String>,
    tables: &[&str],
    ttl: Ttl,
    loader: F,
) -> impl Future<Output = O>
where
    O: LoadOutput,
    F: FnOnce() -> Fut,
    Fut: Future<Output = O>,
{
    load_in(cache, key, tables, ttl, false, loader)
}

// ----- #[cached]: tables and default TTL from the returned entity -----

/// A return type whose rows are a `CacheEntity`: `E`, `Option<E>`, `Vec<E>`, `Result<_, _>`
/// of those. `#[derive(CacheEntity)]` implements it for `E`; the wrappers forward.
#[diagnostic::on_unimplemented(
    message = "#[cached] cannot tell which tables `{Self}` is read from",
    label = "no `CacheEntity` in this return type",
    note = "add `table = \"...\"` or `tables = [...]` to #[cached], or derive CacheEntity on the row type"
)]
pub trait EntityTables {
    const TABLES: &'static [&'static str];
    fn default_ttl() -> Option<Ttl>;
}

impl<T: EntityTables> EntityTables for Option<T> {
    const TABLES: &'static [&'static str] = T::TABLES;
    fn default_ttl() -> Option<Ttl> {
        T::default_ttl()
    }
}

impl<T: EntityTables> EntityTables for Vec<T> {
    const TABLES: &'static [&'static str] = T::TABLES;
    fn default_ttl() -> Option<Ttl> {
        T::default_ttl()
    }
}

impl<T: EntityTables, E> EntityTables for Result<T, E> {
    const TABLES: &'static [&'static str] = T::TABLES;
    fn default_ttl() -> Option<Ttl> {
        T::default_ttl()
    }
}

/// Names the return type `T` of a cached function for the autoref dispatch below:
/// `(&Probe::<T>::new()).entity_ttl()` is the entity's `default_ttl()` when `T` is an
/// `EntityTables`, else `None`.
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    #[inline]
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Probe<T> {
        Probe(PhantomData)
    }
}

pub trait EntityTtl {
    fn entity_ttl(&self) -> Option<Ttl>;
}

impl<T: EntityTables> EntityTtl for Probe<T> {
    #[inline]
    fn entity_ttl(&self) -> Option<Ttl> {
        T::default_ttl()
    }
}

pub trait PlainTtl {
    fn entity_ttl(&self) -> Option<Ttl>;
}

impl<T> PlainTtl for &Probe<T> {
    #[inline]
    fn entity_ttl(&self) -> Option<Ttl> {
        None
    }
}

/// The TTL of a read that names none: its entity's, else the cache's default.
#[inline]
pub fn ttl_or_default(cache: &Cache, entity: Option<Ttl>) -> Ttl {
    entity.unwrap_or(cache.settings().default_ttl)
}

// ----- #[invalidates] -----

/// The output of a write, for the autoref dispatch below: `(&Outcome(&out)).succeeded()` is
/// `is_ok()` for any `Result` (aliases included) and `true` for anything else.
pub struct Outcome<'a, T>(pub &'a T);

pub trait ResultOutcome {
    fn succeeded(&self) -> bool;
}

impl<T, E> ResultOutcome for Outcome<'_, Result<T, E>> {
    #[inline]
    fn succeeded(&self) -> bool {
        self.0.is_ok()
    }
}

pub trait AnyOutcome {
    fn succeeded(&self) -> bool;
}

impl<T> AnyOutcome for &Outcome<'_, T> {
    #[inline]
    fn succeeded(&self) -> bool {
        true
    }
}

/// Invalidates `tables` after a successful write, unless `Settings::invalidate_on_write`
/// is off.
pub async fn invalidate(cache: &Cache, tables: &[&str]) {
    if cache.settings().invalidate_on_write {
        cache.invalidate(tables).await;
    }
}

// ----- transactions -----

/// A parameter of a `#[cached]` function whose type is named `Transaction`, for the autoref
/// dispatch below: `(&TxRead(&*tx)).in_transaction()` is `true` for the cache's
/// `Transaction` and for a `sqlx::Transaction`, `false` for any other type.
///
/// A read through a transaction neither reads nor fills the cache: it may see the
/// transaction's own uncommitted writes, and under `REPEATABLE READ` (MySQL's default, and
/// any SQLite read transaction in WAL mode) its snapshot may predate writes that other
/// connections already see, so its result must not be stored under current versions. And
/// its keys are never filled outside a transaction, so there is nothing to read either.
pub struct TxRead<'a, T: ?Sized>(pub &'a T);

pub trait TransactionRead {
    fn in_transaction(&self) -> bool;
}

impl<DB: sqlx::Database> TransactionRead for TxRead<'_, crate::Transaction<'_, DB>> {
    #[inline]
    fn in_transaction(&self) -> bool {
        true
    }
}

impl<DB: sqlx::Database> TransactionRead for TxRead<'_, sqlx::Transaction<'_, DB>> {
    #[inline]
    fn in_transaction(&self) -> bool {
        true
    }
}

pub trait OtherRead {
    fn in_transaction(&self) -> bool;
}

impl<T: ?Sized> OtherRead for &TxRead<'_, T> {
    #[inline]
    fn in_transaction(&self) -> bool {
        false
    }
}

/// [`load`] for a read that may receive a transaction: through one, `loader` just runs.
#[inline]
pub fn load_in<O, F, Fut>(
    cache: &Cache,
    key: Result<Key, String>,
    tables: &[&str],
    ttl: Ttl,
    in_transaction: bool,
    loader: F,
) -> impl Future<Output = O>
where
    O: LoadOutput,
    F: FnOnce() -> Fut,
    Fut: Future<Output = O>,
{
    Box::pin(cache.slow_path(key, tables, ttl, in_transaction, loader))
}

/// A parameter of an `#[invalidates]` function whose type is named `Transaction`, for the
/// autoref dispatch below: `(&mut TxWrite(&mut *tx)).defer(tables)` registers `tables` on
/// the cache's `Transaction` (to invalidate after `COMMIT`) and returns `true`; for any
/// other type it returns `false` and the function invalidates at once.
pub struct TxWrite<'a, T: ?Sized>(pub &'a mut T);

pub trait CacheTxWrite {
    fn defer(&mut self, tables: &[&str]) -> bool;
}

impl<DB: sqlx::Database> CacheTxWrite for TxWrite<'_, crate::Transaction<'_, DB>> {
    #[inline]
    fn defer(&mut self, tables: &[&str]) -> bool {
        self.0.written(tables);
        true
    }
}

pub trait OtherTxWrite {
    fn defer(&mut self, tables: &[&str]) -> bool;
}

impl<T: ?Sized> OtherTxWrite for &mut TxWrite<'_, T> {
    #[inline]
    fn defer(&mut self, _: &[&str]) -> bool {
        false
    }
}
