//! The process-wide cache (`install`, `global`) and the registry of every cache of the
//! process, through which a write reaches them all.

use std::fmt;
use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak};

use super::{Cache, Inner};
use crate::Settings;

/// Every cache of this process, so that a write through one reaches them all.
static CACHES: RwLock<Vec<Weak<Inner>>> = RwLock::new(Vec::new());

pub(super) fn register(inner: &Arc<Inner>) {
    let mut caches = CACHES.write().unwrap_or_else(PoisonError::into_inner);
    caches.retain(|c| c.strong_count() > 0);
    caches.push(Arc::downgrade(inner));
}

pub(super) fn for_each_cache(mut f: impl FnMut(&Arc<Inner>)) {
    let caches = CACHES.read().unwrap_or_else(PoisonError::into_inner);
    for weak in caches.iter() {
        if let Some(inner) = weak.upgrade() {
            f(&inner);
        }
    }
}

static GLOBAL: OnceLock<Cache> = OnceLock::new();
/// Where the process-wide cache came from: `install`, or the first `global()` call.
static GLOBAL_ORIGIN: OnceLock<Origin> = OnceLock::new();

#[derive(Clone, Copy, Debug)]
enum Origin {
    Installed(&'static std::panic::Location<'static>),
    DefaultFirstUsedAt(&'static std::panic::Location<'static>),
}

/// Installs `cache` as the process-wide cache used by macro-generated code that has no
/// `&Cache` parameter and no `cache = ...` argument. Call it once at start-up, before any
/// cached function runs.
///
/// ```
/// use cache_runtime::{Cache, Settings};
///
/// let settings = Settings { namespace: "shop".into(), ..Settings::default() };
/// cache_runtime::install(Cache::new(settings)?)?;
/// assert_eq!(cache_runtime::global().settings().namespace, "shop");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// An [`InstallError`] when a process-wide cache is already in place: installed before,
/// or created with default settings because a cached function (or [`global`]) used it
/// first. The error says where that happened; it is also logged at `ERROR` level, so
/// ignoring it does not keep the mistake quiet. Its
/// [`into_cache`](InstallError::into_cache) gives `cache` back.
#[track_caller]
pub fn install(cache: Cache) -> Result<(), InstallError> {
    let at = std::panic::Location::caller();
    let mut cache = Some(cache);
    GLOBAL.get_or_init(|| {
        let _ = GLOBAL_ORIGIN.set(Origin::Installed(at));
        // Runs only while nothing is installed, so `cache` is still there.
        cache
            .take()
            .unwrap_or_else(|| Cache::in_memory(Settings::default()))
    });
    match cache {
        None => Ok(()),
        Some(rejected) => {
            let error = InstallError {
                cache: Some(rejected),
                origin: GLOBAL_ORIGIN.get().copied(),
                at,
            };
            tracing::error!(target: "cache_runtime", "{error}");
            Err(error)
        }
    }
}

/// The process-wide cache: the one [`install`]ed, or else an in-memory cache with
/// [`Settings::default`](crate::Settings::default), created on first use (and a later [`install`] fails, saying
/// where that first use was).
#[track_caller]
pub fn global() -> &'static Cache {
    if let Some(cache) = GLOBAL.get() {
        return cache;
    }
    let at = std::panic::Location::caller();
    GLOBAL.get_or_init(|| {
        let _ = GLOBAL_ORIGIN.set(Origin::DefaultFirstUsedAt(at));
        Cache::in_memory(Settings::default())
    })
}

/// [`install`] came too late: a process-wide cache was already in place.
pub struct InstallError {
    cache: Option<Cache>,
    origin: Option<Origin>,
    at: &'static std::panic::Location<'static>,
}

impl InstallError {
    /// The cache that was not installed.
    pub fn into_cache(self) -> Option<Cache> {
        self.cache
    }
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache_runtime::install at {} came too late: ", self.at)?;
        match self.origin {
            Some(Origin::Installed(at)) => write!(
                f,
                "a process-wide cache was already installed at {at}; install one cache, once"
            ),
            Some(Origin::DefaultFirstUsedAt(at)) => write!(
                f,
                "the process-wide cache was first used at {at}, which created it with default \
                 settings; call install() at start-up, before any cached function or \
                 invalidation runs"
            ),
            None => f.write_str("a process-wide cache is already in place"),
        }
    }
}

impl fmt::Debug for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstallError({self})")
    }
}

impl std::error::Error for InstallError {}
