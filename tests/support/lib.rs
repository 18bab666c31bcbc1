//! Helpers shared by the workspace's examples and integration tests: which database servers
//! to test against, private table names per run, and cleanup that also runs on failure.
//!
//! Server tests read their URL from the environment (`DATABASE_URL_PG`,
//! `DATABASE_URL_MYSQL`). Without it a test prints `skipped: <VAR> not set` and passes, except
//! under `CI=true`, where a missing variable fails the test; a server that is set but
//! unreachable always fails it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sqlx::pool::PoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Database, Pool, Sqlite};

/// The variable holding the PostgreSQL URL, e.g. `postgres://postgres@127.0.0.1:5432/test`.
pub const PG: &str = "DATABASE_URL_PG";
/// The variable holding the MySQL/MariaDB URL, e.g. `mysql://root@127.0.0.1:3306/test`.
pub const MYSQL: &str = "DATABASE_URL_MYSQL";

/// Whether this is a CI run (`CI=true` or `CI=1`), where no server test may skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The URL in `var`, or `None` when the test should skip (after saying so).
///
/// # Panics
///
/// When `var` is unset or empty under `CI=true`: there, a skipped server test is a failure.
pub fn database_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if in_ci() => panic!("{var} not set, and CI=true: server tests must run in CI"),
        _ => {
            announce_skip(var);
            None
        }
    }
}

/// Says once per test binary which server's cases it skips, on the process's real standard
/// error (the test harness captures `println!`, not that), so the summary shows in the
/// output of `cargo test`.
fn announce_skip(var: &str) {
    use std::io::Write;
    use std::sync::Mutex;
    static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut said = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if said.iter().any(|v| v == var) {
        return;
    }
    said.push(var.to_owned());
    let server = match var {
        PG => "PostgreSQL",
        MYSQL => "MariaDB/MySQL",
        _ if var.contains("REDIS") => "Redis",
        _ => "server",
    };
    let binary = std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let name = binary.split('-').next().unwrap_or(&binary).to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "skipped ({var} not set): the {server} cases of {name}"
    );
}

/// A pool of up to `max_connections` on the server named by `var`, or `None` when the test
/// should skip (see [`database_url`]).
///
/// # Panics
///
/// When the variable is set but the server cannot be reached: the run asked for it.
pub async fn connect<DB: Database>(var: &str, max_connections: u32) -> Option<Pool<DB>> {
    let url = database_url(var)?;
    let pool = PoolOptions::<DB>::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(15))
        .connect(&url)
        .await;
    match pool {
        Ok(pool) => Some(pool),
        Err(e) => panic!("{var} is set but {url} cannot be reached: {e}"),
    }
}

/// A SQLite database in a fresh file (WAL, so readers and one writer work concurrently, as
/// on a server), deleted when the returned [`TempDb`] is dropped.
///
/// # Panics
///
/// When the file cannot be created.
pub async fn sqlite(max_connections: u32) -> (Pool<Sqlite>, TempDb) {
    let db = TempDb::new();
    let pool = open_sqlite(db.path(), max_connections).await;
    (pool, db)
}

/// A pool on the SQLite database at `path` (created if missing, WAL): several pools, in
/// this process or others, may open one file, as app instances share one database.
///
/// # Panics
///
/// When the file cannot be opened.
pub async fn open_sqlite(path: &Path, max_connections: u32) -> Pool<Sqlite> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(15));
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("cannot open SQLite database {}: {e}", path.display()))
}

/// A SQLite database file no other run uses, deleted (with its WAL files) when dropped.
#[derive(Debug)]
pub struct TempDb(PathBuf);

impl TempDb {
    /// A fresh path in the temporary directory (the file is created when first opened).
    pub fn new() -> TempDb {
        TempDb(std::env::temp_dir().join(format!("cache_suite_{}.db", unique_suffix())))
    }

    /// Where the database is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempDb {
    fn default() -> TempDb {
        TempDb::new()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A suffix no other run (another process, or another test in this one) uses:
/// `<pid>_<counter>_<clock>`.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_micros());
    format!(
        "{}_{}_{clock}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// How a database spells bind parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Dialect {
    /// `?`.
    Sqlite,
    /// `$1`, `$2`, ...
    Postgres,
    /// `?`.
    MySql,
}

/// The physical names of one test's tables (`users_<suffix>`, `posts_<suffix>`), so runs
/// never share tables. Part of the cache key of the functions that take it, as the table a
/// query reads should be.
#[derive(Clone, Debug, Serialize)]
pub struct Names {
    /// The users table.
    pub users: String,
    /// The posts table.
    pub posts: String,
    /// How the database spells bind parameters.
    pub dialect: Dialect,
}

impl Names {
    /// Fresh names for `dialect`.
    pub fn new(dialect: Dialect) -> Names {
        let suffix = unique_suffix();
        Names {
            users: format!("users_{suffix}"),
            posts: format!("posts_{suffix}"),
            dialect,
        }
    }

    /// `template` with `{users}` and `{posts}` replaced by the table names and, on
    /// PostgreSQL, each `?` by `$1`, `$2`, ...
    pub fn sql(&self, template: &str) -> AssertSqlSafe<String> {
        let sql = template
            .replace("{users}", &self.users)
            .replace("{posts}", &self.posts);
        if self.dialect != Dialect::Postgres {
            return AssertSqlSafe(sql);
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        AssertSqlSafe(out)
    }

    /// The statements creating and seeding both tables: users 1 `ada`, 2 `grace`,
    /// 3 `edsger` (names unique, counters at 0); posts 1 and 3 by user 1, post 2 by user 2.
    pub fn schema(&self) -> Vec<AssertSqlSafe<String>> {
        [
            "CREATE TABLE {users} (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL UNIQUE, \
             counter BIGINT NOT NULL DEFAULT 0)",
            "CREATE TABLE {posts} (id BIGINT PRIMARY KEY, author_id BIGINT NOT NULL, \
             title VARCHAR(200) NOT NULL)",
            "INSERT INTO {users} (id, name) VALUES (1, 'ada'), (2, 'grace'), (3, 'edsger')",
            "INSERT INTO {posts} (id, author_id, title) VALUES (1, 1, 'notes'), \
             (2, 2, 'compilers'), (3, 1, 'bernoulli')",
        ]
        .into_iter()
        .map(|s| self.sql(s))
        .collect()
    }

    /// The statements dropping both tables.
    pub fn teardown(&self) -> Vec<AssertSqlSafe<String>> {
        [
            "DROP TABLE IF EXISTS {posts}",
            "DROP TABLE IF EXISTS {users}",
        ]
        .into_iter()
        .map(|s| self.sql(s))
        .collect()
    }
}

/// Held while a test body runs: one at a time per test binary. An invalidation reaches
/// every cache of the process, and every run of these suites names its cached tables
/// `users` and `posts` (whatever its physical tables are called), so one test's writes
/// would otherwise add misses to another's counts.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Runs `body` as its own task, then `cleanup` whether `body` finished or panicked, then
/// resumes the panic: a failed assertion still drops the test's tables.
pub async fn guarded<T, B, C>(body: B, cleanup: C) -> T
where
    B: Future<Output = T> + Send + 'static,
    T: Send + 'static,
    C: Future<Output = ()>,
{
    let outcome = tokio::spawn(body).await;
    cleanup.await;
    rethrow(outcome)
}

/// [`guarded`] for a body that is not `Send` (one holding a `&mut` connection across an
/// `.await` in generic code, as SQLx's `Acquire` bounds make it): run as a local task.
pub async fn guarded_local<T, B, C>(body: B, cleanup: C) -> T
where
    B: Future<Output = T> + 'static,
    T: 'static,
    C: Future<Output = ()>,
{
    let local = tokio::task::LocalSet::new();
    let outcome = local
        .run_until(async { tokio::task::spawn_local(body).await })
        .await;
    cleanup.await;
    rethrow(outcome)
}

/// A test task's value, or its panic resumed here.
fn rethrow<T>(outcome: Result<T, tokio::task::JoinError>) -> T {
    match outcome {
        Ok(value) => value,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        },
    }
}

/// Defines `Fx`, one test's pool, cache and tables, in a module that provides `Db`,
/// `DIALECT` and `async fn pool() -> Option<(Pool<Db>, Option<TempDb>)>` (the server
/// suites expand their scenarios once per database). `Fx::setup` creates fresh tables and
/// a fresh cache, or returns `None` when the server is not configured; `Fx::run` runs a
/// test body and drops the tables whether it passed or panicked.
#[macro_export]
macro_rules! fixture {
    () => {
        #[derive(Clone)]
        struct Fx {
            pool: ::sqlx::Pool<Db>,
            cache: ::cache_runtime::Cache,
            t: $crate::Names,
            _file: ::core::option::Option<::std::sync::Arc<$crate::TempDb>>,
        }

        impl Fx {
            async fn setup(settings: ::cache_runtime::Settings) -> ::core::option::Option<Fx> {
                let (pool, file) = pool().await?;
                let t = $crate::Names::new(DIALECT);
                for statement in t.schema() {
                    ::sqlx::query(statement)
                        .execute(&pool)
                        .await
                        .expect("schema");
                }
                ::core::option::Option::Some(Fx {
                    pool,
                    cache: ::cache_runtime::Cache::new(settings).expect("valid settings"),
                    t,
                    _file: file.map(::std::sync::Arc::new),
                })
            }

            async fn run<F, Fut>(self, body: F)
            where
                F: FnOnce(Fx) -> Fut,
                Fut: ::std::future::Future<Output = ()> + Send + 'static,
            {
                let _alone = $crate::one_at_a_time().await;
                $crate::guarded(body(self.clone()), self.teardown()).await;
                self.pool.close().await;
            }

            /// Drops the test's tables.
            async fn teardown(&self) {
                for statement in self.t.teardown() {
                    let _ = ::sqlx::query(statement).execute(&self.pool).await;
                }
            }

            /// [`Fx::run`] for a body that is not `Send`.
            #[allow(dead_code)]
            async fn run_local<F, Fut>(self, body: F)
            where
                F: FnOnce(Fx) -> Fut,
                Fut: ::std::future::Future<Output = ()> + 'static,
            {
                let _alone = $crate::one_at_a_time().await;
                $crate::guarded_local(body(self.clone()), self.teardown()).await;
                self.pool.close().await;
            }
        }
    };
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
