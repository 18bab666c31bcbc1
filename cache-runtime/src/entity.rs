//! `CacheEntity`: a row type that knows its table and id.

use serde::Serialize;

use crate::Ttl;

/// A row type that knows the table it is read from and its id.
///
/// `#[derive(CacheEntity)]` implements it (with `#[cache(table = "users")]` on the struct
/// and `#[cache(id)]` on the id field); it can also be written by hand:
///
/// ```
/// use cache_runtime::CacheEntity;
///
/// struct User { id: i64, name: String }
///
/// impl CacheEntity for User {
///     const TABLE: &'static str = "users";
///     type Id = i64;
///     fn cache_id(&self) -> &i64 { &self.id }
/// }
///
/// assert_eq!(User::TABLE, "users");
/// ```
pub trait CacheEntity {
    /// The table rows of this type are read from; reads returning this type are
    /// invalidated by writes to it.
    const TABLE: &'static str;

    /// The type of the primary key.
    type Id: Serialize;

    /// This row's primary key.
    fn cache_id(&self) -> &Self::Id;

    /// The TTL of cached reads returning this type that name none themselves
    /// (`#[cache(ttl = ...)]` on the derive); `None` falls back to `Settings::default_ttl`.
    fn default_ttl() -> Option<Ttl> {
        None
    }
}
