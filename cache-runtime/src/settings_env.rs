//! `Settings` from environment variables: `<PREFIX><FIELD>` in upper case, each value in
//! the form the field takes in a file (`"250ms"`, `true`, `0.001`, `redis://…`).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, Visitor};

use crate::Settings;

/// A variable of the environment that [`Settings::with_env`] could not use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvError {
    /// The variable, e.g. `APP_CACHE_MAX_ENTRIES`.
    pub variable: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "environment variable {}: {}", self.variable, self.reason)
    }
}

impl std::error::Error for EnvError {}

/// Copies the named field of `from` into `to`; `false` for a name no field has. Every
/// field of `Settings` is listed (a unit test compares the list with the serialized form).
macro_rules! fields {
    ($($field:ident),* $(,)?) => {
        const FIELDS: &[&str] = &[$(stringify!($field)),*];

        fn copy_field(name: &str, from: Settings, to: &mut Settings) -> bool {
            match name {
                $(stringify!($field) => to.$field = from.$field,)*
                _ => return false,
            }
            true
        }
    };
}

fields!(
    namespace,
    max_keys_per_table,
    invalidate_on_write,
    default_ttl,
    max_entries,
    cache_none,
    enabled,
    backend_timeout,
    max_load_wait,
    max_bytes,
    max_tables,
    max_entry_bytes,
    freshness_sample,
    redis_url,
    near_cache,
    near_lease,
    shared_single_flight,
    row_level,
    stale_while_revalidate,
    stale_on_error,
    refresh_ahead,
);

impl Settings {
    /// The default settings, overridden by the environment variables named `prefix` plus a
    /// field's name in upper case: see [`Settings::with_env`].
    ///
    /// # Errors
    ///
    /// As [`Settings::with_env`].
    pub fn from_env(prefix: &str) -> Result<Settings, EnvError> {
        Settings::default().with_env(prefix)
    }

    /// These settings (defaults, or read from a file) with each field overridden by the
    /// environment variable named `prefix` plus the field's name in upper case:
    /// `APP_CACHE_MAX_ENTRIES=50000`, `APP_CACHE_DEFAULT_TTL=5m`,
    /// `APP_CACHE_REDIS_URL=redis://cache:6379` for the prefix `APP_CACHE_`. Values are
    /// written as in a file: durations as `"250ms"` or milliseconds, TTLs as a duration,
    /// `true`, `false` or a date.
    ///
    /// ```
    /// use cache_runtime::Settings;
    ///
    /// // SAFETY: no other thread of this example reads the environment.
    /// unsafe {
    ///     std::env::set_var("DOC_CACHE_MAX_ENTRIES", "5000");
    ///     std::env::set_var("DOC_CACHE_DEFAULT_TTL", "5m");
    /// }
    /// let settings = Settings::from_env("DOC_CACHE_")?;
    /// assert_eq!(settings.max_entries, 5000);
    /// assert_eq!(settings.default_ttl.to_string(), "5m");
    /// # Ok::<(), cache_runtime::EnvError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// An [`EnvError`] naming the variable when a value does not parse, or when a variable
    /// starting with `prefix` names no field (a typo is an error, not a setting silently
    /// ignored: choose a prefix nothing else uses). Values are not validated here:
    /// building the cache does that ([`Settings::validate`]).
    pub fn with_env(self, prefix: &str) -> Result<Settings, EnvError> {
        self.with_vars(prefix, std::env::vars_os())
    }

    fn with_vars(
        mut self,
        prefix: &str,
        vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> Result<Settings, EnvError> {
        if prefix.is_empty() {
            return Err(EnvError {
                variable: String::new(),
                reason: "the prefix is empty: every variable of the environment would be \
                         read as a setting; use one such as \"APP_CACHE_\""
                    .to_owned(),
            });
        }
        let mut found: Vec<(String, String, String)> = Vec::new();
        for (name, value) in vars {
            let Some(name) = name.to_str() else { continue };
            let Some(field) = name.strip_prefix(prefix) else {
                continue;
            };
            let error = |reason: String| EnvError {
                variable: name.to_owned(),
                reason,
            };
            let field = field.to_ascii_lowercase();
            if !FIELDS.contains(&field.as_str()) {
                return Err(error(format!(
                    "no setting is named `{field}`; the settings are {}",
                    FIELDS.join(", ")
                )));
            }
            let value = value
                .into_string()
                .map_err(|_| error("the value is not UTF-8".to_owned()))?;
            found.push((name.to_owned(), field, value));
        }
        // In name order: an error names the same variable whatever the environment's order.
        found.sort();
        // `APP_MAX_ENTRIES` and `APP_max_entries` both name one field: which one wins
        // would be an accident of sorting.
        for pair in found.windows(2) {
            if pair[0].1 == pair[1].1 {
                return Err(EnvError {
                    variable: pair[1].0.clone(),
                    reason: format!("{} sets the same setting `{}`", pair[0].0, pair[0].1),
                });
            }
        }
        for (variable, field, value) in found {
            let one = [(field.as_str(), Value(&value))];
            let parsed = Settings::deserialize(
                de::value::MapDeserializer::<_, de::value::Error>::new(one.into_iter()),
            )
            .map_err(|e| EnvError {
                variable,
                reason: e.to_string(),
            })?;
            copy_field(&field, parsed, &mut self);
        }
        Ok(self)
    }
}

/// One variable's text, read as whatever the field asks for.
#[derive(Clone, Copy)]
struct Value<'a>(&'a str);

impl<'de> IntoDeserializer<'de, de::value::Error> for Value<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Value<'_> {
    type Error = de::value::Error;

    /// Durations and TTLs take any form: a boolean, a number of milliseconds, or text.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let text = self.0.trim();
        match text {
            "true" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            _ => match text.parse::<u64>() {
                Ok(n) => visitor.visit_u64(n),
                Err(_) => visitor.visit_str(text),
            },
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0.trim() {
            "true" | "1" => visitor.visit_bool(true),
            "false" | "0" => visitor.visit_bool(false),
            other => Err(de::Error::custom(format!(
                "expected true or false, found {other:?}"
            ))),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let text = self.0.trim().replace('_', "");
        text.parse::<u64>()
            .map_err(|e| de::Error::custom(format!("expected a whole number, found {text:?}: {e}")))
            .and_then(|n| visitor.visit_u64(n))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let text = self.0.trim();
        text.parse::<f64>()
            .map_err(|e| de::Error::custom(format!("expected a number, found {text:?}: {e}")))
            .and_then(|n| visitor.visit_f64(n))
    }

    /// Text is trimmed like every other value: a stray newline from a secrets file is not
    /// part of a URL.
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_str(self.0.trim())
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_str(self.0.trim())
    }

    /// An empty variable is `None`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.0.trim().is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_f64(visitor)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u128 char bytes byte_buf unit unit_struct newtype_struct seq
        tuple tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::time::Duration;

    use super::*;
    use crate::Ttl;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn every_field_can_be_set_and_others_keep_their_value() {
        let base = Settings {
            namespace: "from-file".into(),
            max_tables: 7,
            ..Settings::default()
        };
        let s = base
            .with_vars(
                "APP_",
                vars(&[
                    ("APP_MAX_ENTRIES", "1_000"),
                    ("APP_DEFAULT_TTL", "5m"),
                    ("APP_BACKEND_TIMEOUT", "80ms"),
                    ("APP_MAX_LOAD_WAIT", "2000"),
                    ("APP_CACHE_NONE", "false"),
                    ("APP_FRESHNESS_SAMPLE", "0.01"),
                    ("APP_REDIS_URL", "redis://127.0.0.1:6379"),
                    ("OTHER_MAX_ENTRIES", "3"),
                ]),
            )
            .unwrap();
        assert_eq!(s.max_entries, 1000);
        assert_eq!(s.default_ttl, Ttl::secs(300));
        assert_eq!(s.backend_timeout, Duration::from_millis(80));
        assert_eq!(s.max_load_wait, Duration::from_secs(2));
        assert!(!s.cache_none);
        assert_eq!(s.freshness_sample, 0.01);
        assert_eq!(s.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        // Not in the environment: as they were.
        assert_eq!((s.namespace.as_str(), s.max_tables), ("from-file", 7));
        let bypass = Settings::default()
            .with_vars("APP_", vars(&[("APP_DEFAULT_TTL", "false")]))
            .unwrap();
        assert_eq!(bypass.default_ttl, Ttl::Bypass);
    }

    #[test]
    fn an_empty_prefix_and_a_setting_set_twice_are_errors() {
        assert!(Settings::from_env_vars("", &[]).is_err());
        let twice = Settings::from_env_vars(
            "APP_",
            &[("APP_NEAR_CACHE", "false"), ("APP_near_cache", "true")],
        )
        .unwrap_err();
        assert!(twice.reason.contains("near_cache"), "{twice}");
        let url =
            Settings::from_env_vars("APP_", &[("APP_REDIS_URL", " redis://h:6379\n")]).unwrap();
        assert_eq!(url.redis_url.as_deref(), Some("redis://h:6379"));
    }

    #[test]
    fn typos_and_bad_values_name_the_variable() {
        let typo = Settings::from_env_vars("APP_", &[("APP_MAX_ENTRYS", "5")]).unwrap_err();
        assert_eq!(typo.variable, "APP_MAX_ENTRYS");
        assert!(typo.reason.contains("max_entries"), "{typo}");
        let bad = Settings::from_env_vars("APP_", &[("APP_MAX_ENTRIES", "many")]).unwrap_err();
        assert_eq!(bad.variable, "APP_MAX_ENTRIES");
        assert!(bad.reason.contains("\"many\""), "{bad}");
        let ttl = Settings::from_env_vars("APP_", &[("APP_DEFAULT_TTL", "soon")]).unwrap_err();
        assert!(
            ttl.to_string()
                .starts_with("environment variable APP_DEFAULT_TTL: ")
        );
    }

    /// The field list `with_env` copies from is the struct's: a field added to `Settings`
    /// and not to `fields!` fails here.
    #[test]
    fn the_field_list_is_complete() {
        let settings = Settings {
            redis_url: Some("redis://x".into()),
            ..Settings::default()
        };
        let json = serde_json::to_value(&settings).unwrap();
        let mut names: Vec<&str> = json.as_object().unwrap().keys().map(|k| &**k).collect();
        let mut listed = FIELDS.to_vec();
        names.sort_unstable();
        listed.sort_unstable();
        assert_eq!(names, listed);
    }

    impl Settings {
        fn from_env_vars(prefix: &str, pairs: &[(&str, &str)]) -> Result<Settings, EnvError> {
            Settings::default().with_vars(prefix, vars(pairs))
        }
    }
}
