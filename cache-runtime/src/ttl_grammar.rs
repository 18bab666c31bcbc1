//! The TTL grammar, one file for both crates: the runtime parses `Ttl` strings and
//! durations in settings with it, and `cache-derive` (through a symlink to this file, as
//! `serde_derive_internals` shares serde's) checks `#[cached(ttl = "...")]` literals with
//! it at compile time. It depends on `std` and `jiff` only.
//!
//! | written | meaning |
//! |---|---|
//! | `"60s"`, `"1h30m"`, `"250ms"`, `"2d"`, `"1 hour, 30 minutes"` | a duration: integers with units `d`, `h`, `m`, `s`, `ms`, `us` (`µs`), `ns`, or their names |
//! | `"60000"` | a number is milliseconds |
//! | `"true"` / `"false"` | no expiry / bypass |
//! | `"2026-09-01T00:00:00Z"` | an RFC 3339 instant |
//!
//! Durations are summed exactly in nanoseconds, so [`format_duration`] of any `Duration`
//! parses back to the same value.

#![allow(dead_code)]

use std::time::Duration;

/// The forms a TTL string may take, quoted in every parse error.
pub(crate) const ACCEPTED_FORMS: &str = "a duration such as \"60s\", \"1h30m\", \"250ms\" or \"2d\" \
     (units: ms, s, m, h, d), a number of milliseconds, `true` (no expiry), `false` (bypass) \
     or an RFC 3339 instant such as \"2026-09-01T00:00:00Z\"";

/// A TTL read from text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    For(Duration),
    Forever,
    Bypass,
    /// Seconds and nanoseconds since the Unix epoch (negative seconds: before it).
    Until {
        secs: i64,
        nanos: i32,
    },
}

/// Why text is not a usable TTL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Not a TTL at all (the reason, without the accepted forms).
    Malformed(String),
    /// A well-formed TTL that cannot be used.
    OutOfRange(&'static str),
}

impl Invalid {
    /// The reason alone.
    pub(crate) fn reason(&self) -> &str {
        match self {
            Invalid::Malformed(reason) => reason,
            Invalid::OutOfRange(reason) => reason,
        }
    }
}

/// Parses any TTL form. A zero duration is out of range (it would cache nothing).
pub(crate) fn parse(s: &str) -> Result<Parsed, Invalid> {
    let t = s.trim();
    match t {
        "" => return Err(Invalid::Malformed("it is empty".into())),
        "true" => return Ok(Parsed::Forever),
        "false" => return Ok(Parsed::Bypass),
        _ => {}
    }
    // An RFC 3339 instant always has a date part `YYYY-MM-DD`.
    let bytes = t.as_bytes();
    if bytes.len() >= 10 && bytes[4] == b'-' && bytes[7] == b'-' {
        let at: jiff::Timestamp = t
            .parse()
            .map_err(|e: jiff::Error| Invalid::Malformed(e.to_string()))?;
        return Ok(Parsed::Until {
            secs: at.as_second(),
            nanos: at.subsec_nanosecond(),
        });
    }
    for_duration(parse_duration(t)?)
}

/// A duration as a TTL (a string, or a number of milliseconds): zero caches nothing, which
/// is an error.
pub(crate) fn for_duration(d: Duration) -> Result<Parsed, Invalid> {
    if d.is_zero() {
        return Err(Invalid::OutOfRange(
            "a zero TTL caches nothing (write `false` to bypass the cache)",
        ));
    }
    Ok(Parsed::For(d))
}

/// Parses a duration: `"250ms"`, `"1h30m"`, `"1m 30s"`, or a number of milliseconds. Zero
/// is a duration like any other here.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, Invalid> {
    let t = s.trim();
    if t.is_empty() {
        return Err(Invalid::Malformed("it is empty".into()));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = t.parse().map_err(|_| {
            Invalid::OutOfRange("the number of milliseconds does not fit in 64 bits")
        })?;
        return Ok(Duration::from_millis(ms));
    }
    if t.starts_with('-') {
        return Err(Invalid::OutOfRange("a duration cannot be negative"));
    }
    const TOO_LONG: Invalid = Invalid::OutOfRange("the duration is too long");
    let mut nanos: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(Invalid::Malformed(format!("expected a number at {rest:?}")));
        }
        let value: u128 = rest[..digits].parse().map_err(|_| TOO_LONG)?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(rest.len(), |(i, _)| i);
        let per_unit: u128 = match &rest[..unit_len] {
            "w" | "week" | "weeks" => 604_800_000_000_000,
            "d" | "day" | "days" => 86_400_000_000_000,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000_000_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000_000_000,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
            "ms" | "msec" | "millisecond" | "milliseconds" => 1_000_000,
            "us" | "µs" | "usec" | "microsecond" | "microseconds" => 1_000,
            "ns" | "nsec" | "nanosecond" | "nanoseconds" => 1,
            "" => {
                return Err(Invalid::Malformed(format!(
                    "{value} has no unit (a bare number is milliseconds only on its own)"
                )));
            }
            "mo" | "month" | "months" | "y" | "yr" | "yrs" | "year" | "years" => {
                return Err(Invalid::Malformed(
                    "months and years are not fixed durations".into(),
                ));
            }
            unit => {
                return Err(Invalid::Malformed(format!(
                    "unknown unit {unit:?} (units: ms, s, m, h, d, w)"
                )));
            }
        };
        nanos = value
            .checked_mul(per_unit)
            .and_then(|n| nanos.checked_add(n))
            .ok_or(TOO_LONG)?;
        // Parts may be separated by spaces or commas: "1h 30m", "1 hour, 30 minutes".
        rest = rest[unit_len..].trim_start_matches([' ', ',']);
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| TOO_LONG)?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// A duration as the shortest text [`parse_duration`] reads back exactly: `"1h30m"`,
/// `"250ms"`, `"2d3ns"`.
pub(crate) fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    let mut nanos = d.as_nanos();
    let mut out = String::new();
    for (unit, per_unit) in [
        ("d", 86_400_000_000_000u128),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        let count = nanos / per_unit;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(unit);
            nanos %= per_unit;
        }
    }
    out
}
