//! MariaDB and MySQL: triggers keep a version per watched table, and a task polls them.
//!
//! [`install`] creates the table `cache_runtime_versions` and, on each watched table,
//! `AFTER INSERT`, `AFTER UPDATE` and `AFTER DELETE` triggers that increment the table's
//! version in the writing transaction (so the new version is visible exactly when the
//! rows are). [`listen`] polls the versions every `interval` and invalidates each table
//! whose version moved. A version is state, not an event: a poll that fails (the
//! connection lost) loses nothing, the next one sees the change. The bound on staleness
//! for a write made outside the application is the interval plus one query.
//!
//! Costs and limits: every row a statement writes updates the table's version row, which
//! also makes concurrent writers of one table wait for each other's commit. MySQL fires no
//! trigger for `TRUNCATE` nor for the rows an `ON DELETE CASCADE` removes: truncate a
//! watched table from the application (under `#[invalidates]`), and give reads of a
//! cascading child table the parent's table too (`also = ["parent"]`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_runtime::Cache;
use sqlx::AssertSqlSafe;
use sqlx::mysql::MySqlPool;

use crate::WatchError;

/// The table holding a version per watched table.
pub const VERSIONS: &str = "cache_runtime_versions";

/// `table`, letters, digits and `_` (no schema: the versions live in the pool's database).
fn checked(table: &str) -> Result<&str, WatchError> {
    let valid = !table.is_empty()
        && table.len() <= 43
        && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !table.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(table)
    } else {
        Err(WatchError::new(format!(
            "cannot watch {table:?}: a table name here is letters, digits and `_` (at most 43: trigger names are limited to 64)"
        )))
    }
}

fn trigger(table: &str, event: &str) -> String {
    format!("cache_runtime_{}_{table}", event.to_ascii_lowercase())
}

/// Creates the versions table and the triggers on `tables`, idempotently. MySQL cannot
/// create triggers in a transaction: every table is checked first, and if a trigger still
/// fails, the ones created by this call are dropped again, so nothing is half-installed.
///
/// # Errors
///
/// A [`WatchError`] naming a table that does not exist, or what failed.
pub async fn install(pool: &MySqlPool, tables: &[&str]) -> Result<(), WatchError> {
    for table in tables {
        checked(table)?;
    }
    let mut missing = Vec::new();
    for table in tables {
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = ?",
        )
        .bind(*table)
        .fetch_one(pool)
        .await
        .map_err(|e| WatchError::sql("cannot read information_schema", e))?;
        if exists == 0 {
            missing.push(*table);
        }
    }
    if !missing.is_empty() {
        return Err(WatchError::new(format!(
            "cannot watch {missing:?}: no such table (nothing was installed)"
        )));
    }
    exec(
        pool,
        format!(
            "CREATE TABLE IF NOT EXISTS {VERSIONS} (\
             table_name VARBINARY(64) PRIMARY KEY, version BIGINT UNSIGNED NOT NULL)"
        ),
    )
    .await
    .map_err(|e| {
        WatchError::sql(
            format!("cannot create {VERSIONS} (nothing was installed)"),
            e,
        )
    })?;
    // Only missing triggers are created (an installed one keeps working throughout), and
    // only those are dropped again if a later one fails.
    let mut created: Vec<String> = Vec::new();
    for table in tables {
        for event in ["INSERT", "UPDATE", "DELETE"] {
            let name = trigger(table, event);
            let exists: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.triggers \
                 WHERE trigger_schema = DATABASE() AND trigger_name = ?",
            )
            .bind(&name)
            .fetch_one(pool)
            .await
            .map_err(|e| WatchError::sql("cannot read information_schema", e))?;
            if exists > 0 {
                continue;
            }
            let create = format!(
                "CREATE TRIGGER {name} AFTER {event} ON `{table}` FOR EACH ROW \
                 INSERT INTO {VERSIONS} (table_name, version) VALUES ('{table}', 1) \
                 ON DUPLICATE KEY UPDATE version = version + 1"
            );
            if let Err(e) = exec(pool, create).await {
                let mut left = Vec::new();
                for done in &created {
                    if exec(pool, format!("DROP TRIGGER IF EXISTS {done}"))
                        .await
                        .is_err()
                    {
                        left.push(done.clone());
                    }
                }
                let outcome = if left.is_empty() {
                    "nothing was installed".to_owned()
                } else {
                    format!("and these triggers could not be dropped again: {left:?}")
                };
                return Err(WatchError::sql(
                    format!("cannot create the trigger {name} ({outcome})"),
                    e,
                ));
            }
            created.push(name);
        }
    }
    Ok(())
}

async fn exec(pool: &MySqlPool, sql: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(pool)
        .await
        .map(|_| ())
}

/// The running poller; [`Poll::stop`] (or dropping it) ends it.
#[derive(Debug)]
pub struct Poll {
    task: tokio::task::JoinHandle<()>,
    polls: Arc<AtomicU64>,
}

impl Poll {
    /// Ends the poller.
    pub fn stop(self) {
        self.task.abort();
    }

    /// Polls done so far.
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }
}

impl Drop for Poll {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the versions once (and invalidates every watched table: entries may predate the
/// poller), then polls them every `interval` and invalidates each watched table whose
/// version moved. A failed poll is retried at the next interval; nothing is lost.
///
/// # Errors
///
/// A [`WatchError`] when a name is invalid or the first read fails (run [`install`] first).
pub async fn listen(
    pool: &MySqlPool,
    cache: Cache,
    tables: &[&str],
    interval: Duration,
) -> Result<Poll, WatchError> {
    for table in tables {
        checked(table)?;
    }
    if interval.is_zero() {
        return Err(WatchError::new("the polling interval must not be zero"));
    }
    let watched: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
    let mut seen = versions(pool)
        .await
        .map_err(|e| WatchError::sql(format!("cannot read {VERSIONS}: run install first"), e))?;
    let all: Vec<&str> = watched.iter().map(String::as_str).collect();
    cache.invalidate(&all).await;
    let polls = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&polls);
    let pool = pool.clone();
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            // Bounded: a stuck query must not stall polling for ever.
            let bound = interval.max(Duration::from_secs(5));
            let now = match tokio::time::timeout(bound, versions(&pool)).await {
                Ok(Ok(now)) => now,
                Ok(Err(sqlx::Error::PoolClosed)) => return,
                Err(_) => {
                    tracing::warn!(target: "cache_watch", "polling the table versions timed out; retrying");
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(target: "cache_watch", error = %e,
                        "cannot poll the table versions; retrying");
                    continue;
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let moved: Vec<&str> = watched
                .iter()
                .filter(|t| now.get(*t) != seen.get(*t))
                .map(String::as_str)
                .collect();
            if !moved.is_empty() {
                // As reads are tagged: also in lower case.
                let names: Vec<String> = moved.iter().flat_map(|t| crate::tags_of(t)).collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                cache.invalidate(&names).await;
            }
            seen = now;
        }
    });
    Ok(Poll { task, polls })
}

async fn versions(pool: &MySqlPool) -> Result<HashMap<String, u64>, sqlx::Error> {
    // Binary names (exact case), whichever column type an earlier install created.
    let rows: Vec<(Vec<u8>, u64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT CAST(table_name AS BINARY), version FROM {VERSIONS}"
    )))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, version)| (String::from_utf8_lossy(&name).into_owned(), version))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_checked() {
        assert!(super::checked("users").is_ok());
        for bad in ["", "a.b", "x`y", "1x", "users; DROP"] {
            assert!(super::checked(bad).is_err(), "{bad:?}");
        }
    }
}
