//! The plain backend mode: encoded entries in a [`Backend`], table versions and key
//! tracking in process. Versions start at a random value per cache, so entries another
//! process (or an earlier run) left in the backend are never served here.

use std::time::Duration;

use super::{Captured, Core, Entry, Fault, Remote, Store, decode_keeping};
use crate::backend::Backend;
use crate::key::Key;
use crate::stats::Counter;
use crate::tables::Tables;
use crate::{CacheValue, Settings, Ttl};

pub(crate) struct PlainStore {
    backend: Box<dyn Backend>,
    /// Tables track reads by key: the backend names entries by it.
    tables: Tables<Key>,
}

impl PlainStore {
    pub(crate) fn new(settings: &Settings, backend: Box<dyn Backend>) -> PlainStore {
        PlainStore {
            backend,
            tables: Tables::new(settings.max_keys_per_table, settings.max_tables),
        }
    }

    /// The entry and its expiry (Unix milliseconds), if current and not past it by `keep`
    /// or more; anything else is deleted.
    pub(crate) async fn lookup_keeping<V: CacheValue>(
        &self,
        core: &Core,
        key: &Key,
        keep: Duration,
    ) -> Option<(V, Option<u64>)> {
        let name = core.remote_key(key);
        let bytes = match self.backend.get(&name).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(e) => {
                core.backend_error("get", &e);
                return None;
            }
        };
        let fault = match decode_keeping::<V>(core, key, &bytes, keep) {
            Ok(env) => {
                // A table this cache does not know: the entry is not one it stored since
                // (its versions are this process's own).
                let stale = env.tags.iter().any(|(table, version)| {
                    self.tables
                        .existing(table)
                        .is_none_or(|t| t.version() != *version)
                });
                if !stale {
                    return Some((env.value, env.expires_at));
                }
                Fault::Counted(Counter::Stale)
            }
            Err(fault) => fault,
        };
        fault.discard(core, &*self.backend, name).await;
        None
    }

    async fn delete(&self, core: &Core, keys: &[Key]) {
        let names: Vec<String> = keys.iter().map(|k| core.remote_key(k)).collect();
        core.delete_remote(&*self.backend, &names).await;
    }
}

impl Store for PlainStore {
    fn hit<V: CacheValue>(&self, _: &Core, _: &Key, _: u64) -> Option<V> {
        None
    }

    async fn lookup<V: CacheValue>(&self, core: &Core, key: &Key, _: &[&str]) -> Option<V> {
        let (value, _) = self.lookup_keeping::<V>(core, key, Duration::ZERO).await?;
        core.counters.bump(Counter::Hits);
        Some(value)
    }

    async fn capture(&self, _: &Core, tables: &[&str]) -> Captured {
        Captured::known(self.tables.versions(tables))
    }

    async fn store<V: CacheValue>(
        &self,
        core: &Core,
        key: Key,
        names: &[&str],
        captured: &Captured,
        ttl: Ttl,
        value: &V,
    ) {
        // Otherwise the entry would be stale on arrival.
        let Some(tables) = captured.still_current(&self.tables, names) else {
            return;
        };
        let Some(entry) = Entry::encode(&key, value, names, &captured.versions, ttl, captured.keep)
        else {
            return;
        };
        if !core.fits_remote(&key, entry.bytes.len()) {
            return;
        }
        if let Err(e) = self
            .backend
            .set(&core.remote_key(&key), entry.bytes, entry.storage_ttl)
            .await
        {
            core.backend_error("set", &e);
            return;
        }
        // Keys no longer tracked, and those of forgotten tables, are deleted (their entries
        // are stale anyway: deleting only frees room).
        let mut dropped: Vec<Key> = self
            .tables
            .take_forgotten()
            .into_iter()
            .flat_map(|t| t.into_oldest_first())
            .collect();
        for table in &tables {
            if let Some(oldest) = table.track(&key) {
                core.counters.bump(Counter::TableEvictions);
                dropped.push(oldest);
            }
        }
        self.delete(core, &dropped).await;
    }

    fn invalidate_local(&self, core: &Core, names: &[&str], named: bool) -> Remote {
        let mut remote = Remote::default();
        for name in names {
            let tracked = self.tables.invalidate(name);
            // Counted per table, not per row tag.
            if (named || tracked.is_some()) && crate::rows::is_table(name) {
                core.counters.bump(Counter::Invalidations);
            }
            let Some(tracked) = tracked else { continue };
            remote.delete.extend(tracked.into_oldest_first());
        }
        remote
    }

    async fn invalidate_remote(&self, core: &Core, _: &[&str], remote: Remote) {
        self.delete(core, &remote.delete).await;
    }

    async fn clear(&self, core: &Core) {
        self.tables.invalidate_all();
        if let Err(e) = self.backend.clear_prefix(&core.prefix).await {
            core.backend_error("clear", &e);
        }
    }

    fn entry_count(&self) -> Option<usize> {
        None
    }

    fn memory_bytes(&self) -> Option<usize> {
        None
    }

    fn tracked_keys(&self, table: &str) -> usize {
        self.tables.tracked(table)
    }

    fn table_count(&self) -> usize {
        self.tables.len()
    }

    fn tables_forgotten(&self) -> u64 {
        self.tables.forgotten_count()
    }

    fn mode(&self) -> &'static str {
        "backend"
    }
}
