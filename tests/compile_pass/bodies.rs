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

/// What a request handler owns: the cache rides along with what the body consumes.
struct Ctx {
    cache: Cache,
    prefix: String,
}

// The cache is borrowed from a parameter the body moves: a hit only borrows it, a miss
// owns a clone before the body runs.
#[cached(table = "bodies_t", cache = &ctx.cache, skip(ctx))]
async fn describe(ctx: Ctx, id: i64) -> Option<String> {
    let Ctx { prefix, .. } = ctx;
    Some(format!("{prefix}{id}"))
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
    let cache = Cache::new(Settings::default()).unwrap();
    let ctx = |prefix: &str| Ctx {
        cache: cache.clone(),
        prefix: prefix.into(),
    };
    assert_eq!(describe(ctx("a"), 1).await.as_deref(), Some("a1"));
    assert_eq!(
        describe(ctx("b"), 1).await.as_deref(),
        Some("a1"),
        "a hit: `ctx` is skipped"
    );
}
