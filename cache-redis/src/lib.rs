//! A Redis backend for [`cache_runtime`]: entries, table versions and per-table key
//! tracking in Redis, so every app instance using one server (or one Redis Cluster) and
//! one namespace shares entries and invalidations.
//!
//! It is a crate of its own, built only on `cache-runtime`'s public
//! [`SharedBackend`] trait: an application that does not use Redis compiles none of it, and
//! a backend of your own has nothing less to work with.
//!
//! # Key layout
//!
//! For namespace `ns` (table names are percent-encoded in key names, so no two tables and
//! no two kinds of key share a name):
//!
//! | key | type | holds | Cluster slot |
//! |---|---|---|---|
//! | `ns:{64 hex}` | string | an entry: the cache's encoded envelope, with the entry's TTL | its own (entries spread over every shard) |
//! | `{ns}:epoch` | string | the run id of the server the versions belong to | the namespace's |
//! | `{ns}:v` | hash | table → version (a decimal `u64`) | the namespace's |
//! | `{ns:k:table}` | sorted set | the entry keys read from the table, oldest first | the table's |
//!
//! Every script touches only the keys it is given, all in one slot, so the layout works on
//! Redis Cluster (and on servers such as Dragonfly that enforce declared keys).
//!
//! # Failure model
//!
//! - **Restarts and failovers.** Every script that reads or writes versions first compares
//!   `{ns}:epoch` with the run id of the server running it. A server restarted from an RDB
//!   or AOF file, or a replica promoted by a failover, has another run id, and may hold
//!   versions older than writes already acknowledged: it drops the versions, so every entry
//!   from before is stale.
//! - **Lost keys.** A version lost (FLUSHALL, eviction) comes back at a random value, never
//!   at one a read may have captured; a lost epoch drops the versions. Either way the old
//!   entries become misses, never hits.
//! - **Out of memory.** Under `noeviction`, a write Redis refuses is a miss to the cache;
//!   an invalidation then deletes the versions it cannot increment (deletes are allowed),
//!   so it still takes effect.
//! - **Outages.** Every operation is bounded by [`RedisOptions::timeout`]. After a
//!   connection failure (or two timeouts in a row) operations fail at once for
//!   [`RedisOptions::backoff`]; a failed operation is a miss to the cache, so an outage
//!   costs callers no waiting. After any failure, hits resume only
//!   [`RedisOptions::reconnect_grace`] after Redis answers again: long enough for every
//!   writer to deliver the invalidations it could not send during the outage.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Client, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Script, Value};

use cache_runtime::Settings;

mod push;
use cache_runtime::backend::{
    Backend, BackendError, Checked, InvalidationSink, SharedBackend, StoreOutcome, async_trait,
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
/// // Hits resume this long after Redis answers again: the backoff, two timeouts and a
/// // margin, unless set.
/// assert_eq!(options.get_reconnect_grace(), Duration::from_millis(2400));
/// ```
#[derive(Clone, Debug)]
pub struct RedisOptions {
    timeout: Duration,
    backoff: Duration,
    reconnect_grace: Option<Duration>,
}

impl Default for RedisOptions {
    fn default() -> RedisOptions {
        RedisOptions {
            timeout: Settings::default().backend_timeout,
            backoff: Duration::from_millis(500),
            reconnect_grace: None,
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

    /// After a connection failure, or two timeouts in a row, how long operations fail at
    /// once without trying Redis; the first one after it tries again. Default 500 ms.
    pub fn backoff(mut self, backoff: Duration) -> RedisOptions {
        self.backoff = backoff;
        self
    }

    /// After a failure, how long from Redis answering again until hits are served again
    /// (loads and stores resume at once). Every other process that failed to deliver an
    /// invalidation meanwhile retries it within its backoff plus a timeout or two; until
    /// then its entries could be stale. Default: backoff + 2 × timeout + 200 ms (about the
    /// background retry interval and a margin). Use the same options in every process.
    pub fn reconnect_grace(mut self, grace: Duration) -> RedisOptions {
        self.reconnect_grace = Some(grace);
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

    /// The grace after a failure before hits are served again.
    pub fn get_reconnect_grace(&self) -> Duration {
        self.reconnect_grace.unwrap_or_else(|| {
            self.backoff
                .saturating_add(self.timeout.saturating_mul(2))
                .saturating_add(Duration::from_millis(200))
        })
    }
}

/// A [`SharedBackend`] in Redis, shared by every app instance that uses the same server
/// (or Cluster): entries, table versions and the keys each table tracks all live there, so
/// a write through one instance makes the entries of every instance stale. Enter it with
/// [`Cache::with_shared_backend`](cache_runtime::Cache::with_shared_backend).
///
/// What each operation costs (one server; on a Cluster see [`RedisBackend::connect_cluster`]):
///
/// - A hit is one round trip: a script reads the entry and its tables' versions, after
///   checking the server is the one the versions belong to.
/// - A miss reads the versions (a script), runs the query, then stores the entry if those
///   versions are still current (a script), and tracks its key under each table (one
///   script per table, deleting the oldest past `Settings::max_keys_per_table`).
/// - An invalidation bumps the versions (a script), then deletes each table's tracked keys.
///
/// Values over 64 KiB travel on a second connection, so a large store never holds up hits.
/// Cheap to clone: clones share the connections. Under `maxmemory`, prefer `noeviction`
/// or a `volatile-*` policy (the failure model in the crate documentation holds under any).
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
    /// Every operation but large stores.
    conn: Link,
    /// Stores of values over [`BULK`] bytes.
    bulk: Link,
    cluster: bool,
    url: String,
    options: RedisOptions,
    health: Health,
    scripts: Scripts,
    /// Where a near cache's subscription connects: the server, or each Cluster node in
    /// turn (a message published on any node reaches every node).
    pubsub: Vec<Client>,
}

/// A connection to one server, or to a Cluster; either reconnects by itself.
#[derive(Clone)]
enum Link {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Server(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Server(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// What the backend knows of the server's health: backoff after failures, and the grace
/// after them before hits are served again.
struct Health {
    origin: Instant,
    /// Nanoseconds since `origin` until which operations fail at once; 0 while Redis is up.
    down_until: AtomicU64,
    /// Timeouts in a row on the main connection.
    timeouts: AtomicU32,
    /// An operation failed, and none has succeeded since.
    troubled: AtomicBool,
    /// Nanoseconds since `origin` before which hits are not served.
    hits_from: AtomicU64,
    /// Failures so far: an operation clears `troubled` only if none happened while it ran
    /// (an answer to a request sent before an outage proves nothing about after it).
    failures: AtomicU64,
}

struct Scripts {
    release: Script,
    renew: Script,
    heartbeat: Script,
    hit: Script,
    versions: Script,
    store: Script,
    track: Script,
    bump: Script,
    pop: Script,
}

/// Values larger than this are stored over the second connection.
const BULK: usize = 64 << 10;

/// The prelude of every script that touches versions. KEYS[1]: the namespace's epoch key,
/// KEYS[2]: its versions hash.
///
/// The epoch key holds the run id of the server the versions were made on. Any other
/// server (this one restarted from an RDB or AOF file, a replica promoted by a failover)
/// may hold versions older than writes it acknowledged before: the versions are dropped,
/// so every entry from before is stale, and recreated at random values as reads need them.
/// `epoch_ok()` is false when the epoch cannot be written (out of memory): the versions are
/// gone then too, so nothing is served, and the next script tries again.
const EPOCH: &str = r"
local function epoch_ok()
  local info = redis.call('INFO', 'server')
  local run = string.match(info, 'run_id:(%x+)')
  if not run then
    -- Without a run id a restart cannot be told: serve nothing rather than guess.
    return false
  end
  local mark = redis.pcall('GET', KEYS[1])
  if mark == run then
    local kind = redis.call('TYPE', KEYS[2]).ok
    if kind ~= 'hash' and kind ~= 'none' then
      redis.call('DEL', KEYS[2])
    end
    return true
  end
  redis.call('UNLINK', KEYS[2])
  local set = redis.pcall('SET', KEYS[1], run)
  if type(set) == 'table' and set.err then
    redis.call('DEL', KEYS[1])
    return false
  end
  return true
end
-- A version as this backend writes it: at most 18 digits, so INCR never overflows.
local function valid(v)
  return type(v) == 'string' and #v <= 18 and string.match(v, '^%d+$') ~= nil
end
";

/// `hit`: the entry (when KEYS[3] is given) and the versions of the tables ARGV names.
/// Returns `{entry or nil, version or nil, ...}`, or `{}` when the epoch is unavailable.
const HIT: &str = r"
if not epoch_ok() then
  return {}
end
local out = {false}
if KEYS[3] then
  local entry = redis.pcall('GET', KEYS[3])
  if type(entry) == 'string' then
    out[1] = entry
  end
end
if #ARGV > 0 then
  local versions = redis.call('HMGET', KEYS[2], unpack(ARGV))
  for i = 1, #ARGV do
    if valid(versions[i]) then
      out[i + 1] = versions[i]
    else
      out[i + 1] = false
    end
  end
end
return out
";

/// `versions`: the current version of each table, creating missing ones.
/// ARGV: table, random start, table, random start, ... Returns the versions as strings
/// (Lua numbers are doubles).
const VERSIONS: &str = r"
if not epoch_ok() then
  return redis.error_reply('cache: the namespace epoch cannot be written (out of memory?)')
end
local out = {}
for i = 1, #ARGV, 2 do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if not valid(v) then
    -- Missing, or not ours: start at a random value, never at one that a read may have
    -- captured before the version was lost (which would make its stale entry look fresh).
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    v = ARGV[i + 1]
  end
  out[#out + 1] = v
end
return out
";

/// `store`: whether every table still has the captured version; when KEYS[3] is given
/// (one server), also stores the entry there.
/// ARGV: value, TTL in ms ('0': none), table, version, table, version, ...
/// Returns 1, or 0 when a version moved (nothing stored).
const STORE: &str = r"
if not epoch_ok() then
  return 0
end
for i = 3, #ARGV, 2 do
  -- A write completed since the load captured its versions: its result is stale.
  if redis.call('HGET', KEYS[2], ARGV[i]) ~= ARGV[i + 1] then
    return 0
  end
end
if KEYS[3] then
  if ARGV[2] == '0' then
    redis.call('SET', KEYS[3], ARGV[1])
  else
    redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
  end
end
return 1
";

/// `track`: adds ARGV[1] (an entry key) to the tracking set KEYS[1], keeping the newest
/// ARGV[2]. Returns the keys dropped from tracking, for the caller to delete.
const TRACK: &str = r"
local kind = redis.call('TYPE', KEYS[1]).ok
-- Only a foreign value is deleted: any write would let this script past Redis's
-- out-of-memory guard.
if kind ~= 'zset' and kind ~= 'none' then
  redis.call('DEL', KEYS[1])
end
-- Scores count up per set, so rank 0 is the key tracked longest ago.
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local score = 1
if last[2] then
  score = tonumber(last[2]) + 1
end
redis.call('ZADD', KEYS[1], score, ARGV[1])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[1], 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
  return old
end
return {}
";

/// `bump`: gives each table ARGV names a new version, then publishes the tables on the
/// namespace's channel for near caches. ARGV: table, random start, ..., channel.
///
/// Out of memory, Redis refuses the increment but not a delete: the version is deleted,
/// and comes back at a random value. Either way every entry tagged before is stale.
/// The message lists the tables as `<length>:<name>` each, so any name reads back whole.
const BUMP: &str = r"
epoch_ok()
local n = #ARGV - 1
local message = {}
for i = 1, n, 2 do
  message[#message + 1] = #ARGV[i] .. ':' .. ARGV[i]
end
for i = 1, n, 2 do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  local done
  if valid(v) then
    done = redis.pcall('HINCRBY', KEYS[2], ARGV[i], 1)
  else
    done = redis.pcall('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  if type(done) == 'table' and done.err then
    local deleted = redis.pcall('HDEL', KEYS[2], ARGV[i])
    if type(deleted) == 'table' and deleted.err then
      redis.call('DEL', KEYS[2])
    end
  end
end
redis.pcall('PUBLISH', ARGV[#ARGV], table.concat(message))
return 1
";

/// `release`: deletes the lease KEYS[1] if ARGV[1] (the holder's token) still holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 1
";

/// `renew`: extends the lease KEYS[1] to ARGV[2] ms if ARGV[1] still holds it; 1 if so.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// `heartbeat`: publishes ARGV[2] on ARGV[1] from the slot of KEYS[1] (the namespace's
/// epoch key, not read): where the bump scripts run and publish.
const HEARTBEAT: &str = r"
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
";

/// `pop`: the keys the tracking set KEYS[1] holds, deleting the set.
const POP: &str = r"
local keys = redis.pcall('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
if type(keys) ~= 'table' or keys.err then
  return {}
end
return keys
";

impl RedisBackend {
    /// Connects to `url` (`redis://[:password@]host[:port][/db]`, or `rediss://` with the
    /// `tls` features of the `redis` crate) and checks the server answers within the
    /// timeout.
    ///
    /// Call it inside a Tokio runtime: the connection runs on it.
    ///
    /// # Errors
    ///
    /// A [`BackendError`] when the URL is invalid or the server does not answer. To start
    /// an application while Redis is down, use [`RedisBackend::connect_lazy`].
    pub async fn connect(url: &str, options: RedisOptions) -> Result<RedisBackend, BackendError> {
        let backend = RedisBackend::connect_lazy(url, options).await?;
        backend.ping().await?;
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
            // Our own timeout bounds each operation; the client's must not fire first (it
            // would look like a dropped connection).
            .set_response_timeout(Some(options.timeout.saturating_mul(4)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(options.backoff.max(Duration::from_millis(50)));
        let open = |config: ConnectionManagerConfig| {
            ConnectionManager::new_lazy_with_config(client.clone(), config)
                .map_err(|e| BackendError::with_source("cannot create a Redis connection", e))
        };
        let conn = Link::Server(open(config.clone())?);
        let bulk = Link::Server(open(config)?);
        Ok(RedisBackend::build(
            conn,
            bulk,
            false,
            redact(url),
            options,
            vec![client],
        ))
    }

    /// Connects to a Redis Cluster through any of `nodes` (`redis://host:port` each; the
    /// others are discovered) and checks it answers within the timeout.
    ///
    /// The key layout spreads entries over every shard. What each operation costs there:
    ///
    /// - A hit is two reads in parallel, one round trip: the entry on its shard, and the
    ///   versions (a script) on the shard of the namespace's slot.
    /// - A store checks the versions (a script on the namespace's shard), sets the entry on
    ///   its shard, then tracks its key on the shard of each table's slot.
    /// - An invalidation bumps the versions (a script on the namespace's shard), then pops
    ///   each table's tracked keys (on the table's shard) and deletes them (on theirs).
    ///
    /// Every hit reads the namespace's shard, so it takes the whole read load of the
    /// namespace's version checks: give independent parts of an application namespaces of
    /// their own to spread them. A failover of any shard is handled as on one server.
    ///
    /// # Errors
    ///
    /// A [`BackendError`] when a URL is invalid or the Cluster does not answer.
    pub async fn connect_cluster(
        nodes: &[&str],
        options: RedisOptions,
    ) -> Result<RedisBackend, BackendError> {
        let client = ClusterClient::builder(nodes.iter().copied())
            .connection_timeout(options.timeout)
            .response_timeout(options.timeout.saturating_mul(4))
            .retries(2)
            .build()
            .map_err(|e| {
                BackendError::with_source(format!("invalid Cluster nodes {nodes:?}"), e)
            })?;
        let connect = || async {
            tokio::time::timeout(
                options.timeout.max(Duration::from_secs(1)),
                client.get_async_connection(),
            )
            .await
            .map_err(|_| BackendError::new(format!("Redis Cluster {nodes:?} did not answer")))?
            .map_err(|e| {
                BackendError::with_source(format!("cannot connect to Redis Cluster {nodes:?}"), e)
            })
        };
        let conn = Link::Cluster(connect().await?);
        let bulk = Link::Cluster(connect().await?);
        let url = nodes
            .iter()
            .map(|n| redact(n))
            .collect::<Vec<_>>()
            .join(",");
        let pubsub = nodes
            .iter()
            .filter_map(|node| Client::open(*node).ok())
            .collect();
        let backend = RedisBackend::build(conn, bulk, true, url, options, pubsub);
        backend.ping().await?;
        Ok(backend)
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

    fn build(
        conn: Link,
        bulk: Link,
        cluster: bool,
        url: String,
        options: RedisOptions,
        pubsub: Vec<Client>,
    ) -> RedisBackend {
        RedisBackend {
            inner: Arc::new(Inner {
                conn,
                bulk,
                cluster,
                url,
                pubsub,
                options,
                health: Health {
                    origin: Instant::now(),
                    down_until: AtomicU64::new(0),
                    timeouts: AtomicU32::new(0),
                    troubled: AtomicBool::new(false),
                    hits_from: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                },
                scripts: Scripts {
                    release: Script::new(RELEASE),
                    renew: Script::new(RENEW),
                    heartbeat: Script::new(HEARTBEAT),
                    hit: script(HIT),
                    versions: script(VERSIONS),
                    store: script(STORE),
                    track: Script::new(TRACK),
                    bump: script(BUMP),
                    pop: Script::new(POP),
                },
            }),
        }
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.run("PING", false, |mut conn| async move {
            redis::cmd("PING").query_async::<()>(&mut conn).await
        })
        .await
    }

    /// Runs one Redis operation: fails at once while backing off, bounds it by the timeout,
    /// and keeps the server's health (see [`Health`]). `bulk`: on the bulk connection; a
    /// timeout there fails the one operation, never puts the backend in backoff.
    async fn run<T, F, Fut>(&self, op: &'static str, bulk: bool, f: F) -> Result<T, BackendError>
    where
        F: FnOnce(Link) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let inner = &self.inner;
        let health = &inner.health;
        let until = health.down_until.load(Ordering::Relaxed);
        if until != 0 && self.now() < until {
            return Err(BackendError::new(format!(
                "Redis at {} is unavailable (backing off after a failure); {op} skipped",
                inner.url
            )));
        }
        let link = if bulk { &inner.bulk } else { &inner.conn };
        let failures = health.failures.load(Ordering::Acquire);
        let outcome = tokio::time::timeout(inner.options.timeout, f(link.clone())).await;
        match outcome {
            Ok(Ok(value)) => {
                if health.down_until.load(Ordering::Relaxed) != 0 {
                    health.down_until.store(0, Ordering::Relaxed);
                }
                if !bulk {
                    health.timeouts.store(0, Ordering::Relaxed);
                }
                // Grace first, then clear: a hit never sees "not troubled" with an old
                // grace. And only if nothing failed while this ran.
                if health.troubled.load(Ordering::Acquire)
                    && health.failures.load(Ordering::Acquire) == failures
                {
                    let grace = inner.options.get_reconnect_grace();
                    let from = self.now().saturating_add(nanos(grace));
                    health.hits_from.store(from, Ordering::Release);
                    let cleared = health
                        .troubled
                        .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok();
                    // A failure counted meanwhile stands.
                    if cleared && health.failures.load(Ordering::Acquire) != failures {
                        health.troubled.store(true, Ordering::Release);
                    }
                }
                Ok(value)
            }
            Ok(Err(e)) if !e.is_timeout() => {
                if is_connection_error(&e) {
                    self.back_off();
                }
                if !is_refusal(&e) {
                    self.failed();
                }
                Err(BackendError::with_source(
                    format!("Redis {op} at {} failed", inner.url),
                    e,
                ))
            }
            // Our timeout, or the client's.
            _ => {
                // One slow operation (a large value, on the bulk connection) fails alone;
                // two timeouts in a row on the connection hits use are an outage.
                if !bulk {
                    self.failed();
                    if health.timeouts.fetch_add(1, Ordering::Relaxed) >= 1 {
                        self.back_off();
                    }
                }
                Err(BackendError::new(format!(
                    "Redis {op} at {} timed out after {:?}",
                    inner.url, inner.options.timeout
                )))
            }
        }
    }

    /// Records a failure: hits stop until the grace after the next success.
    fn failed(&self) {
        let health = &self.inner.health;
        health.failures.fetch_add(1, Ordering::AcqRel);
        health.troubled.store(true, Ordering::Release);
    }

    /// Whether hits may be served: not within the grace after a failure.
    fn hits_allowed(&self) -> bool {
        let health = &self.inner.health;
        if health.troubled.load(Ordering::Acquire) {
            return false;
        }
        let from = health.hits_from.load(Ordering::Acquire);
        from == 0 || self.now() >= from
    }

    fn now(&self) -> u64 {
        nanos(self.inner.health.origin.elapsed())
    }

    fn back_off(&self) {
        let until = self
            .now()
            .saturating_add(nanos(self.inner.options.backoff))
            .max(1);
        self.inner.health.down_until.store(until, Ordering::Relaxed);
    }

    /// Deletes `keys`, in batches (a Cluster splits each batch by slot).
    async fn unlink<K: redis::ToRedisArgs + Sync>(&self, keys: &[K]) -> Result<(), BackendError> {
        for chunk in keys.chunks(BATCH) {
            self.run("UNLINK", false, |mut conn| async move {
                redis::cmd("UNLINK")
                    .arg(chunk)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await?;
        }
        Ok(())
    }

    /// The masters' addresses: one server's, or every Cluster master's.
    async fn masters(&self) -> Result<Vec<Option<(String, u16)>>, BackendError> {
        if !self.inner.cluster {
            return Ok(vec![None]);
        }
        let nodes = self
            .run("CLUSTER NODES", false, |mut conn| async move {
                redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async::<String>(&mut conn)
                    .await
            })
            .await?;
        Ok(masters_of(&nodes).into_iter().map(Some).collect())
    }
}

/// A script with the shared prelude.
fn script(body: &str) -> Script {
    Script::new(&format!("{EPOCH}{body}"))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The `host:port` of every master, from `CLUSTER NODES`: a failing one included, so that
/// clearing fails loudly rather than skipping it.
fn masters_of(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags: Vec<&str> = fields.get(2)?.split(',').collect();
            if !flags.contains(&"master") {
                return None;
            }
            let addr = fields.get(1)?.split('@').next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// Errors that say the server cannot be reached (as opposed to a command it refused, or
/// one that was slow).
fn is_connection_error(e: &RedisError) -> bool {
    (e.is_io_error() && !e.is_timeout())
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

/// Errors that say the server refused one command (out of memory, a wrong type), as
/// opposed to it being unreachable, loading, or changing hands.
fn is_refusal(e: &RedisError) -> bool {
    matches!(e.code(), Some("OOM" | "ERR" | "WRONGTYPE" | "NOSCRIPT"))
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
/// no `:`, `{` or `}` (so it cannot be mistaken for another key kind, nor change a key's
/// Cluster slot) and two names never encode alike.
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

/// A lease's longest `PX`, for a TTL `expiry_ms` cannot represent: a lease always expires.
const LEASE_MAX_MS: u64 = 1 << 45;

/// `ns:<hex>:lease`: an entry's fill lease (entry keys end in their 64 hex digits).
fn lease_key(entry: &str) -> String {
    format!("{entry}:lease")
}

/// `{ns}:epoch`: in the namespace's Cluster slot (the namespace has no braces: Settings
/// rejects them).
fn epoch_key(namespace: &str) -> String {
    format!("{{{namespace}}}:epoch")
}

/// `{ns}:v`, the namespace's versions hash, in the epoch's slot.
fn versions_key(namespace: &str) -> String {
    format!("{{{namespace}}}:v")
}

/// `{ns:k:table}`: the table's tracking set, in a slot of the table's own.
fn tracking_key(namespace: &str, table: &str) -> String {
    format!("{{{namespace}:k:{}}}", encode_table(table))
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
            .field("cluster", &self.inner.cluster)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Backend for RedisBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        self.run("GET", false, move |mut conn| async move {
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
        let bulk = value.len() > BULK;
        self.run("SET", bulk, move |mut conn| async move {
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
        self.unlink(keys).await
    }

    /// Deletes every key starting with `prefix`, on every master; for a prefix
    /// `{namespace}:`, also the namespace's versions and tracking sets, so every load in
    /// flight becomes stale.
    async fn clear_prefix(&self, prefix: &str) -> Result<(), BackendError> {
        let mut patterns = vec![format!("{}*", glob_escape(prefix))];
        if let Some(namespace) = prefix.strip_suffix(':') {
            let namespace = glob_escape(namespace);
            patterns.push(format!("{{{namespace}}}:*"));
            patterns.push(format!("{{{namespace}:k:*"));
        }
        for master in self.masters().await? {
            for pattern in &patterns {
                self.clear_matching(master.as_ref(), pattern).await?;
            }
        }
        // Near caches drop every copy: a clear is no bump of any table.
        if let Some(namespace) = prefix.strip_suffix(':') {
            self.run("PUBLISH (reset)", false, |mut conn| async move {
                redis::cmd("PUBLISH")
                    .arg(push::channel(namespace))
                    .arg(push::RESET)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await?;
        }
        Ok(())
    }
}

impl RedisBackend {
    /// Publishes a near cache's heartbeat the way bumps publish (see [`push`]).
    async fn publish_heartbeat(&self, namespace: &str, nonce: u64) -> Result<(), BackendError> {
        let payload = [push::HEARTBEAT, nonce.to_string().as_bytes()].concat();
        self.run("heartbeat script", false, |mut conn| async move {
            let mut call = self.inner.scripts.heartbeat.prepare_invoke();
            call.key(epoch_key(namespace))
                .arg(push::channel(namespace))
                .arg(payload);
            call.invoke_async::<()>(&mut conn).await
        })
        .await
    }

    /// `SCAN MATCH pattern` on one server (`None`: the only one) and deletes what it finds.
    async fn clear_matching(
        &self,
        master: Option<&(String, u16)>,
        pattern: &str,
    ) -> Result<(), BackendError> {
        let mut cursor = 0_u64;
        // Each step is bounded by the timeout; the whole scan is as long as the keyspace.
        loop {
            let (next, keys) = self
                .run("SCAN", false, |mut conn| async move {
                    let mut cmd = redis::cmd("SCAN");
                    cmd.arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000);
                    match (master, &mut conn) {
                        (Some((host, port)), Link::Cluster(cluster)) => {
                            let routing =
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                    host: host.clone(),
                                    port: *port,
                                });
                            let value = cluster.route_command(cmd, routing).await?;
                            redis::from_redis_value::<(u64, Vec<Vec<u8>>)>(value)
                                .map_err(RedisError::from)
                        }
                        _ => cmd.query_async::<(u64, Vec<Vec<u8>>)>(&mut conn).await,
                    }
                })
                .await?;
            self.unlink(&keys).await?;
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// Tracks `key` under each table, returning how many old keys were dropped (and
    /// deleted) to keep each within `max_keys`.
    async fn track(
        &self,
        namespace: &str,
        key: &str,
        tables: impl Iterator<Item = &str>,
        max_keys: usize,
    ) -> Result<usize, BackendError> {
        let mut dropped = Vec::new();
        for table in tables {
            let set = tracking_key(namespace, table);
            let old = self
                .run("track script", false, |mut conn| async move {
                    let mut call = self.inner.scripts.track.prepare_invoke();
                    call.key(set).arg(key).arg(max_keys.max(1));
                    call.invoke_async::<Vec<Vec<u8>>>(&mut conn).await
                })
                .await?;
            dropped.extend(old);
        }
        self.unlink(&dropped).await?;
        Ok(dropped.len())
    }
}

#[async_trait]
impl SharedBackend for RedisBackend {
    async fn versions(&self, namespace: &str, tables: &[&str]) -> Result<Vec<u64>, BackendError> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        let raw = self
            .run("versions script", false, |mut conn| async move {
                let mut call = self.inner.scripts.versions.prepare_invoke();
                call.key(epoch_key(namespace)).key(versions_key(namespace));
                for (i, table) in tables.iter().enumerate() {
                    call.arg(*table).arg(fresh_version(i));
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
        if !self.hits_allowed() {
            return Ok((None, vec![0; tables.len()]));
        }
        if tables.is_empty() {
            return Ok((self.get(key).await?, Vec::new()));
        }
        let check = |entry: bool| {
            self.run("hit script", false, move |mut conn| async move {
                let mut call = self.inner.scripts.hit.prepare_invoke();
                call.key(epoch_key(namespace)).key(versions_key(namespace));
                if entry {
                    call.key(key);
                }
                for table in tables {
                    call.arg(*table);
                }
                call.invoke_async::<Vec<Option<Vec<u8>>>>(&mut conn).await
            })
        };
        let (entry, values) = if self.inner.cluster {
            // The entry lives on a shard of its own: read it beside the versions.
            let (entry, values) = futures_util::future::join(self.get(key), check(false)).await;
            (entry?, values?)
        } else {
            let mut values = check(true).await?;
            let entry = values.first_mut().and_then(Option::take);
            (entry, values)
        };
        if values.len() != tables.len() + 1 {
            // The epoch is unavailable (out of memory): nothing is current.
            return Ok((None, vec![0; tables.len()]));
        }
        let versions = values[1..]
            .iter()
            .map(|v| parse_version(v.as_deref()))
            .collect();
        Ok((entry, versions))
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
        let cluster = self.inner.cluster;
        let ms = expiry_ms(ttl).unwrap_or(0);
        let bulk = value.len() > BULK;
        let (stored, value) = self
            .run("store script", bulk && !cluster, |mut conn| async move {
                let mut call = self.inner.scripts.store.prepare_invoke();
                call.key(epoch_key(namespace)).key(versions_key(namespace));
                if cluster {
                    call.arg(&[] as &[u8]);
                } else {
                    call.key(key).arg(&value[..]);
                }
                call.arg(ms);
                for (table, version) in tags {
                    call.arg(*table).arg(version.to_string());
                }
                let stored = call.invoke_async::<i64>(&mut conn).await?;
                Ok((stored, value))
            })
            .await?;
        if stored != 1 {
            return Ok(StoreOutcome::Stale);
        }
        if cluster {
            // Checked first, then stored: a bump in between leaves a stale entry, which
            // every hit rejects by its tags.
            self.set(key, value, ttl).await?;
        }
        let evicted = self
            .track(namespace, key, tags.iter().map(|(t, _)| *t), max_keys)
            .await?;
        Ok(StoreOutcome::Stored { evicted })
    }

    async fn bump(&self, namespace: &str, tables: &[&str]) -> Result<(), BackendError> {
        if tables.is_empty() {
            return Ok(());
        }
        self.run("bump script", false, |mut conn| async move {
            let mut call = self.inner.scripts.bump.prepare_invoke();
            call.key(epoch_key(namespace)).key(versions_key(namespace));
            for (i, table) in tables.iter().enumerate() {
                call.arg(*table).arg(fresh_version(i));
            }
            call.arg(push::channel(namespace));
            call.invoke_async::<()>(&mut conn).await
        })
        .await?;
        // The invalidation has taken effect; deleting the entries only frees memory, and a
        // failure here leaves them to their TTL (or to the table's tracking bound).
        for table in tables {
            let set = tracking_key(namespace, table);
            let keys = self
                .run("pop script", false, |mut conn| async move {
                    let mut call = self.inner.scripts.pop.prepare_invoke();
                    call.key(set);
                    call.invoke_async::<Vec<Vec<u8>>>(&mut conn).await
                })
                .await;
            if let Ok(keys) = keys {
                let _ = self.unlink(&keys).await;
            }
        }
        Ok(())
    }

    async fn tracked(&self, namespace: &str, table: &str) -> Result<usize, BackendError> {
        self.run("ZCARD", false, move |mut conn| async move {
            redis::cmd("ZCARD")
                .arg(tracking_key(namespace, table))
                .query_async::<usize>(&mut conn)
                .await
        })
        .await
    }

    fn leases(&self) -> bool {
        true
    }

    /// `SET <key>:lease <token> NX PX <ttl>`: the lease is a key of its own next to the
    /// entry (in no slot of the namespace's), gone by itself after `ttl`.
    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<Option<u64>, BackendError> {
        let token = fresh_version(0);
        let name = lease_key(key);
        let ms = expiry_ms(Some(ttl)).unwrap_or(LEASE_MAX_MS);
        let set: Option<String> = self
            .run("SET NX (lease)", false, |mut conn| async move {
                redis::cmd("SET")
                    .arg(&name)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(set.map(|_| token))
    }

    /// Deletes the lease if `token` still holds it (a script: compare, then delete).
    async fn release_lease(&self, key: &str, token: u64) -> Result<(), BackendError> {
        let name = lease_key(key);
        self.run("release script", false, |mut conn| async move {
            let mut call = self.inner.scripts.release.prepare_invoke();
            call.key(name).arg(token);
            call.invoke_async::<()>(&mut conn).await
        })
        .await
    }

    /// Subscribes to the namespace's channel, on which every bump publishes its tables
    /// (the `push` module), on a connection of its own, from a task on the current Tokio
    /// runtime.
    fn subscribe(&self, namespace: &str, sink: InvalidationSink) -> Result<(), BackendError> {
        push::subscribe(self.clone(), namespace.to_owned(), sink)
    }

    async fn renew_lease(
        &self,
        key: &str,
        token: u64,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let name = lease_key(key);
        let ms = expiry_ms(Some(ttl)).unwrap_or(LEASE_MAX_MS);
        self.run("renew script", false, |mut conn| async move {
            let mut call = self.inner.scripts.renew.prepare_invoke();
            call.key(name).arg(token).arg(ms);
            call.invoke_async::<bool>(&mut conn).await
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
        // Entry keys are `ns:` + 64 hex digits; ours start with `{`.
        for table in ["users", "a:b", "v:x", "k", "%3A", "é", "", "{x}", "a}b"] {
            let k = tracking_key("ns", table);
            let tag = &k[1..k.find('}').expect("a hash tag")];
            assert_eq!(
                tag,
                &k[1..k.len() - 1],
                "{k}: the whole name is the hash tag"
            );
            assert!(!tag["ns:k:".len()..].contains([':', '{', '}']), "{k}");
        }
        assert_ne!(tracking_key("ns", "a:b"), tracking_key("ns", "a%3Ab"));
        assert_eq!(tracking_key("ns", "public.users"), "{ns:k:public.users}");
        assert_eq!(tracking_key("ns", "a b:c"), "{ns:k:a%20b%3Ac}");
        assert_eq!(epoch_key("ns"), "{ns}:epoch");
        assert_eq!(versions_key("ns"), "{ns}:v");
    }

    #[test]
    fn cluster_masters_are_read_from_cluster_nodes() {
        let nodes = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003 master,fail - 0 1426238318243 3 connected
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
";
        assert_eq!(
            masters_of(nodes),
            [
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30003),
                ("127.0.0.1".to_owned(), 30001)
            ],
            "a failing master is listed: clearing it fails loudly instead of skipping it"
        );
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

/// The cache `settings` describe: shared through Redis when [`Settings::redis_url`] is
/// set (a [`RedisBackend`] with [`RedisOptions::from_settings`], one server), in process
/// memory otherwise. With [`Settings::from_env`], a service configures its cache from the
/// environment alone:
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // APP_CACHE_REDIS_URL=redis://cache:6379 APP_CACHE_DEFAULT_TTL=5m
/// let settings = cache_runtime::Settings::from_env("APP_CACHE_")?;
/// let cache = cache_redis::open(settings).await?;
/// # Ok(()) }
/// ```
///
/// Call it inside a Tokio runtime.
///
/// # Errors
///
/// [`OpenError::Settings`] for invalid settings; [`OpenError::Redis`] when the URL is
/// invalid or the server does not answer (a service that must start while Redis is down
/// builds its cache with [`RedisBackend::connect_lazy`] instead).
pub async fn open(settings: Settings) -> Result<cache_runtime::Cache, OpenError> {
    settings.validate().map_err(OpenError::Settings)?;
    match settings.redis_url.clone() {
        None => cache_runtime::Cache::new(settings).map_err(OpenError::Settings),
        Some(url) => {
            let backend = RedisBackend::from_settings(&url, &settings)
                .await
                .map_err(OpenError::Redis)?;
            cache_runtime::Cache::with_shared_backend(settings, backend)
                .map_err(OpenError::Settings)
        }
    }
}

/// Why [`open`] built no cache.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// A setting is invalid.
    Settings(cache_runtime::SettingsError),
    /// Redis could not be reached, or its URL is invalid.
    Redis(BackendError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Settings(e) => e.fmt(f),
            OpenError::Redis(e) => write!(f, "settings.redis_url: {e}"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Settings(e) => Some(e),
            OpenError::Redis(e) => Some(e),
        }
    }
}
