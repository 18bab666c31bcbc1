//! `Settings` from config files, and their validation.

use cache_runtime::{Cache, Settings, SettingsError, Ttl};

#[test]
fn loads_from_toml() {
    let s: Settings = toml::from_str(
        r#"
        namespace = "shop"
        max_keys_per_table = 500
        invalidate_on_write = false
        default_ttl = "1h30m"
        max_entries = 20000
        cache_none = false
        enabled = true
        "#,
    )
    .unwrap();
    assert_eq!(s.namespace, "shop");
    assert_eq!(s.max_keys_per_table, 500);
    assert!(!s.invalidate_on_write);
    assert_eq!(s.default_ttl, Ttl::secs(5400));
    assert_eq!(s.max_entries, 20_000);
    assert!(!s.cache_none);
    Cache::new(s).unwrap();

    // Every TTL form, and defaults for what is left out.
    for (text, ttl) in [
        ("default_ttl = 60000", Ttl::secs(60)),
        ("default_ttl = true", Ttl::Forever),
        ("default_ttl = false", Ttl::Bypass),
    ] {
        let s: Settings = toml::from_str(text).unwrap();
        assert_eq!(s.default_ttl, ttl);
        assert_eq!(s.max_keys_per_table, 10_000);
    }
}

#[test]
fn loads_from_json_and_round_trips() {
    let s: Settings = serde_json::from_str(
        r#"{"namespace": "api", "default_ttl": "2026-09-01T00:00:00Z", "max_entries": 5}"#,
    )
    .unwrap();
    assert!(matches!(s.default_ttl, Ttl::Until(_)));
    assert_eq!(s.max_entries, 5);
    assert!(s.enabled);
    let again: Settings = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(again, s);
}

#[test]
fn bad_config_is_a_descriptive_error() {
    let typo = toml::from_str::<Settings>("max_entires = 10")
        .unwrap_err()
        .to_string();
    assert!(typo.contains("unknown field `max_entires`"), "{typo}");
    let ttl = toml::from_str::<Settings>("default_ttl = \"60x\"")
        .unwrap_err()
        .to_string();
    assert!(ttl.contains("expected a duration such as"), "{ttl}");
    let neg = serde_json::from_str::<Settings>(r#"{"default_ttl": -5}"#)
        .unwrap_err()
        .to_string();
    assert!(neg.contains("negative"), "{neg}");
}

#[test]
fn invalid_values_fail_construction_not_later() {
    let cases = [
        (
            Settings {
                max_entries: 0,
                ..Settings::default()
            },
            SettingsError::ZeroMaxEntries,
            "max_entries is 0",
        ),
        (
            Settings {
                max_keys_per_table: 0,
                ..Settings::default()
            },
            SettingsError::ZeroMaxKeysPerTable,
            "max_keys_per_table is 0",
        ),
        (
            Settings {
                namespace: " ".into(),
                ..Settings::default()
            },
            SettingsError::EmptyNamespace,
            "namespace is empty",
        ),
        (
            Settings {
                namespace: "a*".into(),
                ..Settings::default()
            },
            SettingsError::InvalidNamespace("a*".into()),
            "contains whitespace",
        ),
        (
            Settings {
                namespace: "shop:eu".into(),
                ..Settings::default()
            },
            SettingsError::InvalidNamespace("shop:eu".into()),
            "contains whitespace",
        ),
    ];
    for (settings, want, message) in cases {
        let err = Cache::new(settings.clone()).unwrap_err();
        assert_eq!(err, want);
        assert!(err.to_string().contains(message), "{err}");
        let backend = cache_runtime::backend::MemoryBackend::new(10);
        assert_eq!(Cache::with_backend(settings, backend).unwrap_err(), want);
    }
}

#[test]
fn the_global_cache_is_the_installed_one() {
    let mine = Cache::new(Settings {
        namespace: "installed".into(),
        ..Settings::default()
    })
    .unwrap();
    cache_runtime::install(mine).unwrap();
    assert_eq!(cache_runtime::global().settings().namespace, "installed");
    let second = Cache::new(Settings::default()).unwrap();
    assert!(
        cache_runtime::install(second).is_err(),
        "a second install is refused"
    );
}
