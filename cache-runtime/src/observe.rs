//! What each cached call did: its [`Outcome`], counted per function ([`FunctionStats`]),
//! reported to an enclosing [`observe`] scope (a `Cache-Status` header), and logged as a
//! `tracing` event.

use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::key::{Key, function_name};
use crate::stats::Counter;

/// What one cached call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Served from the cache.
    Hit,
    /// No entry: the query ran and its value was stored.
    Miss,
    /// No entry, but another caller was loading the key: its value was shared.
    Coalesced,
    /// The entry was read before a write to one of its tables: the query ran again.
    Stale,
    /// The entry was past its TTL: the query ran again.
    Expired,
    /// The cache was not used: `ttl = false`, a disabled cache, a connection inside a
    /// transaction, or arguments that could not be keyed.
    Bypass,
    /// Served from the cache past its TTL (within `swr`) while another caller refreshed it.
    ServedStale,
    /// The query failed: the last good value was served (within `stale_on_error`).
    StaleOnError,
}

impl Outcome {
    /// The outcome's name: `hit`, `miss`, `coalesced`, `stale`, `expired`, `bypass`,
    /// `served_stale` or `stale_on_error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Coalesced => "coalesced",
            Outcome::Stale => "stale",
            Outcome::Expired => "expired",
            Outcome::Bypass => "bypass",
            Outcome::ServedStale => "served_stale",
            Outcome::StaleOnError => "stale_on_error",
        }
    }

    /// Whether the value came from the cache: a hit, or an entry served past its TTL. (A
    /// coalesced call got another caller's fresh query result, not a cached entry.)
    pub const fn served_from_cache(self) -> bool {
        matches!(
            self,
            Outcome::Hit | Outcome::ServedStale | Outcome::StaleOnError
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// ----- why the last lookup on this thread discarded an entry -----

thread_local! {
    /// Set when a store discards an entry (stale or expired) and read by the miss path in
    /// the same poll, so that the call's outcome says why it missed.
    static DISCARDED: Cell<Option<Outcome>> = const { Cell::new(None) };
}

#[inline]
pub(crate) fn note_discard(counter: Counter) {
    let why = match counter {
        Counter::Stale => Outcome::Stale,
        Counter::Expired => Outcome::Expired,
        _ => return,
    };
    DISCARDED.with(|d| d.set(Some(why)));
}

/// The reason noted by the last discard on this thread, cleared.
pub(crate) fn take_discard() -> Option<Outcome> {
    DISCARDED.with(Cell::take)
}

// ----- the calls of one scope: `observe` -----

/// How the cached calls inside one [`observe`] scope were served.
///
/// ```
/// use cache_runtime::{Cache, Served, Settings, cached, observe};
///
/// #[cached(table = "users", ttl = "60s")]
/// async fn user_name(cache: &Cache, id: i64) -> Result<String, std::io::Error> {
///     Ok(format!("user {id}"))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let cache = Cache::new(Settings::default()).unwrap();
/// let (_, served) = observe(user_name(&cache, 1)).await;
/// assert_eq!(served.cache_status("sqlx-cache"), "sqlx-cache; fwd=miss");
/// let (_, served) = observe(user_name(&cache, 1)).await;
/// assert!(served.all_hits());
/// assert_eq!(served.cache_status("sqlx-cache"), "sqlx-cache; hit");
/// # })
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Served {
    /// Calls served from the cache.
    pub hits: u32,
    /// Calls that ran their query because there was no entry (coalesced loads included).
    pub misses: u32,
    /// Calls that ran their query because the entry was stale (a write) or expired.
    pub stale: u32,
    /// Calls that did not use the cache.
    pub bypassed: u32,
    /// Calls served an entry past its TTL: hits while another caller refreshed it (`swr`),
    /// and misses whose query failed (`stale_on_error`).
    pub served_stale: u32,
}

impl Served {
    /// How many cached calls ran inside the scope.
    pub fn calls(&self) -> u32 {
        self.hits + self.misses + self.stale + self.bypassed
    }

    /// Whether at least one call ran and every call was a hit.
    pub fn all_hits(&self) -> bool {
        self.hits > 0 && self.calls() == self.hits
    }

    /// An RFC 9211 `Cache-Status` header value for a response built from these calls:
    /// `"<name>; hit"` when every call hit, else `"<name>; fwd=<reason>"` for the worst of
    /// them (`bypass`, then `stale`, then `miss`); `"<name>; fwd=bypass"` when no call was
    /// cached at all.
    pub fn cache_status(&self, name: &str) -> String {
        let forward = if self.all_hits() {
            if self.served_stale > 0 {
                return format!("{name}; hit; detail=stale");
            }
            return format!("{name}; hit");
        } else if self.bypassed > 0 || self.calls() == 0 {
            "bypass"
        } else if self.stale > 0 {
            "stale"
        } else {
            "miss"
        };
        format!("{name}; fwd={forward}")
    }

    fn add(&mut self, outcome: Outcome) {
        if matches!(outcome, Outcome::ServedStale | Outcome::StaleOnError) {
            self.served_stale = self.served_stale.saturating_add(1);
        }
        let n = match outcome {
            Outcome::Hit | Outcome::ServedStale => &mut self.hits,
            Outcome::Miss | Outcome::Coalesced | Outcome::StaleOnError => &mut self.misses,
            Outcome::Stale | Outcome::Expired => &mut self.stale,
            Outcome::Bypass => &mut self.bypassed,
        };
        *n = n.saturating_add(1);
    }

    fn merge(&mut self, other: Served) {
        self.hits = self.hits.saturating_add(other.hits);
        self.misses = self.misses.saturating_add(other.misses);
        self.stale = self.stale.saturating_add(other.stale);
        self.bypassed = self.bypassed.saturating_add(other.bypassed);
        self.served_stale = self.served_stale.saturating_add(other.served_stale);
    }
}

tokio::task_local! {
    static SCOPE: Cell<Served>;
}

/// How many `observe` scopes are running in the process: while none is, a call skips the
/// task-local lookup.
static SCOPES: AtomicU64 = AtomicU64::new(0);

/// Counts `outcome` in the enclosing `observe` scope, if there is one.
#[inline]
fn served(outcome: Outcome) {
    if SCOPES.load(Relaxed) != 0 {
        let _ = SCOPE.try_with(|served| {
            let mut now = served.get();
            now.add(outcome);
            served.set(now);
        });
    }
}

/// Decrements [`SCOPES`] however the scope ends (a dropped future included).
struct ScopeCount;

impl Drop for ScopeCount {
    fn drop(&mut self) {
        SCOPES.fetch_sub(1, Relaxed);
    }
}

/// Runs `future` and reports how the cached calls it made were served (every cache, every
/// call awaited inside it, however deep): for a `Cache-Status` header, or a log line per
/// request. Scopes nest: an inner scope's calls count in the outer one too. Calls in tasks
/// `future` spawns are not counted.
pub async fn observe<F: Future>(future: F) -> (F::Output, Served) {
    SCOPES.fetch_add(1, Relaxed);
    let _count = ScopeCount;
    let (output, served) = SCOPE
        .scope(Cell::new(Served::default()), async {
            let output = future.await;
            (output, SCOPE.with(Cell::get))
        })
        .await;
    let _ = SCOPE.try_with(|outer| {
        let mut total = outer.get();
        total.merge(served);
        outer.set(total);
    });
    (output, served)
}

// ----- per function -----

/// The counters of one cached function in one cache, from
/// [`Cache::function_stats`](crate::Cache::function_stats).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct FunctionStats {
    /// The function: its `name = "..."`, or its path (`app::repo::Users::find`).
    pub function: String,
    /// Calls served from the cache.
    pub hits: u64,
    /// Calls that found no usable entry (coalesced, stale and expired ones included).
    pub misses: u64,
    /// Misses that shared another caller's load.
    pub coalesced: u64,
    /// Misses whose entry was stale (a write to one of its tables).
    pub stale: u64,
    /// Misses whose entry had expired.
    pub expired: u64,
    /// Calls that did not use the cache.
    pub bypassed: u64,
    /// Total time of the calls that ran their query (misses and bypasses), in
    /// microseconds.
    pub load_micros: u64,
    /// Hits re-checked against the database by the freshness sampler.
    pub freshness_checks: u64,
    /// Re-checks whose fresh value differed from the cached one, with no write in between.
    pub freshness_mismatches: u64,
    /// Of the hits, entries served past their TTL while another caller refreshed them.
    pub served_stale: u64,
    /// Of the misses, those whose query failed and that were served the last good value.
    pub stale_on_error: u64,
}

/// Counters per stripe: hits, misses, coalesced, stale, expired, bypassed, load nanos.
const SLOTS: usize = 7;
/// Functions per lazily allocated chunk of slots, and chunks: ids past `CHUNK * CHUNKS`
/// (65,536 functions) are counted in the totals only.
const CHUNK: usize = 64;
const CHUNKS: usize = 1024;

#[repr(align(64))]
#[derive(Default)]
struct Stripe([AtomicU64; SLOTS]);

/// One function's counters, striped by thread like the totals (`stats::Counters`): each of
/// the first [`OWNED`] threads owns a stripe, so a hit counts with a plain load and store
/// on a line no other core writes; later threads share the last stripe, atomically.
struct Function {
    stripes: Box<[Stripe]>,
    checks: AtomicU64,
    mismatches: AtomicU64,
    /// Rare paths, counted atomically outside the stripes.
    served_stale: AtomicU64,
    stale_on_error: AtomicU64,
}

const OWNED: usize = crate::stats::OWNED;

impl Default for Function {
    fn default() -> Function {
        Function {
            stripes: (0..=OWNED).map(|_| Stripe::default()).collect(),
            checks: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
            served_stale: AtomicU64::new(0),
            stale_on_error: AtomicU64::new(0),
        }
    }
}

/// Per-function counters of one cache, indexed by scope id (dense, interned); a
/// function's counters are allocated when it is first counted.
pub(crate) struct Functions {
    chunks: Box<[OnceLock<Chunk>]>,
}

/// [`CHUNK`] functions' counters, each allocated when first counted.
type Chunk = Box<[OnceLock<Function>]>;

impl Default for Functions {
    fn default() -> Functions {
        Functions {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl Functions {
    #[inline]
    fn get(&self, scope: u32) -> Option<&Function> {
        let (chunk, at) = (scope as usize / CHUNK, scope as usize % CHUNK);
        let chunk = self.chunks.get(chunk)?;
        match chunk.get().and_then(|c| c[at].get()) {
            Some(function) => Some(function),
            None => Some(Functions::allocate(chunk, at)),
        }
    }

    #[cold]
    #[inline(never)]
    fn allocate(chunk: &OnceLock<Chunk>, at: usize) -> &Function {
        let chunk = chunk.get_or_init(|| (0..CHUNK).map(|_| OnceLock::new()).collect());
        chunk[at].get_or_init(Function::default)
    }

    /// Counts one call of the function `scope`; `spent` for calls that ran their query.
    #[inline]
    fn count(&self, scope: u32, outcome: Outcome, spent: Option<Duration>) {
        let Some(function) = self.get(scope) else {
            return;
        };
        let index = crate::stats::stripe_index();
        let stripe = &function.stripes[index.min(OWNED)].0;
        let add = |slot: usize, n: u64| {
            let c = &stripe[slot];
            if index < OWNED {
                // This thread is the stripe's only writer.
                c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
            } else {
                c.fetch_add(n, Relaxed);
            }
        };
        match outcome {
            Outcome::Hit => add(0, 1),
            Outcome::Miss => add(1, 1),
            Outcome::Coalesced => {
                add(1, 1);
                add(2, 1);
            }
            Outcome::Stale => {
                add(1, 1);
                add(3, 1);
            }
            Outcome::Expired => {
                add(1, 1);
                add(4, 1);
            }
            Outcome::Bypass => add(5, 1),
            Outcome::ServedStale => {
                add(0, 1);
                function.served_stale.fetch_add(1, Relaxed);
            }
            Outcome::StaleOnError => {
                add(1, 1);
                function.stale_on_error.fetch_add(1, Relaxed);
            }
        }
        if let Some(spent) = spent {
            add(6, u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX));
        }
    }

    pub(crate) fn freshness(&self, scope: u32, mismatch: bool) {
        if let Some(function) = self.get(scope) {
            function.checks.fetch_add(1, Relaxed);
            if mismatch {
                function.mismatches.fetch_add(1, Relaxed);
            }
        }
    }

    /// Every function counted so far, busiest first.
    pub(crate) fn snapshot(&self) -> Vec<FunctionStats> {
        let mut out = Vec::new();
        for (c, chunk) in self.chunks.iter().enumerate() {
            let Some(chunk) = chunk.get() else { continue };
            for (i, function) in chunk.iter().enumerate() {
                let Some(function) = function.get() else {
                    continue;
                };
                let sum = |slot: usize| {
                    function
                        .stripes
                        .iter()
                        .map(|s| s.0[slot].load(Relaxed))
                        .fold(0_u64, u64::wrapping_add)
                };
                let stats = FunctionStats {
                    function: String::new(),
                    hits: sum(0),
                    misses: sum(1),
                    coalesced: sum(2),
                    stale: sum(3),
                    expired: sum(4),
                    bypassed: sum(5),
                    load_micros: sum(6) / 1_000,
                    freshness_checks: function.checks.load(Relaxed),
                    freshness_mismatches: function.mismatches.load(Relaxed),
                    served_stale: function.served_stale.load(Relaxed),
                    stale_on_error: function.stale_on_error.load(Relaxed),
                };
                if stats.hits + stats.misses + stats.bypassed > 0 {
                    let id = u32::try_from(c * CHUNK + i).unwrap_or(u32::MAX);
                    out.push(FunctionStats {
                        function: function_name(id).to_string(),
                        ..stats
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (b.hits + b.misses + b.bypassed)
                .cmp(&(a.hits + a.misses + a.bypassed))
                .then_with(|| a.function.cmp(&b.function))
        });
        out
    }
}

// ----- the freshness sampler -----

thread_local! {
    /// This thread's sampling dice (xorshift64), seeded from the thread's address.
    static DICE: Cell<u64> = const { Cell::new(0) };
    /// Set when the in-memory hit path skipped a hit to have it re-checked, and taken by
    /// the miss path in the same poll.
    static SAMPLED: Cell<bool> = const { Cell::new(false) };
}

/// The sampler's threshold for a fraction of hits: 0 (off) for 0, `u64::MAX` for 1.
pub(crate) fn threshold(fraction: f64) -> u64 {
    if fraction <= 0.0 || fraction.is_nan() {
        0
    } else if fraction >= 1.0 {
        u64::MAX
    } else {
        // In (0, 1): the product is below 2^64, and at least 1 so the sampler stays on.
        ((fraction * u64::MAX as f64) as u64).max(1)
    }
}

/// Whether this hit is one of the sampled fraction (`threshold` from [`threshold`], not 0).
#[inline]
pub(crate) fn sample_due(threshold: u64) -> bool {
    DICE.with(|dice| {
        let mut x = dice.get();
        if x == 0 {
            x = (std::ptr::from_ref(dice) as u64) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        dice.set(x);
        x <= threshold
    })
}

/// Marks the current call (this poll) as sampled.
pub(crate) fn mark_sampled() {
    SAMPLED.with(|s| s.set(true));
}

/// Whether the in-memory hit path marked this call as sampled, cleared.
pub(crate) fn take_sampled() -> bool {
    SAMPLED.with(Cell::take)
}

/// Whether a cached and a fresh value are the same, compared by their canonical encoding
/// (maps and sets sorted, so a `HashMap`'s order does not count); `None` when either
/// cannot be encoded.
pub(crate) fn same_value<V: serde::Serialize>(cached: &V, fresh: &V) -> Option<bool> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    crate::key::encoder::encode(&mut a, cached).ok()?;
    crate::key::encoder::encode(&mut b, fresh).ok()?;
    Some(a == b)
}

/// The first 8 bytes of a key's digest in hex: enough to tell keys apart in a log, and to
/// find the entry (`<namespace>:<digest>…`) in a shared backend.
pub(crate) fn short_digest(key: &Key) -> String {
    key.digest()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ----- one call -----

/// When tracing wants hit events, the instant a call started (for its latency).
#[inline]
pub(crate) fn start_hit() -> Option<Instant> {
    // No subscriber was ever set: one load, where `enabled!` alone would ask the (no-op)
    // dispatcher on every hit. With one, its level filter answers first.
    (tracing::dispatcher::has_been_set()
        && tracing::enabled!(target: "cache_runtime::call", tracing::Level::TRACE))
    .then(Instant::now)
}

/// Records an in-memory hit: per function, in the enclosing [`observe`] scope, and as a
/// `trace` event on target `cache_runtime::call` when `started` (tracing wants it).
#[inline]
pub(crate) fn record_hit(functions: &Functions, key: &Key, started: Option<Instant>) {
    functions.count(key.scope(), Outcome::Hit, None);
    served(Outcome::Hit);
    if let Some(started) = started {
        event(Some(key), Outcome::Hit, started.elapsed());
    }
}

/// Records a call that was no in-memory hit, which started at `started`: as
/// [`record_hit`], plus its load time and a `debug` event (`trace` for a remote hit).
pub(crate) fn record_call(
    functions: &Functions,
    key: Option<&Key>,
    outcome: Outcome,
    started: Instant,
) {
    let spent = started.elapsed();
    if let Some(key) = key {
        // Only calls that ran their query count as load time.
        let load = (outcome != Outcome::Hit).then_some(spent);
        functions.count(key.scope(), outcome, load);
    }
    crate::metrics::loaded(key, outcome, spent);
    served(outcome);
    if tracing::enabled!(target: "cache_runtime::call", tracing::Level::DEBUG) {
        event(key, outcome, spent);
    }
}

#[cold]
fn event(key: Option<&Key>, outcome: Outcome, latency: Duration) {
    let function = key.map(|k| function_name(k.scope()));
    let function = function.as_deref().unwrap_or("?");
    let digest = key.map(short_digest);
    let digest = digest.as_deref().unwrap_or("-");
    let latency_us = latency.as_secs_f64() * 1e6;
    if outcome == Outcome::Hit {
        tracing::trace!(target: "cache_runtime::call", function, outcome = outcome.as_str(),
            latency_us, key = digest, "cached call");
    } else {
        tracing::debug!(target: "cache_runtime::call", function, outcome = outcome.as_str(),
            latency_us, key = digest, "cached call");
    }
}
