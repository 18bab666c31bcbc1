//! SQLite: every write through a pool's connections invalidates its tables at commit.
//!
//! [`pool_options`] gives `SqlitePoolOptions` whose every new connection gets three hooks:
//! SQLite's update hook notes each table a statement changes, the rollback hook forgets
//! them, and the WAL hook (called by SQLite *after* a commit, before the committing call
//! returns) invalidates them. So a write, annotated with `#[invalidates]` or not, has
//! invalidated its tables in every cache of the process by the time it returns, and never
//! before its rows are visible. An authorizer turns off SQLite's truncate shortcut (a
//! `DELETE` without `WHERE` that would otherwise call no update hook). Table names are
//! invalidated as declared and in lower case.
//!
//! Limits, from SQLite: the update hook does not report `WITHOUT ROWID` tables or virtual
//! tables (FTS5 reports its shadow tables): write those under `#[invalidates]`. It needs
//! the WAL journal mode (a connection in another mode is refused); a later `PRAGMA
//! wal_autocheckpoint` replaces the hook, and a commit that touches only an attached
//! database in another mode is reported with the next one. `pool_options` sets
//! `after_connect`: to add your own, call [`install_hooks`] from it. Writes from other
//! processes are not seen: SQLite tells only the connection that wrote.
//!
//! ```no_run
//! # async fn demo(cache: cache_runtime::Cache) -> Result<(), sqlx::Error> {
//! use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
//!
//! let options = SqliteConnectOptions::new()
//!     .filename("app.db")
//!     .create_if_missing(true)
//!     .journal_mode(SqliteJournalMode::Wal);
//! let pool = cache_watch::sqlite::pool_options(cache).connect_with(options).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_void};
use std::sync::{Arc, Mutex, PoisonError};

use cache_runtime::Cache;
use sqlx::sqlite::{SqliteConnection, SqlitePoolOptions};

/// Pool options whose connections invalidate `cache` (and every cache of the process) at
/// each commit, for the tables it wrote. Call it inside a Tokio runtime.
pub fn pool_options(cache: Cache) -> SqlitePoolOptions {
    SqlitePoolOptions::new().after_connect(move |conn, _| {
        let cache = cache.clone();
        Box::pin(async move { install_hooks(conn, cache).await })
    })
}

/// Installs the hooks on one connection (what [`pool_options`] does for each).
///
/// # Errors
///
/// `sqlx::Error::Configuration` when the connection is not in WAL journal mode (SQLite
/// calls the hook that runs after a commit only then); a database error from the check.
pub async fn install_hooks(conn: &mut SqliteConnection, cache: Cache) -> Result<(), sqlx::Error> {
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(sqlx::Error::Configuration(
            format!(
                "cache-watch's SQLite hooks need the WAL journal mode (this connection uses \
                 {mode:?}): connect with `.journal_mode(SqliteJournalMode::Wal)`"
            )
            .into(),
        ));
    }
    // The connection's checkpoint threshold, which the WAL hook takes over (0: never).
    let checkpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
        .fetch_one(&mut *conn)
        .await?;
    let state = Arc::new(State {
        cache,
        runtime: tokio::runtime::Handle::current(),
        touched: Mutex::new(BTreeSet::new()),
        checkpoint: c_int::try_from(checkpoint).unwrap_or(CHECKPOINT_PAGES),
    });
    let mut handle = conn.lock_handle().await?;
    let on_update = Arc::clone(&state);
    handle.set_update_hook(move |change| {
        let table = if change.database == "main" {
            change.table.to_owned()
        } else {
            format!("{}.{}", change.database, change.table)
        };
        // Reads are tagged by the name as written in their SQL, folded to lower case when
        // unquoted: `CREATE TABLE Users` must meet `FROM users`.
        on_update.lock().extend(crate::tags_of(&table));
    });
    let on_rollback = Arc::clone(&state);
    handle.set_rollback_hook(move || on_rollback.lock().clear());
    // One reference for SQLite's hook, for the connection's life. It is not reclaimed when
    // the connection closes (sqlx cannot tell this crate): a few dozen bytes per
    // connection ever opened.
    let arg = Arc::into_raw(state) as *mut c_void;
    // SAFETY: the handle is locked and valid; `wal_hook` and `authorize` match SQLite's
    // signatures, `arg` stays valid for ever (see above), and `authorize` uses no argument.
    unsafe {
        let db = handle.as_raw_handle().as_ptr();
        libsqlite3_sys::sqlite3_wal_hook(db, Some(wal_hook), arg);
        libsqlite3_sys::sqlite3_set_authorizer(db, Some(authorize), std::ptr::null_mut());
    }
    Ok(())
}

struct State {
    cache: Cache,
    runtime: tokio::runtime::Handle,
    /// Tables the open transaction changed.
    touched: Mutex<BTreeSet<String>>,
    /// Checkpoint once the WAL holds this many pages (the connection's setting).
    checkpoint: c_int,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.touched.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// SQLite's default: a checkpoint once the WAL holds this many pages. A WAL hook replaces
/// the automatic checkpoint, so this one does it.
const CHECKPOINT_PAGES: c_int = 1000;

/// SQLite's authorizer: allows everything, but answers `SQLITE_IGNORE` for a `DELETE`,
/// which makes SQLite delete row by row (calling the update hook) instead of taking its
/// truncate shortcut (which calls none).
unsafe extern "C" fn authorize(
    _: *mut c_void,
    action: c_int,
    _: *const c_char,
    _: *const c_char,
    _: *const c_char,
    _: *const c_char,
) -> c_int {
    if action == libsqlite3_sys::SQLITE_DELETE {
        libsqlite3_sys::SQLITE_IGNORE
    } else {
        libsqlite3_sys::SQLITE_OK
    }
}

/// Called by SQLite after each commit in WAL mode, on the committing connection's thread.
unsafe extern "C" fn wal_hook(
    arg: *mut c_void,
    db: *mut libsqlite3_sys::sqlite3,
    name: *const c_char,
    pages: c_int,
) -> c_int {
    // SAFETY: `arg` is the `Arc<State>` leaked by `install_hooks`.
    let state = unsafe { &*(arg as *const State) };
    let tables: Vec<String> = std::mem::take(&mut *state.lock()).into_iter().collect();
    if !tables.is_empty() {
        let names: Vec<&str> = tables.iter().map(String::as_str).collect();
        state.cache.invalidate_from_hook(&names, &state.runtime);
    }
    if state.checkpoint > 0 && pages >= state.checkpoint {
        // SAFETY: SQLite passes its own handle and database name.
        unsafe {
            libsqlite3_sys::sqlite3_wal_checkpoint(db, name);
        }
    }
    libsqlite3_sys::SQLITE_OK
}
