//! Invalidations a shared-versions backend failed to take (it was down when a write
//! completed). The cache retries them before its next backend operation and serves nothing
//! from the backend until they are delivered, so an outage never loses a write's
//! invalidation for this process, and other processes see it as soon as the backend is back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

#[derive(Default)]
pub(crate) struct PendingBumps {
    /// Whether `tables` is non-empty: the hit path reads only this.
    any: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each waiting table with the generation of the latest write that added it.
    tables: BTreeMap<Box<str>, u64>,
    next: u64,
}

/// The tables a retry sends, each with the generation it saw.
pub(crate) type Retry = Vec<(Box<str>, u64)>;

impl PendingBumps {
    pub(crate) fn add(&self, tables: &[&str]) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.next += 1;
        let generation = state.next;
        for table in tables {
            state.tables.insert(Box::from(*table), generation);
        }
        self.any.store(true, Ordering::Release);
    }

    /// The tables waiting for a bump, or `None` when there are none.
    #[inline]
    pub(crate) fn waiting(&self) -> Option<Retry> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (!state.tables.is_empty()).then(|| {
            state
                .tables
                .iter()
                .map(|(table, generation)| (table.clone(), *generation))
                .collect()
        })
    }

    /// Forgets what `delivered` carried, once a bump of it succeeded. A table a write added
    /// again meanwhile stays: that write's bump may have been sent before it, or not at all.
    pub(crate) fn delivered(&self, delivered: &Retry) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (table, generation) in delivered {
            if state.tables.get(table) == Some(generation) {
                state.tables.remove(table);
            }
        }
        if state.tables.is_empty() {
            self.any.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PendingBumps;

    fn names(pending: &PendingBumps) -> Vec<String> {
        pending
            .waiting()
            .unwrap_or_default()
            .into_iter()
            .map(|(t, _)| t.into())
            .collect()
    }

    #[test]
    fn keeps_tables_added_during_a_retry() {
        let pending = PendingBumps::default();
        assert!(pending.waiting().is_none());
        pending.add(&["users", "posts"]);
        let retry = pending.waiting().unwrap();
        assert_eq!(retry.len(), 2);
        pending.add(&["tags"]);
        pending.delivered(&retry);
        assert_eq!(names(&pending), ["tags"]);
        pending.delivered(&pending.waiting().unwrap());
        assert!(pending.waiting().is_none());
    }

    /// A second write to a table whose first bump is in flight must not be erased when
    /// the first bump lands: the second write's rows may be newer than what that bump saw.
    #[test]
    fn keeps_a_table_written_again_during_a_retry() {
        let pending = PendingBumps::default();
        pending.add(&["users"]);
        let first = pending.waiting().unwrap();
        pending.add(&["users"]);
        pending.delivered(&first);
        assert_eq!(names(&pending), ["users"]);
        pending.delivered(&pending.waiting().unwrap());
        assert!(pending.waiting().is_none());
    }
}
