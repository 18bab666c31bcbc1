//! Key arguments to bytes: an encoding of serde's data model that is injective and
//! canonical, so two calls share a key exactly when their keyed arguments serialize alike.
//!
//! Every value starts with a tag byte naming its serde shape, and every compound ends with
//! [`END`], a byte no value starts with, so each value's bytes are self-delimiting and a
//! sequence of values decodes one way only:
//!
//! - structs write each field as its name and value, so two structs whose fields are
//!   skipped differently (`#[serde(skip_serializing_if = ..)]`) never look alike, which an
//!   array of field values (rmp-serde's default) does;
//! - `None` and `Some(v)` have tags of their own, so `Some(None)` differs from `None`;
//! - enum variants are written by name, with their data;
//! - maps are written with their entries sorted by encoded bytes, and sets (sequences
//!   whose collection type is named `…Set`: `HashSet`, `BTreeSet`, `IndexSet`,
//!   hashbrown's) with their elements sorted, so equal maps and sets give equal keys in
//!   every process whatever their iteration order;
//! - integers are written by value (sign and magnitude), floats by their bits.
//!
//! The encoding depends only on the value, never on the process, so the stable digest of a
//! key ([`Key::digest`](crate::Key::digest)) is the same everywhere.

use serde::Serialize;
use serde::ser::{self, SerializeSeq};

const NONE: u8 = 0x00;
const SOME: u8 = 0x01;
const UNIT: u8 = 0x02;
const FALSE: u8 = 0x03;
const TRUE: u8 = 0x04;
/// A non-negative integer: LEB128 of its value.
const UINT: u8 = 0x05;
/// A negative integer `v`: LEB128 of `-(v + 1)`.
const NINT: u8 = 0x06;
const F32: u8 = 0x07;
const F64: u8 = 0x08;
const CHAR: u8 = 0x09;
/// LEB128 length, then UTF-8 bytes.
const STR: u8 = 0x0a;
const BYTES: u8 = 0x0b;
const UNIT_STRUCT: u8 = 0x0c;
/// Then the variant's name (length and bytes).
const UNIT_VARIANT: u8 = 0x0d;
/// Then the variant's name and its value.
const NEWTYPE_VARIANT: u8 = 0x0e;
/// Then the elements and [`END`].
const SEQ: u8 = 0x0f;
const TUPLE: u8 = 0x10;
/// Then the variant's name, the elements and [`END`].
const TUPLE_VARIANT: u8 = 0x11;
/// Then each field as a [`STR`] name and a value, and [`END`].
const STRUCT: u8 = 0x12;
/// Then the variant's name, the fields and [`END`].
const STRUCT_VARIANT: u8 = 0x13;
/// Then each entry (key, value), sorted by their bytes, and [`END`].
const MAP: u8 = 0x14;
/// Then the elements, sorted by their bytes, and [`END`].
const SET: u8 = 0x15;
/// Ends a compound. No value starts with it.
const END: u8 = 0xff;

/// Where encoded bytes go: the key's material, or a buffer for a map entry or set element
/// that is sorted before it is written.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A `Serialize` impl failed (its own error, or a sequence longer than it announced).
#[derive(Debug)]
pub(crate) struct EncodeError(String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> EncodeError {
        EncodeError(msg.to_string())
    }
}

/// Appends the encoding of `value` to `sink`. On error, what was appended is garbage: the
/// caller discards the key.
#[inline]
pub(crate) fn encode<S: Sink, T: Serialize + ?Sized>(
    sink: &mut S,
    value: &T,
) -> Result<(), EncodeError> {
    value.serialize(Encoder { out: sink })
}

/// The encoding of `value` on its own.
#[cfg(test)]
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode(&mut out, value)?;
    Ok(out)
}

struct Encoder<'s, S> {
    out: &'s mut S,
}

/// LEB128: seven bits per byte, low first, the top bit set on all but the last.
#[inline]
fn varint<S: Sink>(out: &mut S, mut v: u128) {
    let mut buf = [0u8; 19];
    let mut n = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[n] = byte;
            n += 1;
            break;
        }
        buf[n] = byte | 0x80;
        n += 1;
    }
    out.put(&buf[..n]);
}

#[inline]
fn tag_and_varint<S: Sink>(out: &mut S, tag: u8, v: u64) {
    // The common case, a small id, in one write.
    if v < 0x80 {
        out.put(&[tag, v as u8]);
    } else {
        out.put(&[tag]);
        varint(out, u128::from(v));
    }
}

/// A name (field or variant): its length, then its bytes.
#[inline]
fn name<S: Sink>(out: &mut S, name: &str) {
    varint(out, name.len() as u128);
    out.put(name.as_bytes());
}

#[inline]
fn signed<S: Sink>(out: &mut S, v: i128) {
    if v >= 0 {
        varint_tagged(out, UINT, v as u128);
    } else {
        // -(v + 1) is non-negative for every negative v, i128::MIN included.
        varint_tagged(out, NINT, (-(v + 1)) as u128);
    }
}

#[inline]
fn varint_tagged<S: Sink>(out: &mut S, tag: u8, v: u128) {
    match u64::try_from(v) {
        Ok(v) => tag_and_varint(out, tag, v),
        Err(_) => {
            out.put(&[tag]);
            varint(out, v);
        }
    }
}

/// Whether the collection type `I` that serde hands to `collect_seq` is a set, whose
/// iteration order says nothing about its value. Told by the name of the outermost type
/// (`&HashSet<_>`, `&BTreeSet<_>`, ...; never a slice, tuple or `Vec` *of* sets): serde's
/// data model has no set type of its own. Only set types whose equality ignores order are
/// listed, so a user type that merely ends in `Set` keeps its order.
fn is_set<I: ?Sized>() -> bool {
    const SETS: [&str; 7] = [
        "HashSet",
        "BTreeSet",
        "IndexSet",
        "DashSet",
        "OrdSet",
        "HashTrieSet",
        "RedBlackTreeSet",
    ];
    let name = std::any::type_name::<I>();
    let name = name.trim_start_matches('&').trim_start_matches("mut ");
    let base = name.split('<').next().unwrap_or(name);
    if base.contains(['[', '(', ' ']) {
        return false;
    }
    let last = base.rsplit("::").next().unwrap_or(base);
    SETS.contains(&last)
}

/// The elements of a sequence, tuple or tuple variant, then [`END`].
struct Elements<'s, S> {
    out: &'s mut S,
}

impl<S: Sink> Elements<'_, S> {
    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(Encoder { out: self.out })
    }

    fn finish(self) -> Result<(), EncodeError> {
        self.out.put(&[END]);
        Ok(())
    }
}

macro_rules! elements {
    ($($compound:ident::$method:ident),*) => {$(
        impl<S: Sink> ser::$compound for Elements<'_, S> {
            type Ok = ();
            type Error = EncodeError;
            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
                self.element(value)
            }
            fn end(self) -> Result<(), EncodeError> {
                self.finish()
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// The fields of a struct or struct variant, each by name, then [`END`]. A skipped field
/// (`skip_serializing_if`) is simply absent: the names that are present tell the rest.
struct Fields<'s, S> {
    out: &'s mut S,
}

impl<S: Sink> Fields<'_, S> {
    #[inline]
    fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.out.put(&[STR]);
        name(self.out, key);
        value.serialize(Encoder { out: self.out })
    }
}

macro_rules! fields {
    ($($compound:ident),*) => {$(
        impl<S: Sink> ser::$compound for Fields<'_, S> {
            type Ok = ();
            type Error = EncodeError;
            #[inline]
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), EncodeError> {
                self.field(key, value)
            }
            fn end(self) -> Result<(), EncodeError> {
                self.out.put(&[END]);
                Ok(())
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);

/// A map's entries, each encoded on its own, written sorted: equal maps give equal bytes
/// whatever order they iterate in.
struct Entries<'s, S> {
    out: &'s mut S,
    entries: Vec<Vec<u8>>,
}

impl<S: Sink> ser::SerializeMap for Entries<'_, S> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        let mut entry = Vec::new();
        encode(&mut entry, key)?;
        self.entries.push(entry);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        match self.entries.last_mut() {
            Some(entry) => encode(entry, value),
            None => Err(EncodeError("a map value came before its key".into())),
        }
    }

    fn end(self) -> Result<(), EncodeError> {
        write_sorted(self.out, MAP, self.entries);
        Ok(())
    }
}

/// `tag`, the parts in byte order, [`END`]. Each part is a self-delimiting encoding, so the
/// sorted concatenation still decodes to the same multiset of parts.
fn write_sorted<S: Sink>(out: &mut S, tag: u8, mut parts: Vec<Vec<u8>>) {
    parts.sort_unstable();
    out.put(&[tag]);
    for part in &parts {
        out.put(part);
    }
    out.put(&[END]);
}

impl<'s, S: Sink> ser::Serializer for Encoder<'s, S> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Elements<'s, S>;
    type SerializeTuple = Elements<'s, S>;
    type SerializeTupleStruct = Elements<'s, S>;
    type SerializeTupleVariant = Elements<'s, S>;
    type SerializeMap = Entries<'s, S>;
    type SerializeStruct = Fields<'s, S>;
    type SerializeStructVariant = Fields<'s, S>;

    /// Types such as `Uuid`, `IpAddr` or `SocketAddr` write their compact binary forms.
    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.out.put(&[if v { TRUE } else { FALSE }]);
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        if v >= 0 {
            tag_and_varint(self.out, UINT, v as u64);
        } else {
            tag_and_varint(self.out, NINT, !(v as u64));
        }
        Ok(())
    }

    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), EncodeError> {
        signed(self.out, v);
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        tag_and_varint(self.out, UINT, v);
        Ok(())
    }

    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), EncodeError> {
        varint_tagged(self.out, UINT, v);
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.out.put(&[F32]);
        self.out.put(&v.to_bits().to_le_bytes());
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        self.out.put(&[F64]);
        self.out.put(&v.to_bits().to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        tag_and_varint(self.out, CHAR, u64::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        tag_and_varint(self.out, STR, v.len() as u64);
        self.out.put(v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        tag_and_varint(self.out, BYTES, v.len() as u64);
        self.out.put(v);
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<(), EncodeError> {
        self.out.put(&[NONE]);
        Ok(())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        self.out.put(&[SOME]);
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), EncodeError> {
        self.out.put(&[UNIT]);
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EncodeError> {
        self.out.put(&[UNIT_STRUCT]);
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.out.put(&[UNIT_VARIANT]);
        name(self.out, variant);
        Ok(())
    }

    /// Transparent, as `#[serde(transparent)]` is: a newtype is its value.
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.out.put(&[NEWTYPE_VARIANT]);
        name(self.out, variant);
        value.serialize(self)
    }

    #[inline]
    fn serialize_seq(self, _: Option<usize>) -> Result<Elements<'s, S>, EncodeError> {
        self.out.put(&[SEQ]);
        Ok(Elements { out: self.out })
    }

    #[inline]
    fn serialize_tuple(self, _: usize) -> Result<Elements<'s, S>, EncodeError> {
        self.out.put(&[TUPLE]);
        Ok(Elements { out: self.out })
    }

    #[inline]
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Elements<'s, S>, EncodeError> {
        self.serialize_tuple(len)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Elements<'s, S>, EncodeError> {
        self.out.put(&[TUPLE_VARIANT]);
        name(self.out, variant);
        Ok(Elements { out: self.out })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Entries<'s, S>, EncodeError> {
        Ok(Entries {
            out: self.out,
            entries: Vec::with_capacity(len.unwrap_or(0)),
        })
    }

    #[inline]
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Fields<'s, S>, EncodeError> {
        self.out.put(&[STRUCT]);
        Ok(Fields { out: self.out })
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Fields<'s, S>, EncodeError> {
        self.out.put(&[STRUCT_VARIANT]);
        name(self.out, variant);
        Ok(Fields { out: self.out })
    }

    /// Sequences, and sets: a set's elements are sorted (see [`is_set`]).
    fn collect_seq<I>(self, iter: I) -> Result<(), EncodeError>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        if is_set::<I>() {
            let parts = iter
                .into_iter()
                .map(|item| {
                    let mut part = Vec::new();
                    encode(&mut part, &item)?;
                    Ok(part)
                })
                .collect::<Result<Vec<_>, EncodeError>>()?;
            write_sorted(self.out, SET, parts);
            return Ok(());
        }
        let mut seq = self.serialize_seq(None)?;
        for item in iter {
            seq.serialize_element(&item)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    use proptest::prelude::*;
    use serde::Serialize;

    use super::to_vec;

    fn bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        to_vec(value).expect("encodes")
    }

    /// The field report's case: a filter whose absent fields are skipped.
    #[derive(Serialize)]
    struct Filter {
        #[serde(skip_serializing_if = "Option::is_none")]
        city: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    }

    /// Mechanism: field names are written. As an array of field values (rmp-serde's
    /// default), both filters are `["Paris"]`.
    #[test]
    fn struct_fields_are_told_apart_by_name() {
        let city = Filter {
            city: Some("Paris".into()),
            name: None,
        };
        let name = Filter {
            city: None,
            name: Some("Paris".into()),
        };
        assert_ne!(bytes(&city), bytes(&name));
        assert_ne!(
            rmp_serde::to_vec(&city).unwrap(),
            bytes(&name),
            "sanity: rmp-serde's arrays are what collided"
        );
        assert_eq!(
            rmp_serde::to_vec(&city).unwrap(),
            rmp_serde::to_vec(&name).unwrap()
        );
    }

    /// Mechanism: `Some` has a tag of its own.
    #[test]
    fn option_nesting_is_kept() {
        assert_ne!(bytes(&Some(None::<i64>)), bytes(&None::<Option<i64>>));
        assert_ne!(bytes(&Some(Some(1))), bytes(&Some(1)));
    }

    /// Mechanism: entries and set elements are sorted. Two `HashSet`s (and `HashMap`s)
    /// built with their own random hashers iterate in different orders.
    #[test]
    fn equal_maps_and_sets_give_equal_bytes() {
        let items: Vec<i64> = (0..64).collect();
        let a: HashSet<i64> = items.iter().copied().collect();
        let b: HashSet<i64> = items.iter().rev().copied().collect();
        assert_eq!(bytes(&a), bytes(&b));
        let ordered: BTreeSet<i64> = items.iter().copied().collect();
        assert_eq!(
            bytes(&a),
            bytes(&ordered),
            "a set is a set, whatever its type"
        );
        assert_ne!(
            bytes(&a),
            bytes(&items),
            "a set is not the sequence of its elements"
        );

        let m1: HashMap<String, i64> = items.iter().map(|i| (i.to_string(), *i)).collect();
        let m2: HashMap<String, i64> = items.iter().rev().map(|i| (i.to_string(), *i)).collect();
        assert_eq!(bytes(&m1), bytes(&m2));
        let m3: BTreeMap<String, i64> = m1.clone().into_iter().collect();
        assert_eq!(bytes(&m1), bytes(&m3));
    }

    #[test]
    fn sequence_order_matters() {
        assert_ne!(bytes(&vec![1, 2]), bytes(&vec![2, 1]));
    }

    /// A value of many shapes, for the property tests.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    enum Value {
        Unit,
        Bool(bool),
        Int(i64),
        Big(i128),
        Float(f64),
        Text(String),
        Bytes(#[serde(with = "serde_bytes_like")] Vec<u8>),
        Opt(Option<Box<Value>>),
        List(Vec<Value>),
        Pair(Box<Value>, Box<Value>),
        Record {
            #[serde(skip_serializing_if = "Option::is_none")]
            a: Option<Box<Value>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            b: Option<Box<Value>>,
        },
        Map(BTreeMap<String, Value>),
        Set(BTreeSet<i32>),
    }

    mod serde_bytes_like {
        pub(super) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Unit),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<i128>().prop_map(Value::Big),
            any::<f64>().prop_map(Value::Float),
            ".{0,12}".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
            proptest::collection::btree_set(any::<i32>(), 0..5).prop_map(Value::Set),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::option::of(inner.clone().prop_map(Box::new)).prop_map(Value::Opt),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Value::Pair(Box::new(a), Box::new(b))),
                (
                    proptest::option::of(inner.clone().prop_map(Box::new)),
                    proptest::option::of(inner.clone().prop_map(Box::new))
                )
                    .prop_map(|(a, b)| Value::Record { a, b }),
                proptest::collection::btree_map(".{0,4}", inner, 0..4).prop_map(Value::Map),
            ]
        })
    }

    /// Values compare with floats by their bits: the key keeps `-0.0` and `0.0` (and NaNs)
    /// apart, as a query given them may.
    fn same(a: &Value, b: &Value) -> bool {
        format!("{a:?}") == format!("{b:?}") && {
            fn floats(v: &Value, out: &mut Vec<u64>) {
                match v {
                    Value::Float(f) => out.push(f.to_bits()),
                    Value::Opt(Some(x)) => floats(x, out),
                    Value::List(xs) => xs.iter().for_each(|x| floats(x, out)),
                    Value::Pair(a, b) => {
                        floats(a, out);
                        floats(b, out);
                    }
                    Value::Record { a, b } => {
                        a.iter().chain(b).for_each(|x| floats(x, out));
                    }
                    Value::Map(m) => m.values().for_each(|x| floats(x, out)),
                    _ => {}
                }
            }
            let (mut x, mut y) = (Vec::new(), Vec::new());
            floats(a, &mut x);
            floats(b, &mut y);
            x == y
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Distinct values never share bytes; equal values always do.
        #[test]
        fn distinct_values_distinct_bytes(a in value(), b in value()) {
            prop_assert_eq!(same(&a, &b), bytes(&a) == bytes(&b), "{:?} vs {:?}", a, b);
            prop_assert_eq!(bytes(&a), bytes(&a.clone()));
        }

        /// Two values next to each other never read as two others: the encoding of a
        /// sequence of values decodes one way (what keys built argument by argument rely on).
        #[test]
        fn concatenations_are_unambiguous(a in value(), b in value(), c in value(), d in value()) {
            let ab = [bytes(&a), bytes(&b)].concat();
            let cd = [bytes(&c), bytes(&d)].concat();
            prop_assert_eq!(same(&a, &c) && same(&b, &d), ab == cd);
        }

        /// A hash set or map of any elements gives the bytes of any other with the same
        /// elements, inserted in another order.
        #[test]
        fn hash_collections_are_canonical(items in proptest::collection::vec(".{0,6}", 0..20)) {
            let forward: HashSet<String> = items.iter().cloned().collect();
            let backward: HashSet<String> = items.iter().rev().cloned().collect();
            prop_assert_eq!(bytes(&forward), bytes(&backward));
            let m1: HashMap<&String, usize> = items.iter().map(|s| (s, s.len())).collect();
            let m2: HashMap<&String, usize> = items.iter().rev().map(|s| (s, s.len())).collect();
            prop_assert_eq!(bytes(&m1), bytes(&m2));
        }

        /// Integers are written by value: every width of one number gives one encoding,
        /// distinct numbers give distinct ones.
        #[test]
        fn integers_by_value(a in any::<i64>(), b in any::<i64>()) {
            prop_assert_eq!(a == b, bytes(&a) == bytes(&b));
            prop_assert_eq!(bytes(&a), bytes(&i128::from(a)));
            if let Ok(u) = u64::try_from(a) {
                prop_assert_eq!(bytes(&a), bytes(&u));
            }
        }
    }

    /// Types whose encoding depends on `is_human_readable` take their binary form.
    #[test]
    fn binary_forms() {
        let ip: std::net::IpAddr = "1.2.3.4".parse().unwrap();
        assert_eq!(bytes(&ip)[0], super::NEWTYPE_VARIANT);
    }

    /// A sequence *of* sets keeps its order: only the sets themselves are sorted.
    #[test]
    fn sequences_of_sets_keep_their_order() {
        let a: BTreeSet<i64> = [1].into();
        let b: BTreeSet<i64> = [2].into();
        let ab = [a.clone(), b.clone()];
        let ba = [b, a];
        assert_ne!(bytes(&ab[..]), bytes(&ba[..]));
        assert_ne!(bytes(&ab.to_vec()), bytes(&ba.to_vec()));
        let pairs = [(HashSet::from([1_i64]), 0_u8), (HashSet::from([2]), 1)];
        let swapped = [pairs[1].clone(), pairs[0].clone()];
        assert_ne!(bytes(&pairs[..]), bytes(&swapped[..]));
    }

    #[test]
    fn set_detection_by_type_name() {
        assert!(super::is_set::<&HashSet<i64>>());
        assert!(super::is_set::<&BTreeSet<String>>());
        assert!(!super::is_set::<&Vec<HashSet<i64>>>());
        assert!(!super::is_set::<&[i64]>());
        assert!(!super::is_set::<&HashMap<i64, i64>>());
        assert!(!super::is_set::<&[BTreeSet<i64>]>());
        assert!(!super::is_set::<&[(HashSet<i64>, u8)]>());
        assert!(!super::is_set::<&Box<[BTreeSet<i64>]>>());
        assert!(!super::is_set::<&Vec<BTreeSet<i64>>>());
    }
}
