//! `install` after the process-wide cache was already used is a loud error that says where
//! the first use was. Its own binary: the process-wide cache is set once per process.

use cache_runtime::{Cache, Settings, cached};

#[cached(table = "install_users")]
async fn count() -> Option<i64> {
    Some(1)
}

/// Mechanism: `global()` records where it created the default cache, and `install` reports
/// it (and logs it at ERROR). Without it the mistake was silent: `install(..).ok()` kept
/// the defaults.
#[tokio::test]
async fn install_after_first_use_says_where_the_first_use_was() {
    count().await; // uses, and so creates, the default process-wide cache
    let mine = Cache::new(Settings {
        namespace: "mine".into(),
        ..Settings::default()
    })
    .unwrap();
    let err = cache_runtime::install(mine).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("came too late"), "{message}");
    assert!(message.contains("first used at"), "{message}");
    assert!(
        message.contains("install.rs"),
        "names the first use: {message}"
    );
    let cache = err.into_cache().expect("the cache is given back");
    assert_eq!(cache.settings().namespace, "mine");
    assert_eq!(cache_runtime::global().settings().namespace, "sqlx-cache");
}
