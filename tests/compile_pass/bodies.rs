// Bodies are re-emitted statement by statement: inner attributes stay at the top of the
// function, a one-line body does not warn under `deny(unused_braces)`. `&mut self` and
// `self` methods work, and `#[cache_impl]` gives a block's methods their cache.
#![deny(unused_braces, unused_mut)]

use cache_runtime::{Cache, Settings, cache_impl, cached, invalidates};

#[cached(table = "bodies_t")]
async fn one_line(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(table = "bodies_t")]
async fn inner_attribute(id: i64, unused: i64) -> Option<i64> {
    #![allow(unused_variables)]
    Some(id)
}

#[invalidates(tables = ["bodies_t"])]
async fn write_inner_attribute(id: i64) -> Result<(), ()> {
    #![allow(unused_variables)]
    Ok(())
}

struct Repo {
    cache: Cache,
    calls: i64,
}

#[cache_impl(cache = &self.cache)]
impl Repo {
    // The body mutates `self`; `self.calls` is keyed by its value before the call.
    #[cached(table = "bodies_t")]
    async fn next(&mut self, id: i64) -> Option<i64> {
        self.calls += 1;
        Some(id + self.calls)
    }

    #[cached(table = "bodies_t", skip(self))]
    async fn consume(self, id: i64) -> Option<i64> {
        drop(self);
        Some(id)
    }

    #[invalidates(tables = ["bodies_t"])]
    async fn reset(&mut self) -> Result<(), ()> {
        self.calls = 0;
        Ok(())
    }

    // No `self` to take the cache from: the process-wide cache.
    #[cached(table = "bodies_t")]
    async fn associated(id: i64) -> Option<i64> {
        Some(id)
    }
}

#[tokio::test]
async fn compiles_and_runs() {
    assert_eq!(one_line(1).await, Ok(1));
    assert_eq!(inner_attribute(1, 2).await, Some(1));
    write_inner_attribute(1).await.unwrap();
    let mut repo = Repo {
        cache: Cache::new(Settings::default()).unwrap(),
        calls: 0,
    };
    assert_eq!(repo.next(1).await, Some(2));
    assert_eq!(
        repo.next(1).await,
        Some(3),
        "another `self.calls`, another key"
    );
    repo.reset().await.unwrap();
    assert_eq!(repo.next(1).await, Some(2));
    assert_eq!(Repo::associated(5).await, Some(5));
    assert_eq!(repo.consume(4).await, Some(4));
}
