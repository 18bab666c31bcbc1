// Generated code names only absolute paths and its own hidden locals: shadowed prelude
// types, parameters named like the generated locals, and strict lints change nothing.
#![deny(warnings, unused_qualifications, unused_results)]
#![allow(dead_code)]

mod shadowed {
    use cache_runtime::{Cache, CacheEntity, cached, invalidates};

    struct Result;
    struct Option;
    struct Vec;
    struct Box;
    struct String;
    struct Duration;
    struct Ttl;
    struct Key;
    mod core {}
    mod std {}
    mod cache_runtime_shadow {}

    #[derive(Clone, serde::Serialize, serde::Deserialize, CacheEntity)]
    #[cache(table = "hygiene_users", ttl = "2030-01-01T00:00:00Z")]
    struct User {
        id: i64,
    }

    #[cached(ttl = "60s")]
    async fn find(cache: &Cache, id: i64) -> ::core::result::Result<User, ::std::io::Error> {
        ::core::result::Result::Ok(User { id })
    }

    #[cached]
    async fn find_all(cache: &Cache) -> ::std::vec::Vec<User> {
        ::std::vec::Vec::new()
    }

    #[cached(table = "hygiene_t", ttl = 1500)]
    async fn locals(
        __cache: i64,
        __key: i64,
        __args: i64,
        __ttl: i64,
        __tables: i64,
        __output: i64,
    ) -> i64 {
        __cache + __key + __args + __ttl + __tables + __output
    }

    #[invalidates(User)]
    async fn write(__output: i64, __cache: &Cache) -> ::core::result::Result<i64, ()> {
        ::core::result::Result::Ok(__output)
    }

    pub async fn run() {
        let cache = Cache::new(::core::default::Default::default()).unwrap();
        let _ = find(&cache, 1).await;
        let _ = find_all(&cache).await;
        assert_eq!(locals(1, 2, 3, 4, 5, 6).await, 21);
        assert_eq!(write(1, &cache).await, ::core::result::Result::Ok(1));
    }
}

// `str` shadowed too (serde's derives do not support that, so this entity is not cached).
mod primitive_shadowed {
    use cache_runtime::{Cache, CacheEntity, cached, invalidates};

    #[allow(non_camel_case_types)]
    struct str;

    #[derive(CacheEntity)]
    #[cache(table = "hygiene_rows", ttl = 5)]
    struct Row {
        id: u8,
    }

    #[cached(tables = ["hygiene_rows", "hygiene_others"])]
    async fn total(cache: &Cache, id: u8) -> u8 {
        id
    }

    #[invalidates(Row, table = "hygiene_others")]
    async fn write(cache: &Cache) {}

    pub async fn run() {
        let cache = Cache::new(::core::default::Default::default()).unwrap();
        assert_eq!(total(&cache, 1).await, 1);
        write(&cache).await;
        let _ = Row { id: 1 }.id;
    }
}

#[tokio::test]
async fn compiles_and_runs() {
    shadowed::run().await;
    primitive_shadowed::run().await;
}
