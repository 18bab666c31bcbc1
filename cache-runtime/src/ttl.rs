//! How long a cached result lives: a duration, forever, until an instant, or not at all.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// How long a cached result may be served.
///
/// Every form the `#[cached(ttl = ...)]` attribute accepts converts into a `Ttl`:
///
/// | written | value |
/// |---|---|
/// | `"60s"`, `"1h30m"`, `"250ms"`, `"2d"` | [`Ttl::For`] that duration |
/// | `60000` (a number) | [`Ttl::For`] that many milliseconds |
/// | `true` | [`Ttl::Forever`]: kept until evicted or invalidated |
/// | `"2026-09-01T00:00:00Z"` (RFC 3339) | [`Ttl::Until`] that instant |
/// | `false` | [`Ttl::Bypass`]: always run the query, read and store nothing |
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::Ttl;
///
/// assert_eq!("1h30m".parse::<Ttl>().unwrap(), Ttl::For(Duration::from_secs(5400)));
/// assert_eq!(Ttl::from(250u64), Ttl::For(Duration::from_millis(250)));
/// assert_eq!(Ttl::from(true), Ttl::Forever);
/// assert!("60x".parse::<Ttl>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ttl {
    /// Expire this long after the result was stored. A zero duration stores nothing.
    For(Duration),
    /// Never expire; the entry lives until it is evicted or its tables are invalidated.
    Forever,
    /// Expire at this instant. An instant in the past stores nothing.
    Until(SystemTime),
    /// Do not use the cache: always run the query, read and store nothing.
    Bypass,
}

pub(crate) use crate::ttl_grammar::ACCEPTED_FORMS;
use crate::ttl_grammar::{self, Parsed};

/// A TTL that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TtlError {
    input: String,
    reason: String,
}

impl fmt::Display for TtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid TTL {:?}: {}; expected {}",
            self.input, self.reason, ACCEPTED_FORMS
        )
    }
}

impl std::error::Error for TtlError {}

impl Ttl {
    /// `Ttl::For` the given number of seconds.
    pub const fn secs(secs: u64) -> Ttl {
        Ttl::For(Duration::from_secs(secs))
    }

    /// When an entry stored at `now` stops being served: `Ok(None)` means never,
    /// `Err(())` means do not store at all (bypass, zero duration or an instant in the past).
    /// This TTL, `by` longer (an entry kept past its TTL, see `crate::stale`). One that
    /// stores nothing (zero, a past instant) still stores nothing.
    pub(crate) fn extended(self, by: Duration) -> Ttl {
        match self {
            Ttl::For(d) if !d.is_zero() => Ttl::For(d.saturating_add(by)),
            Ttl::Until(at) if at > SystemTime::now() => {
                Ttl::Until(at.checked_add(by).unwrap_or(at))
            }
            other => other,
        }
    }

    pub(crate) fn deadline(self, now: Instant) -> Result<Option<Instant>, ()> {
        match self {
            Ttl::Bypass => Err(()),
            Ttl::Forever => Ok(None),
            Ttl::For(d) if d.is_zero() => Err(()),
            // An absurdly long duration that overflows `Instant` is as good as forever.
            Ttl::For(d) => Ok(now.checked_add(d)),
            Ttl::Until(at) => match at.duration_since(SystemTime::now()) {
                Ok(left) if !left.is_zero() => Ok(now.checked_add(left)),
                _ => Err(()),
            },
        }
    }

    /// The time-to-live a remote backend should store an entry with (`None`: no expiry).
    pub(crate) fn storage_ttl(deadline: Option<Instant>, now: Instant) -> Option<Duration> {
        deadline.map(|at| at.saturating_duration_since(now))
    }
}

impl From<u64> for Ttl {
    /// A number is milliseconds.
    fn from(ms: u64) -> Ttl {
        Ttl::For(Duration::from_millis(ms))
    }
}

impl From<bool> for Ttl {
    /// `true` caches without expiry, `false` bypasses the cache.
    fn from(forever: bool) -> Ttl {
        if forever { Ttl::Forever } else { Ttl::Bypass }
    }
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Ttl {
        Ttl::For(d)
    }
}

impl From<SystemTime> for Ttl {
    fn from(at: SystemTime) -> Ttl {
        Ttl::Until(at)
    }
}

impl FromStr for Ttl {
    type Err = TtlError;

    fn from_str(s: &str) -> Result<Ttl, TtlError> {
        let parsed = ttl_grammar::parse(s).map_err(|e| TtlError {
            input: s.to_owned(),
            reason: e.reason().to_owned(),
        })?;
        Ok(Ttl::from_parsed(parsed))
    }
}

impl Ttl {
    fn from_parsed(parsed: Parsed) -> Ttl {
        match parsed {
            Parsed::For(d) => Ttl::For(d),
            Parsed::Forever => Ttl::Forever,
            Parsed::Bypass => Ttl::Bypass,
            Parsed::Until { secs, nanos } => Ttl::Until(instant(secs, nanos)),
        }
    }
}

/// `secs` and `nanos` after (or, negative, before) the Unix epoch, clamped to what the
/// platform's `SystemTime` holds.
fn instant(secs: i64, nanos: i32) -> SystemTime {
    let span = Duration::new(secs.unsigned_abs(), nanos.unsigned_abs());
    if secs >= 0 && nanos >= 0 {
        SystemTime::UNIX_EPOCH
            .checked_add(span)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(span)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

impl fmt::Display for Ttl {
    /// The text [`Ttl::from_str`] reads back to this value: `"1h30m"`, `"true"`,
    /// `"2026-09-01T00:00:00Z"`. An instant outside years -9999 to 9999 has none; it is
    /// written as seconds from the Unix epoch (and does not serialize).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ttl::Forever => f.write_str("true"),
            Ttl::Bypass => f.write_str("false"),
            Ttl::For(d) => f.write_str(&ttl_grammar::format_duration(d)),
            Ttl::Until(at) => match jiff::Timestamp::try_from(at) {
                Ok(ts) => write!(f, "{ts}"),
                Err(_) => match at.duration_since(SystemTime::UNIX_EPOCH) {
                    Ok(d) => write!(f, "until {}s after the Unix epoch", d.as_secs()),
                    Err(e) => write!(f, "until {}s before the Unix epoch", e.duration().as_secs()),
                },
            },
        }
    }
}

impl Serialize for Ttl {
    /// `true`, `false`, or the text of [`Display`](fmt::Display). A zero duration and an
    /// instant outside years -9999 to 9999 are errors: no TTL text reads back to them.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Ttl::Forever => serializer.serialize_bool(true),
            Ttl::Bypass => serializer.serialize_bool(false),
            Ttl::For(d) if d.is_zero() => Err(serde::ser::Error::custom(
                "a zero TTL caches nothing and has no text form: write `false` to bypass",
            )),
            Ttl::Until(at) if jiff::Timestamp::try_from(at).is_err() => {
                Err(serde::ser::Error::custom(format!(
                    "{self} cannot be written as an RFC 3339 instant (years -9999 to 9999)"
                )))
            }
            _ => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Ttl, D::Error> {
        struct TtlVisitor;

        impl Visitor<'_> for TtlVisitor {
            type Value = Ttl;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(ACCEPTED_FORMS)
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Ttl, E> {
                Ok(Ttl::from(v))
            }

            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Ttl, E> {
                ttl_grammar::for_duration(Duration::from_millis(ms))
                    .map(Ttl::from_parsed)
                    .map_err(|e| E::custom(e.reason()))
            }

            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Ttl, E> {
                match u64::try_from(ms) {
                    Ok(ms) => self.visit_u64(ms),
                    Err(_) => Err(E::custom("a TTL cannot be negative")),
                }
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Ttl, E> {
                s.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(TtlVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        let cases = [
            ("60s", Ttl::secs(60)),
            ("1h30m", Ttl::secs(5400)),
            ("250ms", Ttl::For(Duration::from_millis(250))),
            ("2d", Ttl::secs(2 * 86_400)),
            ("60000", Ttl::secs(60)),
            ("true", Ttl::Forever),
            ("false", Ttl::Bypass),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Ttl>(), Ok(want), "{text}");
        }
        let at: Ttl = "2026-09-01T02:00:00+02:00".parse().unwrap();
        let want = SystemTime::UNIX_EPOCH + Duration::from_secs(1_788_220_800);
        assert_eq!(at, Ttl::Until(want));
    }

    #[test]
    fn rejects_bad_input_naming_the_accepted_forms() {
        for bad in [
            "60x",
            "",
            "0s",
            "0",
            "-5s",
            "1 month",
            "2026-13-01T00:00:00Z",
            "soon",
        ] {
            let err = bad.parse::<Ttl>().unwrap_err().to_string();
            assert!(err.contains("expected a duration such as"), "{bad}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for ttl in [
            Ttl::secs(5400),
            Ttl::Forever,
            Ttl::Bypass,
            "250ms".parse().unwrap(),
        ] {
            assert_eq!(ttl.to_string().parse::<Ttl>(), Ok(ttl));
        }
    }

    #[test]
    fn deadlines() {
        let now = Instant::now();
        assert_eq!(Ttl::Bypass.deadline(now), Err(()));
        assert_eq!(Ttl::Forever.deadline(now), Ok(None));
        assert_eq!(Ttl::For(Duration::ZERO).deadline(now), Err(()));
        assert_eq!(Ttl::For(Duration::MAX).deadline(now), Ok(None));
        let past = SystemTime::now() - Duration::from_secs(1);
        assert_eq!(Ttl::Until(past).deadline(now), Err(()));
        let soon = SystemTime::now() + Duration::from_secs(60);
        assert!(Ttl::Until(soon).deadline(now).unwrap().is_some());
    }
}
