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

mod round_trip {
    use std::time::{Duration, SystemTime};

    use cache_runtime::{Settings, Ttl};
    use proptest::prelude::*;

    fn duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0..u64::MAX, 0..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n)),
            (0..100_000u64).prop_map(Duration::from_millis),
            Just(Duration::MAX),
            Just(Duration::from_millis(u64::MAX)),
            Just(Duration::ZERO),
        ]
    }

    fn ttl() -> impl Strategy<Value = Ttl> {
        prop_oneof![
            duration().prop_map(Ttl::For),
            Just(Ttl::Forever),
            Just(Ttl::Bypass),
            // RFC 3339 reaches year 9999.
            (0..253_402_300_799u64, 0..1_000_000_000u32)
                .prop_map(|(s, n)| Ttl::Until(SystemTime::UNIX_EPOCH + Duration::new(s, n))),
        ]
    }

    fn settings() -> impl Strategy<Value = Settings> {
        // TOML integers are i64.
        let n = || 1..=(i64::MAX as usize);
        (
            "[a-z][a-z0-9_.-]{0,12}",
            (n(), n(), n(), n(), n()),
            (any::<bool>(), any::<bool>(), any::<bool>()),
            ttl(),
            (duration(), duration()),
            (
                0u32..=1000,
                proptest::option::of("redis://[a-z0-9.]{1,12}:[0-9]{1,5}"),
            ),
            (any::<bool>(), duration(), any::<bool>(), any::<bool>()),
            (duration(), duration(), duration()),
        )
            .prop_map(
                |(
                    namespace,
                    (keys, entries, bytes, tables, entry_bytes),
                    (inv, none, enabled),
                    ttl,
                    (bt, lw),
                    (sample, redis_url),
                    (near_cache, near_lease, shared_single_flight, row_level),
                    (stale_while_revalidate, stale_on_error, refresh_ahead),
                )| {
                    Settings {
                        namespace,
                        max_keys_per_table: keys,
                        invalidate_on_write: inv,
                        default_ttl: ttl,
                        max_entries: entries,
                        cache_none: none,
                        enabled,
                        backend_timeout: bt,
                        max_load_wait: lw,
                        max_bytes: bytes,
                        max_tables: tables,
                        max_entry_bytes: entry_bytes,
                        freshness_sample: f64::from(sample) / 1000.0,
                        redis_url,
                        near_cache,
                        near_lease,
                        shared_single_flight,
                        row_level,
                        stale_while_revalidate,
                        stale_on_error,
                        refresh_ahead,
                    }
                },
            )
    }

    proptest! {
        /// What serializes deserializes to the same value, in JSON and TOML, for every
        /// TTL form and every duration (`Ttl::For(Duration::from_millis(u64::MAX))` used to
        /// print text that did not parse).
        #[test]
        fn settings_round_trip(s in settings()) {
            if s.default_ttl == Ttl::For(Duration::ZERO) {
                // No text reads back to it: an error, not a value that changes.
                prop_assert!(serde_json::to_string(&s).is_err());
                return Ok(());
            }
            let json = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(&serde_json::from_str::<Settings>(&json).unwrap(), &s, "{}", json);
            let toml = toml::to_string(&s).unwrap();
            prop_assert_eq!(&toml::from_str::<Settings>(&toml).unwrap(), &s, "{}", toml);
        }

        #[test]
        fn ttl_text_round_trips(t in ttl()) {
            if t != Ttl::For(Duration::ZERO) {
                prop_assert_eq!(t.to_string().parse::<Ttl>().unwrap(), t);
            }
        }
    }
}

#[test]
fn a_default_ttl_that_caches_nothing_is_an_error() {
    let past = Settings {
        default_ttl: Ttl::Until(std::time::SystemTime::now() - std::time::Duration::from_secs(1)),
        ..Settings::default()
    };
    let err = Cache::new(past).unwrap_err();
    assert!(matches!(err, SettingsError::DefaultTtlCachesNothing(_)));
    assert!(err.to_string().contains("default_ttl"), "{err}");
    let zero = Settings {
        default_ttl: Ttl::For(std::time::Duration::ZERO),
        ..Settings::default()
    };
    assert!(matches!(
        Cache::new(zero).unwrap_err(),
        SettingsError::DefaultTtlCachesNothing(_)
    ));
}

/// A zero timeout reads as a duration, and `Cache::new` names the field (it used to be a
/// parse error about bypassing the cache).
#[test]
fn zero_durations_are_named_by_their_field() {
    for (text, want, field) in [
        (
            "backend_timeout = \"0ms\"",
            SettingsError::ZeroBackendTimeout,
            "backend_timeout",
        ),
        (
            "max_load_wait = 0",
            SettingsError::ZeroMaxLoadWait,
            "max_load_wait",
        ),
    ] {
        let settings: Settings = toml::from_str(text).unwrap();
        let err = Cache::new(settings).unwrap_err();
        assert_eq!(err, want);
        let message = err.to_string();
        assert!(
            message.contains(field) && !message.contains("bypass"),
            "{message}"
        );
    }
    for (settings, want) in [
        (
            Settings {
                max_bytes: 0,
                ..Settings::default()
            },
            SettingsError::ZeroMaxBytes,
        ),
        (
            Settings {
                max_tables: 0,
                ..Settings::default()
            },
            SettingsError::ZeroMaxTables,
        ),
    ] {
        assert_eq!(Cache::new(settings).unwrap_err(), want);
    }
}
