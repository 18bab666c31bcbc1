//! A tiny "table" that counts its reads, standing in for a query's data source in tests
//! that exercise the cache's own mechanisms (the database suites live in the root tests/).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, Key, KeyScope, Settings};

pub static FIND: KeyScope = KeyScope::new("tests::find");

pub fn cache() -> Cache {
    Cache::new(Settings::default()).expect("default settings are valid")
}

pub fn key(cache: &Cache, id: i64) -> Key {
    cache.key(&FIND, &id).expect("i64 serializes")
}

#[derive(Clone, Default)]
pub struct Calls(Arc<AtomicUsize>);

impl Calls {
    pub fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
