//! `Transaction`: a database transaction that invalidates the tables it wrote once it has
//! committed, never before, and not at all when it rolls back.

use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};

use sqlx::Database;

use crate::__private::WriteGuard;
use crate::Cache;

/// A database transaction that remembers which tables it wrote and invalidates them in its
/// [`Cache`] after `COMMIT` succeeds.
///
/// Wraps a [`sqlx::Transaction`] and dereferences to the connection like it does, so
/// queries run with `.execute(&mut *tx)` (or `&mut **tx` through a `&mut Transaction`).
/// Begin one with [`Cache::begin`], or wrap an existing one with [`Cache::transaction`].
///
/// - An `#[invalidates]` function that takes this type (by value, `&` or `&mut`) registers
///   its tables here, before its body runs, instead of invalidating at once: until
///   `COMMIT`, other connections still see the old rows, and a read that caches them is
///   right to. Writes made without the macro are registered with [`Transaction::written`].
/// - So does one given the transaction's connection (`&mut *tx` as `&mut PgConnection`,
///   or as a generic executor or `impl Acquire`): the transaction binds its connection's
///   address whenever it hands it out mutably, and the write looks the connection up. An
///   address cannot prove which transaction a connection is in, so such a write also
///   invalidates as it returns: an extra miss, never a lost invalidation.
/// - [`Transaction::commit`] commits, then invalidates the registered tables (when
///   `Settings::invalidate_on_write` is on). [`Transaction::rollback`], or dropping the
///   transaction without committing (SQLx then rolls it back), invalidates nothing.
/// - A `#[cached]` function given this transaction (or a `sqlx::Transaction`, or `&mut *tx`
///   in any form) runs its query without reading or filling the cache: after a write the transaction
///   sees its own uncommitted rows, which must reach no one else; before one, under
///   `REPEATABLE READ` (MySQL's and MariaDB's default, and SQLite's WAL snapshots) its
///   snapshot may predate writes that other connections already see, so its rows cannot
///   be stored under the current table versions. Read through the pool to use the cache.
///
/// Invalidation reaches every cache of the process. `#[invalidates]` recognises the
/// parameter by its type, whatever it is called. A write function that takes a plain
/// [`sqlx::Transaction`] is a compile error (it cannot know when the transaction commits);
/// take this type instead.
///
/// ```
/// use cache_runtime::{Cache, Settings, Transaction, cached, invalidates};
/// use sqlx::{Sqlite, SqlitePool};
///
/// #[cached(table = "users", ttl = "60s")]
/// async fn name(pool: &SqlitePool, id: i64) -> sqlx::Result<Option<String>> {
///     sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(id).fetch_optional(pool).await
/// }
///
/// // Takes the cache's transaction: `users` is invalidated when it commits.
/// #[invalidates(tables = ["users"])]
/// async fn rename(tx: &mut Transaction<'_, Sqlite>, id: i64, name: &str) -> sqlx::Result<u64> {
///     let done = sqlx::query("UPDATE users SET name = ? WHERE id = ?")
///         .bind(name)
///         .bind(id)
///         .execute(&mut **tx)
///         .await?;
///     Ok(done.rows_affected())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
/// # sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)").execute(&pool).await?;
/// # sqlx::query("INSERT INTO users VALUES (1, 'ada')").execute(&pool).await?;
/// let cache = Cache::new(Settings::default()).unwrap();
/// cache_runtime::install(cache.clone()).unwrap();
/// assert_eq!(name(&pool, 1).await?.as_deref(), Some("ada"));
///
/// let mut tx = cache.begin(&pool).await?;
/// rename(&mut tx, 1, "lovelace").await?;
/// assert!(tx.has_written());
/// assert_eq!(cache.stats().invalidations, 0); // not committed yet
/// tx.commit().await?;                         // COMMIT, then invalidate `users`
/// assert_eq!(cache.stats().invalidations, 1);
/// assert_eq!(name(&pool, 1).await?.as_deref(), Some("lovelace"));
/// # Ok::<(), sqlx::Error>(()) }).unwrap();
/// ```
pub struct Transaction<'c, DB: Database> {
    tx: sqlx::Transaction<'c, DB>,
    cache: Cache,
    /// Behind a lock so that a write function given `&Transaction` registers too, and
    /// shared with [`Binding`] so that one given the connection (`&mut *tx`) does.
    written: Arc<Mutex<Written>>,
    /// Set for a savepoint begun with [`Transaction::begin`]: when it is released, its
    /// tables move to the enclosing transaction, which invalidates them when it commits.
    parent: Option<Arc<Mutex<Written>>>,
    binding: Binding,
}

fn lock(written: &Mutex<Written>) -> MutexGuard<'_, Written> {
    written.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a transaction wrote.
#[derive(Default)]
struct Written {
    /// Registered tables, without duplicates.
    tables: Vec<Box<str>>,
    /// Whether anything was written (also through an enclosing transaction).
    any: bool,
}

impl Written {
    fn add(&mut self, tables: &[&str]) {
        self.any = true;
        for table in tables {
            if !self.tables.iter().any(|t| **t == **table) {
                self.tables.push((*table).into());
            }
        }
    }
}

/// Which open cache [`Transaction`] each connection belongs to, by the connection's
/// address, so that an `#[invalidates]` function given the connection (`&mut *tx`, as a
/// `&mut PgConnection`, an `impl PgExecutor`, an `impl Acquire`) registers its tables on
/// the transaction instead of invalidating before `COMMIT`.
///
/// A transaction binds its connection's address whenever it hands the connection out
/// mutably (`DerefMut`, `AsMut`), and unbinds when it ends. The latest binding of an
/// address wins: while a savepoint borrows its transaction's connection, the savepoint is
/// the one handing it out.
static BINDINGS: LazyLock<Mutex<Bindings>> = LazyLock::new(Mutex::default);

/// Connection address → (transaction id, what it wrote).
type Bindings = HashMap<usize, (u64, Weak<Mutex<Written>>)>;

/// A transaction's entry in [`BINDINGS`].
#[derive(Default)]
struct Binding {
    id: u64,
    /// The address bound, or 0.
    address: usize,
}

impl Binding {
    fn new() -> Binding {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Binding {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            address: 0,
        }
    }

    fn bind<C>(&mut self, conn: &mut C, written: &Arc<Mutex<Written>>) {
        let address = std::ptr::from_mut(conn).addr();
        let mut bindings = BINDINGS.lock().unwrap_or_else(PoisonError::into_inner);
        if self.address != address {
            unbind(&mut bindings, self.address, self.id);
            self.address = address;
        }
        match bindings.get(&address) {
            Some((id, _)) if *id == self.id => {}
            _ => {
                bindings.insert(address, (self.id, Arc::downgrade(written)));
            }
        }
    }
}

fn unbind(bindings: &mut Bindings, address: usize, id: u64) {
    if bindings
        .get(&address)
        .is_some_and(|(bound, _)| *bound == id)
    {
        bindings.remove(&address);
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        if self.address != 0 {
            let mut bindings = BINDINGS.lock().unwrap_or_else(PoisonError::into_inner);
            unbind(&mut bindings, self.address, self.id);
        }
    }
}

/// Registers `tables` on the open cache [`Transaction`] whose connection is `conn`, if
/// any: `true` when one took them.
pub(crate) fn register_on_connection<C>(conn: &C, tables: &[&str]) -> bool {
    let address = std::ptr::from_ref(conn).addr();
    let written = BINDINGS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&address)
        .and_then(|(_, written)| written.upgrade());
    match written {
        Some(written) => {
            lock(&written).add(tables);
            true
        }
        None => false,
    }
}

impl Cache {
    /// Begins a transaction on a connection from `pool` whose written tables are invalidated
    /// in this cache once it commits.
    ///
    /// # Errors
    ///
    /// The [`sqlx::Error`] of acquiring a connection or of `BEGIN`.
    pub async fn begin<DB: Database>(
        &self,
        pool: &sqlx::Pool<DB>,
    ) -> Result<Transaction<'static, DB>, sqlx::Error> {
        Ok(self.transaction(pool.begin().await?))
    }

    /// Wraps a transaction begun with SQLx (`pool.begin()`, `conn.begin()`, or a custom
    /// `BEGIN` from `begin_with`) so that its written tables are invalidated in this cache
    /// once it commits.
    ///
    /// Wrap the outermost transaction: a savepoint wrapped here invalidates when it is
    /// released, before the enclosing transaction commits (use [`Transaction::begin`] for
    /// savepoints instead).
    pub fn transaction<'c, DB: Database>(
        &self,
        tx: sqlx::Transaction<'c, DB>,
    ) -> Transaction<'c, DB> {
        Transaction {
            tx,
            cache: self.clone(),
            written: Arc::default(),
            parent: None,
            binding: Binding::new(),
        }
    }
}

impl<'c, DB: Database> Transaction<'c, DB> {
    /// Registers `tables` as written by this transaction: they are invalidated after it
    /// commits. Marks the transaction as [having written](Transaction::has_written), even
    /// when `tables` is empty.
    ///
    /// `#[invalidates]` functions taking this transaction call it for you; call it for
    /// writes made without them.
    pub fn written(&mut self, tables: &[&str]) {
        self.register(tables);
    }

    /// [`Transaction::written`] through a shared reference (`#[invalidates]` functions
    /// register before their body runs, whatever they take the transaction by).
    pub(crate) fn register(&self, tables: &[&str]) {
        lock(&self.written).add(tables);
    }

    /// Whether this transaction (or the one enclosing this savepoint) has written through
    /// an `#[invalidates]` function or registered a write with [`Transaction::written`].
    pub fn has_written(&self) -> bool {
        lock(&self.written).any
    }

    /// The cache the written tables are invalidated in.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Begins a savepoint in this transaction. Releasing it ([`commit`](Transaction::commit))
    /// hands its written tables to this transaction, which invalidates them when it
    /// commits; rolling it back forgets them.
    ///
    /// # Errors
    ///
    /// The [`sqlx::Error`] of `SAVEPOINT`.
    pub async fn begin(&mut self) -> Result<Transaction<'_, DB>, sqlx::Error> {
        let Transaction {
            tx, cache, written, ..
        } = self;
        let savepoint = <DB::Connection as sqlx::Connection>::begin(&mut **tx).await?;
        Ok(Transaction {
            tx: savepoint,
            cache: cache.clone(),
            written: Arc::new(Mutex::new(Written {
                tables: Vec::new(),
                any: lock(written).any,
            })),
            parent: Some(written.clone()),
            binding: Binding::new(),
        })
    }

    /// Commits the transaction (or releases the savepoint), then invalidates the tables it
    /// wrote, unless `Settings::invalidate_on_write` is off.
    ///
    /// # Errors
    ///
    /// The [`sqlx::Error`] of `COMMIT`. Whether a failed `COMMIT` took effect cannot be
    /// known (the connection may have dropped after the server committed), so the written
    /// tables are invalidated in that case too: an extra miss is harmless, a missed
    /// invalidation is not. For the same reason, when this future is cancelled while
    /// `COMMIT` is in flight, dropping it invalidates every cache of the process at once
    /// (table versions and in-memory entries), and a shared backend's versions from a
    /// spawned task.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let Transaction {
            tx,
            cache,
            written,
            parent,
            binding,
        } = self;
        drop(binding);
        let written = std::mem::take(&mut *lock(&written));
        let tables: Vec<&str> = written.tables.iter().map(|t| &**t).collect();
        let Some(parent) = parent else {
            // Armed before `COMMIT`: when this future is dropped with `COMMIT` in flight, the
            // server may have committed, and the guard invalidates from its drop.
            let guard = WriteGuard::new(&cache, &tables, tables.is_empty());
            let result = tx.commit().await;
            guard.finish().await;
            return result;
        };
        // Handed over first: a release that fails or is cancelled half-way may still have
        // happened, and the enclosing transaction must then invalidate these tables.
        if written.any {
            lock(&parent).add(&tables);
        }
        tx.commit().await
    }

    /// Rolls the transaction (or savepoint) back; nothing is invalidated.
    ///
    /// # Errors
    ///
    /// The [`sqlx::Error`] of `ROLLBACK`.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl<DB: Database> Deref for Transaction<'_, DB> {
    type Target = DB::Connection;

    #[inline]
    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

/// Binds the connection to this transaction as it hands it out, so that an
/// `#[invalidates]` function given the connection registers here.
impl<DB: Database> DerefMut for Transaction<'_, DB> {
    #[inline]
    fn deref_mut(&mut self) -> &mut DB::Connection {
        let conn: &mut DB::Connection = &mut self.tx;
        self.binding.bind(conn, &self.written);
        conn
    }
}

impl<DB: Database> AsMut<DB::Connection> for Transaction<'_, DB> {
    #[inline]
    fn as_mut(&mut self) -> &mut DB::Connection {
        self
    }
}

impl<DB: Database> fmt::Debug for Transaction<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("written", &lock(&self.written).tables)
            .field("has_written", &lock(&self.written).any)
            .field("savepoint", &self.parent.is_some())
            .finish_non_exhaustive()
    }
}
