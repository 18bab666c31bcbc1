//! The ways ordinary code used to get a wrong or stale value out of the macros, each closed
//! and pinned here: arguments that keyed alike, `self` and handles mistaken for one
//! another, reads and writes through different caches, writes that ended without
//! invalidating. Each test names the mechanism whose removal makes it fail.
//!
//! An invalidation reaches every cache of the process, so each test uses tables of its own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_runtime::{Cache, Settings, cache_impl, cached, invalidates};
use serde::Serialize;

fn cache() -> Cache {
    Cache::new(Settings::default()).expect("default settings are valid")
}

// ----- keys are injective -----

/// The field report's filter: absent fields are skipped when serialized.
#[derive(Clone, Serialize)]
struct Filter {
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[cached(table = "nw_people")]
async fn search(cache: &Cache, filter: Filter) -> Vec<String> {
    match (filter.city, filter.name) {
        (Some(city), _) => vec![format!("everyone in {city}")],
        (_, Some(name)) => vec![format!("everyone named {name}")],
        _ => Vec::new(),
    }
}

/// Mechanism: struct fields are keyed by name (`key_encoder`). As an array of values, both
/// filters were `["Paris"]`, and the second search was served the first one's rows.
#[tokio::test]
async fn filters_that_differ_by_field_never_share_a_key() {
    let cache = cache();
    let in_paris = Filter {
        city: Some("Paris".into()),
        name: None,
    };
    let named_paris = Filter {
        city: None,
        name: Some("Paris".into()),
    };
    assert_eq!(search(&cache, in_paris).await, ["everyone in Paris"]);
    assert_eq!(search(&cache, named_paris).await, ["everyone named Paris"]);
}

#[cached(table = "nw_options")]
async fn nested(cache: &Cache, x: Option<Option<i64>>) -> String {
    format!("{x:?}")
}

#[cached(table = "nw_sets")]
async fn tagged(cache: &Cache, tags: HashSet<String>, weights: HashMap<String, i64>) -> usize {
    CANONICAL_LOADS.fetch_add(1, SeqCst);
    tags.len() + weights.len()
}

static CANONICAL_LOADS: AtomicUsize = AtomicUsize::new(0);

/// Mechanism: `Some` has a tag of its own; maps and sets are keyed sorted.
#[tokio::test]
async fn option_nesting_is_kept_and_equal_sets_share_a_key() {
    let cache = cache();
    assert_eq!(nested(&cache, None).await, "None");
    assert_eq!(nested(&cache, Some(None)).await, "Some(None)");

    let words: Vec<String> = (0..40).map(|i| format!("tag{i}")).collect();
    for round in 0..5 {
        // A new set (and random hasher) each time: a different iteration order.
        let tags: HashSet<String> = words.iter().rev().skip(round).cloned().collect();
        let tags: HashSet<String> = tags.into_iter().chain(words.iter().cloned()).collect();
        let weights: HashMap<String, i64> = words.iter().map(|w| (w.clone(), 1)).collect();
        assert_eq!(tagged(&cache, tags, weights).await, 80);
    }
    assert_eq!(CANONICAL_LOADS.load(SeqCst), 1, "equal sets, one key");
}

// ----- what decides the result is keyed: `self` -----

struct Tenants {
    cache: Cache,
    tenant: i64,
    loads: Arc<AtomicUsize>,
}

#[cache_impl(cache = &self.cache)]
impl Tenants {
    // Reads `self.tenant`: keyed by it. `self.loads` is read too (a counter): its value is
    // keyed as well, so a test that wants hits skips `self` and keys the tenant itself.
    #[cached(table = "nw_orders", self_key = self.tenant)]
    async fn orders(&self, day: u32) -> Vec<String> {
        self.loads.fetch_add(1, SeqCst);
        vec![format!("tenant {} orders of day {day}", self.tenant)]
    }

    #[cached(table = "nw_orders")]
    async fn orders_by_field(&self, day: u32) -> Vec<String> {
        vec![format!("tenant {} orders of day {day}", self.tenant)]
    }
}

/// Mechanism: `#[cached]` keys the fields of `self` the body reads (or `self_key`). Before,
/// `self` was never keyed, and one tenant was served another's rows.
#[tokio::test]
async fn one_tenant_is_never_served_another_tenants_rows() {
    let shared = cache();
    let loads = Arc::new(AtomicUsize::new(0));
    let a = Tenants {
        cache: shared.clone(),
        tenant: 1,
        loads: loads.clone(),
    };
    let b = Tenants {
        cache: shared.clone(),
        tenant: 2,
        loads: loads.clone(),
    };
    assert_eq!(a.orders(7).await, ["tenant 1 orders of day 7"]);
    assert_eq!(b.orders(7).await, ["tenant 2 orders of day 7"]);
    assert_eq!(a.orders(7).await, ["tenant 1 orders of day 7"]);
    assert_eq!(loads.load(SeqCst), 2, "one load per tenant, then hits");
    assert_eq!(a.orders_by_field(7).await, ["tenant 1 orders of day 7"]);
    assert_eq!(b.orders_by_field(7).await, ["tenant 2 orders of day 7"]);
}

// ----- handles are recognised by type, not by name -----

/// A value the user named `Transaction`: an account transfer, not a database handle.
#[derive(Serialize)]
struct Transaction {
    account: i64,
}

#[cached(table = "nw_balances")]
async fn balance(cache: &Cache, tx: &Transaction) -> i64 {
    tx.account * 100
}

/// Mechanism: parameters are classified by type (`__private::Arg`). Before, a parameter
/// whose type was named `Transaction` was left out of the key: account 2 was served
/// account 1's balance.
#[tokio::test]
async fn a_user_type_named_transaction_is_keyed() {
    let cache = cache();
    assert_eq!(balance(&cache, &Transaction { account: 1 }).await, 100);
    assert_eq!(balance(&cache, &Transaction { account: 2 }).await, 200);
}

// ----- generic code: each instantiation its own keys -----

trait Source {
    const NAME: &'static str;
}

struct Invoices;
struct Receipts;

impl Source for Invoices {
    const NAME: &'static str = "invoices";
}

impl Source for Receipts {
    const NAME: &'static str = "receipts";
}

struct Counter<S>(std::marker::PhantomData<S>);

impl<S: Source> Counter<S> {
    #[cached(table = "nw_documents")]
    async fn count(cache: &Cache) -> String {
        format!("count of {}", S::NAME)
    }
}

/// Mechanism: `KeyScope::instance` mixes the instantiation into the key. One `static`
/// scope serves every instantiation of a generic function: before, `Counter<Receipts>`
/// was served `Counter<Invoices>`'s result.
#[tokio::test]
async fn each_instantiation_of_generic_code_has_its_own_keys() {
    let cache = cache();
    assert_eq!(
        Counter::<Invoices>::count(&cache).await,
        "count of invoices"
    );
    assert_eq!(
        Counter::<Receipts>::count(&cache).await,
        "count of receipts"
    );
}

// ----- reads and writes meet, whichever cache they name -----

struct Repo {
    cache: Cache,
    rows: Arc<std::sync::Mutex<String>>,
}

#[cache_impl(cache = &self.cache)]
impl Repo {
    #[cached(table = "nw_profiles", skip(self))]
    async fn profile(&self) -> String {
        self.rows.lock().unwrap().clone()
    }
}

/// A write through the process-wide cache (no `cache =`).
#[invalidates(tables = ["nw_profiles"])]
async fn rename_everywhere(rows: &std::sync::Mutex<String>, name: &str) -> Result<(), ()> {
    *rows.lock().unwrap() = name.to_owned();
    Ok(())
}

/// Mechanism: an invalidation reaches every cache of the process. Before, a read through a
/// repository's own cache and a write through the process-wide one never met.
#[tokio::test]
async fn a_write_through_one_cache_invalidates_every_cache() {
    let rows = Arc::new(std::sync::Mutex::new("ada".to_owned()));
    let repo = Repo {
        cache: cache(),
        rows: rows.clone(),
    };
    assert_eq!(repo.profile().await, "ada");
    assert_eq!(repo.profile().await, "ada");
    rename_everywhere(&rows, "lovelace").await.unwrap();
    assert_eq!(repo.profile().await, "lovelace");
}

// ----- every write invalidates, however it ends -----

static WRITE_READS: AtomicUsize = AtomicUsize::new(0);

#[cached(table = "nw_accounts")]
async fn read_account(cache: &Cache, rows: &std::sync::Mutex<i64>) -> i64 {
    WRITE_READS.fetch_add(1, SeqCst);
    *rows.lock().unwrap()
}

/// Writes, then hangs (a slow step after the statement committed).
#[invalidates(tables = ["nw_accounts"])]
async fn write_then_hang(cache: &Cache, rows: &std::sync::Mutex<i64>) -> Result<(), ()> {
    *rows.lock().unwrap() += 1;
    std::future::pending::<()>().await;
    Ok(())
}

/// Writes, then panics.
#[invalidates(tables = ["nw_accounts"])]
async fn write_then_panic(cache: &Cache, rows: Arc<std::sync::Mutex<i64>>) -> Result<(), ()> {
    *rows.lock().unwrap() += 1;
    panic!("after the write");
}

/// Mechanism: `WriteGuard` invalidates when dropped unfinished. Before, a write whose
/// future was dropped (a timeout, a client that went away) or that panicked after its
/// statement ran invalidated nothing, and the old value stayed cached.
#[tokio::test]
async fn a_cancelled_or_panicking_write_still_invalidates() {
    let cache = cache();
    let rows = Arc::new(std::sync::Mutex::new(0_i64));
    assert_eq!(read_account(&cache, &rows).await, 0);
    assert_eq!(read_account(&cache, &rows).await, 0);

    let timed_out =
        tokio::time::timeout(Duration::from_millis(50), write_then_hang(&cache, &rows)).await;
    assert!(timed_out.is_err(), "the write was cancelled");
    assert_eq!(
        read_account(&cache, &rows).await,
        1,
        "after a cancelled write"
    );

    let panicked = tokio::spawn({
        let (cache, rows) = (cache.clone(), rows.clone());
        async move { write_then_panic(&cache, rows).await }
    })
    .await;
    assert!(panicked.is_err_and(|e| e.is_panic()));
    assert_eq!(
        read_account(&cache, &rows).await,
        2,
        "after a panicking write"
    );
    assert_eq!(WRITE_READS.load(SeqCst), 3);
}

// ----- methods of #[async_trait] impls -----

#[async_trait::async_trait]
trait Accounts {
    async fn owner(&self, id: i64) -> Option<String>;
    async fn close(&self, id: i64) -> Result<(), ()>;
}

struct Bank {
    cache: Cache,
    branch: String,
}

static BANK_LOADS: AtomicUsize = AtomicUsize::new(0);

#[async_trait::async_trait]
impl Accounts for Bank {
    // #[async_trait] expands first: the macro finds the boxed async block it made, and the
    // receiver it renamed `__self`, whose fields it keys as it would `self`'s.
    #[cached(table = "nw_bank_accounts", cache = &self.cache)]
    async fn owner(&self, id: i64) -> Option<String> {
        BANK_LOADS.fetch_add(1, SeqCst);
        Some(format!("owner of {id} at {}", self.branch))
    }

    #[invalidates(tables = ["nw_bank_accounts"], cache = &self.cache)]
    async fn close(&self, id: i64) -> Result<(), ()> {
        let _ = id;
        Ok(())
    }
}

/// Mechanism: `body::of` finds an `#[async_trait]` method's boxed async block. Before, the
/// macros rejected such methods ("requires an async fn" on an async fn).
#[tokio::test]
async fn async_trait_methods_are_cached_and_keyed_by_self() {
    let cache = cache();
    let paris = Bank {
        cache: cache.clone(),
        branch: "Paris".into(),
    };
    let lyon = Bank {
        cache: cache.clone(),
        branch: "Lyon".into(),
    };
    assert_eq!(paris.owner(1).await.as_deref(), Some("owner of 1 at Paris"));
    assert_eq!(paris.owner(1).await.as_deref(), Some("owner of 1 at Paris"));
    assert_eq!(lyon.owner(1).await.as_deref(), Some("owner of 1 at Lyon"));
    assert_eq!(BANK_LOADS.load(SeqCst), 2, "a hit, and a branch of its own");
    paris.close(1).await.unwrap();
    assert_eq!(paris.owner(1).await.as_deref(), Some("owner of 1 at Paris"));
    assert_eq!(BANK_LOADS.load(SeqCst), 3, "the write invalidated");
}
