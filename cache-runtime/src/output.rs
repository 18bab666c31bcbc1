//! What a loader returns, and which part of it may be cached.
//!
//! `Result` is recognised by the type system, not by syntax: `sqlx::Result<T>`,
//! `anyhow::Result<T>` and a user's `type R<T> = Result<T, MyError>` are all `Result<T, E>`
//! once aliases are resolved, so their `Err` is never cached.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde::ser::{self, Impossible};

/// The bounds a cached value needs: cloned out on a hit, shared between tasks, encoded for
/// remote backends. Implemented automatically.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in the cache",
    label = "cached values must be `Clone + Send + Sync + Serialize + Deserialize + 'static`",
    note = "derive `Clone`, `serde::Serialize` and `serde::Deserialize` for `{Self}` (and keep \
            it free of borrowed data)"
)]
pub trait CacheValue: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> CacheValue for T {}

/// The output of a cached loader: the cacheable value, or something to pass through untouched.
///
/// Implemented for `Result<T, E>` (only `Ok` is cached), `Option<T>`, `Vec<T>`, strings and
/// primitives; `#[derive(CacheEntity)]` implements it for the entity, and a plain struct
/// returned without a `Result` implements it in three lines:
///
/// ```
/// use cache_runtime::LoadOutput;
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Totals { users: i64, posts: i64 }
///
/// impl LoadOutput for Totals {
///     type Value = Totals;
///     fn into_value(self) -> Result<Totals, Totals> { Ok(self) }
///     fn from_value(value: Totals) -> Totals { value }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from a cached function",
    label = "not a cacheable output",
    note = "a cached function returns the data itself: a `Result<T, E>` (only `Ok` is cached), \
            `Option<T>`, `Vec<T>`, a primitive, a `String` or a `CacheEntity`, where `T` is \
            `Clone + Serialize + Deserialize`; wrap it (in `Json`, a response type...) where \
            it is used, or implement `cache_runtime::LoadOutput` for `{Self}`"
)]
pub trait LoadOutput: Sized {
    /// The part that is stored and served from the cache.
    type Value: CacheValue;

    /// Splits off the cacheable value; `Err(self)` (e.g. a `Result::Err`) is returned to the
    /// caller as is and never cached.
    fn into_value(self) -> Result<Self::Value, Self>;

    /// Rebuilds the output from a cached value.
    fn from_value(value: Self::Value) -> Self;
}

impl<T: CacheValue, E> LoadOutput for Result<T, E> {
    type Value = T;

    fn into_value(self) -> Result<T, Self> {
        match self {
            Ok(value) => Ok(value),
            Err(e) => Err(Err(e)),
        }
    }

    fn from_value(value: T) -> Self {
        Ok(value)
    }
}

macro_rules! plain_output {
    ($($ty:ty),* $(,)?) => {$(
        impl LoadOutput for $ty {
            type Value = $ty;
            fn into_value(self) -> Result<$ty, $ty> { Ok(self) }
            fn from_value(value: $ty) -> $ty { value }
        }
    )*};
}

plain_output!(
    bool, char, i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64, String,
);

impl<T: CacheValue> LoadOutput for Option<T> {
    type Value = Option<T>;
    fn into_value(self) -> Result<Self, Self> {
        Ok(self)
    }
    fn from_value(value: Self) -> Self {
        value
    }
}

impl<T: CacheValue> LoadOutput for Vec<T> {
    type Value = Vec<T>;
    fn into_value(self) -> Result<Self, Self> {
        Ok(self)
    }
    fn from_value(value: Self) -> Self {
        value
    }
}

/// Whether `value` is an "empty result" (`None`, an empty sequence or map, also inside
/// newtype wrappers), which is cached only when `Settings::cache_none` is on.
///
/// Decided by the first call `value` makes on a serializer that stops right there, so it
/// costs a few nanoseconds and works for any value type without a trait impl per type.
pub(crate) fn is_empty<T: Serialize + ?Sized>(value: &T) -> bool {
    matches!(value.serialize(Probe), Err(Verdict(true)))
}

#[derive(Debug)]
struct Verdict(bool);

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "empty: {}", self.0)
    }
}

impl std::error::Error for Verdict {}

impl ser::Error for Verdict {
    fn custom<M: std::fmt::Display>(_: M) -> Verdict {
        Verdict(false)
    }
}

struct Probe;

macro_rules! not_empty {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {$(
        fn $method(self, $(_: $arg),*) -> Result<(), Verdict> { Err(Verdict(false)) }
    )*};
}

impl ser::Serializer for Probe {
    type Ok = ();
    type Error = Verdict;
    type SerializeSeq = Impossible<(), Verdict>;
    type SerializeTuple = Impossible<(), Verdict>;
    type SerializeTupleStruct = Impossible<(), Verdict>;
    type SerializeTupleVariant = Impossible<(), Verdict>;
    type SerializeMap = Impossible<(), Verdict>;
    type SerializeStruct = Impossible<(), Verdict>;
    type SerializeStructVariant = Impossible<(), Verdict>;

    not_empty!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_none(self) -> Result<(), Verdict> {
        Err(Verdict(true))
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Verdict> {
        Err(Verdict(false))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Verdict> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Verdict> {
        Err(Verdict(false))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Verdict> {
        Err(Verdict(len == Some(0)))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Verdict> {
        Err(Verdict(len == Some(0)))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Verdict> {
        Err(Verdict(false))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Verdict> {
        Err(Verdict(false))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Verdict> {
        Err(Verdict(false))
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Verdict> {
        Err(Verdict(false))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Verdict> {
        Err(Verdict(false))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Serialize)]
    struct Row {
        id: i64,
    }

    #[derive(Serialize)]
    struct Wrapper(Vec<i64>);

    #[test]
    fn empty_results() {
        assert!(is_empty(&None::<Row>));
        assert!(is_empty(&Vec::<Row>::new()));
        assert!(is_empty(&BTreeMap::<i64, i64>::new()));
        assert!(is_empty(&Wrapper(vec![])));
    }

    #[test]
    fn non_empty_results() {
        assert!(!is_empty(&Some(Row { id: 1 })));
        assert!(!is_empty(&vec![Row { id: 1 }]));
        assert!(!is_empty(&Row { id: 1 }));
        assert!(!is_empty(&0_i64));
        assert!(!is_empty(&""));
        assert!(!is_empty(&()));
        assert!(!is_empty(&Wrapper(vec![1])));
    }
}
