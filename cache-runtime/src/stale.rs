//! Serving an entry past its TTL: stale-while-revalidate, refresh-ahead and stale-on-error.
//!
//! An entry read with [`Windows`] is kept `keep()` past its TTL. Within its TTL minus
//! `ahead`, it is a hit as any other. After that, one caller refreshes it (runs the query)
//! while every other caller is served the entry: until the TTL (refresh-ahead), and up to
//! `swr` past it (stale-while-revalidate). When the query fails, the entry is served up to
//! `on_error` past its TTL (stale-on-error). An entry stale by version (a write to one of
//! its tables) is never served: it is a miss as always.
//!
//! The refresh runs in the call that found the entry aging, not in a task of its own: a
//! cached function's query borrows its caller's arguments. In memory, the aging entry is
//! found by `peek`; in a shared backend, kept `keep()` past its TTL (the envelope still
//! says when the TTL ends), by a lookup with windows, and an instance that finds the key's
//! lease held by another serves it instead of waiting for the fill.

use std::time::{Duration, Instant};

/// The longest stale window (`swr`, `stale_on_error`, `refresh_ahead`): 30 days.
pub const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long past its TTL an entry may be served, and how long before it a refresh starts.
/// Per function (`#[cached(swr = "30s", stale_on_error = "5m", refresh_ahead = "10s")]`)
/// or for a whole cache (`Settings`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Windows {
    swr: Duration,
    on_error: Duration,
    ahead: Duration,
}

impl Windows {
    /// Serve up to `swr` past the TTL while one caller refreshes; up to `on_error` past it
    /// when the query fails; start refreshing `ahead` before the TTL.
    pub const fn new(swr: Duration, on_error: Duration, ahead: Duration) -> Windows {
        Windows {
            swr,
            on_error,
            ahead,
        }
    }

    /// These windows with those given replaced (a function's own over the settings').
    pub fn with(
        self,
        swr: Option<Duration>,
        on_error: Option<Duration>,
        ahead: Option<Duration>,
    ) -> Windows {
        Windows {
            swr: swr.unwrap_or(self.swr),
            on_error: on_error.unwrap_or(self.on_error),
            ahead: ahead.unwrap_or(self.ahead),
        }
    }

    pub(crate) fn from_settings(settings: &crate::Settings) -> Windows {
        Windows::new(
            settings.stale_while_revalidate,
            settings.stale_on_error,
            settings.refresh_ahead,
        )
    }

    /// Whether entries are only ever served within their TTL.
    #[inline]
    pub(crate) fn is_none(&self) -> bool {
        self.swr.is_zero() && self.on_error.is_zero() && self.ahead.is_zero()
    }

    /// How long an entry is kept past its TTL.
    pub(crate) fn keep(&self) -> Duration {
        self.swr.max(self.on_error)
    }

    /// How long before its stored deadline (its TTL plus [`Windows::keep`]) an entry stops
    /// being a plain hit, in nanoseconds.
    #[inline]
    pub(crate) fn early_nanos(&self) -> u64 {
        u64::try_from(self.keep().saturating_add(self.ahead).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Where an entry kept until `deadline` stands now.
    pub(crate) fn age(&self, deadline: Option<Instant>, now: Instant) -> Age {
        let Some(deadline) = deadline else {
            return Age::Fresh;
        };
        let expires = deadline.checked_sub(self.keep()).unwrap_or(deadline);
        match now.checked_duration_since(expires) {
            None => Age::Fresh,
            Some(by) => Age::Expired(by),
        }
    }

    /// Where a remote entry whose TTL ends at `expires_at` (Unix milliseconds) stands:
    /// `None` for a plain hit (within its TTL, before `ahead` of its end).
    pub(crate) fn remote_age(&self, expires_at: Option<u64>) -> Option<Age> {
        let at = expires_at?;
        let now = crate::envelope::unix_ms(std::time::SystemTime::now());
        let ahead = u64::try_from(self.ahead.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_add(ahead) < at {
            None
        } else if now < at {
            Some(Age::Fresh)
        } else {
            Some(Age::Expired(Duration::from_millis(now - at)))
        }
    }

    /// Whether an entry of age `age` may be served while another caller refreshes it.
    pub(crate) fn serves_while_refreshing(&self, age: Age) -> bool {
        match age {
            Age::Fresh => true,
            Age::Expired(by) => by < self.swr,
        }
    }

    /// Whether an entry of age `age` may be served when the query failed.
    pub(crate) fn serves_on_error(&self, age: Age) -> bool {
        match age {
            Age::Fresh => true,
            Age::Expired(by) => by < self.on_error,
        }
    }
}

/// Where an entry kept past its TTL stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Age {
    /// Within its TTL (in the refresh-ahead window).
    Fresh,
    /// Past its TTL by this much.
    Expired(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_count_from_the_ttl_not_the_stored_deadline() {
        let w = Windows::new(
            Duration::from_secs(30),
            Duration::from_secs(300),
            Duration::ZERO,
        );
        let now = Instant::now();
        // Kept 300 s past the TTL: the TTL ended 100 s before the deadline's 300 s margin.
        let deadline = now + Duration::from_secs(200);
        assert_eq!(
            w.age(Some(deadline), now),
            Age::Expired(Duration::from_secs(100))
        );
        assert!(!w.serves_while_refreshing(Age::Expired(Duration::from_secs(100))));
        assert!(w.serves_on_error(Age::Expired(Duration::from_secs(100))));
        assert_eq!(w.age(Some(now + Duration::from_secs(301)), now), Age::Fresh);
        assert!(Windows::default().is_none());
    }
}
