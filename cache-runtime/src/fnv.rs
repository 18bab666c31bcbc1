//! FNV-1a, 64-bit: a cheap, stable hash of short texts (a function's tokens, a type's
//! name). One file for both crates: `cache-derive` links to it, as it does to
//! `ttl_grammar.rs`.

#![allow(dead_code)]

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// The hash of `bytes`.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    extend(OFFSET, bytes)
}

/// `hash` continued over `bytes`.
pub(crate) fn extend(hash: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(hash, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}
