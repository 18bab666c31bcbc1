//! One fault-injecting backend for every test that needs a backend to misbehave: it wraps
//! a working one and, per switch, fails every operation (an outage), fails deletes, or
//! returns garbage from reads. Clones share the switches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use cache_runtime::backend::{
    Backend, BackendError, Checked, SharedBackend, StoreOutcome, async_trait,
};

/// What reads return while garbage is switched on.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)]
pub enum Garbage {
    /// Bytes of the stored length that decode to nothing.
    Random,
    /// The first half of what was stored.
    Truncated,
    /// Nothing at all.
    Empty,
}

#[derive(Clone)]
pub struct Faulty<B> {
    inner: B,
    down: Arc<AtomicBool>,
    deletes_fail: Arc<AtomicBool>,
    /// 0: none, else `Garbage` + 1.
    garbage: Arc<AtomicU8>,
}

#[allow(dead_code)]
impl<B> Faulty<B> {
    pub fn new(inner: B) -> Faulty<B> {
        Faulty {
            inner,
            down: Arc::default(),
            deletes_fail: Arc::default(),
            garbage: Arc::default(),
        }
    }

    /// Every operation fails while down, as in an outage.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Deletes fail (and delete nothing) while set.
    pub fn set_deletes_fail(&self, fail: bool) {
        self.deletes_fail.store(fail, Ordering::SeqCst);
    }

    /// Reads return garbage of this kind while set.
    pub fn set_garbage(&self, garbage: Option<Garbage>) {
        let code = match garbage {
            None => 0,
            Some(Garbage::Random) => 1,
            Some(Garbage::Truncated) => 2,
            Some(Garbage::Empty) => 3,
        };
        self.garbage.store(code, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), BackendError> {
        if self.down.load(Ordering::SeqCst) {
            Err(BackendError::new("backend is down (test switch)"))
        } else {
            Ok(())
        }
    }

    fn spoil(&self, bytes: Vec<u8>) -> Vec<u8> {
        match self.garbage.load(Ordering::SeqCst) {
            1 => (0..bytes.len()).map(|i| (i * 7919 % 251) as u8).collect(),
            2 => bytes[..bytes.len() / 2].to_vec(),
            3 => Vec::new(),
            _ => bytes,
        }
    }
}

#[async_trait]
impl<B: Backend> Backend for Faulty<B> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        self.check()?;
        Ok(self.inner.get(key).await?.map(|b| self.spoil(b)))
    }

    async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        self.check()?;
        self.inner.set(key, value, ttl).await
    }

    async fn delete(&self, keys: &[String]) -> Result<(), BackendError> {
        self.check()?;
        if self.deletes_fail.load(Ordering::SeqCst) {
            return Err(BackendError::new("delete refused (test switch)"));
        }
        self.inner.delete(keys).await
    }

    async fn clear_prefix(&self, prefix: &str) -> Result<(), BackendError> {
        self.check()?;
        self.inner.clear_prefix(prefix).await
    }
}

#[async_trait]
impl<B: SharedBackend> SharedBackend for Faulty<B> {
    async fn versions(&self, namespace: &str, tables: &[&str]) -> Result<Vec<u64>, BackendError> {
        self.check()?;
        self.inner.versions(namespace, tables).await
    }

    async fn get_checked(
        &self,
        namespace: &str,
        key: &str,
        tables: &[&str],
    ) -> Result<Checked, BackendError> {
        self.check()?;
        let (bytes, versions) = self.inner.get_checked(namespace, key, tables).await?;
        Ok((bytes.map(|b| self.spoil(b)), versions))
    }

    async fn set_tracked(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        tags: &[(&str, u64)],
        max_keys: usize,
    ) -> Result<StoreOutcome, BackendError> {
        self.check()?;
        self.inner
            .set_tracked(namespace, key, value, ttl, tags, max_keys)
            .await
    }

    async fn bump(&self, namespace: &str, tables: &[&str]) -> Result<(), BackendError> {
        self.check()?;
        self.inner.bump(namespace, tables).await
    }

    async fn tracked(&self, namespace: &str, table: &str) -> Result<usize, BackendError> {
        self.check()?;
        self.inner.tracked(namespace, table).await
    }
}
