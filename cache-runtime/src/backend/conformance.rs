//! The checks every [`Backend`] should pass: the contract the cache relies on, as code.
//!
//! Each check panics with a message naming the rule that was broken. [`run`] runs them all;
//! the individual checks are public too, to run one alone while fixing it.
//!
//! Run them from a test of your backend, with this crate's `conformance` feature (it adds
//! no dependency, only this module and Tokio's timer):
//!
//! ```toml
//! [dev-dependencies]
//! cache-runtime = { version = "0.1", features = ["conformance"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread", "time"] }
//! ```
//!
//! ```
//! use cache_runtime::backend::{conformance, SharedMemoryBackend};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // In your crate: `#[tokio::test] async fn my_backend_conforms() { ... }`.
//! // `connect` returns a new handle on the same store each time it is called (for Redis,
//! // a new connection to the same server); a shared backend is checked through two
//! // handles, as two app instances would use it. A plain `Backend` goes to `run`.
//! let store = SharedMemoryBackend::new(10_000);
//! let namespace = conformance::unique_namespace("memory");
//! conformance::run_shared(&namespace, || {
//!     let store = store.clone();
//!     async move { store }
//! })
//! .await;
//! # });
//! ```
//!
//! Every key a run writes starts with `namespace`, and the run deletes them at the end; use
//! a namespace no application uses (such as [`unique_namespace`] gives), so concurrent runs
//! against one server never interfere.

use std::future::Future;
use std::time::Duration;

use super::{Backend, SharedBackend, StoreOutcome};
use crate::{Cache, KeyScope, Settings, Ttl};

/// `base` followed by this process's id and the current time: a namespace no other run
/// uses.
pub fn unique_namespace(base: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{base}-{}-{nanos}", std::process::id())
}

/// Runs every check of a plain [`Backend`] against backends returned by `connect`, then
/// deletes every key that starts with `namespace`.
///
/// # Panics
///
/// On the first broken rule, with a message naming it.
pub async fn run<B, F, Fut>(namespace: &str, mut connect: F)
where
    B: Backend,
    F: FnMut() -> Fut,
    Fut: Future<Output = B>,
{
    let backend = connect().await;
    storage(&backend, namespace).await;
    cache_round_trip(connect().await, namespace).await;
    let cache = Cache::with_backend(corrupt_settings(namespace), connect().await)
        .expect("conformance settings are valid");
    corrupt_entries(&cache, &connect().await).await;
    clean_up(&backend, namespace).await;
}

/// Runs every check of a [`SharedBackend`] (those of [`run`], and the shared versions and
/// key tracking, through two handles as two app instances use it) against backends
/// returned by `connect`, then deletes every key that starts with `namespace`.
///
/// # Panics
///
/// On the first broken rule, with a message naming it.
pub async fn run_shared<B, F, Fut>(namespace: &str, mut connect: F)
where
    B: SharedBackend,
    F: FnMut() -> Fut,
    Fut: Future<Output = B>,
{
    let backend = connect().await;
    storage(&backend, namespace).await;
    let other = connect().await;
    shared_versions(&backend, &other, namespace).await;
    key_tracking(&backend, &other, namespace).await;
    caches_share_invalidations(connect().await, other, namespace).await;
    let cache = Cache::with_shared_backend(corrupt_settings(namespace), connect().await)
        .expect("conformance settings are valid");
    corrupt_entries(&cache, &connect().await).await;
    clean_up(&backend, namespace).await;
}

/// The checks of storage alone: get, set, delete, binary values, key characters, TTLs,
/// `clear_prefix`.
async fn storage(backend: &dyn Backend, namespace: &str) {
    get_set_delete(backend, namespace).await;
    binary_values(backend, namespace).await;
    key_characters(backend, namespace).await;
    ttl_expiry(backend, namespace).await;
    clear_prefix(backend, namespace).await;
}

async fn clean_up(backend: &dyn Backend, namespace: &str) {
    backend
        .clear_prefix(namespace)
        .await
        .expect("conformance: cleaning up with clear_prefix failed");
}

async fn get(backend: &dyn Backend, key: &str) -> Option<Vec<u8>> {
    backend
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("conformance: get({key:?}) failed: {e}"))
}

async fn set(backend: &dyn Backend, key: &str, value: &[u8], ttl: Option<Duration>) {
    backend
        .set(key, value.to_vec(), ttl)
        .await
        .unwrap_or_else(|e| panic!("conformance: set({key:?}) failed: {e}"));
}

async fn delete(backend: &dyn Backend, keys: &[String]) {
    backend
        .delete(keys)
        .await
        .unwrap_or_else(|e| panic!("conformance: delete({keys:?}) failed: {e}"));
}

async fn versions(backend: &dyn SharedBackend, namespace: &str, tables: &[&str]) -> Vec<u64> {
    let got = backend
        .versions(namespace, tables)
        .await
        .unwrap_or_else(|e| panic!("conformance: versions({tables:?}) failed: {e}"));
    assert_eq!(
        got.len(),
        tables.len(),
        "conformance: versions({tables:?}) must return one version per table, got {got:?}"
    );
    assert!(
        got.iter().all(|&v| v != 0),
        "conformance: versions({tables:?}) returned 0, which must mean `no version`: {got:?}"
    );
    got
}

async fn bump(backend: &dyn SharedBackend, namespace: &str, tables: &[&str]) {
    backend
        .bump(namespace, tables)
        .await
        .unwrap_or_else(|e| panic!("conformance: bump({tables:?}) failed: {e}"));
}

async fn tracked(backend: &dyn SharedBackend, namespace: &str, table: &str) -> usize {
    backend
        .tracked(namespace, table)
        .await
        .unwrap_or_else(|e| panic!("conformance: tracked({table:?}) failed: {e}"))
}

/// `get` returns what `set` stored, `set` replaces, `delete` removes and ignores absent keys.
pub async fn get_set_delete(backend: &dyn Backend, namespace: &str) {
    let key = format!("{namespace}:basic");
    assert_eq!(
        get(backend, &key).await,
        None,
        "conformance: get of a key never set must be None"
    );
    set(backend, &key, b"one", None).await;
    assert_eq!(
        get(backend, &key).await.as_deref(),
        Some(&b"one"[..]),
        "conformance: get must return the bytes set stored"
    );
    set(backend, &key, b"two", None).await;
    assert_eq!(
        get(backend, &key).await.as_deref(),
        Some(&b"two"[..]),
        "conformance: set must replace the previous value"
    );
    let absent = format!("{namespace}:never-set");
    delete(backend, &[key.clone(), absent]).await;
    assert_eq!(
        get(backend, &key).await,
        None,
        "conformance: get after delete must be None"
    );
    delete(backend, &[]).await;
}

/// Values are bytes, not text: every byte value, the empty value and a large value come
/// back unchanged.
pub async fn binary_values(backend: &dyn Backend, namespace: &str) {
    let every_byte: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let large: Vec<u8> = (0..4 * 1024 * 1024_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: [(&str, &[u8]); 4] = [
        ("every byte", &every_byte),
        ("empty", b""),
        ("invalid UTF-8 and NUL", b"\xff\xfe\x00\x00\xc3("),
        ("4 MiB", &large),
    ];
    for (i, (what, value)) in cases.iter().enumerate() {
        let key = format!("{namespace}:bytes:{i}");
        set(backend, &key, value, None).await;
        let got = get(backend, &key).await;
        assert!(
            got.as_deref() == Some(*value),
            "conformance: a value ({what}, {} bytes) must come back unchanged, got {:?} bytes",
            value.len(),
            got.map(|g| g.len())
        );
    }
}

/// Every character a namespace may contain (anything but whitespace, control characters,
/// `*`, `?`, `[` and `]`) is a valid key character, and keys that differ in one character
/// are distinct.
pub async fn key_characters(backend: &dyn Backend, namespace: &str) {
    let allowed: String = (0x21u8..0x7f)
        .map(char::from)
        .filter(|c| !matches!(c, '*' | '?' | '[' | ']'))
        .chain("é日本🦀".chars())
        .collect();
    let keys = [
        format!("{namespace}:chars:{allowed}"),
        format!("{namespace}:chars:{allowed}:"),
        format!("{namespace}:chars:a"),
        format!("{namespace}:chars:A"),
        format!("{namespace}:chars:a:"),
        format!("{namespace}:chars:{}", "0123456789abcdef".repeat(4)),
    ];
    for (i, key) in keys.iter().enumerate() {
        set(backend, key, i.to_string().as_bytes(), None).await;
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            get(backend, key).await,
            Some(i.to_string().into_bytes()),
            "conformance: key {key:?} must hold its own value (keys differing in one \
             character must not collide)"
        );
    }
}

/// An entry set with a TTL is gone after it; one set without a TTL stays; a later `set`
/// replaces the TTL too.
pub async fn ttl_expiry(backend: &dyn Backend, namespace: &str) {
    let short = format!("{namespace}:ttl:short");
    let forever = format!("{namespace}:ttl:forever");
    let reset = format!("{namespace}:ttl:reset");
    set(backend, &short, b"x", Some(Duration::from_millis(300))).await;
    set(backend, &forever, b"x", None).await;
    set(backend, &reset, b"x", Some(Duration::from_millis(300))).await;
    set(backend, &reset, b"y", None).await;
    assert!(
        get(backend, &short).await.is_some(),
        "conformance: an entry must be readable before its TTL (300 ms) passed"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        get(backend, &short).await,
        None,
        "conformance: an entry must be gone once its TTL passed"
    );
    assert!(
        get(backend, &forever).await.is_some(),
        "conformance: an entry set without a TTL must not expire"
    );
    assert_eq!(
        get(backend, &reset).await.as_deref(),
        Some(&b"y"[..]),
        "conformance: set without a TTL must replace an earlier TTL"
    );
}

/// `clear_prefix` deletes every key with the prefix, however many, and nothing else, even
/// when the prefix contains glob characters.
pub async fn clear_prefix(backend: &dyn Backend, namespace: &str) {
    let base = format!("{namespace}:clear");
    let doomed: Vec<String> = (0..2_500).map(|i| format!("{base}:a:{i}")).collect();
    for key in &doomed {
        set(backend, key, b"x", None).await;
    }
    let kept = [
        format!("{base}:ab"),
        format!("{base}:b:1"),
        format!("{base}:A:1"),
        format!("{base}:g*x"),
        format!("{base}:gx"),
        format!("{base}:g?"),
    ];
    for key in &kept {
        set(backend, key, b"x", None).await;
    }
    backend
        .clear_prefix(&format!("{base}:a:"))
        .await
        .unwrap_or_else(|e| panic!("conformance: clear_prefix failed: {e}"));
    for key in &doomed {
        assert_eq!(
            get(backend, key).await,
            None,
            "conformance: clear_prefix({base}:a:) must delete {key:?}"
        );
    }
    backend
        .clear_prefix(&format!("{base}:g*"))
        .await
        .unwrap_or_else(|e| panic!("conformance: clear_prefix failed: {e}"));
    for key in &kept {
        let should_exist = key != &format!("{base}:g*x");
        assert_eq!(
            get(backend, key).await.is_some(),
            should_exist,
            "conformance: after clear_prefix({base}:a:) and clear_prefix({base}:g*), {key:?} \
             must {}exist (a prefix is literal text, not a pattern)",
            if should_exist { "" } else { "not " }
        );
    }
}

/// Shared versions: non-zero, the same through every handle, new after every bump and never
/// an earlier one, independent per table and per namespace, and recreated (never at an
/// earlier value) when lost.
pub async fn shared_versions(a: &dyn SharedBackend, b: &dyn SharedBackend, namespace: &str) {
    let ns = format!("{namespace}.versions");
    let tables = ["users", "a:b", "a%3Ab", "ünï cödé", ""];
    let first = versions(a, &ns, &tables).await;
    assert_eq!(
        versions(a, &ns, &tables).await,
        first,
        "conformance: versions must not change without a bump"
    );
    assert_eq!(
        versions(b, &ns, &tables).await,
        first,
        "conformance: every handle must see the same versions"
    );
    let key = format!("{ns}:entry");
    set(a, &key, b"v", None).await;
    let (bytes, seen) = b
        .get_checked(&ns, &key, &tables)
        .await
        .unwrap_or_else(|e| panic!("conformance: get_checked failed: {e}"));
    assert_eq!(
        (bytes.as_deref(), &seen),
        (Some(&b"v"[..]), &first),
        "conformance: get_checked must return the entry and the current versions"
    );

    let mut seen_before = first.clone();
    bump(a, &ns, &["users"]).await;
    let after = versions(b, &ns, &tables).await;
    assert!(
        !seen_before.contains(&after[0]),
        "conformance: a bump through one handle must give the table a version never seen \
         before, through every handle ({first:?} -> {after:?})"
    );
    assert_eq!(
        after[1..],
        first[1..],
        "conformance: a bump must change only the tables it names (`a:b` and `a%3Ab` are \
         different tables)"
    );
    seen_before.push(after[0]);
    for _ in 0..3 {
        bump(b, &ns, &["users", "users"]).await;
        let v = versions(a, &ns, &["users"]).await[0];
        assert!(
            !seen_before.contains(&v),
            "conformance: versions must never repeat ({v} came back)"
        );
        seen_before.push(v);
    }
    let other_ns = versions(a, &format!("{ns}-other"), &["users"]).await;
    bump(a, &format!("{ns}-other"), &["users"]).await;
    assert_eq!(
        versions(a, &ns, &["users"]).await[0],
        *seen_before.last().unwrap_or(&0),
        "conformance: a bump in another namespace must not change this one's versions \
         (other namespace had {other_ns:?})"
    );

    // Lose everything under the namespace (as `Cache::clear` does, or an eviction or a
    // restart would): versions come back, never at a value seen before.
    a.clear_prefix(&format!("{ns}:"))
        .await
        .unwrap_or_else(|e| panic!("conformance: clear_prefix failed: {e}"));
    let again = versions(b, &ns, &["users"]).await[0];
    assert!(
        !seen_before[..seen_before.len() - 1].contains(&again),
        "conformance: a version recreated after it was lost must not equal one that a read \
         may have captured before ({again} was seen)"
    );
}

/// `set_tracked` stores only when the versions are current, tracks keys per table within
/// `max_keys` (deleting the oldest), and `bump` deletes what a table tracks.
pub async fn key_tracking(a: &dyn SharedBackend, b: &dyn SharedBackend, namespace: &str) {
    let ns = format!("{namespace}.tracking");
    let current = versions(a, &ns, &["users", "posts"]).await;
    let (users, posts) = (current[0], current[1]);
    let key = |i: usize| format!("{ns}:{i:064x}");
    let store = |backend: &'static str, i: usize, tags: Vec<(&'static str, u64)>| {
        let which: &dyn SharedBackend = if backend == "a" { a } else { b };
        let (ns, k) = (ns.clone(), key(i));
        async move {
            which
                .set_tracked(&ns, &k, format!("value {i}").into_bytes(), None, &tags, 3)
                .await
                .unwrap_or_else(|e| panic!("conformance: set_tracked({k:?}) failed: {e}"))
        }
    };

    assert_eq!(
        store("a", 0, vec![("users", users), ("posts", posts)]).await,
        StoreOutcome::Stored { evicted: 0 },
        "conformance: set_tracked with current versions must store"
    );
    assert_eq!(
        get(b, &key(0)).await,
        Some(b"value 0".to_vec()),
        "conformance: an entry stored with set_tracked must be readable through every handle"
    );
    assert_eq!(tracked(b, &ns, "users").await, 1);
    assert_eq!(tracked(b, &ns, "posts").await, 1);
    assert_eq!(
        store("b", 1, vec![("users", users.wrapping_add(1))]).await,
        StoreOutcome::Stale,
        "conformance: set_tracked with a version that is not current must not store"
    );
    assert_eq!(
        get(a, &key(1)).await,
        None,
        "conformance: a Stale set_tracked must leave nothing"
    );
    assert_eq!(
        store("a", 0, vec![("users", users)]).await,
        StoreOutcome::Stored { evicted: 0 },
        "conformance: storing a tracked key again must store"
    );
    assert_eq!(
        tracked(a, &ns, "users").await,
        1,
        "conformance: a key stored twice is tracked once"
    );

    // Bounded: 3 keys per table; the oldest go, and are deleted.
    let mut evicted = 0;
    for i in 1..=4 {
        match store("b", i, vec![("users", users)]).await {
            StoreOutcome::Stored { evicted: n } => evicted += n,
            StoreOutcome::Stale => {
                panic!("conformance: set_tracked with current versions stored nothing")
            }
        }
    }
    assert_eq!(
        (evicted, tracked(a, &ns, "users").await),
        (2, 3),
        "conformance: past max_keys (3), set_tracked must drop the oldest keys and say how many"
    );
    for (i, present) in [(0, false), (1, false), (2, true), (3, true), (4, true)] {
        assert_eq!(
            get(a, &key(i)).await.is_some(),
            present,
            "conformance: after 5 keys in a table tracking 3, key {i} must {}exist",
            if present { "" } else { "not " }
        );
    }

    // A bump deletes what the table tracks, and makes older versions unusable.
    bump(b, &ns, &["users"]).await;
    for i in 0..=4 {
        assert_eq!(
            get(a, &key(i)).await,
            None,
            "conformance: bump must delete the keys the table tracks (key {i})"
        );
    }
    assert_eq!(tracked(a, &ns, "users").await, 0);
    assert_eq!(
        store("a", 5, vec![("users", users)]).await,
        StoreOutcome::Stale,
        "conformance: after a bump, set_tracked with the version before it must not store"
    );
}

static SCOPE: KeyScope = KeyScope::new("cache_runtime::backend::conformance");

fn settings(namespace: &str) -> Settings {
    Settings {
        namespace: format!("{namespace}.cache"),
        ..Settings::default()
    }
}

/// The table the suite reads, private to the namespace: a write reaches every cache of the
/// process, and suites running side by side in one test binary must not see each other's.
fn rows(cache: &Cache) -> String {
    format!("rows.{}", cache.settings().namespace)
}

async fn read(cache: &Cache, value: &str) -> String {
    let key = cache.key(&SCOPE, &1_u32).expect("a u32 key serializes");
    cache
        .get_or_load(key, &[&rows(cache)], Ttl::Forever, || async move {
            Ok::<_, std::convert::Infallible>(value.to_owned())
        })
        .await
        .unwrap_or_else(|e| match e {})
}

/// Through a [`Cache`]: a value is cached, served, and reloaded after an invalidation.
pub async fn cache_round_trip(backend: impl Backend, namespace: &str) {
    let cache =
        Cache::with_backend(settings(namespace), backend).expect("conformance settings are valid");
    assert_eq!(read(&cache, "old").await, "old");
    assert_eq!(
        read(&cache, "new").await,
        "old",
        "conformance: the second read must be served from the backend"
    );
    cache.invalidate(&[&rows(&cache)]).await;
    assert_eq!(
        read(&cache, "new").await,
        "new",
        "conformance: a read after invalidate must run the query"
    );
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.backend_errors, stats.decode_errors),
        (1, 0, 0),
        "conformance: {stats:?}"
    );
}

/// Two caches over two handles of one backend, as two app instances: a write through one
/// makes the other's entry stale, a write during a load keeps that load's result out, and
/// a corrupt entry is a miss that is replaced.
pub async fn caches_share_invalidations(
    a: impl SharedBackend,
    b: impl SharedBackend,
    namespace: &str,
) {
    let a =
        Cache::with_shared_backend(settings(namespace), a).expect("conformance settings are valid");
    let b =
        Cache::with_shared_backend(settings(namespace), b).expect("conformance settings are valid");
    assert_eq!(read(&b, "old").await, "old");
    assert_eq!(
        read(&a, "other").await,
        "old",
        "conformance: an entry stored through one cache must be served by another"
    );
    a.invalidate(&[&rows(&a)]).await;
    assert_eq!(
        read(&b, "new").await,
        "new",
        "conformance: after a write through one cache, another must not serve the old entry"
    );

    // A write that completes while a load runs: the load's result must not be served.
    let key = b.key(&SCOPE, &2_u32).expect("a u32 key serializes");
    let loaded = b
        .get_or_load(key, &[&rows(&b)], Ttl::Forever, || async {
            a.invalidate(&[&rows(&a)]).await;
            Ok::<_, std::convert::Infallible>("read before the write".to_owned())
        })
        .await
        .unwrap_or_else(|e| match e {});
    assert_eq!(loaded, "read before the write");
    let after = b
        .get_or_load(key, &[&rows(&b)], Ttl::Forever, || async {
            Ok::<_, std::convert::Infallible>("read after the write".to_owned())
        })
        .await
        .unwrap_or_else(|e| match e {});
    assert_eq!(
        after, "read after the write",
        "conformance: a value loaded while a write completed must not be served after it"
    );

    let stats = a.stats();
    assert_eq!(stats.backend_errors, 0, "conformance: {stats:?}");
    let stats = b.stats();
    assert_eq!(stats.backend_errors, 0, "conformance: {stats:?}");
}

/// The settings of the cache [`corrupt_entries`] checks.
pub fn corrupt_settings(namespace: &str) -> Settings {
    Settings {
        namespace: format!("{namespace}.corrupt"),
        ..Settings::default()
    }
}

/// Bytes under a cache's key that are not an entry it wrote (corrupt, truncated, foreign)
/// are a miss: the query runs, the bytes are replaced, and the next read is a hit. `cache`
/// is built over the backend with [`corrupt_settings`]; `raw` writes into the same store.
pub async fn corrupt_entries(cache: &Cache, raw: &dyn Backend) {
    let remote_prefix = format!("{}:", cache.settings().namespace);
    let cache = cache.clone();
    let key = cache.key(&SCOPE, &1_u32).expect("a u32 key serializes");
    let remote = format!("{remote_prefix}{key}");
    for (i, garbage) in [&b"not an entry"[..], b"", b"\x93\x01\x02"]
        .iter()
        .enumerate()
    {
        set(raw, &remote, garbage, None).await;
        assert_eq!(
            read(&cache, "loaded").await,
            "loaded",
            "conformance: a corrupt entry must be a miss that runs the query"
        );
        assert_eq!(
            cache.stats().decode_errors,
            i as u64 + 1,
            "conformance: a corrupt entry must count as a decode error"
        );
        assert_ne!(
            get(raw, &remote).await.as_deref(),
            Some(&garbage[..]),
            "conformance: a corrupt entry must be deleted or replaced"
        );
        assert_eq!(read(&cache, "other").await, "loaded");
        cache.invalidate(&[&rows(&cache)]).await;
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.backend_errors),
        (3, 0),
        "conformance: {stats:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::{run, run_shared, unique_namespace};
    use crate::backend::{MemoryBackend, SharedMemoryBackend};

    #[tokio::test]
    async fn memory_backend_conforms() {
        let store = MemoryBackend::new(100_000);
        run(&unique_namespace("memory"), || {
            let store = store.clone();
            async move { store }
        })
        .await;
    }

    #[tokio::test]
    async fn shared_memory_backend_conforms() {
        let store = SharedMemoryBackend::new(100_000);
        run_shared(&unique_namespace("shared-memory"), || {
            let store = store.clone();
            async move { store }
        })
        .await;
    }
}
