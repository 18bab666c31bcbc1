//! Key arguments to MessagePack, byte for byte as rmp-serde writes them, without its
//! generic writer layers for the values keys are mostly made of.
//!
//! Integers, booleans, strings, chars, units, options, newtypes, unit variants, tuples,
//! sequences of known length and structs are written here directly (an `i64` id took ~100
//! instructions through rmp-serde's `io::Write` chain; a handful here). Anything else
//! (maps, enum variants with data, bytes, floats, 128-bit integers), and any error, makes
//! the whole value be written again by rmp-serde itself. So the encoding, and with it
//! every stable key digest, is rmp-serde's in every case: `tests` compares the two on
//! values of every kind.

use serde::Serialize;
use serde::ser::{self, Impossible};

use crate::key::Material;

/// Encodes `value` into `material` exactly as `rmp_serde::encode::write` would.
#[inline]
pub(crate) fn encode<T: Serialize + ?Sized>(
    material: &mut Material,
    value: &T,
) -> Result<(), rmp_serde::encode::Error> {
    let start = material.len();
    match value.serialize(KeyEncoder { material }) {
        Ok(()) => Ok(()),
        Err(_) => fallback(material, start, value),
    }
}

/// Any error, a value left to rmp-serde or not (a `Serialize` impl may wrap or replace the
/// error it got): the bytes written so far are dropped and rmp-serde writes the value from
/// `start`, so its result, success or error, is the one that counts.
#[cold]
#[inline(never)]
fn fallback<T: Serialize + ?Sized>(
    material: &mut Material,
    start: usize,
    value: &T,
) -> Result<(), rmp_serde::encode::Error> {
    material.truncate(start);
    rmp_serde::encode::write(material, value)
}

/// Why this encoder stopped: a value it leaves to rmp-serde, or an error a `Serialize` impl
/// raised. Either way `encode` hands the value to rmp-serde, so nothing more is kept.
#[derive(Debug)]
struct Leave;

impl std::fmt::Display for Leave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("left to rmp-serde")
    }
}

impl std::error::Error for Leave {}

impl ser::Error for Leave {
    fn custom<T: std::fmt::Display>(_: T) -> Leave {
        Leave
    }
}

struct KeyEncoder<'m> {
    material: &'m mut Material,
}

impl<'m> KeyEncoder<'m> {
    #[inline]
    fn uint(self, v: u64) {
        let m = self.material;
        match v {
            0..=0x7f => m.push(&[v as u8]),
            0x80..=0xff => m.push(&[0xcc, v as u8]),
            0x100..=0xffff => {
                m.push(&[0xcd]);
                m.push(&(v as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                m.push(&[0xce]);
                m.push(&(v as u32).to_be_bytes());
            }
            _ => {
                m.push(&[0xcf]);
                m.push(&v.to_be_bytes());
            }
        }
    }

    #[inline]
    fn sint(self, v: i64) {
        if v >= 0 {
            // rmp writes non-negative signed values as unsigned ones.
            return self.uint(v as u64);
        }
        let m = self.material;
        match v {
            -32..=-1 => m.push(&[v as u8]),
            -128..=-33 => m.push(&[0xd0, v as u8]),
            -32768..=-129 => {
                m.push(&[0xd1]);
                m.push(&(v as i16).to_be_bytes());
            }
            -2_147_483_648..=-32769 => {
                m.push(&[0xd2]);
                m.push(&(v as i32).to_be_bytes());
            }
            _ => {
                m.push(&[0xd3]);
                m.push(&v.to_be_bytes());
            }
        }
    }

    #[inline]
    fn str(self, v: &str) -> Result<(), Leave> {
        let m = self.material;
        let len = v.len();
        if len < 32 {
            m.push(&[0xa0 | len as u8]);
        } else if len < 0x100 {
            m.push(&[0xd9, len as u8]);
        } else if len < 0x1_0000 {
            m.push(&[0xda]);
            m.push(&(len as u16).to_be_bytes());
        } else {
            // Past u32::MAX, rmp-serde reports the error.
            let len = u32::try_from(len).map_err(|_| Leave)?;
            m.push(&[0xdb]);
            m.push(&len.to_be_bytes());
        }
        m.push(v.as_bytes());
        Ok(())
    }
}

fn array_len(m: &mut Material, len: usize) -> Result<(), Leave> {
    match len {
        0..=15 => m.push(&[0x90 | len as u8]),
        16..=0xffff => {
            m.push(&[0xdc]);
            m.push(&(len as u16).to_be_bytes());
        }
        _ => {
            let len = u32::try_from(len).map_err(|_| Leave)?;
            m.push(&[0xdd]);
            m.push(&len.to_be_bytes());
        }
    }
    Ok(())
}

/// The elements of a tuple, sequence or struct, after its array header.
struct Elements<'m> {
    material: &'m mut Material,
}

impl Elements<'_> {
    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Leave> {
        value.serialize(KeyEncoder {
            material: self.material,
        })
    }
}

/// The array-shaped compounds: each element is encoded in turn.
macro_rules! elements {
    ($($compound:ident::$method:ident),*) => {$(
        impl ser::$compound for Elements<'_> {
            type Ok = ();
            type Error = Leave;
            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Leave> {
                self.element(value)
            }
            fn end(self) -> Result<(), Leave> {
                Ok(())
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

impl ser::SerializeStruct for Elements<'_> {
    type Ok = ();
    type Error = Leave;
    /// rmp-serde's default writes a struct as the array of its field values.
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Leave> {
        self.element(value)
    }
    fn end(self) -> Result<(), Leave> {
        Ok(())
    }
}

/// Integers, widened to the one rmp-serde writes them as (the most compact form).
macro_rules! integers {
    ($($method:ident($ty:ty) => $write:ident),*) => {$(
        #[inline]
        fn $method(self, v: $ty) -> Result<(), Leave> {
            self.$write(v.into());
            Ok(())
        }
    )*};
}

macro_rules! left_to_rmp_serde {
    ($($method:ident($ty:ty)),*) => {$(
        #[inline]
        fn $method(self, _: $ty) -> Result<(), Leave> {
            Err(Leave)
        }
    )*};
}

impl<'m> ser::Serializer for KeyEncoder<'m> {
    type Ok = ();
    type Error = Leave;
    type SerializeSeq = Elements<'m>;
    type SerializeTuple = Elements<'m>;
    type SerializeTupleStruct = Elements<'m>;
    type SerializeTupleVariant = Impossible<(), Leave>;
    type SerializeMap = Impossible<(), Leave>;
    type SerializeStruct = Elements<'m>;
    type SerializeStructVariant = Impossible<(), Leave>;

    /// As rmp-serde's default configuration: types such as `Uuid`, `IpAddr` or
    /// `SocketAddr` write their compact binary forms, not strings.
    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Leave> {
        self.material.push(&[if v { 0xc3 } else { 0xc2 }]);
        Ok(())
    }

    integers!(
        serialize_i8(i8) => sint,
        serialize_i16(i16) => sint,
        serialize_i32(i32) => sint,
        serialize_i64(i64) => sint,
        serialize_u8(u8) => uint,
        serialize_u16(u16) => uint,
        serialize_u32(u32) => uint,
        serialize_u64(u64) => uint
    );

    left_to_rmp_serde!(
        serialize_i128(i128),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64)
    );

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), Leave> {
        self.str(v.encode_utf8(&mut [0; 4]))
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Leave> {
        self.str(v)
    }

    #[inline]
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Leave> {
        Err(Leave)
    }

    #[inline]
    fn serialize_none(self) -> Result<(), Leave> {
        self.serialize_unit()
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Leave> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), Leave> {
        self.material.push(&[0xc0]);
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Leave> {
        array_len(self.material, 0)
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Leave> {
        self.str(variant)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Leave> {
        // rmp-serde gives one newtype name (its extension type) a meaning of its own.
        if name == rmp_serde::MSGPACK_EXT_STRUCT_NAME {
            return Err(Leave);
        }
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Leave> {
        Err(Leave)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Elements<'m>, Leave> {
        // rmp-serde buffers a sequence of unknown length: leave those to it.
        array_len(self.material, len.ok_or(Leave)?)?;
        Ok(Elements {
            material: self.material,
        })
    }

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Elements<'m>, Leave> {
        array_len(self.material, len)?;
        Ok(Elements {
            material: self.material,
        })
    }

    #[inline]
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Elements<'m>, Leave> {
        self.serialize_tuple(len)
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Leave> {
        Err(Leave)
    }

    #[inline]
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Leave> {
        Err(Leave)
    }

    #[inline]
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Elements<'m>, Leave> {
        self.serialize_tuple(len)
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Leave> {
        Err(Leave)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;
    use crate::key::Namespace;

    fn same<T: Serialize + ?Sized + std::fmt::Debug>(value: &T) {
        let mut material = Material::new(0, Namespace::intern("ns"));
        encode(&mut material, value).unwrap();
        let ours = material.args().to_vec();
        assert_eq!(ours, rmp_serde::to_vec(value).unwrap(), "{value:?}");
    }

    #[derive(Serialize, Debug)]
    struct User {
        id: i64,
        email: String,
        tags: Vec<u8>,
        nested: Option<(bool, char)>,
    }

    #[derive(Serialize, Debug)]
    struct Tuple(u32, i8);

    #[derive(Serialize, Debug)]
    struct Unit;

    #[derive(Serialize, Debug)]
    struct Newtype(i64);

    #[derive(Serialize, Debug)]
    enum Kind {
        A,
        B(i64),
        C { x: i64 },
        D(i64, i64),
    }

    #[test]
    fn writes_what_rmp_serde_writes() {
        let ints: Vec<i64> = vec![
            0,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            4_294_967_295,
            4_294_967_296,
            i64::MAX,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            -2_147_483_648,
            -2_147_483_649,
            i64::MIN,
        ];
        for &i in &ints {
            same(&i);
            same(&(i as i32));
            same(&(i as i16));
            same(&(i as i8));
            same(&(i as u64));
            same(&(i as u32));
            same(&(i as u16));
            same(&(i as u8));
        }
        same(&u64::MAX);
        for len in [0, 1, 31, 32, 255, 256, 65535, 65536] {
            same(&"é".repeat(len / 2));
            same(&"x".repeat(len));
            same(&vec![7_u8; len]);
        }
        same(&true);
        same(&false);
        same(&'x');
        same(&'€');
        same(&());
        same(&None::<i64>);
        same(&Some(5_i64));
        same(&(1_i64, "x"));
        same(&(1_i64, (2_u8, [3_i16, -4])));
        same(&Tuple(7, -7));
        same(&Unit);
        same(&Newtype(3));
        same(&User {
            id: 42,
            email: "a@example.com".into(),
            tags: vec![1, 2, 3],
            nested: Some((true, 'z')),
        });
        same(&[Kind::A, Kind::B(1), Kind::C { x: 2 }, Kind::D(3, 4)]);
        same(&(1_i64, Kind::A));
        same(&1.5_f64);
        same(&(2_i64, 1.5_f32));
        same(&BTreeMap::from([(1, "a"), (2, "b")]));
        same(&(3_i64, BTreeMap::from([(1, "a")])));
        same(&serde_bytes_like());
        same(&1_i128);
        same(&[Kind::A, Kind::A]);
        // Types whose encoding depends on `is_human_readable`.
        let ip: std::net::IpAddr = "1.2.3.4".parse().unwrap();
        same(&ip);
        same(&(7_i64, ip));
        let v6: std::net::Ipv6Addr = "::1".parse().unwrap();
        same(&v6);
        let socket: std::net::SocketAddr = "10.0.0.1:5432".parse().unwrap();
        same(&socket);
        same(&HumanOrNot);
        same(&u128::MAX);
    }

    /// Serializes differently for human-readable formats, as `Uuid` does.
    #[derive(Debug)]
    struct HumanOrNot;

    impl Serialize for HumanOrNot {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if s.is_human_readable() {
                s.serialize_str("human")
            } else {
                s.serialize_u8(1)
            }
        }
    }

    /// Mechanism: any error, even one a `Serialize` impl made from the encoder's own, hands
    /// the value to rmp-serde from where it started. Without it, a wrapped error would fail
    /// a key rmp-serde can build, or leave partial bytes behind.
    #[test]
    fn errors_from_serialize_impls_leave_the_value_to_rmp_serde() {
        /// Wraps whatever error it gets into one of its own, after writing a prefix.
        #[derive(Debug)]
        struct Wrapping;
        impl Serialize for Wrapping {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use ser::{Error as _, SerializeTuple};
                let mut t = s.serialize_tuple(2)?;
                t.serialize_element(&1_u8)?;
                t.serialize_element(&1.5_f64)
                    .map_err(|e| S::Error::custom(format!("wrapped: {e}")))?;
                t.end()
            }
        }
        same(&(3_i64, Wrapping));
    }

    /// A value serialized as bytes, as `serde_bytes` would.
    fn serde_bytes_like() -> impl Serialize + std::fmt::Debug {
        #[derive(Debug)]
        struct Bytes;
        impl Serialize for Bytes {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(b"raw")
            }
        }
        (1_u8, Bytes)
    }

    #[test]
    fn a_sequence_of_unknown_length_is_left_to_rmp_serde() {
        #[derive(Debug)]
        struct Unknown;
        impl Serialize for Unknown {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use ser::SerializeSeq;
                let mut seq = s.serialize_seq(None)?;
                seq.serialize_element(&1)?;
                seq.end()
            }
        }
        same(&(5_i64, Unknown));
    }
}
