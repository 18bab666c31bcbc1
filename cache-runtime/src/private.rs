//! Support for macro-generated code (`::cache_runtime::__private::...`).
//!
//! Not a stable API: names here change with the macros that use them.

use std::future::Future;
use std::marker::PhantomData;

use sqlx::Connection as _;

use crate::key::KeyBuilder;
pub use crate::{Cache, CacheEntity, CacheValue, Key, KeyScope, LoadOutput, Ttl, global};
pub use serde::Serialize;

// ----- #[cached]: keys -----

/// The parameters of one call: the keyed ones encoded one by one as they are added,
/// straight into the key's inline buffer, and whether a database handle among them may be
/// inside a transaction.
///
/// Adding each parameter separately (rather than building one tuple) puts the `Serialize`
/// bound on each, so a missing impl is reported at that parameter only. Encoded values are
/// self-delimiting, so the concatenation is unambiguous.
pub struct KeyArgs {
    builder: KeyBuilder,
    error: Option<String>,
    uncached: bool,
    row: Option<i128>,
    windows: Option<Partial>,
}

/// A function's own stale windows: `swr`, `stale_on_error`, `refresh_ahead`, each over the
/// cache's setting when given.
type Partial = (
    Option<std::time::Duration>,
    Option<std::time::Duration>,
    Option<std::time::Duration>,
);

impl KeyArgs {
    #[inline]
    #[allow(clippy::new_without_default)]
    pub fn new() -> KeyArgs {
        KeyArgs {
            builder: KeyBuilder::new(),
            error: None,
            uncached: false,
            row: None,
            windows: None,
        }
    }

    /// The function's stale windows (`swr`, `stale_on_error`, `refresh_ahead`), in place
    /// of the cache's settings.
    #[inline]
    pub fn windows(
        &mut self,
        swr: Option<std::time::Duration>,
        on_error: Option<std::time::Duration>,
        ahead: Option<std::time::Duration>,
    ) {
        self.windows = Some((swr, on_error, ahead));
    }

    /// The read is of one row of its table, by this id (`None`: an id that is not an
    /// integer, and the read follows the whole table).
    #[inline]
    pub fn row(&mut self, id: Option<i128>) {
        self.row = id;
    }

    /// Adds one parameter, as classified by [`Arg`]: keyed, or a handle whose transaction
    /// state counts.
    #[inline]
    pub fn add<T: ?Sized, P: KeyPart<T>>(&mut self, part: P) {
        part.add_to(self);
    }

    /// Looks at a parameter that is not keyed (`skip(...)`, or `key = ...` given): only a
    /// handle's transaction state counts.
    #[inline]
    pub fn probe<P: Probe>(&mut self, part: P) {
        part.probe(self);
    }

    /// Adds a value to the key (`key = ...`).
    #[inline]
    pub fn push<T: KeyArg + ?Sized>(&mut self, value: &T) {
        if self.error.is_none()
            && let Err(e) = self.builder.push(value)
        {
            self.error = Some(e.to_string());
        }
    }

    /// The key of the added arguments in `cache`'s namespace (or why there is none), for
    /// the function instance `scope` ([`KeyScope::instance`]).
    #[inline]
    pub fn finish(self, cache: &Cache, scope: u32) -> Call {
        Call {
            key: match self.error {
                Some(e) => Err(e),
                None => Ok(cache.key_from(self.builder, scope)),
            },
            uncached: self.uncached,
            row: self.row,
            windows: self.windows,
        }
    }
}

/// One call of a cached function: its key, whether it must run uncached (a handle it
/// was given may be inside a transaction), and the row it reads, if one by id.
pub struct Call {
    key: Result<Key, String>,
    uncached: bool,
    row: Option<i128>,
    windows: Option<Partial>,
}

impl Call {
    fn windows(&self, cache: &Cache) -> Windows {
        match self.windows {
            None => cache.windows(),
            Some((swr, on_error, ahead)) => cache.windows().with(swr, on_error, ahead),
        }
    }

    #[inline]
    fn early(&self, cache: &Cache) -> u64 {
        match self.windows {
            None => cache.early(),
            Some(_) => self.windows(cache).early_nanos(),
        }
    }
}

pub use crate::stale::Windows;

// ----- row-level invalidation: an id, by its type -----
//
// `(&RowProbe(&id)).row()` is `Some` for a `RowId` (the integers, a user's newtype), and
// `None` for anything else: the read or write then follows the whole table.

pub use crate::rows::WrittenRows;

/// A value a read or write names its row by.
pub struct RowProbe<'a, T: ?Sized>(pub &'a T);

pub trait KnownRow {
    fn row(&self) -> Option<i128>;
}

impl<T: crate::RowId + ?Sized> KnownRow for RowProbe<'_, T> {
    #[inline]
    fn row(&self) -> Option<i128> {
        Some(self.0.row_id())
    }
}

pub trait UnknownRow {
    #[inline]
    fn row(&self) -> Option<i128> {
        None
    }
}

impl<T: ?Sized> UnknownRow for &RowProbe<'_, T> {}

/// A value that can be part of a cache key: anything `Serialize`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key: it does not implement `serde::Serialize`",
    label = "part of the cache key, so it must implement `serde::Serialize`",
    note = "derive or implement `serde::Serialize` for it, list the parameter in `skip(...)`, \
            or give the key yourself with `key = ...`; for a field of `self` the body reads, \
            write `skip(self)` or `self_key = ...`"
)]
pub trait KeyArg: Serialize {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + ?Sized> KeyArg for T {}

// ----- #[cached]: what each parameter is, by its type -----
//
// `(&&&&&Arg(&param)).__param()` picks, by autoref specialization, the first of these that
// the parameter's type satisfies (in a generic function, that its bounds prove):
//
// 1. an SQLx executor (`&Pool`, `&mut PgConnection`, `impl PgExecutor<'_>`, `E: Executor`);
// 2. an `Acquire` (`&mut Transaction`, `&mut PoolConnection`, `impl Acquire<'_>`);
// 3. a known handle by value or behind `&`, `&mut`, `Box`, `Arc` (`Pool`, `PoolConnection`,
//    `sqlx::Transaction`, the cache's `Transaction`, a `Cache`);
// 4. a connection by value;
// 5. anything else: keyed, so it must be `Serialize`.
//
// Handles are never keyed. Whether one may be inside a transaction is asked of the value:
// a read through one neither reads nor stores entries.

/// A parameter (or a field of `self` the body reads) to classify.
pub struct Arg<'a, T: ?Sized>(pub &'a T);

/// A keyed parameter.
pub struct Keyed<'a, T: ?Sized>(&'a T);

/// A database handle (or a cache): not keyed.
pub struct Handle {
    /// It may be inside a transaction: the read runs uncached.
    maybe_in_transaction: bool,
}

pub trait ExecutorParam {
    fn __param(&self) -> Handle;
}

impl<'c, T: sqlx::Executor<'c>> ExecutorParam for &&&&Arg<'_, T> {
    #[inline]
    fn __param(&self) -> Handle {
        Handle {
            maybe_in_transaction: handle_state::<T, T::Database>(self.0),
        }
    }
}

pub trait AcquireParam {
    fn __param(&self) -> Handle;
}

impl<'c, T: sqlx::Acquire<'c>> AcquireParam for &&&Arg<'_, T> {
    #[inline]
    fn __param(&self) -> Handle {
        Handle {
            maybe_in_transaction: handle_state::<T, T::Database>(self.0),
        }
    }
}

pub trait HandleParam {
    fn __param(&self) -> Handle;
}

impl<T: KnownHandle + ?Sized> HandleParam for &&Arg<'_, T> {
    #[inline]
    fn __param(&self) -> Handle {
        Handle {
            maybe_in_transaction: self.0.maybe_in_transaction(),
        }
    }
}

pub trait ConnectionParam {
    fn __param(&self) -> Handle;
}

impl<T: sqlx::Connection> ConnectionParam for &Arg<'_, T> {
    #[inline]
    fn __param(&self) -> Handle {
        Handle {
            maybe_in_transaction: self.0.is_in_transaction(),
        }
    }
}

pub trait KeyedParam<'a, T: ?Sized> {
    fn __param(&self) -> Keyed<'a, T>;
}

impl<'a, T: ?Sized> KeyedParam<'a, T> for Arg<'a, T> {
    #[inline]
    fn __param(&self) -> Keyed<'a, T> {
        Keyed(self.0)
    }
}

/// Whether a handle of type `T` (an executor or `Acquire` over `DB`) may be inside a
/// transaction, told by its concrete type, even in a generic function: a pool never is, a
/// connection says, and an executor of any other type (a wrapper this crate does not know)
/// is assumed to be.
fn handle_state<T, DB: sqlx::Database>(handle: &T) -> bool {
    if typeid::of::<T>() == typeid::of::<&sqlx::Pool<DB>>() {
        return false;
    }
    as_connection::<T, DB>(handle).is_none_or(sqlx::Connection::is_in_transaction)
}

/// The connection a handle of type `T` is, told by its concrete type: `&mut
/// DB::Connection`, `&mut PoolConnection<DB>` or `&mut sqlx::Transaction<DB>`.
fn as_connection<T, DB: sqlx::Database>(handle: &T) -> Option<&DB::Connection> {
    let ty = typeid::of::<T>();
    let handle = std::ptr::from_ref(handle);
    // SAFETY (each arm): `T` is the type cast to, up to lifetimes, which do not change a
    // type's layout; the reference read here does not outlive `handle`.
    if ty == typeid::of::<&mut DB::Connection>() {
        Some(unsafe { &**handle.cast::<&mut DB::Connection>() })
    } else if ty == typeid::of::<&mut sqlx::pool::PoolConnection<DB>>() {
        Some(unsafe { &**handle.cast::<&mut sqlx::pool::PoolConnection<DB>>() })
    } else if ty == typeid::of::<&mut sqlx::Transaction<'_, DB>>() {
        Some(unsafe { &**handle.cast::<&mut sqlx::Transaction<'_, DB>>() })
    } else {
        None
    }
}

/// SQLx handles (and caches) a cached function may take by value or behind a pointer.
pub trait KnownHandle {
    fn maybe_in_transaction(&self) -> bool;
}

impl<DB: sqlx::Database> KnownHandle for sqlx::Pool<DB> {
    fn maybe_in_transaction(&self) -> bool {
        false
    }
}

impl<DB: sqlx::Database> KnownHandle for sqlx::pool::PoolConnection<DB> {
    fn maybe_in_transaction(&self) -> bool {
        self.is_in_transaction()
    }
}

impl<DB: sqlx::Database> KnownHandle for sqlx::Transaction<'_, DB> {
    fn maybe_in_transaction(&self) -> bool {
        true
    }
}

impl<DB: sqlx::Database> KnownHandle for crate::Transaction<'_, DB> {
    fn maybe_in_transaction(&self) -> bool {
        true
    }
}

impl KnownHandle for Cache {
    fn maybe_in_transaction(&self) -> bool {
        false
    }
}

macro_rules! handle_pointers {
    ($($pointer:ty),*) => {$(
        impl<T: KnownHandle + ?Sized> KnownHandle for $pointer {
            fn maybe_in_transaction(&self) -> bool {
                (**self).maybe_in_transaction()
            }
        }
    )*};
}

handle_pointers!(&T, &mut T, Box<T>, std::sync::Arc<T>);

/// What a classified parameter adds to the key.
#[diagnostic::on_unimplemented(
    message = "`{T}` cannot be part of a cache key: it does not implement `serde::Serialize`",
    label = "part of the cache key, so it must implement `serde::Serialize`",
    note = "derive or implement `serde::Serialize` for it, list the parameter in `skip(...)`, \
            or give the key yourself with `key = ...`; for a field of `self` the body reads, \
            write `skip(self)` or `self_key = ...`"
)]
pub trait KeyPart<T: ?Sized> {
    fn add_to(self, args: &mut KeyArgs);
}

#[diagnostic::do_not_recommend]
impl<T: KeyArg + ?Sized> KeyPart<T> for Keyed<'_, T> {
    #[inline]
    fn add_to(self, args: &mut KeyArgs) {
        args.push(self.0);
    }
}

impl KeyPart<Handle> for Handle {
    #[inline]
    fn add_to(self, args: &mut KeyArgs) {
        args.uncached |= self.maybe_in_transaction;
    }
}

/// A parameter that is not keyed: a handle's state still counts.
pub trait Probe {
    fn probe(self, args: &mut KeyArgs);
}

impl<T: ?Sized> Probe for Keyed<'_, T> {
    #[inline]
    fn probe(self, _: &mut KeyArgs) {}
}

impl Probe for Handle {
    #[inline]
    fn probe(self, args: &mut KeyArgs) {
        args.uncached |= self.maybe_in_transaction;
    }
}

// ----- #[cached]: the call -----

/// Names the output type `O` of a cached function for the autoref dispatch below:
/// `(&Hit::<O>::new()).hit(..)` is the value of an in-memory hit when `O` is a
/// `LoadOutput`, and `(&Hit::<O>::new()).load(..)` the rest of the read. For any other `O`
/// both compile without an error of their own (`hit` is `None`, `load` runs the body), so
/// a non-cacheable output is reported once, by [`assert_output`].
pub struct Hit<O>(PhantomData<fn() -> O>);

impl<O> Hit<O> {
    #[inline]
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Hit<O> {
        Hit(PhantomData)
    }
}

pub trait CachedHit<O> {
    /// The value of an in-memory hit, if `call` has one that may be served; `None` for
    /// everything else (a miss, a remote store, a bypass), which `load` then handles.
    fn hit(&self, cache: &Cache, call: &Call, ttl: &Ttl) -> Option<O>;

    /// What is left of a cached read after `hit` found no in-memory hit: a remote lookup
    /// and the load when the key could be built and the call may be cached, else the body
    /// uncached (the cache never breaks a call). Boxed, so the generated function's
    /// future stays small.
    fn load<F, Fut>(
        &self,
        cache: &Cache,
        call: Call,
        tables: &[&str],
        ttl: Ttl,
        loader: F,
    ) -> impl Future<Output = O>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>;
}

impl<O: LoadOutput> CachedHit<O> for Hit<O> {
    #[inline]
    fn hit(&self, cache: &Cache, call: &Call, ttl: &Ttl) -> Option<O> {
        match &call.key {
            Ok(key) if !call.uncached => cache.memory_hit(key, ttl, call.early(cache)),
            _ => None,
        }
    }

    #[inline]
    fn load<F, Fut>(
        &self,
        cache: &Cache,
        call: Call,
        tables: &[&str],
        ttl: Ttl,
        loader: F,
    ) -> impl Future<Output = O>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        Box::pin(read(cache, call, tables, ttl, loader))
    }
}

/// The rest of a cached read: a read of one row follows that row (and the all-rows tag of
/// its table) rather than the table, see `crate::rows`.
async fn read<O, F, Fut>(cache: &Cache, call: Call, tables: &[&str], ttl: Ttl, loader: F) -> O
where
    O: LoadOutput,
    F: FnOnce() -> Fut,
    Fut: Future<Output = O>,
{
    let windows = call.windows(cache);
    let Some(id) = call.row.filter(|_| cache.settings().row_level) else {
        return cache
            .slow_path(call.key, tables, ttl, windows, call.uncached, loader)
            .await;
    };
    let tags: Vec<String> = tables.iter().flat_map(|t| crate::row_tags(t, id)).collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    cache
        .slow_path(call.key, &tags, ttl, windows, call.uncached, loader)
        .await
}

pub trait NoHit<O> {
    #[inline]
    fn hit(&self, _: &Cache, _: &Call, _: &Ttl) -> Option<O> {
        None
    }

    #[inline]
    fn load<F, Fut>(&self, _: &Cache, _: Call, _: &[&str], _: Ttl, loader: F) -> Fut
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        loader()
    }
}

impl<O> NoHit<O> for &Hit<O> {}

/// The read of `cached_query!`: an in-memory hit, or the rest of the read, for a fetch's
/// `Result` (its `Ok` value must be a [`CacheValue`]).
pub async fn cached_query<O, F, Fut>(
    cache: &Cache,
    call: Call,
    tables: &[&str],
    ttl: Ttl,
    loader: F,
) -> O
where
    O: LoadOutput,
    F: FnOnce() -> Fut,
    Fut: Future<Output = O>,
{
    let hit = Hit::<O>::new();
    if let Some(value) = CachedHit::hit(&hit, cache, &call, &ttl) {
        return value;
    }
    CachedHit::load(&hit, cache, call, tables, ttl, loader).await
}

/// Checks, once and at the return type, that a cached function's output can be cached.
#[inline]
pub const fn assert_output<O: LoadOutput>() {}

// ----- #[cached]: tables and default TTL from the returned entity -----

/// A return type whose rows are a `CacheEntity`: `E`, `Option<E>`, `Vec<E>`, `Result<_, _>`
/// of those. `#[derive(CacheEntity)]` implements it for `E`; the wrappers forward.
#[diagnostic::on_unimplemented(
    message = "#[cached] cannot tell which tables `{Self}` is read from",
    label = "no `CacheEntity` in this return type",
    note = "#[cached] reads the tables from the SQL string literals in its body; for SQL built at run time (a `format!`, a `const`, a `QueryBuilder`), add `table = \"...\"` or `tables = [...]` to #[cached], or derive CacheEntity on the row type"
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
pub struct EntityProbe<T>(PhantomData<fn() -> T>);

impl<T> EntityProbe<T> {
    #[inline]
    #[allow(clippy::new_without_default)]
    pub const fn new() -> EntityProbe<T> {
        EntityProbe(PhantomData)
    }
}

pub trait EntityTtl {
    fn entity_ttl(&self) -> Option<Ttl>;
}

impl<T: EntityTables> EntityTtl for EntityProbe<T> {
    #[inline]
    fn entity_ttl(&self) -> Option<Ttl> {
        T::default_ttl()
    }
}

pub trait PlainTtl {
    fn entity_ttl(&self) -> Option<Ttl>;
}

impl<T> PlainTtl for &EntityProbe<T> {
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

/// Invalidates a write's tables however its body ends: [`WriteGuard::finish`] after it
/// returned (`Ok` or `Err`: an error does not prove that nothing was written), or, when the
/// body panicked or its future was dropped once started (a client that went away, a
/// timeout), when the guard is dropped. An extra miss is harmless; a missed invalidation is
/// not.
///
/// [`Transaction::commit`](crate::Transaction::commit) holds one across `COMMIT` the same
/// way: dropped with `COMMIT` in flight, it invalidates, since the server may have committed.
pub struct WriteGuard<'a> {
    cache: &'a Cache,
    tables: &'a [&'a str],
    rows: WrittenRows<'a>,
    armed: bool,
}

impl<'a> WriteGuard<'a> {
    /// A guard for a write to `tables` through `cache`; `deferred` when a cache
    /// `Transaction` took the tables (it invalidates them after `COMMIT`), and nothing is
    /// armed when `Settings::invalidate_on_write` is off.
    #[inline]
    pub fn new(cache: &'a Cache, tables: &'a [&'a str], deferred: bool) -> WriteGuard<'a> {
        WriteGuard::with_rows(cache, tables, deferred, WrittenRows::new())
    }

    /// As [`WriteGuard::new`], for a write that touches `rows` (found before it runs): the
    /// tables all of whose rows are known are invalidated row by row.
    #[inline]
    pub fn with_rows(
        cache: &'a Cache,
        tables: &'a [&'a str],
        deferred: bool,
        rows: WrittenRows<'a>,
    ) -> WriteGuard<'a> {
        WriteGuard {
            cache,
            tables,
            rows,
            armed: !deferred && cache.settings().invalidate_on_write,
        }
    }

    /// The body returned: invalidates (in every cache of this process).
    pub async fn finish(mut self) {
        if self.armed {
            self.cache.invalidate_write(self.tables, &self.rows).await;
            self.armed = false;
        }
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.cache.invalidate_now(self.tables, &self.rows);
        }
    }
}

// ----- #[invalidates]: transactions, by type -----

/// A parameter of an `#[invalidates]` function (or a field of `self` its body reads), for
/// the autoref dispatch below: `deferred((&&&&&TxWrite(&param)).defer(tables))` is `true`
/// when something took `tables` to invalidate after `COMMIT`, `false` when the write
/// invalidates as it returns, and a compile error for what cannot know its `COMMIT`:
///
/// 1. the cache's `Transaction` (by value or behind any reference) takes them;
/// 2. a plain `sqlx::Transaction` is a compile error;
/// 3. an executor, 4. an `Acquire`: `false`, and a connection a cache `Transaction`
///    handed out (`&mut *tx`) passes them to it as well; another connection inside a
///    transaction is warned about (see `connection_write`);
/// 5. anything else: `false`.
pub struct TxWrite<'a, T: ?Sized>(pub &'a T);

/// The cache's `Transaction`, by value or behind `&`, `&mut`.
pub trait CacheTx {
    fn register(&self, tables: &[&str]);
}

impl<DB: sqlx::Database> CacheTx for crate::Transaction<'_, DB> {
    fn register(&self, tables: &[&str]) {
        self.register(tables);
    }
}

impl<T: CacheTx + ?Sized> CacheTx for &T {
    fn register(&self, tables: &[&str]) {
        (**self).register(tables);
    }
}

impl<T: CacheTx + ?Sized> CacheTx for &mut T {
    fn register(&self, tables: &[&str]) {
        (**self).register(tables);
    }
}

/// A plain `sqlx::Transaction`, by value or behind `&`, `&mut`.
pub trait SqlxTx {}

impl<DB: sqlx::Database> SqlxTx for sqlx::Transaction<'_, DB> {}
impl<T: SqlxTx + ?Sized> SqlxTx for &T {}
impl<T: SqlxTx + ?Sized> SqlxTx for &mut T {}

pub trait CacheTxWrite {
    fn defer(&self, tables: &[&str]) -> bool;
}

impl<T: CacheTx + ?Sized> CacheTxWrite for &&&&TxWrite<'_, T> {
    #[inline]
    fn defer(&self, tables: &[&str]) -> bool {
        self.0.register(tables);
        true
    }
}

/// What `#[invalidates]` makes of a plain `sqlx::Transaction` parameter: a compile error.
pub struct PlainTransaction;

pub trait PlainTxWrite {
    fn defer(&self, tables: &[&str]) -> PlainTransaction;
}

impl<T: SqlxTx + ?Sized> PlainTxWrite for &&&TxWrite<'_, T> {
    #[inline]
    fn defer(&self, _: &[&str]) -> PlainTransaction {
        PlainTransaction
    }
}

pub trait ExecutorTxWrite {
    fn defer(&self, tables: &[&str]) -> bool;
}

impl<'c, T: sqlx::Executor<'c>> ExecutorTxWrite for &&TxWrite<'_, T> {
    #[inline]
    #[track_caller]
    fn defer(&self, tables: &[&str]) -> bool {
        connection_write::<T, T::Database>(self.0, tables)
    }
}

pub trait AcquireTxWrite {
    fn defer(&self, tables: &[&str]) -> bool;
}

impl<'c, T: sqlx::Acquire<'c>> AcquireTxWrite for &TxWrite<'_, T> {
    #[inline]
    #[track_caller]
    fn defer(&self, tables: &[&str]) -> bool {
        connection_write::<T, T::Database>(self.0, tables)
    }
}

/// A write through a connection, told by the handle's concrete type (`&mut
/// DB::Connection`, `&mut PoolConnection<DB>`, `&mut sqlx::Transaction<DB>`), even in a
/// generic function. Always `false`: the write invalidates as it returns. A connection
/// inside a transaction is also looked up among the connections cache
/// [`Transaction`](crate::Transaction)s handed out: that transaction takes the tables too,
/// and invalidates them again after its `COMMIT`, which is the invalidation that counts
/// (a read between the return and the `COMMIT` still sees the old rows). Invalidating at
/// return as well costs an extra miss and makes a binding left behind by a transaction
/// that moved harmless: the write it wrongly took was invalidated anyway. A connection of
/// a transaction no cache `Transaction` handed out cannot say when it commits: a warning
/// names the call site once.
#[track_caller]
fn connection_write<T, DB: sqlx::Database>(handle: &T, tables: &[&str]) -> bool {
    let Some(conn) = as_connection::<T, DB>(handle) else {
        return false;
    };
    if conn.is_in_transaction() && !crate::transaction::register_on_connection(conn, tables) {
        warn_unbound_transaction(std::panic::Location::caller(), tables);
    }
    false
}

/// Warns, once per call site, of a write through a connection inside a transaction the
/// cache does not know.
fn warn_unbound_transaction(at: &'static std::panic::Location<'static>, tables: &[&str]) {
    static WARNED: std::sync::Mutex<Vec<&'static std::panic::Location<'static>>> =
        std::sync::Mutex::new(Vec::new());
    {
        let mut warned = WARNED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if warned.contains(&at) {
            return;
        }
        warned.push(at);
    }
    tracing::warn!(target: "cache_runtime", %at, ?tables,
        "#[invalidates] wrote through a connection inside a transaction the cache does not \
         know: it invalidates now, before COMMIT, and a read made in between may cache the \
         old rows until their TTL; begin the transaction with `cache.begin(&pool)` (or wrap \
         it with `cache.transaction(tx)`) and pass `&mut *tx`");
}

pub trait OtherTxWrite {
    fn defer(&self, tables: &[&str]) -> bool;
}

impl<T: ?Sized> OtherTxWrite for TxWrite<'_, T> {
    #[inline]
    fn defer(&self, _: &[&str]) -> bool {
        false
    }
}

/// Whether a parameter took the write's tables.
#[diagnostic::on_unimplemented(
    message = "#[invalidates] cannot know when a `sqlx::Transaction` commits",
    label = "a plain `sqlx::Transaction`",
    note = "invalidating when this function returns would come before `COMMIT`, and a read \
            in between would cache the old rows for good; take the cache's \
            `cache_runtime::Transaction` instead (`cache.begin(&pool)`, or \
            `cache.transaction(tx)` around this one): it invalidates after `COMMIT`"
)]
pub trait Deferral {
    fn deferred(self) -> bool;
}

impl Deferral for bool {
    #[inline]
    fn deferred(self) -> bool {
        self
    }
}

#[inline]
pub fn deferred<D: Deferral>(deferral: D) -> bool {
    deferral.deferred()
}
