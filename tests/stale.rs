//! Serving past the TTL (`cache_runtime` `stale` windows): stale-while-revalidate,
//! refresh-ahead and stale-on-error, per function and from `Settings`. Each test names the
//! mechanism whose removal makes it fail. An entry a write has made stale is never served,
//! whatever the windows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, Outcome, Settings, cached, observe};
use tokio::sync::Semaphore;

/// What the "database" returns: a value, whether it fails, and a gate a load waits at.
struct Source {
    value: AtomicU64,
    fail: AtomicBool,
    gated: AtomicBool,
    gate: Arc<Semaphore>,
    loads: AtomicU64,
}

impl Source {
    async fn read(&self) -> Result<u64, String> {
        self.loads.fetch_add(1, SeqCst);
        if self.gated.load(SeqCst) {
            let _permit = self.gate.acquire().await.map_err(|e| e.to_string())?;
        }
        if self.fail.load(SeqCst) {
            return Err("the database is down".to_owned());
        }
        Ok(self.value.load(SeqCst))
    }
}

#[cached(table = "st_swr", ttl = "100ms", swr = "10s", skip(src))]
async fn with_swr(cache: &Cache, src: &Source, id: u32) -> Result<u64, String> {
    src.read().await
}

/// As `with_swr`, on a table of its own: an invalidation reaches every cache of the
/// process, and tests run in parallel.
#[cached(table = "st_swr_written", ttl = "100ms", swr = "10s", skip(src))]
async fn with_swr_written(cache: &Cache, src: &Source, id: u32) -> Result<u64, String> {
    src.read().await
}

#[cached(table = "st_plain", ttl = "100ms", skip(src))]
async fn without_windows(cache: &Cache, src: &Source, id: u32) -> Result<u64, String> {
    src.read().await
}

#[cached(table = "st_ahead", ttl = "600ms", refresh_ahead = "500ms", skip(src))]
async fn with_ahead(cache: &Cache, src: &Source, id: u32) -> Result<u64, String> {
    src.read().await
}

#[cached(table = "st_error", ttl = "100ms", stale_on_error = "10s", skip(src))]
async fn with_stale_on_error(cache: &Cache, src: &Source, id: u32) -> Result<u64, String> {
    src.read().await
}

#[cached(
    table = "st_error_short",
    ttl = "50ms",
    stale_on_error = "100ms",
    skip(src)
)]
async fn with_short_stale_on_error(cache: &Cache, src: &Source, id: u32) -> Result<u64, String> {
    src.read().await
}

#[cached(
    table = "st_error_written",
    ttl = "100ms",
    stale_on_error = "10s",
    skip(src)
)]
async fn with_stale_on_error_written(cache: &Cache, src: &Source, id: u32) -> Result<u64, String> {
    src.read().await
}

#[cached(
    table = "st_error_abandoned",
    ttl = "100ms",
    stale_on_error = "10s",
    skip(src)
)]
async fn with_stale_on_error_abandoned(
    cache: &Cache,
    src: &Source,
    id: u32,
) -> Result<u64, String> {
    src.read().await
}

#[cached(table = "st_settings", ttl = "100ms", skip(src))]
async fn from_settings(cache: &Cache, src: &Source, id: u32) -> Result<u64, String> {
    src.read().await
}

fn cache() -> Cache {
    Cache::new(Settings::default()).expect("valid settings")
}

fn source(value: u64) -> Arc<Source> {
    Arc::new(Source {
        value: AtomicU64::new(value),
        fail: AtomicBool::new(false),
        gated: AtomicBool::new(false),
        gate: Arc::new(Semaphore::new(0)),
        loads: AtomicU64::new(0),
    })
}

/// Starts a refresh that waits at the gate; returns once it is waiting there.
async fn start_gated_refresh<F, Fut>(
    src: &Arc<Source>,
    call: F,
) -> tokio::task::JoinHandle<Result<u64, String>>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<u64, String>> + Send + 'static,
{
    src.gated.store(true, SeqCst);
    let before = src.loads.load(SeqCst);
    let task = tokio::spawn(call());
    let started = std::time::Instant::now();
    while src.loads.load(SeqCst) == before {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the call ran no query: it was served without a refresh"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    task
}

/// Mechanism: a caller that finds another one refreshing an entry past its TTL (within
/// `swr`) is served the entry at once (`cache::miss::load_fresh`, `Flights::running`).
/// Without it, the second caller waited for the refresh, and the gate never opened.
#[tokio::test]
async fn past_its_ttl_an_entry_is_served_while_one_caller_refreshes_it() {
    let (cache, src) = (cache(), source(1));
    assert_eq!(with_swr(&cache, &src, 1).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(150)).await;
    src.value.store(2, SeqCst);

    let refresh = start_gated_refresh(&src, {
        let (cache, src) = (cache.clone(), src.clone());
        move || async move { with_swr(&cache, &src, 1).await }
    })
    .await;
    let (value, served) = observe(async {
        tokio::time::timeout(Duration::from_secs(5), with_swr(&cache, &src, 1)).await
    })
    .await;
    assert_eq!(
        value.expect("served without waiting for the refresh"),
        Ok(1)
    );
    assert_eq!((served.hits, served.served_stale), (1, 1));
    assert_eq!(cache.stats().served_stale, 1);

    src.gate.add_permits(1);
    assert_eq!(refresh.await.expect("the refresh"), Ok(2));
    assert_eq!(
        with_swr(&cache, &src, 1).await,
        Ok(2),
        "the refreshed entry"
    );
    let stats = cache.stats();
    assert_eq!((stats.refreshes, stats.loads), (1, 2), "{stats:?}");
}

/// Without windows, an expired entry is never served: the second caller waits for the
/// first one's load.
#[tokio::test]
async fn without_windows_an_expired_entry_is_not_served() {
    let (cache, src) = (cache(), source(1));
    assert_eq!(without_windows(&cache, &src, 1).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(150)).await;
    src.value.store(2, SeqCst);
    let refresh = start_gated_refresh(&src, {
        let (cache, src) = (cache.clone(), src.clone());
        move || async move { without_windows(&cache, &src, 1).await }
    })
    .await;
    let second = tokio::spawn({
        let (cache, src) = (cache.clone(), src.clone());
        async move { without_windows(&cache, &src, 1).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !second.is_finished(),
        "the second caller waits for the load"
    );
    src.gate.add_permits(1);
    assert_eq!(refresh.await.expect("the load"), Ok(2));
    assert_eq!(second.await.expect("the second caller"), Ok(2));
}

/// Mechanism: `peek` checks the entry's table versions. An entry a write has made stale is
/// never served, even within `swr`: the second caller waits for the refresh.
#[tokio::test]
async fn an_entry_stale_by_a_write_is_never_served() {
    let (cache, src) = (cache(), source(1));
    assert_eq!(with_swr_written(&cache, &src, 2).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(150)).await;
    src.value.store(2, SeqCst);
    cache.invalidate(&["st_swr_written"]).await;

    let refresh = start_gated_refresh(&src, {
        let (cache, src) = (cache.clone(), src.clone());
        move || async move { with_swr_written(&cache, &src, 2).await }
    })
    .await;
    let second = tokio::spawn({
        let (cache, src) = (cache.clone(), src.clone());
        async move { with_swr_written(&cache, &src, 2).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!second.is_finished(), "nothing stale to serve: it waits");
    src.gate.add_permits(1);
    assert_eq!(refresh.await.expect("the load"), Ok(2));
    assert_eq!(second.await.expect("the second caller"), Ok(2));
    assert_eq!(cache.stats().served_stale, 0);
}

/// Mechanism: within `refresh_ahead` of its TTL an entry is no plain hit
/// (`ClockMap::get`'s `early`): one caller refreshes it while the others hit.
#[tokio::test]
async fn refresh_ahead_refreshes_before_the_ttl_while_others_hit() {
    let (cache, src) = (cache(), source(1));
    assert_eq!(with_ahead(&cache, &src, 1).await, Ok(1));
    assert_eq!(
        with_ahead(&cache, &src, 1).await,
        Ok(1),
        "a plain hit at first"
    );
    assert_eq!(src.loads.load(SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    src.value.store(2, SeqCst);

    let refresh = start_gated_refresh(&src, {
        let (cache, src) = (cache.clone(), src.clone());
        move || async move { with_ahead(&cache, &src, 1).await }
    })
    .await;
    let (value, served) = observe(async {
        tokio::time::timeout(Duration::from_secs(5), with_ahead(&cache, &src, 1)).await
    })
    .await;
    assert_eq!(
        value.expect("served without waiting"),
        Ok(1),
        "within its TTL"
    );
    assert_eq!((served.hits, served.served_stale), (1, 0));
    src.gate.add_permits(1);
    assert_eq!(refresh.await.expect("the refresh"), Ok(2));
    assert_eq!(cache.stats().refreshes, 1);
}

/// Mechanism: a failed query serves the last good value within `stale_on_error`
/// (`cache::miss::load`), and never one a write has made stale.
#[tokio::test]
async fn a_failed_query_serves_the_last_good_value_unless_a_write_came() {
    let (cache, src) = (cache(), source(1));
    assert_eq!(with_stale_on_error(&cache, &src, 1).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(150)).await;
    src.fail.store(true, SeqCst);
    let (value, served) = observe(with_stale_on_error(&cache, &src, 1)).await;
    assert_eq!(value, Ok(1), "the last good value");
    assert_eq!(served.served_stale, 1);
    assert_eq!(cache.stats().stale_on_error, 1);
    let f = cache.function_stats();
    assert_eq!(f[0].stale_on_error, 1);

    cache.invalidate(&["st_error"]).await;
    assert!(
        with_stale_on_error(&cache, &src, 1).await.is_err(),
        "after a write, the error"
    );
}

/// Mechanism: the entry is looked up again when the query fails, versions checked
/// (`ClockMap::peek`): a write during the failed query makes the error the answer.
#[tokio::test]
async fn a_write_during_the_failed_query_makes_the_error_the_answer() {
    let (cache, src) = (cache(), source(1));
    assert_eq!(with_stale_on_error_written(&cache, &src, 2).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(150)).await;
    src.fail.store(true, SeqCst);
    let failing = start_gated_refresh(&src, {
        let (cache, src) = (cache.clone(), src.clone());
        move || async move { with_stale_on_error_written(&cache, &src, 2).await }
    })
    .await;
    cache.invalidate(&["st_error_written"]).await;
    src.gate.add_permits(1);
    assert!(failing.await.expect("the call").is_err());
}

/// Mechanism: when a load is abandoned (its caller cancelled), a waiter looks for a plain
/// hit, not for an entry kept past its TTL (`Cache::plain_hit`): it loads the fresh value.
#[tokio::test]
async fn a_waiter_of_an_abandoned_load_is_not_served_an_expired_entry() {
    let (cache, src) = (cache(), source(1));
    assert_eq!(with_stale_on_error_abandoned(&cache, &src, 3).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(150)).await;
    src.value.store(2, SeqCst);
    let first = start_gated_refresh(&src, {
        let (cache, src) = (cache.clone(), src.clone());
        move || async move { with_stale_on_error_abandoned(&cache, &src, 3).await }
    })
    .await;
    let waiter = tokio::spawn({
        let (cache, src) = (cache.clone(), src.clone());
        async move { with_stale_on_error_abandoned(&cache, &src, 3).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort();
    let _ = first.await;
    src.gate.add_permits(1);
    let got = tokio::time::timeout(Duration::from_secs(5), waiter).await;
    assert_eq!(got.expect("the waiter ends").expect("the task"), Ok(2));
}

/// Past the `stale_on_error` window the error is returned.
#[tokio::test]
async fn past_its_window_the_error_is_returned() {
    let (cache, src) = (cache(), source(1));
    assert_eq!(with_short_stale_on_error(&cache, &src, 1).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    src.fail.store(true, SeqCst);
    assert_eq!(
        with_short_stale_on_error(&cache, &src, 1).await,
        Ok(1),
        "within it"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(with_short_stale_on_error(&cache, &src, 1).await.is_err());
}

/// Mechanism: `Settings::stale_on_error` applies to reads that name no window
/// (`Core::windows`).
#[tokio::test]
async fn settings_give_the_windows_of_reads_that_name_none() {
    let cache = Cache::new(Settings {
        stale_on_error: Duration::from_secs(10),
        ..Settings::default()
    })
    .expect("valid settings");
    let src = source(7);
    assert_eq!(from_settings(&cache, &src, 1).await, Ok(7));
    tokio::time::sleep(Duration::from_millis(150)).await;
    src.fail.store(true, SeqCst);
    assert_eq!(from_settings(&cache, &src, 1).await, Ok(7));
    // The default cache: off.
    let (plain, src) = (self::cache(), source(7));
    assert_eq!(from_settings(&plain, &src, 1).await, Ok(7));
    tokio::time::sleep(Duration::from_millis(150)).await;
    src.fail.store(true, SeqCst);
    assert!(from_settings(&plain, &src, 1).await.is_err());
}

#[cached(
    table = "st_plain_backend",
    ttl = "100ms",
    stale_on_error = "10s",
    skip(src)
)]
async fn over_a_backend(cache: &Cache, src: &Source, id: u32) -> Result<u64, String> {
    src.read().await
}

/// Mechanism: a plain backend's entry is kept past its TTL too (`Entry::encode`'s `keep`,
/// `PlainStore::lookup_windowed`): without it, the entry was gone and the error returned.
#[tokio::test]
async fn over_a_plain_backend_a_failed_query_serves_the_last_good_value() {
    let backend = cache_runtime::backend::MemoryBackend::new(1_000);
    let cache = Cache::with_backend(Settings::default(), backend).expect("valid settings");
    let src = source(5);
    assert_eq!(over_a_backend(&cache, &src, 1).await, Ok(5));
    assert_eq!(over_a_backend(&cache, &src, 1).await, Ok(5));
    assert_eq!(src.loads.load(SeqCst), 1, "a hit within the TTL");
    tokio::time::sleep(Duration::from_millis(150)).await;
    src.fail.store(true, SeqCst);
    assert_eq!(over_a_backend(&cache, &src, 1).await, Ok(5));
    assert_eq!(cache.stats().stale_on_error, 1);
}

/// A shared backend whose leases are held by "another instance" once `busy` is set, whose
/// next version capture waits at a gate once `hold_capture` is set, and whose next lease
/// request once `hold_lease` is. Clones share everything.
#[derive(Clone)]
struct Staged {
    inner: cache_runtime::backend::SharedMemoryBackend,
    stage: Arc<Stage>,
}

struct Stage {
    busy: AtomicBool,
    hold_capture: AtomicBool,
    held: AtomicU64,
    gate: Semaphore,
    hold_lease: AtomicBool,
    lease_held: AtomicU64,
    lease_gate: Semaphore,
}

#[cache_runtime::backend::async_trait]
impl cache_runtime::backend::Backend for Staged {
    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<Vec<u8>>, cache_runtime::backend::BackendError> {
        self.inner.get(key).await
    }
    async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), cache_runtime::backend::BackendError> {
        self.inner.set(key, value, ttl).await
    }
    async fn delete(&self, keys: &[String]) -> Result<(), cache_runtime::backend::BackendError> {
        self.inner.delete(keys).await
    }
    async fn clear_prefix(&self, prefix: &str) -> Result<(), cache_runtime::backend::BackendError> {
        self.inner.clear_prefix(prefix).await
    }
}

#[cache_runtime::backend::async_trait]
impl cache_runtime::backend::SharedBackend for Staged {
    async fn versions(
        &self,
        namespace: &str,
        tables: &[&str],
    ) -> Result<Vec<u64>, cache_runtime::backend::BackendError> {
        if self.stage.hold_capture.swap(false, SeqCst) {
            self.stage.held.fetch_add(1, SeqCst);
            let _permit = self.stage.gate.acquire().await;
        }
        self.inner.versions(namespace, tables).await
    }
    async fn get_checked(
        &self,
        namespace: &str,
        key: &str,
        tables: &[&str],
    ) -> Result<cache_runtime::backend::Checked, cache_runtime::backend::BackendError> {
        self.inner.get_checked(namespace, key, tables).await
    }
    async fn set_tracked(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        tags: &[(&str, u64)],
        max_keys: usize,
    ) -> Result<cache_runtime::backend::StoreOutcome, cache_runtime::backend::BackendError> {
        self.inner
            .set_tracked(namespace, key, value, ttl, tags, max_keys)
            .await
    }
    async fn bump(
        &self,
        namespace: &str,
        tables: &[&str],
    ) -> Result<(), cache_runtime::backend::BackendError> {
        self.inner.bump(namespace, tables).await
    }
    async fn tracked(
        &self,
        namespace: &str,
        table: &str,
    ) -> Result<usize, cache_runtime::backend::BackendError> {
        self.inner.tracked(namespace, table).await
    }
    fn leases(&self) -> bool {
        true
    }
    async fn try_lease(
        &self,
        _: &str,
        _: Duration,
    ) -> Result<Option<u64>, cache_runtime::backend::BackendError> {
        if self.stage.hold_lease.swap(false, SeqCst) {
            self.stage.lease_held.fetch_add(1, SeqCst);
            let _permit = self.stage.lease_gate.acquire().await;
        }
        Ok((!self.stage.busy.load(SeqCst)).then_some(1))
    }
}

#[cached(table = "st_staged", ttl = "100ms", swr = "10s", skip(src))]
async fn staged_read(cache: &Cache, src: &Source, id: u32) -> Result<u64, String> {
    src.read().await
}

/// Mechanism: a caller that finds the key's lease held serves its aging entry, but does
/// not hand it to this process's waiters of its flight (`load_fresh`: the flight is
/// dropped, not finished with that value). A caller that starts after a write and joins
/// that flight must get the value from after the write; it used to get the one before.
#[tokio::test]
async fn a_read_after_a_write_never_gets_the_aging_entry_of_a_flight_it_joined() {
    let backend = Staged {
        inner: cache_runtime::backend::SharedMemoryBackend::new(1_000),
        stage: Arc::new(Stage {
            busy: AtomicBool::new(false),
            hold_capture: AtomicBool::new(false),
            held: AtomicU64::new(0),
            gate: Semaphore::new(0),
            hold_lease: AtomicBool::new(false),
            lease_held: AtomicU64::new(0),
            lease_gate: Semaphore::new(0),
        }),
    };
    let settings = Settings {
        max_load_wait: Duration::from_millis(400),
        ..Settings::default()
    };
    let cache = Cache::with_shared_backend(settings, backend.clone()).expect("valid");
    let src = source(1);
    assert_eq!(staged_read(&cache, &src, 1).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(150)).await;
    src.value.store(3, SeqCst);
    backend.stage.busy.store(true, SeqCst);

    // X finds the aging entry; its capture waits at the gate.
    backend.stage.hold_capture.store(true, SeqCst);
    let x = tokio::spawn({
        let (cache, src) = (cache.clone(), src.clone());
        async move { staged_read(&cache, &src, 1).await }
    });
    while backend.stage.held.load(SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The write lands; then X captures the new versions and leads a flight under them,
    // and waits at the lease.
    cache.invalidate(&["st_staged"]).await;
    backend.stage.hold_lease.store(true, SeqCst);
    backend.stage.gate.add_permits(1);
    while backend.stage.lease_held.load(SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Y starts after the write: it finds nothing to serve and joins X's flight.
    let y = tokio::spawn({
        let (cache, src) = (cache.clone(), src.clone());
        async move { staged_read(&cache, &src, 1).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    backend.stage.lease_gate.add_permits(1);
    assert_eq!(
        x.await.expect("X"),
        Ok(1),
        "X may serve what it found before the write"
    );
    let y = tokio::time::timeout(Duration::from_secs(5), y).await;
    assert_eq!(
        y.expect("Y ends").expect("Y"),
        Ok(3),
        "Y started after the write"
    );
}

/// The outcome names of the two new paths, for logs and metrics.
#[test]
fn outcomes_are_named() {
    assert_eq!(Outcome::ServedStale.as_str(), "served_stale");
    assert_eq!(Outcome::StaleOnError.as_str(), "stale_on_error");
    assert!(Outcome::ServedStale.served_from_cache());
}

// ----- through Redis: every instance serves the entry while one refreshes it -----

#[cached(
    table = "st_redis",
    ttl = "300ms",
    swr = "10s",
    stale_on_error = "10s",
    skip(src)
)]
async fn shared_read(cache: &Cache, src: &Source, id: u32) -> Result<u64, String> {
    src.read().await
}

async fn redis_instance(url: &str, namespace: &str) -> Cache {
    use cache_redis::{RedisBackend, RedisOptions};
    let backend = RedisBackend::connect(url, RedisOptions::default())
        .await
        .unwrap_or_else(|e| panic!("REDIS_URL is set but {url} cannot be reached: {e}"));
    let settings = Settings {
        namespace: namespace.to_owned(),
        ..Settings::default()
    };
    Cache::with_shared_backend(settings, backend).expect("valid settings")
}

/// Mechanism: the Redis entry is kept `max(swr, stale_on_error)` past its TTL (its
/// envelope still says when the TTL ends: `Entry::encode`), a lookup with windows returns
/// it as aging (`SharedStore::lookup_windowed`), and an instance that finds another one
/// holding the key's lease serves it instead of waiting for the fill. Without the
/// windows, A waited for B's gated refresh and timed out.
#[tokio::test]
async fn through_redis_one_instance_refreshes_while_the_others_serve_the_entry() {
    let Some(url) = cache_suite::database_url("REDIS_URL") else {
        return;
    };
    let namespace = format!("cache-suite-swr-{}", cache_suite::unique_suffix());
    let (a, b) = (
        redis_instance(&url, &namespace).await,
        redis_instance(&url, &namespace).await,
    );
    let src = source(1);
    assert_eq!(shared_read(&a, &src, 1).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(400)).await;
    src.value.store(2, SeqCst);

    let refresh = start_gated_refresh(&src, {
        let (b, src) = (b.clone(), src.clone());
        move || async move { shared_read(&b, &src, 1).await }
    })
    .await;
    let (value, served) = observe(async {
        tokio::time::timeout(Duration::from_secs(2), shared_read(&a, &src, 1)).await
    })
    .await;
    let loads = src.loads.load(SeqCst);
    src.gate.add_permits(1);
    let refreshed = refresh.await.expect("the refresh");
    // Stale-on-error through Redis: past the TTL, the query fails, the entry is served.
    tokio::time::sleep(Duration::from_millis(400)).await;
    src.gated.store(false, SeqCst);
    src.fail.store(true, SeqCst);
    let on_error = shared_read(&a, &src, 1).await;
    // After a write, nothing stale: the error.
    a.invalidate(&["st_redis"]).await;
    let after_write = shared_read(&b, &src, 1).await;
    a.clear().await;

    assert_eq!(
        value.expect("served without waiting for B's refresh"),
        Ok(1)
    );
    assert_eq!((served.hits, served.served_stale), (1, 1));
    assert_eq!(loads, 2, "only B's refresh ran the query");
    assert_eq!(refreshed, Ok(2));
    assert_eq!(on_error, Ok(2), "the last good value");
    assert!(after_write.is_err(), "{after_write:?}");
}
