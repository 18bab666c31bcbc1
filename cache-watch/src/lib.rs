//! Writes made outside the application (another service, a `psql` session, a migration, a
//! cron job, a trigger, an `ON DELETE CASCADE`) invalidate [`cache_runtime`] caches: the
//! database tells the cache.
//!
//! SQLite (feature `sqlite`): see [`sqlite`]. MariaDB and MySQL (feature `mysql`): see
//! [`mysql`].
//!
//! PostgreSQL: [`install`] puts statement-level triggers on the watched tables that
//! `pg_notify` the table's name when a statement writes it (the same SQL is
//! [`install_sql`], for a migration), and [`listen`] runs a task that invalidates each
//! notified table. Notifications are sent at commit, never before; cascades and other
//! triggers fire the child tables' triggers too. A gap (the listening connection lost:
//! PostgreSQL drops what was sent meanwhile) invalidates every watched table once the
//! listener is back.
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool, cache: cache_runtime::Cache) -> Result<(), cache_watch::WatchError> {
//! cache_watch::install(&pool, &["users", "posts"]).await?;      // once, or in a migration
//! let watch = cache_watch::listen(&pool, cache, &["users", "posts"]).await?;
//! // ... writes from anywhere now invalidate `cache` ...
//! watch.stop();
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use cache_runtime::Cache;
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{Acquire, AssertSqlSafe};

/// The channel every watched table notifies.
pub const CHANNEL: &str = "cache_runtime_writes";

/// The trigger function's and the triggers' name.
const NAME: &str = "cache_runtime_notify";

/// Why watching could not be set up.
#[derive(Debug)]
pub struct WatchError {
    message: String,
    source: Option<sqlx::Error>,
}

impl WatchError {
    fn new(message: impl Into<String>) -> WatchError {
        WatchError {
            message: message.into(),
            source: None,
        }
    }

    fn sql(message: impl Into<String>, source: sqlx::Error) -> WatchError {
        WatchError {
            message: message.into(),
            source: Some(source),
        }
    }
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for WatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// `schema.table` or `table`, each part letters, digits and `_`, quoted for SQL.
fn quoted(table: &str) -> Result<String, WatchError> {
    let parts: Vec<&str> = table.split('.').collect();
    let valid = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit())
    };
    if parts.is_empty() || parts.len() > 2 || !parts.iter().all(|p| valid(p)) {
        return Err(WatchError::new(format!(
            "cannot watch {table:?}: a table name is `table` or `schema.table`, of letters, \
             digits and `_`"
        )));
    }
    Ok(parts
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join("."))
}

/// The SQL that installs the triggers on `tables`, idempotently: run it in a migration, or
/// through [`install`]. Each statement that inserts, updates, deletes or truncates a
/// watched table notifies [`CHANNEL`] with the table's `schema.table` name, at commit.
///
/// # Errors
///
/// A [`WatchError`] when a name is not `table` or `schema.table`.
pub fn install_sql(tables: &[&str]) -> Result<String, WatchError> {
    let mut sql = format!(
        "CREATE OR REPLACE FUNCTION {NAME}() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         BEGIN\n  PERFORM pg_notify('{CHANNEL}', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);\n  \
         RETURN NULL;\nEND\n$$;\n"
    );
    for table in tables {
        let name = quoted(table)?;
        sql.push_str(&format!(
            "DROP TRIGGER IF EXISTS {NAME} ON {name};\n\
             CREATE TRIGGER {NAME} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {name}\n  \
             FOR EACH STATEMENT EXECUTE FUNCTION {NAME}();\n"
        ));
    }
    Ok(sql)
}

/// Installs the triggers of [`install_sql`] in one transaction: on any error (a table that
/// does not exist, no permission to create triggers) nothing is installed.
///
/// # Errors
///
/// A [`WatchError`] naming what failed.
pub async fn install(pool: &PgPool, tables: &[&str]) -> Result<(), WatchError> {
    let sql = install_sql(tables)?;
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| WatchError::sql("cannot connect to PostgreSQL", e))?;
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| WatchError::sql("cannot begin a transaction", e))?;
    // Two installs at once would both create the function: one waits for the other.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(NAME)
        .execute(&mut *tx)
        .await
        .map_err(|e| WatchError::sql("cannot lock the cache triggers' installation", e))?;
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            WatchError::sql(
                format!("cannot install the cache triggers on {tables:?} (nothing was installed)"),
                e,
            )
        })?;
    tx.commit()
        .await
        .map_err(|e| WatchError::sql("cannot commit the cache triggers", e))
}

/// The running listener; [`Watch::stop`] (or dropping it) ends the task.
#[derive(Debug)]
pub struct Watch {
    task: tokio::task::JoinHandle<()>,
    gaps: Arc<AtomicU64>,
}

impl Watch {
    /// Ends the listener.
    pub fn stop(self) {
        self.task.abort();
    }

    /// How many times the listening connection was lost and every watched table
    /// invalidated.
    pub fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts listening on [`CHANNEL`] and returns once the listener is connected: every write
/// to a watched table committed from then on invalidates it in `cache`. Every watched table
/// is invalidated once at the start (entries may predate the listener) and after every gap.
///
/// A notified `schema.table` invalidates both `schema.table` and `table` (the names reads
/// are tagged with).
///
/// # Errors
///
/// A [`WatchError`] when a name is invalid or the first connection fails.
pub async fn listen(pool: &PgPool, cache: Cache, tables: &[&str]) -> Result<Watch, WatchError> {
    for table in tables {
        quoted(table)?;
    }
    let watched: Vec<String> = tables.iter().flat_map(|t| tags_of(t)).collect();
    let listener = connect(pool).await?;
    let all: Vec<&str> = watched.iter().map(String::as_str).collect();
    cache.invalidate(&all).await;
    let gaps = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(run(
        pool.clone(),
        cache,
        watched,
        listener,
        Arc::clone(&gaps),
    ));
    Ok(Watch { task, gaps })
}

async fn connect(pool: &PgPool) -> Result<PgListener, WatchError> {
    let mut listener = PgListener::connect_with(pool)
        .await
        .map_err(|e| WatchError::sql("cannot connect the listener", e))?;
    listener
        .listen(CHANNEL)
        .await
        .map_err(|e| WatchError::sql(format!("cannot LISTEN on {CHANNEL}"), e))?;
    Ok(listener)
}

/// `schema.table` and `table`, each also in lower case: the names reads are tagged with
/// (the macros fold unquoted names to lower case).
pub(crate) fn tags_of(table: &str) -> Vec<String> {
    let mut names = vec![table.to_owned()];
    if let Some((_, name)) = table.rsplit_once('.') {
        names.push(name.to_owned());
    }
    for i in 0..names.len() {
        let lower = names[i].to_lowercase();
        if !names.contains(&lower) {
            names.push(lower);
        }
    }
    names
}

/// How long the listener may hear nothing before it checks that its connection still
/// answers (a connection that died silently, without a reset, would hang for ever).
const HEARTBEAT: Duration = Duration::from_secs(5);

async fn run(
    pool: PgPool,
    cache: Cache,
    watched: Vec<String>,
    first: PgListener,
    gaps: Arc<AtomicU64>,
) {
    let mut listener = Some(first);
    loop {
        let Some(active) = listener.as_mut() else {
            // A gap: listen again, then invalidate everything (what was sent meanwhile is
            // lost). Retried until PostgreSQL answers.
            match connect(&pool).await {
                Ok(new) => {
                    listener = Some(new);
                    gaps.fetch_add(1, Ordering::Relaxed);
                    let all: Vec<&str> = watched.iter().map(String::as_str).collect();
                    cache.invalidate(&all).await;
                    tracing::warn!(target: "cache_watch", tables = ?watched,
                        "the database listener reconnected: every watched table invalidated");
                }
                Err(e) => {
                    tracing::warn!(target: "cache_watch", error = %e,
                        "the database listener cannot reconnect; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            continue;
        };
        match tokio::time::timeout(HEARTBEAT, active.try_recv()).await {
            Ok(Ok(Some(notification))) => {
                let names = tags_of(notification.payload());
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                cache.invalidate(&names).await;
            }
            // The pool was closed: the application is shutting down.
            Ok(Err(sqlx::Error::PoolClosed)) => return,
            // The connection was lost: whatever it carried meanwhile is gone.
            Ok(Ok(None) | Err(_)) => listener = None,
            // Quiet for a while: make sure the connection still answers.
            Err(_) => {
                let alive =
                    tokio::time::timeout(HEARTBEAT, sqlx::query("SELECT 1").execute(&mut *active))
                        .await;
                if !matches!(alive, Ok(Ok(_))) {
                    listener = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_quoted() {
        assert_eq!(quoted("users").unwrap(), "\"users\"");
        assert_eq!(quoted("app.users").unwrap(), "\"app\".\"users\"");
        for bad in [
            "",
            "a.b.c",
            "users; DROP TABLE x",
            "1users",
            "us\"ers",
            "a.",
        ] {
            assert!(quoted(bad).is_err(), "{bad:?}");
        }
        assert_eq!(tags_of("app.users"), ["app.users", "users"]);
        assert_eq!(
            tags_of("app.Users"),
            ["app.Users", "Users", "app.users", "users"]
        );
    }
}
