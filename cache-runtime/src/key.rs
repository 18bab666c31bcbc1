//! Cache keys: blake3 over the namespace, the function's identity and code, and the
//! rmp-serde encoding of its keyed arguments.
//!
//! Layout (every variable-length part is length-prefixed, so distinct inputs never share
//! key material):
//!
//! ```text
//! fingerprint = blake3::derive_key("cache-runtime v1 function fingerprint",
//!                   len(identity) ‖ identity ‖ len(code) ‖ code)
//! key         = blake3::keyed_hash(fingerprint, len(namespace) ‖ namespace ‖ rmp(args))
//! ```
//!
//! The fingerprint is computed once per function; a hit hashes only the namespace and the
//! arguments (one blake3 block for typical arguments).

use std::cell::RefCell;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::OnceLock;

use serde::Serialize;

const FINGERPRINT_CONTEXT: &str = "cache-runtime v1 function fingerprint";

/// The identity of a cached function: a stable name plus, for macro-generated code, a hash
/// of the function's tokens so that editing a query gives it new keys.
///
/// Create one per function, ideally in a `static` so its fingerprint is computed once:
///
/// ```
/// use cache_runtime::{Cache, KeyScope, Settings};
///
/// static FIND_USER: KeyScope = KeyScope::new("users::find_user");
///
/// let cache = Cache::new(Settings::default())?;
/// let a = cache.key(&FIND_USER, &42_i64)?;
/// assert_eq!(a, cache.key(&FIND_USER, &42_i64)?);
/// assert_ne!(a, cache.key(&FIND_USER, &43_i64)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeyScope {
    identity: &'static str,
    code: &'static str,
    fingerprint: OnceLock<[u8; 32]>,
}

impl KeyScope {
    /// A scope named `identity` (e.g. `"users::find_user"`); it must be unique per query.
    pub const fn new(identity: &'static str) -> KeyScope {
        KeyScope::with_code(identity, "")
    }

    /// A scope whose keys also depend on `code` (the macros pass a hash of the function's
    /// signature and body), so a changed query never reads entries of the old one.
    pub const fn with_code(identity: &'static str, code: &'static str) -> KeyScope {
        KeyScope {
            identity,
            code,
            fingerprint: OnceLock::new(),
        }
    }

    /// The name this scope was created with.
    pub fn identity(&self) -> &'static str {
        self.identity
    }

    fn fingerprint(&self) -> &[u8; 32] {
        self.fingerprint.get_or_init(|| {
            let mut h = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
            for part in [self.identity, self.code] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
            *h.finalize().as_bytes()
        })
    }
}

impl fmt::Debug for KeyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyScope")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// A cache key: 32 bytes of blake3 output. Equal inputs give equal keys in every process.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl Key {
    /// Builds the key of `args` for the function `scope` in `namespace`.
    ///
    /// Usually called through [`Cache::key`](crate::Cache::key), which supplies the
    /// cache's namespace.
    ///
    /// # Errors
    ///
    /// A [`KeyError`] when `args` fails to serialize (its `Serialize` impl returned an error).
    pub fn build<A: Serialize + ?Sized>(
        namespace: &str,
        scope: &KeyScope,
        args: &A,
    ) -> Result<Key, KeyError> {
        thread_local! {
            static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        let fingerprint = scope.fingerprint();
        let encode = |buf: &mut Vec<u8>| -> Result<Key, KeyError> {
            buf.clear();
            buf.extend_from_slice(&(namespace.len() as u64).to_le_bytes());
            buf.extend_from_slice(namespace.as_bytes());
            rmp_serde::encode::write(buf, args).map_err(|e| KeyError(e.to_string()))?;
            Ok(Key(*blake3::keyed_hash(fingerprint, buf).as_bytes()))
        };
        // The buffer is reused to keep allocation off the hit path; a nested call (a
        // `Serialize` impl that builds a key) gets a fresh one.
        BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => encode(&mut buf),
            Err(_) => encode(&mut Vec::new()),
        })
    }

    /// Wraps raw key bytes, e.g. ones read back from [`Key::as_bytes`].
    pub const fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    /// The 32 key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn shard(&self, mask: usize) -> usize {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[8..16]);
        (u64::from_le_bytes(word) as usize) & mask
    }
}

// Key bytes are already uniformly distributed: hash tables keyed by `Key` use 8 of them
// directly instead of hashing 32 bytes again.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

/// Hasher for maps keyed by [`Key`]: passes the key's first 8 bytes through.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if something other than `Key` is hashed: fold it in (FNV-1a).
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(crate) type BuildKeyHasher = BuildHasherDefault<KeyHasher>;

impl fmt::Display for Key {
    /// Lower-case hex, as remote backends store it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

/// The keyed arguments could not be serialized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache key arguments failed to serialize: {}", self.0)
    }
}

impl std::error::Error for KeyError {}

#[cfg(test)]
mod tests {
    use super::*;

    static A: KeyScope = KeyScope::new("a");
    static AB: KeyScope = KeyScope::new("ab");

    #[test]
    fn same_inputs_same_key_and_known_value() {
        let k1 = Key::build("ns", &A, &(1_i64, "x")).unwrap();
        let k2 = Key::build("ns", &A, &(1_i64, "x")).unwrap();
        assert_eq!(k1, k2);
        // Pinned so that a change to the key layout (which would orphan every stored entry
        // of every deployment) is a deliberate, visible decision.
        assert_eq!(
            k1.to_string(),
            "32df69d810e2b354a4485b106556e16c9e9f1db12e16779cad9b8dc712ed3dc1"
        );
    }

    #[test]
    fn boundaries_between_parts_cannot_be_shifted() {
        // namespace/identity boundary
        let x = Key::build("nsa", &KeyScope::new("b"), &()).unwrap();
        let y = Key::build("ns", &AB, &()).unwrap();
        assert_ne!(x, y);
        // namespace/arguments boundary
        let x = Key::build("ns", &A, &"x").unwrap();
        let y = Key::build("nsx", &A, &"").unwrap();
        assert_ne!(x, y);
        // argument boundaries
        let x = Key::build("ns", &A, &("a", "bc")).unwrap();
        let y = Key::build("ns", &A, &("ab", "c")).unwrap();
        assert_ne!(x, y);
        // identity/code boundary
        let x = Key::build("ns", &KeyScope::with_code("ab", "c"), &()).unwrap();
        let y = Key::build("ns", &KeyScope::with_code("a", "bc"), &()).unwrap();
        assert_ne!(x, y);
    }

    #[test]
    fn code_changes_the_key() {
        let old = Key::build("ns", &KeyScope::with_code("find", "v1"), &1).unwrap();
        let new = Key::build("ns", &KeyScope::with_code("find", "v2"), &1).unwrap();
        assert_ne!(old, new);
    }

    #[test]
    fn serialize_errors_are_reported() {
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("nope"))
            }
        }
        let err = Key::build("ns", &A, &Fails).unwrap_err();
        assert!(err.to_string().contains("nope"));
    }
}
