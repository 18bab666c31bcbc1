//! Invalidations a shared-versions backend failed to take (it was down when a write
//! completed). The cache retries them before its next backend operation and serves nothing
//! from the backend until they are delivered, so an outage never loses a write's
//! invalidation for this process, and other processes see it as soon as the backend is back.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

#[derive(Default)]
pub(crate) struct PendingBumps {
    /// Whether `tables` is non-empty: the hit path reads only this.
    any: AtomicBool,
    tables: Mutex<BTreeSet<Box<str>>>,
}

impl PendingBumps {
    pub(crate) fn add(&self, tables: &[&str]) {
        let mut set = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        set.extend(tables.iter().map(|t| Box::<str>::from(*t)));
        self.any.store(true, Ordering::Release);
    }

    /// The tables waiting for a bump, or `None` when there are none.
    #[inline]
    pub(crate) fn waiting(&self) -> Option<Vec<Box<str>>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let set = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        (!set.is_empty()).then(|| set.iter().cloned().collect())
    }

    /// Forgets `delivered`, once a bump of them succeeded. Tables added meanwhile stay.
    pub(crate) fn delivered(&self, delivered: &[Box<str>]) {
        let mut set = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        for table in delivered {
            set.remove(table);
        }
        if set.is_empty() {
            self.any.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PendingBumps;

    #[test]
    fn keeps_tables_added_during_a_retry() {
        let pending = PendingBumps::default();
        assert!(pending.waiting().is_none());
        pending.add(&["users", "posts"]);
        let retry = pending.waiting().unwrap();
        assert_eq!(retry.len(), 2);
        pending.add(&["tags"]);
        pending.delivered(&retry);
        assert_eq!(pending.waiting().unwrap(), vec![Box::<str>::from("tags")]);
        pending.delivered(&pending.waiting().unwrap());
        assert!(pending.waiting().is_none());
    }
}
