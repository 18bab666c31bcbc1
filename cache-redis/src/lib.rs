//! A Redis backend for [`cache_runtime`]: entries, table versions and per-table key
//! tracking in Redis, so every app instance using one server (and one namespace) shares
//! entries and invalidations.
//!
//! It is a crate of its own, built only on `cache-runtime`'s public
//! [`SharedBackend`] trait: an application that does not use Redis compiles none of it, and
//! a backend of your own has nothing less to work with.
//!
//! Key layout, for namespace `ns` (table names are percent-encoded, so `:` never appears
//! in them and no two kinds of key, nor two tables, can share a name):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `ns:{64 hex}` | string | an entry: the cache's encoded envelope, with the entry's TTL |
//! | `ns:v:{table}` | string | the table's version, a decimal `u64` |
//! | `ns:k:{table}` | sorted set | the entry keys read from the table, scored by insertion order |
//!
//! Every operation is bounded by [`RedisOptions::timeout`]; after a connection failure or a
//! timeout, operations fail at once for [`RedisOptions::backoff`] (a failed operation is a
//! miss to the cache, so an outage costs callers no waiting), then the next one tries again.
//! The connection is a [`redis::aio::ConnectionManager`], which reconnects by itself.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, RedisResult, Script};

use cache_runtime::Settings;
use cache_runtime::backend::{
    Backend, BackendError, Checked, SharedBackend, StoreOutcome, async_trait,
};

/// How a [`RedisBackend`] talks to Redis.
///
/// ```
/// use std::time::Duration;
/// use cache_redis::RedisOptions;
///
/// let options = RedisOptions::default()
///     .timeout(Duration::from_millis(100))
///     .backoff(Duration::from_secs(2));
/// assert_eq!(options.get_timeout(), Duration::from_millis(100));
/// ```
#[derive(Clone, Debug)]
pub struct RedisOptions {
    timeout: Duration,
    backoff: Duration,
}

impl Default for RedisOptions {
    fn default() -> RedisOptions {
        RedisOptions {
            timeout: Settings::default().backend_timeout,
            backoff: Duration::from_secs(1),
        }
    }
}

impl RedisOptions {
    /// Options with the timeout of `settings.backend_timeout`.
    pub fn from_settings(settings: &Settings) -> RedisOptions {
        RedisOptions::default().timeout(settings.backend_timeout)
    }

    /// The longest one operation may take, connecting included; past it the operation fails
    /// (the cache runs the query). Default 250 ms, as `Settings::backend_timeout`.
    pub fn timeout(mut self, timeout: Duration) -> RedisOptions {
        self.timeout = timeout;
        self
    }

    /// After a connection failure or a timeout, how long operations fail at once without
    /// trying Redis; the first one after it tries again. Default 1 s.
    pub fn backoff(mut self, backoff: Duration) -> RedisOptions {
        self.backoff = backoff;
        self
    }

    /// The operation timeout.
    pub fn get_timeout(&self) -> Duration {
        self.timeout
    }

    /// The backoff after a failure.
    pub fn get_backoff(&self) -> Duration {
        self.backoff
    }
}

/// A [`SharedBackend`] in Redis, shared by every app instance that uses the same server:
/// entries, table versions and the keys each table tracks all live there, so a write
/// through one instance makes the entries of every instance stale. Enter it with
/// [`Cache::with_shared_backend`](cache_runtime::Cache::with_shared_backend).
///
/// - A hit is one round trip (`MGET` of the entry and its tables' versions).
/// - A miss reads the versions (a script), runs the query, then stores the entry only if
///   those versions are still current, and tracks its key, in one script.
/// - An invalidation bumps the versions and deletes the tracked keys, in one script.
/// - A table tracks at most `Settings::max_keys_per_table` keys; the oldest are deleted.
///
/// Cheap to clone: clones share one connection. Not for Redis Cluster (the scripts touch
/// keys in several slots). Let Redis keep its keys: under `maxmemory`, use `noeviction` or
/// a `volatile-*` policy (version keys and `Ttl::Forever` entries have no expiry). A version
/// key that is lost anyway comes back at a new random value, so a lost key can never make a
/// stale entry fresh; it only makes that table's entries misses.
///
/// ```no_run
/// use cache_redis::RedisBackend;
/// use cache_runtime::{Cache, Settings};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let settings = Settings { namespace: "shop".into(), ..Settings::default() };
/// let backend = RedisBackend::from_settings("redis://127.0.0.1:6379", &settings).await?;
/// let cache = Cache::with_shared_backend(settings, backend)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    url: String,
    options: RedisOptions,
    /// Nanoseconds since `origin` until which operations fail at once; 0 while Redis is up.
    down_until: AtomicU64,
    origin: Instant,
    scripts: Scripts,
}

struct Scripts {
    versions: Script,
    store: Script,
    bump: Script,
}

/// `versions`: the current version of each table, creating missing ones.
///
/// KEYS[i]: version key of table i. ARGV[i]: a random start for KEYS[i].
/// Returns the versions as decimal strings (Lua numbers are doubles, so they are never
/// returned as integers).
const VERSIONS: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  -- pcall: a key of another type (a foreign value) is replaced, not an error.
  local v = redis.pcall('GET', key)
  -- At most 18 digits: INCR must never overflow (ours start below 2^52).
  if type(v) ~= 'string' or #v > 18 or not string.match(v, '^%d+$') then
    -- Missing, or not ours: start at a random value, never at one that a read may have
    -- captured before the key was lost (which would make its stale entry look fresh).
    redis.call('SET', key, ARGV[i])
    v = ARGV[i]
  end
  out[i] = v
end
return out
";

/// `set_tracked`: store an entry if its tables' versions are still the captured ones, and
/// track its key under each table, keeping the newest ARGV[3] keys per table.
///
/// KEYS[1]: the entry key; KEYS[2 .. n+1]: version keys; KEYS[n+2 .. 2n+1]: tracking sets.
/// ARGV[1]: the value; ARGV[2]: TTL in ms, "0" for none; ARGV[3]: the most keys a table
/// tracks; ARGV[4 .. n+3]: the captured versions.
/// Returns -1 when a version moved (nothing stored), else how many keys were dropped from
/// tracking and deleted.
const STORE: &str = r"
local n = (#KEYS - 1) / 2
for i = 1, n do
  -- A write completed since the load captured its versions: its result is stale.
  if redis.pcall('GET', KEYS[1 + i]) ~= ARGV[3 + i] then
    return -1
  end
end
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
local max = tonumber(ARGV[3])
local dropped = 0
for i = 1, n do
  local set = KEYS[1 + n + i]
  if redis.call('TYPE', set).ok ~= 'zset' then
    redis.call('DEL', set)
  end
  -- Scores count up per set, so rank 0 is the key stored longest ago.
  local last = redis.call('ZRANGE', set, -1, -1, 'WITHSCORES')
  local score = 1
  if last[2] then
    score = tonumber(last[2]) + 1
  end
  redis.call('ZADD', set, score, KEYS[1])
  local extra = redis.call('ZCARD', set) - max
  if extra > 0 then
    local old = redis.call('ZRANGE', set, 0, extra - 1)
    redis.call('ZREMRANGEBYRANK', set, 0, extra - 1)
    -- In slices: unpack() of thousands of values overflows Lua's stack.
    for j = 1, #old, 500 do
      redis.call('UNLINK', unpack(old, j, math.min(j + 499, #old)))
    end
    dropped = dropped + #old
  end
end
return dropped
";

/// `bump`: give each table a new version and delete the keys it tracks.
///
/// KEYS[1 .. n]: version keys; KEYS[n+1 .. 2n]: tracking sets. ARGV[i]: a random start for
/// KEYS[i] when it is missing or not ours.
const BUMP: &str = r"
local n = #KEYS / 2
for i = 1, n do
  local v = redis.pcall('GET', KEYS[i])
  if type(v) == 'string' and #v <= 18 and string.match(v, '^%d+$') then
    redis.call('INCR', KEYS[i])
  else
    redis.call('SET', KEYS[i], ARGV[i])
  end
  local set = KEYS[n + i]
  local keys = redis.pcall('ZRANGE', set, 0, -1)
  if type(keys) == 'table' and not keys.err then
    for j = 1, #keys, 500 do
      redis.call('UNLINK', unpack(keys, j, math.min(j + 499, #keys)))
    end
  end
  redis.call('DEL', set)
end
return n
";

impl RedisBackend {
    /// Connects to `url` (`redis://[:password@]host[:port][/db]`) and checks the server
    /// answers within the timeout.
    ///
    /// Call it inside a Tokio runtime: the connection runs on it.
    ///
    /// # Errors
    ///
    /// A [`BackendError`] when the URL is invalid or the server does not answer. To start
    /// an application while Redis is down, use [`RedisBackend::connect_lazy`].
    pub async fn connect(url: &str, options: RedisOptions) -> Result<RedisBackend, BackendError> {
        let backend = RedisBackend::connect_lazy(url, options).await?;
        backend
            .run("PING", |mut conn| async move {
                redis::cmd("PING").query_async::<()>(&mut conn).await
            })
            .await?;
        Ok(backend)
    }

    /// Like [`RedisBackend::connect`], but does not contact the server: the connection is
    /// made by the first operation, and until Redis answers every operation is a miss.
    ///
    /// # Errors
    ///
    /// A [`BackendError`] when the URL is invalid.
    pub async fn connect_lazy(
        url: &str,
        options: RedisOptions,
    ) -> Result<RedisBackend, BackendError> {
        let client = Client::open(url)
            .map_err(|e| BackendError::with_source(format!("invalid Redis URL {url:?}"), e))?;
        // Reconnection retries are few and short: the backoff above them decides how often
        // an unreachable server is tried, and a server that is back is found quickly.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(options.backoff.max(Duration::from_millis(50)));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| BackendError::with_source("cannot create a Redis connection", e))?;
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                conn,
                url: redact(url),
                options,
                down_until: AtomicU64::new(0),
                origin: Instant::now(),
                scripts: Scripts {
                    versions: Script::new(VERSIONS),
                    store: Script::new(STORE),
                    bump: Script::new(BUMP),
                },
            }),
        })
    }

    /// [`RedisBackend::connect`] with the options `settings` gives
    /// ([`Settings::backend_timeout`]).
    ///
    /// # Errors
    ///
    /// As [`RedisBackend::connect`].
    pub async fn from_settings(
        url: &str,
        settings: &Settings,
    ) -> Result<RedisBackend, BackendError> {
        RedisBackend::connect(url, RedisOptions::from_settings(settings)).await
    }

    /// Runs one Redis operation: fails at once while backing off, bounds it by the timeout,
    /// and starts backing off after a connection failure or a timeout.
    async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, BackendError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let inner = &self.inner;
        let until = inner.down_until.load(Ordering::Relaxed);
        if until != 0 && self.now() < until {
            return Err(BackendError::new(format!(
                "Redis at {} is unavailable (backing off after a failure); {op} skipped",
                inner.url
            )));
        }
        match tokio::time::timeout(inner.options.timeout, f(inner.conn.clone())).await {
            Ok(Ok(value)) => {
                if until != 0 {
                    inner.down_until.store(0, Ordering::Relaxed);
                }
                Ok(value)
            }
            Ok(Err(e)) => {
                if is_connection_error(&e) {
                    self.back_off();
                }
                Err(BackendError::with_source(
                    format!("Redis {op} at {} failed", inner.url),
                    e,
                ))
            }
            Err(_) => {
                self.back_off();
                Err(BackendError::new(format!(
                    "Redis {op} at {} timed out after {:?}",
                    inner.url, inner.options.timeout
                )))
            }
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.inner.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn back_off(&self) {
        let backoff = u64::try_from(self.inner.options.backoff.as_nanos()).unwrap_or(u64::MAX);
        let until = self.now().saturating_add(backoff).max(1);
        self.inner.down_until.store(until, Ordering::Relaxed);
    }
}

/// Errors that say the server cannot be reached (as opposed to a command it refused).
fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// A table name with every byte outside `[A-Za-z0-9_.-]` percent-encoded: the result has
/// no `:` (so it cannot be mistaken for another key kind) and two names never encode alike.
fn encode_table(table: &str) -> Cow<'_, str> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if table.bytes().all(plain) {
        return Cow::Borrowed(table);
    }
    let mut out = String::with_capacity(table.len() * 3);
    for b in table.bytes() {
        if plain(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

fn version_key(namespace: &str, table: &str) -> String {
    table_key(namespace, ":v:", table)
}

fn tracking_key(namespace: &str, table: &str) -> String {
    table_key(namespace, ":k:", table)
}

/// `{namespace}{kind}{encoded table}`, built without `format!` (it runs on every hit).
fn table_key(namespace: &str, kind: &str, table: &str) -> String {
    let table = encode_table(table);
    let mut key = String::with_capacity(namespace.len() + kind.len() + table.len());
    key.push_str(namespace);
    key.push_str(kind);
    key.push_str(&table);
    key
}

/// A random first version: below 2^52 so it can be bumped for ever (and survives Lua's
/// doubles), and never 0.
fn fresh_version(salt: usize) -> u64 {
    let random = RandomState::new().hash_one((Instant::now(), salt));
    (random >> 12) | 1 << 40
}

/// A version as Redis holds it; anything that is not one (a foreign value) is 0, which no
/// entry is tagged with.
fn parse_version(bytes: Option<&[u8]>) -> u64 {
    bytes
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Milliseconds for `PX`, or `None` for no expiry. Rounds up (`PX 0` is an error) and
/// treats what Redis cannot represent as no expiry.
fn expiry_ms(ttl: Option<Duration>) -> Option<u64> {
    const MAX_MS: u128 = 1 << 45; // about 1100 years
    let ms = ttl?.as_nanos().div_ceil(1_000_000).max(1);
    (ms < MAX_MS).then_some(ms as u64)
}

const BATCH: usize = 500;

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.inner.url)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Backend for RedisBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        self.run("GET", move |mut conn| async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<Vec<u8>>>(&mut conn)
                .await
        })
        .await
    }

    async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        self.run("SET", move |mut conn| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value);
            if let Some(ms) = expiry_ms(ttl) {
                cmd.arg("PX").arg(ms);
            }
            cmd.query_async::<()>(&mut conn).await
        })
        .await
    }

    async fn delete(&self, keys: &[String]) -> Result<(), BackendError> {
        for chunk in keys.chunks(BATCH) {
            self.run("UNLINK", |mut conn| async move {
                redis::cmd("UNLINK")
                    .arg(chunk)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await?;
        }
        Ok(())
    }

    async fn clear_prefix(&self, prefix: &str) -> Result<(), BackendError> {
        let pattern = format!("{}*", glob_escape(prefix));
        let mut cursor = 0_u64;
        // Each step is bounded by the timeout; the whole scan is as long as the keyspace.
        loop {
            let pattern = &pattern;
            let (next, keys) = self
                .run("SCAN", |mut conn| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async::<(u64, Vec<Vec<u8>>)>(&mut conn)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                self.run("UNLINK", |mut conn| async move {
                    redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async::<()>(&mut conn)
                        .await
                })
                .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

#[async_trait]
impl SharedBackend for RedisBackend {
    async fn versions(&self, namespace: &str, tables: &[&str]) -> Result<Vec<u64>, BackendError> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        let raw = self
            .run("versions script", |mut conn| async move {
                let mut call = self.inner.scripts.versions.prepare_invoke();
                for (i, table) in tables.iter().enumerate() {
                    call.key(version_key(namespace, table));
                    call.arg(fresh_version(i));
                }
                call.invoke_async::<Vec<Option<Vec<u8>>>>(&mut conn).await
            })
            .await?;
        if raw.len() != tables.len() {
            return Err(BackendError::new(format!(
                "Redis versions script returned {} versions for {} tables",
                raw.len(),
                tables.len()
            )));
        }
        Ok(raw.iter().map(|v| parse_version(v.as_deref())).collect())
    }

    async fn get_checked(
        &self,
        namespace: &str,
        key: &str,
        tables: &[&str],
    ) -> Result<Checked, BackendError> {
        if tables.is_empty() {
            return Ok((self.get(key).await?, Vec::new()));
        }
        let mut values = self
            .run("MGET", |mut conn| async move {
                let mut cmd = redis::cmd("MGET");
                cmd.arg(key);
                for table in tables {
                    cmd.arg(version_key(namespace, table));
                }
                cmd.query_async::<Vec<Option<Vec<u8>>>>(&mut conn).await
            })
            .await?;
        if values.len() != tables.len() + 1 {
            return Err(BackendError::new(format!(
                "Redis MGET of {} keys returned {} values",
                tables.len() + 1,
                values.len()
            )));
        }
        let versions = values[1..]
            .iter()
            .map(|v| parse_version(v.as_deref()))
            .collect();
        Ok((values.swap_remove(0), versions))
    }

    async fn set_tracked(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        tags: &[(&str, u64)],
        max_keys: usize,
    ) -> Result<StoreOutcome, BackendError> {
        let dropped = self
            .run("store script", |mut conn| async move {
                let mut call = self.inner.scripts.store.prepare_invoke();
                call.key(key);
                for (table, _) in tags {
                    call.key(version_key(namespace, table));
                }
                for (table, _) in tags {
                    call.key(tracking_key(namespace, table));
                }
                call.arg(value)
                    .arg(expiry_ms(ttl).unwrap_or(0))
                    .arg(max_keys.max(1));
                for (_, version) in tags {
                    call.arg(version.to_string());
                }
                call.invoke_async::<i64>(&mut conn).await
            })
            .await?;
        Ok(match usize::try_from(dropped) {
            Ok(evicted) => StoreOutcome::Stored { evicted },
            Err(_) => StoreOutcome::Stale,
        })
    }

    async fn bump(&self, namespace: &str, tables: &[&str]) -> Result<(), BackendError> {
        if tables.is_empty() {
            return Ok(());
        }
        self.run("bump script", |mut conn| async move {
            let mut call = self.inner.scripts.bump.prepare_invoke();
            for table in tables {
                call.key(version_key(namespace, table));
            }
            for (i, table) in tables.iter().enumerate() {
                call.key(tracking_key(namespace, table));
                call.arg(fresh_version(i));
            }
            call.invoke_async::<()>(&mut conn).await
        })
        .await
    }

    async fn tracked(&self, namespace: &str, table: &str) -> Result<usize, BackendError> {
        self.run("ZCARD", move |mut conn| async move {
            redis::cmd("ZCARD")
                .arg(tracking_key(namespace, table))
                .query_async::<usize>(&mut conn)
                .await
        })
        .await
    }
}

/// `prefix` with the characters `SCAN MATCH` treats specially escaped.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_kinds_never_collide() {
        // Entry keys are `ns:` + 64 hex digits: no `:` after the namespace.
        for table in ["users", "a:b", "v:x", "k", "%3A", "é", ""] {
            let v = version_key("ns", table);
            let k = tracking_key("ns", table);
            assert_ne!(v, k);
            assert!(!v["ns:v:".len()..].contains(':'), "{v}");
            assert!(!k["ns:k:".len()..].contains(':'), "{k}");
        }
        assert_ne!(version_key("ns", "a:b"), version_key("ns", "a%3Ab"));
        assert_eq!(version_key("ns", "users"), "ns:v:users");
        assert_eq!(tracking_key("ns", "public.users"), "ns:k:public.users");
        assert_eq!(version_key("ns", "a b:c"), "ns:v:a%20b%3Ac");
    }

    #[test]
    fn versions_parse_leniently() {
        assert_eq!(parse_version(Some(b"42")), 42);
        assert_eq!(parse_version(Some(b"x")), 0);
        assert_eq!(parse_version(Some(&[0xff, 0x00])), 0);
        assert_eq!(parse_version(None), 0);
        let v = fresh_version(0);
        assert!(v > 0 && v < 1 << 53);
    }

    #[test]
    fn expiry_rounds_up_and_caps() {
        assert_eq!(expiry_ms(None), None);
        assert_eq!(expiry_ms(Some(Duration::from_micros(1))), Some(1));
        assert_eq!(expiry_ms(Some(Duration::from_millis(1500))), Some(1500));
        assert_eq!(expiry_ms(Some(Duration::MAX)), None);
    }

    #[test]
    fn urls_are_redacted_and_globs_escaped() {
        assert_eq!(
            redact("redis://:secret@127.0.0.1:6379/0"),
            "redis://***@127.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1"), "redis://127.0.0.1");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
