//! The bytes a [`Backend`](crate::backend::Backend) stores: a value wrapped with what is
//! needed to decide whether it may be served.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::CacheValue;

const FORMAT: u8 = 1;

#[derive(Serialize)]
struct EnvelopeRef<'a, V> {
    format: u8,
    /// Identifies `V`: a value of another type under the same key is a miss, even if it
    /// happens to decode.
    type_id: u64,
    /// Unix milliseconds after which the entry must not be served.
    expires_at: Option<u64>,
    /// (table, version) captured before the query ran.
    tags: &'a [(&'a str, u64)],
    value: &'a V,
}

#[derive(Deserialize)]
pub(crate) struct Envelope<V> {
    format: u8,
    type_id: u64,
    pub(crate) expires_at: Option<u64>,
    pub(crate) tags: Vec<(String, u64)>,
    pub(crate) value: V,
}

/// FNV-1a of the type's name: computed on every remote hit, so cheap rather than
/// cryptographic (it tells types apart; it is no defence against a forged entry, which the
/// backend's owner could write in any form anyway).
fn type_id<V>() -> u64 {
    crate::fnv::fnv1a(std::any::type_name::<V>().as_bytes())
}

pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn encode<V: CacheValue>(
    value: &V,
    tags: &[(&str, u64)],
    ttl: Option<Duration>,
) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    let expires_at = ttl.map(|t| unix_ms(SystemTime::now()).saturating_add(t.as_millis() as u64));
    // Named fields: a struct whose fields were reordered or retyped since the entry was
    // written fails to decode (a miss) instead of decoding into the wrong fields.
    rmp_serde::to_vec_named(&EnvelopeRef {
        format: FORMAT,
        type_id: type_id::<V>(),
        expires_at,
        tags,
        value,
    })
}

/// Why stored bytes are not a usable value of this type.
#[derive(Debug)]
pub(crate) enum DecodeError {
    Malformed(rmp_serde::decode::Error),
    Format(u8),
    ForeignType,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(e) => write!(f, "malformed entry: {e}"),
            DecodeError::Format(v) => write!(f, "unknown entry format {v}"),
            DecodeError::ForeignType => f.write_str("entry holds a value of another type"),
        }
    }
}

pub(crate) fn decode<V: CacheValue>(bytes: &[u8]) -> Result<Envelope<V>, DecodeError> {
    let env: Envelope<V> = rmp_serde::from_slice(bytes).map_err(DecodeError::Malformed)?;
    if env.format != FORMAT {
        return Err(DecodeError::Format(env.format));
    }
    if env.type_id != type_id::<V>() {
        return Err(DecodeError::ForeignType);
    }
    Ok(env)
}
