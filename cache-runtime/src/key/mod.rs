//! Cache keys: exact in-process identities with a stable blake3 digest for everything that
//! leaves the process.
//!
//! A key is defined by its *material*: the function's fingerprint, the namespace and the
//! encoding of the keyed arguments (`key::encoder`: injective, canonical). Its stable name,
//! the one remote backends store and every process agrees on, is
//!
//! ```text
//! fingerprint = blake3::derive_key("cache-runtime v2 function fingerprint",
//!                   len(identity) ‖ identity ‖ len(code) ‖ code ‖ len(instance) ‖ instance)
//! digest      = blake3::keyed_hash(fingerprint, len(namespace) ‖ namespace ‖ args)
//! ```
//!
//! (every variable-length part is length-prefixed, and encoded arguments are
//! self-delimiting, so distinct inputs never share key material). `instance` names the
//! generic arguments the function was instantiated with (empty for non-generic code), so
//! `Repo<A>::count` and `Repo<B>::count` never share keys.
//!
//! Inside the process a hit does not need that digest, and blake3 costs 65-80 ns on the
//! hardware this was measured on, more than the rest of a hit together. So a key holds its
//! material directly when it is short: interned ids of the fingerprint and the namespace
//! plus the encoded arguments, compared byte for byte (exact: two keys are equal exactly
//! when their material is) and hashed with a seeded `foldhash`. Only keys whose arguments
//! do not fit inline hold the digest instead. [`Key`]'s `Display` is always the digest.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{OnceLock, PoisonError, RwLock};

use serde::Serialize;

pub(crate) mod encoder;

const FINGERPRINT_CONTEXT: &str = "cache-runtime v2 function fingerprint";

/// A key's bytes: its material's length, then the material: 2 bytes of scope id, 2 of
/// namespace id, the rest encoded arguments (a whole `Key` is 56 bytes, compared as words).
const BYTES: usize = 48;
/// The most material a key holds inline.
const INLINE: usize = BYTES - 1;
const IDS: usize = 4;
/// The length byte of a key that holds a digest rather than material.
const DIGEST: u8 = u8::MAX;

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
    /// Macro-generated without `name = ...`: the identity is the path of the code instance
    /// (see [`KeyScope::instance`]), which names the function, its `Self` type and every
    /// generic argument.
    identity_from_instance: bool,
    /// The fingerprint's interned id, computed on first use.
    id: OnceLock<u32>,
    /// The instance [`KeyScope::instance`] resolved last: nearly always the only one.
    last: AtomicPtr<Instance>,
}

/// One code instance of a scope: the path its generated code reported, and its id.
struct Instance {
    path: &'static str,
    id: u32,
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
            identity_from_instance: false,
            id: OnceLock::new(),
            last: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The scope of a macro-generated function: `name` is the user's `name = "..."`, or
    /// `None` to take the identity from the instance path.
    #[doc(hidden)]
    pub const fn generated(name: Option<&'static str>, code: &'static str) -> KeyScope {
        let mut scope = match name {
            Some(name) => KeyScope::with_code(name, code),
            None => KeyScope::with_code("", code),
        };
        scope.identity_from_instance = name.is_none();
        scope
    }

    /// The name this scope was created with (empty for a macro-generated scope named by
    /// its instance path).
    pub fn identity(&self) -> &'static str {
        self.identity
    }

    /// The id of this scope's fingerprint: equal fingerprints (the same identity and code,
    /// wherever the scope is declared) share one id.
    #[inline]
    fn id(&self) -> u32 {
        *self
            .id
            .get_or_init(|| fingerprint_id(self.identity, self.code, ""))
    }

    /// The id of this scope in one instance of the generated code, given its path: the
    /// `type_name` of a closure in the function's body, such as
    /// `app::Repo<app::Tenant>::find::{{closure}}::{{closure}}`. A static in a generic
    /// function is one for every instantiation, so without this `Repo<A>::find` and
    /// `Repo<B>::find` (or two impls' methods with one name) would share keys.
    ///
    /// Costs a pointer comparison when the path is the one seen last.
    #[doc(hidden)]
    #[inline]
    pub fn instance(&'static self, path: &'static str) -> u32 {
        let last = self.last.load(Ordering::Acquire);
        // SAFETY: `last` is null or a leaked, never freed `Instance`.
        if let Some(seen) = unsafe { last.as_ref() }
            && std::ptr::eq(seen.path, path)
        {
            return seen.id;
        }
        self.instance_slow(path)
    }

    #[cold]
    fn instance_slow(&'static self, path: &'static str) -> u32 {
        let instance = registry().instance(self, path);
        self.last
            .store(std::ptr::from_ref(instance).cast_mut(), Ordering::Release);
        instance.id
    }

    fn instance_id(&self, path: &str) -> u32 {
        let path = path.trim_end_matches("::{{closure}}");
        if self.identity_from_instance {
            fingerprint_id(path, self.code, "")
        } else {
            let generics = generic_args(path);
            if generics.is_empty() {
                self.id()
            } else {
                fingerprint_id(self.identity, self.code, &generics)
            }
        }
    }
}

/// Every `<...>` group at the top level of a type path, in order:
/// `<app::Repo<u8> as app::Find>::get` gives `<app::Repo<u8> as app::Find>`,
/// `app::Repo<u8>::get<3>` gives `<u8><3>`.
fn generic_args(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in path.chars() {
        if c == '<' {
            depth += 1;
        }
        if depth > 0 {
            out.push(c);
        }
        if c == '>' {
            depth = depth.saturating_sub(1);
        }
    }
    out
}

fn fingerprint_id(identity: &str, code: &str, instance: &str) -> u32 {
    let mut h = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
    for part in [identity, code, instance] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let registry = registry();
    let id = registry.fingerprint_id(*h.finalize().as_bytes());
    registry.name(id, identity, instance);
    id
}

/// The name of the function whose scope has id `id` (its identity, or the path of its code
/// instance), for statistics, logs and metrics; `"?"` for an id never interned.
pub(crate) fn function_name(id: u32) -> std::sync::Arc<str> {
    registry()
        .names
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
        .cloned()
        .unwrap_or_else(|| "?".into())
}

impl fmt::Debug for KeyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyScope")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Fingerprints and namespaces seen by this process, interned to small ids. Both are
/// bounded by the program (scopes are statics, namespaces come from settings).
/// Values by id, and ids by value.
type Interned<K> = RwLock<(Vec<K>, HashMap<K, u32>)>;

#[derive(Default)]
struct Registry {
    fingerprints: Interned<[u8; 32]>,
    namespaces: Interned<Box<str>>,
    /// Instances by (scope address, path text): bounded by the program's functions and
    /// their instantiations.
    instances: RwLock<HashMap<(usize, &'static str), &'static Instance>>,
    /// Function names by fingerprint id: bounded like the fingerprints.
    names: RwLock<HashMap<u32, std::sync::Arc<str>>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

fn intern<K: Clone + Eq + Hash>(table: &Interned<K>, value: K) -> u32 {
    if let Some(&id) = table
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .1
        .get(&value)
    {
        return id;
    }
    let mut table = table.write().unwrap_or_else(PoisonError::into_inner);
    let (list, ids) = &mut *table;
    *ids.entry(value.clone()).or_insert_with(|| {
        list.push(value);
        // More than 4 billion distinct functions or namespaces in one process is not a
        // program this library runs in; saturating keeps the ids distinct up to there.
        u32::try_from(list.len() - 1).unwrap_or(u32::MAX)
    })
}

impl Registry {
    fn instance(&self, scope: &'static KeyScope, path: &'static str) -> &'static Instance {
        let at = (std::ptr::from_ref(scope) as usize, path);
        if let Some(found) = self
            .instances
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&at)
        {
            return found;
        }
        let id = scope.instance_id(path);
        let mut map = self
            .instances
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(at)
            .or_insert_with(|| Box::leak(Box::new(Instance { path, id })))
    }

    fn fingerprint_id(&self, fingerprint: [u8; 32]) -> u32 {
        intern(&self.fingerprints, fingerprint)
    }

    fn name(&self, id: u32, identity: &str, instance: &str) {
        let known = self
            .names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&id);
        if !known {
            let name = if instance.is_empty() || identity.ends_with(instance) {
                identity.to_owned()
            } else {
                format!("{identity}{instance}")
            };
            self.names
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id)
                .or_insert_with(|| name.into());
        }
    }

    fn fingerprint(&self, id: u32) -> [u8; 32] {
        let table = self
            .fingerprints
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        table.0.get(id as usize).copied().unwrap_or_default()
    }

    fn namespace(&self, id: u32) -> Box<str> {
        let table = self
            .namespaces
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        table.0.get(id as usize).cloned().unwrap_or_default()
    }
}

/// A namespace interned for key building; a [`Cache`](crate::Cache) interns its own once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Namespace(u32);

impl Namespace {
    pub(crate) fn intern(namespace: &str) -> Namespace {
        Namespace(intern(&registry().namespaces, namespace.into()))
    }
}

/// Seed of the in-process key hash, random per process.
#[inline]
fn seed() -> &'static foldhash::fast::RandomState {
    static SEED: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    SEED.get_or_init(foldhash::fast::RandomState::default)
}

/// A cache key. Equal inputs give equal keys; its `Display` form, a blake3 digest, is the
/// same in every process: `blake3::keyed_hash(fingerprint, len(namespace) ‖ namespace ‖
/// rmp(args))`, where the fingerprint covers the function's identity and code.
#[derive(Clone, Copy)]
pub struct Key {
    hash: u64,
    /// The material's length (or [`DIGEST`], then the digest), the material, zeros.
    bytes: [u8; BYTES],
}

/// Key material being assembled: inline while it fits, else spilled to the heap.
pub(crate) struct Material {
    scope: u32,
    namespace: Namespace,
    /// A key's bytes in the making: byte 0 is set by `finish`, the ids (when both fit in
    /// 16 bits) and the encoded arguments follow.
    inline: [u8; BYTES],
    /// Material length.
    len: usize,
    /// The material, once it no longer fits inline.
    spill: Vec<u8>,
}

impl Material {
    #[inline]
    pub(crate) fn new(scope: u32, namespace: Namespace) -> Material {
        let mut material = Material {
            scope: 0,
            namespace: Namespace(0),
            inline: [0u8; BYTES],
            len: IDS,
            spill: Vec::new(),
        };
        material.set_ids(scope, namespace);
        material
    }

    #[inline]
    fn set_ids(&mut self, scope: u32, namespace: Namespace) {
        self.scope = scope;
        self.namespace = namespace;
        // Ids past 16 bits (more than 65,536 cached functions or namespaces in one
        // process) make `finish` take the digest: they are never truncated.
        self.inline[1..3].copy_from_slice(&(scope as u16).to_le_bytes());
        self.inline[3..1 + IDS].copy_from_slice(&(namespace.0 as u16).to_le_bytes());
    }

    /// Appends encoded argument bytes.
    #[inline]
    pub(crate) fn push(&mut self, data: &[u8]) {
        let end = self.len + data.len();
        if end <= INLINE {
            self.inline[1 + self.len..1 + end].copy_from_slice(data);
        } else {
            if self.len <= INLINE {
                self.spill.extend_from_slice(&self.inline[1..1 + self.len]);
            }
            self.spill.extend_from_slice(data);
        }
        self.len = end;
    }

    pub(crate) fn args(&self) -> &[u8] {
        if self.len > INLINE {
            &self.spill[IDS..]
        } else {
            &self.inline[1 + IDS..1 + self.len]
        }
    }

    #[inline]
    fn finish(&mut self) -> Key {
        let ids_fit = self.scope <= u32::from(u16::MAX) && self.namespace.0 <= u32::from(u16::MAX);
        if self.len <= INLINE && ids_fit {
            self.inline[0] = self.len as u8;
            Key {
                hash: nonzero(seed().hash_one(&self.inline[..1 + self.len])),
                bytes: self.inline,
            }
        } else {
            Key::from_digest(digest(self.scope, self.namespace, self.args()), self.scope)
        }
    }
}

impl crate::key::encoder::Sink for Material {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.push(bytes);
    }
}

/// Key hashes are never 0, so the in-memory store can mark free positions with it.
#[inline]
fn nonzero(hash: u64) -> u64 {
    hash.max(1)
}

/// Builds a key from arguments written (rmp-encoded) one by one; the scope and namespace
/// are given at the end. Used by macro-generated code through `__private::KeyArgs`.
pub(crate) struct KeyBuilder(Material);

impl KeyBuilder {
    #[inline]
    pub(crate) fn new() -> KeyBuilder {
        KeyBuilder(Material::new(0, Namespace(0)))
    }

    /// Appends one argument's encoding.
    #[inline]
    pub(crate) fn push<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), crate::key::encoder::EncodeError> {
        crate::key::encoder::encode(&mut self.0, value)
    }

    /// The key of the pushed arguments for the scope with this id (a
    /// [`KeyScope::instance`]).
    #[inline]
    pub(crate) fn finish(mut self, namespace: Namespace, scope: u32) -> Key {
        // Only the inline buffer holds ids: spilled material is only ever digested, from
        // `args()`.
        self.0.set_ids(scope, namespace);
        self.0.finish()
    }
}

fn digest(scope: u32, namespace: Namespace, args: &[u8]) -> [u8; 32] {
    let registry = registry();
    let fingerprint = registry.fingerprint(scope);
    let namespace = registry.namespace(namespace.0);
    let mut h = blake3::Hasher::new_keyed(&fingerprint);
    h.update(&(namespace.len() as u64).to_le_bytes());
    h.update(namespace.as_bytes());
    h.update(args);
    *h.finalize().as_bytes()
}

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
        Key::build_in(Namespace::intern(namespace), scope, args)
    }

    #[inline]
    pub(crate) fn build_in<A: Serialize + ?Sized>(
        namespace: Namespace,
        scope: &KeyScope,
        args: &A,
    ) -> Result<Key, KeyError> {
        let mut material = Material::new(scope.id(), namespace);
        crate::key::encoder::encode(&mut material, args).map_err(|e| KeyError(e.to_string()))?;
        Ok(material.finish())
    }

    fn from_digest(digest: [u8; 32], scope: u32) -> Key {
        let mut bytes = [0u8; BYTES];
        // A length no material has: the two kinds never compare equal.
        bytes[0] = DIGEST;
        bytes[1..33].copy_from_slice(&digest);
        // The scope rides along for statistics: equal digests have equal scopes, so it
        // never makes two equal keys differ.
        bytes[33..37].copy_from_slice(&scope.to_le_bytes());
        Key {
            hash: nonzero(seed().hash_one(digest)),
            bytes,
        }
    }

    /// The stable 32-byte digest of this key: the same for the same inputs in every process.
    /// Remote backends store entries under its hex form (this key's `Display`).
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        if self.bytes[0] == DIGEST {
            out.copy_from_slice(&self.bytes[1..33]);
            return out;
        }
        let id = |i: usize| u32::from(u16::from_le_bytes([self.bytes[i], self.bytes[i + 1]]));
        let len = usize::from(self.bytes[0]);
        digest(id(1), Namespace(id(3)), &self.bytes[1 + IDS..1 + len])
    }

    /// The id of the function scope this key was built for (see [`function_name`]).
    #[inline]
    pub(crate) fn scope(&self) -> u32 {
        if self.bytes[0] == DIGEST {
            u32::from_le_bytes([
                self.bytes[33],
                self.bytes[34],
                self.bytes[35],
                self.bytes[36],
            ])
        } else {
            u32::from(u16::from_le_bytes([self.bytes[1], self.bytes[2]]))
        }
    }

    /// This key with its hash replaced: two distinct keys with one hash, for tests of
    /// what the store does on a 64-bit collision.
    #[cfg(test)]
    pub(crate) fn with_hash(mut self, hash: u64) -> Key {
        self.hash = hash;
        self
    }

    /// The in-process hash (seeded per process, never 0).
    #[inline]
    pub(crate) fn hash_value(&self) -> u64 {
        self.hash
    }

    #[inline]
    pub(crate) fn shard(&self, mask: usize) -> usize {
        // High bits: hash tables index with the low ones.
        ((self.hash >> 40) as usize) & mask
    }
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Key) -> bool {
        // Bytes past the material are always zero (both constructors start from zeroed
        // arrays), so comparing the whole fixed-size array is exact, and cheaper than a
        // variable-length compare.
        if self.hash != other.hash {
            return false;
        }
        // As six words, or-ing their differences: no call to `memcmp`, no early exits on
        // a hit (where every word matches).
        let word = |b: &[u8; BYTES], i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(w)
        };
        (0..BYTES / 8).fold(0, |diff, i| {
            diff | (word(&self.bytes, i) ^ word(&other.bytes, i))
        }) == 0
    }
}

impl Eq for Key {}

// The hash is computed once, when the key is built: maps keyed by `Key` use it directly.
impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Hasher for maps keyed by [`Key`]: passes the key's precomputed hash through.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if something other than `Key` is hashed: fold it in (FNV-1a).
        self.0 = crate::fnv::extend(self.0, bytes);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(crate) type BuildKeyHasher = BuildHasherDefault<KeyHasher>;

impl fmt::Display for Key {
    /// The digest in lower-case hex, as remote backends store it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.digest() {
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
        // Pinned so that a change to the key layout (which orphans every stored entry of
        // every deployment: they simply miss) is a deliberate, visible decision. Layout v1
        // (rmp-serde arguments) gave 32df69d8...; v2 is the injective encoding.
        assert_eq!(
            k1.to_string(),
            "2f1bafce52675138a5c9d792bd93c73fb14765e348fd962aa353ef7e7ba5bf1c"
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
    fn long_arguments_fall_back_to_the_digest_and_stay_exact() {
        let long = "x".repeat(200);
        let a = Key::build("ns", &A, &long).unwrap();
        assert_eq!(a, Key::build("ns", &A, &long).unwrap());
        assert_ne!(a, Key::build("ns", &A, &"y".repeat(200)).unwrap());
        // Same formula as short keys: keyed blake3 of the length-prefixed namespace and args.
        let mut h = blake3::Hasher::new_keyed(&registry().fingerprint(A.id()));
        h.update(&2u64.to_le_bytes());
        h.update(b"ns");
        h.update(&crate::key::encoder::to_vec(&long).unwrap());
        assert_eq!(a.digest(), *h.finalize().as_bytes());
        // Right at the inline boundary, both kinds agree with themselves.
        for len in 40..56 {
            let s = "z".repeat(len);
            let k = Key::build("ns", &A, &s).unwrap();
            assert_eq!(k, Key::build("ns", &A, &s).unwrap());
            assert_eq!(k.to_string(), Key::build("ns", &A, &s).unwrap().to_string());
        }
    }

    #[test]
    fn namespaces_and_scopes_separate_keys() {
        let a = Key::build("ns1", &A, &1).unwrap();
        let b = Key::build("ns2", &A, &1).unwrap();
        let c = Key::build("ns1", &AB, &1).unwrap();
        assert!(a != b && a != c && b != c);
        assert!(a.digest() != b.digest() && a.digest() != c.digest());
        // Two scopes with the same identity and code are the same function.
        static A_AGAIN: KeyScope = KeyScope::new("a");
        assert_eq!(Key::build("ns1", &A_AGAIN, &1).unwrap(), a);
    }

    /// Mechanism: `KeyScope::instance` mixes the instantiation into the fingerprint. One
    /// `static` scope serves every instantiation of a generic function.
    #[test]
    fn instances_of_one_scope_have_their_own_keys() {
        static GENERATED: KeyScope = KeyScope::generated(None, "code");
        static NAMED: KeyScope = KeyScope::generated(Some("repo::count"), "code");
        let ns = Namespace::intern("ns");
        let key = |scope: u32| {
            let mut b = KeyBuilder::new();
            b.push(&1_i64).unwrap();
            b.finish(ns, scope)
        };
        let a = "app::Repo<app::A>::count::{{closure}}::{{closure}}";
        let b = "app::Repo<app::B>::count::{{closure}}::{{closure}}";
        let other_type = "app::Posts::count::{{closure}}::{{closure}}";
        let same_type = "app::Users::count::{{closure}}::{{closure}}";
        assert_ne!(key(GENERATED.instance(a)), key(GENERATED.instance(b)));
        assert_ne!(
            key(GENERATED.instance(other_type)),
            key(GENERATED.instance(same_type))
        );
        assert_eq!(key(GENERATED.instance(a)), key(GENERATED.instance(a)));
        // Named: stable across renames and moves, still apart per instantiation.
        assert_ne!(key(NAMED.instance(a)), key(NAMED.instance(b)));
        let moved = "elsewhere::Repo<app::A>::count::{{closure}}::{{closure}}";
        assert_eq!(key(NAMED.instance(a)), key(NAMED.instance(moved)));
        let plain = "app::users::count::{{closure}}::{{closure}}";
        assert_eq!(NAMED.instance(plain), NAMED.id());
        // The path seen last is cached; the others are still found.
        for _ in 0..3 {
            assert_ne!(GENERATED.instance(a), GENERATED.instance(b));
        }
        assert_eq!(
            generic_args("<app::Repo<u8> as app::Find>::get<3>"),
            "<app::Repo<u8> as app::Find><3>"
        );
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
