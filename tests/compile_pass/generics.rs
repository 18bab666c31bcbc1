// Generic functions (the concrete type is part of the key), lifetimes, `impl Trait`
// arguments, raw identifiers and `mut` bindings.
use cache_runtime::{Cache, Settings, cached};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[cached(table = "generics_t")]
async fn parse_as<T>(cache: &Cache, text: &str) -> Option<T>
where
    T: std::str::FromStr + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    text.parse().ok()
}

#[cached(table = "generics_t")]
async fn borrowed<'a, 'b: 'a>(cache: &'a Cache, a: &'a str, b: &'b [u8]) -> usize {
    a.len() + b.len()
}

#[cached(table = "generics_t")]
async fn opaque(cache: &Cache, name: impl Serialize + AsRef<str>) -> String {
    name.as_ref().to_uppercase()
}

#[cached(table = "generics_t")]
async fn raw(cache: &Cache, r#type: u8, mut count: u32) -> u32 {
    count += u32::from(r#type);
    count
}

#[tokio::test]
async fn compiles_and_runs() {
    let cache = Cache::new(Settings::default()).unwrap();
    assert_eq!(parse_as::<u8>(&cache, "7").await, Some(7));
    // Same argument, another type parameter: another key, not the cached `u8`.
    assert_eq!(parse_as::<i64>(&cache, "7").await, Some(7));
    assert_eq!(parse_as::<String>(&cache, "7").await.as_deref(), Some("7"));
    assert_eq!(cache.entry_count(), Some(3));
    assert_eq!(borrowed(&cache, "ab", b"c").await, 3);
    assert_eq!(opaque(&cache, "x").await, "X");
    assert_eq!(raw(&cache, 1, 1).await, 2);
}
